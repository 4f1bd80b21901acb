"""Whole studies: every variant of a description × several seeds, then a comparison.

A study directory:

    <out>/<family>-<data>/
      study.json        the plan (description, variants, seeds, settings) and each run"s state
      .normscope-engine a token the Ray engine writes: a worker that reads it shares the filesystem
      runs/<variant name>-s<seed>/   one run directory per (variant, seed) (see normscope.train.runs)
      table.md/.tex/.csv, paired.md/.tex, reliance.md, chart.png, comparison.json   written by `compare`

Interrupted studies resume: finished runs are kept, unfinished ones continue from their
last checkpoint, missing ones start.

Modules: `plan` (variants, the (variant, seed) jobs, run states), `worker` (the per-run
function `train_one` every engine calls), `execute` (run_study and the local engine),
`ray_engine` (the Ray engine: tasks, retries, runs sent back without a shared filesystem),
`transfer` (packing and atomically installing a run directory), `progress` (the driver"s
display of the runs), `compare` (collect, aggregate, provenance checks), `stats`
(the paired claims and the reliance over seeds), `formats`, `latex` and `tables` (the
written comparison), `thesis` (the thesis" reference numbers).

The names below load on first use (PEP 562), so importing one of the package's
modules does not import every other one (and torch with them)."""

from __future__ import annotations

import importlib

# name -> (module, attribute); attribute None: the module itself
_EXPORTS = {
    "METRICS": ("normscope.study.compare", "METRICS"),
    "aggregate": ("normscope.study.compare", "aggregate"),
    "collect": ("normscope.study.compare", "collect"),
    "description_warnings": ("normscope.study.compare", "description_warnings"),
    "unfinished": ("normscope.study.compare", "unfinished"),
    "ENGINES": ("normscope.study.execute", "ENGINES"),
    "run_local": ("normscope.study.execute", "run_local"),
    "run_study": ("normscope.study.execute", "run_study"),
    "LABELS": ("normscope.study.formats", "LABELS"),
    "paired_latex": ("normscope.study.latex", "paired_latex"),
    "table_latex": ("normscope.study.latex", "table_latex"),
    "STUDY": ("normscope.study.plan", "STUDY"),
    "StudyError": ("normscope.study.plan", "StudyError"),
    "make_jobs": ("normscope.study.plan", "make_jobs"),
    "parse_variants": ("normscope.study.plan", "parse_variants"),
    "run_state": ("normscope.study.plan", "run_state"),
    "RAY_MISSING": ("normscope.study.ray_engine", "RAY_MISSING"),
    "RayOptions": ("normscope.study.ray_engine", "RayOptions"),
    "parse_gpus": ("normscope.study.ray_engine", "parse_gpus"),
    "require_ray": ("normscope.study.ray_engine", "require_ray"),
    "VERDICTS": ("normscope.study.stats", "VERDICTS"),
    "claims": ("normscope.study.stats", "claims"),
    "holm": ("normscope.study.stats", "holm"),
    "paired_test": ("normscope.study.stats", "paired_test"),
    "stats_share": ("normscope.study.stats", "stats_share"),
    "FILES": ("normscope.study.tables", "FILES"),
    "bar_chart": ("normscope.study.tables", "bar_chart"),
    "paired_markdown": ("normscope.study.tables", "paired_markdown"),
    "reliance_markdown": ("normscope.study.tables", "reliance_markdown"),
    "table_markdown": ("normscope.study.tables", "table_markdown"),
    "write_comparison": ("normscope.study.tables", "write_comparison"),
    "write_csv": ("normscope.study.tables", "write_csv"),
    "THESIS": ("normscope.study.thesis", "THESIS"),
    "THESIS_METRICS": ("normscope.study.thesis", "THESIS_METRICS"),
    "train_one": ("normscope.study.worker", "train_one"),
}

__all__ = [
    "ENGINES",
    "RAY_MISSING",
    "RayOptions",
    "FILES",
    "LABELS",
    "METRICS",
    "STUDY",
    "THESIS",
    "THESIS_METRICS",
    "VERDICTS",
    "StudyError",
    "aggregate",
    "bar_chart",
    "claims",
    "collect",
    "unfinished",
    "description_warnings",
    "holm",
    "make_jobs",
    "paired_latex",
    "paired_markdown",
    "paired_test",
    "parse_gpus",
    "parse_variants",
    "require_ray",
    "reliance_markdown",
    "run_local",
    "run_state",
    "run_study",
    "stats_share",
    "table_latex",
    "table_markdown",
    "train_one",
    "write_comparison",
    "write_csv",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = importlib.import_module(module)
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
