"""`normscope export`: the ONNX file run in onnxruntime gives the torch model's logits (and,
with --with-stats, its reused statistics) for the thesis' 14 variants; a .pt2 program too."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from normscope import VARIANTS, build_model
from normscope.cli import app
from normscope.norms import parse_variant

ort = pytest.importorskip("onnxruntime")  # the `onnx` extra (scripts/setup.sh installs it)

ROOT = Path(__file__).resolve().parents[1]
THESIS = [(family, v) for family in ("perceptnet", "vgg16") for v in VARIANTS]


def _onnx_outputs(path: Path, x: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x.numpy()})


@pytest.mark.parametrize("family,variant", THESIS, ids=[f"{f}-{v}" for f, v in THESIS])
def test_onnx_logits_match_torch_for_the_thesis_variants(family, variant, tmp_path, one_thread):
    norm, reuse = parse_variant(variant)
    desc = ROOT / "examples" / f"{family}.yml"
    out = tmp_path / "model.onnx"
    args = ["export", str(desc), "--norm", norm, "--reuse" if reuse else "--no-reuse", "--seed", "3", "-o", str(out)]
    result = CliRunner().invoke(app, args + (["--with-stats"] if reuse else []))
    assert result.exit_code == 0, result.output
    model = build_model(desc, norm=norm, reuse=reuse, seed=3).eval()
    x = torch.randn(2, *model.graph.graph["input_shape"], generator=torch.Generator().manual_seed(1))
    got = _onnx_outputs(out, x)
    with torch.no_grad():
        logits, stats = model.forward_with_stats(x)
    np.testing.assert_allclose(got[0], logits.numpy(), atol=1e-4, rtol=1e-4)
    if reuse:
        assert got[1].shape == (2, model.classifier_input.reused_size)
        np.testing.assert_allclose(got[1], stats.numpy(), atol=1e-4, rtol=1e-4)
    else:
        assert len(got) == 1


def test_pt2_program_and_refusals(tmp_path, one_thread):
    desc = ROOT / "examples" / "perceptnet.yml"
    out = tmp_path / "gdn.pt2"
    args = ["export", str(desc), "--norm", "gdn", "--reuse", "-f", "pt2", "--with-stats", "-o", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    program = torch.export.load(str(out))
    model = build_model(desc, norm="gdn", reuse=True, seed=0).eval()
    x = torch.randn(5, 3, 32, 32)  # another batch size than the one exported with
    with torch.no_grad():
        want = model.forward_with_stats(x)
        got = program.module()(x)
    torch.testing.assert_close(got[0], want[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got[1], want[1], atol=1e-4, rtol=1e-4)

    bad = CliRunner().invoke(app, ["export", str(desc), "--with-stats", "-o", str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and "--with-stats: perceptnet reuses no statistics" in bad.output
    bad = CliRunner().invoke(app, ["export", str(desc), "-f", "tflite", "-o", str(tmp_path / "x.tflite")])
    assert bad.exit_code == 2 and "unknown format 'tflite': choose from onnx, pt2" in bad.output
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.tflite").exists()


CHECK_PLUGIN_RUN = """
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


def test_a_plugin_norms_trained_run_exports_to_onnx(tmp_path):
    """examples/plugins/rmsnorm.py: train one epoch, export the run, run it in onnxruntime (fresh processes)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    env.pop("NORMSCOPE_PLUGINS", None)
    plugin = ROOT / "examples" / "plugins" / "rmsnorm.py"
    cli = [sys.executable, "-m", "normscope", "--plugin", str(plugin)]
    train = cli + ["train", str(ROOT / "examples" / "perceptnet.yml"), "--norm", "rms", "--reuse", "--epochs", "1"]
    train += ["--data", "synthetic:train=40,test=20", "--fit-data", "--device", "cpu", "--out", str(tmp_path)]
    trained = subprocess.run(train + ["--name", "r", "--progress", "none"], env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "r.onnx"
    done = subprocess.run(
        cli + ["export", str(tmp_path / "r"), "--with-stats", "-o", str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        [sys.executable, "-c", CHECK_PLUGIN_RUN, str(tmp_path / "r"), str(out)],
        env={**env, "NORMSCOPE_PLUGINS": str(plugin)},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    logits_diff, stats_diff, shape = check.stdout.split(maxsplit=2)
    assert float(logits_diff) < 1e-4 and float(stats_diff) < 1e-4 and shape.strip() == "(2, 4)"  # rms1..rms4
    assert json.loads((tmp_path / "r" / "results.json").read_text())["status"] == "completed"
