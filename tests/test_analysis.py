"""Attribution (normscope.analysis, `normscope attribute`): exactness checks, the
planted-reliance validation, and the command on real run directories.

Planted reliance: in the "stats" data set the label is decided only by the per-channel
brightness (channel 0) and contrast (channel 1) of the image, over a per-image
standardized noise texture; an InstanceNorm right on the input removes exactly that, and
reuse gives it back. In the "pattern" control the label is a spatial pattern while every
channel's mean and contrast are random.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import normscope as ns
from normscope.analysis import (
    METHODS,
    attribute,
    attribute_run,
    build_units,
    classifier_inputs,
    parse_methods,
    plot_attribution,
    write_attribution,
    write_per_class_csv,
)
from normscope.cli import app
from normscope.errors import NormscopeError
from normscope.train import load_run, train

EX = Path(__file__).resolve().parents[1] / "examples"

TINY = """\
name: tiny
input: auto
classes: auto
norm: in
reuse: true
defaults: {activation: relu, padding: same}
layers:
  - norm                      # right on the input: removes each channel's mean and contrast
  - conv: 8
  - norm
  - maxpool: 2
  - conv: 16
  - globalavgpool
  - flatten
  - dense: {name: classifier, activation: softmax}
train:
  optimizer: adam
  lr: 0.003
  batch_size: 64
  epochs: 15
"""


@contextlib.contextmanager
def threads(n: int = 1):
    """Tiny models on shared CPUs: one thread is several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread():
    with threads(1):
        yield


@pytest.fixture(scope="module")
def tiny_yml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.yml"
    path.write_text(TINY)
    return path


# --------------------------------------------------------------------------- #
# Planted data (uint8 N x H x W x C, as a data set stores it)
# --------------------------------------------------------------------------- #


def _standardized(a: np.ndarray) -> np.ndarray:
    """Per image and channel: mean 0, standard deviation 1 over H, W (axes 1, 2)."""
    a = a - a.mean(axis=(1, 2), keepdims=True)
    return a / a.std(axis=(1, 2), keepdims=True)


