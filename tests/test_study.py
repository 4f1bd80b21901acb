"""Studies and comparisons: aggregation on hand-made run directories, a tiny study end to end,
and a multi-epoch study killed in the middle and resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from normscope.cli import app
from normscope.study import FILES, StudyError, aggregate, claims, collect, parse_variants
from normscope.train import runs


def make_run(root, family, variant, seed, accuracy, auc, loss=1.0, stats_share=None, status="completed"):
    d = root / f"{family}_{variant}-s{seed}"
    d.mkdir(parents=True)
    test = {
        "loss": loss,
        "accuracy": accuracy,
        "precision": 0.5,
        "recall": 0.25,
        "auc": auc,
        "top5_accuracy": 0.9,
        "macro_f1": 0.4,
    }
    (d / "results.json").write_text(
        json.dumps(
            {
                "status": status,
                "name": f"{family}_{variant}",
                "variant": variant,
                "seed": seed,
                "data": "synthetic",
                "test": test,
                "params": {"total": 1000},
                "best_epoch": 3,
            }
        )
    )
    (d / "config.json").write_text(json.dumps({"family": family}))
    if stats_share is not None:
        (d / "attribution.json").write_text(json.dumps({"stats_share": stats_share}))
    return d


def test_aggregate_mean_std_and_paired_claim(tmp_path):
    make_run(tmp_path, "net", "in", 0, 0.50, 0.80)
    make_run(tmp_path, "net", "in", 1, 0.52, 0.82)
    make_run(tmp_path, "net", "in", 2, 0.54, 0.84)
    make_run(tmp_path, "net", "in_v2", 0, 0.60, 0.90, stats_share=0.2)
    make_run(tmp_path, "net", "in_v2", 1, 0.62, 0.91, stats_share=0.4)
    make_run(tmp_path, "net", "in_v2", 2, 0.64, 0.92, stats_share=0.3)
    make_run(tmp_path, "net", "bn", 0, 0.1, 0.5, status="failed")  # ignored
    rows = collect([tmp_path])
    assert len(rows) == 6
    agg = {a["variant"]: a for a in aggregate(rows)}
    assert list(agg) == ["in", "in_v2"]
    assert agg["in"]["accuracy"] == pytest.approx(0.52) and agg["in"]["seeds"] == [0, 1, 2]
    assert agg["in"]["accuracy_std"] == pytest.approx(0.02)  # sample std
    assert agg["in_v2"]["stats_share"] == pytest.approx(0.3)
    assert agg["in"]["stats_share"] is None and agg["in"]["stats_share_std"] is None
    (auc,) = claims(rows, metrics=("auc",))
    # per seed 0.10, 0.09, 0.08: mean 0.09, sd 0.01; t(0.975, 2 df) = 4.3026527
    assert auc["difference"] == pytest.approx(0.09) and auc["differences"] == pytest.approx([0.1, 0.09, 0.08])
    assert auc["ci_high"] == pytest.approx(0.09 + 4.3026527 * 0.01 / 3**0.5)
    assert auc["verdict"] == "reuse helps" and auc["p_holm"] == auc["p_value"] < 0.05  # one claim: Holm changes nothing


def test_compare_cli_writes_table_csv_chart(tmp_path):
    for seed, acc in enumerate((0.3, 0.5)):
        make_run(tmp_path / "runs", "vgg16", "none", seed, acc, 0.8)
        make_run(tmp_path / "runs", "vgg16", "gdn_v2", seed, acc + 0.1, 0.9, stats_share=0.1)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "runs"), "--out", str(out), "--reference", "thesis"])
    assert result.exit_code == 0, result.output
    table = (out / "table.md").read_text()
    assert (
        "| vgg16 | 2 | 1.000 ± 0.000 | 0.500 ± 0.000 | 0.250 ± 0.000 | 0.800 ± 0.000 | 0.400 ± 0.141 | "
        "0.900 ± 0.000 | 1,000 | — |"
    ) in table
    assert "| *thesis* | 1 | 2.974 | 0.544 | 0.331 | 0.878 | 0.394 |" in table
    assert (
        "| vgg16_gdn_v2 | 2 | 1.000 ± 0.000 | 0.500 ± 0.000 | 0.250 ± 0.000 | 0.900 ± 0.000 | 0.500 ± 0.141 |" in table
    )
    assert (
        r"\quad\textit{thesis} & 1 & $2.974$ & $0.544$ & $0.331$ & $0.878$ & $0.394$ &  &  &  \\"
        in (out / "table.tex").read_text()
    )
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0].startswith("family,variant,n,loss,loss_std")
    assert csv[1].startswith("vgg16,none,2,1.0,0.0,0.5,0.0,0.25,0.0,0.8,0.0,0.4,0.1414")
    assert (out / "chart.png").stat().st_size > 5000
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert "not comparable" in result.output  # synthetic data vs the thesis' CIFAR-100
    assert json.loads((out / "comparison.json").read_text())["claims"] == []  # none and gdn_v2: no pair


def test_compare_errors(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "not a study or run directory" in result.output
    result = CliRunner().invoke(app, ["compare", str(tmp_path), "--reference", "paper"])
    assert result.exit_code == 2 and "--reference takes `thesis`, got 'paper'" in result.output
    make_run(tmp_path / "dup" / "a", "net", "in", 0, 0.5, 0.8)
    make_run(tmp_path / "dup" / "b", "net", "in", 0, 0.6, 0.8)
    make_run(tmp_path / "dup" / "b", "net", "in_v2", 0, 0.6, 0.8)
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "dup" / "a"), str(tmp_path / "dup" / "b")])
    assert result.exit_code == 2 and "two runs of net_in with seed 0:" in result.output
    assert parse_variants("none,bn_v2") == ["none", "bn_v2"]
    result = CliRunner().invoke(app, ["study", "examples/vgg16.yml", "--variants", "bn,xx", "--data", "synthetic"])
    assert result.exit_code == 2 and "unknown xx" in result.output
    result = CliRunner().invoke(app, ["study", "examples/vgg16.yml", "--data", "bogus", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "Unknown data set 'bogus'" in result.output
    assert not (tmp_path / "s").exists()


TINY = dict(variants="in,in_v2", seeds=2, data="synthetic", epochs=1, device="cpu")


def test_tiny_study_end_to_end(tmp_path, one_thread):
    from normscope.study import run_study

    logs = []
    study_dir = run_study("examples/perceptnet.yml", out=tmp_path, attribute_samples=100, log=logs.append, **TINY)
    assert study_dir == tmp_path / "perceptnet-synthetic"
    plan = json.loads((study_dir / "study.json").read_text())
    assert [(r["variant"], r["seed"], r["state"]) for r in plan["runs"]] == [
        ("in", 0, "done"),
        ("in", 1, "done"),
        ("in_v2", 0, "done"),
        ("in_v2", 1, "done"),
    ]
    run = study_dir / "runs" / "perceptnet_in_v2-s1"
    assert json.loads((run / "results.json").read_text())["seed"] == 1
    attribution = json.loads((run / "attribution.json").read_text())
    totals = {t["name"]: t["ig_share"] for t in attribution["totals"]}
    # the shares of |IG| split the whole: statistics + features = 1, statistics = the sum of its layers
    assert attribution["stats_share"] == pytest.approx(totals["statistics"])
    assert totals["statistics"] + totals["features"] == pytest.approx(1, abs=1e-5)
    assert sum(r["ig_share"] for r in attribution["layers"]) == pytest.approx(totals["statistics"], abs=1e-5)
    assert not (study_dir / "runs" / "perceptnet_in-s0" / "attribution.json").exists()
    table = (study_dir / "table.md").read_text()
    assert "| perceptnet_in | 2 |" in table and "| perceptnet_in_v2 | 2 |" in table
    assert "| perceptnet | in | AUC | 2 |" in (study_dir / "paired.md").read_text()
    assert "too few paired seeds" in (study_dir / "paired.md").read_text()  # 2 seeds
    assert (study_dir / "chart.png").is_file() and (study_dir / "paired.tex").is_file()

    # a second call finds everything done and trains nothing
    stamps = {p: p.stat().st_mtime_ns for p in (study_dir / "runs").glob("*/results.json")}
    run_study("examples/perceptnet.yml", out=tmp_path, log=logs.append, **TINY)
    assert {p: p.stat().st_mtime_ns for p in (study_dir / "runs").glob("*/results.json")} == stamps

    # a different protocol in the same directory is refused
    with pytest.raises(StudyError, match="holds a study with epochs=1, not 2; use another --out"):
        run_study("examples/perceptnet.yml", out=tmp_path, log=logs.append, **{**TINY, "epochs": 2})


def test_study_killed_in_the_middle_resumes_the_run_from_its_checkpoint(tmp_path):
    """`normscope study` is killed (SIGKILL, its whole process group) once the first run has
    written its first checkpoint; a second call continues that run from last.pt and trains the rest."""
    args = ["study", "examples/perceptnet.yml", "--variants", "in,in_v2", "--seeds", "1", "--data", "synthetic"]
    args += ["--epochs", "3", "--subset", "300", "--device", "cpu", "--no-attribute", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", "from normscope.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: worker processes die with it
    )
    study_dir = tmp_path / "perceptnet-synthetic"
    first, second = (study_dir / "runs" / name for name in ("perceptnet_in-s0", "perceptnet_in_v2-s0"))
    deadline = time.time() + 240
    try:
        while time.time() < deadline and child.poll() is None and not (first / runs.LAST).is_file():
            time.sleep(0.02)
        assert child.poll() is None, child.stdout.read().decode()
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    before = runs.read_history(first / runs.METRICS)
    env_before = (first / runs.ENV).read_text()
    assert 1 <= len(before) < 3  # killed in the middle of the run
    assert runs.read_json(first / runs.RESULTS)["status"] == "running"
    assert not (second / runs.RESULTS).exists()

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    after = runs.read_history(first / runs.METRICS)
    assert [r["epoch"] for r in after] == [1, 2, 3]
    assert after[: len(before)] == before  # the finished epochs were kept (their timings too), not trained again
    assert (first / runs.ENV).read_text() == env_before  # the same run directory, not a new one
    for run in (first, second):
        res = runs.read_json(run / runs.RESULTS)
        assert (res["status"], res["epochs_done"]) == ("completed", 3)
    plan = json.loads((study_dir / "study.json").read_text())
    assert [r["state"] for r in plan["runs"]] == ["done", "done"]


def test_variants_and_claims_follow_the_norms_table(tmp_path):
    from normscope import norms

    assert parse_variants("all") == parse_variants(None) == list(norms.VARIANTS)
    assert parse_variants(",".join(norms.ALL_VARIANTS)) == list(norms.ALL_VARIANTS)
    for norm in reversed(norms.STUDY_NORMS):  # written in reverse, reported in table order
        for reuse in (True, False):
            for seed in range(2):
                make_run(tmp_path, "net", norms.variant_key(norm, reuse), seed, 0.5 + 0.1 * reuse + 0.01 * seed, 0.8)
    agg = aggregate(collect([tmp_path]))
    assert [a["variant"] for a in agg] == [norms.variant_key(n, r) for n in norms.STUDY_NORMS for r in (False, True)]
    found = claims(collect([tmp_path]), metrics=("accuracy",))
    assert [c["norm"] for c in found] == list(norms.STUDY_NORMS)
    assert [c["difference"] for c in found] == pytest.approx([0.1] * len(norms.STUDY_NORMS))
    assert {c["verdict"] for c in found} == {"too few paired seeds"}

    make_run(tmp_path / "odd", "net", "xx_v2", 0, 0.5, 0.8)
    with pytest.raises(StudyError, match="unknown variant 'xx_v2'"):
        collect([tmp_path / "odd"])
