"""The classifier input, computed once in the graph: which slice holds which values.

A model's classifier reads the flattened features, then (with reuse) each tapped norm
layer's statistics in network order, each statistic of a layer in the order its entry in
`normscope.norms` lists them. The module, the summary, the diagrams and the attribution
all read this object; nobody recomputes or parses group names.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from normscope import norms

FEATURES = "features"


@dataclass(frozen=True)
class ClassifierGroup:
    name: str  # "features" or "<layer>.<statistic>", e.g. "in1.mean"
    source: str  # the layer whose output or statistic this is
    stat: str | None  # "mean", "var", "denominator"; None for the features
    norm: str | None  # short name of the normalization ("in"); None for the features
    start: int
    size: int

    @property
    def stop(self) -> int:
        return self.start + self.size

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def is_features(self) -> bool:
        return self.stat is None

    @property
    def per_image(self) -> bool:
        """The values differ from image to image (BatchNorm's statistics do not)."""
        return self.is_features or norms.NORMS[self.norm].per_image


@dataclass(frozen=True)
class ClassifierInput:
    groups: tuple[ClassifierGroup, ...]

    @classmethod
    def build(
        cls, feature_source: str, features: int, taps: list[tuple[str, str, tuple[int, ...]]]
    ) -> "ClassifierInput":
        """From the feature size and the tapped norm layers [(layer, norm short, each statistic's size)]."""
        groups = [ClassifierGroup(FEATURES, feature_source, None, None, 0, features)]
        start = features
        for layer, short, sizes in taps:
            norm = norms.NORMS[short]
            for stat, size_in in zip(norm.stats, sizes):
                groups.append(ClassifierGroup(f"{layer}.{stat.name}", layer, stat.name, short, start, size_in))
                start += size_in
        return cls(tuple(groups))

    @property
    def size(self) -> int:
        return self.groups[-1].stop

    @property
    def features(self) -> ClassifierGroup:
        return self.groups[0]

    @property
    def reused(self) -> tuple[ClassifierGroup, ...]:
        return self.groups[1:]

    @property
    def reused_size(self) -> int:
        return sum(g.size for g in self.reused)

    def slices(self) -> "OrderedDict[str, slice]":
        """Group name -> slice of the classifier input (`NormscopeModel.classifier_groups`)."""
        return OrderedDict((g.name, g.slice) for g in self.groups)

    def sizes(self) -> dict[str, int]:
        return {g.name: g.size for g in self.groups}

    def of_layer(self, layer: str) -> tuple[ClassifierGroup, ...]:
        return tuple(g for g in self.reused if g.source == layer)

    def per_layer(self) -> "OrderedDict[str, int]":
        """Tapped layer -> how many classifier inputs its statistics take, in order."""
        out: OrderedDict[str, int] = OrderedDict()
        for g in self.reused:
            out[g.source] = out.get(g.source, 0) + g.size
        return out

    def __getitem__(self, name: str) -> ClassifierGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def __iter__(self):
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)
