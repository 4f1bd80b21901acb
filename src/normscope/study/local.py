"""The local engine's runs: in this process, or in a pool of spawned worker processes that
die with this one (normscope.study.orphans)."""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing.managers import SyncManager
from pathlib import Path

from normscope.study.orphans import die_with_parent, stop_workers
from normscope.study.plan import Job
from normscope.study.progress import Board
from normscope.study.worker import here, run_reporting

__all__ = ["run_local"]


def _failed(job: Job, exc: BaseException) -> dict:
    return {"run_dir": job.run_dir, "status": "failed", "message": f"{type(exc).__name__}: {exc}"}


def _pool_task(job: dict, events) -> dict:
    """A local worker process: the run, reporting to the driver through a managed queue. A
    stop signal ends the process once the run has recorded `interrupted`."""
    try:
        return run_reporting(job, events.put)
    except KeyboardInterrupt:
        os._exit(130)


def _drain_queue(events, board: Board) -> None:
    while True:
        try:
            board.event(events.get_nowait())
        except queue_module.Empty:
            return


def run_local(todo: list[Job], parallel: int = 1, board: Board | None = None) -> list[dict]:
    """Run the jobs here (parallel=1) or in `parallel` spawned worker processes; one result each,
    in the order they finish. A run that raises ends `failed`; the others go on."""
    todo = [Job.from_dict(j) if isinstance(j, dict) else j for j in todo]
    board = board or Board([Path(j.run_dir).name for j in todo], None)
    results = []

    def done(job: Job, result: dict) -> None:
        results.append(result)
        board.finished(Path(job.run_dir).name, result)

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
    orphans = {"initializer": die_with_parent, "initargs": (os.getpid(),)}  # workers die with this process
    manager = SyncManager(ctx=ctx)
    manager.start(**orphans)
    with manager, ProcessPoolExecutor(max_workers=parallel, mp_context=ctx, **orphans) as pool:
        events = manager.Queue()
        futures = {pool.submit(_pool_task, job.to_dict(), events): job for job in todo}
        pending = set(futures)
        try:
            while pending:
                ready, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                _drain_queue(events, board)
                for fut in ready:
                    exc = fut.exception()
                    done(futures[fut], _failed(futures[fut], exc) if exc else fut.result())
                board.refresh()
        except BaseException:  # Ctrl-C, SIGTERM: the running runs record `interrupted`, then end
            workers = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            stop_workers(workers)
            raise
    return results
