"""Hostile and careless use of run directories and of the trainer's options (issues 14 and 16).

Every case ends with one line naming what is wrong, where, and what to do; exit status 2
for bad input, 1 for an environment failure (a full disk), 130 for an interruption; no
traceback; and a refused command leaves every file of an existing run byte-identical
(hashed before and after). Most rows run the command in this process (typer's runner:
fast); signals, a second process, read-only and full file systems run the real command line
in a subprocess. One tiny run is trained per module and copied for each case.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import normscope
from fixtures import tree_hash, write_cifar100_fixture
from normscope.cli import app
from normscope.model.build import build_model
from normscope.train import runs, train
from normscope.train.errors import interrupt_signals, interrupts_deferred
from normscope.train.runs import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = "synthetic:train=120,test=40,size=16"
TINY = """\
name: tiny
input: auto
classes: auto
layers:
  - conv: {filters: 6, kernel: 3, activation: relu}
  - norm
  - maxpool: 2
  - flatten
  - dense: {name: classifier}
train: {epochs: 2, batch_size: 32}
"""
# another model: 8 filters in its convolution (input and classes of the data fixed)
OTHER = TINY.replace("filters: 6", "filters: 8").replace("input: auto", "input: [3, 16, 16]").replace("auto", "10")
# the source tree this process imports, for the subprocesses
SRC = str(Path(normscope.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A completed run of TINY (2 epochs), the description beside it as tiny.yml."""
    where = tmp_path_factory.mktemp("hostile-runs")
    (where / "tiny.yml").write_text(TINY)
    return train(where / "tiny.yml", data=DATA, out=where / "runs", name="base", progress="none")


def copy_run(base: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(base, tmp_path / name))


