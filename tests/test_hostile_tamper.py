"""Hostile input, round three (issue 21): tampered run and study directories, names that
would command the terminal, and a study killed outright or stopped.

Each refusal: exit status 2, one line naming the file (or run) and what is wrong, no
traceback, no Python warning on stderr, and the directories it read byte-identical.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import normscope
from fixtures import tree_hash
from normscope.cli import app
from normscope.train import runs, train

pytestmark = pytest.mark.usefixtures("one_thread")

EX = Path(__file__).resolve().parents[1] / "examples"
SRC = str(Path(normscope.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
DATA = "synthetic:train=60,test=20,size=8,classes=2"
TINY = """\
name: tiny
input: auto
classes: auto
layers:
  - conv: {filters: 4, kernel: 3, activation: relu}
  - flatten
  - dense: {name: classifier}
train: {epochs: 1, batch_size: 32}
"""
DEEP = "[" * 100_000 + "]" * 100_000


def invoke(args) -> tuple[int, str]:
    """(exit status, output as one line); no exception, traceback or Python warning may escape."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: {result.exception!r}") from result.exception
    assert "Traceback" not in result.output and "Warning" not in result.output, result.output
    return result.exit_code, " ".join(result.output.split())


def fake_run(root: Path, variant: str, seed: int, accuracy: float, family: str = "net", **changes) -> Path:
    d = root / "runs" / f"{family}_{variant}-s{seed}"
    d.mkdir(parents=True)
    test = {"loss": 1.0, "accuracy": accuracy, "precision": 0.5, "recall": 0.5, "auc": 0.8, "macro_f1": 0.4}
    res = {"status": "completed", "name": family, "variant": variant, "seed": seed, "data": "synthetic"}
    res.update(test=test, params={"total": 1000}, best_epoch=1)
    res.update(changes)
    (d / "results.json").write_text(json.dumps(res))
    (d / "config.json").write_text(json.dumps({"family": family}))
    return d


def fake_study(root: Path, differences=(0.1, 0.12, 0.08), family: str = "net") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "study.json").write_text("{}")
    for seed, d in enumerate(differences):
        fake_run(root, "in", seed, 0.5 + 0.01 * seed, family)
        fake_run(root, "in_v2", seed, 0.5 + 0.01 * seed + d, family)
    return root


def _results(**changes):
    def damage(study: Path) -> None:
        path = study / "runs" / "net_in_v2-s0" / "results.json"
        res = json.loads(path.read_text())
        for key, value in changes.items():
            target, _, leaf = key.partition(".")
            if leaf:
                res[target][leaf] = value
            else:
                res[key] = value
        path.write_text(json.dumps(res))

    return damage


def _file(name: str, text: str):
    return lambda study: (study / "runs" / "net_in_v2-s0" / name).write_text(text)


RUN = "runs/net_in_v2-s0"
# case -> (damage, words of the message)
TAMPERED = {
    "test-a-list": (_results(test=[0.5]), [f"{RUN}/results.json: 'test' must be a mapping of metrics, got list"]),
    "params-an-int": (_results(params=5), [f"{RUN}/results.json: 'params' has the wrong type (int)"]),
    "seed-a-bool": (_results(seed=True), ["'seed' has the wrong type (bool)"]),
    "results-nested-100000-deep": (
        _file("results.json", DEEP),
        [f"{RUN}/results.json: not a file normscope wrote: it nests deeper than 64 levels"],
    ),
    "attribution-nested-100000-deep": (
        _file("attribution.json", DEEP),
        [f"{RUN}/attribution.json: not a file normscope wrote: it nests deeper than 64 levels"],
    ),
    "config-nested-100000-deep": (_file("config.json", DEEP), [f"{RUN}/config.json: not a file", "deeper than 64"]),
    "attribution-totals-numbers": (
        _file("attribution.json", '{"stats_share": 0.1, "totals": [1, 2], "layers": []}'),
        ["attribution.json: 'totals' and 'layers' must be lists of mappings"],
    ),
    "share-above-1": (
        _file("attribution.json", '{"stats_share": 1.01, "totals": [], "layers": []}'),
        ["attribution.json: a share or accuracy drop is 1.01, not a number from -1 to 1"],
    ),
    "family-a-list": (_file("config.json", '{"family": [1]}'), ["config.json: 'family' must be a string, got [1]"]),
    "metric-inf": (_results(**{"test.accuracy": float("inf")}), ["run net_in_v2-s0: test accuracy is inf"]),
    "metric-nan": (_results(**{"test.auc": float("nan")}), ["run net_in_v2-s0: test auc is nan", "finite values"]),
    "metric-1e308": (
        _results(**{"test.accuracy": 1e308}),
        ["test.accuracy must be a number from 0 to 1, got 1e+308"],
    ),
    "loss-1e308": (_results(**{"test.loss": 1e308}), ["test.loss must be a number from 0 to 1e+100, got 1e+308"]),
    "metric-a-string": (_results(**{"test.recall": "0.5"}), ["test.recall must be a number from 0 to 1, got '0.5'"]),
}


