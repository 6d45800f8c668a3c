"""Dead or alive: a `running` row's owner, by PID on this host and by heartbeat elsewhere (#14)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from harness.store import Store
from harness.store.liveness import STALE_AFTER_S, is_dead, shown_status, this_host, utc_now
from harness.store.training import get_training_run, mark_dead_training_runs, start_training_run


def _gone_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_same_host_is_decided_by_the_pid_and_another_host_by_the_heartbeat():
    now = utc_now()
    assert not is_dead("running", this_host(), os.getpid(), now)
    assert is_dead("running", this_host(), _gone_pid(), now)  # a fresh heartbeat does not save it
    assert not is_dead("completed", this_host(), _gone_pid(), now)  # only running rows can be dead
    assert not is_dead("running", this_host(), None, now)  # rows from before m004: nothing says so
    other = "another-host-" + this_host()
    fresh, stale = now - timedelta(seconds=5), now - timedelta(seconds=STALE_AFTER_S + 60)
    assert not is_dead("running", other, 1, fresh)
    assert is_dead("running", other, 1, stale)
    assert not is_dead("running", other, 1, None)
    assert shown_status("running", other, 1, stale, "r-1") == "dead (resume with tunegate run --resume r-1)"
    assert shown_status("running", other, 1, fresh, "r-1") == "running"


def test_a_training_run_whose_process_died_is_marked_failed_saying_so(tmp_path):
    with Store(tmp_path / "t.duckdb") as store:
        common = dict(kind="sft", name=None, parent_model_id="m-base", config={}, dataset_hash="d",
                      dataset={}, seed=1, versions={}, git_sha=None, host=this_host())  # fmt: skip
        start_training_run(store, "t-dead", **common)
        start_training_run(store, "t-alive", **common)
        store.db.execute("UPDATE training_runs SET pid = ? WHERE training_run_id = 't-dead'", [_gone_pid()])
        assert mark_dead_training_runs(store) == ["t-dead"]
        dead, alive = get_training_run(store, "t-dead"), get_training_run(store, "t-alive")
        assert dead.status == "failed" and "ended without finishing" in (dead.error or "")
        assert alive.status == "running"  # this process owns it and is alive
        assert mark_dead_training_runs(store) == []  # marked once