def invoke(args: list[str]) -> tuple[int, str]:
    """(exit status, output as one line) of a command run in this process; no exception
    may escape it (that would be a traceback on the command line)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: {result.exception!r}") from result.exception
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def cli(args: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The real command line in a subprocess, on the source tree this process imports."""
    return subprocess.run(
        [sys.executable, "-m", "normscope", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        **kw,
    )


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    text = " ".join(stderr.split())
    assert text.startswith("error:") and text.count("error:") == 1, stderr
    return text


# --------------------------------------------------------------------------- #
# damaged run directories: eval, attribute and train --resume refuse them, naming the file
# --------------------------------------------------------------------------- #


def _write(name: str, text: str):
    return lambda run: (run / name).write_text(text)


def _checkpoints(make):
    def damage(run: Path):
        for name in ("best.pt", "last.pt"):
            make(run / name)

    return damage


def _other_model(path: Path) -> None:
    """The checkpoint with the weights of another model (OTHER) in place of its own."""
    spec = path.parent.parent / "other.yml"
    spec.write_text(OTHER)
    torch.save({**load_checkpoint(path), "model": build_model(spec).state_dict()}, path)


class _Payload:  # a pickle that would run code when loaded
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _truncated_description(run: Path) -> None:
    text = (run / "description.yml").read_text()
    (run / "description.yml").write_text(text[: text.index("kernel") + 3])  # '    ker': no ':' follows


def _config_value(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    config["mean"] = "not numbers"
    (run / "config.json").write_text(json.dumps(config))


RESUME = ["--epochs", "3"]
ATTRIBUTE = ["--samples", "8", "--baseline-samples", "8", "--methods", "logit"]
# case -> (damage, words of the message of eval and attribute, words of train --resume's:
# ... the same, None not refused)
DAMAGED = {
    "results-not-json": (
        _write("results.json", '{"status": '),
        ["results.json: not valid JSON (Expecting value at line 1, column 12)", "normscope train --resume"],
        None,  # --resume repairs it: test_resume_rewrites_a_damaged_results_json
    ),
    "config-missing": (
        lambda run: (run / "config.json").unlink(),
        ["config.json: missing", "re-run the training"],
        ...,
    ),
    "config-not-json": (_write("config.json", "{[}"), ["config.json: not valid JSON", "re-run the training"], ...),
    "config-wrong-value": (_config_value, ["config.json: mean is 'not numbers'", "re-run the training"], ...),
    "description-missing": (
        lambda run: (run / "description.yml").unlink(),
        ["description.yml: missing", "re-run the training"],
        ...,
    ),
    "description-truncated": (
        _truncated_description,
        ["description.yml:11: YAML syntax error", "re-run the training"],
        ...,
    ),
    "not-a-run": (
        lambda run: [p.unlink() for p in run.iterdir()],
        ["not a normscope run directory"],
        ...,
    ),
    "checkpoint-without-model": (
        _checkpoints(lambda p: torch.save({"epoch": 1}, p)),
        ["best.pt: not a normscope checkpoint (no 'model' entry)", "--checkpoint last"],
        ["last.pt: not a normscope checkpoint (no 'model' entry)", "re-run the training"],
    ),
    "checkpoint-of-another-model": (
        _checkpoints(_other_model),
        ["best.pt: the checkpoint does not fit", "layer 'conv1'", "6x3x3x3 in the description but 8x3x3x3"],
        ["last.pt: the checkpoint does not fit", "layer 'conv1'", "6x3x3x3 in the description but 8x3x3x3"],
    ),
    "checkpoint-truncated": (
        _checkpoints(lambda p: p.write_bytes(p.read_bytes()[:100])),
        ["best.pt: cannot read the checkpoint"],
        ["last.pt: cannot read the checkpoint"],
    ),
    "checkpoint-running-code": (
        _checkpoints(lambda p: torch.save({"model": _Payload(), "epoch": 1}, p)),
        ["best.pt: cannot read the checkpoint: refused", "GLOBAL posix.system", "could run code"],
        ["last.pt: cannot read the checkpoint: refused", "GLOBAL posix.system", "could run code"],
    ),
    "metrics-not-a-table": (
        lambda run: (run / "metrics.csv").write_text("epoch,train_loss\nfirst,nan\n"),
        ["metrics.csv: not a table of epochs (line 2)", "normscope train --resume"],
        None,  # not read by --resume: last.pt holds the history, metrics.csv is written from it
    ),
}
COMMANDS = {
    "eval": lambda run: ["eval", run],
    "attribute": lambda run: ["attribute", run, *ATTRIBUTE],
    "resume": lambda run: ["train", "--resume", run, *RESUME],
}


@pytest.mark.parametrize(
    "case, command",
    [
        (case, command)
        for case in DAMAGED
        for command in COMMANDS
        if command != "resume" or DAMAGED[case][2] is not None
    ],
)
def test_damaged_run_directory_is_refused_untouched(case, command, base, tmp_path, monkeypatch):
    damage, words, resume_words = DAMAGED[case]
    if command == "resume" and resume_words is not ...:
        words = resume_words
    run = copy_run(base, tmp_path)
    damage(run)
    before = tree_hash(run)
    monkeypatch.chdir(tmp_path)  # the payload would write here
    code, message = invoke(COMMANDS[command](run))
    assert code == 2, message
    assert message.startswith(f"error: {run}"), message
    for word in words:
        assert word in message, (word, message)
    assert tree_hash(run) == before
    assert not (tmp_path / "pwned").exists()


def test_resume_rewrites_a_damaged_results_json(base, tmp_path):
    """results.json and metrics.csv are written from last.pt again: the advice works."""
    run = copy_run(base, tmp_path)
    (run / "results.json").write_text('{"status": ')
    (run / "metrics.csv").write_text("garbage\n")
    code, message = invoke(["train", "--resume", run, "--progress", "none"])
    assert code == 0, message
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and results["epochs_done"] == 2
    assert results["test"] == json.loads((base / "results.json").read_text())["test"]
    assert [r["train_loss"] for r in runs.read_history(run / "metrics.csv")] == [
        r["train_loss"] for r in runs.read_history(base / "metrics.csv")
    ]


# --------------------------------------------------------------------------- #
# validate, then write: a refused resume changes nothing
# --------------------------------------------------------------------------- #

REFUSED_RESUMES = {
    "epochs-0": (["--epochs", "0"], ["--epochs must be >= 1, got 0"]),
    "epochs-negative": (["--epochs", "-1"], ["--epochs must be >= 1, got -1"]),
    "epochs-below-done": (["--epochs", "1"], ["--epochs 1:", "has already done 2 epochs"]),
    "already-complete": ([], ["already complete (2 epochs)", "pass --epochs"]),
    "settings-of-a-new-run": (["--lr", "0.1"], ["--resume continues a run with its own settings", "drop --lr"]),
    "no-such-device": (["--epochs", "3", "--device", "tpu"], ["unknown device 'tpu'; use auto, cpu, cuda or cuda:N"]),
}


@pytest.mark.parametrize("case", list(REFUSED_RESUMES))
def test_refused_resume_leaves_the_run_byte_identical(case, base, tmp_path):
    args, words = REFUSED_RESUMES[case]
    run = copy_run(base, tmp_path)
    before = tree_hash(run)
    code, message = invoke(["train", "--resume", run, *args])
    assert code == 2, message
    for word in words:
        assert word in message, (word, message)
    assert tree_hash(run) == before
    # and the run still extends
    assert invoke(["train", "--resume", run, "--epochs", "3", "--progress", "none"])[0] == 0
    assert json.loads((run / "results.json").read_text())["epochs_done"] == 3


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory) -> Path:
    """A completed 1-epoch run on a tiny CIFAR-100 in the official format (the data set that
    --data-dir finds)."""
    where = tmp_path_factory.mktemp("cifar-run")
    write_cifar100_fixture(where / "data", 120, 40)
    (where / "tiny.yml").write_text(TINY)
    return train(where / "tiny.yml", data="cifar100", data_dir=where / "data", epochs=1, out=where, progress="none")


def test_resume_with_wrong_data_leaves_the_run_as_it_was(cifar_run, tmp_path):
    """Issue 16: a failed `--resume --epochs 2` (a wrong --data-dir) rewrote config.json and
    description.yml, and the run then claimed to be complete."""
    run = copy_run(cifar_run, tmp_path)
    other = tmp_path / "other"
    write_cifar100_fixture(other, 120, 40, seed=5)
    before = tree_hash(run)
    for data_dir, words in (
        (tmp_path / "nothing", ["CIFAR-100", str(tmp_path / "nothing")]),
        (other, ["not the one the run was trained on"]),
    ):
        code, message = invoke(["train", "--resume", run, "--epochs", "2", "--data-dir", data_dir])
        assert code == 2, message
        for word in words:
            assert word in message, (word, message)
        assert tree_hash(run) == before
    code, message = invoke(["train", "--resume", run, "--epochs", "2", "--progress", "none"])
    assert code == 0, message
    assert json.loads((run / "results.json").read_text())["epochs_done"] == 2


# --------------------------------------------------------------------------- #
# command-line values and output paths of a new run: refused before anything is written
# --------------------------------------------------------------------------- #

BAD_OPTIONS = {
    "lr-nan": (["--lr", "nan"], ["--lr must be a finite number, got nan"]),
    "lr-inf": (["--lr", "inf"], ["--lr must be a finite number, got inf"]),
    "lr-negative": (["--lr", "-0.1"], ["--lr must be > 0, got -0.1"]),
    "seed-negative": (["--seed", "-1"], ["--seed must be in [0, 4294967295], got -1"]),
    "seed-huge": (["--seed", "99999999999999999999"], ["--seed must be in [0, 4294967295]"]),
    "epochs-0": (["--epochs", "0"], ["--epochs must be >= 1, got 0"]),
    "epochs-negative": (["--epochs", "-1"], ["--epochs must be >= 1, got -1"]),
    "batch-size-0": (["--batch-size", "0"], ["--batch-size must be >= 1, got 0"]),
    "subset-0": (["--subset", "0"], ["--subset must be >= 2, got 0"]),
    "test-subset-0": (["--test-subset", "0"], ["--test-subset (test images) must be a positive integer, got 0"]),
    "out-is-a-file": (["--out", "{file}"], ["--out", "exists and is not a directory"]),
    "out-below-a-file": (["--out", "{file}/runs"], ["--out", "exists and is not a directory"]),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_train_option_is_refused_before_writing(case, tmp_path):
    args, words = BAD_OPTIONS[case]
    (tmp_path / "tiny.yml").write_text(TINY)
    (tmp_path / "a-file").write_text("x")
    args = [a.format(file=tmp_path / "a-file") for a in args]
    before = sorted(tmp_path.rglob("*"))
    code, message = invoke(["train", tmp_path / "tiny.yml", "--data", DATA, "--out", tmp_path / "runs", *args])
    assert code == 2, message
    for word in words:
        assert word in message, (word, message)
    assert sorted(tmp_path.rglob("*")) == before  # no run directory, no --out made
    assert (tmp_path / "a-file").read_text() == "x"


BAD_ANALYSIS = {
    "attribute-seed": (["attribute", "{run}", "--seed", "-1"], ["--seed must be an integer from 0"]),
    "attribute-samples": (["attribute", "{run}", "--samples", "-5"], ["--samples must be >= 0, got -5"]),
    "attribute-out-file": (["attribute", "{run}", "--out", "{run}/results.json"], ["--out", "not a directory"]),
    "eval-split": (["eval", "{run}", "--split", "holdout"], ["--split must be test, val or train"]),
    "eval-checkpoint": (["eval", "{run}", "--checkpoint", "middle"], ["'best' or 'last'"]),
}


@pytest.mark.parametrize("case", list(BAD_ANALYSIS))
def test_bad_analysis_option_is_refused_untouched(case, base, tmp_path):
    args, words = BAD_ANALYSIS[case]
    run = copy_run(base, tmp_path)
    before = tree_hash(run)
    code, message = invoke([a.format(run=run) for a in args])
    assert code == 2, message
    for word in words:
        assert word in message, (word, message)
    assert tree_hash(run) == before


# --------------------------------------------------------------------------- #
# names: the run directory is one safe, bounded component inside --out
# --------------------------------------------------------------------------- #


def test_run_directory_stays_inside_out_whatever_the_name(tmp_path):
    (tmp_path / "tiny.yml").write_text(TINY)
    out = tmp_path / "deep" / "out"
    names = ["../..", str(tmp_path / "absolute"), "x" * 500, "a\x00b", "../../../etc/passwd"]
    made = []
    for name in names:
        made.append(train(tmp_path / "tiny.yml", data=DATA, epochs=1, out=out, name=name, progress="none"))
    assert [p.parent for p in made] == [out] * len(names)
    assert all(len(p.name) <= 80 and "/" not in p.name and "\x00" not in p.name for p in made)
    assert len(set(made)) == len(names)
    assert made[2].name.startswith("x" * 60) and made[3].name == "a_b"
    outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)} - {out.parent, tmp_path / "tiny.yml"}
    assert outside == set()