def test_compare_reads_a_share_of_one_that_float32_rounded_above_it(tmp_path):
    """All of the attribution on the statistics, summed in float32, can read 1.0000000686
    (PerceptNet-IN-v2 in the demo): that is normscope's own output, not a tampered file."""
    study = fake_study(tmp_path / "study")
    (study / "runs" / "net_in_v2-s0" / "attribution.json").write_text(
        '{"stats_share": 1.0000000686244443, "totals": [], "layers": []}'
    )
    code, message = invoke(["compare", study, "--out", tmp_path / "out"])
    assert code == 0, message
    summary = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert [r["stats_share"] for r in summary["rows"] if r["run"].endswith("net_in_v2-s0")] == [1.0000000686244443]


@pytest.mark.parametrize("case", list(TAMPERED))
def test_compare_refuses_a_tampered_study(case, tmp_path):
    damage, words = TAMPERED[case]
    study = fake_study(tmp_path / "study")
    damage(study)
    before = tree_hash(study)
    code, message = invoke(["compare", study, "--out", tmp_path / "out"])
    assert code == 2, message
    assert message.startswith("error:") and message.count("error:") == 1, message
    for word in words:
        assert word in message, (word, message)
    assert tree_hash(study) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "differences, verdict",
    [((0.1, 0.1, 0.1), "constant difference, test undefined"), ((0.0, 0.0, 0.0), "identical in every seed")],
    ids=["constant", "identical"],
)
def test_a_difference_without_spread_gets_no_p_value(differences, verdict, tmp_path):
    """A constant difference gave p = 0 and 'reuse helps': with no spread there is no test."""
    study = fake_study(tmp_path, differences)
    code, message = invoke(["compare", study])
    assert code == 0, message
    assert "| net | in | accuracy | 3 |" in message and verdict in message, message
    assert "reuse helps" not in message.replace('"reuse helps" or', "")
    claims = json.loads((study / "comparison.json").read_text())["claims"]
    assert {(c["verdict"], c["p_value"], c["p_holm"]) for c in claims if c["metric"] == "accuracy"} == {
        (verdict, None, None)
    }


def test_a_run_linked_from_elsewhere_is_never_compared_nor_written(tmp_path):
    """Issue 21: a run directory replaced by a symlink to another run: `study` wrote into the
    link's target and `compare` counted the foreign model."""
    study = fake_study(tmp_path / "study")
    foreign = fake_run(tmp_path / "elsewhere", "in_v2", 7, 0.99)
    shutil.rmtree(study / "runs" / "net_in_v2-s2")
    (study / "runs" / "net_in_v2-s2").symlink_to(foreign)
    before = tree_hash(foreign)
    code, message = invoke(["compare", study])
    assert code == 0, message
    assert f"note: {study}/runs/net_in_v2-s2 is a symbolic link to {foreign}: left out" in message
    rows = json.loads((study / "comparison.json").read_text())["aggregate"]
    assert [(r["variant"], r["seeds"]) for r in rows] == [("in", [0, 1, 2]), ("in_v2", [0, 1])]
    # and `study` refuses the directory before it writes anything
    study_dir = tmp_path / "studies" / runs.safe_name("perceptnet", DATA)
    (study_dir / "runs").mkdir(parents=True)
    (study_dir / "runs" / "perceptnet_in_v2-s0").symlink_to(foreign)
    args = ["study", EX / "perceptnet.yml", "--data", DATA, "--variants", "in_v2", "--seeds", "1", "--epochs", "1"]
    code, message = invoke([*args, "--out", tmp_path / "studies"])
    assert code == 2, message
    assert f"{study_dir}/runs/perceptnet_in_v2-s0 is a symbolic link to {foreign}" in message, message
    assert "never writes through one" in message
    assert tree_hash(foreign) == before and sorted(os.listdir(study_dir)) == ["runs"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("tiny-run")
    (where / "tiny.yml").write_text(TINY)
    return train(where / "tiny.yml", data=DATA, out=where / "runs", name="run", progress="none")


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "{run}"],
        ["attribute", "{run}", "--samples", "4", "--baseline-samples", "4", "--methods", "logit"],
        ["train", "--resume", "{run}", "--epochs", "2"],
    ],
    ids=["eval", "attribute", "resume"],
)
def test_json_nested_100000_deep_is_refused_by_the_run_commands(command, tiny_run, tmp_path):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    (run / "config.json").write_text(DEEP)
    before = tree_hash(run)
    code, message = invoke([a.format(run=run) for a in command])
    assert code == 2, message
    assert f"{run}/config.json: not a file normscope wrote: it nests deeper than 64 levels" in message, message
    assert tree_hash(run) == before


