"""What the measures read and write.

:class:`Problem`: the classifier input ``z`` of the attributed images, their labels and
target classes, the baselines, the linear classifier's parts, the units and the exact
per-dimension contributions to the target logit. :class:`Tally`: the rows the measures
fill, one per unit, with the per-class numbers and the checks.

Everything after the classifier input is the linear classifier, so every measure works
on ``z`` alone: a group replaced by other values changes the pre-activation logits by
``(z'[g] - z[g]) @ W[:, g].T``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from normscope.analysis.common import MEASURES
from normscope.analysis.inputs import classifier_parts
from normscope.analysis.units import Unit, build_units


def loss_acc(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image cross-entropy and correctness of outputs (logits)."""
    loss = F.cross_entropy(out, y, reduction="none")
    correct = (out.argmax(1) == y).float()
    return loss, correct


class ByClass:
    """Sums and means over each class' images (class = true label), as one matrix product."""

    def __init__(self, y: torch.Tensor):
        self.classes = [int(c) for c in torch.unique(y)]
        self.onehot = (y[:, None] == torch.tensor(self.classes, dtype=torch.long)[None, :]).float()
        self.counts = self.onehot.sum(0)

    def sum(self, v: torch.Tensor) -> torch.Tensor:
        return self.onehot.T @ v

    def mean(self, v: torch.Tensor) -> torch.Tensor:
        return self.sum(v) / self.counts

    @staticmethod
    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num))


@dataclass(frozen=True)
class Settings:
    n_steps: int  # Integrated Gradients steps
    repeats: int  # permutations per unit
    seed: int  # of the permutations
    batch_size: int  # images per Integrated Gradients call


@dataclass
class Problem:
    classifier: torch.nn.Module
    z: torch.Tensor  # N x D classifier input (float32, CPU)
    out: torch.Tensor  # N x K the model's outputs
    y: torch.Tensor  # N true labels
    targets: torch.Tensor  # N classes whose logit is attributed
    z0: torch.Tensor  # D: the IG / logit baseline
    zbar: torch.Tensor  # D: the mean classifier input (the ablation value)
    w: torch.Tensor  # K x D
    b: torch.Tensor  # K
    act: Any  # the classifier's output activation, or None
    groups: list[Unit]
    layers: list[Unit]
    totals: list[Unit]
    settings: Settings
    by_class: ByClass | None
    pre: torch.Tensor = field(init=False)  # N x K pre-activation outputs
    contrib: torch.Tensor = field(init=False)  # N x D: w_t . (z - z0), exact
    offset: torch.Tensor = field(init=False)  # N x D: w_t . z0, the baseline's own share
    base_loss_i: torch.Tensor = field(init=False)
    base_correct_i: torch.Tensor = field(init=False)

    def __post_init__(self):
        wt = self.w[self.targets]
        self.contrib = wt * (self.z - self.z0)
        self.offset = wt * self.z0
        self.pre = self.z @ self.w.T + self.b
        self.base_loss_i, self.base_correct_i = loss_acc(self.out, self.y)

    @property
    def units(self) -> list[Unit]:
        return self.groups + self.layers + self.totals

    @property
    def n(self) -> int:
        return int(self.z.shape[0])

    @property
    def d(self) -> int:
        return int(self.z.shape[1])

    @property
    def base_loss(self) -> float:
        return float(self.base_loss_i.double().mean())

    @property
    def base_acc(self) -> float:
        return float(self.base_correct_i.sum()) / self.n

    def replaced(self, u: Unit, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and correctness per image with the columns of ``u`` replaced by ``columns``."""
        p = self.pre + (columns - self.z[:, u.index]) @ self.w[:, u.index].T
        return loss_acc(self.act(p) if self.act is not None else p, self.y)


def make_problem(model, z, out, y, z0, zbar, *, target: str, by_class: bool, settings: Settings) -> Problem:
    w, b, act = classifier_parts(model)
    groups, layers, totals = build_units(model)
    return Problem(
        model.classifier,
        z,
        out,
        y,
        out.argmax(1) if target == "pred" else y,
        z0,
        zbar,
        w,
        b,
        act,
        groups,
        layers,
        totals,
        settings,
        ByClass(y) if by_class else None,
    )


def _constant(values: torch.Tensor) -> bool:
    """The same value for every image (a single image counts as constant)."""
    if len(values) <= 1:
        return True
    return bool(values.std(0).max() <= 1e-6 * (1.0 + values.abs().max()))


class Tally:
    """The rows of the result, one per unit, the per-class numbers and the checks."""

    def __init__(self, p: Problem):
        self.rows: dict[str, dict[str, Any]] = {}
        for u in p.units:
            row = {
                "name": u.name,
                "level": u.level,
                "layer": u.layer,
                "stat": u.stat,
                "size": u.size,
                "constant": _constant(p.z[:, u.index]),
            }
            row.update({m: None for m in MEASURES})
            self.rows[u.key] = row
        self.per_class: dict[str, dict[str, torch.Tensor]] = {u.key: {} for u in p.units}
        self.checks: dict[str, float] = {}

    def row(self, u: Unit) -> dict[str, Any]:
        return self.rows[u.key]

    def of_class(self, u: Unit) -> dict[str, torch.Tensor]:
        """Measure -> one value per class, for ``u``."""
        return self.per_class[u.key]
