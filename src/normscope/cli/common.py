"""What every command of the CLI shares: consoles, the user-error wrapper, common options."""

from __future__ import annotations

import functools
import os
import shlex
import sys
import warnings

import typer
from rich.console import Console
from rich.markup import escape
from rich.segment import Segment

from normscope import norms
from normscope.errors import NormscopeError
from normscope.fileio import visible


class VisibleConsole(Console):
    """A rich Console that writes control and bidirectional-override characters of the text
    it prints as escapes (fileio.visible): a name holding ESC [2J shows as \\x1b[2J instead of
    clearing the terminal. Rich's own styling and cursor codes are left as they are."""

    def _render_buffer(self, buffer):
        return super()._render_buffer(
            segment if segment.control else Segment(visible(segment.text), segment.style) for segment in buffer
        )


def _plain_flags() -> None:
    """Help shows a flag (`--json`, `--reuse/--no-reuse`, `--help`) without a value type:
    typer labels it `<bool>`, as if it took a value, which it does not."""
    option = getattr(getattr(typer, "core", None), "TyperOption", None)
    display = getattr(option, "display_type_rich", None)
    if display is None or getattr(display, "plain_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else display(self, ctx)

    display_type_rich.plain_flags = True
    option.display_type_rich = display_type_rich


_plain_flags()

# a pipe or a log file gets wide tables rather than rich's 80-column default
console = VisibleConsole(width=None if sys.stdout.isatty() else 140)
err_console = VisibleConsole(stderr=True, width=None if sys.stderr.isatty() else 140)


def echo(text: str) -> None:
    """typer.echo of text that may hold names from files, its control characters made visible."""
    typer.echo(visible(text))


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """normscope's own warnings (a guessed image layout) as one `warning:` line; others as Python shows them."""
    if category.__module__.startswith("normscope."):
        err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning, warnings.showwarning = warnings.showwarning, _show_warning


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


def resumable(fn):
    """For a command that continues where it stopped when run again (`study`): SIGTERM stops
    it as Ctrl-C does (a KeyboardInterrupt, so what it runs records `interrupted`), and the
    message names the command that continues it: this very command."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from normscope.train.errors import interrupt_signals  # torch: only commands that train

        try:
            with interrupt_signals():
                return fn(*args, **kwargs)
        except KeyboardInterrupt:
            _fail_or_raise("interrupted; continue with: normscope " + shlex.join(sys.argv[1:]), 130)

    return wrapper


def _fail_or_raise(message: str, code: int):
    if debugging():
        raise
    fail(message, code)


NormOptionOpt = typer.Option(
    None,
    "--norm-option",
    help="override a normalization option, NORM.KEY=VALUE (repeatable), e.g. bn.reuse_stats=image or gn.groups=8; "
    "short for --set norm_options.NORM.KEY=VALUE",
)
SetOpt = typer.Option(
    None,
    "--set",
    help="override the description by path, KEY=VALUE (repeatable; VALUE read as YAML): train.lr=3e-4, "
    "norm_options.bn.momentum=0.9, vars.drop=0.3, layers.conv3.filters=64",
)


def variant_of(file, norm=None, reuse=None, sets=None, norm_option=None):
    """The variant a command's options choose: the description, --norm, --reuse, --norm-option, --set."""
    from normscope.spec.variant import Variant

    return Variant.of(file, norm, reuse, sets=sets, norm_options=norm_option)


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
