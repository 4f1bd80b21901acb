"""CLI commands for analysis (registered on the shared typer app): `attribute`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from normscope.cli.common import console, user_errors
from normscope.errors import NormscopeError
from normscope.fileio import jsonable


@user_errors
def attribute_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory (normscope train)"),
    split: str = typer.Option("test", "--split", help="test | val | train"),
    samples: int = typer.Option(1000, "--samples", help="images attributed (a seeded random subset; 0 = all)"),
    target: str = typer.Option("pred", "--target", help="the logit attributed: pred (predicted class) | label"),
    methods: Optional[list[str]] = typer.Option(
        None, "--methods", help="ig, logit, permutation, ablation (comma-separated or repeated; default all)"
    ),
    by_class: bool = typer.Option(False, "--by-class", help="also write attribution_per_class.csv"),
    baseline: str = typer.Option(
        "train-mean",
        "--baseline",
        help="IG / logit baseline: train-mean (mean classifier input over training images) | zero",
    ),
    baseline_samples: int = typer.Option(
        1000, "--baseline-samples", help="training images for the mean classifier input (0 = all)"
    ),
    steps: int = typer.Option(32, "--steps", help="Integrated Gradients steps"),
    repeats: int = typer.Option(5, "--repeats", help="permutations per group"),
    batch_size: int = typer.Option(256, "--batch-size", help="images per forward pass"),
    seed: int = typer.Option(0, "--seed", help="seed of the image sample and the permutations"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="where the run's data set is"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory for the output files (default: RUN_DIR)"),
    as_json: bool = typer.Option(False, "--json", help="print attribution.json to stdout instead of the table"),
):
    """How much the classifier relies on the reused statistics versus the features:
    Integrated Gradients, the exact logit decomposition, permutation and ablation per group
    of the classifier input. Writes attribution.json and attribution.png (and with
    --by-class attribution_per_class.csv) to the run directory."""
    from normscope import analysis as A  # torch: only this command imports it
    from normscope.train.settings import check_seed  # (as above)

    if split not in A.SPLITS:
        raise NormscopeError(f"--split must be test, val or train, got {split!r}")
    if target not in A.TARGETS:
        raise NormscopeError(f"--target must be pred or label, got {target!r}")
    if baseline not in A.BASELINES:
        raise NormscopeError(f"--baseline must be train-mean or zero, got {baseline!r}")
    if checkpoint not in ("best", "last"):
        raise NormscopeError(f"--checkpoint must be best or last, got {checkpoint!r}")
    for name, value, low in (
        ("--samples", samples, 0),
        ("--baseline-samples", baseline_samples, 0),
        ("--steps", steps, 1),
        ("--repeats", repeats, 1),
        ("--batch-size", batch_size, 1),
    ):
        if value < low:
            raise NormscopeError(f"{name} must be >= {low}, got {value}")
    check_seed(seed)
    wanted = A.parse_methods(methods)
    result = A.attribute_run(
        run_dir,
        split=split,
        samples=samples or None,
        baseline_samples=baseline_samples or None,
        seed=seed,
        device=device,
        checkpoint=checkpoint,
        data_dir=data_dir,
        out=out,
        by_class=by_class,
        target=target,
        methods=wanted,
        baseline=baseline,
        n_steps=steps,
        repeats=repeats,
        batch_size=batch_size,
    )
    if as_json:
        doc = {k: v for k, v in result.items() if k != "per_class"}
        sys.stdout.write(json.dumps(jsonable(doc), indent=2) + "\n")
        return
    A.report(result, console)


def register(app: typer.Typer) -> None:
    app.command("attribute")(attribute_cmd)
