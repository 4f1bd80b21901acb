"""Attribution: how much does the classifier rely on the reused statistics?

The classifier of a normscope model is one linear layer whose input ``z`` is the
flattened features followed by every tapped norm layer's statistics
(``model.classifier_groups`` names the slices). :func:`attribute` measures, per group
of ``z``, per norm layer and for "features" versus "all statistics" together:

``ig``           Integrated Gradients (Captum ``LayerIntegratedGradients`` on
                 ``model.classifier`` with ``attribute_to_layer_input=True``) of the
                 target logit with respect to ``z``, from a baseline ``z0``; the share
                 of total |attribution| per group, and per dimension.
``logit``        The exact decomposition of the target logit: the classifier is linear,
                 so ``logit_t(z) - logit_t(z0) = sum_g w_t[g] . (z[g] - z0[g])``; the
                 share of |group contribution| and its mean signed value.
``permutation``  The drop in accuracy and rise in cross-entropy loss when a group is
                 shuffled across images (one permutation for all its dimensions).
``ablation``     The same when a group is replaced by its training mean.

Everything after the classifier input is the linear classifier, so the trunk (the
convolutional part) runs once per image; all measures are then computed on ``z``.
See docs/analysis.md for how to read the numbers and their limits.
"""

from __future__ import annotations

import contextlib
import csv
import io
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from normscope.errors import NormscopeError
from normscope.fileio import atomic_write, write_json

__all__ = ["METHODS", "BASELINES", "TARGETS", "attribute", "attribute_run", "run_inputs", "report",
           "classifier_inputs", "parse_methods",
           "render_table", "plot_attribution", "write_attribution", "write_per_class_csv",
           "features_only_message", "ATTRIBUTION_JSON", "ATTRIBUTION_PNG", "ATTRIBUTION_CSV"]

METHODS = ("ig", "logit", "permutation", "ablation")
BASELINES = ("train-mean", "zero")
TARGETS = ("pred", "label")

ATTRIBUTION_JSON = "attribution.json"
ATTRIBUTION_PNG = "attribution.png"
ATTRIBUTION_CSV = "attribution_per_class.csv"

#: the per-unit numbers, in the order of the JSON and the CSV
MEASURES = ("ig_share", "ig_share_per_dim", "ig_dim_ratio", "logit_share", "logit_contribution",
            "logit_offset", "permutation_accuracy_drop", "permutation_accuracy_drop_std",
            "permutation_loss_rise", "permutation_loss_rise_std", "ablation_accuracy_drop",
            "ablation_loss_rise")


class AttributionError(NormscopeError):
    """A bad argument to the attribution analysis."""


# --------------------------------------------------------------------------- #
# Units: the groups of the classifier input, per norm layer, features vs statistics
# --------------------------------------------------------------------------- #


@dataclass
class Unit:
    """A set of classifier-input dimensions that is measured together."""

    name: str
    level: str            # "group" | "layer" | "total"
    index: torch.Tensor   # int64 positions in the classifier input
    layer: str | None = None   # the norm layer a statistic comes from (None: features)
    stat: str | None = None    # mean | var | denominator (groups only)

    @property
    def size(self) -> int:
        return int(self.index.numel())


def _group_meta(model) -> dict[str, tuple[str | None, str | None]]:
    """group name -> (norm layer, statistic); None, None for the features."""
    meta = {}
    graph = getattr(model, "graph", None)
    for g in (graph.graph.get("classifier_groups", []) if graph is not None else []):
        meta[g["name"]] = (g["source"], g["stat"]) if g.get("stat") else (None, None)
    for name in model.classifier_groups:
        if name not in meta:
            layer, dot, stat = name.rpartition(".")
            meta[name] = (layer, stat) if dot and name != "features" else (None, None)
    return meta


