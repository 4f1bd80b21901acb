"""normscope: one YAML model description -> PyTorch modules in every normalization and
reuse variant, diagrams, summaries, training and attribution.

The Python API (docs/api.md): `describe`, `summarize`, `variants`, `draw`, `build_model`
take a description as a path, YAML text, a mapping or a ModelSpec; `load_plugin` adds a
plugin's normalizations (docs/plugins.md).

`import normscope` does not import torch: the names that need it (build_model,
NormscopeModel, count_params) load `normscope.model.build` on first use.
"""

import importlib

from normscope.errors import NormscopeError, SpecError
from normscope.model.graph import build_graph
from normscope.norms import VARIANTS, load_plugin, parse_variant, variant_name
from normscope.report.draw import draw
from normscope.report.summary import summarize
from normscope.report.variants import variants
from normscope.spec import ModelSpec, load_spec
from normscope.version import __version__

_TORCH_NAMES = ("build_model", "NormscopeModel", "count_params")

__all__ = [
    "build_model",
    "build_graph",
    "describe",
    "draw",
    "load_plugin",
    "load_spec",
    "summarize",
    "variants",
    "count_params",
    "NormscopeModel",
    "ModelSpec",
    "VARIANTS",
    "variant_name",
    "NormscopeError",
    "SpecError",
    "__version__",
]


def describe(
    source,
    variant: str | None = None,
    *,
    norm: str | None = None,
    reuse: bool | None = None,
    input_shape: tuple | None = None,
    classes: int | None = None,
    norm_options: dict | None = None,
) -> ModelSpec:
    """The typed description (ModelSpec) of a path, YAML text, a mapping or a ModelSpec,
    in a variant ("bn_v2": `norm` and `reuse` in one) or the description's own."""
    if variant is not None:
        norm, reuse = parse_variant(variant)
    return load_spec(
        source, norm=norm, reuse=reuse, input_shape=input_shape, classes=classes, norm_options=norm_options
    )


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module("normscope.model.build"), name)
    raise AttributeError(f"module 'normscope' has no attribute {name!r}")
