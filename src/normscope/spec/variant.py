"""A variant of a description, as one value: :class:`Variant`.

The description (a path, or a loaded ModelSpec), the normalization and reuse chosen
(None: the description's own), and the overrides (`--set`, `--norm-option`, a study's
factor levels). It is what loading, building, summary, drawing, weight matching, training
and a study's jobs take, passed whole; ``to_dict``/``from_dict`` carry it across processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from normscope import norms
from normscope.errors import SpecError
from normscope.spec.overrides import Override, check_path, check_value_of, dedupe, parse_override, parse_overrides

__all__ = ["Variant", "norm_option_overrides"]


@dataclass(frozen=True)
class Variant:
    source: Any  # a path (str | Path) or a loaded ModelSpec
    norm: str | None = None
    reuse: bool | None = None
    overrides: tuple[Override, ...] = field(default=())

    @classmethod
    def of(
        cls,
        source,
        norm: str | None = None,
        reuse: bool | None = None,
        *,
        sets: Iterable[str] | None = None,
        norm_options: Mapping | Iterable[str] | None = None,
    ) -> Variant:
        """From the command line's pieces: ``sets`` (``--set`` texts) and ``norm_options``
        (``--norm-option NORM.KEY=VALUE`` texts, or a mapping {norm: {option: value}})."""
        overrides = norm_option_overrides(norm_options) + parse_overrides(sets)
        return cls(source, norm, reuse, dedupe(overrides))

    def with_overrides(self, extra: Iterable[Override]) -> Variant:
        """This variant with ``extra`` applied after its own overrides."""
        return replace(self, overrides=dedupe(self.overrides + tuple(extra)))

    @property
    def key(self) -> str | None:
        """``bn_v2``; None while the description decides."""
        if self.norm is None:
            return None
        return norms.variant_key(self.norm, bool(self.reuse))

    def to_dict(self) -> dict:
        """JSON-able (a path source only)."""
        return {
            "source": str(self.source),
            "norm": self.norm,
            "reuse": self.reuse,
            "overrides": [{"key": o.key, "value": o.value, "origin": o.origin} for o in self.overrides],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Variant:
        overs = tuple(
            Override(tuple(o["key"].split(".")), o["value"], o.get("origin", "--set")) for o in d["overrides"]
        )
        return cls(Path(d["source"]), d.get("norm"), d.get("reuse"), overs)


def norm_option_overrides(options: Mapping | Iterable[str] | None) -> tuple[Override, ...]:
    """``--norm-option NORM.KEY=VALUE`` (a shorthand of ``--set norm_options.NORM.KEY=VALUE``)
    texts, or a mapping {norm: {option: value}}, as overrides."""
    if not options:
        return ()
    if isinstance(options, Mapping):
        out = []
        for norm, opts in options.items():
            if not isinstance(opts, Mapping):
                raise SpecError(f"--norm-option {norm}: expected {{option: value}}, got {opts!r}")
            for key, value in opts.items():
                over = Override(("norm_options", str(norm), str(key)), value, "--norm-option")
                check_path(over.path, over.origin)
                check_value_of(over)
                out.append(over)
        return tuple(out)
    out = []
    for text in options:
        if not isinstance(text, str) or "=" not in text or "." not in text.partition("=")[0]:
            raise SpecError(f"--norm-option {text!r}: expected NORM.KEY=VALUE, e.g. bn.momentum=0.9")
        out.append(parse_override("norm_options." + text, "--norm-option"))
    return tuple(out)
