"""Is the process that owns a `running` row still there? (host + PID + heartbeat, migration m004.)

On the same host the PID answers it. On another host only the heartbeat can: a run that has
stored nothing for `STALE_AFTER_S` is taken for dead. Rows from before m004 (no PID) stay
`running`, since nothing says otherwise.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime, timedelta
from typing import Any

STALE_AFTER_S = float(os.environ.get("TUNEGATE_HEARTBEAT_STALE_S", 1800))
"""Seconds without a stored batch after which another host's run counts as dead."""


def this_host() -> str:
    return platform.node()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True


def is_dead(status: str, host: str | None, pid: int | None, heartbeat_at: Any) -> bool:
    """True for a `running` row whose owning process is gone."""
    if status != "running" or pid is None:
        return False
    if host == this_host():
        return not pid_alive(pid)
    if isinstance(heartbeat_at, datetime):
        return utc_now() - heartbeat_at > timedelta(seconds=STALE_AFTER_S)
    return False


def utc_now() -> datetime:
    """Heartbeats are naive UTC, written by Python: hosts in other time zones compare right."""
    return datetime.now(UTC).replace(tzinfo=None)


def shown_status(status: str, host: str | None, pid: int | None, heartbeat_at: Any, run_id: str) -> str:
    """The status as `runs`/`show` print it: `dead (resume with …)` for a run nobody is running."""
    if is_dead(status, host, pid, heartbeat_at):
        return f"dead (resume with tunegate run --resume {run_id})"
    return status
