"""`normscope export`: the ONNX file run in onnxruntime gives the torch model's logits (and,
with --with-stats, its reused statistics) for the thesis' 14 variants; a .pt2 program too.
(A plugin's normalization, trained and exported from its run: tests/test_plugins.py.)"""

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
