"""The per-run function every engine calls: `train_one(job)`.

`train_one` is the whole of one run (train or resume, then attribute a reuse run): it takes a
job from `plan.make_jobs` (a JSON-able dict) and returns {run_dir, status[, message]}, so the
local engine (this process or a pool of processes) and the Ray engine run exactly the same
code, and a run directory is the same whichever engine made it.

`run_reporting` wraps it for an engine that shows progress: it reports `started` (where, pid)
and each finished `epoch` through a callable the engine provides.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Callable

import torch

from normscope import norms
from normscope.analysis import attribute_run
from normscope.study.plan import Job, needs_attribution, run_state
from normscope.train import TrainingFailed, train

Report = Callable[[dict], object]


def train_one(job: Job | dict, on_epoch: Callable[[int], object] | None = None) -> dict:
    """One (cell, variant, seed): train or resume, then attribute a reuse run. `on_epoch(epoch)`
    is called after each epoch's checkpoint is written."""
    norms.load_plugins()  # the driver's --plugin files come through NORMSCOPE_PLUGINS
    job = Job.from_dict(job) if isinstance(job, dict) else job
    if job.threads:
        torch.set_num_threads(job.threads)
    run_dir = Path(job.run_dir)
    state = run_state(run_dir)
    callbacks = [lambda row: on_epoch(row["epoch"])] if on_epoch else []
    try:
        if state in ("partial", "running"):  # (a live holder of the run's lock makes the resume refuse)
            for stray in run_dir.glob(".*.tmp"):  # a write the killed attempt left unfinished
                stray.unlink(missing_ok=True)
            train(resume=run_dir, device=job.device, data_dir=job.data_dir, progress="none", callbacks=callbacks)
        elif state in ("new", "failed"):
            if run_dir.exists():
                shutil.rmtree(run_dir)  # nothing to keep: no finished epoch, or diverged
            train(
                job.variant,
                data=job.data,
                data_dir=job.data_dir,
                out=run_dir.parent,
                name=run_dir.name,
                seed=job.seed,
                test_subset=job.test_subset,
                device=job.device,
                fit_data=True,
                progress="none",
                callbacks=callbacks,
            )
    except TrainingFailed as exc:
        return {"run_dir": str(run_dir), "status": "failed", "message": str(exc)}
    if needs_attribution(job):
        attribute_run(run_dir, samples=job.attribute_samples, device=job.device, quiet=True)
    return {"run_dir": str(run_dir), "status": "completed"}


def here() -> str:
    """This machine's name, for 'running where'."""
    return socket.gethostname()


def run_reporting(job: Job | dict, report: Report, where: str | None = None) -> dict:
    """`train_one(job)`, reporting {event: started, run, where, pid} first and {event: epoch, run,
    epoch} after each epoch."""
    job = Job.from_dict(job) if isinstance(job, dict) else job
    name = Path(job.run_dir).name
    report({"event": "started", "run": name, "where": where or here(), "pid": os.getpid()})
    return train_one(job, on_epoch=lambda epoch: report({"event": "epoch", "run": name, "epoch": epoch}))
