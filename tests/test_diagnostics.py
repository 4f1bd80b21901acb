"""Diagnostics from the graph: each case, its file:line and layers, the CLI (check --strict,
summary, variants, before train and study), and the claims behind them checked in torch."""

import json
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from normscope import build_graph, summarize
from normscope.analysis.bn_gap import bn_gap
from normscope.cli import app
from normscope.cli.static import print_description_diagnostics
from normscope.model.build import build_model
from normscope.model.diagnostics import diagnose, diagnose_description
from normscope.train import evaluate, load_run

EX = Path(__file__).resolve().parents[1] / "examples"


def write(tmp_path: Path, layers: str, head: str = "", name: str = "m.yml", shape="[4, 8, 8]") -> Path:
    path = tmp_path / name
    path.write_text(f"name: m\ninput: {shape}\nclasses: 3\n{head}layers:\n" + textwrap.indent(layers, "  "))
    return path


def codes(path, **kw) -> list[tuple[str, tuple]]:
    return [(d.code, d.layers) for d in diagnose(build_graph(path, **kw))]


# --------------------------------------------------------------------------- #
# the thesis' examples
# --------------------------------------------------------------------------- #


def test_perceptnet_in_pools_a_constant():
    g = build_graph(EX / "perceptnet_in.yml")
    (d,) = diagnose(g)
    assert (d.code, d.layers) == ("constant-pooled", ("in4", "gap1"))
    assert (Path(d.file).name, d.line) == ("perceptnet.yml", g.nodes["in4"]["line"])
    assert f"perceptnet.yml:{g.nodes['gap1']['line']}" in d.message and "128 pooled features" in d.message
    # with reuse the features are still constant, and the diagnostic says what is left
    (d,) = diagnose(build_graph(EX / "perceptnet_in_v2.yml"))
    assert d.layers == ("in4", "gap1") and "only the reused statistics (in1, in2, in3, in4)" in d.message


