"""Normalizations through the public door: the built-ins pass the plugin check, LayerNorm and
AlexNet's LRN against torch, plugins refused for what they break (the table unchanged), a
description naming an unloaded plugin's norm, and examples/plugins/rmsnorm.py end to end
from fresh processes (summary, draw to PDF, train, ONNX export, a 2-variant study, attribute)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from normscope import norms
from normscope.model.layers.layernorm import LayerNorm
from normscope.model.layers.lrn import LocalResponseNorm
from normscope.norms.build import verify_norm

ROOT = Path(__file__).resolve().parents[1]
RMS = ROOT / "examples" / "plugins" / "rmsnorm.py"

TINY = """\
name: tiny
input: auto
classes: auto
layers:
  - conv: {filters: 6, kernel: 3, activation: relu, padding: same}
  - norm
  - maxpool: 2
  - conv: {filters: 8, kernel: 3, activation: relu, padding: same}
  - norm
  - globalavgpool
  - dense: {name: classifier}
"""


@pytest.mark.parametrize("short", list(norms.VARIANTS[1::2]) + ["gn", "ln", "lrn"])
def test_built_in_norms_pass_the_plugin_check(short):
    verify_norm(norms.NORMS[short])  # raises NormError naming what the entry breaks


def test_layernorm_is_groupnorm_with_one_group_and_returns_image_statistics():
    torch.manual_seed(0)
    layer = LayerNorm(5)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 5, 4, 6) * 2 + 1
    y, stats = layer(x)
    torch.testing.assert_close(y, F.group_norm(x, 1, layer.weight, layer.bias, eps=1e-3), atol=1e-5, rtol=1e-5)
    assert [n for n, _ in stats] == ["mean", "var"]
    torch.testing.assert_close(stats[0][1], x.flatten(1).mean(1, keepdim=True))
    torch.testing.assert_close(stats[1][1], x.flatten(1).var(1, unbiased=False, keepdim=True))
    flat = torch.randn(3, 5)
    torch.testing.assert_close(layer(flat)[0], F.layer_norm(flat, (5,), layer.weight, layer.bias, eps=1e-3))


def test_lrn_is_alexnets_formula_and_reuses_its_mean_denominator():
    """AlexNet: D = (k + α Σ a²)^β over 5 channels; torch's local_response_norm divides α by the size."""
    x = torch.randn(2, 7, 5, 5) * 20
    y, [(name, stat)] = LocalResponseNorm(7)(x)
    torch.testing.assert_close(y, F.local_response_norm(x, 5, alpha=5 * 1e-4, beta=0.75, k=2.0))
    padded = F.pad(x * x, (0, 0, 0, 0, 2, 2))
    sums = torch.stack([padded[:, c : c + 5].sum(1) for c in range(7)], dim=1)
    assert name == "denominator"
    torch.testing.assert_close(stat, ((2 + 1e-4 * sums) ** 0.75).mean(dim=(2, 3)))


BAD = {
    "wrong statistic size": (
        "return x, [('m', x.mean(dim=(1, 2, 3)).unsqueeze(1))]",
        "size=None",
        "statistic 'm' has shape (2, 1) on a (2, 4, 6, 6) input in training mode; its declared size says (2, 4)",
    ),
    "one tensor": ("return x", "size=None", "forward must return (output, [(statistic name"),
    "bad default": (
        "return x, [('m', x.mean(dim=(2, 3)))]",
        "options={'eps': Option(float, -1.0, gt=0)}",
        "option 'eps' default -1.0 must be > 0",
    ),
    "option type": (
        "return x, [('m', x.mean(dim=(2, 3)))]",
        "options={'eps': Option(int, 1)}",
        "option 'eps' is int here but float in bn",
    ),
    "name taken": ("return x, [('m', x.mean(dim=(2, 3)))]", "short='bn'", "names 'bn'/'bad' are taken by BatchNorm"),
    "wrong params rule": (
        "return x, [('m', x.mean(dim=(2, 3)))]",
        "params=lambda c, o: (1, 0)",
        "its params rule says (1, 0) weights for 4 channels, the layer holds (0, 0)",
    ),
}


