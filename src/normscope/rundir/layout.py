"""The files of a run directory (see :mod:`normscope.train.runs`) and what to do when one
of them is damaged. Torch-free: `compare` and the study's planning read run directories too."""

from __future__ import annotations

from pathlib import Path

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
    "ATTRIBUTION_JSON",
    "RERUN",
    "advice",
]

CONFIG = "config.json"
RERUN = "the run directory is damaged: re-run the training"
ATTRIBUTION_JSON = "attribution.json"
DESCRIPTION = "description.yml"
ENV = "env.json"
METRICS = "metrics.csv"
LAST = "last.pt"
BEST = "best.pt"
RESULTS = "results.json"
PER_CLASS = "per_class.csv"
CONFUSION = "confusion_matrix.csv"
CURVES = "curves.png"
CONFUSION_PNG = "confusion.png"
WEIGHTS = "weights.json"  # what a new run's pretrained weights loaded and left random


def advice(path: Path) -> str:
    """What to do about a damaged file of a run directory."""
    path = Path(path)
    if path.name in (ENV, WEIGHTS):
        return "it only records the environment: delete it or re-run the training"
    if path.name == BEST and (path.parent / LAST).is_file():
        return f"use {LAST} (--checkpoint last) or re-run the training"
    if path.name in (RESULTS, METRICS) and (path.parent / LAST).is_file():
        return f"write it again from {LAST} with: normscope train --resume {path.parent}"
    return RERUN
