"""CLI command for whole studies: `study` (the comparison is `compare`, in compare.py).

Engines: `--engine local` (default; `--parallel N` processes) and `--engine ray` (`--address`,
`--cpus-per-run`, `--gpus-per-run`, `--retries`, `--shared-fs/--no-shared-fs`); docs/scaling.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from normscope import norms
from normscope.cli.common import NormOptionOpt, SetOpt, console, echo, fail, resumable, user_errors, variant_of
from normscope.cli.settings import setting_options
from normscope.cli.static import print_description_diagnostics

VARIANTS_HELP = f"all (the thesis' {len(norms.VARIANTS)}), or a comma-separated list of: " + ", ".join(
    norms.ALL_VARIANTS
)


@user_errors
@resumable
@setting_options(study=True)
def study(
    file: Path = typer.Argument(..., help="model description (.yml); its variants are trained"),
    variants: str = typer.Option("all", "--variants", help=VARIANTS_HELP),
    seeds: int = typer.Option(3, "--seeds", help="seeds per variant (and per cell of the factors)", min=1),
    factor: Optional[list[str]] = typer.Option(
        None,
        "--factor",
        help="vary a --set key over levels, KEY=V1,V2 (repeatable; factors are crossed): "
        "norm_options.bn.momentum=0.9,0.99 or train.lr=1e-3,3e-4",
    ),
    sets: Optional[list[str]] = SetOpt,
    norm_option: Optional[list[str]] = NormOptionOpt,
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="where the data files are"),
    test_subset: Optional[int] = typer.Option(None, "--test-subset", help="evaluate on N (stratified) test images"),
    parallel: str = typer.Option(
        "1", "--parallel", help="local engine: runs trained at the same time, or auto (from the cores and model size)"
    ),
    engine: str = typer.Option("local", "--engine", help="local (this machine's processes) or ray (a Ray cluster)"),
    address: Optional[str] = typer.Option(
        None, "--address", help="ray: the cluster (auto, HOST:PORT, ray://HOST:PORT); default: a Ray embedded here"
    ),
    cpus_per_run: Optional[float] = typer.Option(
        None, "--cpus-per-run", help="CPUs (torch threads) per run; ray default 1, local: the cores / --parallel"
    ),
    gpus_per_run: Optional[str] = typer.Option(
        None, "--gpus-per-run", help="ray: GPU share per run (0.25 or 1/4 packs 4 runs on a GPU); default 1 on a GPU"
    ),
    retries: Optional[int] = typer.Option(None, "--retries", help="ray: attempts after a crashed one (default 2)"),
    shared_fs: Optional[bool] = typer.Option(
        None,
        "--shared-fs/--no-shared-fs",
        help="ray: whether workers see --out (default: each run checks; without it runs are sent back)",
    ),
    out: Path = typer.Option(Path("studies"), "--out", help="parent directory of the study directory"),
    gpu: bool = typer.Option(False, "--gpu", help="train on the CUDA GPU"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    attribute: bool = typer.Option(True, "--attribute/--no-attribute", help="attribute every reuse run"),
    samples: int = typer.Option(1000, "--samples", help="test images per attribution"),
    settings: dict = None,
):
    """Train every variant × seed (× factor levels), resuming an interrupted study; attribute, compare."""
    from normscope.study import StudyRequest, execute_study, parse_factors  # torch: only this command imports it
    from normscope.train.settings import pick_device  # (as above)

    if gpu:
        device = "cuda"
    if device != "auto":
        pick_device(device)  # no CUDA here: refused before a study directory is written
    chosen = _engine(engine, parallel, address, cpus_per_run, gpus_per_run, retries, shared_fs, device)
    base = variant_of(file, sets=sets, norm_option=norm_option)
    request = StudyRequest(
        description=file,
        variants=variants,
        seeds=seeds,
        settings=settings,
        overrides=base.overrides,
        factors=parse_factors(factor),
        test_subset=test_subset,
        data_dir=data_dir,
        out=out,
        device=device,
        attribute=attribute,
        attribute_samples=samples,
    )
    print_description_diagnostics(base, variants=variants)
    study_dir = execute_study(
        request,
        chosen,
        log=lambda line: console.print(line, soft_wrap=True, highlight=False),  # a line per event, never wrapped
        console=console,
    )
    lost = _print_runs(study_dir)
    echo((study_dir / "table.md").read_text())
    echo(f"study directory: {study_dir}  (normscope compare {study_dir})")
    if lost:
        fail(f"{lost} run(s) did not finish (see the table above); run the same command again to continue them", 1)


def _engine(engine, parallel, address, cpus_per_run, gpus_per_run, retries, shared_fs, device):
    """The engine the options choose; Ray's options with the local engine (and --parallel with Ray) refused."""
    from normscope.study import LocalEngine, RayEngine, RayOptions, StudyError, parse_gpus  # torch, as above

    ray_only = {"--address": address, "--gpus-per-run": gpus_per_run, "--retries": retries, "--shared-fs": shared_fs}
    if engine not in ("local", "ray"):
        raise StudyError(f"--engine: unknown {engine!r} (choose from local, ray)")
    if cpus_per_run is not None and not (math.isfinite(cpus_per_run) and cpus_per_run > 0):
        raise StudyError(f"--cpus-per-run must be a positive number, got {cpus_per_run}")
    if engine == "local":
        given = [k for k, v in ray_only.items() if v is not None]
        if given:
            raise StudyError(f"{', '.join(given)}: only with --engine ray")
        if cpus_per_run is not None and not float(cpus_per_run).is_integer():
            raise StudyError(f"--cpus-per-run {cpus_per_run:g}: the local engine gives whole threads")
        return LocalEngine(_parallel(parallel), None if cpus_per_run is None else int(cpus_per_run))
    if parallel != "1":
        raise StudyError(
            "--parallel is for --engine local; Ray runs as many at once as --cpus-per-run/--gpus-per-run fit"
        )
    options = RayOptions(
        address=address,
        cpus_per_run=1.0 if cpus_per_run is None else cpus_per_run,
        gpus_per_run=parse_gpus(gpus_per_run),
        retries=2 if retries is None else retries,
        shared_fs=shared_fs,
    )
    return RayEngine(options, device)


def _parallel(text: str) -> int | str:
    from normscope.study import StudyError  # torch, as above

    if text.strip() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise StudyError(f"--parallel must be a positive integer or auto, got {text!r}") from None


def _print_runs(study_dir: Path) -> int:
    """The runs this call ran (result, where, attempts, time, message); returns how many ended
    without a result (crashed or lost, not diverged: a diverged run has its results.json)."""
    from normscope.study import STUDY  # torch: only this command imports it
    from normscope.train import runs  # torch, as above

    entries = [e for e in runs.read_json(study_dir / STUDY)["runs"] if "result" in e]
    if not entries:
        return 0
    table = Table(title="runs of this call", title_justify="left")
    for col in ("run", "result", "where", "attempts", "seconds", "message"):
        table.add_column(col)
    for e in entries:
        style = "green" if e["result"] == "completed" else "bold red"
        seconds = "" if e.get("seconds") is None else f"{e['seconds']:.0f}"
        table.add_row(
            Path(e["run_dir"]).name,
            f"[{style}]{e['result']}[/]",
            e.get("where", ""),
            str(e.get("attempts", "")),
            seconds,
            e.get("message", ""),
        )
    console.print(table)
    return sum(1 for e in entries if e["result"] == "failed" and e["state"] != "failed")


def register(app: typer.Typer) -> None:
    app.command()(study)
