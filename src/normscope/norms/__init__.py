"""The one table of normalizations, and the public interface that adds to it.

Every other module reads this table: the language (which `norm:` values and options
exist), the graph (shape rules, parameter counts, FLOPs, the statistics a norm layer
exposes and their sizes), the torch build (the layer class), summaries, diagrams (names,
colours, symbols), attribution and studies (the variant names).

Adding a normalization is one `register_norm(NormSpec(...))` (docs/plugins.md): the
built-ins do it in `normscope.norms.builtin`; plugins do it from their own module, loaded
from an installed package's `normscope.norms` entry point, `--plugin FILE.py` or
`NORMSCOPE_PLUGINS` (`normscope.norms.plugins`). Loading touches no torch for the
built-ins; a plugin's module may import it.

Variant names: `none`, and for each normalization `<short>` (the normalization alone)
and `<short>_v2` (with reuse of its statistics). `variant_key` and `parse_variant` are
the rule in both directions.
"""

from normscope.norms.builtin import (  # noqa: E402  (registers the built-ins)
    DENOMINATOR,
    GDN_DEFAULT_KERNEL,
    MEAN,
    REUSE_STATS,
    VAR,
    default_groups,
)
from normscope.norms.plugins import PluginError, load_plugin, load_plugins, loaded_plugins
from normscope.norms.records import NormSpec, Option, Statistic, Style
from normscope.norms.registry import (
    ALL_VARIANTS,
    BY_KIND,
    NORM_CHOICES,
    NORMS,
    OPTIONS,
    ORIGIN,
    NormError,
    norm_of_kind,
    on_register,
    parse_variant,
    register_norm,
    unknown_norm,
    variant_key,
    variant_name,
)

Norm = NormSpec  # the record's earlier name

# the thesis' seven: a study runs these unless told otherwise
VARIANTS: tuple[str, ...] = ("none", *(v for n in NORMS.values() if n.in_study for v in n.variants))
STUDY_NORMS: tuple[str, ...] = tuple(n.short for n in NORMS.values() if n.in_study)

__all__ = [
    "ALL_VARIANTS",
    "BY_KIND",
    "DENOMINATOR",
    "GDN_DEFAULT_KERNEL",
    "MEAN",
    "NORMS",
    "NORM_CHOICES",
    "OPTIONS",
    "ORIGIN",
    "REUSE_STATS",
    "STUDY_NORMS",
    "VAR",
    "VARIANTS",
    "Norm",
    "NormError",
    "NormSpec",
    "Option",
    "PluginError",
    "Statistic",
    "Style",
    "default_groups",
    "load_plugin",
    "load_plugins",
    "loaded_plugins",
    "norm_of_kind",
    "on_register",
    "parse_variant",
    "register_norm",
    "unknown_norm",
    "variant_key",
    "variant_name",
]
