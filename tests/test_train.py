"""The trainer: settings and Keras defaults, device-side augmentation, schedules, whole runs
on tiny synthetic data (determinism, NaN handling, exact resume after SIGKILL, shape
checks), the CLI, and one real-data run on a Fashion-MNIST subset."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from normscope import build_model, load_spec, summarize
from normscope.cli import app
from normscope.data.batches import DeviceData, Splits, epoch_order, prepare_data
from normscope.errors import NormscopeError, SpecError
from normscope.spec import TRAIN_ARGS
from normscope.train import runs, train
from normscope.train.optim import lr_factor, make_optimizer, param_groups
from normscope.train.runs import load_checkpoint, read_history
from normscope.train.settings import KERAS_DEFAULTS, TrainSettings, resolve_settings

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
DATA = "synthetic:train=240,test=80,size=16"


pytestmark = pytest.mark.usefixtures("one_thread")
RUN_FILES = (
    "description.yml",
    "config.json",
    "env.json",
    "metrics.csv",
    "last.pt",
    "best.pt",
    "results.json",
    "per_class.csv",
    "confusion_matrix.csv",
    "curves.png",
    "confusion.png",
)

TINY = """\
name: tiny
input: auto
classes: auto
layers:
  - conv: {{filters: 6, kernel: 3, activation: relu}}
  - norm
  - maxpool: 2
  - conv: {{name: c2, filters: 8, kernel: 3, activation: relu}}
  - maxpool: 2
  - flatten
  - dropout: 0.2
  - dense: {{name: classifier}}
