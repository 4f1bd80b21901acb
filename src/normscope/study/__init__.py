"""Whole studies: every variant of a description × several seeds, then a comparison.

A study directory:

    <out>/<family>-<data>/
      study.json        the plan (description, variants, seeds, settings) and each run's state
      .normscope-engine a token the Ray engine writes: a worker that reads it shares the filesystem
      runs/<variant name>-s<seed>/   one run directory per (variant, seed) (see normscope.train.runs)
      table.md/.tex/.csv, paired.md/.tex, reliance.md, chart.png, comparison.json   written by `compare`

Interrupted studies resume: finished runs are kept, unfinished ones continue from their
last checkpoint, missing ones start.

Modules: `plan` (variants, the (variant, seed) jobs, run states), `worker` (the per-run
function `train_one` every engine calls), `execute` (run_study and the local engine),
`ray_engine` (the Ray engine: tasks, retries, runs sent back without a shared filesystem),
`transfer` (packing and atomically installing a run directory), `progress` (the driver's
display of the runs), `compare` (collect, aggregate, provenance checks), `stats`
(the paired claims and the reliance over seeds), `formats`, `latex` and `tables` (the
written comparison), `thesis` (the thesis' reference numbers).
"""

from normscope.study.compare import METRICS, aggregate, collect, description_warnings, linked_runs, unfinished
from normscope.study.execute import ENGINES, run_local, run_study
from normscope.study.formats import LABELS
from normscope.study.latex import paired_latex, table_latex
from normscope.study.plan import STUDY, StudyError, make_jobs, parse_variants, run_state
from normscope.study.ray_engine import RAY_MISSING, RayOptions, parse_gpus, require_ray
from normscope.study.stats import VERDICTS, claims, holm, paired_test, stats_share
from normscope.study.tables import (
    FILES,
    bar_chart,
    paired_markdown,
    reliance_markdown,
    table_markdown,
    write_comparison,
    write_csv,
)
from normscope.study.thesis import THESIS, THESIS_METRICS
from normscope.study.worker import train_one

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
    "linked_runs",
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
