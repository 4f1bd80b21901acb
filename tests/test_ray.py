"""`normscope study --engine ray` against a real Ray cluster: a head started with `ray start --head`
(2 CPUs) inside a private network namespace, where loopback is the only interface, so no packet
leaves it; studies driven through `--address 127.0.0.1:PORT`. Workers killed mid-run (by pid),
a driver killed mid-study, a study without a shared filesystem, and the run directories
compared with those of the local engine. Also: the engine's checks that need no cluster.

The head is stopped by ending the processes of its namespace (by pid: `ray stop` would end every
Ray process on the machine, other sessions' too), and the test checks none is left.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import normscope
from normscope.cli import app
from normscope.study import RAY_MISSING, StudyError, parse_gpus, run_study
from normscope.study.progress import Board
from normscope.study.transfer import install_run, pack_run
from normscope.train import runs

REPO = Path(__file__).resolve().parents[1]
SRC = str(Path(normscope.__file__).resolve().parents[1])  # the normscope under test, for the Ray workers too
PERCEPTNET = str(REPO / "examples" / "perceptnet.yml")
# tiny: 4 runs (attributed reuse runs included); slow: 2 runs of 6 epochs, long enough to be killed in the middle
TINY = {"data": "synthetic:train=64,test=32,size=16", "variants": "in,in_v2", "seeds": 2, "epochs": 1, "samples": 32}
SLOW = {"data": "synthetic:train=400,test=50,size=24", "variants": "in,in_v2", "seeds": 1, "epochs": 6}


def cli(settings: dict) -> list[str]:
    """`normscope study` options for `settings` (no `samples`: --no-attribute)."""
    args = [f"--{k}={v}" for k, v in settings.items()] + ["--device", "cpu"]
    return args if "samples" in settings else [*args, "--no-attribute"]


ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
TIMEOUT = 240  # seconds for one study; they take 15-40 s on 2 busy cores


def netns_pids(ns_link: str) -> list[int]:
    """The processes in the network namespace `ns_link` (e.g. 'net:[4026532177]')."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "ns" / "net") == ns_link:
                    found.append(int(p.name))
            except OSError:
                pass
    return found


