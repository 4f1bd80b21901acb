"""Engines: how a study's jobs run. One interface, :class:`Engine`: ``check`` (before anything
is written), ``settle`` (choices that depend on the jobs and the model), ``describe`` (for the
log and study.json) and ``run``.

- :class:`LocalEngine`: this machine's processes, ``parallel`` at a time (``auto``: as many as
  its cores and memory hold for this model, :func:`auto_parallel`);
- :class:`RayEngine`: one Ray task per run, on a cluster or embedded here (`ray_engine`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from normscope.study.plan import Job, StudyError
from normscope.study.progress import Board
from normscope.study.ray_engine import RayOptions, check_options, require_ray, run_ray

__all__ = ["Engine", "LocalEngine", "RayEngine", "auto_parallel", "available_memory", "MAX_PARALLEL"]

# a process of its own per run: torch, the data and the model; measured about 1 GB on the CPU
PROCESS_BYTES = 1_000_000_000
MAX_PARALLEL = 64  # more processes than this at once is never what a user meant


class Engine:
    """Runs a study's jobs; every engine calls the same per-run function (worker.train_one)."""

    name = "engine"

    def check(self) -> None:
        """Refuse what is wrong before anything is written."""

    def settle(self, todo: list[Job], params: int) -> None:
        """Choices that depend on the jobs and the model's size (``params`` weights)."""

    def describe(self) -> str:
        """What study.json records of the engine."""
        raise NotImplementedError

    def how(self) -> str:
        """How the runs go, for the log: "2 at a time", "on Ray"."""
        raise NotImplementedError

    def run(self, todo: list[Job], study_dir: Path, board: Board) -> list[dict]:
        raise NotImplementedError


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux /proc/meminfo), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_parallel(runs: int, params: int, cores: int | None = None, memory: int | None = None) -> int:
    """How many runs share this machine: one per core (a run trains best on one thread of
    its own on a CPU), no more than memory holds at a process plus 16 bytes a weight (the
    weights, their gradients and Adam's two moments, in float32) each with a quarter of the
    memory kept free, and no more than there are runs."""
    cores = cores or cpu_count()
    memory = available_memory() if memory is None else memory
    per_run = PROCESS_BYTES + 16 * params
    fits = cores if memory is None else max(1, math.floor(0.75 * memory / per_run))
    return max(1, min(cores, fits, runs, MAX_PARALLEL))


@dataclass
class LocalEngine(Engine):
    parallel: int | str = 1  # a count, or "auto"
    threads: int | None = None  # torch threads per run (None: the cores shared out)

    name = "local"

    def check(self) -> None:
        if self.parallel != "auto":
            if isinstance(self.parallel, bool) or not isinstance(self.parallel, int) or self.parallel < 1:
                raise StudyError(f"--parallel must be a positive integer or auto, got {self.parallel!r}")
            most = min(MAX_PARALLEL, 4 * cpu_count())
            if self.parallel > most:
                raise StudyError(
                    f"--parallel {self.parallel}: at most {most} runs at once on this machine ({cpu_count()} "
                    "cores; --parallel auto chooses from the cores and the model's size)"
                )
        if self.threads is not None and not 1 <= self.threads <= 4 * cpu_count():
            raise StudyError(f"--cpus-per-run must be from 1 to {4 * cpu_count()} here, got {self.threads}")

    def settle(self, todo: list[Job], params: int) -> None:
        if self.parallel == "auto":
            self.parallel = auto_parallel(len(todo), params)
        if self.threads is None and self.parallel > 1:
            self.threads = max(1, cpu_count() // self.parallel)
        for job in todo:
            job.threads = self.threads

    def describe(self) -> str:
        return "local"

    def how(self) -> str:
        return f"{self.parallel} at a time"

    def run(self, todo: list[Job], study_dir: Path, board: Board) -> list[dict]:
        from normscope.study.local import run_local  # the process pool: only when this engine runs

        return run_local(todo, self.parallel, board)


@dataclass
class RayEngine(Engine):
    options: RayOptions
    device: str = "auto"

    name = "ray"

    def check(self) -> None:
        require_ray()
        check_options(self.options)

    def describe(self) -> str:
        return f"ray ({self.options.address or 'this machine'})"

    def how(self) -> str:
        return "on Ray"

    def run(self, todo: list[Job], study_dir: Path, board: Board) -> list[dict]:
        return run_ray([j.to_dict() for j in todo], study_dir, self.options, self.device, board)
