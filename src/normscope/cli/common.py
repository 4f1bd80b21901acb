"""What every command of the CLI shares: consoles, the user-error wrapper, common options."""

from __future__ import annotations

import functools
import os
import sys

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from normscope import norms
from normscope.errors import NormscopeError

# a pipe or a log file gets wide tables rather than rich's 80-column default
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def warn_block(message: str, title: str = "warning") -> None:
    """A loud warning on stderr: a red-bordered panel, not one line among others."""
    from rich.panel import Panel

    err_console.print(Panel(escape(message), title=f"[bold red]{escape(title)}[/]", border_style="red"))


def print_weights_report(report, out: Console | None = None) -> None:
    """What a load of pretrained weights did (on ``out``, default stderr), and the loud warning
    when layers stay random although the weights had layers for them."""
    (out or err_console).print(str(report), highlight=False, markup=False, soft_wrap=True)
    warning = report.warning()
    if warning:
        warn_block(warning, "pretrained layers left random")


def fail(message: str, code: int = 2):
    """One line on stderr, then exit: 2 for bad input, 1 for an environment failure."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def debugging() -> bool:
    """NORMSCOPE_DEBUG=1 lets errors through with their traceback (for bug reports)."""
    return os.environ.get("NORMSCOPE_DEBUG", "") not in ("", "0")


def user_errors(fn):
    """Errors end as one line and an exit status, never a traceback: bad input (a
    NormscopeError) 2, an environment failure (a full disk, a permission) 1, Ctrl-C 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NormscopeError as exc:
            _fail_or_raise(str(exc), 2)
        except KeyboardInterrupt:
            _fail_or_raise("interrupted", 130)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            _fail_or_raise(f"{exc.strerror or exc}{where}", 1)
        except MemoryError:
            _fail_or_raise("out of memory", 1)

    return wrapper


def _fail_or_raise(message: str, code: int):
    if debugging():
        raise
    fail(message, code)


NormOptionOpt = typer.Option(
    None,
    "--norm-option",
    help="override a normalization option, NORM.KEY=VALUE (repeatable), e.g. bn.reuse_stats=image or gn.groups=8",
)


def parse_norm_options(items: list[str] | None) -> dict | None:
    """['bn.reuse_stats=image', ...] -> {'bn': {'reuse_stats': 'image'}}; values read as YAML scalars."""
    if not items:
        return None
    out: dict[str, dict] = {}
    for item in items:
        key, eq, value = item.partition("=")
        norm, dot, option = key.partition(".")
        if not (eq and dot and norm and option and value):
            raise NormscopeError(f"--norm-option must be NORM.KEY=VALUE (e.g. bn.reuse_stats=image), got {item!r}")
        try:
            out.setdefault(norm, {})[option] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise NormscopeError(f"--norm-option {item!r}: the value is not a plain value") from None
    return out


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
