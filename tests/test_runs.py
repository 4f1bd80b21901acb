"""Run directories: loading a run for analysis, atomic checkpoints, tables."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from normscope.train import RunConfig, train
from normscope.train.metrics import classification_metrics
from normscope.train.runs import (
    RunError,
    create_run_dir,
    load_checkpoint,
    load_run,
    read_history,
    repair_best,
    save_checkpoint,
    write_history,
    write_json,
)

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
    rows = [
        {
            "epoch": 1,
            "train_loss": 0.5,
            "train_accuracy": 0.25,
            "val_loss": None,
            "val_accuracy": None,
            "lr": 1e-3,
            "seconds": 1.5,
        }
    ]
    write_history(tmp_path / "m.csv", rows)
    assert read_history(tmp_path / "m.csv") == rows
    write_json(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.arange(2), "c": float("nan")})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 0.5, "b": [0, 1], "c": None}


def test_repair_best_after_a_kill_between_last_and_best(tmp_path):
    weights = {"w": torch.arange(3.0)}
    save_checkpoint(tmp_path / "best.pt", {"model": {"w": torch.zeros(3)}, "epoch": 1, "val_accuracy": 0.2})
    last = {"model": weights, "epoch": 2, "best_epoch": 2, "best_val_accuracy": 0.5}
    repair_best(tmp_path, last)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 2 and torch.equal(best["model"]["w"], weights["w"])
    # an older best stays as it is
    repair_best(tmp_path, {**last, "epoch": 3})
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 2


# config.json as written before RunConfig existed (normscope 0.1.0, commit 150368a)
OLD_CONFIG = {
    "source": "examples/tiny.yml",
    "name": "tiny_bn_v2",
    "family": "tiny",
    "variant": "bn_v2",
    "norm": "bn",
    "reuse": True,
    "data": "synthetic:train=240,test=80,size=16",
    "data_name": "synthetic:train=240,test=80,classes=10,size=16,channels=3",
    "data_dir": None,
    "subset": None,
    "test_subset": None,
    "validation": 0.1,
    "standardize": True,
    "split_seed": 0,
    "sizes": {"train": 216, "val": 24, "test": 80},
    "data_files": None,
    "input_shape": [3, 16, 16],
    "classes": 10,
    "class_names": [f"class_{i}" for i in range(10)],
    "mean": [0.5301948586147422, 0.5307693780637255, 0.5081282339324619],
    "std": [0.26977874435557175, 0.26099479797947767, 0.2756304507705238],
    "fit_data": False,
    "train": {
        "optimizer": "adamw",
        "lr": 0.001,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": 0.004,
        "eps": 1e-07,
        "betas": [0.9, 0.999],
        "epochs": 2,
        "batch_size": 32,
        "schedule": "none",
        "step_size": 30,
        "gamma": 0.1,
        "warmup_epochs": 0,
        "label_smoothing": 0.0,
        "augment": {"crop": 2, "flip": True},
        "standardize": True,
        "validation": 0.1,
        "freeze": None,
        "lr_mult": None,
        "weights": None,
        "data": "synthetic:train=240,test=80,size=16",
        "subset": None,
        "seed": 0,
        "compile": False,
        "log": None,
        "early_stopping": None,
        "normalize": None,
        "image_size": None,
        "resize": None,
        "cache_features": True,
    },
    "device": "cpu",
    "amp": False,
    "channels_last": False,
    "compile": False,
    "eval_batch_size": 512,
}


def test_run_config_reads_and_writes_config_json(tmp_path):
    write_json(tmp_path / "config.json", OLD_CONFIG)
    config = RunConfig.read(tmp_path)
    assert config.train.augment.crop == 2 and config.train.lr == 0.001 and config.mean == OLD_CONFIG["mean"]
    assert config["data"] == config.get("data") == OLD_CONFIG["data"] and config["train"]["epochs"] == 2
    (tmp_path / "again").mkdir()
    config.write(tmp_path / "again")
    # written back as read, with the keys added since (their defaults)
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    train = OLD_CONFIG["train"] | {"grad_clip": None}
    assert again == OLD_CONFIG | {"overrides": [], "train": train}
    # older and newer keys: what is missing takes its default, what is unknown is kept
    trimmed = {k: v for k, v in OLD_CONFIG.items() if k not in ("source", "data_dir", "eval_batch_size")}
    trimmed["train"] = {k: v for k, v in OLD_CONFIG["train"].items() if k not in ("compile", "augment")}
    config = RunConfig.from_dict({**trimmed, "future": [1]})
    assert (config.eval_batch_size, config.data_dir, config.train.compile, config.train.augment.flip) == (
        512,
        None,
        False,
        False,
    )
    assert config["future"] == [1] and config.to_dict()["future"] == [1]
    with pytest.raises(RunError, match="mean"):
        RunConfig.from_dict({k: v for k, v in OLD_CONFIG.items() if k != "mean"})


def test_precision_on_another_kind_of_device_takes_its_defaults():
    config = RunConfig.from_dict({**OLD_CONFIG, "amp": True, "channels_last": True})
    assert config.precision_on(torch.device("cpu")) == (True, True)
    assert config.precision_on(torch.device("cuda")) == (True, True)
    assert RunConfig.from_dict(OLD_CONFIG).precision_on(torch.device("cuda")) == (True, True)
    assert RunConfig.from_dict({**OLD_CONFIG, "device": "cuda:0"}).precision_on(torch.device("cpu")) == (False, False)


def test_other_data_is_refused_by_load_run_and_by_resume(tmp_path, run_dir):
    changed = tmp_path / "changed"
    shutil.copytree(run_dir, changed)
    config = json.loads((changed / "config.json").read_text())
    config["mean"][0] += 1e-3
    write_json(changed / "config.json", config)
    with pytest.raises(RunError, match="not the one the run was trained on"):
        load_run(changed).splits()
    with pytest.raises(RunError, match="not the one the run was trained on"):
        train(resume=changed, epochs=3, progress="none")
    config["mean"][0] -= 1e-3 - 1e-8  # within the tolerance: the same data
    write_json(changed / "config.json", config)
    assert load_run(changed).splits().num_classes == 4
