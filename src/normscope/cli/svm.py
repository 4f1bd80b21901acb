"""CLI command `svm` (registered on the shared typer app): a linear SVM on a features file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from normscope.cli.common import console, user_errors
from normscope.errors import NormscopeError


@user_errors
def svm_cmd(
    features: Path = typer.Argument(..., help="a .npz written by `normscope features` (train, val and test splits)"),
    c: Optional[str] = typer.Option(
        None, "--c", help="comma-separated C values to choose from on the validation split (default: 0.001,...,10)"
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="the JSON written (default: svm.json beside FEATURES)"),
    seed: int = typer.Option(0, "--seed", help="LinearSVC's random_state"),
):
    """Fit a linear SVM (scikit-learn's LinearSVC on standardized features) for each C, keep the
    C with the best validation accuracy, and write its metrics per split, as a run's
    results.json holds them, to svm.json beside the features (docs/transfer.md)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise NormscopeError("normscope svm needs scikit-learn: pip install 'normscope[svm]'") from None
    from normscope.analysis.svm import DEFAULT_CS, SCALARS, fit_svm

    cs = DEFAULT_CS if c is None else _parse_cs(c)
    result = fit_svm(features, cs, seed=seed)
    path = result.save(out)
    table = Table(title=f"LinearSVC on {result.layer or features.name}: C = {result.C:g}", title_justify="left")
    table.add_column("metric")
    splits = [s for s in ("train", "val", "test") if getattr(result, s)]
    for split in splits:
        table.add_column(f"{split} (n={getattr(result, split)['n']:,})", justify="right")
    for key in SCALARS:
        table.add_row(key, *(f"{getattr(result, s)[key]:.4f}" for s in splits))
    console.print(table)
    grid = ", ".join(f"C {g['C']:g}: {g['val_accuracy']:.4f}" for g in result.grid)
    console.print(f"validation accuracy by C: {grid}", highlight=False, soft_wrap=True)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _parse_cs(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NormscopeError(f"--c must be comma-separated numbers, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise NormscopeError(f"--c values must be positive numbers, got {text!r}")
    return values


def register(app: typer.Typer) -> None:
    app.command("svm")(svm_cmd)
