"""The `normscope` command line: thin wrappers over the library.

User errors (NormscopeError) print one clear message and exit with status 2, no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from normscope.errors import NormscopeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="normscope: normalization layers and the reuse of their statistics in CNN classifiers.")
# a pipe or a log file gets wide tables rather than rich's 80-column default
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def fail(message: str, code: int = 2):
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(fn):
    """Turn NormscopeError into a clean message and exit status 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NormscopeError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", 130)
    return wrapper


def parse_shape(text: str | None) -> tuple | None:
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) not in (1, 3) or any(v <= 0 for v in shape):
        raise NormscopeError(f"--input must be C,H,W (positive integers), got '{text}'")
    return shape


NormOpt = typer.Option(None, "--norm", help="override the description's norm: none | bn | in | gdn")
ReuseOpt = typer.Option(None, "--reuse/--no-reuse", help="override the description's reuse")
InputOpt = typer.Option(None, "--input", help="input shape C,H,W (for `input: auto` or to override)")
ClassesOpt = typer.Option(None, "--classes", help="number of classes (for `classes: auto` or to override)")


@app.command()
@user_errors
def summary(file: Path = typer.Argument(..., help="model description (.yml)"),
            norm: Optional[str] = NormOpt, reuse: Optional[bool] = ReuseOpt,
            input: Optional[str] = InputOpt, classes: Optional[int] = ClassesOpt,
            as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
            keras: bool = typer.Option(False, "--keras", help="print in the layout of Keras' model.summary()")):
    """Layers, output shapes and parameter counts (Keras convention), and the classifier input."""
    from normscope.report.summary import render_keras, render_rich, summarize

    s = summarize(file, norm=norm, reuse=reuse, input_shape=parse_shape(input), classes=classes)
    if as_json:
        sys.stdout.write(json.dumps(s.to_dict(), indent=2) + "\n")
    elif keras:
        sys.stdout.write(render_keras(s) + "\n")
    else:
        render_rich(s, console)


@app.command()
@user_errors
def variants(file: Path = typer.Argument(..., help="model description (.yml)"),
             input: Optional[str] = InputOpt, classes: Optional[int] = ClassesOpt,
             as_json: bool = typer.Option(False, "--json")):
    """The seven normalization variants of a description, with their sizes."""
    from rich.table import Table

    from normscope.report.summary import composition, summarize
    from normscope.spec.dsl import VARIANTS

    rows = []
    for key in VARIANTS:
        norm, _, v2 = key.partition("_")
        s = summarize(file, norm=norm, reuse=bool(v2), input_shape=parse_shape(input), classes=classes)
        rows.append({"variant": key, "name": s.name, "total_params": s.total_params,
                     "trainable_params": s.trainable_params, "non_trainable_params": s.non_trainable_params,
                     "classifier_input": sum(s.classifier_inputs.values()), "composition": composition(s),
                     "short": _short_composition(s)})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"variants of {file}", title_justify="left", header_style="bold")
    for col in ("variant", "name", "total params", "trainable", "non-trainable", "classifier input"):
        table.add_column(col, justify="right" if "param" in col or col in ("trainable", "non-trainable") else "left")
    for r in rows:
        table.add_row(r["variant"], r["name"], f"{r['total_params']:,}", f"{r['trainable_params']:,}",
                      f"{r['non_trainable_params']:,}", r["short"])
    console.print(table)


def _short_composition(s) -> str:
    feats = s.classifier_inputs.get("features", 0)
    total = sum(s.classifier_inputs.values())
    return str(total) if total == feats else f"{feats} + {total - feats} = {total}"


@app.command()
@user_errors
def check(files: list[Path] = typer.Argument(..., help="model descriptions to validate")):
    """Validate descriptions (every variant); exit 2 at the first error."""
    from normscope.report.summary import summarize

    for f in files:
        s = summarize(f)
        console.print(f"[green]ok[/] {f}: {s.name}, {s.total_params:,} params")


def main():
    app()


# Commands of the other parts of the package register themselves here.
from normscope.cli import draw, train, analysis, study  # noqa: E402,F401

if __name__ == "__main__":
    # `python -m normscope.cli`: the commands registered on the imported module's app
    from normscope.cli import main as _main

    _main()
