"""Every normalization variant of a description with its sizes (data; the CLI renders it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from normscope import norms
from normscope.report.summary import Summary, composition, summarize


@dataclass(frozen=True)
class VariantRow:
    variant: str  # "bn_v2"
    name: str  # the model's name in that variant
    total_params: int
    trainable_params: int
    non_trainable_params: int
    classifier_input: int
    composition: str  # "512 features + 480 reused (bn1 64, ...) = 992"
    short: str  # "512 + 480 = 992"
    total_flops: int  # counted layers only
    flops_not_counted: tuple[str, ...]  # layers of a normalization without a FLOPs rule
    diagnostics: tuple[str, ...]  # codes (docs/diagnostics.md)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["flops_not_counted"], out["diagnostics"] = list(self.flops_not_counted), list(self.diagnostics)
        return out


def short_composition(s: Summary) -> str:
    feats = s.classifier_inputs.get("features", 0)
    total = sum(s.classifier_inputs.values())
    return str(total) if total == feats else f"{feats} + {total - feats} = {total}"


def variant_summaries(source, input_shape=None, classes=None) -> list[tuple[str, Summary]]:
    """(variant key, summary) for every variant: none, then each normalization alone and reused."""
    out = []
    for key in norms.ALL_VARIANTS:
        norm, reuse = norms.parse_variant(key)
        out.append((key, summarize(source, norm=norm, reuse=reuse, input_shape=input_shape, classes=classes)))
    return out


def variants(source, input_shape=None, classes=None) -> list[VariantRow]:
    """Every variant of a description (path, YAML text, mapping or ModelSpec), no torch
    (unless a plugin's normalization has no params rule)."""
    return [row(key, s) for key, s in variant_summaries(source, input_shape, classes)]


def row(key: str, s: Summary) -> VariantRow:
    return VariantRow(
        variant=key,
        name=s.name,
        total_params=s.total_params,
        trainable_params=s.trainable_params,
        non_trainable_params=s.non_trainable_params,
        classifier_input=sum(s.classifier_inputs.values()),
        composition=composition(s),
        short=short_composition(s),
        total_flops=s.total_flops,
        flops_not_counted=tuple(s.flops_not_counted),
        diagnostics=tuple(d.code for d in s.diagnostics),
    )
