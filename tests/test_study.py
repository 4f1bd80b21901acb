"""Studies and comparisons: aggregation on hand-made run directories, and a tiny study end to end."""

import json
import math

import pytest
from typer.testing import CliRunner

from normscope.cli import app
from normscope.study import aggregate, collect, paired, parse_variants


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


def test_aggregate_mean_std_and_paired_verdict(tmp_path):
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
    assert agg["in"]["accuracy"] == pytest.approx(0.52)
    assert agg["in"]["accuracy_std"] == pytest.approx(0.02)  # sample std
    assert agg["in_v2"]["stats_share"] == pytest.approx(0.3)
    assert agg["in"]["stats_share"] is None
    (pair,) = paired(list(agg.values()), "auc")
    assert pair["difference"] == pytest.approx(0.09)
    assert pair["se"] == pytest.approx(math.sqrt(0.02**2 / 3 + 0.01**2 / 3))
    assert pair["beyond_spread"] is True


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
    assert "vgg16_gdn_v2" in table and "0.100 ± 0.000" in table
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0].startswith("family,variant,n,loss,loss_std")
    assert (out / "chart.png").stat().st_size > 5000
    assert "not comparable" in result.output  # synthetic data vs the thesis' CIFAR-100


def test_compare_errors(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "not a study or run directory" in result.output
    assert parse_variants("none,bn_v2") == ["none", "bn_v2"]
    result = CliRunner().invoke(app, ["study", "examples/vgg16.yml", "--variants", "bn,xx", "--data", "synthetic"])
    assert result.exit_code == 2 and "unknown xx" in result.output
    result = CliRunner().invoke(app, ["study", "examples/vgg16.yml", "--data", "bogus", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "Unknown data set 'bogus'" in result.output
    assert not (tmp_path / "s").exists()


def test_tiny_study_end_to_end_and_resume(tmp_path):
    from normscope.study import run_study

    logs = []
    study_dir = run_study(
        "examples/perceptnet.yml",
        variants="in,in_v2",
        seeds=2,
        data="synthetic",
        epochs=1,
        out=tmp_path,
        device="cpu",
        attribute_samples=100,
        log=logs.append,
    )
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
    share = json.loads((run / "attribution.json").read_text())["stats_share"]
    assert 0 <= share <= 1
    assert not (study_dir / "runs" / "perceptnet_in-s0" / "attribution.json").exists()
    table = (study_dir / "table.md").read_text()
    assert "| perceptnet_in | 2 |" in table and "| perceptnet_in_v2 | 2 |" in table
    assert (study_dir / "chart.png").is_file() and (study_dir / "paired.md").is_file()

    # a second call finds everything done and trains nothing
    stamp = (run / "results.json").stat().st_mtime_ns
    run_study(
        "examples/perceptnet.yml",
        variants="in,in_v2",
        seeds=2,
        data="synthetic",
        epochs=1,
        out=tmp_path,
        device="cpu",
        log=logs.append,
    )
    assert "0 to run" in logs[-1] or any("0 to run" in line for line in logs[-3:])
    assert (run / "results.json").stat().st_mtime_ns == stamp

    # an interrupted run (a checkpoint, no results) is resumed, not restarted
    (run / "results.json").unlink()
    run_study(
        "examples/perceptnet.yml",
        variants="in,in_v2",
        seeds=2,
        data="synthetic",
        epochs=1,
        out=tmp_path,
        device="cpu",
        log=logs.append,
    )
    assert any("3 already done, 1 to run" in line for line in logs)
    assert json.loads((run / "results.json").read_text())["status"] == "completed"

    # a different protocol in the same directory is refused
    with pytest.raises(Exception, match="epochs"):
        run_study(
            "examples/perceptnet.yml",
            variants="in",
            seeds=1,
            data="synthetic",
            epochs=2,
            out=tmp_path,
            device="cpu",
            log=logs.append,
        )


def test_variants_and_pairs_follow_the_norms_table(tmp_path):
    from normscope import norms
    from normscope.study import StudyError

    assert parse_variants("all") == parse_variants(None) == list(norms.VARIANTS)
    assert parse_variants(",".join(norms.ALL_VARIANTS)) == list(norms.ALL_VARIANTS)
    for norm in reversed(norms.STUDY_NORMS):  # written in reverse, reported in table order
        for reuse in (True, False):
            for seed in range(2):
                make_run(tmp_path, "net", norms.variant_key(norm, reuse), seed, 0.5 + 0.1 * reuse + 0.01 * seed, 0.8)
    agg = aggregate(collect([tmp_path]))
    assert [a["variant"] for a in agg] == [norms.variant_key(n, r) for n in norms.STUDY_NORMS for r in (False, True)]
    pairs = paired(agg, "accuracy")
    assert [p["norm"] for p in pairs] == list(norms.STUDY_NORMS)
    assert all(p["difference"] == pytest.approx(0.1) for p in pairs)

    make_run(tmp_path / "odd", "net", "xx_v2", 0, 0.5, 0.8)
    with pytest.raises(StudyError, match="unknown variant 'xx_v2'"):
        collect([tmp_path / "odd"])
