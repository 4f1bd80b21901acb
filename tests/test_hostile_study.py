"""Studies under careless or concurrent use: every refused command leaves the study
directory byte-identical, bad settings are refused before anything is written, and two
studies started on one directory never both write it."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
        (["--epochs", "0"], ["--epochs must be at least 1, got 0"]),
        (["--epochs", "-1"], ["--epochs must be at least 1, got -1"]),
        (["--subset", "0"], ["--subset must be at least 1, got 0"]),
        (["--test-subset", "0"], ["--test-subset must be at least 1, got 0"]),
        (["--lr", "nan"], ["--lr must be a positive number, got nan"]),
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
    assert_refused(out, "--epochs must be at least 1")
    assert not (tmp_path / "studies").exists()


def test_two_studies_on_one_directory(tmp_path):
    """The second study refuses while the first holds the directory, naming its process;
    the first completes and the study is whole."""
    env = dict(os.environ, NORMSCOPE_DEBUG="")
    slow = [a if a != DATA else "synthetic:train=3000,test=40,size=16" for a in BASE]  # long enough to race
    first = subprocess.Popen(
        [sys.executable, "-m", "normscope", *slow, "--epochs", "3", "--out", str(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 240
    lock = None
    while time.monotonic() < deadline and first.poll() is None:
        found = list(tmp_path.glob("*/.lock"))
        if found and list(tmp_path.glob("*/runs/*/last.pt")):
            lock = found[0]
            break
        time.sleep(0.2)
    assert lock is not None, "the first study never started training"
    second = cli([*slow, "--epochs", "3", "--out", str(tmp_path)], tmp_path, env=env)
    assert first.poll() is None, "the first study ended before the second started: nothing was raced"
    assert_refused(second, "is in use by process", str(first.pid))
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    study = lock.parent
    doc = json.loads((study / "study.json").read_text())
    assert [r["state"] for r in doc["runs"]] == ["done"]
    assert not (study / ".lock").exists()
    (run,) = study.glob("runs/*")
    assert json.loads((run / "results.json").read_text())["status"] == "completed"
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 3  # header and three epochs, once each
