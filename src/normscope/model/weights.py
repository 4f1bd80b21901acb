"""Pretrained weights: a state dict (a torchvision model's, or any other) loaded into a built model.

Matching is structural, not by name: the model's layers that hold weights, in network
order, are paired with the state dict's modules in the order of its keys (a module is
the key's prefix: ``features.0`` of ``features.0.weight``). Convolutions and dense layers
must agree in kind and in every tensor's shape; the first that does not stops the load
with both layers named. Normalization layers are optional on both sides: a norm layer
takes the state dict's norm layer at its place when they hold the same tensors (BatchNorm
from BatchNorm), else it keeps its initialization (InstanceNorm where torchvision has
BatchNorm, or where it has none); a state dict's norm layer with no counterpart is left
unused. The head may differ: from the first dense layer that disagrees on, when only dense
(and norm) layers follow on both sides, the model's layers keep their initialization (a
200-class classifier in place of a 1000-class one, or a classifier that also reads reused
statistics).

Sources: a file saved with ``torch.save(model.state_dict(), PATH)`` (read with
``torch.load(weights_only=True)`` only; a normscope checkpoint, ``{"model": state_dict,
...}``, reads too), or ``torchvision:NAME`` (``torchvision:vgg19.IMAGENET1K_V1``,
``torchvision:resnet50`` for its DEFAULT weights), downloaded by torchvision's own
downloader into its cache (``$TORCH_HOME/hub/checkpoints``) where the internet is
reachable.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from normscope import norms
from normscope.model.weights_source import (
    COUNTER,
    TORCHVISION,
    Weights,
    WeightsError,
    read_weights,
    resolve_source,
)

__all__ = [
    "TORCHVISION",
    "Weights",
    "WeightsError",
    "WeightsReport",
    "load_weights",
    "match_weights",
    "read_weights",
    "resolve_source",
]


@dataclass
class WeightsReport:
    """What a load did: ``loaded`` [(layer, state dict module)], ``initialized`` [(layer,
    why it keeps its initialization)], ``unused`` [(state dict module, why)]."""

    source: str
    loaded: list[tuple[str, str]] = field(default_factory=list)
    initialized: list[tuple[str, str]] = field(default_factory=list)
    unused: list[tuple[str, str]] = field(default_factory=list)
    values: int = 0  # numbers copied into the model
    cast: list[str] = field(default_factory=list)  # dtypes other than float32, cast when loaded
    # the model's conv/dense layers that stay random although the weights had layers at their place
    # (beyond the classifiers of both sides): `random` left at initialization, `discarded` not used
    random: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)

    def warning(self) -> str | None:
        """A warning when pretrained layers were discarded and layers of the model stay random
        (fc1, fc2 of a VGG whose flattened features differ from the weights'); None otherwise."""
        if not self.random or not self.discarded:
            return None
        return (
            f"pretrained weights were asked for ({self.source}), but {len(self.random)} "
            + ("layer of the model stays at its" if len(self.random) == 1 else "layers of the model stay at their")
            + f" random initialization: "
            f"{_names(self.random)}; the weights' {_names(self.discarded)} did not fit them and are not used. "
            "Features or fine-tuning from these layers do not start from pretrained values. A dense layer "
            "after a flatten fits only at the input size the weights were trained at, unless the feature map "
            "is pooled to their size first (adaptiveavgpool: 7 before the flatten, as torchvision's VGG)."
        )

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "values": self.values,
            "warning": self.warning(),
            "random": list(self.random),
            "loaded": [{"layer": a, "from": b} for a, b in self.loaded],
            "initialized": [{"layer": a, "why": b} for a, b in self.initialized],
            "unused": [{"module": a, "why": b} for a, b in self.unused],
            "cast": self.cast,
        }

    def lines(self) -> list[str]:
        out = [f"weights from {self.source}: {len(self.loaded)} layers loaded ({self.values:,} values)"]
        for what, pairs in (("left at initialization", self.initialized), ("not used", self.unused)):
            for why, names in _by_reason(pairs).items():
                out.append(f"  {what} ({why}): {_names(names)}")
        if self.cast:
            out.append(f"  note: {', '.join(self.cast)} tensors are cast to float32")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


@dataclass(frozen=True)
class _Item:
    """One layer with weights: its name, kind (conv | dense | norm) and tensors by local key."""

    name: str
    kind: str
    tensors: dict[str, tuple[int, ...]]
    label: str  # "BatchNorm", "conv", ...

    def describe(self) -> str:
        shapes = ", ".join(f"{k} {_shape(s)}" for k, s in self.tensors.items() if s)
        return f"{self.label} ({shapes})"


# --------------------------------------------------------------------------- #
# Reading a source
# --------------------------------------------------------------------------- #


def load_weights(model, source) -> WeightsReport:
    """Load ``source`` (a path, ``torchvision:NAME``, a Weights or a state dict) into a
    NormscopeModel by structure (see the module docstring); returns what was done."""
    weights = read_weights(source)
    report, pairs = _match(model, weights)
    with torch.no_grad():
        for layer, prefix in pairs:
            module = model.layers[layer]
            own = module.state_dict()
            module.load_state_dict({k: weights.state.get(_key(prefix, k), own[k]) for k in own}, strict=True)
    return report


def match_weights(model, source) -> WeightsReport:
    """What :func:`load_weights` would do, without changing the model (it may live on the
    meta device); raises WeightsError where the weights do not fit."""
    return _match(model, read_weights(source))[0]


