"""CLI command for whole studies: `study` (the comparison is `compare`, in compare.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from normscope import norms
from normscope.cli.common import console, user_errors

VARIANTS_HELP = f"all (the thesis' {len(norms.VARIANTS)}), or a comma-separated list of: " + ", ".join(
    norms.ALL_VARIANTS
)


@user_errors
def study(
    file: Path = typer.Argument(..., help="model description (.yml); its variants are trained"),
    variants: str = typer.Option("all", "--variants", help=VARIANTS_HELP),
    seeds: int = typer.Option(3, "--seeds", help="seeds per variant"),
    data: Optional[str] = typer.Option(None, "--data", help="data set (default: the description's train.data)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="override train.epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    subset: Optional[int] = typer.Option(None, "--subset", help="train on N (stratified) training images"),
    test_subset: Optional[int] = typer.Option(None, "--test-subset", help="evaluate on N test images"),
    parallel: int = typer.Option(1, "--parallel", help="runs trained at the same time"),
    out: Path = typer.Option(Path("studies"), "--out", help="parent directory of the study directory"),
    gpu: bool = typer.Option(False, "--gpu", help="train on the CUDA GPU"),
    device: str = typer.Option("auto", "--device"),
    attribute: bool = typer.Option(True, "--attribute/--no-attribute", help="attribute every reuse run"),
    samples: int = typer.Option(1000, "--samples", help="test images per attribution"),
):
    """Train every variant × seed (resuming an interrupted study), attribute, compare."""
    from normscope.study import run_study  # torch: only this command imports it

    if gpu:
        device = "cuda"
    study_dir = run_study(
        file,
        variants=variants,
        seeds=seeds,
        data=data,
        data_dir=data_dir,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        subset=subset,
        test_subset=test_subset,
        parallel=parallel,
        out=out,
        device=device,
        attribute=attribute,
        attribute_samples=samples,
        log=console.print,
    )
    typer.echo((study_dir / "table.md").read_text())
    typer.echo(f"study directory: {study_dir}  (normscope compare {study_dir})")


def register(app: typer.Typer) -> None:
    app.command()(study)
