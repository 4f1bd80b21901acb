"""Training: settings, optimizer and schedule, the loop, evaluation, run directories.

Modules, bottom to top: errors, settings (TrainSettings, pick_device), config (RunConfig:
config.json), runs (run directories, Run, load_run), optim, progress, evaluate, prepare
(a new run or a resumed one), loop (:func:`train`); metrics (Keras-compatible metrics).

The names below load on first use (PEP 562), so importing one of the package's
modules does not import every other one (and torch with them)."""

from __future__ import annotations

from normscope.lazy import lazy_exports

# name -> (module, attribute); attribute None: the module itself
_EXPORTS = {
    "Splits": ("normscope.data.batches", "Splits"),
    "prepare_data": ("normscope.data.batches", "prepare_data"),
    "runs": ("normscope.train.runs", None),
    "RunConfig": ("normscope.train.config", "RunConfig"),
    "RunError": ("normscope.train.errors", "RunError"),
    "TrainingFailed": ("normscope.train.errors", "TrainingFailed"),
    "SCALAR_METRICS": ("normscope.train.evaluate", "SCALAR_METRICS"),
    "evaluate_run": ("normscope.train.evaluate", "evaluate_run"),
    "predict_logits": ("normscope.train.evaluate", "predict_logits"),
    "test_metrics": ("normscope.train.evaluate", "test_metrics"),
    "train": ("normscope.train.loop", "train"),
    "Run": ("normscope.train.runs", "Run"),
    "load_run": ("normscope.train.runs", "load_run"),
    "KERAS_DEFAULTS": ("normscope.train.settings", "KERAS_DEFAULTS"),
    "TrainSettings": ("normscope.train.settings", "TrainSettings"),
    "pick_device": ("normscope.train.settings", "pick_device"),
    "resolve_settings": ("normscope.train.settings", "resolve_settings"),
}

__all__ = [
    "KERAS_DEFAULTS",
    "SCALAR_METRICS",
    "Run",
    "RunConfig",
    "RunError",
    "Splits",
    "TrainSettings",
    "TrainingFailed",
    "evaluate_run",
    "load_run",
    "pick_device",
    "predict_logits",
    "prepare_data",
    "resolve_settings",
    "runs",
    "test_metrics",
    "train",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
