"""Static commands: `summary`, `variants`, `check`. They import no torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from normscope import norms
from normscope.cli.common import ClassesOpt, InputOpt, NormOpt, ReuseOpt, console, parse_shape, user_errors
from normscope.report.summary import composition, render_keras, render_rich, summarize


@user_errors
def summary(
    file: Path = typer.Argument(..., help="model description (.yml)"),
    norm: Optional[str] = NormOpt,
    reuse: Optional[bool] = ReuseOpt,
    input: Optional[str] = InputOpt,
    classes: Optional[int] = ClassesOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    keras: bool = typer.Option(False, "--keras", help="print in the layout of Keras' model.summary()"),
):
    """Layers, output shapes and parameter counts (Keras convention), and the classifier input."""
    s = summarize(file, norm=norm, reuse=reuse, input_shape=parse_shape(input), classes=classes)
    if as_json:
        sys.stdout.write(json.dumps(s.to_dict(), indent=2) + "\n")
    elif keras:
        sys.stdout.write(render_keras(s) + "\n")
    else:
        render_rich(s, console)


@user_errors
def variants(
    file: Path = typer.Argument(..., help="model description (.yml)"),
    input: Optional[str] = InputOpt,
    classes: Optional[int] = ClassesOpt,
    as_json: bool = typer.Option(False, "--json"),
):
    """Every normalization variant of a description (the study's default seven and the rest), with their sizes."""
    rows = []
    for key in norms.ALL_VARIANTS:
        norm, reuse = norms.parse_variant(key)
        s = summarize(file, norm=norm, reuse=reuse, input_shape=parse_shape(input), classes=classes)
        rows.append(
            {
                "variant": key,
                "name": s.name,
                "total_params": s.total_params,
                "trainable_params": s.trainable_params,
                "non_trainable_params": s.non_trainable_params,
                "classifier_input": sum(s.classifier_inputs.values()),
                "composition": composition(s),
                "short": _short_composition(s),
            }
        )
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"variants of {file}", title_justify="left", header_style="bold")
    for col in ("variant", "name", "total params", "trainable", "non-trainable", "classifier input"):
        table.add_column(col, justify="right" if "param" in col or col in ("trainable", "non-trainable") else "left")
    for r in rows:
        table.add_row(
            r["variant"],
            r["name"],
            f"{r['total_params']:,}",
            f"{r['trainable_params']:,}",
            f"{r['non_trainable_params']:,}",
            r["short"],
        )
    console.print(table)


def _short_composition(s) -> str:
    feats = s.classifier_inputs.get("features", 0)
    total = sum(s.classifier_inputs.values())
    return str(total) if total == feats else f"{feats} + {total - feats} = {total}"


@user_errors
def check(files: list[Path] = typer.Argument(..., help="model descriptions to validate")):
    """Validate descriptions (every variant); exit 2 at the first error."""
    for f in files:
        s = summarize(f)
        console.print(f"[green]ok[/] {f}: {s.name}, {s.total_params:,} params")


def register(app: typer.Typer) -> None:
    for command in (summary, variants, check):
        app.command()(command)
