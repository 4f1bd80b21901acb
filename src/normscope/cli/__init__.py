"""The `normscope` command line: thin typer commands over the library.

Each module registers its commands on the app; user errors (NormscopeError) print one
clear message and exit with status 2, no traceback.
"""

from __future__ import annotations

import typer

from normscope.cli import analysis, compare, draw, features, importer, report, static, study, svm, train
from normscope.version import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="normscope: normalization layers and the reuse of their statistics in CNN classifiers.",
)
for _module in (static, draw, importer, train, analysis, features, svm, study, compare, report):
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
) -> None:
    """normscope: normalization layers and the reuse of their statistics in CNN classifiers."""


def main():
    app()


if __name__ == "__main__":
    main()
