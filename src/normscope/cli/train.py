"""CLI commands for training: `train`, `eval`, `data download`, `data info`
(registered on the shared typer app)."""

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
    NormOptionOpt,
    SetOpt,
    console,
    err_console,
    fail,
    print_weights_report,
    user_errors,
    variant_of,
)
from normscope.cli.settings import setting_options
from normscope.cli.static import print_description_diagnostics
from normscope.data import default_data_dir, download_cifar100
from normscope.errors import NormscopeError
from normscope.spec.settings import flag_settings

METRIC_LABELS = (
    ("loss", "loss"),
    ("accuracy", "accuracy"),
    ("precision", "precision@0.5"),  # Keras' Precision(): (image, class) pairs with p > 0.5
    ("recall", "recall@0.5"),
    ("auc", "AUC"),
    ("top5_accuracy", "top-5 accuracy"),
    ("macro_f1", "macro F1"),
)

DataDirOpt = typer.Option(
    None,
    "--data-dir",
    help="where the data files are (default: ~/.cache/normscope/data "
    "or $NORMSCOPE_DATA; Fashion-MNIST also /usr/share/datasets)",
)


@user_errors
@setting_options()
def train_cmd(
    file: Optional[Path] = typer.Argument(None, help="model description (.yml); omit with --resume"),
    data_dir: Optional[Path] = DataDirOpt,
    norm: Optional[str] = typer.Option(None, "--norm", help="variant: " + " | ".join(norms.NORM_CHOICES)),
    reuse: Optional[bool] = typer.Option(None, "--reuse/--no-reuse", help="variant: reuse the norm statistics"),
    norm_option: Optional[list[str]] = NormOptionOpt,
    sets: Optional[list[str]] = SetOpt,
    test_subset: Optional[int] = typer.Option(
        None, "--test-subset", help="evaluate on a stratified subset of N test images"
    ),
    fit_data: bool = typer.Option(
        False,
        "--fit-data",
        help="build the model for the data's input shape and class count even where the description fixes others",
    ),
    out: Path = typer.Option(Path("runs"), "--out", help="parent directory of the run directories"),
    name: Optional[str] = typer.Option(None, "--name", help="run directory name (default: model-data-seed-time)"),
    gpu: bool = typer.Option(False, "--gpu", help="train on the CUDA GPU (same as --device cuda)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bfloat16 autocast (default: on with CUDA)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory"),
    progress: str = typer.Option("auto", "--progress", help="auto | bar | log | none"),
    settings: dict = None,
):
    """Train a model description; writes a run directory under --out."""
    from normscope.train import TrainingFailed, train  # torch: only commands that train import it
    from normscope.train.errors import RunInterrupted  # (as above)

    opts = {k: v for k, v in locals().items() if k not in ("settings", "train", "TrainingFailed", "RunInterrupted")}
    device = _check_train_options(opts | settings)
    variant = None
    if resume is None:
        variant = variant_of(file, norm, reuse, sets, norm_option)
        print_description_diagnostics(variant)
    try:
        train(
            variant,
            data_dir=data_dir,
            out=out,
            name=name,
            test_subset=test_subset,
            device=device,
            fit_data=fit_data,
            amp=amp,
            progress=progress,
            resume=resume,
            **settings,
        )
    except TrainingFailed as exc:
        fail(f"training failed: {exc}", 1)
    except RunInterrupted as exc:  # Ctrl-C or SIGTERM: the command that continues the run
        fail(str(exc), 130)


def _check_train_options(opts: dict) -> str:
    """Refuse contradicting options; returns the device."""
    device, resume = opts["device"], opts["resume"]
    if opts["progress"] not in ("auto", "bar", "log", "none"):
        raise NormscopeError(f"--progress must be auto, bar, log or none, got {opts['progress']!r}")
    if opts["gpu"]:
        if device not in ("auto", "cuda") and not device.startswith("cuda"):
            raise NormscopeError(f"--gpu and --device {device} contradict each other")
        device = device if device.startswith("cuda") else "cuda"
    if resume is None:
        if opts["file"] is None:
            raise NormscopeError("give a model description (.yml), or --resume RUN_DIR")
        return device
    flags = {"FILE": "file", "--norm": "norm", "--reuse": "reuse", "--test-subset": "test_subset", "--name": "name"}
    flags |= {"--amp": "amp", "--set": "sets", "--norm-option": "norm_option"}
    flags |= {s.option: s.name for s in flag_settings() if s.name != "epochs"}
    clash = [flag for flag, key in flags.items() if opts[key] not in (None, [], ())] + (
        ["--fit-data"] if opts["fit_data"] else []
    )
    if clash:
        raise NormscopeError(
            f"--resume continues a run with its own settings; drop {', '.join(clash)} "
            "(only --epochs, --device/--gpu and --data-dir apply)"
        )
    return device


