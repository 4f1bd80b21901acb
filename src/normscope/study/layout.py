"""The files of a study directory (see :mod:`normscope.study`): names only, no torch, so the
commands that read a study (report) need not import the trainer."""

from __future__ import annotations

STUDY = "study.json"
RUNS = "runs"
COMPARISON = "comparison.json"
CHART = "chart.png"
