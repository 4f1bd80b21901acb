"""Permutation: the drop in accuracy and the rise in cross-entropy loss when a unit is
shuffled across the images (one permutation for all its dimensions, ``repeats`` times;
the mean and the spread are reported)."""

from __future__ import annotations

import numpy as np
import torch

from normscope.analysis.problem import Problem, Tally


def measure(p: Problem, tally: Tally) -> None:
    """permutation_accuracy_drop, _loss_rise and their _std of every unit (and per class)."""
    n, repeats = p.n, p.settings.repeats
    base_acc, base_loss = p.base_acc, p.base_loss
    gen = torch.Generator().manual_seed(int(p.settings.seed))
    perms = [torch.randperm(n, generator=gen) for _ in range(repeats)]
    for u in p.units:
        accs, losses = [], []
        corr_sum = torch.zeros(n)
        loss_sum = torch.zeros(n)
        for perm in perms:
            loss_i, corr_i = p.replaced(u, p.z[perm][:, u.index])
            accs.append(float(corr_i.sum()) / n)
            losses.append(float(loss_i.mean()))
            corr_sum += corr_i
            loss_sum += loss_i
        r = tally.row(u)
        r["permutation_accuracy_drop"] = base_acc - float(np.mean(accs))
        r["permutation_accuracy_drop_std"] = float(np.std(accs))
        r["permutation_loss_rise"] = float(np.mean(losses)) - base_loss
        r["permutation_loss_rise_std"] = float(np.std(losses))
        if p.by_class is not None:
            per_class = tally.of_class(u)
            per_class["permutation_accuracy_drop"] = p.by_class.mean(p.base_correct_i - corr_sum / repeats)
            per_class["permutation_loss_rise"] = p.by_class.mean(loss_sum / repeats - p.base_loss_i)