@pytest.mark.parametrize("test", [[0.5], {"accuracy": "high", "auc": float("inf")}], ids=["a-list", "not-numbers"])
def test_eval_leaves_out_a_tampered_recorded_metric(test, tiny_run, tmp_path):
    """eval shows results.json's numbers beside the ones it measures: anything else is left out."""
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    res = json.loads((run / "results.json").read_text())
    (run / "results.json").write_text(json.dumps({**res, "test": test}))
    code, message = invoke(["eval", run])
    assert code == 0, message
    assert "accuracy" in message and "results.json" not in message and "high" not in message, message


def test_study_json_nested_100000_deep_is_refused(tmp_path):
    study_dir = tmp_path / runs.safe_name("perceptnet", DATA)
    study_dir.mkdir()
    (study_dir / "study.json").write_text(DEEP)
    args = ["study", EX / "perceptnet.yml", "--data", DATA, "--variants", "in_v2", "--seeds", "1", "--epochs", "1"]
    code, message = invoke([*args, "--out", tmp_path])
    assert code == 2 and f"{study_dir}/study.json: not a file normscope wrote: it nests deeper" in message, message
    assert sorted(os.listdir(study_dir)) == ["study.json"]


# --------------------------------------------------------------------------- #
# names that would command the terminal, in what is printed, written and drawn
# --------------------------------------------------------------------------- #

HOSTILE_NAME = "m\x1b[2Jx\u202ey"
SHOWN = "m\\x1b[2Jx\\u202ey"
DESCRIPTION = (
    'name: "m\\e[2Jx\\u202Ey"\ninput: [3, 8, 8]\nclasses: 2\nlayers:\n'
    '  - conv: {filters: 4, caption: "c\\e[31md\\u2066"}\n  - flatten\n  - dense\n'
)


def _raw(text: str) -> bool:
    return any(c in text for c in ("\x1b", "\u202e", "\u2066"))


@pytest.mark.parametrize("command", ["check", "summary", "variants"])
def test_control_and_bidi_characters_of_a_name_are_shown_escaped(command, tmp_path):
    (tmp_path / "d.yml").write_text(DESCRIPTION)
    result = CliRunner().invoke(app, [command, str(tmp_path / "d.yml")])
    assert result.exit_code == 0, result.output
    assert SHOWN in result.output and not _raw(result.output), result.output


def test_error_messages_escape_the_names_they_quote(tmp_path):
    result = CliRunner().invoke(app, ["check", str(tmp_path / f"{HOSTILE_NAME}.yml")])
    assert result.exit_code == 2 and f"{SHOWN}.yml" in result.output and not _raw(result.output), result.output


def test_compare_and_its_tables_escape_a_hostile_family(tmp_path):
    study = fake_study(tmp_path, family=HOSTILE_NAME)
    result = CliRunner().invoke(app, ["compare", str(study)])
    assert result.exit_code == 0, result.output
    assert f"### {SHOWN}" in result.output and not _raw(result.output)
    for name in ("table.md", "paired.md", "table.csv", "table.tex", "comparison.json"):
        text = (study / name).read_text()
        assert not _raw(text) and ("x1b" in text), name
    assert not any(_raw(name) for name in os.listdir(study))  # what compare wrote


