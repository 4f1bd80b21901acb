"""CLI command `features` (registered on the shared typer app): a layer's activations to .npz."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from normscope.cli.common import NormOptionOpt, SetOpt, console, err_console, user_errors, variant_of, warn_block
from normscope.errors import NormscopeError


@user_errors
def features_cmd(
    source: Path = typer.Argument(..., help="a run directory (its best checkpoint) or a model description (.yml)"),
    layer: str = typer.Option(..., "--layer", help="the layer whose output is taken, e.g. fc2, dense1, pool"),
    out: Path = typer.Option(Path("features.npz"), "--out", help="the .npz written"),
    data: Optional[str] = typer.Option(
        None, "--data", help="data set (default: the run's, or the description's train.data)"
    ),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="where the data files are"),
    splits: str = typer.Option("train,val,test", "--splits", help="comma-separated: train, val, test"),
    weights: Optional[str] = typer.Option(
        None, "--weights", help="a description's weights: .pth or torchvision:NAME (default: its train.weights)"
    ),
    norm: Optional[str] = typer.Option(None, "--norm", help="a description's variant: its norm"),
    reuse: Optional[bool] = typer.Option(None, "--reuse/--no-reuse", help="a description's variant: reuse"),
    norm_option: Optional[list[str]] = NormOptionOpt,
    sets: Optional[list[str]] = SetOpt,
    subset: Optional[int] = typer.Option(None, "--subset", help="a class-stratified subset of N training images"),
    test_subset: Optional[int] = typer.Option(None, "--test-subset", help="... and of N test images"),
    normalize: Optional[str] = typer.Option(
        None, "--normalize", help="a description's inputs: imagenet | dataset | none (a run keeps its own)"
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="a run's checkpoint: best | last"),
    batch_size: int = typer.Option(256, "--batch-size", help="images per forward pass"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
):
    """Write the flattened activations of one layer, with the labels, for every image of each
    split: x_train, y_train, x_val, y_val, x_test, y_test (and layer, shape, class_names) in
    one .npz, e.g. for scikit-learn's LinearSVC (docs/transfer.md)."""
    from normscope.analysis.features import extract_features  # torch: only this command imports it

    if checkpoint not in ("best", "last"):
        raise NormscopeError(f"--checkpoint must be best or last, got {checkpoint!r}")
    _check_out(out, source)
    wanted = tuple(s.strip() for s in splits.split(",") if s.strip())
    model_source = source
    if sets or norm_option:
        if source.is_dir():
            raise NormscopeError(f"{source}: --set and --norm-option apply to descriptions; a run has its own model")
        model_source = variant_of(source, sets=sets, norm_option=norm_option)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def advance(split: str, done: int, total: int) -> None:
            if split not in tasks:
                tasks[split] = bar.add_task(f"{layer} · {split}", total=total)
            bar.update(tasks[split], completed=done)

        found = extract_features(
            model_source,
            layer,
            splits=wanted,
            data=data,
            data_dir=data_dir,
            subset=subset,
            test_subset=test_subset,
            norm=norm,
            reuse=reuse,
            weights=weights,
            checkpoint=checkpoint,
            batch_size=batch_size,
            device=device,
            progress=advance,
            normalize=normalize,
        )
    if found.weights is not None:
        err_console.print(str(found.weights), highlight=False, markup=False, soft_wrap=True)
    if found.warning:
        warn_block(found.warning, "features from random layers")
    path = found.save(out)
    width = next(iter(found.x.values())).shape[1]
    counts = ", ".join(f"{split} {len(found.y[split]):,}" for split in found.x)
    console.print(f"wrote {path}: layer {layer}, {width:,} values per image; {counts}", highlight=False, soft_wrap=True)


def _check_out(out: Path, source: Path) -> None:
    """--out is a file that can be written and is none of the run's own: refused before any work."""
    from normscope.train.runs import check_out_dir

    out = out.expanduser()
    if out.is_dir():
        raise NormscopeError(f"--out {out} is a directory; give the .npz file to write, e.g. {out / 'features.npz'}")
    run = source.expanduser().resolve()
    inside = (run / "config.json").is_file() and run in out.resolve().parents
    if inside and (out.suffix != ".npz" or out.name.startswith(".")):  # a run writes no .npz of its own
        raise NormscopeError(
            f"--out {out} would write over a file of the run {source}; write the features to an .npz "
            f"(e.g. --out {source / 'features.npz'})"
        )
    check_out_dir(out.parent, f"--out {out}: its directory")


def register(app: typer.Typer) -> None:
    app.command("features")(features_cmd)