def test_long_model_name_gives_a_bounded_default_run_name(tmp_path):
    (tmp_path / "long.yml").write_text(TINY.replace("name: tiny", "name: " + "m" * 500))
    code, message = invoke(["train", tmp_path / "long.yml", "--data", DATA, "--epochs", "1", "--out", tmp_path / "o"])
    assert code == 0, message
    (run,) = (tmp_path / "o").iterdir()
    assert re.fullmatch(r"m{50}-[0-9a-f]{10}-s0-\d{8}-\d{6}", run.name), run.name
    assert (run / "results.json").is_file()


# --------------------------------------------------------------------------- #
# one writer per run; honest status after SIGTERM, SIGKILL, a kill before the first epoch
# --------------------------------------------------------------------------- #


def _wait_for(condition, what: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{what}: {proc.communicate()[1]}")
        time.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_second_writer_refused_and_a_stop_signal_interrupts(stop, base, tmp_path):
    run = copy_run(base, tmp_path)
    first = subprocess.Popen(
        [sys.executable, "-m", "normscope", "train", "--resume", str(run), "--epochs", "100000", "--progress", "log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        _wait_for(lambda: runs.effective_status(run) == "running", "the first resume never ran", first)
        code, message = invoke(["train", "--resume", run, "--epochs", "4"])
        assert code == 2 and f"{run} is in use by process {first.pid} on " in message, message
        code, message = invoke(["eval", run])
        assert code == 0 and f"{run} is still training (process {first.pid} on" in message, message
        first.send_signal(stop)
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130
    assert one_error_line(stderr) == f"error: interrupted; continue with: normscope train --resume {run}"
    results = json.loads((run / "results.json").read_text())
    done = load_checkpoint(run / "last.pt")["epoch"]
    assert results["status"] == "interrupted" and results["epochs_done"] == done >= 2
    assert runs.effective_status(run) == "interrupted" and not (run / ".lock").exists()
    code, message = invoke(["train", "--resume", run, "--epochs", str(done + 1), "--progress", "none"])
    assert code == 0, message
    assert json.loads((run / "results.json").read_text())["status"] == "completed"


def test_a_stop_signal_waits_until_the_checkpoint_files_are_written():
    before = signal.getsignal(signal.SIGTERM)
    written = []
    with pytest.raises(KeyboardInterrupt, match=f"signal {int(signal.SIGTERM)}"):
        with interrupt_signals():
            with interrupts_deferred():  # as Trainer.checkpoint writes metrics.csv, last.pt, best.pt
                os.kill(os.getpid(), signal.SIGTERM)
                written += ["last.pt", "best.pt"]
            written.append("the next epoch")
    assert written == ["last.pt", "best.pt"]
    assert signal.getsignal(signal.SIGTERM) is before


STALE = """
import os, signal, sys
from normscope.rundir import lock
lock.acquire(sys.argv[1])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_stale_lock_of_a_dead_process_is_taken_over(base, tmp_path):
    run = copy_run(base, tmp_path)
    dead = subprocess.run([sys.executable, "-c", STALE, str(run)], env=ENV, capture_output=True, timeout=60)
    assert dead.returncode == -signal.SIGKILL
    assert json.loads((run / ".lock").read_text())["pid"] != os.getpid()  # its lock file stays behind
    assert runs.lock.owner(run) is None and runs.effective_status(run) == "completed"
    code, message = invoke(["train", "--resume", run, "--epochs", "3", "--progress", "none"])
    assert code == 0, message
    assert not (run / ".lock").exists()


KILLED_BEFORE_FIRST_EPOCH = """
import os, signal, sys
import normscope.train.loop as loop

def die(self, epoch):  # the first epoch starts: the process is killed
    os.kill(os.getpid(), signal.SIGKILL)

loop.Trainer.train_epoch = die
loop.train(sys.argv[1], data=sys.argv[2], out=sys.argv[3], name="r", progress="none")
"""


def test_run_killed_before_its_first_epoch_gets_one_advice(base, tmp_path):
    yml = base.parent.parent / "tiny.yml"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_FIRST_EPOCH, str(yml), DATA, str(tmp_path)],
        env=ENV,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = tmp_path / "r"
    assert json.loads((run / "results.json").read_text())["status"] == "running"
    assert runs.effective_status(run) == "interrupted"
    resume = f"normscope train --resume {run}"
    code, message = invoke(["eval", run])
    assert code == 2 and "no best.pt yet: the run was interrupted before its first epoch ended" in message
    assert resume in message, message
    code, message = invoke(["train", yml, "--data", DATA, "--out", tmp_path, "--name", "r"])
    assert code == 2 and f"{run} already exists: continue it with: {resume}" in message, message
    code, message = invoke(["train", "--resume", run, "--progress", "log"])
    assert code == 0 and f"restarting {run} (no epoch had finished)" in message, message
    # from its first epoch, as if never killed
    assert runs.read_history(run / "metrics.csv") != []
    got, want = (json.loads((r / "results.json").read_text()) for r in (run, base))
    assert got["test"] == want["test"] and got["epochs_done"] == 2


# --------------------------------------------------------------------------- #
# read-only and full file systems (a small tmpfs in a private mount namespace)
# --------------------------------------------------------------------------- #


def _unshare() -> list[str]:
    """The command prefix of a private mount namespace where this user may mount a tmpfs;
    the test is skipped where there is none (no root, no user namespaces)."""
    prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    if shutil.which("unshare") is None:
        pytest.skip("no unshare (util-linux) here")
    probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    return prefix


def in_namespace(script: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """bash ``script`` (with ``args`` as $1...) in a private mount namespace: what it mounts
    vanishes with it."""
    env = {**ENV, "PY": sys.executable}
    return subprocess.run(
        [*_unshare(), "bash", "-c", textwrap.dedent(script), "script", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


READ_ONLY = """
    set -u
    mount -t tmpfs -o size=1m,ro tmpfs "$1" || exit 99
    cd "$2"
    for command in "train tiny.yml --data $3 --out $1/runs" "train tiny.yml --data $3 --out $1" \\
            "draw tiny.yml --input 3,16,16 --classes 10 -f dot --out $1" \\
            "attribute $4 --out $1 --samples 8 --baseline-samples 8 --methods logit"; do
        "$PY" -m normscope $command > out.txt 2> err.txt
        echo "$? $(tr '\\n' ' ' < err.txt)"
    done
"""


def test_read_only_output_is_refused_before_any_work(base, tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "tiny.yml").write_text(TINY)
    run = copy_run(base, tmp_path)
    before = tree_hash(run)
    out = in_namespace(READ_ONLY, tmp_path / "ro", tmp_path, DATA, run)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    ro = tmp_path / "ro"
    assert lines[0].startswith(f"2 error: --out {ro}/runs: cannot write in {ro} (not writable)"), lines[0]
    assert lines[1].startswith(f"2 error: --out {ro}: cannot write in {ro} (not writable)"), lines[1]
    assert lines[2].startswith(f"2 error: cannot write in the output directory {ro} (not writable)"), lines[2]
    assert lines[3].startswith(f"2 error: --out {ro}: cannot write in {ro} (not writable)"), lines[3]
    assert "Traceback" not in out.stdout
    assert tree_hash(run) == before


FULL_DISK = """
    set -u
    mount -t tmpfs -o size=4m tmpfs "$1" || exit 99
    cp -a "$2" "$1/run"
    dd if=/dev/zero of="$1/fill" bs=4k 2> /dev/null  # until the disk is full
    truncate -s -$((4 * $(getconf PAGESIZE))) "$1/fill"  # four pages free: room for the small files only
    "$PY" -m normscope train --resume "$1/run" --epochs 3 --progress none > "$3/stdout" 2> "$3/stderr"
    echo $? > "$3/rc"
    cp -a "$1/run" "$3/run"
"""


def test_full_disk_at_a_checkpoint_keeps_the_previous_one_and_resumes(base, tmp_path):
    (tmp_path / "disk").mkdir()
    (tmp_path / "after").mkdir()
    out = in_namespace(FULL_DISK, tmp_path / "disk", base, tmp_path / "after")
    assert out.returncode == 0, out.stderr
    after = tmp_path / "after"
    assert (after / "rc").read_text().strip() == "1"
    message = one_error_line((after / "stderr").read_text())
    disk_run = tmp_path / "disk" / "run"
    assert message.startswith(f"error: No space left on device ({disk_run}/last.pt): the run stopped"), message
    assert f"normscope train --resume {disk_run}" in message
    run = after / "run"
    for name in ("last.pt", "best.pt"):  # the previous checkpoints, intact
        assert (run / name).read_bytes() == (base / name).read_bytes(), name
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "interrupted" and results["epochs_done"] == 2
    assert "No space left on device" in results["message"]
    assert not list(run.glob(".*.tmp")) and not (run / ".lock").exists()
    # space again (the run copied out): --resume finishes it, as if nothing had happened
    code, message = invoke(["train", "--resume", run, "--progress", "none"])
    assert code == 0, message
    reference = copy_run(base, tmp_path, "reference")
    assert invoke(["train", "--resume", reference, "--epochs", "3", "--progress", "none"])[0] == 0
    got, want = (json.loads((r / "results.json").read_text()) for r in (run, reference))
    assert got["status"] == "completed" and got["epochs_done"] == 3 and got["test"] == want["test"]