def test_data_info_escapes_class_names(tmp_path):
    x = np.zeros((4, 8, 8, 3), np.uint8)
    y = np.array([0, 1, 0, 1])
    names = np.array(["c\x1b[31mat", "d\u202eog"])
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y, class_names=names)
    result = CliRunner().invoke(app, ["data", "info", f"npz:{tmp_path / 'd.npz'}", "--validation", "0"])
    assert result.exit_code == 0, result.output
    assert "c\\x1b[31mat, d\\u202eog" in result.output and not _raw(result.output), result.output


def test_a_caption_with_esc_gives_well_formed_svg(tmp_path):
    (tmp_path / "d.yml").write_text(DESCRIPTION)
    result = CliRunner().invoke(app, ["draw", str(tmp_path / "d.yml"), "-f", "svg,dot", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    (svg,) = (tmp_path / "o").glob("*.svg")
    root = ET.parse(svg).getroot()  # raises on a control character
    texts = " ".join(el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "c\\x1b[31md\\u2066" in texts, texts
    assert [p.name for p in sorted((tmp_path / "o").iterdir())] == ["m_2Jx_y.dot", "m_2Jx_y.svg"]


# --------------------------------------------------------------------------- #
# a study killed outright, or stopped: no orphaned workers, study.json says interrupted
# --------------------------------------------------------------------------- #

STUDY = ["study", str(EX / "perceptnet.yml"), "--data", "synthetic:train=64,test=16,size=16", "--variants"]
STUDY += ["in,in_v2", "--seeds", "1", "--parallel", "2", "--epochs", "100000", "--no-attribute", "--device", "cpu"]


def _state(pid: int) -> str | None:
    """The process' state letter (Z: a zombie, as good as gone), None when there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _start_study(tmp_path: Path) -> tuple[subprocess.Popen, list[Path]]:
    """The study of two runs on two workers, once both train (their results.json say running)."""
    proc = subprocess.Popen(  # no pipes: an orphaned worker holding one would hang the test, not fail it
        [sys.executable, "-m", "normscope", *STUDY, "--out", str(tmp_path)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "stderr.txt", "w"),
    )
    study = tmp_path / "perceptnet-synthetic-train-64-test-16-size-16"
    run_dirs = [study / "runs" / name for name in ("perceptnet_in-s0", "perceptnet_in_v2-s0")]
    deadline = time.monotonic() + 240
    while not all((r / "results.json").is_file() and runs.effective_status(r) == "running" for r in run_dirs):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((tmp_path / "stderr.txt").read_text())
        time.sleep(0.1)
    return proc, run_dirs


def _all_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {p for p in pids if _state(p) not in (None, "Z")}
        if not left:
            return set()
        time.sleep(0.1)
    return left


def test_sigkill_to_a_parallel_study_leaves_no_worker_running(tmp_path):
    """Issue 21: the pool workers were re-parented to init and went on training, holding
    their runs' locks. Now they die with the study (PR_SET_PDEATHSIG, a watchdog)."""
    proc, run_dirs = _start_study(tmp_path)
    workers = _children(proc.pid)
    try:
        assert len(workers) >= 3, workers  # the manager and two pool workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        left = _all_gone(workers, 10)
    finally:
        for pid in _children(proc.pid) | workers:
            if _state(pid) not in (None, "Z"):
                os.kill(pid, signal.SIGKILL)
    assert left == set(), [Path(f"/proc/{p}/cmdline").read_bytes() for p in left]
    for run in run_dirs:  # the locks went with their holders: a re-run may take the runs
        assert runs.lock.owner(run) is None and runs.effective_status(run) == "interrupted"


def test_sigterm_to_a_parallel_study_records_interrupted_and_names_the_command(tmp_path):
    proc, run_dirs = _start_study(tmp_path)
    workers = _children(proc.pid)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, stderr
    message = " ".join(stderr.split())
    assert "Traceback" not in stderr
    assert message == "error: interrupted; continue with: normscope " + " ".join([*STUDY, "--out", str(tmp_path)]), (
        message
    )
    assert _all_gone(workers, 10) == set()
    study = json.loads((run_dirs[0].parent.parent / "study.json").read_text())
    assert [(r["variant"], r["result"]) for r in study["runs"]] == [("in", "interrupted"), ("in_v2", "interrupted")]
    for run in run_dirs:
        assert json.loads((run / "results.json").read_text())["status"] == "interrupted"
