"""Run directories: loading a run for analysis, atomic checkpoints, tables."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from normscope.train.metrics import classification_metrics
from normscope.train.runs import (RunError, create_run_dir, load_checkpoint, load_run, read_history, save_checkpoint,
                            write_history, write_json)
from normscope.train.loop import _repair_best, train

DATA = "synthetic:train=200,test=60,size=12,classes=4"


pytestmark = pytest.mark.usefixtures("one_thread")

YML = """\
name: small
input: auto
classes: auto
norm: in
reuse: true
layers:
  - conv: {filters: 6, kernel: 3, activation: relu}
  - norm
  - maxpool: 2
  - flatten
  - dropout: 0.3
  - dense: {name: classifier}
train: {epochs: 2, batch_size: 32, validation: 0.2, augment: {flip: true}}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("runs")
    (tmp / "small.yml").write_text(YML)
    return train(tmp / "small.yml", data=DATA, out=tmp / "out", progress="none")


def test_load_run_model_is_best_checkpoint_in_eval_mode(run_dir):
    run = load_run(run_dir)
    assert run.status == "completed" and run.name == "small"
    assert run.spec.norm == "in" and run.spec.reuse and run.class_names == run.config["class_names"]
    model = run.model
    assert not model.training and run.model is model
    best = load_checkpoint(run_dir / "best.pt")
    for k, v in model.state_dict().items():
        assert torch.equal(v, best["model"][k]), k
    last = run.load_model("last")
    assert not last.training
    assert len(run.history) == 2 and run.history[0]["epoch"] == 1


def test_split_is_the_trainers_input(run_dir):
    run = load_run(run_dir)
    sizes = run.config["sizes"]
    for split in ("train", "val", "test"):
        x, y = run.split(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape) == (sizes[split], 3, 12, 12) and len(y) == sizes[split]
    x, _ = run.split("train")
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), unbiased=False).numpy(), 1, atol=1e-4)
    # the best model on these tensors gives the recorded metrics
    for split in ("val", "test"):
        x, y = run.split(split)
        with torch.no_grad():
            probs = torch.softmax(run.model(x).double(), 1).numpy()
        m = classification_metrics(probs, y.numpy())
        assert m["accuracy"] == run.results[split]["accuracy"]
        assert m["loss"] == pytest.approx(run.results[split]["loss"], rel=1e-5)
    with pytest.raises(RunError):
        run.split("holdout")


def test_load_run_errors(tmp_path, run_dir):
    with pytest.raises(RunError, match="no such run"):
        load_run(tmp_path / "missing")
    with pytest.raises(RunError, match="not a normscope run"):
        load_run(tmp_path)
    with pytest.raises(RunError, match="'best' or 'last'"):
        load_run(run_dir).load_model("middle")


def test_checkpoints_are_atomic_and_weights_only(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "epoch": 2, "history": [{"a": 1.0, "b": None}]})
    assert load_checkpoint(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o044  # not mkstemp's private 0600
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(RunError, match="cannot read"):
        load_checkpoint(path)
    torch.save({"obj": Path("x")}, path)  # arbitrary objects are refused by weights_only
    with pytest.raises(RunError, match="cannot read"):
        load_checkpoint(path)
    with pytest.raises(RunError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_create_run_dir(tmp_path):
    a = create_run_dir(tmp_path, "r")
    b = create_run_dir(tmp_path, "r")
    assert (a.name, b.name) == ("r", "r-2")
    (a / "x").write_text("1")
    with pytest.raises(RunError, match="already exists"):
        create_run_dir(tmp_path, "r", unique=False)
    assert create_run_dir(tmp_path, "empty", unique=False) == create_run_dir(tmp_path, "empty", unique=False)


def test_history_and_json_round_trip(tmp_path):
    rows = [{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.25, "val_loss": None, "val_accuracy": None,
             "lr": 1e-3, "seconds": 1.5}]
    write_history(tmp_path / "m.csv", rows)
    assert read_history(tmp_path / "m.csv") == rows
    write_json(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.arange(2), "c": float("nan")})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 0.5, "b": [0, 1], "c": None}


def test_repair_best_after_a_kill_between_last_and_best(tmp_path):
    weights = {"w": torch.arange(3.0)}
    save_checkpoint(tmp_path / "best.pt", {"model": {"w": torch.zeros(3)}, "epoch": 1, "val_accuracy": 0.2})
    last = {"model": weights, "epoch": 2, "best_epoch": 2, "best_val_accuracy": 0.5}
    _repair_best(tmp_path, last)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 2 and torch.equal(best["model"]["w"], weights["w"])
    # an older best stays as it is
    _repair_best(tmp_path, {**last, "epoch": 3})
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 2