def stats_data(n: int, rng: np.random.Generator, size: int = 8):
    """4 classes = 2 x (channel 0 dark | bright) + (channel 1 low | high contrast); the
    texture is noise standardized per image, so nothing but the statistics carries the label."""
    y = rng.integers(0, 4, n)
    noise = _standardized(rng.standard_normal((n, size, size, 3)))  # |noise| <= sqrt(63) < 7.94
    mean = rng.uniform(120, 136, (n, 3))
    sd = rng.uniform(4, 12, (n, 3))
    mean[:, 0] += np.where(y // 2 == 1, 40.0, -40.0)
    sd[:, 0] = rng.uniform(4, 9, n)
    sd[:, 1] = np.where(y % 2 == 1, rng.uniform(11, 14, n), rng.uniform(3, 5, n))
    x = mean[:, None, None, :] + sd[:, None, None, :] * noise
    assert x.min() >= 0 and x.max() <= 255  # never clipped: clipping would leak the label
    return np.round(x).astype(np.uint8), y.astype(np.int64)


def pattern_data(n: int, rng: np.random.Generator, size: int = 8):
    """4 classes = stripes of period 2 horizontal | vertical, a checkerboard, stripes of
    period 4; each channel's mean and contrast drawn at random, independently of the label
    (every pattern has the same mean and variance)."""
    y = rng.integers(0, 4, n)
    i = np.arange(size)
    rows = np.broadcast_to(i[:, None], (size, size))
    cols = np.broadcast_to(i[None, :], (size, size))
    patterns = np.stack(
        [(-1.0) ** rows, (-1.0) ** cols, (-1.0) ** (rows + cols), np.where((rows // 2) % 2 == 0, 1.0, -1.0)]
    )
    x = patterns[y][:, :, :, None] + 0.5 * rng.standard_normal((n, size, size, 3))
    x = _standardized(x)
    mean = rng.uniform(96, 160, (n, 3))
    sd = rng.uniform(6, 20, (n, 3))
    x = mean[:, None, None, :] + sd[:, None, None, :] * x
    assert x.min() >= 0 and x.max() <= 255
    return np.round(x).astype(np.uint8), y.astype(np.int64)


def to_tensors(x_train, x_test):
    """uint8 NHWC -> float NCHW standardized with the training channel statistics (as the trainer)."""
    tr = torch.from_numpy(x_train).permute(0, 3, 1, 2).float() / 255
    te = torch.from_numpy(x_test).permute(0, 3, 1, 2).float() / 255
    m, s = tr.mean((0, 2, 3), keepdim=True), tr.std((0, 2, 3), keepdim=True)
    return (tr - m) / s, (te - m) / s


def fit(model, x, y, epochs=15, batch_size=64, lr=3e-3, seed=0):
    """The minimal training loop of these tests: Adam, shuffled mini-batches."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def planted(make, tiny_yml, norm, reuse, seed=0, n_train=1024, n_test=512):
    rng = np.random.default_rng(seed)
    xtr, ytr = make(n_train, rng)
    xte, yte = make(n_test, rng)
    tr, te = to_tensors(xtr, xte)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    with threads(1):  # module-scoped fixtures run before the autouse one
        torch.manual_seed(seed)
        model = ns.build_model(tiny_yml, norm=norm, reuse=reuse, input_shape=(3, 8, 8), classes=4)
        fit(model, tr, ytr, seed=seed)
        return attribute(model, te, yte, baseline_x=tr, seed=seed)


def row(result, level, name):
    rows = {"group": result["groups"], "layer": result["layers"], "total": result["totals"]}[level]
    return next(r for r in rows if r["name"] == name)


@pytest.fixture(scope="module")
def stats_in_v2(tiny_yml):
    return planted(stats_data, tiny_yml, "in", True)


@pytest.fixture(scope="module")
def pattern_in_v2(tiny_yml):
    return planted(pattern_data, tiny_yml, "in", True)


# --------------------------------------------------------------------------- #
# Planted reliance
# --------------------------------------------------------------------------- #


def test_planted_stats_in_v2_relies_on_the_input_statistics(stats_in_v2):
    r = stats_in_v2
    assert r["accuracy"] > 0.75  # chance is 0.25
    assert r["stats_share"] > 0.6  # most |IG| on the statistics ...
    in1 = row(r, "layer", "in1")
    assert in1["ig_share"] > 0.6  # ... of the input's norm layer
    assert in1["logit_share"] > 0.6
    assert in1["permutation_accuracy_drop"] > 0.4  # shuffling them: near chance
    assert in1["ablation_accuracy_drop"] > 0.4
    assert row(r, "group", "in1.mean")["permutation_accuracy_drop"] > 0.2  # brightness
    assert row(r, "group", "in1.var")["permutation_accuracy_drop"] > 0.2  # contrast
    # the features (computed from the normalized, label-free input) do not matter
    feats = row(r, "total", "features")
    assert feats["permutation_accuracy_drop"] < 0.05
    assert feats["ig_share"] < 0.4
    # nor does the deeper layer (it sees the label-free normalized input only)
    assert row(r, "layer", "in2")["permutation_accuracy_drop"] < 0.03


def test_planted_stats_in_stays_at_chance(tiny_yml):
    r = planted(stats_data, tiny_yml, "in", False)
    assert r["accuracy"] < 0.35  # 4 balanced classes: chance 0.25
    assert r["features_only"] and r["stats_share"] == 0.0
    assert [g["name"] for g in r["groups"]] == ["features"]
    assert r["groups"][0]["ig_share"] == pytest.approx(1.0)


def test_planted_control_pattern_input_statistics_negligible(pattern_in_v2):
    r = pattern_in_v2
    assert r["accuracy"] > 0.9
    in1 = row(r, "layer", "in1")
    assert in1["ig_share"] < 0.1
    assert in1["logit_share"] < 0.1
    assert abs(in1["permutation_accuracy_drop"]) < 0.05
    assert abs(in1["ablation_accuracy_drop"]) < 0.05
    # Reported, not asserted away: the deeper layer's variances measure the texture energy
    # after the first conv, which depends on the pattern, so they may legitimately matter.
    in2 = row(r, "layer", "in2")
    print(
        f"\ncontrol: in2 ig_share {in2['ig_share']:.3f}, permutation drop "
        f"{in2['permutation_accuracy_drop']:.3f}; features ig_share {row(r, 'total', 'features')['ig_share']:.3f}"
    )
    assert math.isfinite(in2["ig_share"])


# --------------------------------------------------------------------------- #
# Exactness and bookkeeping, on untrained models
# --------------------------------------------------------------------------- #


def test_ig_equals_exact_linear_decomposition_and_shares_add_up():
    torch.manual_seed(0)
    model = ns.build_model(EX / "perceptnet_in_v2.yml", classes=10).eval()
    x, bx = torch.randn(40, 3, 32, 32), torch.randn(30, 3, 32, 32)
    y = torch.randint(0, 10, (40,))
    r = attribute(model, x, y, baseline_x=bx, n_steps=8, repeats=2, by_class=True)
    assert r["checks"]["ig_minus_exact_max"] < 1e-5
    assert r["checks"]["logit_completeness_max_error"] < 1e-4
    assert sum(g["ig_share"] for g in r["groups"]) == pytest.approx(1.0)
    assert sum(g["logit_share"] for g in r["groups"]) == pytest.approx(1.0)
    assert sum(t["ig_share"] for t in r["totals"]) == pytest.approx(1.0)
    assert r["stats_share"] == pytest.approx(row(r, "total", "statistics")["ig_share"])
    assert r["stats_share"] == pytest.approx(sum(layer["ig_share"] for layer in r["layers"]))
    names = [g["name"] for g in r["groups"]]
    assert names == [g.name for g in model.classifier_input]
    assert [layer["name"] for layer in r["layers"]] == ["in1", "in2", "in3", "in4"]
    assert sum(g["size"] for g in r["groups"]) == r["classifier_input_size"] == 408
    for g in r["groups"]:
        assert g["ig_share_per_dim"] == pytest.approx(g["ig_share"] / g["size"])
    # the signed contributions add up to the target logit minus the logit at the baseline
    z, logits = classifier_inputs(model, x)
    zb, _ = classifier_inputs(model, bx)
    t = logits.argmax(1)
    with torch.no_grad():
        gap = (logits.gather(1, t[:, None])[:, 0] - model.classifier(zb.mean(0, keepdim=True))[0, t]).mean()
    assert sum(g["logit_contribution"] for g in r["groups"]) == pytest.approx(float(gap), abs=1e-4)
    # per class rows: every class present, every unit
    classes = sorted(set(y.tolist()))
    assert len(r["per_class"]) == len(classes) * (len(r["groups"]) + len(r["layers"]) + len(r["totals"]))


def test_bn_v2_statistics_are_constant_in_eval():
    torch.manual_seed(0)
    model = ns.build_model(EX / "perceptnet_bn_v2.yml", classes=10)
    model.train()
    with torch.no_grad():  # give the running statistics some values
        for _ in range(3):
            model(torch.randn(16, 3, 32, 32) * 2 + 1)
    r = attribute(
        model, torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,)), baseline_x=torch.randn(16, 3, 32, 32), repeats=2
    )
    assert model.training  # the mode is restored
    for g in r["groups"][1:]:
        assert g["constant"]
        assert g["ig_share"] == 0 and g["permutation_accuracy_drop"] == 0 and g["ablation_accuracy_drop"] == 0
    assert r["stats_share"] == 0
    assert any("constant" in n for n in r["notes"])
    assert any(abs(g["logit_offset"]) > 0 for g in r["groups"][1:])  # a fixed bias, though


def test_methods_subset_and_errors():
    torch.manual_seed(0)
    model = ns.build_model(EX / "perceptnet_gdn_v2.yml", classes=5).eval()
    x, y = torch.randn(20, 3, 32, 32), torch.randint(0, 5, (20,))
    r = attribute(model, x, y, methods="logit,ablation", target="label")
    assert r["stats_share"] is None and r["stats_logit_share"] is not None
    assert all(g["ig_share"] is None and g["permutation_accuracy_drop"] is None for g in r["groups"])
    assert [g["name"] for g in r["groups"]][1:] == [f"gdn{i}.denominator" for i in range(1, 5)]
    assert any("baseline" in n for n in r["notes"])  # no training images given
    assert parse_methods(None) == METHODS
    assert parse_methods(["ig", "permutation,logit"]) == ("ig", "logit", "permutation")
    with pytest.raises(NormscopeError, match="unknown method"):
        parse_methods("shap")
    with pytest.raises(NormscopeError, match="target"):
        attribute(model, x, y, target="other")
    with pytest.raises(NormscopeError, match="labels"):
        attribute(model, x, y[:5])


def test_outputs_written(tmp_path):
    torch.manual_seed(0)
    model = ns.build_model(EX / "perceptnet_in_v2.yml", classes=3).eval()
    r = attribute(
        model,
        torch.randn(24, 3, 32, 32),
        torch.randint(0, 3, (24,)),
        by_class=True,
        class_names=["a", "b", "c"],
        repeats=2,
        n_steps=4,
    )
    write_attribution(tmp_path / "attribution.json", r)
    doc = json.loads((tmp_path / "attribution.json").read_text())
    assert "per_class" not in doc and doc["groups"][0]["name"] == "features"
    assert {
        "name",
        "size",
        "ig_share",
        "ig_share_per_dim",
        "logit_share",
        "permutation_accuracy_drop",
        "permutation_loss_rise",
        "ablation_accuracy_drop",
        "ablation_loss_rise",
    } <= set(doc["groups"][1])
    write_per_class_csv(tmp_path / "pc.csv", r)
    lines = (tmp_path / "pc.csv").read_text().splitlines()
    assert lines[0].startswith("class,class_name,images,accuracy,unit")
    assert len(lines) == 1 + len(r["per_class"])
    plot_attribution(tmp_path / "a.png", r, title="t")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left


def test_build_units_of_the_study_model():
    model = ns.build_model(EX / "vgg16_in_v2.yml")
    groups, layers, totals = build_units(model)
    assert [u.size for u in totals] == [512, 480]
    assert [(u.name, u.size) for u in layers] == [("in1", 32), ("in2", 64), ("in3", 128), ("in4", 256)]
    assert groups[1].layer == "in1" and groups[1].stat == "mean"


# --------------------------------------------------------------------------- #
# The command, on run directories written by the trainer
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def planted_runs(tmp_path_factory, tiny_yml):
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(3)
    xtr, ytr = stats_data(800, rng)
    xte, yte = stats_data(300, rng)
    npz = root / "planted.npz"
    np.savez(
        npz,
        x_train=xtr,
        y_train=ytr,
        x_test=xte,
        y_test=yte,
        class_names=np.array(["dark-low", "dark-high", "bright-low", "bright-high"]),
    )
    runs = {}
    for key, reuse in (("in_v2", True), ("in", False)):
        with threads(1):
            runs[key] = train(
                tiny_yml,
                data=f"npz:{npz}",
                out=root,
                name=key,
                norm="in",
                reuse=reuse,
                epochs=12 if reuse else 1,
                device="cpu",
                progress="none",
            )
    return runs


def test_cli_attribute_on_a_trained_in_v2_run(planted_runs):
    run_dir = planted_runs["in_v2"]
    res = CliRunner().invoke(
        app,
        [
            "attribute",
            str(run_dir),
            "--samples",
            "200",
            "--by-class",
            "--steps",
            "8",
            "--repeats",
            "3",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "stats_share" in res.output and "in1.mean" in res.output
    doc = json.loads((run_dir / "attribution.json").read_text())
    assert doc["split"] == "test" and doc["samples"] == 200 and doc["baseline"] == "train-mean"
    assert doc["accuracy"] > 0.7
    assert doc["stats_share"] > 0.6
    assert next(layer for layer in doc["layers"] if layer["name"] == "in1")["permutation_accuracy_drop"] > 0.3
    assert (run_dir / "attribution.png").is_file()
    csv_lines = (run_dir / "attribution_per_class.csv").read_text().splitlines()
    assert any(",bright-high," in line for line in csv_lines)
    assert not list(run_dir.glob(".*.tmp"))


def test_cli_attribute_json_prints_what_it_wrote(planted_runs, tmp_path):
    out = tmp_path / "json"
    res = CliRunner().invoke(
        app,
        [
            "attribute",
            str(planted_runs["in_v2"]),
            "--json",
            "--samples",
            "100",
            "--steps",
            "4",
            "--repeats",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, (res.output, res.exception)
    doc = json.loads(res.stdout)  # stdout is the JSON and nothing else
    written = json.loads((out / "attribution.json").read_text())
    assert doc["files"] == [str(out / "attribution.json"), str(out / "attribution.png")]
    assert {k: v for k, v in doc.items() if k != "files"} == written
    statistics = next(t for t in doc["totals"] if t["name"] == "statistics")
    assert doc["stats_share"] == statistics["ig_share"] == written["stats_share"]
    assert 0.5 < doc["stats_share"] <= 1  # the planted reliance, as in the table
    assert doc["samples"] == 100 and "per_class" not in doc


def test_cli_attribute_run_without_reuse(planted_runs):
    run_dir = planted_runs["in"]
    res = CliRunner().invoke(
        app, ["attribute", str(run_dir), "--samples", "100", "--methods", "ig,logit", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    assert "features only" in res.output
    # named by its methods: not the default-named attribution.json another call wrote or will write
    doc = json.loads((run_dir / "attribution-ig+logit.json").read_text())
    assert (run_dir / "attribution-ig+logit.png").is_file()
    assert doc["stats_share"] == 0 and doc["features_only"] is True
    assert [g["name"] for g in doc["groups"]] == ["features"] and doc["layers"] == []


def test_cli_attribute_user_errors(tmp_path, planted_runs):
    runner = CliRunner()
    res = runner.invoke(app, ["attribute", str(tmp_path)])
    assert res.exit_code == 2 and "not a normscope run directory" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["attribute", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such run directory" in res.output
    res = runner.invoke(app, ["attribute", str(planted_runs["in"]), "--methods", "shap"])
    assert res.exit_code == 2 and "unknown method" in res.output
    res = runner.invoke(app, ["attribute", str(planted_runs["in"]), "--split", "dev"])
    assert res.exit_code == 2 and "--split" in res.output


def test_attribute_run_python_api_as_the_study_calls_it(planted_runs, tmp_path):
    out = tmp_path / "elsewhere"
    r = attribute_run(
        planted_runs["in_v2"], samples=64, device="cpu", quiet=True, out=out, methods="logit,permutation", repeats=2
    )
    # named by its methods (the default-named files are every method's)
    assert r["files"] == [
        str(out / "attribution-logit+permutation.json"),
        str(out / "attribution-logit+permutation.png"),
    ]
    assert r["samples"] == 64 and r["stats_share"] is None and r["stats_logit_share"] > 0.5
    run = load_run(planted_runs["in_v2"])
    r2 = attribute_run(run, split="val", samples=0, write=False, methods="ablation")
    assert r2["files"] == [] and r2["split"] == "val" and r2["samples"] == run.config["sizes"]["val"]
