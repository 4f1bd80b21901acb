"""What the driver shows while a study runs: every run queued, running (where, which epoch),
done or failed, the time so far and an estimate of the time left.

On a terminal it is a live rich table; otherwise (a pipe, a log file, the tests) one line per
event: `started NAME on HOST (pid P, attempt A)`, `[k/n] NAME: completed (T s)`. The engines
feed it events ({event: started | epoch, run, ...}) and results; it also keeps, per run, what
study.json records of this call (result, where, attempts, seconds, message).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

STYLE = {"queued": "dim", "running": "cyan", "completed": "green", "failed": "bold red", "interrupted": "yellow"}


@dataclass
class RunLine:
    name: str
    status: str = "queued"  # queued | running | completed | failed | interrupted
    where: str = ""
    pid: int | None = None
    attempts: int = 0
    epoch: int = 0
    started: float | None = None
    seconds: float | None = None
    message: str = ""

    def record(self) -> dict:
        """This call's outcome, for study.json."""
        out = {
            "result": self.status,
            "where": self.where,
            "attempts": self.attempts,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
        }
        if self.message:
            out["message"] = self.message
        return out


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Board:
    """The runs of one call of a study, their state, and how they are shown."""

    def __init__(
        self, names: list[str], epochs: int | None, log: Callable[[str], object] = print, console: Console | None = None
    ):
        self.runs = {n: RunLine(n) for n in names}
        self.epochs, self.log, self.start = epochs, log, time.time()
        self.slots = 1
        self.live = (
            Live(console=console, auto_refresh=False, transient=False) if console and console.is_terminal else None
        )

    # -- events ---------------------------------------------------------------------- #

    def event(self, e: dict) -> None:
        run = self.runs.get(e.get("run"))
        if run is None or run.status in ("completed", "failed"):  # an event that arrived after the result
            return
        if e["event"] == "started":
            if run.status == "running" and run.pid is not None:
                self._line(f"{run.name}: attempt {run.attempts} on {run.where} (pid {run.pid}) was lost; retrying")
            run.status, run.where, run.pid, run.epoch = "running", e.get("where", ""), e.get("pid"), 0
            run.attempts += 1
            run.started = run.started or time.time()
            self.slots = max(self.slots, sum(r.status == "running" for r in self.runs.values()))
            self._line(f"started {run.name} on {run.where} (pid {run.pid}, attempt {run.attempts})")
        elif e["event"] == "epoch":
            run.epoch = max(run.epoch, int(e["epoch"]))
        self.refresh()

    def finished(self, name: str, result: dict) -> None:
        run = self.runs[name]
        run.status = "completed" if result["status"] == "completed" else "failed"
        run.message = result.get("message", "") or ""
        run.where = run.where or result.get("where", "")
        run.attempts = max(run.attempts, 1)
        run.seconds = time.time() - (run.started or self.start)
        done = sum(r.status in ("completed", "failed") for r in self.runs.values())
        note = f": {run.message}" if run.message else ""
        self._line(f"[{done}/{len(self.runs)}] {name}: {run.status} ({time.time() - self.start:.0f} s){note}")
        self.refresh()

    def _line(self, text: str) -> None:
        """An event line: shown when there is no live table (which shows the same)."""
        if self.live is None:
            self.log(text)

    def note(self, text: str) -> None:
        """A line shown either way (above the live table on a terminal)."""
        if self.live is None:
            self.log(text)
        else:
            self.live.console.print(text, highlight=False)

    # -- estimate ---------------------------------------------------------------------- #

    def eta(self) -> float | None:
        """Seconds left: each run's time is the mean of the finished ones (or, before any
        finished, extrapolated from the epochs of the running ones), spread over as many
        slots as ran at once."""
        now = time.time()
        done = [r.seconds for r in self.runs.values() if r.status == "completed" and r.seconds]
        running = [r for r in self.runs.values() if r.status == "running"]
        queued = sum(r.status == "queued" for r in self.runs.values())
        if done:
            per_run = sum(done) / len(done)
        else:
            guesses = [(now - r.started) * self.epochs / r.epoch for r in running if r.epoch and self.epochs]
            if not guesses:
                return None
            per_run = sum(guesses) / len(guesses)
        left = queued * per_run + sum(max(0.0, per_run - (now - (r.started or now))) for r in running)
        return left / max(1, self.slots)

    # -- display ----------------------------------------------------------------------- #

    def counts(self) -> dict:
        out = {k: 0 for k in STYLE}
        for r in self.runs.values():
            out[r.status] += 1
        return out

    def render(self) -> Group:
        c = self.counts()
        head = Text.assemble(
            *[(f"{c[k]} {k}  ", STYLE[k]) for k in STYLE],
            f"elapsed {_clock(time.time() - self.start)}  ETA {_clock(self.eta())}",
        )
        table = Table(box=None, pad_edge=False)
        for col in ("run", "state", "where", "epoch", "time", "note"):
            table.add_column(col)
        order = {"running": 0, "failed": 1, "interrupted": 1, "queued": 2, "completed": 3}
        for r in sorted(self.runs.values(), key=lambda r: order[r.status]):
            shown = r.seconds if r.seconds is not None else (time.time() - r.started if r.started else None)
            epoch = f"{r.epoch}/{self.epochs}" if self.epochs and r.status == "running" else ""
            where = f"{r.where} (pid {r.pid})" if r.status == "running" and r.pid else r.where
            attempt = f"attempt {r.attempts}" if r.attempts > 1 else ""
            table.add_row(
                r.name, Text(r.status, STYLE[r.status]), where, epoch, _clock(shown), r.message[:80] or attempt
            )
        return Group(head, table)

    def interrupted(self) -> None:
        """The call was stopped (Ctrl-C, SIGTERM): its running runs are `interrupted`."""
        for run in self.runs.values():
            if run.status == "running":
                run.status = "interrupted"
                if run.started is not None:
                    run.seconds = time.time() - run.started

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render(), refresh=True)

    def __enter__(self) -> Board:
        if self.live is not None:
            self.live.start()
            self.refresh()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.refresh()
            self.live.stop()