def test_the_constant_is_real():
    """perceptnet_in with random β: every image gets the same pooled features and logits."""
    torch.manual_seed(0)
    model = build_model(EX / "perceptnet_in.yml").eval()
    with torch.no_grad():
        model.layers["in4"].bias.normal_()
    pooled = []
    model.layers["gap1"].register_forward_hook(lambda m, i, o: pooled.append(o))
    with torch.no_grad():
        logits = model(torch.randn(4, 3, 32, 32) * 3)
    torch.testing.assert_close(pooled[0], model.layers["in4"].bias.expand(4, -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, logits[:1].expand(4, -1), atol=1e-4, rtol=0)


def test_vgg16_in_is_clean_and_bn_v2_is_told():
    assert diagnose(build_graph(EX / "vgg16_in.yml")) == []
    (d,) = diagnose(build_graph(EX / "vgg16_bn_v2.yml"))
    assert (d.code, d.layers) == ("batch-stats-reuse", ("bn1", "bn2", "bn3", "bn4"))
    assert "53,879" in d.message and "--bn-stats batch" in d.message and "reuse_stats: image" in d.message
    assert codes(EX / "vgg16_bn.yml") == []
    assert codes(EX / "vgg16.yml", norm="bn", reuse=True) == codes(EX / "vgg16_bn_v2.yml")


# --------------------------------------------------------------------------- #
# which paths keep a channel's spatial mean
# --------------------------------------------------------------------------- #


MEAN_KEEPING = {  # cases the diagnostic claims: pooled features constant to 1e-6
    "direct": "",
    "dropout-linear-pad-bn": "- dropout: 0.5\n- activation: linear\n- zeropad: 1\n- batchnorm\n",
    "avgpool-exact": "- avgpool: 2\n",  # 2×2 windows tile the 8×8 map: the mean stays
    "avgpool-same-exact": "- avgpool: {size: 4, padding: same}\n",  # 'same' adds no padding here
    "avgpool-rect": "- avgpool: {size: [2, 4]}\n",
    "conv1x1": "- conv: {filters: 5, kernel: 1}\n",  # A·x + b at every position
    "conv1x1-linear-grouped": "- conv: {filters: 6, kernel: 1, activation: linear, groups: 2}\n",
    "conv1x1-padded": "- conv: {filters: 5, kernel: 1, padding: 1, activation: none}\n",  # b on the border
    "chain": "- conv: {filters: 5, kernel: 1}\n- batchnorm\n- avgpool: 2\n- conv: {filters: 3, kernel: 1}\n",
}
NEAR_MISSES = {  # one step away from a claimed case; the pooled features vary
    "avgpool-partial": "- avgpool: 3\n",  # 3×3 windows leave out the 8th row and column
    "avgpool-overlap": "- avgpool: {size: 2, stride: 1}\n",  # inner positions count more
    "avgpool-same-padded": "- avgpool: {size: 3, stride: 1, padding: same}\n",  # border windows are smaller
    "relu": "- activation: relu\n",
    "conv1x1-relu": "- conv: {filters: 5, kernel: 1, activation: relu}\n",
    "conv3x3-same": "- conv: {filters: 5, kernel: 3, padding: same}\n",  # the zero border mixes in
    "conv1x1-stride2": "- conv: {filters: 5, kernel: 1, stride: 2}\n",  # samples a quarter of the positions
    "maxpool": "- maxpool: 2\n",
}


def _pooled_spread(path: Path) -> float:
    """The largest difference between two images' pooled features, in evaluation, float64,
    with every weight and BatchNorm statistic random."""
    torch.manual_seed(0)
    model = build_model(path).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
        pooled = []
        gap = next(n for n in model.graph.nodes if n.startswith("gap"))
        model.layers[gap].register_forward_hook(lambda m, i, o: pooled.append(o))
        model(torch.randn(6, 4, 8, 8, dtype=torch.float64) * 3 + 1)
    return (pooled[0] - pooled[0][:1]).abs().max().item()


@pytest.mark.parametrize(
    "between,flagged",
    [(v, True) for v in MEAN_KEEPING.values()] + [(v, False) for v in NEAR_MISSES.values()],
    ids=[*MEAN_KEEPING, *NEAR_MISSES],
)
def test_mean_keeping_paths(tmp_path, between, flagged):
    """The diagnostic flags exactly the paths whose pooled features are constant in torch."""
    path = write(tmp_path, "- instancenorm\n" + between + "- globalavgpool\n- dense: {name: classifier}\n")
    found = codes(path)
    assert bool(found) == flagged
    spread = _pooled_spread(path)
    if flagged:
        (code, layers), (pool,) = found[0], [n for n in build_graph(path).nodes if n.startswith("gap")]
        assert code == "constant-pooled" and layers[0] == "in1" and layers[-1] == pool
        assert len(layers) == 2 + between.count("- ")
        assert spread < 1e-6
    else:
        assert spread > 1e-3


def test_groupnorm_only_with_one_channel_per_group(tmp_path):
    tail = "- globalavgpool\n- dense: {name: classifier}\n"
    assert codes(write(tmp_path, "- groupnorm: {groups: 4}\n" + tail))[0][0] == "constant-pooled"
    assert codes(write(tmp_path, "- groupnorm: {groups: 2}\n" + tail)) == []  # only the group mean is fixed
    assert codes(write(tmp_path, "- batchnorm\n" + tail)) == []
    assert codes(write(tmp_path, "- gdn\n" + tail)) == []


# --------------------------------------------------------------------------- #
# 1×1 maps
# --------------------------------------------------------------------------- #


def test_one_pixel(tmp_path):
    tail = "- flatten\n- dense: {name: classifier}\n"
    pooled = "- conv: {filters: 4, kernel: 2}\n- maxpool: 2\n"  # 3×3 -> 2×2 -> 1×1
    for layer, flagged in (
        ("- instancenorm\n", True),
        ("- groupnorm: {groups: 4}\n", True),
        ("- groupnorm: {groups: 2}\n", False),
        ("- batchnorm\n", False),
        ("- batchnorm: {reuse_stats: image}\n", False),  # not reused here
    ):
        path = write(tmp_path, pooled + layer + tail, shape="[3, 3, 3]")
        assert [c for c, _ in codes(path)] == (["one-pixel"] if flagged else []), layer
    (d,) = diagnose(build_graph(write(tmp_path, pooled + "- instancenorm\n" + tail, shape="[3, 3, 3]")))
    assert d.layers == ("in1",) and "1×1 maps (4 channels)" in d.message and "β" in d.message
    # InstanceNorm on 1×1 maps does output β, whatever the image
    model = build_model(write(tmp_path, pooled + "- instancenorm\n" + tail, shape="[3, 3, 3]")).eval()
    out = []
    model.layers["in1"].register_forward_hook(lambda m, i, o: out.append(o[0]))
    with torch.no_grad():
        model.layers["in1"].bias.copy_(torch.tensor([1.0, -2.0, 3.0, 0.5]))
        model(torch.randn(5, 3, 3, 3))
    torch.testing.assert_close(out[0].flatten(1), torch.tensor([[1.0, -2.0, 3.0, 0.5]]).expand(5, -1))
    # reused per-image BatchNorm statistics of a 1×1 map: the input and a variance of 0
    head = "norm: bn\nreuse: true\nnorm_options: {bn: {reuse_stats: image}}\n"
    found = codes(write(tmp_path, pooled + "- norm\n" + tail, head=head, shape="[3, 3, 3]"))
    assert found == [("one-pixel", ("bn1",))]


# --------------------------------------------------------------------------- #
# reuse
# --------------------------------------------------------------------------- #


def test_bn_reuse_per_image_is_clean_and_per_image(tmp_path):
    """reuse_stats: image gives the classifier each image's channel means and biased
    variances of the BatchNorm input, in training and in evaluation."""
    path = tmp_path / "bn_image.yml"
    path.write_text(
        f"extends: {EX / 'vgg16.yml'}\nnorm: bn\nreuse: true\nnorm_options: {{bn: {{reuse_stats: image}}}}\n"
    )
    assert codes(path) == []
    model = build_model(path)
    seen = {}
    model.layers["bn1"].register_forward_pre_hook(lambda m, i: seen.update(bn1_input=i[0]))
    model.classifier.register_forward_pre_hook(lambda m, i: seen.update(z=i[0]))
    groups = model.classifier_groups
    for training in (True, False):
        with torch.no_grad():
            model.train(training)(torch.randn(6, 3, 32, 32))
        var, mean = torch.var_mean(seen["bn1_input"], dim=(2, 3), unbiased=False)
        torch.testing.assert_close(seen["z"][:, groups["bn1.mean"]], mean)
        torch.testing.assert_close(seen["z"][:, groups["bn1.var"]], var)
        assert not torch.allclose(mean[0], mean[1])  # they differ from image to image


def test_reuse_of_nothing(tmp_path):
    (d,) = diagnose(build_graph(EX / "perceptnet.yml", norm="none", reuse=True))
    assert (d.code, d.layers) == ("nothing-reused", ("classifier",)) and "norm is none" in d.message
    path = write(tmp_path, "- batchnorm\n- flatten\n- dense: {name: classifier}\n", head="norm: bn\nreuse: true\n")
    (d,) = diagnose(build_graph(path))
    assert d.code == "nothing-reused" and "no `norm` slots" in d.message


def test_auto_shapes_are_not_diagnosed(tmp_path):
    path = write(tmp_path, "- instancenorm\n- globalavgpool\n- dense: {name: classifier}\n", shape="auto")
    assert diagnose_description(path) is None
    assert [d.code for d in diagnose_description(EX / "perceptnet.yml", norm="in")] == ["constant-pooled"]


# --------------------------------------------------------------------------- #
# the command line
# --------------------------------------------------------------------------- #


def test_check_strict():
    runner = CliRunner()
    r = runner.invoke(app, ["check", "--strict", str(EX / "perceptnet_in.yml")])
    assert r.exit_code == 2, r.output
    assert "in4" in r.output and "gap1" in r.output and "perceptnet.yml:" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["check", str(EX / "perceptnet_in.yml")])
    assert r.exit_code == 0 and "diagnostic:" in r.output and "in4" in r.output
    r = runner.invoke(app, ["check", "--strict", str(EX / "vgg16_in.yml"), str(EX / "vgg16.yml")])
    assert r.exit_code == 0, r.output
    assert r.output.count("ok ") == 2 and "diagnostic" not in r.output