def _bad_plugin(tmp_path: Path, forward: str, spec: str) -> Path:
    fields = {"short": "'bad'", "size": "lambda c, o: c"}
    extra = []
    key, _, value = spec.partition("=")
    if key in fields:
        fields[key] = value
    else:
        extra.append(spec)
    size = "" if fields["size"] == "None" else f", size={fields['size']}"
    path = tmp_path / "bad_plugin.py"
    path.write_text(
        textwrap.dedent(
            f"""\
            from torch import nn
            from normscope.norms import NormSpec, Option, Statistic, register_norm

            class Bad(nn.Module):
                def __init__(self, channels, **options):
                    super().__init__()

                def forward(self, x):
                    {forward}

            register_norm(NormSpec(short={fields["short"]}, long="bad", display="Bad", layer=Bad,
                                   stats=(Statistic("m", "m", "m", "m"{size}),), {", ".join(extra)}))
            """
        )
    )
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_a_plugin_that_breaks_the_interface_is_refused_and_the_table_is_unchanged(case, tmp_path):
    forward, spec, words = BAD[case]
    path = _bad_plugin(tmp_path, forward, spec)
    before = (dict(norms.NORMS), dict(norms.OPTIONS), tuple(norms.ALL_VARIANTS))
    with pytest.raises(norms.PluginError) as err:
        norms.load_plugin(path)
    assert str(err.value).startswith(f"plugin {path}: ") and words in str(err.value), str(err.value)
    assert (dict(norms.NORMS), dict(norms.OPTIONS), tuple(norms.ALL_VARIANTS)) == before
    assert "normscope_plugin_bad_plugin" not in sys.modules


def test_a_plugin_that_registers_nothing_or_fails_is_refused(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(norms.PluginError, match="registers no normalization"):
        norms.load_plugin(empty)
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    with pytest.raises(norms.PluginError, match="failed to load: ModuleNotFoundError"):
        norms.load_plugin(broken)
    with pytest.raises(norms.PluginError, match="not a Python file"):
        norms.load_plugin(tmp_path / "missing.py")


def _python(*args, env=None, cwd=None):
    full = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    full.pop("NORMSCOPE_PLUGINS", None)
    full.update(env or {})
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=full, cwd=cwd)


def _cli(*args, env=None, cwd=None):
    return _python("-m", "normscope", *args, env=env, cwd=cwd)


CHECK_ONNX = """
import sys, numpy as np, onnxruntime as ort, torch
from normscope.train.runs import load_run
model = load_run(sys.argv[1]).load_model(device="cpu")
x = torch.randn(2, *model.graph.graph["input_shape"])
session = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
logits, stats = session.run(None, {"image": x.numpy()})
with torch.no_grad():
    want_logits, want_stats = model.forward_with_stats(x)
print(float(np.abs(logits - want_logits.numpy()).max()), float(np.abs(stats - want_stats.numpy()).max()), stats.shape)
"""


def test_a_description_naming_an_unloaded_norm_runs_no_code_and_says_how_to_load_it(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "rms.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    desc = tmp_path / "d.yml"
    desc.write_text(TINY.replace("name: tiny", "name: tiny\nnorm: rms\nvariants:\n  rms_v2: {}"))
    out = _cli("check", desc, cwd=tmp_path)
    assert out.returncode == 2 and not marker.exists()
    lines = out.stderr.strip().splitlines()  # check lists every error of the file
    assert f"error: {desc}:2: `norm`: unknown norm 'rms': is its plugin loaded? (--plugin FILE)" in lines, lines
    refused = _cli("--plugin", _bad_plugin(tmp_path, "return x", "size=None"), "check", desc)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "plugin " in refused.stderr and "forward must return (output" in refused.stderr


def test_rmsnorm_plugin_end_to_end_from_fresh_processes(tmp_path):
    desc = tmp_path / "tiny.yml"
    desc.write_text(TINY)
    data = ["--data", "synthetic:train=60,test=30,size=8", "--device", "cpu"]

    summary = _cli(
        "--plugin", RMS, "summary", ROOT / "examples" / "perceptnet.yml", "--norm", "rms", "--reuse", "--json"
    )
    assert summary.returncode == 0, summary.stderr
    s = json.loads(summary.stdout)
    assert s["flops_not_counted"] == ["rms1", "rms2", "rms3", "rms4"]
    assert s["total_params"] == 32_696 + (3 + 3 + 6 + 128) + 100 * 4  # the gains, and 4 reused values x 100 classes
    assert s["classifier_inputs"] == {"features": 128, "rms1.rms": 1, "rms2.rms": 1, "rms3.rms": 1, "rms4.rms": 1}

    drawn = _cli("--plugin", RMS, "draw", desc, "--norm", "rms", "--reuse", "--input", "3,8,8", "--classes", "10",
                 "-f", "pdf,tex", "-o", tmp_path / "fig")  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    assert (tmp_path / "fig" / "tiny_rms_v2.pdf").read_bytes()[:5] == b"%PDF-"
    assert r"\definecolor{ns-rms}{RGB}{120,94,240}" in (tmp_path / "fig" / "tiny_rms_v2.tex").read_text()

    trained = _cli("--plugin", RMS, "train", desc, "--norm", "rms", "--reuse", "--epochs", "1", *data,
                   "--out", tmp_path / "runs", "--name", "one", "--progress", "none")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "runs" / "one" / "results.json").read_text())["status"] == "completed"

    study = _cli("--plugin", RMS, "study", desc, "--variants", "rms,rms_v2", "--seeds", "1", "--epochs", "1",
                 *data, "--out", tmp_path / "study", "--no-attribute")  # fmt: skip
    assert study.returncode == 0, study.stderr + study.stdout
    runs = sorted(p.name for p in (tmp_path / "study").glob("*/runs/*") if (p / "results.json").is_file())
    assert runs == ["tiny_rms-s0", "tiny_rms_v2-s0"]

    onnx = tmp_path / "one.onnx"
    exported = _cli("--plugin", RMS, "export", tmp_path / "runs" / "one", "--with-stats", "-o", onnx)
    assert exported.returncode == 0, exported.stderr

    # the environment variable loads it as well as --plugin does
    checked = _python("-c", CHECK_ONNX, tmp_path / "runs" / "one", onnx, env={"NORMSCOPE_PLUGINS": str(RMS)})
    assert checked.returncode == 0, checked.stderr
    logits_diff, stats_diff, shape = checked.stdout.split(maxsplit=2)
    assert float(logits_diff) < 1e-4 and float(stats_diff) < 1e-4 and shape.strip() == "(2, 2)"  # rms1, rms2
    attributed = _cli("attribute", tmp_path / "runs" / "one", "--samples", "8", "--methods", "ig",
                      env={"NORMSCOPE_PLUGINS": str(RMS)})  # fmt: skip
    assert attributed.returncode == 0, attributed.stderr
    (written,) = (tmp_path / "runs" / "one").glob("attribution-ig*.json")  # named by its method (not the default)
    result = json.loads(written.read_text())
    assert {r["layer"] for r in result["layers"]} == {"rms1", "rms2"}


