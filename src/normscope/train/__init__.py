"""Training: settings, optimizer and schedule, the loop, evaluation, run directories.

Modules, bottom to top: errors, settings (TrainSettings, pick_device), config (RunConfig:
config.json), runs (run directories, Run, load_run), optim, progress, evaluate, prepare
(a new run or a resumed one), loop (:func:`train`); metrics (Keras-compatible metrics).
"""

from normscope.data.batches import Splits, prepare_data
from normscope.train import runs
from normscope.train.config import RunConfig
from normscope.train.errors import RunError, TrainingFailed
from normscope.train.evaluate import SCALAR_METRICS, evaluate_run, predict_logits, test_metrics
from normscope.train.loop import train
from normscope.train.runs import Run, load_run
from normscope.train.settings import KERAS_DEFAULTS, TrainSettings, pick_device, resolve_settings

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
