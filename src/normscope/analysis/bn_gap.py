"""How far BatchNorm's running statistics lie from the batch statistics the classifier saw
in training, for models that reuse them (`reuse_stats: batch`, the thesis' bn_v2).

In training the reused values are each batch's statistics; in evaluation the running ones.
:func:`bn_gap` runs the trained model on seeded random training batches of the run's batch
size with BatchNorm in training mode (the running statistics left as they are, dropout off)
and compares, per reused group (``bn1.mean``, ``bn1.var``, ...):

``z_mean``, ``z_max``  |running − mean over batches| / (standard deviation over batches),
                       averaged and maximal over the group's channels: how many
                       batch-to-batch deviations the evaluation value lies away;
``relative``           ‖running − mean over batches‖ / ‖mean over batches‖;
``logit_shift``        root mean square over batches and classes of W[:, g]·(running − batch):
                       how much the evaluation's logits move against a training batch's;
``logit_spread``       the same of W[:, g]·(batch − mean over batches): how much they moved
                       from batch to batch in training.

The batch statistics are those of the analysed checkpoint on training images, not a record
of training (normscope does not store them). Biased batch variances against torch's
unbiased running variance differ by a factor n/(n − 1) (n = values per channel of a batch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rich.table import Table

from normscope.model.layers.batchnorm import BatchNorm


def batch_reused_groups(model) -> list:
    """The classifier groups whose values are BatchNorm batch statistics in training."""
    return [
        g
        for g in model.classifier_input.reused
        if isinstance(model.layers[g.source], BatchNorm) and model.layers[g.source].reuse_stats == "batch"
    ]


@torch.no_grad()
def _batch_stats(model, x: torch.Tensor, batch_size: int, seed: int, layers: list[str]) -> dict[str, list]:
    """'<layer>.<stat>' -> one vector per training batch (batches of ``batch_size``, seeded order)."""
    captured: dict[str, list] = {}

    def keep(name):
        def hook(module, inputs, output):
            for stat, values in output[1]:
                captured.setdefault(f"{name}.{stat}", []).append(values[0].detach().double().cpu())

        return hook

    bns = [model.layers[name] for name in layers]
    handles = [bn.register_forward_hook(keep(name)) for name, bn in zip(layers, bns)]
    saved = [bn.momentum for bn in bns]
    was_training = model.training
    model.eval()
    for bn in bns:
        bn.train()
        bn.momentum = 0.0  # the running statistics stay as they are
    device = next(model.parameters()).device
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    try:
        for i in range(0, len(order) - batch_size + 1, batch_size):  # full batches only
            model(x[order[i : i + batch_size]].to(device))
    finally:
        for h in handles:
            h.remove()
        for bn, momentum in zip(bns, saved):
            bn.momentum = momentum
        model.train(was_training)
    return captured


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a**2)))


def bn_gap(model, x: torch.Tensor, batch_size: int, seed: int = 0) -> dict[str, Any] | None:
    """The gap between running and batch statistics of every batch-reused group (see the
    module's docstring); None for a model that reuses no BatchNorm batch statistics.
    ``x``: training images preprocessed as the trainer's input, at least two batches."""
    groups = batch_reused_groups(model)
    if not groups:
        return None
    batch_size = min(batch_size, len(x) // 2)
    if batch_size < 2:
        raise ValueError(f"bn_gap needs at least 4 training images, got {len(x)}")
    layers = list(dict.fromkeys(g.source for g in groups))
    stats = _batch_stats(model, x, batch_size, seed, layers)
    w = model.classifier.weight.detach().double().cpu().numpy()
    rows, shift_total, spread_total = [], 0.0, 0.0
    for g in groups:
        bn = model.layers[g.source]
        running = (bn.running_mean if g.stat == "mean" else bn.running_var).detach().double().cpu().numpy()
        batches = torch.stack(stats[g.name]).numpy()  # B x size
        centre, spread = batches.mean(0), batches.std(0)
        z = np.divide(np.abs(running - centre), spread, out=np.full_like(spread, np.nan), where=spread > 0)
        wg = w[:, g.slice]
        shift, wobble = (running[None] - batches) @ wg.T, (batches - centre[None]) @ wg.T  # B x K
        shift_total, spread_total = shift_total + shift, spread_total + wobble
        rows.append(
            {
                "name": g.name,
                "layer": g.source,
                "stat": g.stat,
                "size": g.size,
                "z_mean": None if np.isnan(z).all() else float(np.nanmean(z)),
                "z_max": None if np.isnan(z).all() else float(np.nanmax(z)),
                "relative": float(np.linalg.norm(running - centre) / max(np.linalg.norm(centre), 1e-30)),
                "logit_shift": _rms(shift),
                "logit_spread": _rms(wobble),
            }
        )
    return {
        "batches": len(stats[groups[0].name]),
        "batch_size": batch_size,
        "groups": rows,
        "logit_shift": _rms(shift_total),
        "logit_spread": _rms(spread_total),
    }


def render_bn_gap(gap: dict[str, Any], console) -> None:
    """The gap as a table with one row per reused group and a closing sentence."""
    table = Table(
        title=f"BatchNorm: running vs batch statistics ({gap['batches']} training batches of {gap['batch_size']})",
        title_justify="left",
        header_style="bold",
    )
    for name in ("group", "size", "z mean", "z max", "relative", "logit shift", "logit spread"):
        table.add_column(name, justify="left" if name == "group" else "right")
    for r in gap["groups"]:
        z = ["–" if r[k] is None else f"{r[k]:.2f}" for k in ("z_mean", "z_max")]
        table.add_row(
            r["name"], str(r["size"]), *z, f"{r['relative']:.3f}", f"{r['logit_shift']:.3f}", f"{r['logit_spread']:.3f}"
        )
    console.print(table)
    console.print(
        f"In evaluation the running statistics move the logits by {gap['logit_shift']:.3f} (RMS) against a "
        f"training batch's; from batch to batch in training they moved by {gap['logit_spread']:.3f}.",
        highlight=False,
        soft_wrap=True,
    )
