"""Run directories: one per training run, everything needed to inspect, evaluate or
resume it.

Layout (file names are the constants of :mod:`normscope.rundir.layout`)::

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
      confusion.png       the test confusion matrix of best.pt, plotted
      tensorboard/        event files for TensorBoard (train.log: tensorboard)
      weights.json        what pretrained weights (train.weights) loaded and left random
      .lock               while a process trains here: its pid and host (normscope.rundir.lock)

Checkpoints hold only tensors and plain containers, are written atomically (temporary
file + ``os.replace``) and are read with ``torch.load(weights_only=True)``
(:mod:`normscope.train.checkpoint`). Every file is checked when it is read: a damaged one
is a RunError naming it and what to do (:func:`normscope.rundir.layout.advice`).
:func:`effective_status` is a run's status as it is (a run whose process died is
'interrupted', whatever results.json last said).

:func:`load_run` opens a run for analysis: ``run.model`` is the best checkpoint in eval
mode and ``run.split("train" | "val" | "test")`` the preprocessed images exactly as the
trainer saw them (before augmentation).
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy
import torch

from normscope.data.batches import Splits, to_input
from normscope.errors import SpecError, UnknownNorm
from normscope.fileio import safe_component, write_json
from normscope.model.build import build_model
from normscope.rundir import lock  # noqa: F401  (runs.lock: the run directory's lock)
from normscope.rundir.dirs import check_out_dir, effective_status, safe_name
from normscope.rundir.jsonfile import read_json, recorded_metrics, write_text
from normscope.rundir.layout import (
    BEST,
    CONFIG,
    CONFUSION,
    CURVES,
    DESCRIPTION,
    ENV,
    LAST,
    METRICS,
    PER_CLASS,
    RERUN,
    RESULTS,
    WEIGHTS,
    advice,
)
from normscope.spec import load_spec
from normscope.spec.provenance import git_state
from normscope.train.checkpoint import CHECKPOINT_KEYS, check_state, load_checkpoint, repair_best, save_checkpoint
from normscope.train.config import RunConfig
from normscope.train.errors import RunError
from normscope.train.tables import (
    HISTORY_COLUMNS,
    plot_curves,
    read_history,
    write_confusion,
    write_history,
    write_per_class,
)
from normscope.version import __version__

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
    "WEIGHTS",
    "HISTORY_COLUMNS",
    "Run",
    "RunConfig",
    "RunError",
    "load_run",
    "create_run_dir",
    "check_out_dir",
    "effective_status",
    "check_state",
    "safe_name",
    "default_run_name",
    "CHECKPOINT_KEYS",
    "save_checkpoint",
    "load_checkpoint",
    "advice",
    "repair_best",
    "write_json",
    "read_json",
    "recorded_metrics",
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


# --------------------------------------------------------------------------- #
# Creating a run directory
# --------------------------------------------------------------------------- #


def default_run_name(model_name: str, data: str, seed: int) -> str:
    """``<model>-<data>-s<seed>-<YYYYmmdd-HHMMSS>`` with file-system-safe parts, at most 80
    characters (a long model name is shortened, the seed and the time kept)."""
    suffix = f"-s{seed}-{datetime.now():%Y%m%d-%H%M%S}"
    return safe_name(model_name, data, 80 - len(suffix)) + suffix


def create_run_dir(out: str | Path, name: str, unique: bool = True) -> Path:
    """Create ``out/name``, ``name`` made one safe file-name component (fileio.safe_component:
    the run directory is always inside ``out``). With ``unique`` an existing name gets a
    suffix ``-2``, ``-3``...; without it an existing non-empty directory is an error."""
    out = Path(out).expanduser()
    check_out_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the output directory {out}: {exc.strerror}") from None
    name = safe_component(name)
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
                if (path / CONFIG).is_file() and (path / DESCRIPTION).is_file():
                    raise RunError(
                        f"{path} already exists: continue it with: normscope train --resume {path} "
                        "(or choose another --name)"
                    ) from None
                raise RunError(f"{path} already exists and is not a complete run: choose another --name") from None
            k += 1
            path = out / f"{name}-{k}"


# --------------------------------------------------------------------------- #
# Environment
# --------------------------------------------------------------------------- #


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
    try:  # its installed version, without importing it (slow: its models pull in torch's compiler)
        env["torchvision"] = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
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
    env["git"] = git_state()
    return env


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
        self.history = read_history(self.path / METRICS, advice(self.path / METRICS))
        self.spec = run_spec(self.path)
        self._model = None
        self._splits = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def status(self) -> str:
        """results.json's status, 'interrupted' where it says 'running' but its process died."""
        return effective_status(self.path)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def build_model(self):
        """A fresh model of this run, with the run's initial weights, on CPU, in train mode."""
        return build_model(self.path / DESCRIPTION, seed=self.config.train.seed)

    def checkpoint_path(self, which: str | None = None) -> Path:
        which = which or self.checkpoint
        if which not in ("best", "last"):
            raise RunError(f"checkpoint must be 'best' or 'last', got {which!r}")
        return self.path / (BEST if which == "best" else LAST)

    def load_model(self, which: str | None = None, device=None):
        """The model with the weights of checkpoint ``which`` ('best' | 'last'), eval mode."""
        path = self.checkpoint_path(which)
        if not path.is_file():
            if (self.path / LAST).is_file():
                raise RunError(f"{path}: missing; {advice(path)}")
            status = self.status
            why = {
                "interrupted": "the run was interrupted before its first epoch ended; continue it with: "
                f"normscope train --resume {self.path}",
                "running": "the run is still in its first epoch",
            }.get(status, f"the run ({status}) finished no epoch")
            raise RunError(f"{self.path}: no {path.name} yet: {why}")
        ckpt = load_checkpoint(path)
        model = self.build_model()
        check_state(model.state_dict(), ckpt["model"], path)
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
    check_run_dir(path)
    return Run(path, device=device, checkpoint=checkpoint, data_dir=data_dir)


def check_run_dir(path: Path) -> None:
    """RunError unless ``path`` is a run directory with its config.json and description.yml."""
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    have = [(path / needed).is_file() for needed in (CONFIG, DESCRIPTION)]
    if not any(have):
        raise RunError(f"{path}: not a normscope run directory (no {CONFIG}, no {DESCRIPTION})")
    for needed, there in zip((CONFIG, DESCRIPTION), have):
        if not there:
            raise RunError(f"{path / needed}: missing; {RERUN}")


def run_spec(path: Path):
    """The ModelSpec of a run's description.yml; a damaged one is a RunError saying so."""
    try:
        return load_spec(Path(path) / DESCRIPTION)
    except UnknownNorm:
        raise  # not damaged: its plugin is not loaded
    except SpecError as exc:
        raise RunError(f"{exc}; {RERUN}") from None
