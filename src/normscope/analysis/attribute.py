"""attribute(): the classifier input of the images, the baselines, then every measure on
the classifier input, the notes and the result (see docs/analysis.md)."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Sequence

import torch

from normscope.analysis import ablation, ig, logit, permutation
from normscope.analysis.common import BASELINES, CLASS_MEASURES, TARGETS, AttributionError, parse_methods
from normscope.analysis.inputs import classifier_inputs, classifier_outputs
from normscope.analysis.problem import Problem, Settings, Tally, make_problem
from normscope.norms import NORMS

#: method -> the function that fills its measures into the tally, in METHODS order
MEASURE_FUNCTIONS = {
    "ig": ig.measure,
    "logit": logit.measure,
    "permutation": permutation.measure,
    "ablation": ablation.measure,
}
#: the measures timed in the result's "seconds" (the logit decomposition takes no time worth listing)
TIMED = ("ig", "permutation", "ablation")


def attribute(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    baseline_x: torch.Tensor | None = None,
    baseline: str = "train-mean",
    target: str = "pred",
    methods: str | Sequence[str] | None = None,
    n_steps: int = 32,
    repeats: int = 5,
    seed: int = 0,
    batch_size: int = 256,
    by_class: bool = False,
    class_names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    z: torch.Tensor | None = None,
    baseline_z: torch.Tensor | None = None,
) -> dict[str, Any]:
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
    _check_arguments(baseline, target, n_steps, repeats, batch_size)
    settings = Settings(n_steps=n_steps, repeats=repeats, seed=seed, batch_size=batch_size)
    timing: dict[str, float] = {}
    notes: list[str] = []
    was_training = model.training
    model.eval()
    try:
        if device is None:
            device = next(model.parameters()).device
        t = time.perf_counter()
        z, out, y = _attributed_inputs(model, x, y, z, batch_size, device)
        if baseline_z is None and baseline_x is not None:
            baseline_z, _ = classifier_inputs(model, baseline_x, batch_size=batch_size, device=device)
        timing["forward"] = time.perf_counter() - t
        if baseline_z is None:
            baseline_z = z
            notes.append(
                "no training images given: the mean over the attributed images is the baseline and the ablation value"
            )
        zbar, z0 = _baselines(baseline_z, baseline)
        with _few_threads():
            p = make_problem(model, z, out, y, z0, zbar, target=target, by_class=by_class, settings=settings)
            tally = _measure(p, methods, timing)
            result = _result(p, tally, methods, target, notes)
            if by_class:
                result["per_class"] = _per_class_rows(p, tally, class_names)
    finally:
        model.train(was_training)
    result["baseline_images"] = int(len(baseline_z))
    timing["total"] = time.perf_counter() - t_start
    result["seconds"] = {k: round(v, 3) for k, v in timing.items()}
    return result


def _check_arguments(baseline: str, target: str, n_steps: int, repeats: int, batch_size: int) -> None:
    if baseline not in BASELINES:
        raise AttributionError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    if target not in TARGETS:
        raise AttributionError(f"target must be 'pred' or 'label', got {target!r}")
    if n_steps < 1 or repeats < 1 or batch_size < 1:
        raise AttributionError("n_steps, repeats and batch_size must be positive")


def _attributed_inputs(model, x, y, z, batch_size, device):
    """(z, outputs, labels) of the attributed images: the trunk on ``x``, or the given ``z``."""
    if z is None:
        z, out = classifier_inputs(model, x, batch_size=batch_size, device=device)
    else:
        z = z.detach().float().cpu()
        out = classifier_outputs(model, z)
    y = torch.as_tensor(y).long().cpu()
    if len(y) != len(z):
        raise AttributionError(f"{len(z)} images but {len(y)} labels")
    return z, out, y


def _baselines(baseline_z: torch.Tensor, baseline: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(zbar, z0): the mean classifier input (the ablation value) and the IG / logit baseline."""
    # in float64: the mean of identical values is exactly that value, so a group that
    # is constant (BatchNorm's running statistics in eval) gets exactly 0 attribution
    zbar = baseline_z.detach().cpu().double().mean(0).float()
    return zbar, zbar if baseline == "train-mean" else torch.zeros_like(zbar)


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


