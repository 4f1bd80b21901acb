"""Transfer learning: torchvision state dicts loaded by structure (exact logits of VGG-16/19,
ResNet-18/50), pretrained backbones in other variants, the clear errors (another
architecture, not a state dict, torchvision: without network), training and evaluating with
--weights, and `normscope features` + LinearSVC. Nothing is downloaded: torchvision models
get random weights and are saved to .pth here."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

from normscope import build_model, count_params
from normscope.analysis.features import FeatureError, extract_features
from normscope.cli import app
from normscope.data.batches import prepare_data, to_input
from normscope.model.weights import WeightsError, match_weights, read_weights
from normscope.train import load_run, train

EX = Path(__file__).resolve().parents[1] / "examples"
DATA = "synthetic:train=240,test=80,size=16"
# example, torchvision builder, the input side (VGG flattens a 7×7 map: 224 only; ResNets pool globally)
PARITY = {
    "vgg16": ("vgg16_imagenet.yml", 224),
    "vgg19": ("vgg19_imagenet.yml", 224),
    "resnet18": ("resnet18_imagenet.yml", 64),
    "resnet50": ("resnet50_imagenet.yml", 64),
}
RESNET18_URL_FILE = "resnet18-f37072fd.pth"  # torchvision's IMAGENET1K_V1 file name (its cache key)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = """\
name: tiny
input: auto
classes: auto
norm: bn
layers:
  - conv: {filters: 6, kernel: 3, activation: relu}
  - norm
  - maxpool: 2
  - conv: {name: c2, filters: 8, kernel: 3, activation: relu}
  - maxpool: 2
  - flatten
  - dense: {units: 12, activation: relu}
  - dense: {name: classifier}
train:
  epochs: 1
  batch_size: 32