def test_an_installed_packages_entry_point_registers_its_norm(tmp_path):
    site = tmp_path / "site"
    (site / "myrms-0.1.dist-info").mkdir(parents=True)
    (site / "myrms.py").write_text(RMS.read_text())
    (site / "myrms-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: myrms\nVersion: 0.1\n")
    (site / "myrms-0.1.dist-info" / "entry_points.txt").write_text("[normscope.norms]\nrms = myrms\n")
    out = _cli("variants", ROOT / "examples" / "perceptnet.yml", "--json",
               env={"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{site}"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = {r["variant"]: r for r in json.loads(out.stdout)}
    assert rows["rms_v2"]["total_params"] == 32_696 + 140 + 100 * 4 and rows["rms"]["flops_not_counted"]


def test_ln_and_lrn_variants_count_what_the_built_modules_hold():
    from typer.testing import CliRunner

    from normscope import build_model, count_params
    from normscope.cli import app

    result = CliRunner().invoke(app, ["variants", str(ROOT / "examples" / "vgg16.yml"), "--json"])
    rows = {r["variant"]: r for r in json.loads(result.output)}
    for variant in ("ln", "ln_v2", "lrn", "lrn_v2"):
        norm, reuse = norms.parse_variant(variant)
        with torch.device("meta"):
            model = build_model(ROOT / "examples" / "vgg16.yml", norm=norm, reuse=reuse)
        assert (rows[variant]["trainable_params"], rows[variant]["non_trainable_params"]) == count_params(model)
    # VGG16's slots: 16, 32, 64, 128 channels; ln adds 2C each, reused 2 values per layer x 100 classes
    assert rows["ln"]["total_params"] - rows["none"]["total_params"] == 2 * 240
    assert rows["ln_v2"]["total_params"] - rows["ln"]["total_params"] == 100 * 2 * 4
    assert rows["lrn"]["total_params"] == rows["none"]["total_params"]
    assert rows["lrn_v2"]["classifier_input"] == 512 + 240


@pytest.mark.parametrize(
    "option,words",
    [
        ("size: 0", ":6: layer 'lrn1': key 'size' must be >= 1, got 0"),
        ("k: 0.0", ":6: layer 'lrn1': key 'k' must be > 0, got 0.0"),
        ("beta: fast", ":6: layer 'lrn1': key 'beta' must be a number, got 'fast'"),
    ],
)
def test_declared_option_ranges_are_checked_with_file_and_line(option, words, tmp_path):
    from normscope import SpecError, describe

    desc = tmp_path / "d.yml"
    desc.write_text(TINY.replace("input: auto", "input: [3, 8, 8]").replace("classes: auto", "classes: 2")
                    .replace("  - norm\n  - maxpool", "  - norm: {" + option + "}\n  - maxpool"))  # fmt: skip
    describe(desc, "none")  # without a normalization the slot disappears, and its options with it
    with pytest.raises(SpecError) as err:
        describe(desc, "lrn")
    assert str(err.value) == f"{desc}{words}"