def _measure(p: Problem, methods: Sequence[str], timing: dict[str, float]) -> Tally:
    """Every measure of ``methods`` on every unit, after the completeness check."""
    tally = Tally(p)
    tally.checks["logit_completeness_max_error"] = logit.completeness_error(p)
    for method in methods:
        t = time.perf_counter()
        MEASURE_FUNCTIONS[method](p, tally)
        if method in TIMED:
            timing[method] = time.perf_counter() - t
    return tally


def _notes(p: Problem, tally: Tally) -> list[str]:
    """What the reader must know: an output activation, no reuse, constant statistics."""
    notes = []
    if p.act is not None:
        notes.append(
            "the classifier has an output activation: the logit decomposition and IG are of its pre-activation"
        )
    stats_groups = [u for u in p.groups if u.layer is not None]
    if not stats_groups:
        notes.append("this model does not reuse normalization statistics: the classifier sees the features only")
    constant = [u for u in stats_groups if tally.row(u)["constant"]]
    if constant:
        fixed = [NORMS[short] for short in dict.fromkeys(u.norm for u in constant) if not NORMS[short].per_image]
        why = "; ".join(f"{n.display}: {n.doc}" for n in fixed)
        notes.append(
            "constant over the images"
            + (f" ({why})" if why else "")
            + ": "
            + ", ".join(u.name for u in constant)
            + "; they act as a fixed bias (logit_offset): "
            "permutation and ablation cannot change them, and from the train-mean baseline their "
            "IG is exactly 0"
        )
    return notes


def _result(p: Problem, tally: Tally, methods: Sequence[str], target: str, notes: list[str]) -> dict[str, Any]:
    features_only = all(u.layer is None for u in p.groups)
    stats_row = tally.rows.get("total:statistics")
    return {
        "samples": p.n,
        "classifier_input_size": p.d,
        "target": target,
        "baseline": "train-mean" if torch.equal(p.z0, p.zbar) else "zero",
        "methods": list(methods),
        "n_steps": int(p.settings.n_steps) if "ig" in methods else None,
        "repeats": int(p.settings.repeats) if "permutation" in methods else None,
        "seed": int(p.settings.seed),
        "accuracy": p.base_acc,
        "loss": p.base_loss,
        "reuse": not features_only,
        "features_only": features_only,
        "stats_share": (0.0 if features_only else stats_row["ig_share"]) if "ig" in methods else None,
        "stats_logit_share": (0.0 if features_only else stats_row["logit_share"]) if "logit" in methods else None,
        "groups": [tally.row(u) for u in p.groups],
        "layers": [tally.row(u) for u in p.layers],
        "totals": [tally.row(u) for u in p.totals],
        "checks": tally.checks,
        "notes": notes + _notes(p, tally),
    }


def _per_class_rows(p: Problem, tally: Tally, class_names: Sequence[str] | None) -> list[dict[str, Any]]:
    """One row per (class, unit): the per-class measures (class = true label)."""
    names = list(class_names) if class_names is not None else None
    c = p.by_class
    class_acc = c.mean(p.base_correct_i)
    table = []
    for j, cls in enumerate(c.classes):
        for u in p.units:
            row = {
                "class": cls,
                "class_name": names[cls] if names and cls < len(names) else str(cls),
                "images": int(c.counts[j]),
                "accuracy": float(class_acc[j]),
                "unit": u.name,
                "level": u.level,
                "size": u.size,
            }
            for k in CLASS_MEASURES:
                v = tally.of_class(u).get(k)
                row[k] = None if v is None else float(v[j])
            table.append(row)
    return table
