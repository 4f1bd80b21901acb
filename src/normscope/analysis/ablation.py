"""Ablation: the drop in accuracy and the rise in cross-entropy loss when a unit is
replaced by its mean over the baseline (training) images."""

from __future__ import annotations

from normscope.analysis.problem import Problem, Tally


def measure(p: Problem, tally: Tally) -> None:
    """ablation_accuracy_drop and ablation_loss_rise of every unit (and per class)."""
    n = p.n
    base_acc, base_loss = p.base_acc, p.base_loss
    for u in p.units:
        loss_i, corr_i = p.replaced(u, p.zbar[u.index].expand(n, -1))
        r = tally.row(u)
        r["ablation_accuracy_drop"] = base_acc - float(corr_i.sum()) / n
        r["ablation_loss_rise"] = float(loss_i.mean()) - base_loss
        if p.by_class is not None:
            per_class = tally.of_class(u)
            per_class["ablation_accuracy_drop"] = p.by_class.mean(p.base_correct_i - corr_i)
            per_class["ablation_loss_rise"] = p.by_class.mean(loss_i - p.base_loss_i)
