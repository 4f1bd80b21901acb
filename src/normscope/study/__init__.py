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
written comparison), `thesis` (the thesis' reference numbers), `factors` (cells and the
contrasts between a factor's levels), `engines` (local and Ray, one interface).

The names below load on first use (PEP 562): importing the package loads no torch.
"""

from normscope.lazy import lazy_exports

# names -> their module: importing normscope.study loads nothing (no torch) until a name is used
_WHERE = {
    "ENGINES": "execute",
    "Engine": "engines",
    "FILES": "tables",
    "Factor": "plan",
    "Job": "plan",
    "LABELS": "formats",
    "LocalEngine": "engines",
    "METRICS": "compare",
    "RAY_MISSING": "ray_engine",
    "RayEngine": "engines",
    "RayOptions": "ray_engine",
    "STUDY": "plan",
    "StudyError": "plan",
    "StudyRequest": "execute",
    "THESIS": "thesis",
    "THESIS_METRICS": "thesis",
    "VERDICTS": "stats",
    "aggregate": "compare",
    "auto_parallel": "engines",
    "bar_chart": "tables",
    "claims": "stats",
    "collect": "compare",
    "description_warnings": "compare",
    "execute_study": "execute",
    "holm": "stats",
    "linked_runs": "compare",
    "make_jobs": "plan",
    "paired_latex": "latex",
    "paired_markdown": "tables",
    "paired_test": "stats",
    "parse_factors": "plan",
    "parse_gpus": "ray_engine",
    "parse_variants": "plan",
    "reliance_markdown": "tables",
    "require_ray": "ray_engine",
    "run_local": "execute",
    "run_state": "plan",
    "run_study": "execute",
    "stats_share": "stats",
    "table_latex": "latex",
    "table_markdown": "tables",
    "train_one": "worker",
    "unfinished": "compare",
    "write_comparison": "tables",
    "write_csv": "tables",
}


__getattr__, __dir__ = lazy_exports(
    __name__, {name: (f"normscope.study.{module}", name) for name, module in _WHERE.items()}
)

__all__ = [
    "ENGINES",
    "Engine",
    "Factor",
    "Job",
    "LocalEngine",
    "RayEngine",
    "StudyRequest",
    "auto_parallel",
    "execute_study",
    "parse_factors",
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
    "linked_runs",
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
