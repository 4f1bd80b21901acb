"""normscope's trainer: one function, read top to bottom.

1. Settings   the description's `train:` section, command-line overrides, Keras defaults.
2. Data       load, check the model fits, carve the validation split, training statistics.
3. Device     the whole data set as uint8 on the device; crop and flip done there.
4. Model      build, freeze, optimizer with per-layer learning rates, lr schedule.
5. Epochs     train, validate, checkpoint (atomically), stop on NaN/inf.
6. Finish     test metrics of the best checkpoint, results.json, tables, curves.

The test split is never touched before step 6. On CUDA the forward/backward pass runs
under bfloat16 autocast with channels_last tensors, optionally ``torch.compile``d; on
CPU everything is float32 and the same seed gives identical numbers.

Python API: :func:`train` returns the run directory (see :mod:`normscope.train.runs`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from normscope.train import runs
from normscope.errors import NormscopeError, SpecError

__all__ = ["train", "evaluate_run", "prepare_data", "to_input", "Splits", "TrainingFailed",
           "KERAS_DEFAULTS", "resolve_settings", "make_optimizer", "lr_factor", "pick_device"]


class TrainingFailed(NormscopeError):
    """The run stopped (NaN/inf loss). ``run_dir`` holds the last good checkpoint and a
    results.json with status ``failed``."""

    def __init__(self, message: str, run_dir: Path | None = None):
        super().__init__(message)
        self.run_dir = run_dir


# --------------------------------------------------------------------------- #
# 1. Settings
# --------------------------------------------------------------------------- #

# What `lr: null` / `eps: null` mean for each optimizer: the defaults of tf.keras.
KERAS_DEFAULTS: dict[str, dict[str, Any]] = {
    "adam": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-7},
    "adamw": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.004},
    "sgd": {"lr": 1e-2},
    "rmsprop": {"lr": 1e-3, "rho": 0.9, "eps": 1e-7},
    "adagrad": {"lr": 1e-3, "eps": 1e-7, "initial_accumulator_value": 0.1},
    "adadelta": {"lr": 1e-3, "rho": 0.95, "eps": 1e-7},
}

OVERRIDABLE = ("epochs", "batch_size", "lr", "seed", "data", "subset", "compile")


def resolve_settings(spec, overrides: dict | None = None) -> dict:
    """The effective training settings: ``spec.train`` with ``overrides`` (None = keep)
    applied and the optimizer's Keras defaults filled in where the description left
    ``null``. Every value is plain data (it is written back into description.yml)."""
    t = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
         for k, v in spec.train.items()}
    for key, value in (overrides or {}).items():
        if key not in OVERRIDABLE:
            raise ValueError(f"cannot override train.{key}")
        if value is not None:
            t[key] = value
    for key in ("epochs", "batch_size"):
        if not isinstance(t[key], int) or t[key] <= 0:
            raise NormscopeError(f"{key} must be a positive integer, got {t[key]!r}")
    if t["subset"] is not None and t["subset"] <= 1:
        raise NormscopeError(f"subset must be at least 2 training images, got {t['subset']}")
    defaults = KERAS_DEFAULTS[t["optimizer"]]
    raw = (spec.document.get("train") or {}) if isinstance(spec.document, dict) else {}
    if t["lr"] is None:
        t["lr"] = defaults["lr"]
    t["lr"] = float(t["lr"])
    if t["lr"] <= 0:
        raise NormscopeError(f"the learning rate must be positive, got {t['lr']}")
    if t["eps"] is None and "eps" in defaults:
        t["eps"] = defaults["eps"]
    if t["betas"] is None and "betas" in defaults:
        t["betas"] = list(defaults["betas"])
    if "weight_decay" in defaults and "weight_decay" not in raw:
        t["weight_decay"] = defaults["weight_decay"]
    if t["betas"] is not None and (len(t["betas"]) != 2 or not all(0 <= b < 1 for b in t["betas"])):
        raise SpecError(f"train.betas must be two numbers in [0, 1), got {t['betas']}", file=spec.file)
    if t["optimizer"] == "sgd" and t["nesterov"] and t["momentum"] <= 0:
        raise SpecError("train.nesterov needs train.momentum > 0", file=spec.file)
    return t


def pick_device(device: str | None = "auto") -> torch.device:
    """'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N' or 'gpu'."""
    device = (device or "auto").lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "gpu":
        device = "cuda"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise NormscopeError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NormscopeError("--gpu / --device cuda: no CUDA GPU is available to PyTorch here "
                                 f"(torch {torch.__version__}); train on the CPU with --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NormscopeError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise NormscopeError(f"device {device!r} is not supported; use cpu or cuda")
    return dev


# --------------------------------------------------------------------------- #
# 2. Data
# --------------------------------------------------------------------------- #


@dataclass
class Splits:
    """uint8 NHWC images and int64 labels per split ('train', 'val', 'test') and the
    per-channel statistics of the training split on the [0, 1] scale."""

    name: str
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    class_names: list[str]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        _, h, w, c = self.x["train"].shape
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def stat_tensors(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        c = len(self.mean)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, c, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, c, 1, 1)
        return mean, std


def prepare_data(data: str, data_dir=None, subset: int | None = None, test_subset: int | None = None,
                 validation: float = 0.1, standardize: bool = True, split_seed: int = 0) -> Splits:
    """Load ``data``, optionally take a class-stratified subset, carve the validation
    split from the training images and compute the training split's channel statistics.

    Everything here depends on ``split_seed`` only (not on the training seed): runs with
    different seeds see the same training, validation and test images.
    """
    from normscope.data import channel_stats, load_dataset, split_validation, subset as take_subset

    ds = load_dataset(data, data_dir=data_dir, seed=split_seed)
    if subset is not None or test_subset is not None:
        ds = take_subset(ds, subset, test_subset, seed=split_seed)
    train_idx, val_idx = split_validation(ds.n_train, validation, seed=split_seed)
    if len(train_idx) == 0:
        raise NormscopeError(f"{data}: no training images left after the validation split")
    x = {"train": ds.x_train[train_idx], "val": ds.x_train[val_idx], "test": ds.x_test}
    y = {"train": ds.y_train[train_idx], "val": ds.y_train[val_idx], "test": ds.y_test}
    c = ds.input_shape[0]
    if standardize:
        mean, std = channel_stats(x["train"])
        std = np.where(std > 0, std, 1.0)
    else:  # plain [0, 1] scaling
        mean, std = np.zeros(c), np.ones(c)
    return Splits(name=ds.name, x=x, y={k: v.astype(np.int64) for k, v in y.items()},
                  mean=np.asarray(mean, dtype=np.float64), std=np.asarray(std, dtype=np.float64),
                  class_names=list(ds.class_names))


def fit_to_data(spec, splits: Splits, data: str, fit_data: bool) -> tuple[tuple, int, list[str]]:
    """(input_shape, classes) the model is built with, and notes for the log.

    `auto` in the description takes the data's value; a fixed value that differs from
    the data is an error unless ``fit_data`` (then the data's value wins, with a note)."""
    shape, classes = splits.input_shape, splits.num_classes
    problems, notes = [], []
    if spec.input_shape is not None and tuple(spec.input_shape) != shape:
        problems.append(f"the description's input is {_shape_str(spec.input_shape)} but the images "
                        f"of {data} are {_shape_str(shape)}")
    if spec.classes is not None and spec.classes != classes:
        problems.append(f"the description has {spec.classes} classes but {data} has {classes}")
    if problems and not fit_data:
        raise NormscopeError(f"{spec.file}: the model does not fit the data: {'; '.join(problems)}. "
                             "Set `input: auto` and `classes: auto` in the description to take them "
                             "from the data, or pass --fit-data.")
    for p in problems:
        notes.append(f"--fit-data: {p}; building the model for the data")
    return shape, classes, notes


def _shape_str(shape) -> str:
    return "x".join(str(v) for v in shape)


def to_input(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W -> float32, standardized with the training statistics. The one
    preprocessing function of normscope (the trainer and Run.split both use it)."""
    return (x_uint8.float() / 255.0 - mean) / std


# --------------------------------------------------------------------------- #
# 3. Data on the device, augmentation on the device
# --------------------------------------------------------------------------- #


class DeviceData:
    """Every split as a uint8 N x C x H x W tensor on the device (a quarter of float32's
    memory), labels as int64; the training images also zero-padded once for random crops."""

    def __init__(self, splits: Splits, device: torch.device, crop: int):
        self.device = device
        self.x = {k: torch.from_numpy(v).permute(0, 3, 1, 2).contiguous().to(device)
                  for k, v in splits.x.items()}
        self.y = {k: torch.from_numpy(v).to(device) for k, v in splits.y.items()}
        self.mean, self.std = splits.stat_tensors(device)
        self.crop = int(crop)
        self.train_padded = F.pad(self.x["train"], (crop,) * 4) if crop > 0 else None
        _, c, h, w = self.x["train"].shape
        self._rows = torch.arange(h, device=device)
        self._cols = torch.arange(w, device=device)
        self._chans = torch.arange(c, device=device)

    def n(self, split: str) -> int:
        return len(self.y[split])

    def train_batch(self, idx: torch.Tensor, offsets: torch.Tensor | None,
                    flips: torch.Tensor | None) -> torch.Tensor:
        """uint8 training images ``idx``, each cropped at its (dy, dx) offset inside the
        padded image and flipped where ``flips`` is True; one gather, one where."""
        if offsets is None:
            xb = self.x["train"][idx]
        else:
            rows = (offsets[:, 0:1] + self._rows)[:, None, :, None]      # B,1,H,1
            cols = (offsets[:, 1:2] + self._cols)[:, None, None, :]      # B,1,1,W
            xb = self.train_padded[idx[:, None, None, None], self._chans[None, :, None, None], rows, cols]
        if flips is not None:
            xb = torch.where(flips[:, None, None, None], xb.flip(3), xb)
        return xb


def epoch_order(n: int, seed: int, epoch: int, crop: int, flip: bool):
    """The permutation, crop offsets and flips of one epoch, from a generator seeded by
    (seed, epoch): an epoch is reproducible on its own, which makes resuming exact."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    perm = torch.randperm(n, generator=g)
    offsets = torch.randint(0, 2 * crop + 1, (n, 2), generator=g) if crop > 0 else None
    flips = torch.rand(n, generator=g) < 0.5 if flip else None
    return perm, offsets, flips


# --------------------------------------------------------------------------- #
# 4. Model, optimizer, schedule
# --------------------------------------------------------------------------- #


def param_groups(model, lr: float, lr_mult: dict | None, file=None) -> list[dict]:
    """One parameter group per learning-rate multiplier. A layer takes the multiplier of
    the first ``lr_mult`` pattern its name matches; frozen parameters are left out."""
    lr_mult = lr_mult or {}
    by_mult: dict[float, list] = {}
    seen: set[int] = set()
    used: set[str] = set()
    for name, module in model.layers.items():
        mult = 1.0
        for pattern, m in lr_mult.items():
            if fnmatch.fnmatchcase(name, pattern):
                mult = float(m)
                used.add(pattern)
                break
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                if p.requires_grad:
                    by_mult.setdefault(mult, []).append(p)
    for p in model.parameters():  # parameters outside model.layers (none today)
        if id(p) not in seen and p.requires_grad:
            by_mult.setdefault(1.0, []).append(p)
    unused = [p for p in lr_mult if p not in used]
    if unused:
        raise SpecError(f"train.lr_mult: no layer matches {', '.join(repr(u) for u in unused)}", file=file)
    if not by_mult:
        raise SpecError("nothing to train: every layer is frozen", file=file)
    return [{"params": ps, "lr": lr * m, "lr_mult": m} for m, ps in by_mult.items()]


def make_optimizer(model, t: dict, file=None) -> torch.optim.Optimizer:
    """The optimizer of ``t['optimizer']`` with Keras' defaults where the description
    left values open (see KERAS_DEFAULTS). Weight decay is L2 (coupled) except for AdamW."""
    groups = param_groups(model, t["lr"], t["lr_mult"], file=file)
    opt, lr, wd, d = t["optimizer"], t["lr"], t["weight_decay"], KERAS_DEFAULTS[t["optimizer"]]
    if opt == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(t["betas"]), eps=t["eps"], weight_decay=wd)
    if opt == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(t["betas"]), eps=t["eps"], weight_decay=wd)
    if opt == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=t["momentum"], nesterov=t["nesterov"], weight_decay=wd)
    if opt == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=d["rho"], eps=t["eps"], momentum=t["momentum"],
                                   weight_decay=wd)
    if opt == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, eps=t["eps"], weight_decay=wd,
                                   initial_accumulator_value=d["initial_accumulator_value"])
    if opt == "adadelta":
        return torch.optim.Adadelta(groups, lr=lr, rho=d["rho"], eps=t["eps"], weight_decay=wd)
    raise SpecError(f"unknown optimizer {opt!r}", file=file)  # validated by the DSL already


