"""Run directories: one per training run, everything needed to inspect, evaluate or
resume it.

Layout (file names are the constants below)::

    runs/<name>/
      description.yml     the resolved model description (input, classes and the effective
                          `train:` settings filled in): `normscope train` on it reproduces the run
      config.json         data set, splits, normalization statistics, device, precision ...
      env.json            versions, device, git commit, command line
      metrics.csv         per epoch: train/val loss and accuracy, lr, seconds
      last.pt             model + optimizer + RNG + history after the last finished epoch
      best.pt             model weights of the epoch with the best validation accuracy
      results.json        status, best epoch, parameter counts, test metrics of best.pt
      per_class.csv       per-class test accuracy of best.pt
      confusion_matrix.csv  test confusion matrix of best.pt (rows = true class)
      curves.png          training curves

Checkpoints hold only tensors and plain containers, are written atomically (temporary
file + ``os.replace``) and are read with ``torch.load(weights_only=True)``.

:func:`load_run` opens a run for analysis: ``run.model`` is the best checkpoint in eval
mode and ``run.split("train" | "val" | "test")`` the preprocessed images exactly as the
trainer saw them (before augmentation).
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import numpy
import torch

from normscope import __version__
from normscope.data.batches import Splits, to_input
from normscope.fileio import atomic_write, write_json
from normscope.model.build import build_model
from normscope.spec import load_spec
from normscope.train.config import CONFIG, RunConfig
from normscope.train.errors import RunError

DESCRIPTION = "description.yml"
ENV = "env.json"
METRICS = "metrics.csv"
LAST = "last.pt"
BEST = "best.pt"
RESULTS = "results.json"
PER_CLASS = "per_class.csv"
CONFUSION = "confusion_matrix.csv"
CURVES = "curves.png"

HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")

__all__ = [
    "DESCRIPTION",
    "CONFIG",
    "ENV",
    "METRICS",
    "LAST",
    "BEST",
    "RESULTS",
    "PER_CLASS",
    "CONFUSION",
    "CURVES",
    "HISTORY_COLUMNS",
    "Run",
    "RunConfig",
    "RunError",
    "load_run",
    "create_run_dir",
    "safe_name",
    "default_run_name",
    "save_checkpoint",
    "load_checkpoint",
    "repair_best",
    "write_json",
    "read_json",
    "write_text",
    "environment",
    "write_history",
    "read_history",
    "write_per_class",
    "write_confusion",
    "plot_curves",
]


# --------------------------------------------------------------------------- #
# Atomic writes
# --------------------------------------------------------------------------- #


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_checkpoint(path: Path, obj: dict) -> None:
    """torch.save ``obj`` (tensors and plain containers only) atomically."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated file, not a checkpoint, unsafe pickle content
        raise RunError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from exc


def repair_best(run_dir: Path, checkpoint: dict) -> None:
    """A kill between writing last.pt and best.pt leaves best.pt one improvement behind;
    given last.pt's ``checkpoint``, rewrite best.pt with the weights it should hold (those
    of last.pt when its epoch was the best one)."""
    best_path = Path(run_dir) / BEST
    if checkpoint["best_epoch"] == checkpoint["epoch"]:
        current = load_checkpoint(best_path)["epoch"] if best_path.is_file() else None
        if current != checkpoint["epoch"]:
            save_checkpoint(
                best_path,
                {
                    "model": checkpoint["model"],
                    "epoch": checkpoint["epoch"],
                    "val_accuracy": checkpoint["best_val_accuracy"],
                },
            )


# --------------------------------------------------------------------------- #
# Creating a run directory
# --------------------------------------------------------------------------- #


def safe_name(model_name: str, data: str) -> str:
    """``<model>-<data>`` usable as a directory name (``npz:path/x.npz`` -> ``npz-x``)."""
    if data.startswith("npz:"):
        data = "npz-" + Path(data[4:]).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{model_name}-{data}").strip("-")


def default_run_name(model_name: str, data: str, seed: int) -> str:
    """``<model>-<data>-s<seed>-<YYYYmmdd-HHMMSS>`` with file-system-safe parts."""
    return f"{safe_name(model_name, data)}-s{seed}-{datetime.now():%Y%m%d-%H%M%S}"


def create_run_dir(out: str | Path, name: str, unique: bool = True) -> Path:
    """Create ``out/name``. With ``unique`` an existing name gets a suffix ``-2``, ``-3``...;
    without it an existing non-empty directory is an error."""
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the output directory {out}: {exc}") from exc
    path = out / name
    k = 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            if not unique:
                if path.is_dir() and not any(path.iterdir()):
                    return path
                raise RunError(
                    f"{path} already exists; choose another --name or resume it with --resume {path}"
                ) from None
            k += 1
            path = out / f"{name}-{k}"


# --------------------------------------------------------------------------- #
# Environment
# --------------------------------------------------------------------------- #


def _git_commit(where: Path) -> dict:
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"commit": commit, "dirty": dirty}
    except Exception:
        return {"commit": None, "dirty": None}


