"""What every command of the CLI shares: consoles, the user-error wrapper, common options."""

from __future__ import annotations

import functools
import sys

import typer
from rich.console import Console

from normscope import norms
from normscope.errors import NormscopeError

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


NormOpt = typer.Option(None, "--norm", help="override the description's norm: " + " | ".join(norms.NORM_CHOICES))
ReuseOpt = typer.Option(None, "--reuse/--no-reuse", help="override the description's reuse")
InputOpt = typer.Option(None, "--input", help="input shape C,H,W (for `input: auto` or to override)")
ClassesOpt = typer.Option(None, "--classes", help="number of classes (for `classes: auto` or to override)")