def build_units(model) -> tuple[list[Unit], list[Unit], list[Unit]]:
    """(groups, layers, totals) of ``model``'s classifier input. ``totals`` is
    [features, statistics] when the model reuses statistics, else [features]."""
    meta = _group_meta(model)
    groups: list[Unit] = []
    for name, sl in model.classifier_groups.items():
        layer, stat = meta[name]
        groups.append(Unit(name, "group", torch.arange(sl.start, sl.stop), layer=layer, stat=stat))
    by_layer: OrderedDict[str, list[Unit]] = OrderedDict()
    for g in groups:
        if g.layer is not None:
            by_layer.setdefault(g.layer, []).append(g)
    layers = [Unit(name, "layer", torch.cat([g.index for g in gs]), layer=name)
              for name, gs in by_layer.items()]
    feats = [g for g in groups if g.layer is None]
    stats = [g for g in groups if g.layer is not None]
    totals = [Unit("features", "total", torch.cat([g.index for g in feats]))]
    if stats:
        totals.append(Unit("statistics", "total", torch.cat([g.index for g in stats])))
    return groups, layers, totals


# --------------------------------------------------------------------------- #
# The classifier input
# --------------------------------------------------------------------------- #


@torch.no_grad()
def classifier_inputs(model, x: torch.Tensor, batch_size: int = 256,
                      device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, logits)``: the classifier's input (N x D, float32, CPU) and the model's
    output for images ``x``, in eval mode, in batches of ``batch_size``."""
    clf = model.classifier
    device = torch.device(device) if device is not None else next(model.parameters()).device
    captured: list[torch.Tensor] = []
    hook = clf.register_forward_pre_hook(lambda mod, inp: captured.append(inp[0].detach().float().cpu()))
    was_training = model.training
    model.eval()
    outs = []
    try:
        for i in range(0, len(x), batch_size):
            outs.append(model(x[i:i + batch_size].to(device)).detach().float().cpu())
    finally:
        hook.remove()
        model.train(was_training)
    if not outs:
        raise AttributionError("no images to attribute")
    return torch.cat(captured), torch.cat(outs)


def _classifier_parts(model):
    """(W, b, act) of the classifier on CPU in float32; act is None for plain logits."""
    clf = model.classifier
    w = clf.weight.detach().float().cpu()
    b = clf.bias.detach().float().cpu() if clf.bias is not None else torch.zeros(w.shape[0])
    return w, b, getattr(clf, "act", None)


def parse_methods(methods: str | Iterable[str] | None) -> tuple[str, ...]:
    """'ig,permutation' or ['ig', ...] or None (= all) -> validated tuple in METHODS order."""
    if methods is None:
        return METHODS
    if isinstance(methods, str):
        methods = [methods]
    wanted = {m.strip().lower() for item in methods for m in item.split(",") if m.strip()}
    if "all" in wanted:
        return METHODS
    unknown = sorted(wanted - set(METHODS))
    if unknown or not wanted:
        raise AttributionError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; "
                               f"choose from {', '.join(METHODS)} (comma-separated) or all")
    return tuple(m for m in METHODS if m in wanted)


# --------------------------------------------------------------------------- #
# The measures
# --------------------------------------------------------------------------- #


def _integrated_gradients(model, z, z0, targets, n_steps, batch_size):
    """Captum LayerIntegratedGradients of the target logit w.r.t. the classifier input,
    from baseline z0, batched; returns (N x D attributions, max |convergence delta|)."""
    from captum.attr import LayerIntegratedGradients

    clf = model.classifier
    dev = clf.weight.device
    lig = LayerIntegratedGradients(clf, clf)
    parts, delta = [], 0.0
    for i in range(0, len(z), batch_size):
        zb = z[i:i + batch_size].to(dev)
        attr, d = lig.attribute(zb, baselines=z0.to(dev).expand_as(zb), target=targets[i:i + batch_size].to(dev),
                                n_steps=n_steps, internal_batch_size=len(zb) * n_steps,
                                attribute_to_layer_input=True, return_convergence_delta=True)
        if isinstance(attr, (tuple, list)):
            attr = attr[0]
        parts.append(attr.detach().float().cpu())
        delta = max(delta, float(d.detach().abs().max()))
    return torch.cat(parts), delta


@contextlib.contextmanager
def _few_threads():
    """The measures on the classifier input (on the CPU whatever the model's device,
    except IG on a GPU model) are many small operations: one thread
    runs them several times faster than two or more, which spin and wait on each other
    (measured: 2.4 s instead of 18 s for 1,000 images of vgg16_in_v2 on 2 busy cores)."""
    before = torch.get_num_threads()
    if before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before > 1:
            torch.set_num_threads(before)


def _outputs(pre: torch.Tensor, act) -> torch.Tensor:
    return act(pre) if act is not None else pre


def _loss_acc(out: torch.Tensor, y: torch.Tensor):
    """Per-image cross-entropy and correctness of outputs (logits)."""
    loss = F.cross_entropy(out, y, reduction="none")
    correct = (out.argmax(1) == y).float()
    return loss, correct


def attribute(model, x: torch.Tensor, y: torch.Tensor, *, baseline_x: torch.Tensor | None = None,
              baseline: str = "train-mean", target: str = "pred", methods: str | Sequence[str] | None = None,
              n_steps: int = 32, repeats: int = 5, seed: int = 0, batch_size: int = 256,
              by_class: bool = False, class_names: Sequence[str] | None = None,
              device: torch.device | str | None = None, z: torch.Tensor | None = None,
              baseline_z: torch.Tensor | None = None) -> dict[str, Any]:
    """Attribute the classifier's decisions on images ``x`` (labels ``y``) to the groups
    of its input. Returns a JSON-able dict (see docs/analysis.md), with ``stats_share``
    (the share of |IG| on all reused statistics together; 0 for a model without reuse)
    and ``groups``, ``layers``, ``totals`` lists of per-unit measures.

    ``baseline_x``: images (normally a sample of the training split) whose mean classifier
    input is the ablation value and, with ``baseline='train-mean'``, the IG / logit
    baseline; without it the mean over ``x`` is used (and said so in ``notes``).
    ``baseline='zero'`` takes z0 = 0 instead for IG and the logit decomposition.
    ``target``: 'pred' (the predicted class) or 'label' (the true class) is the logit
    attributed. ``methods``: any of ig, logit, permutation, ablation. ``repeats``:
    permutations per unit (averaged; the std is reported). ``z`` / ``baseline_z``:
    precomputed classifier inputs (skip the trunk).
    """
    t_start = time.perf_counter()
    methods = parse_methods(methods)
    if baseline not in BASELINES:
        raise AttributionError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    if target not in TARGETS:
        raise AttributionError(f"target must be 'pred' or 'label', got {target!r}")
    if n_steps < 1 or repeats < 1 or batch_size < 1:
        raise AttributionError("n_steps, repeats and batch_size must be positive")
    notes: list[str] = []
    was_training = model.training
    model.eval()
    try:
        if device is None:
            device = next(model.parameters()).device
        timing: dict[str, float] = {}
        t = time.perf_counter()
        if z is None:
            z, out = classifier_inputs(model, x, batch_size=batch_size, device=device)
        else:
            z = z.detach().float().cpu()
            with torch.no_grad():
                out = model.classifier(z.to(next(model.classifier.parameters()).device)).float().cpu()
        y = torch.as_tensor(y).long().cpu()
        if len(y) != len(z):
            raise AttributionError(f"{len(z)} images but {len(y)} labels")
        if baseline_z is None and baseline_x is not None:
            baseline_z, _ = classifier_inputs(model, baseline_x, batch_size=batch_size, device=device)
        timing["forward"] = time.perf_counter() - t
        if baseline_z is None:
            baseline_z = z
            notes.append("no training images given: the mean over the attributed images is the "
                         "baseline and the ablation value")
        # in float64: the mean of identical values is exactly that value, so a group that
        # is constant (BatchNorm's running statistics in eval) gets exactly 0 attribution
        zbar = baseline_z.detach().cpu().double().mean(0).float()
        z0 = zbar if baseline == "train-mean" else torch.zeros_like(zbar)
        with _few_threads():
            result = _measure(model, z, out, y, z0, zbar, target=target, methods=methods, n_steps=n_steps,
                              repeats=repeats, seed=seed, batch_size=batch_size, by_class=by_class,
                              class_names=class_names, timing=timing)
    finally:
        model.train(was_training)
    result["notes"] = notes + result["notes"]
    result["baseline_images"] = int(len(baseline_z))
    timing["total"] = time.perf_counter() - t_start
    result["seconds"] = {k: round(v, 3) for k, v in timing.items()}
    return result


def _measure(model, z, out, y, z0, zbar, *, target, methods, n_steps, repeats, seed, batch_size,
             by_class, class_names, timing) -> dict[str, Any]:
    w, b, act = _classifier_parts(model)
    groups, layers, totals = build_units(model)
    all_units = groups + layers + totals
    n, d = z.shape
    notes: list[str] = []
    if act is not None:
        notes.append("the classifier has an output activation: the logit decomposition and IG are "
                      "of its pre-activation")
    targets = out.argmax(1) if target == "pred" else y
    base_loss_i, base_correct_i = _loss_acc(out, y)
    base_loss, base_acc = float(base_loss_i.double().mean()), float(base_correct_i.sum()) / n
    # per class (true label): sums over a class's images as one matrix product
    classes = [int(c) for c in torch.unique(y)] if by_class else []
    onehot = (y[:, None] == torch.tensor(classes, dtype=torch.long)[None, :]).float() if by_class else None
    counts = onehot.sum(0) if by_class else None

    def csum(v: torch.Tensor) -> torch.Tensor:
        return onehot.T @ v

    def cmean(v: torch.Tensor) -> torch.Tensor:
        return csum(v) / counts

    def cratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num))

    def key(u):
        return f"{u.level}:{u.name}"

    rows: dict[str, dict[str, Any]] = {}
    for u in all_units:
        values = z[:, u.index]
        row = {"name": u.name, "level": u.level, "layer": u.layer, "stat": u.stat, "size": u.size,
               "constant": bool(values.std(0).max() <= 1e-6 * (1.0 + values.abs().max())) if n > 1 else True}
        row.update({m: None for m in MEASURES})
        rows[key(u)] = row

    per_class: dict[str, dict[str, torch.Tensor]] = {key(u): {} for u in all_units}

    # w_t . (z - z0) per dimension: the exact decomposition of the target logit
    wt = w[targets]                                   # N x D
    contrib = wt * (z - z0)                           # N x D
    offset = wt * z0                                  # N x D: the baseline's own share of the logit
    checks: dict[str, float] = {}
    pre = z @ w.T + b
    pre0 = z0 @ w.T + b
    gap = pre.gather(1, targets[:, None])[:, 0] - pre0[targets]
    checks["logit_completeness_max_error"] = float((contrib.sum(1) - gap).abs().max())

    if "ig" in methods:
        t = time.perf_counter()
        attr, delta = _integrated_gradients(model, z, z0, targets, n_steps, batch_size)
        timing["ig"] = time.perf_counter() - t
        checks["ig_convergence_delta_max"] = delta
        checks["ig_minus_exact_max"] = float((attr - contrib).abs().max())
        mag = attr.abs()
        total = float(mag.sum())
        for u in all_units:
            r = rows[key(u)]
            share = float(mag[:, u.index].sum()) / total if total > 0 else 0.0
            r["ig_share"] = share
            r["ig_share_per_dim"] = share / u.size
            r["ig_dim_ratio"] = share * d / u.size
            if by_class:
                per_class[key(u)]["ig_share"] = cratio(csum(mag[:, u.index].sum(1)), csum(mag.sum(1)))

    if "logit" in methods:
        # shares over a partition: groups over groups, layers and totals over totals
        # (features + per-layer for the layer level)
        sums = {key(u): contrib[:, u.index].sum(1) for u in all_units}
        partitions = {"group": [key(u) for u in groups],
                      "layer": ["total:features"] + [key(u) for u in layers],
                      "total": [key(u) for u in totals]}
        for level, names in partitions.items():
            denom = sum(float(sums[k].abs().sum()) for k in names)
            denom_c = sum(csum(sums[k].abs()) for k in names) if by_class else None
            for k in names:
                r = rows[k]
                if not k.startswith(level + ":"):
                    continue  # the features' total-level share is the one reported
                r["logit_share"] = float(sums[k].abs().sum()) / denom if denom > 0 else 0.0
                if by_class:
                    per_class[k]["logit_share"] = cratio(csum(sums[k].abs()), denom_c)
        for u in all_units:
            rows[key(u)]["logit_contribution"] = float(sums[key(u)].mean())
            rows[key(u)]["logit_offset"] = float(offset[:, u.index].sum(1).mean())

    def evaluate(zmod_cols: torch.Tensor, u: Unit):
        """Loss and correctness per image with the columns of u replaced."""
        idx = u.index
        p = pre + (zmod_cols - z[:, idx]) @ w[:, idx].T
        return _loss_acc(_outputs(p, act), y)

    if "permutation" in methods:
        t = time.perf_counter()
        gen = torch.Generator().manual_seed(int(seed))
        perms = [torch.randperm(n, generator=gen) for _ in range(repeats)]
        for u in all_units:
            accs, losses = [], []
            corr_sum = torch.zeros(n)
            loss_sum = torch.zeros(n)
            for perm in perms:
                loss_i, corr_i = evaluate(z[perm][:, u.index], u)
                accs.append(float(corr_i.sum()) / n)
                losses.append(float(loss_i.mean()))
                corr_sum += corr_i
                loss_sum += loss_i
            r = rows[key(u)]
            r["permutation_accuracy_drop"] = base_acc - float(np.mean(accs))
            r["permutation_accuracy_drop_std"] = float(np.std(accs))
            r["permutation_loss_rise"] = float(np.mean(losses)) - base_loss
            r["permutation_loss_rise_std"] = float(np.std(losses))
            if by_class:
                per_class[key(u)]["permutation_accuracy_drop"] = cmean(base_correct_i - corr_sum / repeats)
                per_class[key(u)]["permutation_loss_rise"] = cmean(loss_sum / repeats - base_loss_i)
        timing["permutation"] = time.perf_counter() - t

    if "ablation" in methods:
        t = time.perf_counter()
        for u in all_units:
            loss_i, corr_i = evaluate(zbar[u.index].expand(n, -1), u)
            r = rows[key(u)]
            r["ablation_accuracy_drop"] = base_acc - float(corr_i.sum()) / n
            r["ablation_loss_rise"] = float(loss_i.mean()) - base_loss
            if by_class:
                per_class[key(u)]["ablation_accuracy_drop"] = cmean(base_correct_i - corr_i)
                per_class[key(u)]["ablation_loss_rise"] = cmean(loss_i - base_loss_i)
        timing["ablation"] = time.perf_counter() - t

    stats_groups = [u for u in groups if u.layer is not None]
    features_only = not stats_groups
    stats_row = rows.get("total:statistics")
    constant_stats = [u.name for u in stats_groups if rows[key(u)]["constant"]]
    if features_only:
        notes.append("this model does not reuse normalization statistics: the classifier sees the "
                     "features only")
    if constant_stats:
        notes.append("constant over the images (e.g. BatchNorm's running statistics in eval mode): "
                     + ", ".join(constant_stats) + "; they act as a fixed bias (logit_offset): permutation "
                     "and ablation cannot change them, and from the train-mean baseline their IG is "
                     "exactly 0")

    result: dict[str, Any] = {
        "samples": int(n),
        "classifier_input_size": int(d),
        "target": target,
        "baseline": "train-mean" if torch.equal(z0, zbar) else "zero",
        "methods": list(methods),
        "n_steps": int(n_steps) if "ig" in methods else None,
        "repeats": int(repeats) if "permutation" in methods else None,
        "seed": int(seed),
        "accuracy": base_acc,
        "loss": base_loss,
        "reuse": not features_only,
        "features_only": features_only,
        "stats_share": (0.0 if features_only else stats_row["ig_share"]) if "ig" in methods else None,
        "stats_logit_share": (0.0 if features_only else stats_row["logit_share"]) if "logit" in methods else None,
        "groups": [rows[key(u)] for u in groups],
        "layers": [rows[key(u)] for u in layers],
        "totals": [rows[key(u)] for u in totals],
        "checks": checks,
        "notes": notes,
    }
    if by_class:
        names = list(class_names) if class_names is not None else None
        table = []
        class_acc = cmean(base_correct_i)
        for j, c in enumerate(classes):
            for u in all_units:
                row = {"class": c, "class_name": names[c] if names and c < len(names) else str(c),
                       "images": int(counts[j]), "accuracy": float(class_acc[j]),
                       "unit": u.name, "level": u.level, "size": u.size}
                for k in ("ig_share", "logit_share", "permutation_accuracy_drop", "permutation_loss_rise",
                          "ablation_accuracy_drop", "ablation_loss_rise"):
                    v = per_class[key(u)].get(k)
                    row[k] = None if v is None else float(v[j])
                table.append(row)
        result["per_class"] = table
    return result


# --------------------------------------------------------------------------- #
# Output: message, table, JSON, CSV, chart
# --------------------------------------------------------------------------- #


def features_only_message(result: dict) -> str | None:
    if not result.get("features_only"):
        return None
    return ("This model does not reuse normalization statistics: its classifier sees the flattened "
            "features only, so all reliance is on the features (stats_share = 0).")


def _fmt(v, pct: bool = True, signed: bool = False) -> str:
    if v is None:
        return "–"
    if pct:
        return f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def render_table(result: dict, console, title: str | None = None) -> None:
    """The rich table: one row per group, then per norm layer, then features vs statistics."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold", show_lines=False)
    cols = [("group", "left"), ("size", "right"), ("IG share", "right"), ("IG/dim ×avg", "right"),
            ("logit share", "right"), ("logit Δ", "right"), ("perm Δacc", "right"),
            ("perm Δloss", "right"), ("ablate Δacc", "right"), ("ablate Δloss", "right")]
    for name, justify in cols:
        table.add_column(name, justify=justify)

    def add(r, label=None, style=None):
        table.add_row(label or r["name"] + (" (constant)" if r.get("constant") and r.get("layer") else ""),
                      str(r["size"]), _fmt(r["ig_share"]),
                      "–" if r["ig_dim_ratio"] is None else f"{r['ig_dim_ratio']:.2f}",
                      _fmt(r["logit_share"]), _fmt(r["logit_contribution"], pct=False, signed=True),
                      _fmt(r["permutation_accuracy_drop"], signed=True),
                      _fmt(r["permutation_loss_rise"], pct=False, signed=True),
                      _fmt(r["ablation_accuracy_drop"], signed=True),
                      _fmt(r["ablation_loss_rise"], pct=False, signed=True), style=style)

    for r in result["groups"]:
        add(r)
    if result["layers"]:
        table.add_section()
        for r in result["layers"]:
            add(r, label=f"{r['name']} (layer)")
    if len(result["totals"]) > 1:
        table.add_section()
        for r in result["totals"]:
            add(r, label=f"all {r['name']}", style="bold")
    from rich.measure import Measurement

    needed = Measurement.get(console, console.options.update_width(1000), table).maximum
    if needed > console.width and not console.is_terminal:
        # a pipe or a file: print the table whole rather than squeezed into 80 columns
        from rich.console import Console

        Console(file=console.file, width=needed, no_color=console.no_color,
                force_terminal=False).print(table)
    else:
        console.print(table)


