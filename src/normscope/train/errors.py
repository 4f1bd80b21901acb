"""The trainer's errors (user errors: the CLI prints them without a traceback), and the
signals that interrupt a run (Ctrl-C, SIGTERM), deferred while a checkpoint is written."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

from normscope.errors import NormscopeError
from normscope.rundir.errors import RunBusy, RunError

__all__ = ["RunError", "RunBusy", "RunInterrupted", "TrainingFailed", "interrupt_signals", "interrupts_deferred"]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run: results.json says ``interrupted`` and the message
    names the command that continues it."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        super().__init__(f"interrupted; continue with: normscope train --resume {self.run_dir}")


class TrainingFailed(NormscopeError):
    """The run stopped (NaN/inf loss). ``run_dir`` holds the last good checkpoint and a
    results.json with status ``failed``."""

    def __init__(self, message: str, run_dir: Path | None = None):
        super().__init__(message)
        self.run_dir = run_dir


_deferred = {"depth": 0, "pending": []}  # inside interrupts_deferred(): the signals that came


@contextlib.contextmanager
def interrupt_signals():
    """SIGTERM (kill, a scheduler's stop) ends a run as Ctrl-C (SIGINT) does: a
    KeyboardInterrupt, so the run says ``interrupted`` and names the command that continues
    it; inside :func:`interrupts_deferred` either waits for the block's end. (Signal handlers
    belong to the main thread: elsewhere nothing changes.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        if _deferred["depth"]:
            _deferred["pending"].append(signum)
            return
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C or SIGTERM during the block (the checkpoint files being written) stops the run
    once the block is done, not inside it: the files of one epoch stay consistent."""
    _deferred["depth"] += 1
    pending = []
    try:
        yield
    finally:
        _deferred["depth"] -= 1
        if not _deferred["depth"]:  # (an error leaving the block stops the run by itself)
            pending = list(_deferred["pending"])
            _deferred["pending"].clear()
    if pending:
        raise KeyboardInterrupt(f"signal {pending[0]}")
