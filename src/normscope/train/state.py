"""Where a run is: what last.pt holds besides weights, optimizer and RNG state."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TrainState:
    """Where the run is: what last.pt holds besides weights, optimizer and RNG."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # 0: none yet
    best_acc: float = -math.inf  # validation accuracy of best_epoch
    elapsed: float = 0.0  # seconds of the finished epochs (training and validation)
    loop_time: float = 0.0  # seconds of their training loops alone

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> TrainState:
        return cls(
            epoch=int(ckpt["epoch"]),
            step=int(ckpt["step"]),
            history=[dict(r) for r in ckpt["history"]],
            best_epoch=int(ckpt["best_epoch"]),
            best_acc=float(ckpt["best_val_accuracy"]),
            elapsed=float(ckpt.get("elapsed", 0.0)),
            loop_time=float(ckpt.get("loop_time", 0.0)),
        )

    def to_checkpoint(self) -> dict:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_val_accuracy": self.best_acc,
            "elapsed": self.elapsed,
            "loop_time": self.loop_time,
        }

    def record(self, row: dict, has_val: bool) -> bool:
        """Add an epoch's row; True when it is the new best: by validation accuracy (the
        first of equals), or without validation the last epoch."""
        self.history.append(row)
        self.epoch = row["epoch"]
        improved = (row["val_accuracy"] > self.best_acc) if has_val else True
        if improved:
            self.best_epoch, self.best_acc = row["epoch"], (row["val_accuracy"] if has_val else -math.inf)
        return improved