class Head:
    """A Ray head in its own network namespace; `run` starts a command in that namespace."""

    def __init__(self, root: Path):
        self.root, self.scratch = root, root / "scratch"
        self.holder = subprocess.Popen(["unshare", "-n", "bash", "-c", "ip link set lo up && exec sleep 100000"])
        self.ns = f"/proc/{self.holder.pid}/ns/net"
        deadline = time.time() + 30
        while os.readlink(self.ns) == os.readlink("/proc/self/ns/net") or not self._lo_up():
            assert time.time() < deadline and self.holder.poll() is None, "the network namespace did not come up"
            time.sleep(0.05)
        self.link = os.readlink(self.ns)
        self.port = int(self.check([sys.executable, "-c", FREE_PORT]).strip())
        self.temp = Path(tempfile.mkdtemp(prefix="nsray", dir="/tmp"))  # short: Ray's socket paths must fit
        ray = str(Path(sys.executable).parent / "ray")
        start = [ray, "start", "--head", "--port", str(self.port), "--num-cpus", "2", "--include-dashboard=false"]
        self.check(
            start + ["--temp-dir", str(self.temp), "--disable-usage-stats"], {"NORMSCOPE_SCRATCH": str(self.scratch)}
        )
        self.address = f"127.0.0.1:{self.port}"

    def _lo_up(self) -> bool:
        out = subprocess.run(["nsenter", f"--net={self.ns}", "ip", "-o", "link", "show", "lo"], capture_output=True)
        return b"UP" in out.stdout

    def env(self, extra=None) -> dict:
        return {**os.environ, **ENV, **(extra or {})}

    def check(self, cmd, extra_env=None) -> str:
        out = subprocess.run(
            ["nsenter", f"--net={self.ns}", *cmd], capture_output=True, text=True, env=self.env(extra_env), timeout=120
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def study(self, out: Path, *args, log: Path) -> subprocess.Popen:
        """`normscope study` against this head, its output (stdout and stderr) to `log`."""
        cmd = [sys.executable, "-m", "normscope", "study", PERCEPTNET, *args, "--out", str(out)]
        cmd += ["--engine", "ray", "--address", self.address]
        with open(log, "w") as f:
            return subprocess.Popen(
                ["nsenter", f"--net={self.ns}", *cmd], stdout=f, stderr=subprocess.STDOUT, env=self.env(), cwd=REPO
            )

    def stop(self) -> None:
        pids = [p for p in netns_pids(self.link) if p != self.holder.pid]
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + wait
            while time.time() < deadline and [p for p in netns_pids(self.link) if p != self.holder.pid]:
                time.sleep(0.2)
            pids = [p for p in netns_pids(self.link) if p != self.holder.pid]
            if not pids:
                break
        self.holder.kill()
        self.holder.wait(10)
        shutil.rmtree(self.temp, ignore_errors=True)


FREE_PORT = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = Head(tmp_path_factory.mktemp("ray"))
    try:
        yield h
    finally:
        link = h.link
        h.stop()
        assert netns_pids(link) == [], "Ray processes were left running"


def finish(proc: subprocess.Popen, log: Path) -> str:
    try:
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    return log.read_text()


def local_study(out: Path, settings: dict) -> Path:
    """The same study on the local engine, in this process, one thread per run as each Ray task
    has (`--cpus-per-run 1`): the reference. Returns its runs directory."""
    before = torch.get_num_threads()
    try:
        study = run_study(
            PERCEPTNET,
            data=settings["data"],
            variants=settings["variants"],
            seeds=settings["seeds"],
            epochs=settings["epochs"],
            device="cpu",
            attribute="samples" in settings,
            attribute_samples=settings.get("samples", 1000),
            out=out,
            threads=1,
            log=lambda line: None,
        )
    finally:
        torch.set_num_threads(before)
    return study / "runs"


def assert_same_run(a: Path, b: Path) -> None:
    """Two run directories of the same (variant, seed): the same files, the same numbers (all but
    timings, env.json and the training history inside last.pt), the same weights."""
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in ("description.yml", "config.json", "per_class.csv", "confusion_matrix.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name
    if (a / "attribution.json").exists():  # the same numbers; "run" is the path where it was computed
        other = {"run", "seconds"}
        ja, jb = ({k: v for k, v in runs.read_json(d / "attribution.json").items() if k not in other} for d in (a, b))
        assert ja == jb
    history = [
        [{k: v for k, v in row.items() if k != "seconds"} for row in runs.read_history(d / runs.METRICS)]
        for d in (a, b)
    ]
    assert history[0] == history[1]
    timing = {"seconds", "train_images_per_second"}
    ra, rb = ({k: v for k, v in runs.read_json(d / runs.RESULTS).items() if k not in timing} for d in (a, b))
    assert ra == rb and ra["status"] == "completed"
    for ckpt in (runs.BEST, runs.LAST):
        wa, wb = (runs.load_checkpoint(d / ckpt)["model"] for d in (a, b))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def wait_for(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, f"the driver ended before {what}:\n{log.read_text()}"
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()}")


def kept(run: Path) -> list[dict]:
    """The epochs a resumed run keeps: metrics.csv up to last.pt's epoch (a kill between the two
    writes leaves metrics.csv an epoch ahead, and that epoch is trained again)."""
    return runs.read_history(run / runs.METRICS)[: runs.load_checkpoint(run / runs.LAST)["epoch"]]


def worker_pid(log: Path, run: str, attempt: int = 1) -> int | None:
    """The pid of `run`'s worker, from the driver's line `started RUN on HOST (pid P, attempt A)`."""
    for line in log.read_text().splitlines():
        if line.startswith(f"started {run} on ") and line.endswith(f", attempt {attempt})"):
            return int(line.split("(pid ")[1].split(",")[0])
    return None


# --------------------------------------------------------------------------- #
# A study on the cluster: the same run directories as the local engine
# --------------------------------------------------------------------------- #


def test_study_on_a_ray_cluster_makes_the_local_engines_run_directories(head, tmp_path):
    t0 = time.time()
    log = tmp_path / "driver.log"
    output = finish(head.study(tmp_path / "ray", *cli(TINY), log=log), log)
    ray_seconds = time.time() - t0
    assert "4 runs, 0 already done, 4 to run (on Ray)" in output, output
    assert "Ray: 4 tasks of 1 CPU, 0 GPU (up to 2 retries each) on 1 node(s) with 2 CPUs, 0 GPUs" in output
    assert sum(line.startswith("started ") and " on 127.0.0.1 (pid " in line for line in output.splitlines()) == 4
    assert "[4/4]" in output and "failed" not in output
    study = tmp_path / "ray" / "perceptnet-synthetic-train-64-test-32-size-16"
    plan = json.loads((study / "study.json").read_text())
    assert plan["engine"] == f"ray ({head.address})"
    assert [(r["variant"], r["seed"], r["state"], r["result"], r["where"], r["attempts"]) for r in plan["runs"]] == [
        (v, s, "done", "completed", "127.0.0.1", 1) for v in ("in", "in_v2") for s in (0, 1)
    ]
    table = (study / "table.md").read_text()
    assert "| perceptnet_in | 2 |" in table and "| perceptnet_in_v2 | 2 |" in table
    assert (study / "runs" / "perceptnet_in_v2-s1" / "attribution.json").is_file()

    reference = local_study(tmp_path / "local", TINY)
    for run in sorted(p.name for p in reference.iterdir()):
        assert_same_run(study / "runs" / run, reference / run)
    print(f"ray study of 4 runs: {ray_seconds:.1f} s")


# --------------------------------------------------------------------------- #
# Failures
# --------------------------------------------------------------------------- #


def test_a_killed_worker_costs_one_retry_and_the_run_resumes_from_its_checkpoint(head, tmp_path):
    log = tmp_path / "driver.log"
    driver = head.study(tmp_path / "ray", *cli(SLOW), log=log)
    run = tmp_path / "ray" / "perceptnet-synthetic-train-400-test-50-size-24" / "runs" / "perceptnet_in-s0"
    pid = wait_for(lambda: worker_pid(log, "perceptnet_in-s0"), "the run to start", driver, log)
    wait_for(lambda: (run / runs.LAST).is_file(), "the first checkpoint", driver, log)
    os.kill(pid, signal.SIGKILL)  # mid-run: epoch 2 of 6 is training
    before = kept(run)
    output = finish(driver, log)
    assert driver.returncode == 0, output
    assert 1 <= len(before) < 6
    assert f"perceptnet_in-s0: attempt 1 on 127.0.0.1 (pid {pid}) was lost; retrying" in output
    assert worker_pid(log, "perceptnet_in-s0", attempt=2) not in (None, pid)
    after = runs.read_history(run / runs.METRICS)
    assert [r["epoch"] for r in after] == [1, 2, 3, 4, 5, 6]
    assert after[: len(before)] == before  # resumed from last.pt: the finished epochs (timings too) were kept
    plan = json.loads((run.parent.parent / "study.json").read_text())
    assert [(r["state"], r["attempts"]) for r in plan["runs"]] == [("done", 2), ("done", 1)]

    reference = local_study(tmp_path / "local", SLOW)
    assert_same_run(run, reference / "perceptnet_in-s0")  # as if it had never been killed
    assert_same_run(run.parent / "perceptnet_in_v2-s0", reference / "perceptnet_in_v2-s0")


def test_a_run_that_keeps_failing_ends_failed_and_the_others_finish(head, tmp_path):
    log = tmp_path / "driver.log"
    driver = head.study(tmp_path, *cli(SLOW), "--retries", "0", log=log)
    run = tmp_path / "perceptnet-synthetic-train-400-test-50-size-24" / "runs" / "perceptnet_in-s0"
    pid = wait_for(lambda: worker_pid(log, "perceptnet_in-s0"), "the run to start", driver, log)
    wait_for(lambda: (run / runs.LAST).is_file(), "the first checkpoint", driver, log)
    os.kill(pid, signal.SIGKILL)
    output = finish(driver, log)
    assert driver.returncode == 1, output
    assert "[1/2] perceptnet_in-s0: failed" in output or "[2/2] perceptnet_in-s0: failed" in output
    assert "WorkerCrashedError: The worker died unexpectedly while executing this task." in output
    assert "error: 1 run(s) did not finish (see the table above); run the same command again to continue them" in output
    plan = json.loads((run.parent.parent / "study.json").read_text())
    assert [(r["variant"], r["state"], r["result"], r["attempts"]) for r in plan["runs"]] == [
        ("in", "partial", "failed", 1),  # partial: its last.pt is there for the next call
        ("in_v2", "done", "completed", 1),
    ]
    assert "| perceptnet_in_v2 | 1 |" in (run.parent.parent / "table.md").read_text()


def test_the_same_command_after_the_driver_was_killed_continues_the_study(head, tmp_path):
    """One run at a time (2 CPUs each): the driver is killed when the first run is done and the
    second has a checkpoint; Ray ends the dead driver's task, and the same command skips the
    first run and resumes the second from its last.pt."""
    epochs = 30  # many short epochs: the kill lands between the first checkpoint and the last one
    args = [*cli({**SLOW, "variants": "in", "seeds": 2, "epochs": epochs}), "--cpus-per-run", "2"]
    log = tmp_path / "driver.log"
    driver = head.study(tmp_path, *args, log=log)
    first, second = (
        tmp_path / "perceptnet-synthetic-train-400-test-50-size-24" / "runs" / f"perceptnet_in-s{s}" for s in (0, 1)
    )
    pid = wait_for(lambda: worker_pid(log, second.name), "the second run to start", driver, log)
    wait_for(lambda: (second / runs.LAST).is_file(), "its first checkpoint", driver, log)
    driver.kill()
    driver.wait(30)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "Ray to end the killed driver's task", head.holder, log, 60)
    assert runs.read_json(first / runs.RESULTS)["status"] == "completed"
    stamp = (first / runs.RESULTS).stat().st_mtime_ns
    before = kept(second)
    assert 1 <= len(before) < epochs

    log2 = tmp_path / "driver2.log"
    output = finish(head.study(tmp_path, *args, log=log2), log2)
    assert "2 runs, 1 already done, 1 to run (on Ray)" in output, output
    assert (first / runs.RESULTS).stat().st_mtime_ns == stamp  # not trained again
    after = runs.read_history(second / runs.METRICS)
    assert [r["epoch"] for r in after] == list(range(1, epochs + 1))
    assert after[: len(before)] == before  # resumed from last.pt: the finished epochs (timings too) were kept
    plan = json.loads((first.parent.parent / "study.json").read_text())
    assert [r["state"] for r in plan["runs"]] == ["done", "done"]


def test_without_a_shared_filesystem_runs_are_trained_in_scratch_and_sent_back(head, tmp_path):
    log = tmp_path / "driver.log"
    settings = {**TINY, "variants": "in_v2", "seeds": 1}
    output = finish(head.study(tmp_path / "ray", *cli(settings), "--no-shared-fs", log=log), log)
    assert "[1/1] perceptnet_in_v2-s0: completed" in output, output
    study = tmp_path / "ray" / "perceptnet-synthetic-train-64-test-32-size-16"
    line = next(x for x in output.splitlines() if x.startswith("perceptnet_in_v2-s0: sent back from 127.0.0.1 ("))
    assert line.endswith(f"written to {study / 'runs' / 'perceptnet_in_v2-s0'}")
    files = sorted(p.name for p in (study / "runs" / "perceptnet_in_v2-s0").iterdir())
    assert f"({len(files)} files, " in line
    assert [p.name for p in (study / "runs").iterdir()] == ["perceptnet_in_v2-s0"]  # nothing half-written beside it
    # trained in the worker's scratch directory, which it emptied after sending the run back
    (scratch_study,) = head.scratch.iterdir()
    assert list(scratch_study.iterdir()) == []
    attributed_in = runs.read_json(study / "runs" / "perceptnet_in_v2-s0" / "attribution.json")["run"]
    assert attributed_in == str(scratch_study / "perceptnet_in_v2-s0")

    reference = local_study(tmp_path / "local", settings)
    assert_same_run(study / "runs" / "perceptnet_in_v2-s0", reference / "perceptnet_in_v2-s0")


def test_runs_the_cluster_cannot_hold_are_refused(head, tmp_path):
    tiny = cli({**TINY, "variants": "in", "seeds": 1})
    for extra, message in (
        (["--cpus-per-run", "4"], "error: no node of the Ray cluster has 4 CPUs and 0 GPUs for one run (the largest"),
        (["--gpus-per-run", "1/4", "--device", "auto"], "has 1 CPUs and 0.25 GPUs for one run (the largest has 2 CPUs"),
    ):
        log = tmp_path / "driver.log"
        driver = head.study(tmp_path, *tiny, *extra, log=log)
        output = finish(driver, log)
        assert driver.returncode == 2 and message in output, output
        assert "started " not in output and "Traceback" not in output


# --------------------------------------------------------------------------- #
# No cluster needed
# --------------------------------------------------------------------------- #


def test_without_ray_installed_the_engine_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from normscope.cli import main\n"
        f"sys.argv = ['normscope', 'study', {PERCEPTNET!r}, '--data', 'synthetic', '--engine', 'ray',"
        f" '--out', {str(tmp_path / 's')!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **ENV})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"error: {RAY_MISSING}"
    assert "pip install 'normscope[ray]'" in RAY_MISSING and "Traceback" not in done.stderr
    assert not (tmp_path / "s").exists()


def test_option_errors():
    def study(*args):
        return CliRunner().invoke(app, ["study", PERCEPTNET, "--data", "synthetic", *args])

    result = study("--address", "127.0.0.1:6379")
    assert result.exit_code == 2 and "--address: only with --engine ray" in result.output
    result = study("--engine", "ray", "--parallel", "2")
    assert result.exit_code == 2 and "--parallel is for --engine local" in result.output
    result = study("--engine", "ray", "--gpus-per-run", "1/0")
    assert (
        result.exit_code == 2 and "--gpus-per-run: expected a number or a fraction like 1/8, got '1/0'" in result.output
    )
    result = study("--engine", "ray", "--retries", "-1")
    assert result.exit_code == 2 and "--retries must be 0 or more, got -1" in result.output
    result = study("--engine", "spark")
    assert result.exit_code == 2 and "--engine: unknown 'spark' (choose from local, ray)" in result.output
    result = study("--engine", "ray", "--address", "somewhere")
    assert result.exit_code == 2 and "--address somewhere: expected auto, HOST:PORT or ray://HOST:PORT" in result.output
    assert parse_gpus("1/8") == 0.125 and parse_gpus("0.25") == 0.25 and parse_gpus("2") == 2.0
    with pytest.raises(StudyError, match="1.5 is not a GPU share"):
        parse_gpus("1.5")


def test_an_address_where_no_head_listens_is_refused_at_once():
    # in a network namespace of its own: the probe stays on that namespace's loopback
    cmd = [sys.executable, "-m", "normscope", "study", PERCEPTNET, "--engine", "ray", "--address", "127.0.0.1:9"]
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "bash", *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: --address 127.0.0.1:9: no Ray head answers there (Connection refused); start one with" in done.stderr


def test_a_run_sent_back_is_installed_whole_and_only_inside_its_directory(tmp_path):
    src = tmp_path / "scratch" / "net_in-s0"
    (src / "sub").mkdir(parents=True)
    (src / "results.json").write_text('{"status": "completed"}')
    (src / "sub" / "w.bin").write_bytes(bytes(range(256)) * 40)
    (src / ".last.pt.x.tmp").write_text("an interrupted write")
    target = tmp_path / "study" / "runs" / "net_in-s0"
    target.mkdir(parents=True)
    (target / "last.pt").write_text("a partial run from before")
    assert install_run(pack_run(src), target) == 2
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == ["results.json", "sub", "sub/w.bin"]
    assert (target / "sub" / "w.bin").read_bytes() == bytes(range(256)) * 40
    assert [p.name for p in target.parent.iterdir()] == ["net_in-s0"]

    buf = BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, BytesIO(b"x"))
    with pytest.raises(StudyError, match="the run archive holds '../escaped', which is not a file inside the run"):
        install_run(buf.getvalue(), target)
    assert not (tmp_path / "study" / "escaped").exists() and (target / "results.json").is_file()
    assert [p.name for p in target.parent.iterdir()] == ["net_in-s0"]


def test_eta_spreads_the_mean_run_time_over_the_slots():
    board = Board(["a", "b", "c", "d", "e"], epochs=10, log=lambda line: None)
    assert board.eta() is None  # nothing to go on yet
    now = time.time()
    board.runs["a"].status, board.runs["a"].started, board.runs["a"].epoch = "running", now - 30, 3
    board.runs["b"].status, board.runs["b"].started, board.runs["b"].epoch = "running", now - 30, 3
    board.slots = 2
    # before any run finished: 30 s for 3 of 10 epochs -> 100 s a run; 3 queued and 2 x 70 s left, on 2 slots
    assert board.eta() == pytest.approx((3 * 100 + 2 * 70) / 2, abs=0.5)
    board.runs["a"].status, board.runs["a"].seconds = "completed", 40.0
    # one finished in 40 s: 3 queued x 40 s + b's 40 - 30 s, on 2 slots
    assert board.eta() == pytest.approx((3 * 40 + 10) / 2, abs=0.5)
