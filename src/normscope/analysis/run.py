"""attribute_run(): the attribution of a run directory, written next to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from normscope.analysis.attribute import attribute
from normscope.analysis.bn_gap import batch_reused_groups, bn_gap
from normscope.analysis.common import SPLITS, AttributionError, attribution_stem
from normscope.analysis.inputs import run_inputs
from normscope.analysis.report import plot_attribution, report, write_attribution, write_per_class_csv
from normscope.train import Run, load_run, pick_device
from normscope.train.runs import check_out_dir


def attribute_run(
    run,
    split: str = "test",
    samples: int | None = 1000,
    baseline_samples: int | None = 1000,
    seed: int = 0,
    device=None,
    checkpoint: str = "best",
    data_dir=None,
    write: bool = True,
    out=None,
    by_class: bool = False,
    quiet: bool = True,
    console=None,
    **kwargs,
) -> dict[str, Any]:
    """:func:`attribute` on a run: ``run`` is a run directory or a loaded
    ``normscope.train.Run``. Uses its model (the ``checkpoint``), ``samples`` images of
    ``split`` (seeded subset; None/0 = all) and, as the baseline / ablation value, the mean
    classifier input over ``baseline_samples`` training images. With ``write`` it writes
    attribution.json and attribution.png (and attribution_per_class.csv with ``by_class``)
    to ``out`` (default: the run directory); ``result["files"]`` lists them. Unless
    ``quiet`` it prints the table to ``console``. Other keyword arguments go to
    :func:`attribute` (target, methods, baseline, n_steps, repeats, batch_size)."""
    run, dev = _loaded(run, device, checkpoint, data_dir)
    if split not in SPLITS:
        raise AttributionError(f"split must be test, val or train, got {split!r}")
    out_dir = Path(out) if out is not None else Path(run.path)
    if write:
        _make_dir(out_dir, "--out" if out is not None else "the run directory")
    model = run.model.to(dev)
    x, y, _ = run_inputs(run, split, samples, seed=seed, device=dev)
    bx, _, _ = run_inputs(run, "train", baseline_samples, seed=seed + 1, device=dev)
    result = attribute(
        model, x, y, baseline_x=bx, seed=seed, device=dev, by_class=by_class, class_names=run.class_names, **kwargs
    )
    result = {**_run_info(run, split), **result, "bn_gap": _bn_gap(run, model, seed, dev)}
    result["files"] = _write_files(out_dir, result, by_class) if write else []
    if not quiet:
        report(result, console)
    return result


GAP_BATCHES = 20  # training batches the BatchNorm gap is measured on


def _bn_gap(run: Run, model, seed: int, dev: torch.device) -> dict[str, Any] | None:
    """For a model that reuses BatchNorm batch statistics: how far its running statistics lie
    from the batch statistics of training batches (analysis/bn_gap.py); else None."""
    if not batch_reused_groups(model):
        return None
    batch_size = run.config.train.batch_size
    x, _, _ = run_inputs(run, "train", GAP_BATCHES * batch_size, seed=seed + 2, device=dev)
    return bn_gap(model, x, batch_size, seed=seed)


def _loaded(run, device, checkpoint: str, data_dir) -> tuple[Run, torch.device]:
    """(the Run, the device): ``run`` loaded onto the picked device unless it is a Run already."""
    if not isinstance(run, Run):
        dev = pick_device(device if device is not None else "auto")
        return load_run(run, device=dev, checkpoint=checkpoint, data_dir=data_dir), dev
    return run, torch.device(device) if device not in (None, "auto") else pick_device(device or "auto")


def _make_dir(out_dir: Path, what: str) -> None:
    """``out_dir`` made, and writable, before any work (a RunError naming it otherwise)."""
    check_out_dir(out_dir, what)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttributionError(f"cannot create {out_dir}: {exc}") from exc


def _run_info(run: Run, split: str) -> dict[str, Any]:
    """What attribution.json says about the run, ahead of the measures."""
    return {
        "run": str(run.path),
        "model": run.name,
        "checkpoint": getattr(run, "checkpoint", "best"),
        "data": run.config.get("data"),
        "split": split,
        "variant": {"norm": run.config.get("norm"), "reuse": run.config.get("reuse")},
    }


def _write_files(out_dir: Path, result: dict, by_class: bool) -> list[str]:
    """attribution.json, attribution.png and, with ``by_class``, attribution_per_class.csv; named
    by the methods, baseline, target and split where they are not the defaults
    (:func:`attribution_stem`: attribution-ig-zero.json, ...)."""
    stem = attribution_stem(result["methods"], result["baseline"], result["target"], result["split"])
    title = f"{result['model']}: reliance of the classifier ({result['split']}, {result['samples']} images)"
    files = [
        str(write_attribution(out_dir / f"{stem}.json", result)),
        str(plot_attribution(out_dir / f"{stem}.png", result, title=title)),
    ]
    if by_class:
        files.append(str(write_per_class_csv(out_dir / f"{stem}_per_class.csv", result)))
    return files
