"""Whole studies: every variant of a description × several seeds, then a comparison.

A study directory:

    <out>/<family>-<data>/
      study.json        the plan (description, variants, seeds, settings) and each run's state
      runs/<variant name>-s<seed>/   one run directory per (variant, seed) (see normscope.train.runs)
      table.md, table.csv, paired.md, chart.png   written by `compare`

Interrupted studies resume: finished runs are kept, unfinished ones continue from their
last checkpoint, missing ones start.

Modules: `plan` (variants, the (variant, seed) jobs, run states), `execute` (run_study and
the per-run function `train_one`), `compare` (collect, aggregate, paired), `tables` (the
written comparison), `thesis` (the thesis' reference numbers).
"""

from normscope.study.compare import METRICS, aggregate, collect, paired
from normscope.study.execute import run_local, run_study, train_one
from normscope.study.plan import STUDY, StudyError, make_jobs, parse_variants, run_state
from normscope.study.tables import LABELS, bar_chart, paired_markdown, table_markdown, write_comparison, write_csv
from normscope.study.thesis import THESIS, THESIS_METRICS

__all__ = [
    "LABELS",
    "METRICS",
    "STUDY",
    "THESIS",
    "THESIS_METRICS",
    "StudyError",
    "aggregate",
    "bar_chart",
    "collect",
    "make_jobs",
    "paired",
    "paired_markdown",
    "parse_variants",
    "run_local",
    "run_state",
    "run_study",
    "table_markdown",
    "train_one",
    "write_comparison",
    "write_csv",
]