def write_attribution(path: str | Path, result: dict) -> Path:
    """attribution.json, atomically (temporary file + os.replace). Per-class rows are
    left to the CSV."""
    path = Path(path)
    doc = {k: v for k, v in result.items() if k != "per_class"}
    write_json(path, doc)
    return path


def write_per_class_csv(path: str | Path, result: dict) -> Path:
    """One row per (class, unit): the per-class measures (class = true label)."""
    path = Path(path)
    rows = result.get("per_class") or []
    cols = ["class", "class_name", "images", "accuracy", "unit", "level", "size", "ig_share", "logit_share",
            "permutation_accuracy_drop", "permutation_loss_rise", "ablation_accuracy_drop",
            "ablation_loss_rise"]
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(cols)
    for r in rows:
        wr.writerow(["" if r.get(c) is None else (repr(r[c]) if isinstance(r[c], float) else r[c]) for c in cols])
    atomic_write(path, buf.getvalue())
    return path


def plot_attribution(path: str | Path, result: dict, title: str = "") -> Path:
    """Bar chart PNG: features versus statistics (left) and per norm layer (right), for
    the IG share, the logit share and the permutation / ablation accuracy drops. Uses the
    Agg canvas directly (the global matplotlib backend is left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    measures = [("ig_share", "IG share"), ("logit_share", "logit share"),
                ("permutation_accuracy_drop", "permutation Δacc"), ("ablation_accuracy_drop", "ablation Δacc")]
    measures = [(k, lbl) for k, lbl in measures
                if any(r.get(k) is not None for r in result["totals"] + result["layers"])]
    panels = [("features vs statistics", result["totals"])]
    feats = [r for r in result["totals"] if r["name"] == "features"]
    if result["layers"]:
        panels.append(("per norm layer", feats + result["layers"]))
    fig = Figure(figsize=(5 + 3.2 * (len(panels) - 1) + 0.35 * len(result["layers"]), 3.8), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    width = 0.8 / max(1, len(measures))
    for ax, (ptitle, rows) in zip(axes, panels):
        xs = np.arange(len(rows))
        for j, (k, lbl) in enumerate(measures):
            vals = [r.get(k) or 0.0 for r in rows]
            ax.bar(xs + (j - (len(measures) - 1) / 2) * width, vals, width, label=lbl)
        ax.set_xticks(xs)
        ax.set_xticklabels([r["name"] for r in rows], rotation=30 if len(rows) > 4 else 0, ha="right"
                           if len(rows) > 4 else "center")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(ptitle)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(min(0.0, min([r.get(k) or 0.0 for r in rows for k, _ in measures] + [0]) * 1.1), 1.0)
    axes[0].set_ylabel("share / accuracy drop")
    axes[-1].legend(fontsize=8, loc="upper right")
    msg = features_only_message(result)
    if title or msg:
        fig.suptitle(title + ("\n(features only: no reused statistics)" if msg else ""), fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())
    return Path(path)


# --------------------------------------------------------------------------- #
# A run directory
# --------------------------------------------------------------------------- #


def _sample_indices(n: int, samples: int | None, seed: int) -> np.ndarray:
    """All indices when ``samples`` is None/0 or >= n, else a seeded random subset (sorted)."""
    if not samples or samples >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=samples, replace=False))


def run_inputs(run, split: str, samples: int | None = None, seed: int = 0, device=None):
    """``(x, y, indices)``: ``samples`` images of a run's split (seeded subset; None/0 =
    all), preprocessed exactly as the trainer's input (``normscope.train.loop.to_input``)."""
    from normscope.train.loop import to_input

    s = run.splits()
    if split not in s.x:
        raise AttributionError(f"unknown split {split!r}; use test, val or train")
    n = len(s.y[split])
    if n == 0:
        raise AttributionError(f"{run.path}: the {split} split is empty")
    idx = _sample_indices(n, samples, seed)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    xu = torch.from_numpy(np.ascontiguousarray(s.x[split][idx])).permute(0, 3, 1, 2).contiguous().to(dev)
    mean, std = s.stat_tensors(dev)
    return to_input(xu, mean, std), torch.from_numpy(s.y[split][idx]).long(), idx


