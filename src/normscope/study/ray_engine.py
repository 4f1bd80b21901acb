"""The Ray engine: every (variant, seed) of a study is a Ray task, on a cluster or on this machine.

- Where: `address` None starts Ray embedded on this machine (a new instance); `auto` (the
  cluster `ray start` started here, or RAY_ADDRESS), `HOST:PORT` or `ray://HOST:PORT` (Ray
  Client, needs `ray[client]`) connect to a running cluster.
- Resources: each task asks for `cpus_per_run` CPUs and `gpus_per_run` GPUs (a fraction packs
  several runs on one GPU); Ray starts as many at once as the cluster holds.
- Failures: a task whose worker process or node dies, or that raises, is run again up to
  `retries` times; with the study directory on a filesystem the workers share, the retry
  resumes from the run's last.pt. A run that keeps failing ends `failed`; the others finish.
- No shared filesystem: each task checks for a token the driver wrote into the study
  directory; a worker that does not see it (or `shared_fs=False`) trains in its own scratch
  directory ($NORMSCOPE_SCRATCH, else <tmp>/normscope-scratch; a retry on the same node resumes
  from it) and sends the finished run directory back; the driver writes it atomically.

Every task calls the same per-run function as the local engine (`worker.train_one`). Ray is an
optional dependency (`pip install 'normscope[ray]'`), imported only when this engine runs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from normscope import norms
from normscope.fileio import atomic_write
from normscope.study.plan import StudyError
from normscope.study.progress import Board
from normscope.study.transfer import install_run, pack_run
from normscope.study.worker import run_reporting

MAX_CPUS_PER_RUN = 1024  # torch threads of one run; beyond, OpenMP aborts the process
MAX_GPUS_PER_RUN = 64
RAY_MISSING = "--engine ray needs Ray, which is not installed: pip install 'normscope[ray]'"
TOKEN_FILE = ".normscope-engine"  # in the study directory: a worker that reads it shares the filesystem
SCRATCH_ENV = "NORMSCOPE_SCRATCH"


@dataclass
class RayOptions:
    address: str | None = None  # None: start Ray embedded on this machine
    cpus_per_run: float = 1.0
    gpus_per_run: float | None = None  # None: 1 when the runs train on a GPU, else 0
    retries: int = 2
    shared_fs: bool | None = None  # None: every task checks whether it sees the study directory


def require_ray():
    """The `ray` module, or a StudyError naming the extra that installs it."""
    try:
        import ray  # optional dependency: only the Ray engine needs it
    except ImportError:
        raise StudyError(RAY_MISSING) from None
    return ray


def parse_gpus(text: str | None) -> float | None:
    """`--gpus-per-run`: a number or a fraction (`0.25`, `1/8`); fractions only below 1."""
    if text is None:
        return None
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise StudyError(f"--gpus-per-run: expected a number or a fraction like 1/8, got {text!r}") from None
    if not math.isfinite(value) or value > MAX_GPUS_PER_RUN:
        raise StudyError(f"--gpus-per-run: {text} is more GPUs than one run can use (at most {MAX_GPUS_PER_RUN})")
    if value < 0 or (value > 1 and not value.is_integer()):
        raise StudyError(f"--gpus-per-run: {text} is not a GPU share Ray can give (0 to 1, or a whole number)")
    return value


def _recorded_address() -> str | None:
    """What `--address auto` means here: RAY_ADDRESS, else the cluster `ray start` last started on
    this machine (/tmp/ray/ray_current_cluster); None when Ray finds none (ray.init says so)."""
    try:
        # Ray's own lookup; an internal function, so any failure just skips the early check
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:
        return None


def check_options(opts: RayOptions) -> None:
    """What can be refused before connecting to anything: the numbers, and an address where no
    Ray head listens (ray.init would retry it for minutes)."""
    cpus = opts.cpus_per_run
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not math.isfinite(cpus) or cpus <= 0:
        raise StudyError(f"--cpus-per-run must be a positive number, got {cpus!r}")
    if cpus > MAX_CPUS_PER_RUN:
        raise StudyError(f"--cpus-per-run {cpus:g}: at most {MAX_CPUS_PER_RUN} CPUs (torch threads) per run")
    if opts.retries < 0:
        raise StudyError(f"--retries must be 0 or more, got {opts.retries}")
    address, what = opts.address, f"--address {opts.address}"
    if address == "auto":
        address = _recorded_address()
        what = f"--address auto ({address}: RAY_ADDRESS, or the cluster `ray start` last started here)"
    if not address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StudyError(f"{what}: expected auto, HOST:PORT or ray://HOST:PORT (a port from 1 to 65535)")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise StudyError(
            f"{what}: no Ray head answers there ({exc.strerror or exc}); "
            f"start one with `ray start --head --port {port}`"
        ) from None


def connect(ray, address: str | None) -> None:
    """Join the cluster at `address`, or start Ray embedded on this machine."""
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": False}
    if os.environ.get(norms.plugins.ENV):  # --plugin files: workers on the cluster's nodes load them too
        kwargs["runtime_env"] = {"env_vars": {norms.plugins.ENV: os.environ[norms.plugins.ENV]}}
    if address is None:  # a new instance, even where `ray start` runs (that one is --address auto)
        address, kwargs["include_dashboard"] = "local", False
    where = f"--address {address}" if address != "local" else "Ray embedded on this machine"
    try:
        ray.init(address=address, **kwargs)
    except ValueError as exc:  # ray:// without Ray Client's dependencies
        if "ray[client]" in str(exc):
            raise StudyError(
                f"{where}: Ray Client (ray://) needs pip install 'ray[client]' here and on the head; "
                "or run normscope on a node of the cluster with --address auto"
            ) from None
        raise
    except (ConnectionError, RuntimeError) as exc:
        chain, cause = [], exc
        while cause is not None:
            chain.append(str(cause))
            cause = cause.__cause__
        hint = ""
        if any("InvalidAuthToken" in text or "AuthenticationError" in text for text in chain):
            hint = (
                "; the cluster uses token authentication: set RAY_AUTH_MODE=token and give its token "
                "(~/.ray/auth_token, as on the head, or RAY_AUTH_TOKEN)"
            )
        raise StudyError(f"{where}: cannot connect: {str(exc).splitlines()[0]}{hint}") from None


def task_resources(ray, opts: RayOptions, device: str) -> tuple[float, float]:
    """(CPUs, GPUs) per task; checks that the cluster has GPUs when runs need them and a
    node big enough for one run."""
    total = ray.cluster_resources()
    gpus = opts.gpus_per_run
    if gpus is None:
        gpus = 1.0 if device.startswith("cuda") or (device == "auto" and total.get("GPU", 0) > 0) else 0.0
    if device.startswith("cuda") and gpus == 0:
        raise StudyError("--device cuda with --gpus-per-run 0: Ray would hide the GPUs from the runs")
    if device == "cpu" and gpus > 0:
        raise StudyError(f"--gpus-per-run {gpus:g} with --device cpu: the runs would not use the GPU they hold")
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not any(n.get("CPU", 0) >= opts.cpus_per_run and n.get("GPU", 0) >= gpus for n in nodes):
        biggest = max(((n.get("CPU", 0), n.get("GPU", 0)) for n in nodes), default=(0, 0))
        raise StudyError(
            f"no node of the Ray cluster has {opts.cpus_per_run:g} CPUs and {gpus:g} GPUs for one run "
            f"(the largest has {biggest[0]:g} CPUs, {biggest[1]:g} GPUs); lower --cpus-per-run / --gpus-per-run"
        )
    return opts.cpus_per_run, gpus


class Tracker:
    """A Ray actor (no CPU) the tasks report to (started, epoch); the driver drains it."""

    def __init__(self):
        self.events = []

    def report(self, event: dict) -> None:
        self.events.append(event)

    def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out


def _sees_study(transport: dict) -> bool:
    try:
        return (Path(transport["study_dir"]) / TOKEN_FILE).read_text() == transport["token"]
    except OSError:
        return False


def run_task(job: dict, transport: dict, tracker) -> dict:
    """One Ray task: the run in place when the study directory is shared, else in scratch,
    packed and returned to the driver (`archive`)."""
    import ray  # on a Ray worker: Ray is there

    where = ray.util.get_node_ip_address()

    def report(event: dict) -> None:
        try:
            tracker.report.remote(event)
        except Exception:  # progress is best effort: a lost tracker must not fail the run
            pass

    shared = transport["shared"] if transport["shared"] is not None else _sees_study(transport)
    if shared:
        return dict(run_reporting(job, report, where), where=where)
    root = Path(os.environ.get(SCRATCH_ENV) or Path(tempfile.gettempdir()) / "normscope-scratch")
    scratch = root / transport["key"] / Path(job["run_dir"]).name
    scratch.parent.mkdir(parents=True, exist_ok=True)
    result = run_reporting(dict(job, run_dir=str(scratch)), report, where)
    archive = pack_run(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    return dict(result, run_dir=job["run_dir"], where=where, archive=archive)


def _outcome(ray, ref, job: dict, board: Board) -> dict:
    """The task's result; a run that kept failing as {status: failed, message}; a run sent back
    from scratch written into the study directory."""
    try:
        result = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        text = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        return {"run_dir": job["run_dir"], "status": "failed", "message": text.splitlines()[0]}
    except ray.exceptions.RayError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        return {"run_dir": job["run_dir"], "status": "failed", "message": f"{type(exc).__name__}: {lines[0]}"}
    if "archive" in result:
        archive = result.pop("archive")
        files = install_run(archive, Path(job["run_dir"]))
        board.note(
            f"{Path(job['run_dir']).name}: sent back from {result.get('where')} "
            f"({files} files, {len(archive) / 1e6:.1f} MB), written to {job['run_dir']}"
        )
    return result


def _drain(ray, tracker, pending, board: Board, wait: float = 0.0):
    """Pass the tasks' events to the board: (tracker, the drain call still out). A drain call
    that has not answered yet (a loaded machine) is waited for, not given up; the tracker is
    None when it is gone (its node died)."""
    if tracker is None:
        return None, None
    pending = pending or tracker.drain.remote()
    ready, _ = ray.wait([pending], timeout=wait)
    if not ready:
        return tracker, pending
    try:
        for event in ray.get(pending):
            board.event(event)
    except ray.exceptions.RayError:
        board.note("lost the progress tracker (its node died?); results still arrive")
        return None, None
    return tracker, None


def run_ray(todo: list[dict], study_dir: Path, opts: RayOptions, device: str, board: Board) -> list[dict]:
    """Run the jobs as Ray tasks; one result each, in the order they finish. (`check_options`
    first: run_study calls it before writing anything.)"""
    ray = require_ray()
    connect(ray, opts.address)
    try:
        cpus, gpus = task_resources(ray, opts, device)
        token = uuid.uuid4().hex
        atomic_write(study_dir / TOKEN_FILE, token)
        transport = {
            "study_dir": str(study_dir),
            "token": token,
            "shared": opts.shared_fs,
            "key": hashlib.sha1(str(study_dir).encode()).hexdigest()[:12],
        }
        tracker = ray.remote(Tracker).options(num_cpus=0).remote()
        task = ray.remote(run_task).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=opts.retries, retry_exceptions=True
        )
        refs = {task.remote(dict(job, threads=max(1, int(cpus))), transport, tracker): job for job in todo}
        total, nodes = ray.cluster_resources(), sum(1 for n in ray.nodes() if n.get("Alive"))
        board.note(
            f"Ray: {len(refs)} tasks of {cpus:g} CPU, {gpus:g} GPU (up to {opts.retries} retries each) on "
            f"{nodes} node(s) with {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs"
        )
        pending, results, draining = list(refs), [], None
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            tracker, draining = _drain(ray, tracker, draining, board, wait=1.0 if ready else 0.0)
            for ref in ready:
                job = refs[ref]
                result = _outcome(ray, ref, job, board)
                results.append(result)
                board.finished(Path(job["run_dir"]).name, result)
            board.refresh()
        _drain(ray, tracker, draining, board, wait=30.0)  # the events still on their way
        return results
    finally:
        ray.shutdown()
