"""Training: settings, optimizer and schedule, the loop, evaluation, run directories."""

from normscope.train import runs
from normscope.train.loop import SCALAR_METRICS, TrainingFailed, evaluate_run, pick_device, prepare_data, train
from normscope.train.runs import Run, RunError, load_run

__all__ = ["SCALAR_METRICS", "Run", "RunError", "TrainingFailed", "evaluate_run", "load_run", "pick_device",
           "prepare_data", "runs", "train"]