def test_summary_prints_diagnostics_only_when_there_are_some():
    runner = CliRunner()
    r = runner.invoke(app, ["summary", str(EX / "vgg16_in.yml")])
    assert r.exit_code == 0 and "diagnostic" not in r.output
    r = runner.invoke(app, ["summary", str(EX / "perceptnet.yml"), "--norm", "in"])
    assert r.exit_code == 0 and r.output.count("diagnostic:") == 1
    r = runner.invoke(app, ["summary", str(EX / "vgg16_bn_v2.yml"), "--json"])
    (d,) = json.loads(r.output)["diagnostics"]
    assert d["code"] == "batch-stats-reuse" and d["layers"] == ["bn1", "bn2", "bn3", "bn4"]
    assert d["file"].endswith("vgg16.yml") and d["line"] == build_graph(EX / "vgg16_bn_v2.yml").nodes["bn1"]["line"]
    assert json.loads(runner.invoke(app, ["summary", str(EX / "vgg16.yml"), "--json"]).output)["diagnostics"] == []
    assert summarize(EX / "vgg16.yml").diagnostics == []


def test_variants_list_the_diagnosed_variants():
    r = CliRunner().invoke(app, ["variants", str(EX / "perceptnet.yml"), "--json"])
    found = {row["variant"]: row["diagnostics"] for row in json.loads(r.output) if row["diagnostics"]}
    assert found == {"bn_v2": ["batch-stats-reuse"], "in": ["constant-pooled"], "in_v2": ["constant-pooled"]}


