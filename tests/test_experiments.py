"""Experiments over any factor (issue 19): one declaration per run setting, `--set` overrides,
the Variant value, factor studies and their comparison, engines as objects, compare without torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from statsmodels.stats.multitest import multipletests

from normscope.errors import SpecError
from normscope.spec import TRAIN_ARGS, load_spec
from normscope.spec.overrides import parse_override
from normscope.spec.settings import SETTINGS
from normscope.spec.variant import Variant
from normscope.study import LocalEngine, StudyError, auto_parallel, parse_factors
from normscope.train.settings import OVERRIDABLE, TrainSettings

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
SRC = str(ROOT / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "normscope", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV
    )


# --- one declaration per setting --------------------------------------------------------


def test_schema_record_and_options_derive_from_the_declarations():
    names = [s.name for s in SETTINGS]
    assert list(TRAIN_ARGS) == names
    assert list(TrainSettings.__dataclass_fields__) == names
    assert OVERRIDABLE == tuple(s.name for s in SETTINGS if s.option)


# --- --set ------------------------------------------------------------------------------


def test_set_values_are_yaml_scalars_checked_against_the_schema():
    assert parse_override("train.lr=3e-4").value == 3e-4
    assert parse_override("train.betas=[0.9, 0.99]").value == [0.9, 0.99]
    assert parse_override("train.nesterov=true").value is True
    spec = load_spec(
        Variant.of(
            EX / "vgg16.yml",
            "bn",
            True,
            sets=["train.lr=3e-4", "layers.conv3.filters=64", "vars.drop=0.25"],
            norm_options=["bn.momentum=0.9"],
        )
    )
    layers = {ly.name: ly for ly in spec.layers}
    assert spec.train["lr"] == 3e-4 and layers["conv3"].args["filters"] == 64
    assert {ly.args["momentum"] for ly in spec.layers if ly.kind == "batchnorm"} == {0.9}
    assert {ly.args["rate"] for ly in spec.layers if ly.kind == "dropout"} == {0.25}
    assert spec.document["set"]["layers.conv3.filters"] == 64


@pytest.mark.parametrize(
    "text, words",
    [
        ("train.lrr=1", "unknown key 'lrr' in `train`; did you mean 'lr'?"),
        ("lr=1", "did you mean 'train.lr'?"),
        ("layers.conv99.filters=3", "the model has no layer 'conv99'; did you mean 'conv9'?"),
        ("layers.conv3.filter=3", "unknown key 'filter' for conv; did you mean 'filters'?"),
        ("norm_options.bn.momentun=0.9", "did you mean 'momentum'?"),
        ("vars.dorp=0.1", "no variable 'dorp'; did you mean 'drop'?"),
        ("train.lr=-1", "--set train.lr must be > 0, got -1"),
        ("train.epochs=abc", "--set train.epochs must be an integer"),
        ("train.lr=.nan", "is not a finite number"),
        ("norm_options.gn.groups=&a [*a]", "aliases"),
        ("norm=bn", "choose the normalization with --norm"),
        ("train.lr", "expected KEY=VALUE"),
    ],
)
def test_set_errors_name_the_override_and_suggest(text, words):
    with pytest.raises(SpecError) as err:
        load_spec(Variant.of(EX / "vgg16.yml", sets=[text]))
    assert words in str(err.value)


def test_set_on_every_command_that_reads_a_description(tmp_path):
    bad = "train.lrr=1"
    for args in (
        ["check", EX / "vgg16.yml"],
        ["summary", EX / "vgg16.yml"],
        ["variants", EX / "vgg16.yml"],
        ["draw", EX / "vgg16.yml", "-f", "dot", "-o", tmp_path],
        ["train", EX / "vgg16.yml", "--data", "synthetic:32", "--out", tmp_path],
        ["study", EX / "vgg16.yml", "--data", "synthetic:32", "--out", tmp_path],
        ["features", EX / "vgg16.yml", "--layer", "dense1", "--data", "synthetic:32", "--out", tmp_path / "f.npz"],
    ):
        out = cli(*args, "--set", bad)
        assert out.returncode == 2, (args, out.stderr)
        assert "did you mean 'lr'?" in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_summary_weights_match_the_model_with_its_norm_options(tmp_path):
    """Weights saved from PerceptNet-GDN with 5×5 GDN kernels load into that model (issue 19)."""
    from normscope import build_model

    model = build_model(EX / "perceptnet.yml", norm="gdn", norm_options={"gdn": {"kernel": 5}})
    torch.save(model.state_dict(), tmp_path / "k5.pth")
    out = cli(
        "summary", EX / "perceptnet.yml", "--norm", "gdn", "--norm-option", "gdn.kernel=5",
        "--weights", tmp_path / "k5.pth", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["weights"]
    assert report["initialized"] == [] and report["unused"] == []
    assert report["values"] == sum(p.numel() for p in model.state_dict().values() if p.dtype.is_floating_point)


def test_train_takes_norm_options_and_set_and_records_them(tmp_path):
    out = cli(
        "train", EX / "perceptnet.yml", "--norm", "bn", "--reuse", "--norm-option", "bn.reuse_stats=image",
        "--set", "layers.conv1.filters=4", "--data", "synthetic:48", "--fit-data", "--epochs", "1",
        "--subset", "30", "--test-subset", "10", "--out", tmp_path, "--progress", "none",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (run,) = tmp_path.iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["overrides"] == ["norm_options.bn.reuse_stats=image", "layers.conv1.filters=4"]
    again = load_spec(run / "description.yml")  # the run's description reproduces the overrides
    assert {ly.name: ly for ly in again.layers}["conv1"].args["filters"] == 4
    assert {ly.args["reuse_stats"] for ly in again.layers if ly.kind == "batchnorm"} == {"image"}
    plain = load_spec(Variant.of(EX / "perceptnet.yml", "bn", True, norm_options=["bn.reuse_stats=image"]))
    from normscope.spec.provenance import description_hash

    recorded = json.loads((run / "results.json").read_text())["provenance"]["description_sha256"]
    assert recorded == description_hash(again) != description_hash(plain)


# --- factors, engines -------------------------------------------------------------------


def test_factor_parsing():
    (f,) = parse_factors(["norm_options.bn.momentum=0.9,0.99"])
    assert [o.value for o in f.levels] == [0.9, 0.99] and f.short == "momentum"
    (b,) = parse_factors(["train.betas=[0.9,0.99],[0.8,0.9]"])
    assert [o.value for o in b.levels] == [[0.9, 0.99], [0.8, 0.9]]
    for text, words in (
        ("train.lr=1e-3", "at least two different levels"),
        ("train.lr=1e-3,1e-3", "at least two different levels"),
        ("train.seed=1,2", "use --seeds"),
        ("train.lr=1e-3,-1", "must be > 0"),
    ):
        with pytest.raises((StudyError, SpecError), match=words):
            parse_factors([text])


def test_auto_parallel_follows_cores_and_model_size():
    assert auto_parallel(runs=10, params=0, cores=4, memory=None) == 4
    assert auto_parallel(runs=3, params=0, cores=8, memory=None) == 3
    # 0.75 × 8 GB / (1 GB + 16 B × 100 M weights = 2.6 GB) = 2.3 -> 2
    assert auto_parallel(runs=10, params=100_000_000, cores=8, memory=8_000_000_000) == 2
    assert auto_parallel(runs=10, params=10**12, cores=8, memory=8_000_000_000) == 1


@pytest.mark.parametrize("parallel", [0, -1, 1000, "x"])
def test_local_engine_refuses_impossible_parallelism(parallel):
    with pytest.raises(StudyError, match="--parallel"):
        LocalEngine(parallel).check()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--variants", ""], "--variants is empty"),
        (["--cpus-per-run", "nan"], "--cpus-per-run must be a positive number"),
        (["--cpus-per-run", "0"], "--cpus-per-run must be a positive number"),
        (["--engine", "ray", "--gpus-per-run", "1e400"], "--gpus-per-run"),
        (["--engine", "ray", "--address", "ray://garbage"], "expected auto, HOST:PORT or ray://HOST:PORT"),
        (["--parallel", "1000"], "at most"),
        (["--seeds", "1e20"], "Invalid value for '--seeds'"),
        (["--factor", "norm_options.bn.momentum=0.9"], "at least two different levels"),
        pytest.param(
            ["--gpu"],
            "no CUDA GPU is available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="refused only without CUDA"),
        ),
    ],
)
def test_study_refuses_bad_options_before_writing(tmp_path, args, words):
    out = cli("study", EX / "perceptnet.yml", "--data", "synthetic:32", "--out", tmp_path / "s", *args)
    assert out.returncode == 2, out.stderr
    assert words in " ".join(out.stderr.replace("│", " ").split()) and "Traceback" not in out.stderr
    assert not (tmp_path / "s").exists()


def test_a_factor_study_runs_every_cell_and_compares_per_level(tmp_path):
    out = cli(
        "study", EX / "perceptnet.yml", "--variants", "in,in_v2", "--data", "synthetic:48", "--seeds", "3",
        "--epochs", "1", "--subset", "30", "--test-subset", "12", "--no-attribute", "--parallel", "2",
        "--set", "layers.conv1.filters=4", "--factor", "norm_options.in.eps=1e-3,1e-1", "--out", tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (study,) = tmp_path.iterdir()
    plan = json.loads((study / "study.json").read_text())
    assert plan["factors"] == {"norm_options.in.eps": [1e-3, 1e-1]}
    assert plan["sets"] == ["layers.conv1.filters=4"]
    assert len(plan["runs"]) == 12 and {r["state"] for r in plan["runs"]} == {"done"}
    assert {r["cell"]["norm_options.in.eps"] for r in plan["runs"]} == {1e-3, 1e-1}
    summary = json.loads((study / "comparison.json").read_text())
    reuse = [c for c in summary["claims"] if c["contrast"] == "reuse"]
    level = [c for c in summary["claims"] if c["contrast"] == "level"]
    assert sorted({c["family"] for c in reuse}) == ["perceptnet [eps=0.001]", "perceptnet [eps=0.1]"]
    assert len(reuse) == 2 * 2 and len(level) == 2 * 2  # (cells or variants) × (auc, accuracy)
    assert {(c["from"], c["to"]) for c in level} == {("0.001", "0.1")}
    for c in level:  # the paired difference recomputed from the runs
        rows = [r for r in summary["rows"] if r["variant"] == c["variant"]]
        by = {(r["levels"]["norm_options.in.eps"], r["seed"]): r[c["metric"]] for r in rows}
        assert c["differences"] == pytest.approx([by[("0.1", s)] - by[("0.001", s)] for s in (0, 1, 2)])
    tested = [c for c in summary["claims"] if c["p_value"] is not None]  # (a constant difference has none)
    expected = multipletests([c["p_value"] for c in tested], method="holm")[1]  # one family: every claim
    assert [c["p_holm"] for c in tested] == pytest.approx(list(expected)) and len(tested) >= 4
    assert "| in_v2 |" in (study / "factors.md").read_text()
    again = cli(
        "study", EX / "perceptnet.yml", "--variants", "in,in_v2", "--data", "synthetic:48", "--seeds", "3",
        "--epochs", "1", "--subset", "30", "--test-subset", "12", "--no-attribute",
        "--set", "layers.conv1.filters=4", "--factor", "norm_options.in.eps=1e-3,1e-1", "--out", tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "12 already done, 0 to run" in again.stdout
    other = cli(
        "study", EX / "perceptnet.yml", "--variants", "in,in_v2", "--data", "synthetic:48", "--seeds", "3",
        "--epochs", "2", "--factor", "norm_options.in.eps=1e-3,1e-1", "--out", tmp_path,
    )  # fmt: skip
    assert other.returncode == 2 and "holds a study with" in other.stderr
    probe = [sys.executable, "-c", COMPARE_PROBE, "compare", str(study), "--out", str(tmp_path / "c")]
    no_torch = subprocess.run(probe, capture_output=True, text=True, env=ENV)
    assert no_torch.stdout.strip().splitlines()[-1] == "NO-TORCH", no_torch.stderr


COMPARE_PROBE = """
import sys
from typer.testing import CliRunner
from normscope.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
print("TORCH" if any(m == "torch" or m.startswith("torch.") for m in sys.modules) else "NO-TORCH")
"""


@pytest.mark.parametrize("args", [["study", "--help"], ["compare", "--help"]])
def test_study_help_and_compare_import_no_torch(args):
    out = subprocess.run([sys.executable, "-c", COMPARE_PROBE, *args], capture_output=True, text=True, env=ENV)
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH", out.stderr


def _trained_change(tmp_path, name, *extra):
    """The largest change of conv1's weights over one SGD step (lr 1) from its seeded initialization."""
    from normscope import build_model

    out = cli(
        "train", EX / "perceptnet.yml", "--data", "synthetic:48", "--fit-data", "--epochs", "1", "--subset", "30",
        "--test-subset", "10", "--set", "train.optimizer=sgd", "--lr", "1", "--batch-size", "64",
        "--out", tmp_path, "--name", name, "--progress", "none", *extra,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    after = torch.load(tmp_path / name / "last.pt", map_location="cpu", weights_only=True)["model"]
    start = build_model(tmp_path / name / "description.yml", seed=0).state_dict()
    return (after["layers.conv1.weight"] - start["layers.conv1.weight"]).abs().max().item()


def test_a_setting_added_by_one_declaration_works_end_to_end(tmp_path):
    """grad_clip was added as one Setting (and its use in the loop): the schema, the typed
    record, train's and study's options and the checks all know it."""
    assert "grad_clip" in TRAIN_ARGS and "grad_clip" in TrainSettings.__dataclass_fields__
    assert "--grad-clip" in cli("study", "--help").stdout
    bad = cli("train", EX / "perceptnet.yml", "--grad-clip", "-1", "--out", tmp_path)
    assert bad.returncode == 2 and "--grad-clip must be > 0, got -1.0" in bad.stderr
    clipped = _trained_change(tmp_path, "clipped", "--grad-clip", "1e-6")
    free = _trained_change(tmp_path, "free")
    assert clipped <= 1e-6 + 1e-9 < free  # one step of lr 1 moves a weight by at most the clipped norm
