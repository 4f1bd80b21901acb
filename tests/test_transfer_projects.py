"""The two course transfer projects end to end on small generated image folders, with random
"pretrained" torchvision weights saved as .pth: birds (ResNet-50, frozen backbone and a new
head, then fine-tuned) and clip-art (VGG-19's fc2 features and a linear SVM, then fine-tuned).
Also: frozen BatchNorm stays frozen, a frozen backbone's cached features train the head as
the backbone would, pretrained layers left random are warned about, `normscope svm`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

from fixtures import make_folder
from normscope.cli import app
from normscope.model.build import build_model
from normscope.model.weights import match_weights
from normscope.train import train

EX = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.usefixtures("one_thread")

HEAD = """\
name: head
input: auto
classes: auto
norm: bn
layers:
  - conv: {{name: conv1, filters: 6, kernel: 3, activation: relu}}
  - norm: {{name: n1}}
  - maxpool: 2
  - flatten
  - dense: {{name: fc1, units: 16, activation: relu}}
  - dense: {{name: classifier}}
train:
  epochs: 2
  batch_size: 32
  freeze: [conv1, n1, fc1]
  cache_features: {cache}
"""
DATA = "synthetic:train=160,test=40,size=16"


def cli(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def history(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- #
# frozen means frozen
# --------------------------------------------------------------------------- #


def test_frozen_batchnorm_keeps_its_statistics_and_cached_features_train_the_head_alike(tmp_path, capsys):
    runs = {}
    for cache in ("true", "false"):
        yml = tmp_path / f"head_{cache}.yml"
        yml.write_text(HEAD.format(cache=cache))
        runs[cache] = train(yml, data=DATA, out=tmp_path / "runs", name=f"c_{cache}", progress="log")
    log = capsys.readouterr().out
    assert log.count("frozen backbone up to 'fc1': its features computed once") == 1
    cached, uncached = history(runs["true"]), history(runs["false"])
    for a, b in zip(cached, uncached, strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-5)
    initial = build_model(tmp_path / "head_true.yml", input_shape=(3, 16, 16), classes=10, seed=0).state_dict()
    for run in runs.values():
        best = torch.load(run / "best.pt", weights_only=True)["model"]
        for key in ("running_mean", "running_var", "num_batches_tracked", "weight", "bias"):
            assert torch.equal(best[f"layers.n1.{key}"], initial[f"layers.n1.{key}"])
        assert torch.equal(best["layers.fc1.weight"], initial["layers.fc1.weight"])
        assert not torch.equal(best["layers.classifier.weight"], initial["layers.classifier.weight"])


# --------------------------------------------------------------------------- #
# pretrained layers left random
# --------------------------------------------------------------------------- #


def test_layers_left_random_by_pretrained_weights_are_warned_about_loudly(tmp_path):
    yml = tmp_path / "head.yml"
    yml.write_text(HEAD.format(cache="true"))
    weights = tmp_path / "w32.pth"
    torch.save(build_model(yml, input_shape=(3, 32, 32), classes=10).state_dict(), weights)  # fc1 for 32 px
    with torch.device("meta"):
        report = match_weights(build_model(yml, input_shape=(3, 16, 16), classes=10), str(weights))
    assert report.random == ["fc1"] and report.discarded == ["layers.fc1"]
    assert "1 layer of the model stays at its random initialization: fc1" in report.warning()
    r = cli("summary", yml, "--input", "3,16,16", "--classes", "10", "--weights", weights)
    assert "pretrained layers left random" in r.output and "adaptiveavgpool: 7" in r.output
    run = train(yml, data=DATA, weights=str(weights), epochs=1, out=tmp_path / "runs", progress="none")
    recorded = json.loads((run / "weights.json").read_text())
    assert recorded["random"] == ["fc1"] and "fc1" in recorded["warning"]
    r = cli("features", run, "--layer", "classifier", "--out", tmp_path / "c.npz")
    assert "features from random layers" in r.output and "'classifier' come from layers that started" in r.output
    r = cli("features", run, "--layer", "conv1", "--out", tmp_path / "c.npz")
    assert "features from random layers" not in r.output
    matched = match_weights(build_model(yml, input_shape=(3, 32, 32), classes=5), str(weights))
    assert matched.warning() is None and matched.initialized == [
        ("classifier", "a new head: 5×16 here, 10×16 in the weights")
    ]


# --------------------------------------------------------------------------- #
# normscope svm
# --------------------------------------------------------------------------- #


def test_svm_chooses_c_on_the_validation_split_and_reports_train_style_metrics(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1.2, (3, 6))

    def split(n):
        y = np.arange(n) % 3
        return (centres[y] + rng.normal(0, 1, (n, 6))).astype(np.float32), y

    arrays = {}
    for name, n in (("train", 90), ("val", 45), ("test", 60)):
        arrays[f"x_{name}"], arrays[f"y_{name}"] = split(n)
    path = tmp_path / "feat" / "fc2.npz"
    path.parent.mkdir()
    np.savez(path, **arrays, layer=np.array("fc2"), class_names=np.array(["a", "b", "c"]))
    r = cli("svm", path, "--c", "0.0001,0.01,1")
    result = json.loads((tmp_path / "feat" / "svm.json").read_text())
    assert f"wrote {tmp_path / 'feat' / 'svm.json'}" in r.output.replace("\n", "")
    fitted = {
        c: make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=10_000, random_state=0)).fit(
            arrays["x_train"], arrays["y_train"]
        )
        for c in (0.0001, 0.01, 1.0)
    }
    val = {c: m.score(arrays["x_val"], arrays["y_val"]) for c, m in fitted.items()}
    best = max(val, key=lambda c: (val[c], -c))
    assert [g["val_accuracy"] for g in result["grid"]] == pytest.approx(list(val.values()))
    assert result["C"] == best and result["layer"] == "fc2" and result["class_names"] == ["a", "b", "c"]
    keys = ["loss", "accuracy", "precision", "recall", "auc", "top5_accuracy", "macro_f1", "n"]
    assert list(result["test"]) == keys and result["test"]["n"] == 60
    assert result["test"]["accuracy"] == pytest.approx(fitted[best].score(arrays["x_test"], arrays["y_test"]))
    assert result["test"]["top5_accuracy"] == 1.0  # three classes
    np.savez(tmp_path / "noval.npz", **{**arrays, "x_val": np.zeros((0, 6)), "y_val": np.zeros(0, int)})
    r = CliRunner().invoke(app, ["svm", str(tmp_path / "noval.npz")])
    assert r.exit_code == 2 and "the validation split is empty; C is chosen on it" in r.output


# --------------------------------------------------------------------------- #
# the two projects, end to end
# --------------------------------------------------------------------------- #


def test_birds_project_frozen_resnet50_head_then_fine_tuned_then_pool_features(tmp_path):
    folder = make_folder(tmp_path / "birds", per_class=(5, 5, 5), side=36)
    weights = tmp_path / "resnet50_random.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
    common = ["--data", f"folder:{folder}", "--image-size", "32", "--fit-data", "--epochs", "1", "--batch-size", "4"]
    common += ["--out", tmp_path / "runs", "--progress", "log"]
    r = cli("train", EX / "resnet50_birds.yml", *common, "--weights", weights, "--name", "frozen")
    assert "106 layers loaded" in r.output and "frozen backbone up to 'pool'" in r.output
    assert "pretrained layers left random" not in r.output
    stage1 = tmp_path / "runs" / "frozen"
    config = json.loads((stage1 / "config.json").read_text())
    assert config["train"]["normalize"] == "imagenet" and config["sizes"] == {"train": 11, "test": 3, "val": 1}
    assert json.loads((stage1 / "weights.json").read_text())["warning"] is None
    r = cli("train", EX / "resnet50_birds_finetune.yml", *common, "--weights", stage1 / "best.pt", "--name", "tuned")
    assert "108 layers loaded" in r.output and "frozen backbone" not in r.output
    r = cli("features", stage1, "--layer", "pool", "--out", tmp_path / "pool.npz")
    assert "layer pool, 2,048 values per image; train 11, val 1, test 3" in r.output
    results = json.loads((tmp_path / "runs" / "tuned" / "results.json").read_text())
    assert results["status"] == "completed" and results["test"]["n"] == 3


@pytest.fixture(scope="module")
def vgg19_random(tmp_path_factory):
    """A random torchvision VGG-19's state dict file, an input at 64 px and torchvision's logits."""
    torch.manual_seed(0)
    tv = torchvision.models.vgg19(weights=None).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = tv(x)
    path = tmp_path_factory.mktemp("vgg19") / "vgg19_random.pth"
    torch.save(tv.state_dict(), path)
    return path, x, logits


def test_vgg19_at_64_px_loads_all_19_pretrained_layers_and_gives_torchvision_logits(vgg19_random):
    path, x, expected = vgg19_random
    model = build_model(EX / "vgg19_imagenet.yml", weights=path, input_shape=(3, 64, 64)).eval()
    assert len(model.weights_report.loaded) == 19 and model.weights_report.initialized == []
    assert model.weights_report.warning() is None
    with torch.no_grad():
        assert (model(x) - expected).abs().max().item() <= 1e-4


def test_clipart_project_fc2_features_and_svm_then_fine_tuned(tmp_path, vgg19_random):
    weights = vgg19_random[0]
    folder = make_folder(tmp_path / "clipart", per_class=(6, 6, 6), side=34)
    art = tmp_path / "art.yml"  # the project's description at the images' size and class count
    art.write_text(f"extends: {EX / 'vgg19_art.yml'}\ninput: [3, 32, 32]\nclasses: 3\n")
    out = tmp_path / "features" / "fc2.npz"
    r = cli("features", art, "--data", f"folder:{folder}", "--weights", weights, "--layer", "fc2", "--out", out)
    assert "19 layers loaded" not in r.output and "18 layers loaded" in r.output  # the 3-class head is new
    assert "layer fc2, 4,096 values per image; train 11, val 3, test 4" in r.output
    assert "pretrained layers left random" not in r.output and "features from random layers" not in r.output
    r = cli("svm", out)
    result = json.loads((out.parent / "svm.json").read_text())
    assert result["layer"] == "fc2" and result["test"]["n"] == 4 and result["C"] in (0.001, 0.01, 0.1, 1.0, 10.0)
    common = ["--data", f"folder:{folder}", "--epochs", "1", "--batch-size", "4", "--out", tmp_path / "runs"]
    r = cli("train", art, *common, "--weights", weights, "--name", "tuned", "--progress", "log")
    # conv1-conv4 (the first two blocks) frozen: their output is computed once, the rest trains on it
    assert "18 layers loaded" in r.output and "frozen backbone up to 'pool2'" in r.output
    config = json.loads((tmp_path / "runs" / "tuned" / "config.json").read_text())
    assert config["train"]["normalize"] == "imagenet" and config["train"]["image_size"] == 32
