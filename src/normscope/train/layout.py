"""The files of a run directory: normscope.rundir.layout (torch-free); kept here for imports."""

from normscope.rundir.layout import (
    BEST,
    CONFIG,
    CONFUSION,
    CONFUSION_PNG,
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
    "DESCRIPTION",
    "CONFIG",
    "ENV",
    "METRICS",
    "LAST",
    "BEST",
    "RESULTS",
    "PER_CLASS",
    "CONFUSION",
    "CURVES",
    "CONFUSION_PNG",
    "WEIGHTS",
    "RERUN",
    "advice",
]