@user_errors
def eval_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    split: str = typer.Option("test", "--split", help="test | val | train"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    bn_stats: str = typer.Option(
        "running",
        "--bn-stats",
        help="running (BatchNorm's running statistics, as Keras evaluates) | batch (also evaluate with "
        "each batch's statistics, as in training, and show the gap)",
    ),
    weights: Optional[str] = typer.Option(
        None,
        "--weights",
        help="evaluate the run's model with these weights instead of its checkpoint (.pth or torchvision:NAME)",
    ),
):
    """Re-compute a run's metrics from its best checkpoint (test split by default)."""
    # torch: only commands that train import it
    from normscope.train import SCALAR_METRICS, runs
    from normscope.train.evaluate import BN_STATS, evaluate_run_bn_stats

    if split not in ("test", "val", "train"):
        raise NormscopeError(f"--split must be test, val or train, got {split!r}")
    if bn_stats not in BN_STATS:
        raise NormscopeError(f"--bn-stats must be running or batch, got {bn_stats!r}")
    modes = ("running",) if bn_stats == "running" else ("running", "batch")
    found = evaluate_run_bn_stats(run_dir, device, data_dir, split, checkpoint, modes, weights)
    if weights is not None:  # on stderr: --json keeps stdout one JSON object
        print_weights_report(found["running"]["weights_report"])
    note = _status_note(run_dir, runs)
    if note:  # on stderr too
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    scalars = {mode: {k: m[k] for k in SCALAR_METRICS} for mode, m in found.items()}
    if as_json:
        doc = scalars["running"] if len(modes) == 1 else scalars | {"gap": _gap(scalars)}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    recorded = {}
    results_path = run_dir / runs.RESULTS
    if results_path.is_file():
        recorded = runs.recorded_metrics(results_path, split) if checkpoint == "best" else {}
    which = "--weights" if weights is not None else f"{checkpoint} checkpoint"
    console.print(_eval_table(f"{run_dir} - {split} ({which})", scalars, recorded if weights is None else {}))


def _status_note(run_dir: Path, runs) -> str | None:
    """What to know about a run that is not complete (its process may have died while
    results.json still says running)."""
    status = runs.effective_status(run_dir)
    if status == "interrupted":
        return f"{run_dir} was interrupted; continue it with: normscope train --resume {run_dir}"
    if status == "running":
        owner = runs.lock.owner(run_dir) or {}
        return f"{run_dir} is still training (process {owner.get('pid', '?')} on {owner.get('host', '?')})"
    if status == "failed":
        return f"{run_dir} failed: {runs.read_json(run_dir / runs.RESULTS).get('message') or 'see results.json'}"
    return None


def _gap(scalars: dict[str, dict]) -> dict:
    """Batch statistics minus running statistics, per metric."""
    return {k: scalars["batch"][k] - v for k, v in scalars["running"].items()}


def _eval_table(title: str, scalars: dict[str, dict], recorded: dict) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("metric")
    both = len(scalars) > 1
    for header in ("running stats", "batch stats", "batch − running") if both else ("value",):
        table.add_column(header, justify="right")
    if recorded:
        table.add_column("results.json", justify="right")
    gap = _gap(scalars) if both else {}
    for key, label in METRIC_LABELS:
        row = [label, f"{scalars['running'][key]:.4f}"]
        if both:
            row += [f"{scalars['batch'][key]:.4f}", f"{gap[key]:+.4f}"]
        if recorded:
            row.append(f"{recorded[key]:.4f}" if recorded.get(key) is not None else "")
        table.add_row(*row)
    return table


data_app = typer.Typer(no_args_is_help=True, help="Data sets: download, inspect.")


@data_app.command("download")
@user_errors
def data_download(name: str = typer.Argument(..., help="cifar100"), data_dir: Optional[Path] = DataDirOpt):
    """Download a data set (CIFAR-100) where the internet is reachable."""

    key = name.lower().replace("_", "-")
    if key in ("cifar100", "cifar-100", "cifar100-coarse"):
        console.print(f"downloading CIFAR-100 into {data_dir or default_data_dir()} ...")
        path = download_cifar100(data_dir)
        console.print(f"[green]ok[/] {path}")
    elif key in ("fashion-mnist", "fashionmnist", "fmnist"):
        raise NormscopeError(
            "Fashion-MNIST is not downloaded by normscope: install Debian's package "
            "(apt-get install dataset-fashion-mnist) or put the four IDX .gz files in "
            "--data-dir"
        )
    else:
        raise NormscopeError(f"cannot download {name!r}; downloadable: cifar100")


@data_app.command("info")
@user_errors
def data_info(
    spec: str = typer.Argument(..., help="cifar100 | cifar100-coarse | fashion-mnist | npz:PATH | synthetic[:N]"),
    data_dir: Optional[Path] = DataDirOpt,
    validation: float = typer.Option(0.1, "--validation", help="validation fraction"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Sizes, image shape, classes and training statistics of a data set."""
    from normscope.data.batches import prepare_data  # torch: only commands that load data import it

    if not 0 <= validation < 1:
        raise NormscopeError("--validation must be in [0, 1)")
    s = prepare_data(spec, data_dir=data_dir, validation=validation)
    info = {
        "data": spec,
        "name": s.name,
        "input_shape": list(s.input_shape),
        "classes": s.num_classes,
        "train": len(s.y["train"]),
        "val": len(s.y["val"]),
        "test": len(s.y["test"]),
        "mean": [round(v, 4) for v in s.mean.tolist()],
        "std": [round(v, 4) for v in s.std.tolist()],
        "class_names": s.class_names,
    }
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    c, h, w = s.input_shape
    names = ", ".join(s.class_names[:12]) + (" ..." if len(s.class_names) > 12 else "")
    console.print(
        f"[bold]{spec}[/] ({s.name}): {h}x{w} images, {c} channel(s), {s.num_classes} classes\n"
        f"  train {info['train']:,}  val {info['val']:,}  test {info['test']:,}\n"
        f"  training mean {info['mean']}  std {info['std']} (on [0, 1])\n"
        f"  classes: {names}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
    app.add_typer(data_app, name="data")
