"""Worker processes die with the study that started them.

A pool worker of `study --parallel N` killed outright (SIGKILL, the OOM killer) would be
re-parented to init and go on training, holding its run's lock, so a re-run fails on that
run. `die_with_parent` (the pool's and the manager's initializer) asks Linux to send the
worker SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG), and, on every system, starts
a watchdog thread that ends the worker once its parent's pid is no longer its parent's.
`stop_workers` ends the workers of a pool the driver leaves early (Ctrl-C, SIGTERM): each
gets SIGTERM, so its run records `interrupted`, then SIGKILL if it has not gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 1.0
STOP_SECONDS = 60.0


def _parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no libc to ask: the watchdog alone
        pass


def _watch(parent: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent: int) -> None:
    """In a worker: end this process when ``parent`` (the driver's pid) dies."""
    _parent_death_signal()
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch, args=(parent,), name="normscope-orphan-watch", daemon=True).start()


def stop_workers(processes, seconds: float = STOP_SECONDS) -> None:
    """SIGTERM to each live process (its run writes `interrupted` and it exits), SIGKILL to
    those still there after ``seconds``."""
    live = [p for p in processes if p.is_alive()]
    for p in live:
        p.terminate()
    deadline = time.monotonic() + seconds
    for p in live:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(5)
