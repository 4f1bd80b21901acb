"""Frozen means frozen: what ``train.freeze`` implies beyond ``requires_grad``.

1. :func:`frozen_norms`: normalization layers whose weights are frozen run in evaluation mode
   while the model trains (Keras' ``trainable=False``): a frozen BatchNorm normalizes with its
   running statistics and does not update them.
2. :func:`backbone_cut`: the layer where a frozen backbone ends, when everything before the
   trainable head is frozen and deterministic (no dropout, no BatchNorm in training mode, no
   statistic reused by the classifier) and only that layer's output feeds the head. Its
   output is then the same in every epoch.
3. :class:`CachedFeatures`: that output computed once for the training and validation
   images; the epochs that train the head draw batches from it instead of running the
   backbone again (``train.cache_features``, on by default; off with augmentation, which
   changes the backbone's input every epoch).
"""

from __future__ import annotations

import fnmatch

import torch

from normscope import norms
from normscope.data.batches import epoch_order
from normscope.model.layers.batchnorm import BatchNorm

__all__ = ["frozen_norms", "set_frozen_eval", "backbone_cut", "CachedFeatures"]


def frozen_norms(model, patterns) -> list[str]:
    """Norm layers that hold weights, all frozen, or whose name a ``train.freeze`` pattern matches."""
    out = []
    for name, module in model.layers.items():
        if norms.norm_of_kind(model.graph.nodes[name]["kind"]) is None:
            continue
        params = list(module.parameters())
        named = any(fnmatch.fnmatchcase(name, p) for p in patterns or [])
        if named or (params and not any(p.requires_grad for p in params)):
            out.append(name)
    return out


def set_frozen_eval(model, names: list[str]) -> None:
    """After ``model.train()``: the frozen norm layers back in evaluation mode."""
    for name in names:
        model.layers[name].eval()


def _deterministic(model, name: str, frozen: set[str]) -> bool:
    """Whether layer ``name`` gives the same output for the same input in every training step
    and holds nothing that trains."""
    node = model.graph.nodes[name]
    if node["kind"] in ("dropout", "reuse") or node.get("tapped"):
        return False
    module = model.layers[name] if name in model.layers else None
    if module is None:
        return True
    if any(p.requires_grad for p in module.parameters()):
        return False
    return name in frozen or not isinstance(module, BatchNorm)


def backbone_cut(model, frozen: list[str]) -> str | None:
    """The last layer of the frozen, deterministic prefix of the network whose output alone
    feeds the rest; None when there is none (nothing frozen, or the head reads earlier layers)."""
    order = [n for n in model.graph.graph["order"] if n != "input"]
    frozen_set = set(frozen)
    prefix = []
    for name in order:
        if not _deterministic(model, name, frozen_set):
            break
        prefix.append(name)
    if not prefix or len(prefix) == len(order):
        return None
    inputs = {name: model.graph.nodes[name]["inputs"] for name in order}
    for k in range(len(prefix) - 1, -1, -1):
        before = {"input", *prefix[:k]}  # the layers the cut's output stands in for
        rest = order[k + 1 :]
        if not any(i in before for name in rest for i in inputs[name]):
            return prefix[k]
    return None


class CachedFeatures:
    """The output of ``cut`` for the training and validation images, computed once, on the
    device; batches drawn from it in each epoch's order, as the image feeders give them."""

    def __init__(self, model, images, cut: str, batch_size: int, amp_context):
        self.cut, self.device = cut, images.device
        self.x, self.y = {}, {}
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for split in ("train", "val"):
                feats, labels = [], []
                for xb, yb in images.batches(split, batch_size):
                    with amp_context():
                        feats.append(model.output_of(xb, cut).float())
                    labels.append(yb)
                    del xb  # not held while the next batch is decoded: one batch at a time
                self.x[split] = torch.cat(feats) if feats else torch.empty(0, device=self.device)
                self.y[split] = torch.cat(labels) if labels else torch.empty(0, dtype=torch.long, device=self.device)
        model.train(was_training)

    def n(self, split: str) -> int:
        return len(self.y[split])

    @property
    def nbytes(self) -> int:
        return sum(x.numel() * x.element_size() for x in self.x.values())

    def train_batches(self, seed: int, epoch: int, flip: bool, batch_size: int):
        perm, _, _ = epoch_order(self.n("train"), seed, epoch, 0, False)
        perm = perm.to(self.device)
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            yield self.x["train"][idx], self.y["train"][idx]

    def batches(self, split: str, batch_size: int):
        for start in range(0, self.n(split), batch_size):
            yield self.x[split][start : start + batch_size], self.y[split][start : start + batch_size]
