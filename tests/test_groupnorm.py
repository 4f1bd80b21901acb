"""GroupNorm, the fourth normalization: added as one entry of normscope.norms and one
layer file; these tests hold it to torch's group_norm, the table and the study tools."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from normscope import build_model, norms, summarize
from normscope.cli import app
from normscope.model.layers.groupnorm import GroupNorm

EX = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    "channels,expected", [(3, 3), (6, 6), (16, 16), (32, 32), (64, 32), (128, 32), (48, 24), (7, 7)]
)
def test_default_groups_divide_every_channel_count(channels, expected):
    assert norms.default_groups(channels) == expected
    assert channels % norms.default_groups(channels) == 0


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
def test_groupnorm_matches_torch_and_returns_group_statistics(groups):
    torch.manual_seed(0)
    layer = GroupNorm(8, groups=groups, eps=1e-3)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    x = torch.randn(5, 8, 6, 7) * 3 + 1
    y, stats = layer(x)
    torch.testing.assert_close(y, F.group_norm(x, groups, layer.weight, layer.bias, eps=1e-3), atol=1e-5, rtol=1e-5)
    grouped = x.reshape(5, groups, -1)
    assert [name for name, _ in stats] == ["mean", "var"]
    torch.testing.assert_close(stats[0][1], grouped.mean(dim=2))
    torch.testing.assert_close(stats[1][1], grouped.var(dim=2, unbiased=False))


def test_groupnorm_refuses_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="groups=4 must divide the 6 channels"):
        GroupNorm(6, groups=4)


def test_vgg16_gn_v2_counts_and_classifier_groups():
    """VGG16's norm slots have 16, 32, 64, 128 channels -> 16, 32, 32, 32 groups by default."""
    s = summarize(EX / "vgg16.yml", norm="gn", reuse=True)
    plain = summarize(EX / "vgg16.yml")
    assert s.total_params - plain.total_params == 2 * (16 + 32 + 64 + 128) + 100 * 2 * (16 + 32 + 32 + 32)
    assert s.non_trainable_params == 0
    model = build_model(EX / "vgg16.yml", norm="gn", reuse=True)
    assert [(g.name, g.size) for g in model.classifier_input] == [
        ("features", 512),
        ("gn1.mean", 16),
        ("gn1.var", 16),
        ("gn2.mean", 32),
        ("gn2.var", 32),
        ("gn3.mean", 32),
        ("gn3.var", 32),
        ("gn4.mean", 32),
        ("gn4.var", 32),
    ]
    assert model.classifier.in_features == 512 + 2 * 112


def test_perceptnet_gn_default_groups_work_for_3_and_6_channels():
    model = build_model(EX / "perceptnet.yml", norm="gn", reuse=True)
    groups = [model.layers[n].groups for n in ("gn1", "gn2", "gn3", "gn4")]
    assert groups == [3, 3, 6, 32]
    x = torch.randn(4, 3, 32, 32)
    model.train()
    logits = model(x)
    assert logits.shape == (4, 100)
    z = {}
    model.classifier.register_forward_hook(lambda m, i, o: z.update(input=i[0]))
    model.eval()
    model(x)
    gn4 = model.classifier_input["gn4.mean"]
    assert gn4.size == 32 and z["input"][:, gn4.slice].shape == (4, 32)


def test_cli_summary_draw_and_variants_know_gn(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["summary", str(EX / "vgg16.yml"), "--norm", "gn", "--reuse", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["reused"] == 224 and doc["norm"] == "gn"
    result = runner.invoke(
        app, ["draw", str(EX / "vgg16.yml"), "--norm", "gn", "--reuse", "-f", "tex,dot", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    tex = (tmp_path / "vgg16_gn_v2.tex").read_text()
    assert r"\definecolor{ns-gn}{RGB}{%d,%d,%d}" % norms.NORMS["gn"].style.rgb in tex and "GroupNorm statistics" in tex
    assert tex.count(r"\NSReuseArrow{ns-gn}") == 4
    result = runner.invoke(app, ["variants", str(EX / "vgg16.yml"), "--json"])
    assert [r["variant"] for r in json.loads(result.output)][7:9] == ["gn", "gn_v2"]


def test_groupnorm_option_is_checked_against_the_channels(tmp_path):
    d = tmp_path / "m.yml"
    d.write_text("extends: %s\nnorm: gn\nnorm_options: {gn: {groups: 5}}\n" % (EX / "vgg16.yml"))
    result = CliRunner().invoke(app, ["check", str(d)])
    assert result.exit_code == 2
    assert "groupnorm groups=5 must divide the 16 input channels" in result.output


def test_the_default_study_stays_the_thesis_seven():
    from normscope.study import parse_variants

    assert parse_variants("all") == list(norms.VARIANTS) == ["none", "bn", "bn_v2", "in", "in_v2", "gdn", "gdn_v2"]
    assert parse_variants("gn,gn_v2") == ["gn", "gn_v2"]


def test_train_and_eval_a_gn_v2_run(tmp_path):
    """`normscope train --norm gn --reuse` trains PerceptNet on tiny synthetic data; the run's
    parameter count is the summary's and eval reproduces its test metrics."""
    runner = CliRunner()
    args = [
        "train",
        str(EX / "perceptnet.yml"),
        "--norm",
        "gn",
        "--reuse",
        "--data",
        "synthetic:train=120,test=40,size=16",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--fit-data",
        "--out",
        str(tmp_path),
        "--name",
        "gn",
        "--progress",
        "none",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "gn" / "results.json").read_text())
    assert results["status"] == "completed" and results["best_epoch"] in (1, 2)
    summary = summarize(EX / "perceptnet.yml", norm="gn", reuse=True, input_shape=(3, 16, 16), classes=10)
    assert results["params"]["total"] == summary.total_params
    evaluated = runner.invoke(app, ["eval", str(tmp_path / "gn"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["accuracy"] == results["test"]["accuracy"]
