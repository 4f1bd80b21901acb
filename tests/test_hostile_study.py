"""Studies under careless or concurrent use: every refused command leaves the study
directory byte-identical, bad settings are refused before anything is written, and two
studies started on one directory never both write it."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from normscope.rundir import lock

EX = Path(__file__).resolve().parents[1] / "examples"
DATA = "synthetic:train=120,test=40,size=16"
BASE = [
    "study",
    str(EX / "perceptnet.yml"),
    "--data",
    DATA,
    "--variants",
    "in_v2",
    "--seeds",
    "1",
    "--no-attribute",
    "--batch-size",
    "32",
]


def cli(args, cwd, timeout=300, env=None):
    return subprocess.run(
        [sys.executable, "-m", "normscope", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def assert_refused(out, *words):
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stdout + out.stderr
    message = " ".join(out.stderr.split())
    for word in words:
        assert word in message, (word, message)


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    out = cli([*BASE, "--epochs", "1", "--out", str(root)], root)
    assert out.returncode == 0, out.stderr
    (study,) = [p for p in root.iterdir() if p.is_dir()]
    return study


@pytest.mark.parametrize(
    "args,words",
    [
        (["--epochs", "0"], ["--epochs must be >= 1, got 0"]),
        (["--epochs", "-1"], ["--epochs must be >= 1, got -1"]),
        (["--subset", "0"], ["--subset must be >= 2, got 0"]),
        (["--test-subset", "0"], ["--test-subset must be at least 1, got 0"]),
        (["--lr", "nan"], ["--lr must be a finite number, got nan"]),
        (["--samples", "-5"], ["--samples must be at least 0, got -5"]),
        (["--epochs", "2"], ["holds a study with epochs=1, not 2"]),
    ],
    ids=["epochs-0", "epochs-negative", "subset-0", "test-subset-0", "lr-nan", "samples-negative", "other-protocol"],
)
def test_refused_study_leaves_the_directory_byte_identical(finished_study, args, words):
    before = tree_hash(finished_study)
    extra = [] if "--epochs" in args else ["--epochs", "1"]
    out = cli([*BASE, *extra, *args, "--out", str(finished_study.parent)], finished_study.parent)
    assert_refused(out, *words)
    assert tree_hash(finished_study) == before


def test_bad_settings_write_nothing(tmp_path):
    out = cli([*BASE, "--epochs", "0", "--out", str(tmp_path / "studies")], tmp_path)
    assert_refused(out, "--epochs must be >= 1")
    assert not (tmp_path / "studies").exists()


def test_a_study_held_by_another_process_refuses_and_changes_nothing(finished_study):
    """While another process holds the study's lock, `study` refuses naming that process
    and leaves every file as it was; once it is released, the same command runs."""
    held = lock.acquire(finished_study)
    try:
        before = tree_hash(finished_study)
        out = cli([*BASE, "--epochs", "1", "--out", str(finished_study.parent)], finished_study.parent)
        assert_refused(out, "is in use by process", str(os.getpid()))
        assert tree_hash(finished_study) == before
    finally:
        held.release()
    out = cli([*BASE, "--epochs", "1", "--out", str(finished_study.parent)], finished_study.parent)
    assert out.returncode == 0, out.stderr
    assert "1 runs, 1 already done, 0 to run" in out.stdout


def test_two_studies_started_together_train_each_run_once(tmp_path):
    """Two `normscope study` commands on one directory: the one that comes second either
    refuses (the first holds the study) or finds the work done; never a traceback, never a
    run trained twice, and the study ends whole."""
    args = [sys.executable, "-m", "normscope", *BASE, "--epochs", "3", "--out", str(tmp_path)]
    procs = [
        subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 2]), outs
    for (stdout, stderr), p in zip(outs, procs):
        assert "Traceback" not in stdout + stderr
        if p.returncode == 2:
            assert "is in use by process" in " ".join(stderr.split())
    (study,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    doc = json.loads((study / "study.json").read_text())
    assert [r["state"] for r in doc["runs"]] == ["done"]
    assert not (study / ".lock").exists()
    (run,) = study.glob("runs/*")
    assert json.loads((run / "results.json").read_text())["status"] == "completed"
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 3  # header and three epochs, once each


def test_compare_names_a_run_whose_process_died(finished_study, tmp_path):
    """A run that still says `running` but whose process is gone is reported as interrupted."""
    import shutil

    study = tmp_path / finished_study.name
    shutil.copytree(finished_study, study)
    (run,) = study.glob("runs/*")
    dead = run.with_name(run.name + "-dead")
    shutil.copytree(run, dead)
    results = json.loads((dead / "results.json").read_text())
    results["status"] = "running"
    (dead / "results.json").write_text(json.dumps(results))
    out = cli(["compare", str(study)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"{dead.name} is interrupted: left out" in " ".join(out.stdout.split())