def _match(model, weights: Weights) -> tuple[WeightsReport, list[tuple[str, str]]]:
    ours, theirs = _model_items(model), _state_items(weights.state)
    report = WeightsReport(weights.source)
    i = j = 0
    while i < len(ours) or j < len(theirs):
        m = ours[i] if i < len(ours) else None
        s = theirs[j] if j < len(theirs) else None
        if m is not None and m.kind == "norm" and s is not None and s.kind == "norm":
            _pair_norms(m, s, report)
            i, j = i + 1, j + 1
        elif m is not None and m.kind == "norm":
            report.initialized.append((m.name, f"{m.label}; the weights have no normalization here"))
            i += 1
        elif s is not None and s.kind == "norm":
            report.unused.append((s.name, f"{s.label}; the model has no normalization here"))
            j += 1
        elif m is not None and s is not None and m.kind == s.kind and m.tensors == s.tensors:
            report.loaded.append((m.name, s.name))
            i, j = i + 1, j + 1
        else:
            _new_head(ours[i:], theirs[j:], len(report.loaded), report)
            break
    report.values = _values(weights.state, model, report.loaded)
    report.cast = sorted(
        {str(v.dtype).removeprefix("torch.") for v in weights.state.values() if v.is_floating_point()} - {"float32"}
    )
    return report, list(report.loaded)


def _pair_norms(m: _Item, s: _Item, report: WeightsReport) -> None:
    if set(m.tensors) != set(s.tensors):
        report.initialized.append((m.name, f"{m.label}; the weights have {s.label} here"))
        report.unused.append((s.name, f"{s.label}; the model has {m.label} here"))
    elif m.tensors != s.tensors:
        raise WeightsError(_mismatch(m, s, None))
    else:
        report.loaded.append((m.name, s.name))


def _new_head(ours: list[_Item], theirs: list[_Item], matched: int, report: WeightsReport) -> None:
    """The rest of both sides after the first disagreement: a new head when only dense and norm
    layers remain on both sides and it starts at a dense layer; else the architectures differ."""
    m = ours[0] if ours else None
    s = theirs[0] if theirs else None
    head = all(x.kind != "conv" for x in ours) and all(x.kind != "conv" for x in theirs)
    if m is None or m.kind != "dense" or (s is not None and s.kind != "dense") or not head:
        raise WeightsError(_mismatch(m, s, matched))
    first = (
        "a new head: the weights end before it"
        if s is None
        else f"a new head: {_first_shape(m)} here, {_first_shape(s)} in the weights"
    )
    report.initialized.append((m.name, first))
    report.initialized += [(x.name, "a new head") for x in ours[1:]]
    report.unused += [(x.name, "the weights' head, replaced") for x in theirs]
    discarded = [x.name for x in theirs[:-1] if x.kind != "norm"]  # their last dense: their classifier
    if discarded:
        report.discarded = discarded
        report.random = [x.name for x in ours[:-1] if x.kind != "norm"]


def _first_shape(item: _Item) -> str:
    return _shape(next(iter(item.tensors.values())))


def _mismatch(m: _Item | None, s: _Item | None, matched: int | None) -> str:
    done = "" if matched is None else f" after {matched} matching layer{'s' if matched != 1 else ''}"
    if m is None:
        return (
            f"the weights do not fit the model: they have more layers{done}; the next is "
            f"'{s.name}' {s.describe()} (a state dict of another architecture?)"
        )
    if s is None:
        return f"the weights do not fit the model: they end{done}, before layer '{m.name}' {m.describe()}"
    return (
        f"the weights do not fit the model{done}: layer '{m.name}' is {m.describe()} but the weights' "
        f"'{s.name}' is {s.describe()} (a state dict of another architecture?)"
    )


def _model_items(model) -> list[_Item]:
    """The model's layers that hold tensors, in network order."""
    items = []
    for name, module in model.layers.items():
        shapes = {k: tuple(v.shape) for k, v in module.state_dict().items() if k != COUNTER}
        if not shapes:
            continue
        kind = "conv" if isinstance(module, nn.Conv2d) else "dense" if isinstance(module, nn.Linear) else "norm"
        norm = norms.norm_of_kind(model.graph.nodes[name]["kind"])
        items.append(_Item(name, kind, shapes, norm.display if norm else kind))
    return items


def _state_items(state: Mapping[str, torch.Tensor]) -> list[_Item]:
    """The state dict's modules (key prefixes) in the order of their first key."""
    groups: OrderedDict[str, dict[str, tuple[int, ...]]] = OrderedDict()
    for key, value in state.items():
        prefix, _, local = key.rpartition(".")
        if local != COUNTER:
            groups.setdefault(prefix, {})[local] = tuple(value.shape)
    items = []
    for prefix, shapes in groups.items():
        rank = len(shapes.get("weight", ()))
        kind = "conv" if rank == 4 else "dense" if rank == 2 else "norm"
        items.append(_Item(prefix, kind, shapes, kind if kind != "norm" else _norm_label(shapes)))
    return items


def _norm_label(shapes: dict) -> str:
    if {"running_mean", "running_var"} <= set(shapes):
        return "BatchNorm"
    return "a normalization with " + ", ".join(shapes)


def _values(state, model, loaded) -> int:
    own = {layer: model.layers[layer].state_dict() for layer, _ in loaded}
    return sum(state[_key(p, k)].numel() for layer, p in loaded for k in own[layer] if k != COUNTER)


def _key(prefix: str, local: str) -> str:
    return f"{prefix}.{local}" if prefix else local


def _shape(shape) -> str:
    return "×".join(str(v) for v in shape) or "scalar"


def _by_reason(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, why in pairs:
        out.setdefault(why, []).append(name)
    return out


def _names(names: list[str]) -> str:
    if len(names) <= 6:
        return ", ".join(names)
    return f"{', '.join(names[:3])}, … {names[-1]} ({len(names)} layers)"