train:
  epochs: {epochs}
  batch_size: 32
  augment: {{crop: 2, flip: true}}
{extra}"""


def tiny(tmp_path: Path, epochs: int = 2, extra: str = "", name: str = "tiny.yml") -> Path:
    p = tmp_path / name
    p.write_text(TINY.format(epochs=epochs, extra=textwrap.indent(extra, "  ")))
    return p


def run_tiny(tmp_path, **kw) -> Path:
    kw.setdefault("data", DATA)
    kw.setdefault("progress", "none")
    kw.setdefault("out", tmp_path / "runs")
    return train(kw.pop("yml", None) or tiny(tmp_path), **kw)


def table(path: Path, drop=("seconds",)) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


# --------------------------------------------------------------------------- #
# settings
# --------------------------------------------------------------------------- #


def spec_with(tmp_path, train_yaml: str):
    return load_spec(tiny(tmp_path, extra=train_yaml, name="s.yml"))


@pytest.mark.parametrize("opt", sorted(KERAS_DEFAULTS))
def test_keras_defaults(tmp_path, opt):
    t = resolve_settings(spec_with(tmp_path, f"optimizer: {opt}\n"))
    assert t["lr"] == KERAS_DEFAULTS[opt]["lr"]
    model = build_model(tiny(tmp_path), input_shape=(3, 16, 16), classes=4)
    o = make_optimizer(model, t)
    d = o.defaults
    expect = {
        "adam": (torch.optim.Adam, {"lr": 1e-3, "eps": 1e-7, "betas": (0.9, 0.999)}),
        "adamw": (torch.optim.AdamW, {"lr": 1e-3, "eps": 1e-7, "weight_decay": 0.004}),
        "sgd": (torch.optim.SGD, {"lr": 0.01, "momentum": 0.0, "nesterov": False}),
        "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}),
        "adagrad": (torch.optim.Adagrad, {"lr": 1e-3, "eps": 1e-7, "initial_accumulator_value": 0.1}),
        "adadelta": (torch.optim.Adadelta, {"lr": 1e-3, "rho": 0.95, "eps": 1e-7}),
    }[opt]
    assert type(o) is expect[0]
    for k, v in expect[1].items():
        assert d[k] == pytest.approx(v) if isinstance(v, float) else d[k] == v, k
    # one step works with every optimizer
    loss = model(torch.randn(4, 3, 16, 16)).logsumexp(1).mean()
    loss.backward()
    o.step()


def test_settings_overrides_and_checks(tmp_path):
    spec = spec_with(tmp_path, "optimizer: adamw\nweight_decay: 0.0\nlr: 0.002\n")
    t = resolve_settings(spec, {"epochs": 7, "lr": None, "batch_size": 16})
    assert (t["epochs"], t["lr"], t["batch_size"], t["weight_decay"]) == (7, 0.002, 16, 0.0)
    with pytest.raises(SpecError, match="nesterov"):
        resolve_settings(spec_with(tmp_path, "optimizer: sgd\nnesterov: true\n"))


def test_train_settings_are_the_dsl_train_section(tmp_path):
    assert [f.name for f in dataclasses.fields(TrainSettings)] == list(TRAIN_ARGS)
    t = resolve_settings(spec_with(tmp_path, "lr_mult: {c2: 0.5}\n"), {"seed": 3})
    assert isinstance(t, TrainSettings) and t.seed == t["seed"] == 3 and t.augment.crop == 2
    assert TrainSettings.from_dict(t.to_dict()) == t
    assert type(t.to_dict()["lr_mult"]) is dict and t.to_dict()["augment"] == {"crop": 2, "flip": True}


def test_lr_schedules():
    base = {"warmup_epochs": 0, "step_size": 2, "gamma": 0.5}
    f = lambda s, sched, **kw: lr_factor(s, 100, 10, {**base, "schedule": sched, **kw})  # noqa: E731
    assert all(f(s, "none") == 1.0 for s in range(100))
    assert f(0, "cosine") == 1.0 and f(50, "cosine") == pytest.approx(0.5) and f(99, "cosine") < 0.01
    assert [f(s, "step") for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]
    assert f(0, "cosine", warmup_epochs=1) == pytest.approx(0.1) and f(9, "cosine", warmup_epochs=1) == 1.0
    one = [f(s, "onecycle") for s in range(100)]
    assert one[0] == pytest.approx(0.04) and max(one) == pytest.approx(1.0) and one[-1] < 0.01
    assert int(np.argmax(one)) == 30


def test_param_groups_lr_mult_and_freeze(tmp_path):
    p = tiny(tmp_path, extra="freeze: [conv*]\nlr_mult: {c2: 0.1, 'class*': 2}\n")
    model = build_model(p, input_shape=(3, 16, 16), classes=4)
    groups = param_groups(model, 1e-3, load_spec(p).train["lr_mult"])
    by_mult = {g["lr_mult"]: g for g in groups}
    assert set(by_mult) == {0.1, 2.0}  # the frozen conv has no group
    assert {id(q) for q in model.layers["c2"].parameters()} == {id(q) for q in by_mult[0.1]["params"]}
    assert by_mult[2.0]["lr"] == pytest.approx(2e-3)
    with pytest.raises(SpecError, match="nomatch"):
        param_groups(model, 1e-3, {"nomatch": 2})


# --------------------------------------------------------------------------- #
# data on the device
# --------------------------------------------------------------------------- #


def small_splits(n=10, c=3, h=6, w=5) -> Splits:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    y = np.arange(n) % 3
    return Splits(
        "t",
        {"train": x, "val": x[:2], "test": x[:3]},
        {"train": y, "val": y[:2], "test": y[:3]},
        np.full(c, 0.5),
        np.full(c, 0.25),
        ["a", "b", "c"],
    )


def test_device_crop_and_flip_match_reference():
    s = small_splits()
    d = DeviceData(s, torch.device("cpu"), crop=2)
    perm, offsets, flips = epoch_order(10, seed=3, epoch=1, crop=2, flip=True)
    got = d.train_batch(perm, offsets, flips)
    x = torch.from_numpy(s.x["train"]).permute(0, 3, 1, 2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i, j in enumerate(perm.tolist()):
        dy, dx = offsets[i].tolist()
        ref = padded[j, :, dy : dy + 6, dx : dx + 5]
        assert torch.equal(got[i], ref.flip(2) if flips[i] else ref)
    assert torch.equal(DeviceData(s, torch.device("cpu"), 0).train_batch(perm, None, None), x[perm])
    # one epoch's order depends only on (seed, epoch)
    a, b = epoch_order(10, 3, 1, 2, True), epoch_order(10, 3, 1, 2, True)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(epoch_order(10, 3, 2, 2, True)[0], a[0])


def test_prepare_data_splits_and_statistics():
    s = prepare_data(DATA, validation=0.25)
    assert {k: len(v) for k, v in s.y.items()} == {"train": 180, "val": 60, "test": 80}
    assert s.input_shape == (3, 16, 16) and s.num_classes == 10
    x = s.x["train"].astype(np.float64) / 255
    np.testing.assert_allclose(s.mean, x.mean(axis=(0, 1, 2)), atol=1e-9)
    np.testing.assert_allclose(s.std, x.std(axis=(0, 1, 2)), atol=1e-9)
    s2 = prepare_data(DATA, validation=0.25)
    assert all(np.array_equal(s.x[k], s2.x[k]) for k in s.x)
    plain = prepare_data(DATA, standardize=False)
    assert plain.mean.tolist() == [0, 0, 0] and plain.std.tolist() == [1, 1, 1]


# --------------------------------------------------------------------------- #
# whole runs
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("det")
    yml = tiny(tmp, extra="optimizer: adam\nlabel_smoothing: 0.1\nschedule: cosine\n")
    a = train(yml, data=DATA, out=tmp / "a", norm="bn", reuse=True, progress="none")
    b = train(yml, data=DATA, out=tmp / "b", norm="bn", reuse=True, progress="none")
    c = train(yml, data=DATA, out=tmp / "c", norm="bn", reuse=True, progress="none", seed=1)
    return a, b, c


def test_run_directory_is_complete(two_runs):
    run = two_runs[0]
    for f in RUN_FILES:
        assert (run / f).is_file(), f
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and results["best_epoch"] in (1, 2)
    for k in ("loss", "accuracy", "precision", "recall", "auc", "top5_accuracy", "macro_f1"):
        assert isinstance(results["test"][k], float)
    assert results["test"]["n"] == 80
    assert results["params"]["total"] == results["params"]["trainable"] + results["params"]["non_trainable"]
    hist = read_history(run / "metrics.csv")
    assert [r["epoch"] for r in hist] == [1, 2] and all(r["val_accuracy"] is not None for r in hist)
    assert results["best_epoch"] == 1 + int(np.argmax([r["val_accuracy"] for r in hist]))
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and "git" in env
    config = json.loads((run / "config.json").read_text())
    assert config["sizes"] == {"train": 216, "val": 24, "test": 80}
    best = load_checkpoint(run / "best.pt")  # weights_only=True
    assert best["epoch"] == results["best_epoch"]
    last = load_checkpoint(run / "last.pt")
    assert last["epoch"] == 2 and "optimizer" in last and last["rng_cpu"].dtype == torch.uint8
    per_class = table(run / "per_class.csv", drop=())
    assert len(per_class) == 10 and sum(int(r["support"]) for r in per_class) == 80
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # the resolved description reproduces the model
    spec = load_spec(run / "description.yml")
    assert spec.name == "tiny_bn_v2" and spec.input_shape == (3, 16, 16) and spec.classes == 10
    assert spec.train["schedule"] == "cosine" and spec.train["data"] == DATA


def test_same_seed_same_metrics_on_cpu(two_runs):
    a, b, c = two_runs
    assert table(a / "metrics.csv") == table(b / "metrics.csv")
    ra, rb, rc = (json.loads((r / "results.json").read_text()) for r in (a, b, c))
    assert ra["test"] == rb["test"]
    assert table(a / "metrics.csv") != table(c / "metrics.csv")  # another seed, another run


def test_shape_mismatch_is_an_error_unless_fit_data(tmp_path):
    yml = tmp_path / "fixed.yml"
    yml.write_text(
        tiny(tmp_path).read_text().replace("input: auto", "input: [3, 32, 32]").replace("classes: auto", "classes: 100")
    )
    with pytest.raises(NormscopeError) as err:
        run_tiny(tmp_path, yml=yml, epochs=1)
    msg = str(err.value)
    assert "3x32x32" in msg and "3x16x16" in msg and "100 classes" in msg and "--fit-data" in msg
    run = run_tiny(tmp_path, yml=yml, epochs=1, fit_data=True)
    assert load_spec(run / "description.yml").input_shape == (3, 16, 16)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    # the lr jumps by 1e20 after epoch 1: epoch 2 diverges
    yml = tiny(tmp_path, epochs=3, extra="optimizer: sgd\nschedule: step\nstep_size: 1\ngamma: 1.0e+20\n")
    result = CliRunner().invoke(
        app, ["train", str(yml), "--data", DATA, "--out", str(tmp_path / "r"), "--norm", "none", "--progress", "log"]
    )
    assert result.exit_code == 1
    assert "training failed" in result.output and "nan" in result.output.lower()
    (run,) = (tmp_path / "r").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "failed" and "epoch 2" in results["message"]
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in load_checkpoint(run / "last.pt")["model"].values())


def test_aux_heads_train(tmp_path):
    yml = tmp_path / "aux.yml"
    yml.write_text(
        textwrap.dedent("""\
        name: auxnet
        input: auto
        classes: auto
        layers:
          - conv: {name: c1, filters: 6, kernel: 3, activation: relu}
          - globalavgpool: {name: aux_pool, from: c1}
          - dense: {name: aux_classifier, aux: 0.3}
          - maxpool: {size: 2, from: c1}
          - flatten
          - dense: {name: classifier}
        train: {epochs: 1, batch_size: 64, optimizer: sgd, momentum: 0.9, nesterov: true}
        """)
    )
    run = run_tiny(tmp_path, yml=yml)
    assert json.loads((run / "results.json").read_text())["status"] == "completed"


def test_gpu_code_path_on_cpu_bf16_autocast_channels_last(tmp_path):
    """What CUDA runs by default (bfloat16 autocast, channels_last), exercised on the CPU."""
    run = run_tiny(tmp_path, epochs=1, norm="gdn", reuse=True, amp=True, channels_last=True)
    config = json.loads((run / "config.json").read_text())
    assert config["amp"] and config["channels_last"]
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and math.isfinite(results["test"]["loss"])
    best = load_checkpoint(run / "best.pt")
    assert all(v.is_contiguous() for v in best["model"].values())  # stored in the default layout


# --------------------------------------------------------------------------- #
# resume after SIGKILL
# --------------------------------------------------------------------------- #

CHILD = """
import sys, time
from pathlib import Path
from normscope.train import train