def attribute_run(run, split: str = "test", samples: int | None = 1000, baseline_samples: int | None = 1000,
                  seed: int = 0, device=None, checkpoint: str = "best", data_dir=None, write: bool = True,
                  out=None, by_class: bool = False, quiet: bool = True, console=None, **kwargs) -> dict[str, Any]:
    """:func:`attribute` on a run: ``run`` is a run directory or a loaded
    ``normscope.train.runs.Run``. Uses its model (the ``checkpoint``), ``samples`` images of
    ``split`` (seeded subset; None/0 = all) and, as the baseline / ablation value, the mean
    classifier input over ``baseline_samples`` training images. With ``write`` it writes
    attribution.json and attribution.png (and attribution_per_class.csv with ``by_class``)
    to ``out`` (default: the run directory); ``result["files"]`` lists them. Unless
    ``quiet`` it prints the table to ``console``. Other keyword arguments go to
    :func:`attribute` (target, methods, baseline, n_steps, repeats, batch_size)."""
    from normscope.train.runs import Run, load_run
    from normscope.train.loop import pick_device

    if not isinstance(run, Run):
        dev = pick_device(device if device is not None else "auto")
        run = load_run(run, device=dev, checkpoint=checkpoint, data_dir=data_dir)
    else:
        dev = torch.device(device) if device not in (None, "auto") else pick_device(device or "auto")
    if split not in ("test", "val", "train"):
        raise AttributionError(f"split must be test, val or train, got {split!r}")
    out_dir = Path(out) if out is not None else Path(run.path)
    if write:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AttributionError(f"cannot create {out_dir}: {exc}") from exc
    model = run.model.to(dev)
    x, y, _ = run_inputs(run, split, samples, seed=seed, device=dev)
    bx, _, _ = run_inputs(run, "train", baseline_samples, seed=seed + 1, device=dev)
    result = attribute(model, x, y, baseline_x=bx, seed=seed, device=dev, by_class=by_class,
                       class_names=run.class_names, **kwargs)
    info = {"run": str(run.path), "model": run.name, "checkpoint": getattr(run, "checkpoint", "best"),
            "data": run.config.get("data"), "split": split,
            "variant": {"norm": run.config.get("norm"), "reuse": run.config.get("reuse")}}
    result = {**info, **result}
    files: list[str] = []
    if write:
        files.append(str(write_attribution(out_dir / ATTRIBUTION_JSON, result)))
        files.append(str(plot_attribution(out_dir / ATTRIBUTION_PNG, result,
                                          title=f"{result['model']}: reliance of the classifier "
                                                f"({split}, {result['samples']} images)")))
        if by_class:
            files.append(str(write_per_class_csv(out_dir / ATTRIBUTION_CSV, result)))
    result["files"] = files
    if not quiet:
        report(result, console)
    return result


def report(result: dict, console=None) -> None:
    """Print the table, the stats_share (or the features-only statement), the notes and
    the files written."""
    if console is None:
        from rich.console import Console
        console = Console()
    title = (f"{result.get('model', 'model')}: {result.get('split', '')} {result['samples']} images, accuracy "
             f"{result['accuracy']:.3f}; target logit: {result['target']}; baseline: {result['baseline']}")
    render_table(result, console, title=title)
    message = features_only_message(result)
    if message:
        console.print(f"[bold]{message}[/]", highlight=False, soft_wrap=True)
    elif result["stats_share"] is not None:
        console.print(f"[bold]stats_share {result['stats_share']:.1%}[/]: share of |Integrated Gradients| on "
                      f"all reused statistics together (features {1 - result['stats_share']:.1%}).",
                      highlight=False, soft_wrap=True)
    for note in result["notes"]:
        if not note.startswith("this model does not reuse"):
            console.print(f"note: {note}", highlight=False, style="yellow", soft_wrap=True)
    if result.get("files"):
        console.print("wrote " + ", ".join(result["files"]), highlight=False, soft_wrap=True)