def environment(device=None) -> dict:
    """Versions, device and git commit of the normscope source, for env.json."""
    env: dict[str, Any] = {
        "normscope": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu_threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    try:
        import torchvision  # optional and slow to import: only its version is wanted here

        env["torchvision"] = torchvision.__version__
    except Exception:
        env["torchvision"] = None
    dev = torch.device(device) if device is not None else torch.device("cpu")
    env["device"] = str(dev)
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        env["device_name"] = torch.cuda.get_device_name(idx)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        env["device_name"] = platform.processor() or platform.machine()
    env["git"] = _git_commit(Path(__file__).resolve().parent)
    return env


# --------------------------------------------------------------------------- #
# Tables and the curves
# --------------------------------------------------------------------------- #


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def write_history(path: Path, history: Iterable[dict]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HISTORY_COLUMNS)
    for row in history:
        w.writerow([_fmt(row.get(c)) for c in HISTORY_COLUMNS])
    write_text(path, buf.getvalue())


def read_history(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append({k: (None if v == "" else (int(v) if k == "epoch" else float(v))) for k, v in r.items()})
    return rows


def write_per_class(path: Path, class_names, per_class_accuracy, confusion) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "name", "support", "correct", "accuracy"])
    for i, name in enumerate(class_names):
        support = int(sum(confusion[i]))
        w.writerow([i, name, support, int(confusion[i][i]), _fmt(float(per_class_accuracy[i])) if support else ""])
    write_text(path, buf.getvalue())


def write_confusion(path: Path, class_names, confusion) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true \\ predicted", *class_names])
    for name, row in zip(class_names, confusion):
        w.writerow([name, *[int(v) for v in row]])
    write_text(path, buf.getvalue())


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    """Loss and accuracy per epoch (train and validation) and the learning rate, as PNG.
    Uses the Agg canvas directly: the global matplotlib backend is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: heavy, only for the curves
    from matplotlib.figure import Figure  # (as above)
    from matplotlib.ticker import MaxNLocator  # (as above)

    fig = Figure(figsize=(12, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    ep = [r["epoch"] for r in history]

    def series(key):
        pts = [(e, r.get(key)) for e, r in zip(ep, history) if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    for ax, what in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            xs, ys = series(f"{split}_{what}")
            if xs:
                ax.plot(xs, ys, style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
    xs, ys = series("lr")
    ax_lr.plot(xs, ys, "-", color="tab:gray")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate (end of epoch)")
    ax_lr.grid(alpha=0.3)
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


# --------------------------------------------------------------------------- #
# Loading a run
# --------------------------------------------------------------------------- #


class Run:
    """A finished (or running, or failed) run directory.

    Attributes: ``path``, ``config`` (config.json, a RunConfig), ``results`` (results.json),
    ``env``, ``history`` (metrics.csv rows), ``spec`` (the ModelSpec of description.yml),
    ``class_names``. ``model`` loads the chosen checkpoint (best by default) on ``device``
    in eval mode, once.
    """

    def __init__(self, path: Path, device="cpu", checkpoint: str = "best", data_dir=None):
        self.path = Path(path)
        self.device = device
        self.checkpoint = checkpoint
        self.data_dir = data_dir
        self.config = RunConfig.read(self.path)
        self.results = read_json(self.path / RESULTS) if (self.path / RESULTS).is_file() else {}
        self.env = read_json(self.path / ENV) if (self.path / ENV).is_file() else {}
        self.history = read_history(self.path / METRICS)
        self.spec = load_spec(self.path / DESCRIPTION)
        self._model = None
        self._splits = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def status(self) -> str:
        return self.results.get("status", "unknown")

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def build_model(self):
        """A fresh (untrained) model of this run, on CPU, in train mode."""
        return build_model(self.path / DESCRIPTION)

    def checkpoint_path(self, which: str | None = None) -> Path:
        which = which or self.checkpoint
        if which not in ("best", "last"):
            raise RunError(f"checkpoint must be 'best' or 'last', got {which!r}")
        return self.path / (BEST if which == "best" else LAST)

    def load_model(self, which: str | None = None, device=None):
        """The model with the weights of checkpoint ``which`` ('best' | 'last'), eval mode."""
        path = self.checkpoint_path(which)
        if not path.is_file():
            raise RunError(
                f"{self.path}: no {path.name} yet (status: {self.status}); the run has not finished an epoch"
            )
        ckpt = load_checkpoint(path)
        model = self.build_model()
        model.load_state_dict(ckpt["model"])
        return model.to(device or self.device).eval()

    @property
    def model(self):
        if self._model is None:
            self._model = self.load_model()
        return self._model

    def splits(self) -> Splits:
        """The run's data (uint8 images, labels, statistics) re-loaded exactly as in training."""
        if self._splits is None:
            self._splits = self.config.load_splits(self.data_dir, where=self.path)
        return self._splits

    def split(self, which: str, device=None):
        """``(x, y)`` of split ``which`` ('train' | 'val' | 'test'): x a float32 N x C x H x W
        tensor standardized with the training statistics, y int64 labels; exactly the
        trainer's input (without augmentation)."""
        s = self.splits()
        if which not in s.x:
            raise RunError(f"unknown split {which!r}; use train, val or test")
        dev = device or self.device
        mean, std = s.stat_tensors(dev)
        return to_input(s.images(which, dev), mean, std), torch.from_numpy(s.y[which]).to(dev)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.spec.name!r}, status={self.status!r})"


def load_run(run_dir: str | Path, device="cpu", checkpoint: str = "best", data_dir=None) -> Run:
    """Open a run directory (see the module docstring). ``data_dir`` overrides where the
    data set is looked for (e.g. on another machine)."""
    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    for needed in (CONFIG, DESCRIPTION):
        if not (path / needed).is_file():
            raise RunError(f"{path}: not a normscope run directory (no {needed})")
    return Run(path, device=device, checkpoint=checkpoint, data_dir=data_dir)
