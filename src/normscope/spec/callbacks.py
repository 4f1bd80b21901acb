"""The checks of the `train:` keys that ask for more than the epochs themselves: `log`
(event files for TensorBoard) and `early_stopping` (Keras' EarlyStopping)."""

from __future__ import annotations

import numbers

LOGS = ("tensorboard",)
#: what early stopping can monitor: metrics.csv's columns, Keras' `loss`/`accuracy` for the training ones
MONITORED = {
    "val_loss": "val_loss",
    "val_accuracy": "val_accuracy",
    "train_loss": "train_loss",
    "train_accuracy": "train_accuracy",
    "loss": "train_loss",
    "accuracy": "train_accuracy",
}
EARLY_STOPPING_DEFAULTS = {"metric": "val_loss", "patience": 0, "min_delta": 0.0}


def log_problem(value) -> str | None:
    """None when `train.log` is fine: one name of LOGS or a list of them."""
    names = value if isinstance(value, list) else [value]
    bad = [n for n in names if n not in LOGS]
    return f"unknown log {', '.join(map(repr, bad))} (choose from {', '.join(LOGS)})" if bad else None


def early_stopping_problem(value) -> str | None:
    """None when `train.early_stopping` is fine: {metric, patience, min_delta}, Keras' meaning."""
    if not isinstance(value, dict):
        return "must be a mapping {metric: val_loss, patience: 0, min_delta: 0}"
    unknown = sorted(set(value) - set(EARLY_STOPPING_DEFAULTS))
    if unknown:
        return f"unknown key {', '.join(unknown)} (known: {', '.join(EARLY_STOPPING_DEFAULTS)})"
    metric = value.get("metric", "val_loss")
    if metric not in MONITORED:
        return f"metric {metric!r} is not one of {', '.join(MONITORED)}"
    patience = value.get("patience", 0)
    if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
        return f"patience must be an integer of at least 0 (epochs), got {patience!r}"
    delta = value.get("min_delta", 0.0)
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or delta < 0:
        return f"min_delta must be a number of at least 0, got {delta!r}"
    return None
