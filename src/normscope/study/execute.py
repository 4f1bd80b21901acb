"""Running a study: plan it, train every (variant, seed) job on an engine, write the comparison.

Engines, each calling the same per-run function (`worker.train_one`) on the same JSON-able
jobs, so a run directory is the same whichever engine made it:

- `local` (`run_local`): in this process, or in a pool of `parallel` spawned worker processes;
- `ray` (`ray_engine.run_ray`): one Ray task per run, on a cluster or embedded here.

A call resumes what an earlier one left (finished runs are kept, partial ones continue from
last.pt), so re-running the same command after a crash, a kill or a lost node continues the
study. study.json records, per run, the directory's state and what this call did with it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue as queue_module
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from normscope.data.load import check_data
from normscope.spec import load_spec
from normscope.study.compare import collect
from normscope.study.plan import (
    RUNS,
    STUDY,
    StudyError,
    check_protocol,
    is_finished,
    make_jobs,
    make_plan,
    parse_variants,
    plan_runs,
    update_states,
)
from normscope.study.progress import Board
from normscope.study.ray_engine import RayOptions, check_options, require_ray, run_ray
from normscope.study.tables import write_comparison
from normscope.study.transfer import clean_incoming
from normscope.study.worker import here, run_reporting, train_one
from normscope.train import lock, runs

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "run_local", "run_study", "train_one"]


def _failed(job: dict, exc: BaseException) -> dict:
    return {"run_dir": job["run_dir"], "status": "failed", "message": f"{type(exc).__name__}: {exc}"}


def _pool_task(job: dict, events) -> dict:
    """A local worker process: the run, reporting to the driver through a managed queue."""
    return run_reporting(job, events.put)


def _drain_queue(events, board: Board) -> None:
    while True:
        try:
            board.event(events.get_nowait())
        except queue_module.Empty:
            return


def run_local(todo: list[dict], parallel: int = 1, board: Board | None = None) -> list[dict]:
    """Run the jobs here (parallel=1) or in `parallel` spawned worker processes; one result each,
    in the order they finish. A run that raises ends `failed`; the others go on."""
    board = board or Board([Path(j["run_dir"]).name for j in todo], None)
    results = []

    def done(job: dict, result: dict) -> None:
        results.append(result)
        board.finished(Path(job["run_dir"]).name, result)

    if parallel == 1:
        for job in todo:
            try:
                result = run_reporting(job, board.event, here())
            except Exception as exc:  # one broken run must not end the study
                result = _failed(job, exc)
            done(job, result)
        return results
    # spawn: forked workers would inherit this process' torch threads and CUDA state
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=parallel, mp_context=ctx) as pool:
        events = manager.Queue()
        futures = {pool.submit(_pool_task, job, events): job for job in todo}
        pending = set(futures)
        while pending:
            ready, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _drain_queue(events, board)
            for fut in ready:
                exc = fut.exception()
                done(futures[fut], _failed(futures[fut], exc) if exc else fut.result())
            board.refresh()
    return results


def _prepare(description, variants, seeds, data, data_dir, out, settings: dict):
    """The description, the plan and the study directory; checks that fail before anything is written."""
    runs.check_out_dir(out)  # a file, or a directory that cannot be written: refused before any work
    spec = load_spec(description)
    variants = parse_variants(variants if isinstance(variants, (str, type(None))) else ",".join(variants))
    data = data or spec.train.get("data")
    if not data:
        raise StudyError(f"{spec.file}: no data set: pass --data or set train.data in the description")
    if seeds < 1:
        raise StudyError("--seeds must be at least 1")
    _check_settings(settings)
    check_data(data, data_dir=data_dir)  # a missing or unknown data set fails before anything is written
    study_dir = (Path(out) / runs.safe_name(spec.family, data)).resolve()
    plan = make_plan(description, spec.family, data, variants, seeds, settings)
    check_protocol(study_dir, plan)
    return spec, plan, study_dir


def _check_settings(settings: dict) -> None:
    """The training settings a study passes to every run, checked before anything is written."""
    for key, flag in (
        ("epochs", "--epochs"),
        ("subset", "--subset"),
        ("test_subset", "--test-subset"),
        ("batch_size", "--batch-size"),
    ):
        value = settings.get(key)
        if value is not None and value < 1:
            raise StudyError(f"{flag} must be at least 1, got {value}")
    lr = settings.get("lr")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise StudyError(f"--lr must be a positive number, got {lr}")


def run_study(
    description,
    *,
    variants=None,
    seeds: int = 3,
    data: str | None = None,
    epochs: int | None = None,
    parallel: int = 1,
    out="studies",
    device: str = "auto",
    subset: int | None = None,
    test_subset: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    data_dir=None,
    attribute: bool = True,
    attribute_samples: int = 1000,
    engine: str = "local",
    threads: int | None = None,
    ray: RayOptions | None = None,
    log=print,
    console=None,
) -> Path:
    """Train every variant × seed (resuming what an earlier call left), attribute the reuse
    runs, and write the comparison. Returns the study directory.

    `variants`: None or `all` (the thesis' variants), a comma-separated string, or a list.
    `engine`: `local` (`parallel` processes, `threads` torch threads each) or `ray` (`ray`: its
    options). `log` gets the progress lines; with a terminal `console` a live table instead."""
    if engine not in ENGINES:
        raise StudyError(f"--engine: unknown {engine!r} (choose from {', '.join(ENGINES)})")
    if parallel < 1 or (threads is not None and threads < 1):
        raise StudyError("--parallel and --cpus-per-run must be at least 1")
    if attribute_samples < 0:
        raise StudyError(f"--samples must be at least 0, got {attribute_samples}")
    if engine == "ray":
        require_ray()
        check_options(ray or RayOptions())
    settings = {"epochs": epochs, "subset": subset, "test_subset": test_subset, "batch_size": batch_size, "lr": lr}
    spec, plan, study_dir = _prepare(description, variants, seeds, data, data_dir, out, settings)
    (study_dir / RUNS).mkdir(parents=True, exist_ok=True)
    with lock.acquire(study_dir):  # one writer per study: a second study here refuses, naming this one
        check_protocol(study_dir, plan)  # again, now that no other writer can change study.json
        clean_incoming(study_dir / RUNS)
        if threads is None and parallel > 1:
            threads = max(1, (os.cpu_count() or 1) // parallel)
        jobs = make_jobs(
            Path(description).resolve(),
            study_dir,
            plan,
            data_dir=Path(data_dir).resolve() if data_dir else None,
            device=device,
            attribute=attribute,
            attribute_samples=attribute_samples,
            threads=threads,
        )
        for job in jobs:  # an npz file by its absolute path: the runs may start elsewhere (a Ray worker)
            if job["data"].startswith("npz:") and Path(job["data"][4:]).expanduser().exists():
                job["data"] = "npz:" + str(Path(job["data"][4:]).expanduser().resolve())
        plan["runs"] = plan_runs(jobs, study_dir)
        plan["engine"] = engine if engine == "local" else f"ray ({(ray or RayOptions()).address or 'this machine'})"
        runs.write_json(study_dir / STUDY, plan)
        todo = [j for j in jobs if not is_finished(j)]
        how = f"{parallel} at a time" if engine == "local" else "on Ray"
        log(f"study {study_dir}: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run ({how})")
        start = time.time()
        board = Board([Path(j["run_dir"]).name for j in todo], epochs or spec.train.get("epochs"), log, console)
        with board:
            if engine == "ray" and todo:
                run_ray(todo, study_dir, ray or RayOptions(), device, board)
            elif todo:
                run_local(todo, parallel, board)
        _record(plan, study_dir, board, time.time() - start)
        write_comparison(collect([study_dir]), study_dir)
        return study_dir


def _record(plan: dict, study_dir: Path, board: Board, seconds: float) -> None:
    """study.json after the call: each run's directory state, and this call's outcome for the runs it ran."""
    update_states(plan, study_dir)
    for entry in plan["runs"]:
        line = board.runs.get(Path(entry["run_dir"]).name)
        if line is not None:
            entry.update(line.record())
    plan["seconds_last_call"] = round(seconds, 1)
    runs.write_json(study_dir / STUDY, plan)
