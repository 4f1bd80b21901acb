"""The static commands (--help, check, summary, variants, draw, report) import no torch: shapes and
parameter counts are facts of the graph, and the library loads torch only to build."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EX = Path(__file__).resolve().parents[1] / "examples"

PROBE = """
import sys
from typer.testing import CliRunner
from normscope.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
print("TORCH" if any(m == "torch" or m.startswith("torch.") for m in sys.modules) else "NO-TORCH")
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["check", str(EX / "vgg16.yml"), str(EX / "perceptnet_gdn_v2.yml")],
        ["summary", str(EX / "vgg16.yml"), "--norm", "bn", "--reuse"],
        ["summary", str(EX / "perceptnet.yml"), "--json"],
        ["variants", str(EX / "perceptnet.yml")],
        ["draw", str(EX / "vgg16_in_v2.yml"), "-f", "tex", "-o", "{tmp}"],
        ["report", str(EX.parent / "docs" / "results" / "fashion_study_comparison.json"), "-o", "{tmp}/r.html"],
    ],
    ids=["help", "check", "summary", "summary-json", "variants", "draw", "report"],
)
def test_static_commands_import_no_torch(args, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH"


def test_import_normscope_is_torch_free_until_a_model_is_built():
    code = "import sys, normscope; a = 'torch' in sys.modules; normscope.build_model; print(a, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_summary_json_counts_without_torch_match_the_thesis():
    """vgg16_in_v2: 577,812 weights (Keras), 992 classifier inputs, from the graph alone."""
    code = (
        "import json, sys; from normscope import summarize; "
        f"s = summarize({str(EX / 'vgg16_in_v2.yml')!r}); "
        "print(json.dumps([s.total_params, sum(s.classifier_inputs.values()), 'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout) == [577812, 992, False], out.stderr


def _summary_json(*args):
    out = subprocess.run(
        [sys.executable, "-m", "normscope", "summary", *args, "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_norm_option_on_the_command_line_selects_per_image_bn_statistics():
    """`--norm-option bn.reuse_stats=image` overrides the description: the BatchNorm reuse
    diagnostic goes away and each BN layer adds its per-image statistics' work (4 FLOPs per
    value of its C·H·W input: 16·32·32 + 32·16·16 + 64·8·8 + 128·4·4 = 30,720 values)."""
    batch = _summary_json(str(EX / "vgg16_bn_v2.yml"))
    image = _summary_json(str(EX / "vgg16_bn_v2.yml"), "--norm-option", "bn.reuse_stats=image")
    assert [d["code"] for d in batch["diagnostics"]] == ["batch-stats-reuse"]
    assert image["diagnostics"] == []
    assert image["total_flops"] - batch["total_flops"] == 4 * 30_720
    assert image["total_params"] == batch["total_params"]


@pytest.mark.parametrize(
    "value,words",
    [
        ("bnreuse", "--norm-option 'bnreuse': expected NORM.KEY=VALUE"),
        ("bn.reuse_stat=image", "unknown key 'reuse_stat' in `norm_options.bn`; did you mean 'reuse_stats'?"),
        ("xx.eps=0.1", "--norm-option norm_options.xx.eps: unknown norm 'xx': is its plugin loaded? (--plugin FILE)"),
        ("gn.groups=&a [*a]", "YAML aliases (*name) are not allowed"),
        ("bn.eps=-1.0", "--norm-option norm_options.bn.eps must be"),
        ("bn.kernel=3", "unknown key 'kernel' in `norm_options.bn`"),
    ],
)
def test_bad_norm_options_are_refused(value, words):
    out = subprocess.run(
        [sys.executable, "-m", "normscope", "summary", str(EX / "vgg16_bn_v2.yml"), "--norm-option", value],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert words in " ".join(out.stderr.split())
