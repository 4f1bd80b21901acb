"""Units: the sets of classifier-input dimensions measured together.

Every group of the classifier input (``model.classifier_input``, computed once in the
graph), every tapped norm layer (its statistics together) and the two totals, features
versus all statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from normscope.model.groups import ClassifierGroup, ClassifierInput


@dataclass
class Unit:
    """A set of classifier-input dimensions that is measured together."""

    name: str
    level: str  # "group" | "layer" | "total"
    index: torch.Tensor  # int64 positions in the classifier input
    layer: str | None = None  # the norm layer a statistic comes from (None: features)
    stat: str | None = None  # mean | var | denominator (groups only)
    norm: str | None = None  # short name of the normalization (normscope.norms.NORMS); None: features

    @property
    def size(self) -> int:
        return int(self.index.numel())

    @property
    def key(self) -> str:
        """Unique among all units of a model: "<level>:<name>"."""
        return f"{self.level}:{self.name}"


def _index(groups: tuple[ClassifierGroup, ...] | list[ClassifierGroup]) -> torch.Tensor:
    return torch.cat([torch.arange(g.start, g.stop) for g in groups])


def group_unit(g: ClassifierGroup) -> Unit:
    if g.is_features:
        return Unit(g.name, "group", _index([g]))
    return Unit(g.name, "group", _index([g]), layer=g.source, stat=g.stat, norm=g.norm)


def build_units(model) -> tuple[list[Unit], list[Unit], list[Unit]]:
    """(groups, layers, totals) of ``model``'s classifier input. ``totals`` is
    [features, statistics] when the model reuses statistics, else [features]."""
    ci: ClassifierInput = model.classifier_input
    groups = [group_unit(g) for g in ci]
    layers = []
    for name in ci.per_layer():
        of_layer = ci.of_layer(name)
        layers.append(Unit(name, "layer", _index(of_layer), layer=name, norm=of_layer[0].norm))
    totals = [Unit("features", "total", _index([ci.features]))]
    if ci.reused:
        totals.append(Unit("statistics", "total", _index(ci.reused)))
    return groups, layers, totals
