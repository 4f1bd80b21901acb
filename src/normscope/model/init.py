"""Paired initialization: a model's initial weights from (seed, layer name).

`build_model(..., seed=S)` calls :func:`init_weights`: every convolution and dense layer
draws its weights from a generator of its own, seeded by a stable hash of (S, its name).
Two variants of one description name their shared layers alike (`conv3` is `conv3`
with or without a norm slot before it), so for one seed those layers start identical,
whatever the variant adds or leaves out; what differs between two variants' runs is then
the variant, not the luck of two unrelated initializations.

The distributions are torch's defaults (what `nn.Conv2d` and `nn.Linear` draw:
kaiming-uniform weights, bound 1/sqrt(fan_in), and a bias uniform in the same bound).
The classifier is drawn in column groups (`model.classifier_input`): the columns that
read the flattened features as torch draws a classifier that reads them alone (bound
1/sqrt(features)), so they are the same in every variant; the bias with them; the
columns of each reused statistic from a generator of their own, (S, "classifier/in1.mean"),
with torch's bound for the whole classifier input (1/sqrt(its size)). Norm layers start
from constants (BatchNorm, InstanceNorm, GroupNorm: weight 1, bias 0; GDN: its fixed
gamma, beta), so they need no seed.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

__all__ = ["layer_generator", "init_weights"]


def layer_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded by a stable hash of (seed, name): the same in every process
    and Python run (Python's `hash()` of a string is randomized per process)."""
    digest = hashlib.sha256(f"normscope-init:{int(seed)}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)


def _uniform(shape, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float32) * 2 - 1) * bound


def _torch_default(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int, g: torch.Generator) -> None:
    """What nn.Conv2d / nn.Linear reset_parameters draw (kaiming_uniform_(a=sqrt(5)) is
    uniform in ±1/sqrt(fan_in)), from generator `g`: weight first, then bias."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    weight.copy_(_uniform(weight.shape, bound, g))
    if bias is not None:
        bias.copy_(_uniform(bias.shape, bound, g))


def _init_classifier(layer: nn.Linear, classifier_input, seed: int, name: str) -> None:
    features = classifier_input.features
    g = layer_generator(seed, name)
    shape = (layer.out_features, features.size)
    bound = 1.0 / math.sqrt(features.size)
    layer.weight[:, features.slice].copy_(_uniform(shape, bound, g))
    if layer.bias is not None:
        layer.bias.copy_(_uniform(layer.bias.shape, bound, g))
    whole = 1.0 / math.sqrt(classifier_input.size)
    for group in classifier_input.reused:
        g = layer_generator(seed, f"{name}/{group.name}")
        layer.weight[:, group.slice].copy_(_uniform((layer.out_features, group.size), whole, g))


@torch.no_grad()
def init_weights(model, seed: int) -> None:
    """Re-draw the weights of every convolution and dense layer of a NormscopeModel from
    (seed, layer name); see the module docstring."""
    classifier_input = model.classifier_input
    for name, layer in model.layers.items():
        if name == model.output_name and isinstance(layer, nn.Linear):
            if layer.in_features != classifier_input.size:
                raise ValueError(f"{name}: reads {layer.in_features} inputs, the graph says {classifier_input.size}")
            _init_classifier(layer, classifier_input, seed, name)
        elif isinstance(layer, nn.Linear):
            _torch_default(layer.weight, layer.bias, layer.in_features, layer_generator(seed, name))
        elif isinstance(layer, nn.Conv2d):
            fan_in = layer.weight.shape[1] * layer.weight[0, 0].numel()  # in_channels / groups × kernel area
            _torch_default(layer.weight, layer.bias, fan_in, layer_generator(seed, name))