"""


@pytest.fixture(scope="module")
def torchvision_saved(tmp_path_factory):
    """name -> (path of a random torchvision state dict, input, torchvision's eval logits); each
    model is made once per module. BatchNorm statistics and affine weights are randomized too."""
    made = {}

    def get(name):
        if name not in made:
            torch.manual_seed(0)
            tv = getattr(torchvision.models, name)()
            with torch.no_grad():
                for m in tv.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.running_mean.normal_(0, 0.1)
                        m.running_var.uniform_(0.5, 2.0)
                        m.weight.uniform_(0.5, 1.5)
                        m.bias.normal_(0, 0.1)
            side = PARITY[name][1]
            x = torch.randn(2 if side < 224 else 1, 3, side, side)
            with torch.no_grad():
                logits = tv.eval()(x)
            path = tmp_path_factory.mktemp(name) / f"{name}.pth"
            torch.save(tv.state_dict(), path)
            made[name] = (path, x, logits, sum(p.numel() for p in tv.parameters()))
        return made[name]

    return get


def meta_model(path, **kw):
    with torch.device("meta"):
        return build_model(path, **kw)


# --------------------------------------------------------------------------- #
# exact parity with torchvision
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", list(PARITY))
def test_torchvision_weights_give_torchvision_logits(name, torchvision_saved):
    path, x, expected, tv_params = torchvision_saved(name)
    example, side = PARITY[name]
    model = build_model(EX / example, weights=path, input_shape=(3, side, side)).eval()
    with torch.no_grad():
        got = model(x)
    assert (got - expected).abs().max().item() <= 1e-4
    state = torch.load(path, weights_only=True)
    report = model.weights_report
    assert report.initialized == [] and report.unused == []
    assert report.values == sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    layers = {k.rpartition(".")[0] for k in state}
    assert len(report.loaded) == len(layers)
    assert sum(p.numel() for p in model.parameters()) == tv_params
    trainable, _ = count_params(model)
    assert trainable == tv_params - (260_160 if name == "vgg19" else 0)  # vgg19_imagenet freezes conv1-4


def test_resnet50_summary_counts_equal_torchvision():
    with torch.device("meta"):
        tv = torchvision.models.resnet50()
    params = sum(p.numel() for p in tv.parameters())
    buffers = sum(b.numel() for n, b in tv.named_buffers() if not n.endswith("num_batches_tracked"))
    r = CliRunner().invoke(app, ["summary", str(EX / "resnet50_imagenet.yml"), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert params == 25_557_032
    assert (s["trainable_params"], s["non_trainable_params"]) == (params, buffers)


# --------------------------------------------------------------------------- #
# pretrained backbones in any variant, new heads
# --------------------------------------------------------------------------- #


def test_pretrained_resnet18_in_another_variant_loads_every_matching_layer(torchvision_saved):
    path, *_ = torchvision_saved("resnet18")
    torch.manual_seed(1)
    model = build_model(EX / "resnet18_imagenet.yml", norm="in", reuse=True, input_shape=(3, 64, 64), weights=path)
    report = model.weights_report
    state = torch.load(path, weights_only=True)
    assert len(report.loaded) == 20  # every convolution: stem, 16 in the blocks, 3 shortcuts
    assert [n for n, _ in report.initialized] == [f"in{i}" for i in range(1, 21)] + ["classifier"]
    assert [n for n, _ in report.unused][-1] == "fc" and len(report.unused) == 21  # 20 BatchNorms and fc
    assert torch.equal(model.layers["stem"].weight, state["conv1.weight"])
    assert torch.equal(model.layers["conv19"].weight, state["layer4.1.conv2.weight"])
    assert torch.equal(model.layers["in1"].weight, torch.ones(64))  # InstanceNorm at its initialization
    # the classifier reads 512 features + the means and variances of 64 + 4·64 + 5·128 + 5·256 + 5·512 channels
    assert report.initialized[-1][1] == f"a new head: 1000×{512 + 2 * 4800} here, 1000×512 in the weights"
    text = str(report)
    assert "20 layers loaded" in text and "(InstanceNorm; the weights have BatchNorm here): in1, in2, in3" in text


def test_pretrained_vgg19_in_reuse_and_bn_and_a_23_class_head(torchvision_saved):
    path, *_ = torchvision_saved("vgg19")
    weights = read_weights(path)
    report = match_weights(meta_model(EX / "vgg19_imagenet.yml", norm="in", reuse=True), weights)
    assert [n for n, _ in report.loaded] == [f"conv{i}" for i in range(1, 17)] + ["fc1", "fc2"]
    assert [n for n, _ in report.initialized] == [f"in{i}" for i in range(1, 17)] + ["classifier"]
    assert {why for _, why in report.initialized[:16]} == {"InstanceNorm; the weights have no normalization here"}
    bn = match_weights(meta_model(EX / "vgg19_imagenet.yml", norm="bn"), weights)
    assert len(bn.loaded) == 19 and [n for n, _ in bn.initialized] == [f"bn{i}" for i in range(1, 17)]
    art = match_weights(meta_model(EX / "vgg19_art.yml"), weights)
    assert len(art.loaded) == 18 and art.initialized == [
        ("classifier", "a new head: 23×4096 here, 1000×4096 in the weights")
    ]
    assert art.unused == [("classifier.6", "the weights' head, replaced")]


def test_vgg16_with_bn_takes_torchvision_vgg16_bn_and_its_batchnorm_options():
    with torch.device("meta"):
        state = torchvision.models.vgg16_bn().state_dict()  # shapes are all the match reads
    report = match_weights(meta_model(EX / "vgg16_imagenet.yml", norm="bn"), state)
    assert len(report.loaded) == 13 + 13 + 3 and report.initialized == [] and report.unused == []
    bn = build_model(EX / "vgg16_imagenet.yml", norm="bn", input_shape=(3, 32, 32)).layers["bn1"]
    assert (bn.eps, bn.momentum) == (1e-5, pytest.approx(0.1))  # torch's BatchNorm2d defaults


def test_resnet50_birds_loads_the_backbone_and_a_new_two_layer_head(torchvision_saved):
    path, *_ = torchvision_saved("resnet50")
    report = match_weights(meta_model(EX / "resnet50_birds.yml"), path)
    assert len(report.loaded) == 106 and report.loaded[-1] == ("layer4_2_norm3", "layer4.2.bn3")
    assert report.initialized == [
        ("head", "a new head: 1024×2048 here, 1000×2048 in the weights"),
        ("classifier", "a new head"),
    ]
    spec = meta_model(EX / "resnet50_birds_finetune.yml").spec
    assert spec.train["freeze"] == [] and spec.train["weights"] == "torchvision:resnet50.IMAGENET1K_V1"


# --------------------------------------------------------------------------- #
# clear errors
# --------------------------------------------------------------------------- #


def test_another_architecture_is_refused_at_the_first_mismatching_layer(torchvision_saved, tmp_path):
    r18, *_ = torchvision_saved("resnet18")
    r50, *_ = torchvision_saved("resnet50")
    with pytest.raises(WeightsError) as exc:
        match_weights(meta_model(EX / "vgg16_imagenet.yml"), r18)
    assert str(exc.value) == (
        "the weights do not fit the model after 0 matching layers: layer 'conv1' is conv (weight 64×3×3×3, bias 64) "
        "but the weights' 'conv1' is conv (weight 64×3×7×7) (a state dict of another architecture?)"
    )
    with pytest.raises(
        WeightsError,
        match=r"after 2 matching layers: layer 'conv1' is conv \(weight 64×64×3×3\) "
        r"but the weights' 'layer1.0.conv1' is conv \(weight 64×64×1×1\)",
    ):
        match_weights(meta_model(EX / "resnet18_imagenet.yml"), r50)
    first_12_keys = dict(list(torch.load(r18, weights_only=True).items())[:12])  # conv1, bn1, layer1.0.conv1, .bn1
    with pytest.raises(WeightsError) as exc:
        match_weights(meta_model(EX / "resnet18_imagenet.yml"), first_12_keys)
    assert str(exc.value) == (
        "the weights do not fit the model: they end after 4 matching layers, before layer 'conv2' "
        "conv (weight 64×64×3×3)"
    )
    r = CliRunner().invoke(app, ["summary", str(EX / "vgg16_imagenet.yml"), "--weights", str(r18)])
    assert r.exit_code == 2 and "layer 'conv1'" in r.output and "Traceback" not in r.output


def test_files_that_are_not_state_dicts(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    module = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), module)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], listed)
    mixed = tmp_path / "mixed.pth"
    torch.save({"conv.weight": torch.zeros(2, 1, 3, 3), "note": "hello"}, mixed)
    cases = {
        text: "not a state dict file (torch.save writes a zip archive; this is not one)",
        module: "not a state dict: it holds pickled Python objects",
        listed: "not a state dict: it holds a list",
        mixed: "not a state dict: 'note' holds a str, not a tensor",
        tmp_path / "missing.pth": "no such weights file",
    }
    for path, message in cases.items():
        with pytest.raises(WeightsError) as exc:
            read_weights(path)
        assert str(exc.value).startswith(f"{path}: {message}"), str(exc.value)
    r = CliRunner().invoke(app, ["summary", str(EX / "resnet18_imagenet.yml"), "--weights", str(module)])
    assert r.exit_code == 2 and "pickled Python objects" in r.output and "Traceback" not in r.output


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """An empty torchvision cache, and every https request sent to a closed local port: the
    download fails at once, on a machine with internet as on one without."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return home


def test_torchvision_weights_without_network_fail_with_one_clear_message(no_network):
    with pytest.raises(WeightsError) as exc:
        read_weights("torchvision:resnet18.IMAGENET1K_V1")
    message = str(exc.value)
    assert message.startswith(
        "torchvision:resnet18.IMAGENET1K_V1: cannot download https://download.pytorch.org/models/resnet18-f37072fd.pth"
    )
    assert f"put it in {no_network / 'hub' / 'checkpoints'}" in message and "--weights FILE.pth" in message
    r = CliRunner().invoke(app, ["summary", str(EX / "resnet18_imagenet.yml"), "--weights", "torchvision:resnet18"])
    assert r.exit_code == 2 and "cannot download" in r.output and "Traceback" not in r.output
    with pytest.raises(WeightsError, match="torchvision has no model 'resnet81'; did you mean 'resnet18'"):
        read_weights("torchvision:resnet81")
    with pytest.raises(WeightsError, match=r"resnet18 has no weights 'IMAGENET' \(it has: IMAGENET1K_V1, DEFAULT\)"):
        read_weights("torchvision:resnet18.IMAGENET")


def test_torchvision_weights_come_from_its_cache_without_network(no_network, torchvision_saved):
    path, x, expected, _ = torchvision_saved("resnet18")
    cache = no_network / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / RESNET18_URL_FILE).write_bytes(path.read_bytes())
    model = build_model(
        EX / "resnet18_imagenet.yml", input_shape=(3, 64, 64), weights="torchvision:resnet18.IMAGENET1K_V1"
    ).eval()
    with torch.no_grad():
        assert (model(x) - expected).abs().max().item() <= 1e-4
    assert model.weights_report.source == "torchvision:resnet18.IMAGENET1K_V1"


