"""Running a study: plan it, train every (cell, variant, seed) job on an engine, write the comparison.

A :class:`StudyRequest` says what to run (the description, variants, seeds, the settings and
overrides every run shares, the factors that cross them); an engine
(`normscope.study.engines`) says how. Every engine calls the same per-run function
(`worker.train_one`) on the same jobs, so a run directory is the same whichever made it.

A call resumes what an earlier one left (finished runs are kept, partial ones continue from
last.pt), so re-running the same command after a crash, a kill or a lost node continues the
study. study.json records, per run, the directory's state and what this call did with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from normscope import norms
from normscope.data.load import check_data
from normscope.model.graph import build_graph, param_totals
from normscope.rundir import lock
from normscope.spec import load_spec
from normscope.spec.overrides import Override
from normscope.spec.schema import check_setting
from normscope.spec.settings import BY_NAME
from normscope.spec.variant import Variant
from normscope.study.compare import collect, linked_runs
from normscope.study.engines import Engine, LocalEngine, RayEngine
from normscope.study.local import run_local
from normscope.study.plan import (
    RUNS,
    STUDY,
    Factor,
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
from normscope.study.ray_engine import RayOptions
from normscope.study.tables import write_comparison
from normscope.study.transfer import clean_incoming
from normscope.train import runs

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "StudyRequest", "run_local", "run_study", "execute_study"]

MAX_SEEDS = 10_000


@dataclass
class StudyRequest:
    """What a study runs. ``settings``: run settings given as options ({name: value}, None =
    the description's; ``--epochs``, ``--lr``, ...); ``overrides``: ``--set``/``--norm-option``;
    ``factors``: ``--factor``s, crossed with each other and the variants."""

    description: Path
    variants: str | list | None = None
    seeds: int = 3
    settings: dict = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()
    factors: tuple[Factor, ...] = ()
    test_subset: int | None = None
    data_dir: Path | None = None
    out: Path = Path("studies")
    device: str = "auto"
    attribute: bool = True
    attribute_samples: int = 1000

    def setting_overrides(self) -> tuple[Override, ...]:
        """The settings given as options, checked by their declarations, as `train.` overrides
        (a path of weights made absolute: the runs read it from anywhere)."""
        out = []
        for name, value in self.settings.items():
            if value is None or name == "data":
                continue
            value = check_setting(name, value, BY_NAME[name].option or f"train.{name}")
            if name == "weights" and not str(value).startswith("torchvision:") and Path(value).expanduser().exists():
                value = str(Path(value).expanduser().resolve())
            out.append(Override(("train", name), value, BY_NAME[name].option or "--set"))
        return tuple(out)


def _check_request(req: StudyRequest) -> None:
    if isinstance(req.seeds, bool) or not isinstance(req.seeds, int) or not 1 <= req.seeds <= MAX_SEEDS:
        raise StudyError(f"--seeds must be an integer from 1 to {MAX_SEEDS:,}, got {req.seeds!r}")
    if req.test_subset is not None and (not isinstance(req.test_subset, int) or req.test_subset < 1):
        raise StudyError(f"--test-subset must be at least 1, got {req.test_subset!r}")
    if req.attribute_samples < 0:
        raise StudyError(f"--samples must be at least 0, got {req.attribute_samples}")
    if isinstance(req.variants, str) and not req.variants.strip():
        raise StudyError("--variants is empty: give all (the thesis' variants) or a comma-separated list")


def _prepare(req: StudyRequest):
    """The description, the plan, the jobs' base variant and the study directory; everything
    that can be refused is refused here, before anything is written."""
    runs.check_out_dir(req.out)  # a file, or a directory that cannot be written: refused before any work
    _check_request(req)
    extra = req.setting_overrides() + tuple(req.overrides)
    base = Variant(Path(req.description).resolve(), overrides=extra)
    spec = load_spec(base)
    variants = parse_variants(req.variants if isinstance(req.variants, (str, type(None))) else ",".join(req.variants))
    for variant in variants:  # every variant of every cell loads: a bad level fails now
        for factor in req.factors:
            for level in factor.levels:
                load_spec(base.with_overrides([level]), *norms.parse_variant(variant))
    data = req.settings.get("data") or spec.train.get("data")
    if not data:
        raise StudyError(f"{spec.file}: no data set: pass --data or set train.data in the description")
    check_data(data, data_dir=req.data_dir)  # a missing or unknown data set fails before anything is written
    suffix = "-by-" + "-".join(f.short for f in req.factors) if req.factors else ""
    study_dir = (Path(req.out) / runs.safe_name(spec.family + suffix, data)).resolve()
    plan = make_plan(req.description, spec.family, data, variants, req.seeds, dict(req.settings, data=data))
    plan["test_subset"] = req.test_subset
    plan["sets"] = [o.text() for o in req.overrides]
    plan["factors"] = {f.key: [o.value for o in f.levels] for f in req.factors}
    check_protocol(study_dir, plan)
    for link, target in linked_runs([study_dir]):  # a study writes only its own run directories
        raise StudyError(f"{link} is a symbolic link to {target}: a study never writes through one; remove it")
    return spec, base, plan, study_dir


def execute_study(req: StudyRequest, engine: Engine, log=print, console=None) -> Path:
    """Train every cell × variant × seed (resuming what an earlier call left), attribute the
    reuse runs, and write the comparison. Returns the study directory. ``log`` gets the
    progress lines; with a terminal ``console`` a live table instead."""
    engine.check()
    spec, base, plan, study_dir = _prepare(req)
    (study_dir / RUNS).mkdir(parents=True, exist_ok=True)
    with lock.acquire(study_dir):  # one writer per study: a second study here refuses, naming this one
        check_protocol(study_dir, plan)  # again, now that no other writer can change study.json
        clean_incoming(study_dir / RUNS)
        jobs = make_jobs(
            base,
            study_dir,
            plan,
            req.factors,
            data_dir=str(Path(req.data_dir).resolve()) if req.data_dir else None,
            test_subset=req.test_subset,
            device=req.device,
            attribute=req.attribute,
            attribute_samples=req.attribute_samples,
        )
        for job in jobs:  # an npz file by its absolute path: the runs may start elsewhere (a Ray worker)
            if job.data.startswith("npz:") and Path(job.data[4:]).expanduser().exists():
                job.data = "npz:" + str(Path(job.data[4:]).expanduser().resolve())
        todo = [j for j in jobs if not is_finished(j)]
        engine.settle(todo, _weights(spec))
        plan["runs"] = plan_runs(jobs, study_dir)
        plan["engine"] = engine.describe()
        runs.write_json(study_dir / STUDY, plan)
        log(
            f"study {study_dir}: {len(jobs)} runs, {len(jobs) - len(todo)} already done, "
            f"{len(todo)} to run ({engine.how()})"
        )
        start = time.time()
        board = Board([Path(j.run_dir).name for j in todo], spec.train.get("epochs"), log, console)
        with board:
            try:
                if todo:
                    engine.run(todo, study_dir, board)
            except KeyboardInterrupt:  # study.json says which runs were interrupted
                board.interrupted()
                _record(plan, study_dir, board, time.time() - start)
                raise
        _record(plan, study_dir, board, time.time() - start)
        write_comparison(collect([study_dir]), study_dir)
        return study_dir


def _weights(spec) -> int:
    """The model's weight count for the engine's choices; 0 while `input`/`classes` wait for the data."""
    if spec.input_shape is None or spec.classes is None:
        return 0
    return sum(param_totals(build_graph(spec)))


def run_study(
    description,
    *,
    engine: str | Engine = "local",
    parallel: int | str = 1,
    threads: int | None = None,
    ray: RayOptions | None = None,
    log=print,
    console=None,
    **request,
) -> Path:
    """:func:`execute_study` from keyword arguments: the StudyRequest's fields (``epochs``,
    ``subset``, ``batch_size``, ``lr``, ``data`` and the other run settings go into its
    ``settings``), and the engine by name (``local`` with ``parallel``/``threads``, ``ray``
    with ``ray``) or as an Engine."""
    settings = {k: request.pop(k) for k in list(request) if k in BY_NAME}
    req = StudyRequest(Path(description), settings=settings, **request)
    if isinstance(engine, str):
        if engine not in ENGINES:
            raise StudyError(f"--engine: unknown {engine!r} (choose from {', '.join(ENGINES)})")
        engine = LocalEngine(parallel, threads) if engine == "local" else RayEngine(ray or RayOptions(), req.device)
    return execute_study(req, engine, log, console)


def _record(plan: dict, study_dir: Path, board: Board, seconds: float) -> None:
    """study.json after the call: each run's directory state, and this call's outcome for the runs it ran."""
    update_states(plan, study_dir)
    for entry in plan["runs"]:
        line = board.runs.get(Path(entry["run_dir"]).name)
        if line is not None:
            entry.update(line.record())
    plan["seconds_last_call"] = round(seconds, 1)
    runs.write_json(study_dir / STUDY, plan)
