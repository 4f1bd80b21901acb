"""Run directories without torch: their files (layout), JSON, lock, status and names.

`compare`, the study's planning and everything else that only reads what a run wrote use
this package; normscope.train.runs adds what needs torch (checkpoints, models, data).
"""

from normscope.rundir import lock
from normscope.rundir.dirs import check_out_dir, effective_status, safe_name
from normscope.rundir.errors import RunBusy, RunError
from normscope.rundir.jsonfile import read_json, read_object, write_json, write_text
from normscope.rundir.layout import (
    ATTRIBUTION_JSON,
    BEST,
    CONFIG,
    CONFUSION,
    CURVES,
    DESCRIPTION,
    ENV,
    LAST,
    METRICS,
    PER_CLASS,
    RERUN,
    RESULTS,
    WEIGHTS,
    advice,
)

__all__ = [
    "ATTRIBUTION_JSON",
    "BEST",
    "CONFIG",
    "CONFUSION",
    "CURVES",
    "DESCRIPTION",
    "ENV",
    "LAST",
    "METRICS",
    "PER_CLASS",
    "RERUN",
    "RESULTS",
    "WEIGHTS",
    "RunBusy",
    "RunError",
    "advice",
    "check_out_dir",
    "effective_status",
    "lock",
    "read_json",
    "read_object",
    "safe_name",
    "write_json",
    "write_text",
]
