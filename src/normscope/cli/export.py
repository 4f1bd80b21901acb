"""`normscope export`: a run's model or a description's to ONNX or a torch.export program."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from normscope.cli.common import ClassesOpt, InputOpt, NormOpt, ReuseOpt, console, parse_shape, user_errors
from normscope.errors import NormscopeError


@user_errors
def export(
    source: Path = typer.Argument(..., help="a run directory (its best.pt) or a model description (.yml)"),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx | pt2 (a torch.export program)"),
    out: Path = typer.Option(..., "--out", "-o", help="the file to write"),
    with_stats: bool = typer.Option(
        False,
        "--with-stats",
        help="a second output: the reused statistics (B, reused size), as the classifier reads them",
    ),
    norm: Optional[str] = NormOpt,
    reuse: Optional[bool] = ReuseOpt,
    input: Optional[str] = InputOpt,
    classes: Optional[int] = ClassesOpt,
    seed: int = typer.Option(0, "--seed", help="a description's weights: its initialization with this seed"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="a run's checkpoint: best | last"),
):
    """Write a model for other runtimes: the logits (and with --with-stats the reused statistics)
    of a batch of images of any size, in evaluation mode. ONNX needs `pip install 'normscope[onnx]'`."""
    # torch: only this command imports it
    from normscope.model.build import build_model
    from normscope.model.export import export_model

    if source.is_dir():
        from normscope.train.runs import load_run

        if norm is not None or reuse is not None or input or classes:
            raise NormscopeError("--norm, --reuse, --input and --classes apply to a description, not to a run")
        model = load_run(source, checkpoint=checkpoint).load_model(device="cpu")
    else:
        model = build_model(source, norm=norm, reuse=reuse, input_shape=parse_shape(input), classes=classes, seed=seed)
    result = export_model(model, out, fmt.lower(), with_stats=with_stats)
    console.print(
        f"wrote {result.path} ({result.format}): input image (batch, {', '.join(map(str, result.input_shape))}), "
        f"outputs {', '.join(result.outputs)}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(export)