def lr_factor(step: int, total_steps: int, steps_per_epoch: int, t: dict) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    Linear warm-up over ``warmup_epochs``, then: none (constant), cosine (to 0 at the last
    step), step (x ``gamma`` every ``step_size`` epochs), onecycle (warm-up from 1/25 over
    the first 30% unless warmup_epochs is set, then cosine to 0)."""
    schedule = t["schedule"]
    warm = t["warmup_epochs"] * steps_per_epoch
    if schedule == "onecycle":
        warm = warm or max(1, round(0.3 * total_steps))
        if step < warm:
            return 0.04 + 0.96 * step / warm
    elif step < warm:
        return (step + 1) / warm
    if schedule == "step":
        return t["gamma"] ** ((step // steps_per_epoch) // max(1, t["step_size"]))
    if schedule in ("cosine", "onecycle"):
        span = max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, span) / span))
    return 1.0


def set_lr(optimizer, base_lr: float, factor: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = base_lr * g.get("lr_mult", 1.0) * factor


# --------------------------------------------------------------------------- #
# 5. Evaluation helpers
# --------------------------------------------------------------------------- #


def _autocast(device: torch.device, amp: bool):
    """bfloat16 autocast (on by default on CUDA; on the CPU only when asked for)."""
    if amp:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_logits(model, x_uint8: torch.Tensor, mean, std, batch_size: int = 1024,
                   amp: bool = False, channels_last: bool = False) -> torch.Tensor:
    """float32 logits of every image, in large batches, model in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    device = x_uint8.device
    for i in range(0, len(x_uint8), batch_size):
        xb = to_input(x_uint8[i:i + batch_size], mean, std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            out.append(model(xb).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    loss = F.cross_entropy(logits, y)
    correct = (logits.argmax(1) == y).sum()
    return float(loss), int(correct) / len(y)


def test_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """metrics.md's metrics of softmax(logits) (normscope.train.metrics)."""
    from normscope.train.metrics import classification_metrics

    probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
    return classification_metrics(probs, y.cpu().numpy())


SCALAR_METRICS = ("loss", "accuracy", "precision", "recall", "auc", "top5_accuracy", "macro_f1")


# --------------------------------------------------------------------------- #
# Progress: rich on a terminal, plain lines otherwise
# --------------------------------------------------------------------------- #


class Reporter:
    """Epoch and batch progress. ``mode``: 'bar' (rich), 'log' (one line per epoch),
    'none', or 'auto' (bar when stdout is a terminal, else log)."""

    def __init__(self, mode: str = "auto", stream=None):
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self._progress = None

    @property
    def live(self) -> bool:
        return self.mode == "bar"

    def note(self, text: str) -> None:
        if self.mode == "none":
            return
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def start(self, epochs: int, first_epoch: int, steps: int) -> None:
        if self.mode != "bar":
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                  console=Console(file=self.stream), transient=False)
        self._progress.start()
        self._epochs = self._progress.add_task("epochs", total=epochs, completed=first_epoch, info="")
        self._batches = self._progress.add_task("batches", total=steps, info="")

    def epoch_start(self, epoch: int) -> None:
        if self._progress is not None:
            self._progress.reset(self._batches, description=f"epoch {epoch}", info="")

    def batch(self, done: int, loss: float | None = None, acc: float | None = None) -> None:
        if self._progress is not None:
            info = "" if loss is None or acc is None else f"loss {loss:.4f}  acc {acc:.4f}"
            self._progress.update(self._batches, completed=done, info=info)

    def epoch_end(self, row: dict, epochs: int, best: bool) -> None:
        if self.mode == "none":
            return
        val = ("" if row["val_loss"] is None else
               f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}")
        line = (f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  loss {row['train_loss']:.4f}  "
                f"acc {row['train_accuracy']:.4f}{val}  lr {row['lr']:.3g}  {row['seconds']:.1f}s"
                f"{'  *best' if best else ''}")
        if self._progress is not None:
            self._progress.update(self._epochs, completed=row["epoch"])
        self.note(line)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #


def train(description=None, *, data: str | None = None, data_dir=None, out="runs", name: str | None = None,
          norm: str | None = None, reuse: bool | None = None, epochs: int | None = None,
          batch_size: int | None = None, lr: float | None = None, seed: int | None = None,
          subset: int | None = None, test_subset: int | None = None, device: str | None = "auto",
          fit_data: bool = False, compile: bool | None = None, amp: bool | None = None,
          channels_last: bool | None = None, eval_batch_size: int | None = None,
          progress: str = "auto", resume=None, callbacks: Sequence[Callable[[dict], None]] = ()) -> Path:
    """Train a model description and return its run directory.

    ``description``: a path or a ModelSpec. Settings come from its ``train:`` section;
    the keyword arguments override them (None = keep). ``data`` defaults to
    ``train.data``. ``norm``/``reuse`` pick the variant. ``fit_data`` builds a model with
    a fixed input/class count for a data set that differs. ``amp`` (bfloat16 autocast) and
    ``channels_last`` default to on for CUDA, off for CPU (where they can be asked for, mainly
    to exercise the GPU code path). ``subset``/``test_subset`` use
    class-stratified subsets of the training/test images. ``resume`` continues the run
    directory of a killed run (``epochs`` may extend it; everything else comes from the
    run). ``callbacks`` are called with each epoch's metrics row (plus ``train_seconds``,
    the training loop alone, and ``run_dir``) after its checkpoint is written. Raises TrainingFailed when the loss becomes NaN/inf (the run directory keeps
    the last good checkpoint, results.json says ``failed``).
    """
    reporter = Reporter(progress)
    if resume is not None:
        return _resume(Path(resume), epochs=epochs, device=device, data_dir=data_dir,
                       reporter=reporter, callbacks=callbacks)
    from normscope.spec import load_spec

    if description is None:
        raise NormscopeError("train needs a model description (or resume=RUN_DIR)")
    spec = load_spec(description, norm=norm, reuse=reuse)
    t = resolve_settings(spec, {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                                "data": data, "subset": subset, "compile": compile})
    if not t["data"]:
        raise NormscopeError(f"{spec.file}: no data set: pass --data (cifar100, fashion-mnist, "
                             "npz:PATH, synthetic) or set train.data in the description")
    if t["data"].startswith("npz:") and Path(t["data"][4:]).expanduser().exists():
        t["data"] = "npz:" + str(Path(t["data"][4:]).expanduser().resolve())  # found from anywhere later
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser().resolve()
    split_seed = 0
    splits = prepare_data(t["data"], data_dir=data_dir, subset=t["subset"], test_subset=test_subset,
                          validation=t["validation"], standardize=t["standardize"], split_seed=split_seed)
    input_shape, classes, notes = fit_to_data(spec, splits, t["data"], fit_data)
    dev = pick_device(device)
    cuda = dev.type == "cuda"

    # the resolved description: `normscope train description.yml` reproduces the run
    document = dict(spec.document)
    document.update({"input": list(input_shape), "classes": classes,
                     "train": {k: v for k, v in t.items() if v is not None}})
    document.pop("variants", None)
    config = {
        "source": str(spec.file) if spec.file else None, "name": spec.name, "family": spec.family,
        "variant": spec.variant, "norm": spec.norm, "reuse": spec.reuse,
        "data": t["data"], "data_name": splits.name, "data_dir": str(data_dir) if data_dir else None,
        "subset": t["subset"], "test_subset": test_subset, "validation": t["validation"],
        "standardize": t["standardize"], "split_seed": split_seed,
        "sizes": {k: int(len(v)) for k, v in splits.y.items()},
        "input_shape": list(input_shape), "classes": classes, "class_names": splits.class_names,
        "mean": splits.mean.tolist(), "std": splits.std.tolist(), "fit_data": bool(notes),
        "train": t, "device": str(dev), "amp": cuda if amp is None else bool(amp),
        "channels_last": cuda if channels_last is None else bool(channels_last),
        "compile": bool(t["compile"]), "eval_batch_size": eval_batch_size or (2048 if cuda else 512),
    }
    run_dir = runs.create_run_dir(out, name or runs.default_run_name(spec.name, t["data"], t["seed"]),
                                  unique=name is None)
    import yaml

    runs.write_text(run_dir / runs.DESCRIPTION,
                    f"# resolved by normscope from {spec.file}\n" + yaml.safe_dump(document, sort_keys=False))
    runs.write_json(run_dir / runs.CONFIG, config)
    runs.write_json(run_dir / runs.ENV, runs.environment(dev))
    for n in notes + [f"warning: {w}" for w in spec.warnings]:
        reporter.note(n)
    return _run(run_dir, config, splits, dev, reporter, callbacks, checkpoint=None)


def _resume(run_dir: Path, epochs, device, data_dir, reporter, callbacks) -> Path:
    if not (run_dir / runs.LAST).is_file():
        if (run_dir / runs.CONFIG).is_file():
            raise NormscopeError(f"{run_dir}: no checkpoint to resume from (the run did not finish "
                                 "its first epoch); start it again")
        raise NormscopeError(f"{run_dir}: not a normscope run directory")
    config = runs.read_json(run_dir / runs.CONFIG)
    results = runs.read_json(run_dir / runs.RESULTS) if (run_dir / runs.RESULTS).is_file() else {}
    if epochs is not None and epochs != config["train"]["epochs"]:
        config["train"]["epochs"] = int(epochs)
        import yaml

        from normscope.spec import load_spec

        doc = yaml.safe_load((run_dir / runs.DESCRIPTION).read_text())
        doc["train"]["epochs"] = int(epochs)
        runs.write_text(run_dir / runs.DESCRIPTION, yaml.safe_dump(doc, sort_keys=False))
        load_spec(run_dir / runs.DESCRIPTION)  # still valid
        runs.write_json(run_dir / runs.CONFIG, config)
    elif results.get("status") == "completed":
        raise NormscopeError(f"{run_dir}: the run is already complete "
                             f"({config['train']['epochs']} epochs); pass --epochs to extend it")
    if device not in (None, "auto"):
        dev = pick_device(device)
    elif torch.device(config["device"]).type == "cuda" and not torch.cuda.is_available():
        dev = torch.device("cpu")
    else:
        dev = torch.device(config["device"])
    if str(dev) != config["device"]:
        reporter.note(f"note: the run was trained on {config['device']}, continuing on {dev} "
                      "(the continuation is then not bit-identical)")
        if dev.type != torch.device(config["device"]).type:  # that device's precision defaults
            config["amp"] = config["channels_last"] = dev.type == "cuda"
    c = config
    splits = prepare_data(c["data"], data_dir=data_dir or c.get("data_dir"), subset=c["subset"],
                          test_subset=c["test_subset"], validation=c["validation"],
                          standardize=c["standardize"], split_seed=c["split_seed"])
    if any(abs(a - b) > 1e-9 for a, b in zip(splits.mean.tolist() + splits.std.tolist(), c["mean"] + c["std"])):
        raise NormscopeError(f"{run_dir}: the data set {c['data']!r} found now is not the one the run "
                             "was trained on (different channel statistics)")
    checkpoint = runs.load_checkpoint(run_dir / runs.LAST, map_location="cpu")
    reporter.note(f"resuming {run_dir} after epoch {checkpoint['epoch']}")
    return _run(run_dir, config, splits, dev, reporter, callbacks, checkpoint=checkpoint)


def _run(run_dir: Path, config: dict, splits: Splits, dev: torch.device, reporter: Reporter,
         callbacks, checkpoint: dict | None) -> Path:
    from normscope.model.build import build_model, count_params

    t = config["train"]
    seed, epochs, bs = t["seed"], t["epochs"], t["batch_size"]
    amp, channels_last = config["amp"], config["channels_last"]
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # model: seeded init; frozen layers from train.freeze (build_model applies them)
    torch.manual_seed(seed)
    model = build_model(run_dir / runs.DESCRIPTION)
    trainable, non_trainable = count_params(model)
    model = model.to(dev, memory_format=torch.channels_last) if channels_last else model.to(dev)
    optimizer = make_optimizer(model, t, file=run_dir / runs.DESCRIPTION)
    # auxiliary classifiers (`aux: w` on a dense layer): loss = (1 - sum w) * main + sum w * aux
    aux = bool(model.aux_weights)
    main_weight = 1.0 - sum(model.aux_weights.values())
    if main_weight <= 0:
        raise SpecError(f"the aux loss weights sum to {1 - main_weight:g}; they must leave the main "
                        "classifier a positive weight (sum < 1)", file=config.get("source"))
    forward = model.forward_with_aux if aux else model.forward
    if config["compile"]:
        forward = torch.compile(forward)
    criterion = nn.CrossEntropyLoss(label_smoothing=t["label_smoothing"])

    data = DeviceData(splits, dev, t["augment"]["crop"])
    n_train, has_val = data.n("train"), data.n("val") > 0
    steps_per_epoch = math.ceil(n_train / bs)
    total_steps = epochs * steps_per_epoch

    # state: fresh or from last.pt
    history: list[dict] = []
    start_epoch, step, elapsed, loop_time = 0, 0, 0.0, 0.0
    best_epoch, best_acc = 0, -math.inf
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_epoch, step = int(checkpoint["epoch"]), int(checkpoint["step"])
        history = [dict(r) for r in checkpoint["history"]]
        best_epoch, best_acc = int(checkpoint["best_epoch"]), float(checkpoint["best_val_accuracy"])
        elapsed = float(checkpoint.get("elapsed", 0.0))
        loop_time = float(checkpoint.get("loop_time", 0.0))
        torch.set_rng_state(checkpoint["rng_cpu"])
        if dev.type == "cuda" and checkpoint.get("rng_cuda"):
            torch.cuda.set_rng_state(checkpoint["rng_cuda"][0], dev)
        _repair_best(run_dir, checkpoint)
    elif dev.type == "cuda":
        torch.cuda.manual_seed(seed)

    runs.write_json(run_dir / runs.RESULTS, {"status": "running", "epochs_done": start_epoch, "epochs": epochs})
    # NaN check (a device sync): ~25 times an epoch with a live bar, ~5 times otherwise
    check_every = max(1, steps_per_epoch // (25 if reporter.live else 5))
    reporter.start(epochs, start_epoch, steps_per_epoch)
    status, message = "completed", None
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            reporter.epoch_start(epoch + 1)
            perm, offsets, flips = epoch_order(n_train, seed, epoch, data.crop, t["augment"]["flip"])
            perm = perm.to(dev)
            offsets = offsets.to(dev) if offsets is not None else None
            flips = flips.to(dev) if flips is not None else None
            model.train()
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            seen = 0
            for b in range(steps_per_epoch):
                sl = slice(b * bs, (b + 1) * bs)
                idx = perm[sl]
                xb = data.train_batch(idx, None if offsets is None else offsets[sl],
                                      None if flips is None else flips[sl])
                xb = to_input(xb, data.mean, data.std)
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                yb = data.y["train"][idx]
                set_lr(optimizer, t["lr"], lr_factor(step, total_steps, steps_per_epoch, t))
                with _autocast(dev, amp):
                    if aux:
                        logits, heads = forward(xb)
                        loss = main_weight * criterion(logits.float(), yb)
                        for aux_logits, weight in heads:
                            loss = loss + weight * criterion(aux_logits.float(), yb)
                    else:
                        logits = forward(xb)
                        loss = criterion(logits.float(), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                loss_sum += loss.detach() * len(idx)
                correct += (logits.detach().argmax(1) == yb).sum()
                seen += len(idx)
                if (b + 1) % check_every == 0 and b + 1 < steps_per_epoch:
                    running = loss_sum.item() / seen
                    if not math.isfinite(running):
                        raise _Diverged(epoch + 1, b + 1, running)
                    reporter.batch(b + 1, running, correct.item() / seen if reporter.live else None)
            train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen  # syncs the device
            epoch_loop = time.perf_counter() - t0
            loop_time += epoch_loop
            if not math.isfinite(train_loss):
                raise _Diverged(epoch + 1, None, train_loss)
            reporter.batch(steps_per_epoch, train_loss, train_acc)

            val_loss = val_acc = None
            if has_val:
                logits = predict_logits(model, data.x["val"], data.mean, data.std,
                                        config["eval_batch_size"], amp, channels_last)
                val_loss, val_acc = loss_and_accuracy(logits, data.y["val"])
            seconds = time.perf_counter() - t0
            elapsed += seconds
            row = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc,
                   "val_loss": val_loss, "val_accuracy": val_acc,
                   "lr": t["lr"] * lr_factor(step - 1, total_steps, steps_per_epoch, t), "seconds": seconds,
                   "train_seconds": epoch_loop}  # (not in metrics.csv: the training loop alone)
            history.append(row)
            # best by validation accuracy (the first of equals); without validation: the last
            improved = (val_acc > best_acc) if has_val else True
            if improved:
                best_epoch, best_acc = epoch + 1, (val_acc if has_val else -math.inf)

            # last.pt first, then best.pt: a kill in between is repaired on resume
            state = {"model": _cpu_state(model), "epoch": epoch + 1}
            runs.write_history(run_dir / runs.METRICS, history)
            runs.save_checkpoint(run_dir / runs.LAST, {
                **state, "step": step, "optimizer": optimizer.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": [torch.cuda.get_rng_state(dev)] if dev.type == "cuda" else [],
                "history": history, "best_epoch": best_epoch, "best_val_accuracy": best_acc,
                "elapsed": elapsed, "loop_time": loop_time})
            if improved:
                runs.save_checkpoint(run_dir / runs.BEST, {**state, "val_accuracy": val_acc})
            reporter.epoch_end(row, epochs, improved and has_val)
            for cb in callbacks:
                cb(dict(row, run_dir=run_dir))
    except _Diverged as exc:
        status = "failed"
        good = history[-1]["epoch"] if history else 0
        message = (f"the training loss became {exc.value} in epoch {exc.epoch}"
                   f"{'' if exc.batch is None else f' (batch {exc.batch})'}; stopped. "
                   + (f"The last good checkpoint is epoch {good} ({runs.LAST}). " if good else "No epoch finished. ")
                   + "Try a lower learning rate (--lr) or another optimizer.")
    except KeyboardInterrupt:
        reporter.close()
        runs.write_json(run_dir / runs.RESULTS, {
            "status": "interrupted", "message": f"interrupted; continue with: normscope train --resume {run_dir}",
            "epochs_done": len(history), "epochs": epochs})
        raise
    finally:
        reporter.close()

    results = {"status": status, "message": message, "name": config["name"], "variant": config["variant"],
               "data": config["data"], "seed": seed, "epochs": epochs, "epochs_done": len(history),
               "best_epoch": best_epoch or None, "best_by": "val_accuracy" if has_val else "last_epoch",
               "params": {"total": trainable + non_trainable, "trainable": trainable,
                          "non_trainable": non_trainable},
               "seconds": elapsed,
               "train_images_per_second": (n_train * len(history) / loop_time) if loop_time > 0 else None,
               "device": str(dev)}
    if history:
        runs.plot_curves(run_dir / runs.CURVES, history, title=f"{config['name']} on {config['data']}")
    if status == "completed":
        results.update(_evaluate_best(run_dir, model, data, splits, config))
        results["best_val_accuracy"] = results.get("val", {}).get("accuracy")
    runs.write_json(run_dir / runs.RESULTS, results)
    if status == "failed":
        raise TrainingFailed(f"{run_dir}: {message}", run_dir)
    if reporter.mode != "none":
        m = results["test"]
        reporter.note(f"test (best epoch {best_epoch}): loss {m['loss']:.4f}  accuracy {m['accuracy']:.4f}  "
                      f"precision {m['precision']:.4f}  recall {m['recall']:.4f}  auc {m['auc']:.4f}  "
                      f"top5 {m['top5_accuracy']:.4f}  macro_f1 {m['macro_f1']:.4f}")
        reporter.note(f"run directory: {run_dir}")
    return run_dir


class _Diverged(Exception):
    def __init__(self, epoch: int, batch: int | None, value: float):
        super().__init__(f"non-finite loss {value} in epoch {epoch}")
        self.epoch, self.batch, self.value = epoch, batch, value


def _cpu_state(model) -> dict:
    """The model's state dict as contiguous CPU tensors (channels_last is a CUDA detail)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def _repair_best(run_dir: Path, checkpoint: dict) -> None:
    """A kill between writing last.pt and best.pt leaves best.pt one improvement behind;
    the weights it should hold are then last.pt's (the last epoch was the best)."""
    best_path = run_dir / runs.BEST
    if checkpoint["best_epoch"] == checkpoint["epoch"]:
        current = runs.load_checkpoint(best_path)["epoch"] if best_path.is_file() else None
        if current != checkpoint["epoch"]:
            runs.save_checkpoint(best_path, {"model": checkpoint["model"], "epoch": checkpoint["epoch"],
                                             "val_accuracy": checkpoint["best_val_accuracy"]})


def _evaluate_best(run_dir: Path, model, data: DeviceData, splits: Splits, config: dict) -> dict:
    """Test (and validation) metrics of best.pt; writes per_class.csv and confusion_matrix.csv."""
    best = runs.load_checkpoint(run_dir / runs.BEST, map_location="cpu")
    model.load_state_dict(best["model"])
    out = {}
    for split in ("val", "test"):
        if data.n(split) == 0:
            continue
        logits = predict_logits(model, data.x[split], data.mean, data.std, config["eval_batch_size"],
                                config["amp"], config["channels_last"])
        m = test_metrics(logits, data.y[split])
        out[split] = {k: m[k] for k in SCALAR_METRICS} | {"n": int(data.n(split))}
        if split == "test":
            runs.write_per_class(run_dir / runs.PER_CLASS, splits.class_names, m["per_class_accuracy"],
                                 m["confusion_matrix"])
            runs.write_confusion(run_dir / runs.CONFUSION, splits.class_names, m["confusion_matrix"])
    return out


def evaluate_run(run_dir, device: str | None = "auto", data_dir=None, split: str = "test",
                 checkpoint: str = "best") -> dict:
    """Re-compute the metrics of a run's checkpoint (best by default) on ``split``;
    returns metrics.md's metrics plus per_class_accuracy and confusion_matrix."""
    dev = pick_device(device)
    run = runs.load_run(run_dir, device=dev, checkpoint=checkpoint, data_dir=data_dir)
    model = run.load_model(checkpoint, device=dev)
    s = run.splits()
    if len(s.y[split]) == 0:
        raise NormscopeError(f"{run_dir}: the {split} split is empty")
    x = torch.from_numpy(s.x[split]).permute(0, 3, 1, 2).contiguous().to(dev)
    mean, std = s.stat_tensors(dev)
    same_kind = dev.type == torch.device(run.config["device"]).type  # else: that device's defaults
    amp = run.config["amp"] if same_kind else dev.type == "cuda"
    channels_last = run.config["channels_last"] if same_kind else dev.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    logits = predict_logits(model, x, mean, std, run.config.get("eval_batch_size", 512),
                            amp=amp, channels_last=channels_last)
    return test_metrics(logits, torch.from_numpy(s.y[split]).to(dev))