def wait(row):  # after epoch 1's checkpoints: say so, then wait for the kill (a known point)
    (Path(sys.argv[3]) / "epoch-done").write_text(str(row["epoch"]))
    time.sleep(600)

train(sys.argv[1], data=sys.argv[2], out=sys.argv[3], name="killed", progress="log", callbacks=[wait])
"""


def test_resume_after_sigkill_is_exact(tmp_path):
    yml = tiny(tmp_path, epochs=3, extra="schedule: cosine\n")
    out = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as in this process (one_thread)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(yml), DATA, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    last = out / "killed" / "last.pt"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and child.poll() is None:
            if (out / "epoch-done").is_file():  # last.pt and best.pt complete, the child waiting
                break
            time.sleep(0.05)
        assert child.poll() is None, child.stdout.read().decode()
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    run = out / "killed"
    done = load_checkpoint(last)["epoch"]
    assert done == 1
    assert json.loads((run / "results.json").read_text())["status"] == "running"
    assert runs.effective_status(run) == "interrupted"  # its process is gone: not running
    shown = CliRunner().invoke(app, ["eval", str(run)])
    assert shown.exit_code == 0 and f"{run} was interrupted; continue it with: normscope train --resume" in " ".join(
        shown.output.split()
    )
    assert not list(run.glob(".*.tmp"))
    resumed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from normscope.cli import main; main()",
            "train",
            "--resume",
            str(run),
            "--progress",
            "log",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert f"resuming {run} after epoch {done}" in resumed.stdout

    ref = run_tiny(tmp_path, yml=yml, out=tmp_path / "ref")
    assert table(run / "metrics.csv") == table(ref / "metrics.csv")
    got, want = (json.loads((r / "results.json").read_text()) for r in (run, ref))
    assert got["status"] == "completed" and got["test"] == want["test"] and got["best_epoch"] == want["best_epoch"]
    # a completed run is not resumed again, but can be extended
    again = CliRunner().invoke(app, ["train", "--resume", str(run)])
    assert again.exit_code == 2 and "already complete" in again.output


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def test_cli_train_eval_and_data(tmp_path, two_runs):
    runner = CliRunner()
    run = two_runs[0]
    r = runner.invoke(app, ["eval", str(run), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {
        k: v for k, v in json.loads((run / "results.json").read_text())["test"].items() if k != "n"
    }
    r = runner.invoke(app, ["eval", str(run)])
    assert r.exit_code == 0 and "AUC" in r.output and "results.json" in r.output

    r = runner.invoke(app, ["data", "info", DATA, "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["val"] == 24

    r = runner.invoke(app, ["train", str(tiny(tmp_path)), "--data", "cifar100", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "cifar-100" in r.output.lower() and "Traceback" not in r.output
    r = runner.invoke(
        app,
        ["train", str(tiny(tmp_path)), "--data", DATA, "--gpu"]
        if not torch.cuda.is_available()
        else ["train", "--resume", str(tmp_path / "nothing")],
    )
    assert r.exit_code == 2 and "error" in r.output
    r = runner.invoke(app, ["train", "--resume", str(run), "--lr", "0.1"])
    assert r.exit_code == 2 and "--lr" in r.output
    r = runner.invoke(app, ["train", str(tiny(tmp_path))])
    assert r.exit_code == 2 and "--data" in r.output

    r = runner.invoke(
        app,
        [
            "train",
            str(tiny(tmp_path)),
            "--data",
            DATA,
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--lr",
            "0.003",
            "--seed",
            "5",
            "--out",
            str(tmp_path / "cli"),
            "--name",
            "x",
            "--progress",
            "log",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "epoch 1/1" in r.output and "test (best epoch 1)" in r.output
    t = load_spec(tmp_path / "cli" / "x" / "description.yml").train
    assert (t["epochs"], t["batch_size"], t["lr"], t["seed"]) == (1, 64, 0.003, 5)


# --------------------------------------------------------------------------- #
# real data
# --------------------------------------------------------------------------- #


@pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_cnn_learns_on_a_fashion_mnist_subset(tmp_path):
    run = train(
        ROOT / "examples" / "fashion_cnn.yml",
        data="fashion-mnist",
        subset=1500,
        test_subset=500,
        epochs=2,
        batch_size=32,
        out=tmp_path,
        progress="none",
    )
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["test"]["accuracy"] > 0.5, results["test"]  # five times chance (10 classes)
    assert results["test"]["auc"] > 0.9


def test_vgg16_trains_on_a_cifar100_fixture(tmp_path):
    from fixtures import write_cifar100_fixture

    write_cifar100_fixture(tmp_path / "data", n_train=100, n_test=50, tarball=True)
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(ROOT / "examples" / "vgg16_gdn_v2.yml"),
            "--data",
            "cifar100",
            "--data-dir",
            str(tmp_path / "data"),
            "--epochs",
            "1",
            "--batch-size",
            "45",
            "--out",
            str(tmp_path / "runs"),
            "--name",
            "v",
            "--progress",
            "log",
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "runs" / "v" / "results.json").read_text())
    assert results["status"] == "completed" and results["test"]["n"] == 50
    assert results["params"]["total"] == summarize(ROOT / "examples" / "vgg16_gdn_v2.yml").total_params
