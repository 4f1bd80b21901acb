"""FLOPs per image from the graph: hand counts, and convolutions and dense layers against
torch's FlopCounterMode on the built model, for every example."""

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from normscope import norms, summarize
from normscope.cli import app
from normscope.model.build import build_model
from normscope.model.flops import layer_flops, total_flops

EX = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EX.glob("*.yml"))

HAND = """\
name: hand
input: [3, 8, 8]
classes: 5
norm: bn
reuse: true
norm_options: {bn: {reuse_stats: image}}
layers:
  - conv: {filters: 4, kernel: 3, padding: same, activation: relu}
  - norm
  - conv: {filters: 6, kernel: [3, 1], stride: 2, groups: 2}
  - instancenorm
  - groupnorm: {groups: 2}
  - gdn: {kernel: 1}
  - conv: {name: dil, filters: 2, kernel: 3, dilation: 2, padding: same, bias: false}
  - maxpool: {size: 2, padding: same}
  - flatten
  - dense: {units: 10, bias: false}
  - dense: {name: classifier}
"""


def _counted(model, x) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def test_hand_counts(tmp_path):
    path = tmp_path / "hand.yml"
    path.write_text(HAND)
    s = summarize(path)
    flops = {row.name: row.flops for row in s.layers}
    # conv1: 3 -> 4 channels, 3×3, 8×8 out: 2·64·4·3·9
    assert flops["conv1"] == 2 * 64 * 4 * 3 * 9 == 13824
    # bn1 on 4×8×8 (n = 256), reused per image: 3n + 3C + 4n
    assert flops["bn1"] == 3 * 256 + 3 * 4 + 4 * 256 == 1804
    # conv2: 4 -> 6 channels in 2 groups, kernel 3×1, stride 2, valid: out 6×3×4
    assert s.layers[3].output_shape == [6, 3, 4]
    assert flops["conv2"] == 2 * (6 * 3 * 4) * (4 // 2) * 3 * 1 == 864
    # instancenorm on n = 72 values, 6 channels: 7n + 3C; groupnorm with 2 groups: 7n + 2G + C
    assert flops["in1"] == 7 * 72 + 18 == 522
    assert flops["gn1"] == 7 * 72 + 2 * 2 + 6 == 514
    # gdn 1×1 on 6×3×4, not reused: 2·H·W·C²·k² + 5n
    assert flops["gdn1"] == 2 * 12 * 36 * 1 + 5 * 72 == 1224
    # dilated conv: the kernel's 3×3 taps count, not its 5×5 reach
    assert flops["dil"] == 2 * (2 * 3 * 4) * 6 * 9 == 2592
    assert flops["pool1"] == flops["flatten1"] == flops["reuse"] == 0
    # pool: 2×3×4 -> 2×2×2 = 8 features; classifier input 8 + 4 means + 4 variances
    assert flops["dense1"] == 2 * 8 * 10 == 160
    assert flops["classifier"] == 2 * (10 + 8) * 5 == 180
    assert s.total_flops == sum(flops.values()) == 13824 + 1804 + 864 + 522 + 514 + 1224 + 2592 + 160 + 180
    # not reused, or reused as the thesis' batch statistics: nothing extra
    assert summarize(path, reuse=False).layers[2].flops == 3 * 256 + 3 * 4
    batch = tmp_path / "batch.yml"
    batch.write_text(HAND.replace("norm_options: {bn: {reuse_stats: image}}\n", ""))
    assert summarize(batch).layers[2].reused == ["bn1.mean", "bn1.var"]
    assert summarize(batch).layers[2].flops == 3 * 256 + 3 * 4
    # and FlopCounterMode on the built model counts the convolutions, dense layers and GDN's convolution
    model = build_model(path).eval()
    conv_dense = sum(v for k, v in flops.items() if k.startswith(("conv", "dil", "dense", "classifier")))
    assert _counted(model, torch.randn(2, 3, 8, 8)) == 2 * (conv_dense + 2 * 12 * 36)


def test_every_built_in_normalization_has_a_flop_rule():
    assert all(n.flops is not None for n in norms.NORMS.values() if norms.ORIGIN[n.short] == "normscope")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_conv_and_dense_flops_equal_flop_counter_mode(path):
    """summary --json's conv and dense FLOPs == FlopCounterMode's total (shapes only: meta tensors)."""
    for key in ("none", "bn_v2", "in_v2", "gn_v2", None):
        norm, reuse = norms.parse_variant(key) if key else (None, None)
        if key is None and summarize(path).norm == "gdn":
            continue
        doc = summarize(path, norm=norm, reuse=reuse).to_dict()
        ours = sum(row["flops"] for row in doc["layers"] if row["kind"] in ("conv", "dense"))
        with torch.device("meta"):
            model = build_model(path, norm=norm, reuse=reuse).eval()
        x = torch.zeros((1, *doc["input_shape"]), device="meta")
        assert _counted(model, x) == ours, key
        assert doc["total_flops"] == sum(row["flops"] for row in doc["layers"]) == total_flops(model.graph)


@pytest.mark.parametrize("name", ["perceptnet_gdn.yml", "perceptnet_gdn_v2.yml", "vgg16_gdn_v2.yml"])
def test_gdn_flops(name):
    """GDN: FlopCounterMode counts its k×k channel convolution; normscope adds 5 per value
    (|z|, ^α, + β, ^ε, z / D) and, reused, the mean of D over H, W."""
    model = build_model(EX / name).eval()
    g = model.graph
    flops = layer_flops(g)
    gdn_convs = 0
    for name_, node in g.nodes(data=True):
        if node["kind"] != "gdn":
            continue
        (c, h, w), k = node["shape"], model.layers[name_].kernel_size
        gdn_convs += 2 * h * w * c * c * k * k
        assert flops[name_] == 2 * h * w * c * c * k * k + 5 * c * h * w + (c * h * w if node["tapped"] else 0)
    conv_dense = sum(v for n, v in flops.items() if g.nodes[n]["kind"] in ("conv", "dense"))
    assert _counted(model, torch.randn(1, *g.graph["input_shape"])) == conv_dense + gdn_convs


def test_summary_and_variants_show_flops():
    runner = CliRunner()
    r = runner.invoke(app, ["summary", str(EX / "vgg16.yml")])
    assert r.exit_code == 0, r.output
    assert "FLOPs per image:      36,376,576  (36.4 MFLOPs, multiply-add = 2)" in r.output
    r = runner.invoke(app, ["variants", str(EX / "vgg16.yml"), "--json"])
    rows = {row["variant"]: row for row in json.loads(r.output)}
    assert set(rows) == set(norms.ALL_VARIANTS)
    for key, row in rows.items():
        norm, reuse = norms.parse_variant(key)
        assert row["total_flops"] == summarize(EX / "vgg16.yml", norm=norm, reuse=reuse).total_flops
    # 16 + 32 + 64 + 128 channels, each BN (3 per value + 3 per channel) and IN (7 per value + 3 per channel)
    values = 16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8 + 128 * 4 * 4
    channels = 16 + 32 + 64 + 128
    none = rows["none"]["total_flops"]
    assert rows["bn"]["total_flops"] - none == 3 * values + 3 * channels
    assert rows["in"]["total_flops"] - none == 7 * values + 3 * channels
    # reuse adds the classifier's 480 extra inputs × 100 classes × 2
    assert rows["in_v2"]["total_flops"] - rows["in"]["total_flops"] == 2 * 480 * 100
    r = runner.invoke(app, ["variants", str(EX / "vgg16.yml")])
    assert "FLOPs" in r.output and "36.4 M" in r.output
