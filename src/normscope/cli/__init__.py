"""The `normscope` command line: thin typer commands over the library.

Each module registers its commands on the app; user errors (NormscopeError) print one
clear message and exit with status 2, no traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from normscope.cli import analysis, compare, draw, export, features, importer, report, static, study, svm, train
from normscope.cli.common import user_errors
from normscope.norms import load_plugins
from normscope.version import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="normscope: normalization layers and the reuse of their statistics in CNN classifiers.",
)
for _module in (static, draw, importer, train, analysis, features, svm, study, compare, report, export):
    _module.register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"normscope {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version and exit"
    ),
    plugin: Optional[List[Path]] = typer.Option(
        None,
        "--plugin",
        help="a Python file that registers normalizations (repeatable; also NORMSCOPE_PLUGINS, docs/plugins.md)",
    ),
) -> None:
    """normscope: normalization layers and the reuse of their statistics in CNN classifiers."""
    _load_plugins(plugin or [])


@user_errors
def _load_plugins(files: list[Path]) -> None:
    # exported to NORMSCOPE_PLUGINS: study workers and spawned processes load the same files
    load_plugins(files, export=True)


def main():
    app()


if __name__ == "__main__":
    main()
