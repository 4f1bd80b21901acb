"""Static commands: `summary`, `variants`, `check`. They import no torch. Also the
diagnostics `train` and `study` print before they start."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from normscope import norms
from normscope.cli.common import (
    ClassesOpt,
    InputOpt,
    NormOpt,
    NormOptionOpt,
    ReuseOpt,
    SetOpt,
    console,
    err_console,
    fail,
    parse_shape,
    print_weights_report,
    user_errors,
    variant_of,
    warn_block,
)
from normscope.cli.importer import model_source
from normscope.errors import NormscopeError
from normscope.model.diagnostics import diagnose_description
from normscope.report.summary import human_flops, not_counted, print_diagnostics, render_keras, render_rich, summarize
from normscope.report.variants import row as variant_row
from normscope.report.variants import variant_summaries
from normscope.spec.lint import lint


@user_errors
def summary(
    file: Path = typer.Argument(
        ..., help="model description (.yml), or a PyTorch model: torchvision:NAME, module:Attr"
    ),
    norm: Optional[str] = NormOpt,
    reuse: Optional[bool] = ReuseOpt,
    input: Optional[str] = InputOpt,
    classes: Optional[int] = ClassesOpt,
    norm_option: Optional[list[str]] = NormOptionOpt,
    sets: Optional[list[str]] = SetOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    keras: bool = typer.Option(False, "--keras", help="print in the layout of Keras' model.summary()"),
    weights: Optional[str] = typer.Option(
        None, "--weights", help="also match these weights (.pth or torchvision:NAME): what loads, what does not"
    ),
):
    """Layers, shapes, parameter counts (Keras convention), FLOPs, classifier input, diagnostics.

    FLOPs are per image (a multiply-add counts 2); diagnostics: docs/diagnostics.md."""
    variant = variant_of(model_source(file, input), norm, reuse, sets, norm_option)
    s = summarize(variant, input_shape=parse_shape(input), classes=classes)
    report = None if weights is None else _match_weights(variant, parse_shape(input), classes, weights)
    if as_json:
        doc = s.to_dict() | ({"weights": report.to_dict()} if report is not None else {})
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif keras:
        sys.stdout.write(render_keras(s) + "\n")
        print_diagnostics(s.diagnostics, err_console)
    else:
        render_rich(s, console)
    if report is not None and not as_json:
        print_weights_report(report, console)
    elif report is not None and report.warning():
        warn_block(report.warning(), "pretrained layers left random")


def _match_weights(variant, input_shape, classes, weights):
    """What loading ``weights`` into the variant's model loads and leaves at its initialization."""
    # torch only with --weights: the plain summary stays torch-free
    import torch

    from normscope.model.build import build_model
    from normscope.model.weights import match_weights

    with torch.device("meta"):  # shapes only: no memory, nothing drawn
        model = build_model(variant, input_shape=input_shape, classes=classes)
    return match_weights(model, weights)


@user_errors
def variants(
    file: Path = typer.Argument(
        ..., help="model description (.yml), or a PyTorch model: torchvision:NAME, module:Attr"
    ),
    input: Optional[str] = InputOpt,
    classes: Optional[int] = ClassesOpt,
    norm_option: Optional[list[str]] = NormOptionOpt,
    sets: Optional[list[str]] = SetOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON list, an object per variant"),
):
    """Every normalization variant of a description (the study's default seven and the rest), with their sizes.

    Also their FLOPs per image and the codes of their diagnostics."""
    rows, diagnosed = [], []
    base = variant_of(model_source(file, input), sets=sets, norm_option=norm_option)
    for key, s in variant_summaries(base, input_shape=parse_shape(input), classes=classes):
        rows.append(variant_row(key, s).to_dict())
        diagnosed += [(key, d) for d in s.diagnostics]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"variants of {file}", title_justify="left", header_style="bold")
    for col in ("variant", "name", "total params", "trainable", "non-trainable", "FLOPs", "classifier input"):
        right = "param" in col or col in ("trainable", "non-trainable", "FLOPs")
        table.add_column(col, justify="right" if right else "left")
    for r in rows:
        table.add_row(
            r["variant"],
            r["name"],
            f"{r['total_params']:,}",
            f"{r['trainable_params']:,}",
            f"{r['non_trainable_params']:,}",
            human_flops(r["total_flops"]).removesuffix("FLOPs").strip()
            + (" + not counted" if r["flops_not_counted"] else ""),
            r["short"],
        )
    console.print(table)
    for key, d in diagnosed:
        console.print(
            f"[bold yellow]diagnostic ({key}):[/] {d.code}: {', '.join(d.layers)}", highlight=False, soft_wrap=True
        )
    if diagnosed:
        console.print(f"(normscope summary {file} --norm NORM [--reuse] explains them)", highlight=False)


@user_errors
def check(
    files: list[Path] = typer.Argument(..., help="model descriptions to validate"),
    strict: bool = typer.Option(False, "--strict", help="diagnostics are errors (exit status 2)"),
    sets: Optional[list[str]] = SetOpt,
):
    """Validate descriptions: every error of each file (file:line), then its diagnostics.

    Exit status 2 when any file has an error; with --strict, diagnostics are errors too."""
    failed: list[str] = []
    for f in files:
        errors, s = _checked(f, sets)
        if errors:
            for message in errors:
                err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            failed.append(f"{f} ({len(errors)} error{'s' if len(errors) > 1 else ''})")
            continue
        if strict and s.diagnostics:
            print_diagnostics(s.diagnostics, err_console, " (error)")
            failed.append(f"{f} ({len(s.diagnostics)} diagnostic{'s' if len(s.diagnostics) > 1 else ''})")
            continue
        buildable = not any(d.code == "too-large" for d in s.diagnostics)
        status = "[green]ok[/]" if buildable else "[bold yellow]valid, too large to build here[/]"
        console.print(
            f"{status} {f}: {s.name}, {s.total_params:,} params, {human_flops(s.total_flops)}{not_counted(s)}"
        )
        print_diagnostics(s.diagnostics, console)
    if failed:
        fail(f"{'--strict: ' if strict else ''}{len(failed)} of {len(files)} files failed: {', '.join(failed)}")


def _checked(file: Path, sets=None):
    """(every independent error of the description (normscope.spec.lint), else the first
    error of its graph (shapes); its summary when there is none)."""
    try:
        found = lint(file)
        if found:
            return [str(e) for e in found], None
        return [], summarize(variant_of(file, sets=sets))
    except NormscopeError as exc:  # one file's problem does not stop the others
        return [str(exc)], None


def print_description_diagnostics(file: Path | None, norm=None, reuse=None, variants: str | None = None) -> None:
    """Before `train` or `study` starts: the diagnostics of the variant it trains (or, with
    `variants` — "all" or a comma-separated list — of each variant a study trains). Nothing
    for a model with none, or when the input shape or class count comes from the data."""
    if file is None:
        return
    keys = [None] if variants is None else norms.VARIANTS if variants == "all" else variants.split(",")
    for key in keys:
        if key is not None and key.strip() not in norms.ALL_VARIANTS:
            continue  # the study reports an unknown variant itself
        if key is not None:
            norm, reuse = norms.parse_variant(key.strip())
        found = diagnose_description(file, norm=norm, reuse=reuse)
        print_diagnostics(found or [], console, f" ({key.strip()})" if key is not None else "")


def register(app: typer.Typer) -> None:
    for command in (summary, variants, check):
        app.command()(command)
