"""Early stopping (Keras' EarlyStopping rule), TensorBoard event files read back, and the
plotted confusion matrix of a run."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normscope.cli import app
from normscope.errors import NormscopeError
from normscope.train import train
from normscope.train.callbacks import EarlyStopping

DATA = "synthetic:train=160,test=48,size=16"
TINY = """\
name: tiny
input: auto
classes: auto
layers:
  - conv: {{filters: 4, kernel: 3, activation: relu}}
  - norm
  - maxpool: 2
  - flatten
  - dense: {{name: classifier}}
train:
  epochs: {epochs}
  batch_size: 32
{extra}"""


def _yml(tmp_path: Path, epochs: int, extra: str = "") -> Path:
    p = tmp_path / "tiny.yml"
    p.write_text(TINY.format(epochs=epochs, extra=textwrap.indent(extra, "  ")))
    return p


def _history(metric: str, values) -> list[dict]:
    return [{"epoch": i + 1, metric: v} for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "rule,metric,values,stop",
    [
        # val_loss minimized: 1.0 (best), 0.9 (best), 0.95, 0.91 -> two epochs without improvement
        ({"metric": "val_loss", "patience": 2}, "val_loss", [1.0, 0.9, 0.95, 0.91, 0.5], 4),
        # patience 0: the first epoch that does not improve
        ({"metric": "val_loss", "patience": 0}, "val_loss", [1.0, 0.9, 0.95, 0.5], 3),
        # min_delta: 0.9 -> 0.86 is an improvement of 0.04, not more than 0.05
        ({"metric": "val_loss", "patience": 1, "min_delta": 0.05}, "val_loss", [1.0, 0.9, 0.86, 0.5], 3),
        # an improvement resets the count: 0.8, 0.79 (wait 1), 0.85 (best), 0.84, 0.83 -> stop at 5
        ({"metric": "val_accuracy", "patience": 2}, "val_accuracy", [0.8, 0.79, 0.85, 0.84, 0.83, 0.9], 5),
        # equal is not better (accuracy maximized)
        ({"metric": "accuracy", "patience": 1}, "train_accuracy", [0.5, 0.5, 0.6], 2),
        # never stopped
        ({"metric": "val_loss", "patience": 1}, "val_loss", [3.0, 2.0, 1.0], None),
        # Keras' default: val_loss, patience 0; nothing to monitor (no validation split) -> never stops
        ({}, "train_loss", [1.0, 2.0, 3.0], None),
    ],
)
def test_early_stopping_stops_where_keras_would(rule, metric, values, stop):
    assert EarlyStopping.from_settings(rule).stop_epoch(_history(metric, values)) == stop


def test_early_stopping_settings_are_checked():
    with pytest.raises(NormscopeError, match="metric 'val_auc' is not one of"):
        EarlyStopping.from_settings({"metric": "val_auc"})
    with pytest.raises(NormscopeError, match="unknown key patient"):
        EarlyStopping.from_settings({"patient": 3})
    with pytest.raises(NormscopeError, match="patience must be an integer of at least 0"):
        EarlyStopping.from_settings({"patience": -1})


def test_a_run_stops_early_keeps_its_best_checkpoint_and_logs_to_tensorboard(tmp_path, one_thread):
    """A learning rate of 1e-9 leaves the validation loss where it is (changes far below
    min_delta): epoch 1 improves on infinity, epoch 2 does not -> with patience 1 the run
    stops after epoch 2 of 6; best.pt stays epoch 1's (the first of equal accuracies)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    extra = "lr: 1.0e-9\nearly_stopping: {metric: val_loss, patience: 1, min_delta: 1.0e-4}\nlog: tensorboard\n"
    run = train(_yml(tmp_path, 6, extra), data=DATA, out=tmp_path / "runs", progress="none", device="cpu")
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and results["epochs_done"] == 2 and results["best_epoch"] == 1
    assert results["early_stopping"] == {"metric": "val_loss", "patience": 1, "min_delta": 1e-4, "stopped_after": 2}
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert (run / "confusion.png").read_bytes()[:4] == b"\x89PNG"

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    for tag, column in (
        ("loss/train", "train_loss"),
        ("loss/val", "val_loss"),
        ("accuracy/val", "val_accuracy"),
        ("lr", "lr"),
    ):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[column]), rel=1e-6)) for r in rows]
    hp = EventAccumulator(str(run / "tensorboard" / "hparams"))
    hp.Reload()
    assert hp.Scalars("hparams/test_accuracy")[0].value == pytest.approx(results["test"]["accuracy"], rel=1e-6)
    assert hp.Scalars("hparams/test_loss")[0].value == pytest.approx(results["test"]["loss"], rel=1e-6)
    plugin = hp.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugin
    assert b"early_stopping.patience" in plugin["_hparams_/session_start_info"]


def test_log_and_early_stopping_errors_before_any_file(tmp_path):
    runner = CliRunner()
    out = tmp_path / "runs"
    res = runner.invoke(app, ["train", str(_yml(tmp_path, 1)), "--data", DATA, "--log", "wandb", "--out", str(out)])
    assert res.exit_code == 2 and "unknown log 'wandb' (choose from tensorboard)" in res.output, res.output
    yml = _yml(tmp_path, 1, "early_stopping: {metric: val_los}\n")
    res = runner.invoke(app, ["train", str(yml), "--data", DATA, "--out", str(out)])
    assert res.exit_code == 2 and "early_stopping" in res.output and "val_los" in res.output, res.output
    assert "Traceback" not in res.output and not out.exists()
