"""`tunegate run --ray ADDRESS --shards N`: the `--shard K/N` runs as Ray tasks, joined by `db merge`.

Ray schedules, places and retries; tunegate adds no scheduler of its own. Each task runs the real
`tunegate run … --shard K/N` as a child process of its Ray worker, into its own store in
`DB.shards/` (DuckDB allows one writer per file), its output appended to a log beside it:
- a child process is the code path users run themselves; it frees the model's (GPU) memory when
  the shard ends, though Ray reuses the worker; and one log per shard holds every attempt;
- a retry (Ray's, after a crashed worker or child, or a rerun of the same command) resumes the
  shard store: runs left unfinished continue with `run --resume`, suites not started yet are run,
  finished ones are left alone, so no example is computed or stored twice;
- when every shard has finished, `db merge` joins the shard stores into the target store and the
  folder is removed; after a failure it stays, for inspection and for the rerun that resumes it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from harness.errors import UserError

log = logging.getLogger(__name__)

MAX_RETRIES = 3
"""Retries of a shard after its worker or its `tunegate run` crashed (Ray's default for tasks)."""
KILL_ENV = "TUNEGATE_TEST_KILL_SHARD"
"""Test hook, read by the driver: K makes shard K's first attempt kill its `tunegate run` and then
its own Ray worker outright (SIGKILL, os._exit) once the first batch is stored: a real crash."""
_STORED = re.compile(r": \d+/\d+ stored \(")  # `run --progress` off a terminal: one line per batch
_ATTEMPT = "== attempt "


class ShardCrashed(Exception):
    """A shard's `tunegate run` failed or died: Ray retries the task, which resumes the shard store."""


class ShardRefused(Exception):
    """A shard's `tunegate run` refused its input (exit 2): a retry would be refused the same way."""


class ShardsFailed(Exception):
    """Shards still failed after Ray's retries; their stores are kept for the rerun that resumes them."""


@dataclass(frozen=True)
class ShardJob:
    """One shard, as plain data for a Ray worker."""

    k: int
    n: int
    model: str
    suites: tuple[str, ...]
    run_args: tuple[str, ...]
    """Options of a fresh run (--limit, --metric, …); a resumed run has them in its store."""
    shared_args: tuple[str, ...]
    """Options of every run, fresh or resumed (--seed, --batch-size, …)."""
    store: str
    log: str
    cwd: str
    """The driver's working directory: relative paths in the arguments mean the same there."""
    kill_after_first_batch: bool = False


@dataclass(frozen=True)
class ShardDone:
    """A finished shard."""

    k: int
    attempts: int
    """Attempts its log records, Ray's retries and earlier reruns of the command included."""
    seconds: float
    """Wall time of the attempt that finished it."""
    resumed: tuple[str, ...] = ()
    """Runs of the shard store that attempt continued (`run --resume`) rather than started."""


@dataclass
class ShardsOutcome:
    """What `run_shards` did."""

    shards: list[ShardDone]
    merged_runs: list[tuple[str, list[str]]]
    """(run id in the target store, the shard run ids it was made of), as `db merge` reports them."""
    ray_start_s: float
    """Seconds `ray.init` took (starting a local cluster, or connecting to one)."""
    num_gpus: int
    """GPUs each task asked for."""
    folder: Path
    """Where the shard stores were (removed once merged)."""


def shards_folder(db: Path) -> Path:
    """Where the shard stores and logs of a sharded run into `db` live: next to it."""
    return db.with_name(db.name + ".shards")


def run_shards(
    address: str,
    n: int,
    db: Path,
    model: str,
    suites: Sequence[str],
    *,
    run_args: Sequence[str] = (),
    shared_args: Sequence[str] = (),
    local_model: bool = True,
    on_done: Callable[[ShardDone], None] | None = None,
) -> ShardsOutcome:
    """Run the N shards of `model` × `suites` as Ray tasks, then merge them into `db`.

    `address`: `local` starts a Ray cluster on this machine, `auto` or an address connects to one
    (within an initialised Ray session, that one is used). `local_model`: the model runs in the
    task's process, so each task asks for a GPU when the cluster has any.
    """
    ray = import_ray()
    folder = shards_folder(db)
    jobs = _plan(folder, n, db, model, suites, tuple(run_args), tuple(shared_args))
    try:
        t0 = time.monotonic()
        own = not ray.is_initialized()
        if own:
            _init(ray, address)
        ray_start_s = time.monotonic() - t0
        try:
            gpus = 1 if local_model and ray.cluster_resources().get("GPU", 0) >= 1 else 0
            done, failures = _run_all(ray, jobs, gpus, on_done)
        finally:
            if own:
                ray.shutdown()
        if failures:
            _fail(folder, failures)
        from harness.store.merge import merge_stores

        report = merge_stores(db, [Path(j.store) for j in jobs])
    except BaseException:
        if not any(folder.glob("*.duckdb")):  # nothing to resume: the next command may differ
            _remove(folder)
        raise
    _remove(folder)
    return ShardsOutcome(sorted(done, key=lambda d: d.k), report.merged_runs, ray_start_s, gpus, folder)


def _run_all(
    ray: Any, jobs: list[ShardJob], gpus: int, on_done: Callable[[ShardDone], None] | None
) -> tuple[list[ShardDone], list[tuple[ShardJob, str, bool]]]:
    """Submit every shard, wait for all: (finished, [(job, why, refused)] for the failed)."""
    task = ray.remote(run_shard)
    retried = {"num_gpus": gpus, "max_retries": MAX_RETRIES, "retry_exceptions": [ShardCrashed]}
    refs = {task.options(name=f"tunegate shard {j.k}/{j.n}", **retried).remote(j): j for j in jobs}
    pending = list(refs)
    done: list[ShardDone] = []
    failures: list[tuple[ShardJob, str, bool]] = []
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            job = refs[ready[0]]
            try:
                result = ray.get(ready[0])
            except ShardRefused as e:
                failures.append((job, _cause(e), True))
            except ray.exceptions.RayError as e:
                failures.append((job, _cause(e), False))
            else:
                done.append(result)
                if on_done:
                    on_done(result)
    except BaseException:  # Ctrl-C: stop the shards still running; their stores stay resumable
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return done, failures


def import_ray() -> Any:
    """The `ray` module, imported only when --ray is given; missing, a user error naming the extra."""
    try:
        return importlib.import_module("ray")
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "ray":
            raise
        raise UserError(
            "ray is not installed (needed for --ray: shards as Ray tasks): pip install 'tunegate[ray]'"
        ) from None


def run_shard(job: ShardJob) -> ShardDone:
    """One attempt at shard K, in a Ray worker: resume what its store holds, run what it lacks."""
    t0 = time.monotonic()
    first = not Path(job.store).exists()
    steps = _steps(job)
    attempt = _attempts(job.log) + 1
    with open(job.log, "a", encoding="utf-8") as out:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        where = f"on {platform.node()}, pid {os.getpid()}, {stamp}"
        out.write(f"{_ATTEMPT}{attempt} of shard {job.k}/{job.n} {where}\n")
        if not steps:
            out.write("every run of this shard is complete\n")
        for cmd in steps:
            _run_child(cmd, job, out, kill=job.kill_after_first_batch and first)
    resumed = tuple(cmd[cmd.index("--resume") + 1] for cmd in steps if "--resume" in cmd)
    return ShardDone(job.k, attempt, time.monotonic() - t0, resumed)


def _steps(job: ShardJob) -> list[list[str]]:
    """The `tunegate run` commands this attempt needs, from what the shard store already holds.

    One attempt makes one run per suite, in the order given, and stops at the first that fails:
    so the store's runs are those of the first suites, all complete but maybe the last.
    """
    base = [sys.executable, "-m", "tunegate", "run", "--db", job.store, "--progress", *job.shared_args]
    runs: list[dict[str, Any]] = []
    if Path(job.store).exists():
        from harness.errors import StoreLocked
        from harness.store import Store

        try:
            with Store(job.store, must_exist=True) as store:
                runs = sorted(store.list_runs(limit=len(job.suites) + 1), key=lambda r: r["started_at"])
        except StoreLocked as e:  # a process of an earlier attempt may still be on its way out
            raise ShardCrashed(str(e)) from None
        except UserError as e:  # damaged, or written by a newer tunegate
            raise ShardRefused(str(e)) from None
    if len(runs) > len(job.suites):
        raise ShardRefused(
            f"{job.store} holds {len(runs)} runs for {len(job.suites)} suites: another's store"
        )
    steps = [[*base, "--resume", r["run_id"]] for r in runs if r["status"] != "completed"]
    left = job.suites[len(runs) :]
    if left:
        suites = [a for s in left for a in ("--suite", s)]
        steps.append([*base, "--model", job.model, *suites, *job.run_args, "--shard", f"{job.k}/{job.n}"])
    return steps


def _run_child(cmd: list[str], job: ShardJob, out: IO[str], *, kill: bool) -> None:
    """Run one `tunegate run`, its output appended to the shard's log; its failure raised."""
    out.write("$ tunegate " + shlex.join(cmd[3:]) + "\n")
    out.flush()
    env = {**os.environ, "COLUMNS": "200"}  # one log line per message, not wrapped at 80
    proc = subprocess.Popen(
        cmd,
        cwd=job.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        preexec_fn=_die_with_parent(),
    )
    tail: deque[str] = deque(maxlen=20)
    assert proc.stdout is not None
    for line in proc.stdout:
        out.write(line)
        out.flush()
        tail.append(line.rstrip())
        if kill and _STORED.search(line):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            out.write(f"{KILL_ENV}: killed the run (pid {proc.pid}) and now this Ray worker\n")
            out.flush()
            os._exit(1)
    rc = proc.wait()
    if rc == 0:
        return
    errors = [t for t in tail if t.startswith("error:")]
    why = errors[-1] if errors else (" | ".join(t for t in tail if t)[-500:] or "no output")
    if rc == 2:
        raise ShardRefused(why.removeprefix("error:").strip())
    raise ShardCrashed(f"tunegate run exited with {rc}: {why}")


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: the child gets SIGKILL when its Ray worker dies, so no orphan keeps writing the shard
    store that the retry resumes. The libc function is looked up here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


def _attempts(log_path: str) -> int:
    try:
        with open(log_path, encoding="utf-8") as f:
            return sum(line.startswith(_ATTEMPT) for line in f)
    except FileNotFoundError:
        return 0


def _plan(
    folder: Path,
    n: int,
    db: Path,
    model: str,
    suites: Sequence[str],
    run_args: tuple[str, ...],
    shared_args: tuple[str, ...],
) -> list[ShardJob]:
    """The shard jobs; the folder holds the stores of this evaluation only (plan.json says which)."""
    cwd = os.getcwd()
    plan = {"n": n, "model": model, "suites": list(suites), "run_args": list(run_args),
            "shared_args": list(shared_args), "cwd": cwd}  # fmt: skip
    path = folder / "plan.json"
    if path.exists():
        try:
            theirs = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            theirs = None
        if theirs != plan:
            raise UserError(
                f"{folder} holds the unfinished shards of another sharded run ({path}): rerun that "
                "command to finish and merge them, or delete the folder",
                field="ray",
            )
        log.info("resuming the shard stores in %s", folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    kill = os.environ.get(KILL_ENV, "").strip()
    return [
        ShardJob(
            k,
            n,
            model,
            tuple(suites),
            run_args,
            shared_args,
            str((folder / f"shard-{k}-of-{n}.duckdb").resolve()),
            str((folder / f"shard-{k}-of-{n}.log").resolve()),
            cwd,
            kill_after_first_batch=kill == str(k),
        )
        for k in range(1, n + 1)
    ]


def _init(ray: Any, address: str) -> None:
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address == "local":  # a cluster of this machine, gone at shutdown
            ray.init(address="local", include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise UserError(f"cannot start or reach a Ray cluster at '{address}': {e}", field="ray") from None


def _cause(e: BaseException) -> str:
    """One line for a failed task: the shard's own error (Ray wraps it as `cause`), not Ray's traceback."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return str(cause) or type(cause).__name__
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _fail(folder: Path, failures: list[tuple[ShardJob, str, bool]]) -> None:
    failures = sorted(failures, key=lambda f: f[0].k)
    lines = [f"shard {j.k}/{j.n}: {why} (log: {j.log})" for j, why, _ in failures]
    if all(refused for _, _, refused in failures):
        raise UserError("; ".join(lines))
    raise ShardsFailed(
        "\n".join(lines)
        + f"\nthe shard stores stay in {folder}: run the same command again to resume them and merge"
    )


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