# --------------------------------------------------------------------------- #
# training and evaluating with weights
# --------------------------------------------------------------------------- #


def tiny(tmp_path, extra: str = "") -> Path:
    path = tmp_path / "tiny.yml"
    path.write_text(TINY + extra)
    return path


def test_train_with_weights_from_the_description_and_the_cli(tmp_path, monkeypatch):
    source = build_model(tiny(tmp_path), input_shape=(3, 16, 16), classes=10)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    yml = tiny(tmp_path, "  weights: w.pth\n  freeze: [conv1]\n")
    monkeypatch.chdir(tmp_path.parent)  # the description's path is from its own directory
    run = train(yml, data=DATA, out=tmp_path / "runs", progress="none")
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["weights"] == str(tmp_path / "w.pth")
    best = torch.load(run / "best.pt", weights_only=True)["model"]
    assert torch.equal(best["layers.conv1.weight"], source.state_dict()["layers.conv1.weight"])  # frozen: as loaded
    assert not torch.equal(best["layers.c2.weight"], source.state_dict()["layers.c2.weight"])  # trained from it

    r = CliRunner().invoke(
        app,
        ["train", str(tiny(tmp_path)), "--data", DATA, "--weights", str(run / "best.pt"), "--norm", "in", "--reuse"]
        + ["--out", str(tmp_path / "cli"), "--name", "w", "--progress", "log"],
    )
    assert r.exit_code == 0, r.output
    assert f"weights from {run / 'best.pt'}: 3 layers loaded" in r.output
    assert "(InstanceNorm; the weights have BatchNorm here): in1" in r.output

    r = CliRunner().invoke(app, ["eval", str(run), "--weights", str(run / "best.pt"), "--json"])
    assert r.exit_code == 0, r.output
    recorded = json.loads((run / "results.json").read_text())["test"]
    assert json.loads(r.stdout) == {k: v for k, v in recorded.items() if k != "n"}


