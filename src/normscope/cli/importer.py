"""`normscope import`: a PyTorch model (torchvision:NAME or module.path:Attr) traced into a
model description; and the helper that lets draw, summary and variants take such a source
directly. Importing torch happens only when a source names a model."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import typer
import yaml

from normscope.cli.common import InputOpt, console, parse_shape, user_errors
from normscope.fileio import atomic_write

SOURCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def is_model_source(source) -> bool:
    """`torchvision:resnet18` or `mypkg.models:Net`, and no such file."""
    return SOURCE.fullmatch(str(source)) is not None and not Path(str(source)).exists()


def _describe(source: str, input_shape) -> str:
    from normscope.model.importer import describe  # torch: only for a model source

    doc = describe(source, input_shape)
    header = f"# {doc['description']}; edit freely (docs/dsl.md)\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def model_source(file, input: Optional[str] = None):
    """`file` itself, or for a model source the path of its description, written to a
    temporary directory removed when the command ends."""
    if not is_model_source(file):
        return file
    text = _describe(str(file), parse_shape(input))
    tmp = Path(tempfile.mkdtemp(prefix="normscope-import-"))
    atexit.register(shutil.rmtree, tmp, True)
    name = re.sub(r"\W", "_", str(file).partition(":")[2]).lower()
    return atomic_write(tmp / f"{name}.yml", text)


@user_errors
def import_cmd(
    source: str = typer.Argument(..., help="torchvision:NAME or module.path:Attr (a class or function)"),
    input: Optional[str] = InputOpt,
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="the description to write (default: print it)"),
):
    """Trace a PyTorch model (torch.fx) into a model description, norm layers as `norm` slots."""
    if not SOURCE.fullmatch(source):
        raise typer.BadParameter(f"'{source}' is not torchvision:NAME or module.path:Attr", param_hint="SOURCE")
    text = _describe(source, parse_shape(input))
    if out is None:
        typer.echo(text, nl=False)
        return
    console.print(f"[green]wrote[/] {atomic_write(out, text)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