def test_version():
    r = CliRunner().invoke(app, ["--version"])
    version = tomllib.loads((EX.parent / "pyproject.toml").read_text())["project"]["version"]
    assert r.exit_code == 0 and r.output == f"normscope {version}\n"


def test_diagnostics_before_a_study(capsys):
    print_description_diagnostics(EX / "perceptnet.yml", variants="none,in,bn_v2,nonsense")
    out = capsys.readouterr().out
    assert "diagnostic (in):" in out and "diagnostic (bn_v2):" in out and out.count("diagnostic") == 2
    print_description_diagnostics(EX / "vgg16.yml", variants="all")
    assert capsys.readouterr().out.count("diagnostic (bn_v2):") == 1
    print_description_diagnostics(EX / "vgg16.yml")
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- #
# the BatchNorm train/evaluation gap, measured
# --------------------------------------------------------------------------- #

DATA = "synthetic:train=240,test=40,size=16"
TINY_BN = """\
name: tiny_bn
input: [3, 16, 16]
classes: 10
norm: bn
reuse: true
layers:
  - conv: {filters: 6, kernel: 3, activation: relu}
  - norm
  - maxpool: 2
  - conv: {filters: 8, kernel: 3, activation: relu}
  - norm
  - maxpool: 2
  - flatten
  - dense: {name: classifier}
train: {epochs: 2, batch_size: 64}
"""


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory, one_thread):
    """A tiny BN-reuse run trained with the CLI; (its directory, the CLI's output)."""
    tmp = tmp_path_factory.mktemp("bn_run")
    (tmp / "tiny_bn.yml").write_text(TINY_BN)
    args = ["train", str(tmp / "tiny_bn.yml"), "--data", DATA, "--out", str(tmp), "--name", "run", "--progress", "none"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return tmp / "run", r.output


def test_train_prints_the_diagnostic_first(bn_run):
    _, output = bn_run
    assert output.startswith("diagnostic:") and "bn1, bn2" in output and "53,879" in output


def test_eval_bn_stats_batch_shows_the_gap(bn_run):
    run_dir, _ = bn_run
    runner = CliRunner()
    r = runner.invoke(app, ["eval", str(run_dir), "--bn-stats", "batch", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    recorded = json.loads((run_dir / "results.json").read_text())["test"]
    assert doc["running"] == {k: v for k, v in recorded.items() if k != "n"}
    # the 40 test images are one batch (batch size 64): BatchNorm in training mode on all of them
    model = build_model(run_dir / "description.yml")
    model.load_state_dict(torch.load(run_dir / "best.pt", weights_only=True)["model"])
    x, y = load_run(run_dir).split("test")
    with torch.no_grad():
        logits = model.train()(x)  # no dropout in this model: only BatchNorm changes
    expected = evaluate.test_metrics(logits, y)
    for key in ("loss", "accuracy", "auc"):
        assert doc["batch"][key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9), key
        assert doc["gap"][key] == pytest.approx(doc["batch"][key] - doc["running"][key])
    assert doc["running"]["loss"] != pytest.approx(doc["batch"]["loss"], rel=1e-3)
    r = runner.invoke(app, ["eval", str(run_dir), "--bn-stats", "batch"])
    assert r.exit_code == 0 and "batch − running" in r.output and "results.json" in r.output
    r = runner.invoke(app, ["eval", str(run_dir), "--bn-stats", "mean"])
    assert r.exit_code == 2 and "--bn-stats must be running or batch" in r.output


def test_attribute_reports_the_bn_gap(bn_run, tmp_path):
    run_dir, _ = bn_run
    r = CliRunner().invoke(
        app, ["attribute", str(run_dir), "--samples", "20", "--baseline-samples", "20", "--out", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    assert "running vs batch statistics" in r.output
    gap = json.loads((tmp_path / "attribution.json").read_text())["bn_gap"]
    assert [g["name"] for g in gap["groups"]] == ["bn1.mean", "bn1.var", "bn2.mean", "bn2.var"]
    assert gap["batch_size"] == 64 and gap["batches"] == 216 // 64  # 240 images less 10% validation
    for g in gap["groups"]:
        assert g["logit_shift"] >= g["logit_spread"] > 0  # shift² = spread² + (W·(running − mean batch))²


def test_bn_gap_is_zero_where_the_running_mean_is_the_batches_mean(tmp_path, one_thread):
    """With equal full batches, the mean of the batch means is the mean over all images:
    a running mean set to it lies 0 from the batches, and shifts the logits by exactly
    their batch-to-batch spread."""
    (tmp_path / "m.yml").write_text(TINY_BN)
    torch.manual_seed(0)
    model = build_model(tmp_path / "m.yml")
    x = torch.randn(64, 3, 16, 16)
    seen = []
    model.layers["bn1"].register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    with torch.no_grad():
        model.eval()(x)
    model.layers["bn1"].running_mean.copy_(seen[0].mean(dim=(0, 2, 3)))
    gap = bn_gap(model, x, batch_size=16)
    (g,) = [g for g in gap["groups"] if g["name"] == "bn1.mean"]
    assert gap["batches"] == 4 and g["relative"] == pytest.approx(0, abs=1e-6) and g["z_mean"] < 1e-4
    assert g["logit_shift"] == pytest.approx(g["logit_spread"], rel=1e-5)
    (v,) = [g for g in gap["groups"] if g["name"] == "bn1.var"]
    assert v["z_mean"] > 1  # the running variance is still its initial 1
    assert torch.equal(model.layers["bn1"].running_mean, seen[0].mean(dim=(0, 2, 3)))  # left as it was
