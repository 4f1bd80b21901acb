"""Running a study: train every (variant, seed) job, resuming what an earlier call left.

`train_one` is the whole of one run (train or resume, then attribute a reuse run): it takes
a job from `plan.make_jobs` and returns {run_dir, status[, message]}, so any engine that can
call an importable function with a JSON-able argument can run it. `run_local` is the engine
of this module: in this process, or in a pool of local worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import torch

from normscope import norms
from normscope.analysis import attribute_run
from normscope.data import load_dataset
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
    needs_attribution,
    parse_variants,
    plan_runs,
    run_state,
    update_states,
)
from normscope.study.tables import write_comparison
from normscope.train import TrainingFailed, runs, train


def train_one(job: dict) -> dict:
    """One (variant, seed): train or resume, then attribute a reuse run. Runs in a worker."""
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    run_dir = Path(job["run_dir"])
    state = run_state(run_dir)
    try:
        if state == "partial":
            train(resume=run_dir, device=job["device"], data_dir=job["data_dir"], progress="none")
        elif state in ("new", "failed"):
            if run_dir.exists():
                shutil.rmtree(run_dir)  # nothing to keep: no finished epoch, or diverged
            norm, reuse = norms.parse_variant(job["variant"])
            train(
                job["description"],
                data=job["data"],
                data_dir=job["data_dir"],
                out=run_dir.parent,
                name=run_dir.name,
                norm=norm,
                reuse=reuse,
                epochs=job["epochs"],
                seed=job["seed"],
                subset=job["subset"],
                test_subset=job["test_subset"],
                device=job["device"],
                fit_data=True,
                batch_size=job["batch_size"],
                lr=job["lr"],
                progress="none",
            )
    except TrainingFailed as exc:
        return {"run_dir": str(run_dir), "status": "failed", "message": str(exc)}
    if needs_attribution(job):
        attribute_run(run_dir, samples=job["attribute_samples"], device=job["device"], quiet=True)
    return {"run_dir": str(run_dir), "status": "completed"}


def run_local(todo: list[dict], parallel: int = 1, log: Callable[[str], object] = print) -> list[dict]:
    """Run the jobs here (parallel=1) or in `parallel` spawned worker processes; one result each,
    in the order they finish."""
    start = time.time()
    results = []

    def report(job: dict, result: dict) -> None:
        results.append(result)
        log(
            f"[{len(results)}/{len(todo)}] {Path(job['run_dir']).name}: {result['status']} "
            f"({time.time() - start:.0f} s)"
        )

    if parallel == 1:
        for job in todo:
            report(job, train_one(job))
        return results
    # spawn: forked workers would inherit this process' torch threads and CUDA state
    with ProcessPoolExecutor(max_workers=parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train_one, job): job for job in todo}
        for fut in as_completed(futures):
            report(futures[fut], fut.result())
    return results


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
    log=print,
) -> Path:
    """Train every variant × seed (resuming what an earlier call left), attribute the reuse
    runs, and write the comparison. Returns the study directory.

    `variants`: None or `all` (the thesis' variants), a comma-separated string, or a list."""
    spec = load_spec(description)
    variants = parse_variants(variants if isinstance(variants, (str, type(None))) else ",".join(variants))
    data = data or spec.train.get("data")
    if not data:
        raise StudyError(f"{spec.file}: no data set: pass --data or set train.data in the description")
    if seeds < 1 or parallel < 1:
        raise StudyError("--seeds and --parallel must be at least 1")
    load_dataset(data, data_dir=data_dir)  # a missing or unknown data set fails before anything is written
    study_dir = Path(out) / runs.safe_name(spec.family, data)
    plan = make_plan(
        description,
        spec.family,
        data,
        variants,
        seeds,
        {"epochs": epochs, "subset": subset, "test_subset": test_subset, "batch_size": batch_size, "lr": lr},
    )
    check_protocol(study_dir, plan)
    (study_dir / RUNS).mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else None
    jobs = make_jobs(
        description,
        study_dir,
        plan,
        data_dir=data_dir,
        device=device,
        attribute=attribute,
        attribute_samples=attribute_samples,
        threads=threads,
    )
    plan["runs"] = plan_runs(jobs, study_dir)
    runs.write_json(study_dir / STUDY, plan)
    todo = [j for j in jobs if not is_finished(j)]
    log(
        f"study {study_dir}: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run "
        f"({parallel} at a time)"
    )
    start = time.time()
    results = run_local(todo, parallel, log)
    update_states(plan, study_dir)
    plan["seconds_last_call"] = round(time.time() - start, 1)
    runs.write_json(study_dir / STUDY, plan)
    for r in results:
        if r["status"] == "failed":
            log(f"failed: {r['run_dir']}: {r.get('message', '')}")
    write_comparison(collect([study_dir]), study_dir)
    return study_dir
