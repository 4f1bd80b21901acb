"""What the trainer does besides training, asked for in `train:`: TensorBoard event files
(`log: tensorboard`) and early stopping (`early_stopping: {metric, patience, min_delta}`).

Early stopping follows Keras' EarlyStopping: it monitors one column of metrics.csv, its mode
follows the metric (an accuracy is maximized, a loss minimized), an epoch improves when it
beats the best so far by more than ``min_delta``, and training stops after ``patience``
epochs in a row without improvement (with patience 0 at the first such epoch; never after
the first epoch). :func:`stop_epoch` replays the history, so a resumed run decides as if
it had never stopped. The best checkpoint stays the best (best.pt is chosen by validation
accuracy, whatever early stopping monitors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from normscope.errors import NormscopeError
from normscope.spec.callbacks import EARLY_STOPPING_DEFAULTS, MONITORED, early_stopping_problem, log_problem

TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_MISSING = "train.log: tensorboard needs the tensorboard package: pip install 'normscope[tensorboard]'"
#: metrics.csv's columns -> the TensorBoard tags they are written as
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_accuracy": "accuracy/train",
    "val_accuracy": "accuracy/val",
    "lr": "lr",
    "seconds": "seconds",
}


@dataclass(frozen=True)
class EarlyStopping:
    metric: str  # a column of metrics.csv
    patience: int
    min_delta: float

    @classmethod
    def from_settings(cls, value: dict | None) -> EarlyStopping | None:
        if value is None:
            return None
        problem = early_stopping_problem(value)
        if problem:
            raise NormscopeError(f"train.early_stopping: {problem}")
        v = {**EARLY_STOPPING_DEFAULTS, **value}
        return cls(MONITORED[v["metric"]], int(v["patience"]), float(v["min_delta"]))

    @property
    def maximize(self) -> bool:
        return "accuracy" in self.metric

    def improves(self, value: float, best: float) -> bool:
        return value - self.min_delta > best if self.maximize else value + self.min_delta < best

    def stop_epoch(self, history: list[dict]) -> int | None:
        """The epoch after which training stops (Keras' rule replayed over ``history``), or None."""
        best, wait = (-math.inf if self.maximize else math.inf), 0
        for i, row in enumerate(history):
            value = row.get(self.metric)
            if value is None:  # not recorded (no validation split): Keras skips the epoch too
                continue
            wait += 1
            if self.improves(value, best):
                best, wait = value, 0
                continue
            if wait >= self.patience and i > 0:
                return row["epoch"]
        return None

    def describe(self, epoch: int) -> dict:
        return {"metric": self.metric, "patience": self.patience, "min_delta": self.min_delta, "stopped_after": epoch}


def check_log(value) -> tuple[str, ...]:
    """The logs asked for (`train.log` or --log), checked; the tensorboard package must be there."""
    if value is None:
        return ()
    problem = log_problem(value)
    if problem:
        raise NormscopeError(f"train.log / --log: {problem}")
    names = tuple(value if isinstance(value, list) else [value])
    if "tensorboard" in names:
        try:
            import tensorboard  # noqa: F401  (an optional extra: only here)
        except ImportError:
            raise NormscopeError(TENSORBOARD_MISSING) from None
    return names


class TensorBoardLog:
    """Event files in RUN/tensorboard/: every epoch's scalars (SCALAR_TAGS, step = epoch) and,
    at the end, the run's hyperparameters with its final metrics (add_hparams: the HPARAMS tab)."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR))

    def epoch(self, row: dict) -> None:
        for key, tag in SCALAR_TAGS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, float(row[key]), int(row["epoch"]))
        self.writer.flush()

    def finish(self, hparams: dict, metrics: dict) -> None:
        plain = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in hparams.items()}
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.writer.add_hparams(plain, numbers, run_name="hparams")
        self.close()

    def close(self) -> None:
        self.writer.close()


def hparams(config, settings) -> dict:
    """A run's hyperparameters for TensorBoard: the variant and data, then the `train:` settings
    flattened (augment.crop, ...)."""
    out = {"model": config.name, "variant": config.variant, "data": config.data}
    for key, value in settings.to_dict().items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        elif key not in ("log", "early_stopping"):
            out[key] = value
    if settings.early_stopping:
        out.update({f"early_stopping.{k}": v for k, v in settings.early_stopping.items()})
    return out


class RunExtras:
    """The trainer's extras for one run: the TensorBoard log and early stopping (either may be off)."""

    def __init__(self, run_dir: Path, config, settings):
        self.config, self.settings = config, settings
        self.stopping = EarlyStopping.from_settings(settings.early_stopping)
        self.tensorboard = TensorBoardLog(run_dir) if "tensorboard" in check_log(settings.log) else None
        self.stopped: int | None = None

    def after_epoch(self, history: list[dict]) -> str | None:
        """Log the epoch; a message when early stopping ends the training here."""
        if self.tensorboard is not None:
            self.tensorboard.epoch(history[-1])
        self.stopped = self.stopping.stop_epoch(history) if self.stopping else None
        if self.stopped is None:
            return None
        s = self.stopping
        return (
            f"early stopping after epoch {self.stopped}: {s.metric} has not improved by more than "
            f"{s.min_delta:g} for {s.patience} epoch{'s' if s.patience != 1 else ''}"
        )

    def finish(self, results: dict) -> None:
        """results.json's `early_stopping` (when it stopped the run); the hyperparameters and the
        final metrics to TensorBoard."""
        if self.stopped is not None:
            results["early_stopping"] = self.stopping.describe(self.stopped)
        if self.tensorboard is not None:
            finals = {f"hparams/test_{k}": v for k, v in (results.get("test") or {}).items() if k != "n"}
            finals["hparams/best_val_accuracy"] = results.get("best_val_accuracy")
            self.tensorboard.finish(hparams(self.config, self.settings), finals)