def test_train_refuses_weights_that_do_not_fit_before_making_a_run(tmp_path, torchvision_saved):
    r18, *_ = torchvision_saved("resnet18")
    r = CliRunner().invoke(
        app, ["train", str(tiny(tmp_path)), "--data", DATA, "--weights", str(r18), "--out", str(tmp_path / "runs")]
    )
    assert r.exit_code == 2 and "the weights do not fit the model" in r.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    r = CliRunner().invoke(app, ["train", "--resume", str(tmp_path), "--weights", str(r18)])
    assert r.exit_code == 2 and "--weights" in r.output


# --------------------------------------------------------------------------- #
# features
# --------------------------------------------------------------------------- #


def test_features_of_a_run_and_a_linear_svm_on_them(tmp_path):
    from sklearn.svm import LinearSVC  # the recipe of docs/transfer.md

    run = train(tiny(tmp_path), data=DATA, out=tmp_path / "runs", progress="none")
    out = tmp_path / "f.npz"
    r = CliRunner().invoke(app, ["features", str(run), "--layer", "dense1", "--out", str(out), "--batch-size", "50"])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}: layer dense1, 12 values per image; train 216, val 24, test 80" in r.output
    f = np.load(out)
    assert str(f["layer"]) == "dense1" and f["shape"].tolist() == [12] and f["x_val"].shape == (24, 12)
    loaded = load_run(run)
    x, y = loaded.split("test")
    seen = []
    loaded.model.layers["dense1"].register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        loaded.model(x)
    assert np.allclose(f["x_test"], seen[0].numpy(), atol=1e-6) and (f["y_test"] == y.numpy()).all()
    svm = LinearSVC(C=1.0, max_iter=5000).fit(f["x_train"], f["y_train"])
    assert svm.score(f["x_test"], f["y_test"]) > 0.5  # ten synthetic classes: chance is 0.1
    other = extract_features(run, "dense1", data=DATA, splits=("train", "val"))  # other data, the run's statistics
    assert other.x["train"].shape == (240, 12) and other.x["val"].shape == (0, 12)
    with pytest.raises(FeatureError, match="images of 3x32x32; the run's model takes 3x16x16"):
        extract_features(run, "dense1", data="synthetic:train=20,test=10,size=32")
    with pytest.raises(FeatureError, match="a run has its own model"):
        extract_features(run, "dense1", weights="w.pth")


def test_features_of_a_description_with_weights_and_of_an_inline_join(tmp_path):
    yml = tiny(tmp_path)
    source = build_model(yml, input_shape=(3, 16, 16), classes=10)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    found = extract_features(yml, "c2", data=DATA, weights=str(tmp_path / "w.pth"), splits=("test",))
    assert set(found.x) == {"test"} and found.x["test"].shape == (80, 200) and found.shape == (8, 5, 5)
    assert len(found.weights.loaded) == 5
    data = prepare_data(DATA, validation=0.1)  # the description's splits and training statistics
    seen = []
    source.eval().layers["c2"].register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        source(to_input(data.images("test", "cpu"), *data.stat_tensors("cpu")))
    assert np.allclose(found.x["test"], seen[0].flatten(1).numpy(), atol=1e-5)
    assert (found.y["test"] == data.y["test"]).all()
    reused = extract_features(yml, "reuse", data=DATA, reuse=True, splits=("test",), batch_size=7)
    assert reused.x["test"].shape == (80, 12 + 2 * 6)  # dense1's 12 outputs, then bn1's 6 means and 6 variances
    with pytest.raises(FeatureError, match="no layer 'dense2'; did you mean 'dense1'"):
        extract_features(yml, "dense2", data=DATA)
    r = CliRunner().invoke(app, ["features", str(yml), "--layer", "conv9", "--data", DATA])
    assert r.exit_code == 2 and "no layer 'conv9'" in r.output and "Traceback" not in r.output
