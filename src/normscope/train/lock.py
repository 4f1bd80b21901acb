"""The run directory's lock lives in normscope.rundir.lock (torch-free); kept here for imports."""

from normscope.rundir.lock import LOCK, RunLock, acquire, busy_message, owner

__all__ = ["LOCK", "RunLock", "acquire", "owner", "busy_message"]
