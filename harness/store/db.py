"""The DuckDB store: one file, migrated on open, written in per-batch transactions."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from harness import signals
from harness.errors import StoreLocked, UserError
from harness.secrets import scrub
from harness.store.liveness import shown_status, this_host, utc_now
from harness.store.migrations import MIGRATIONS
from harness.store.safety import check_schema
from harness.store.safety import connect as safe_connect


@dataclass(frozen=True)
class RunRecord:
    """One run of one model on one suite."""

    run_id: str
    model_id: str
    suite_id: str
    status: str
    config: dict[str, Any]
    seed: int | None
    started_at: Any
    ended_at: Any
    n_examples: int
    suite_name: str
    suite_kind: str
    model_spec: str
    host: str | None = None
    pid: int | None = None
    """The process that owns a running run (m004)."""
    heartbeat_at: Any = None
    """When the owner last stored a batch (naive UTC)."""

    @property
    def shown_status(self) -> str:
        """The status as users see it: `dead (resume with …)` for a running run whose process is gone."""
        return shown_status(self.status, self.host, self.pid, self.heartbeat_at, self.run_id)


@dataclass(frozen=True)
class ScoreRow:
    example_id: str
    metric: str
    value: float | None
    weight: float = 1.0
    error: str | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class GenerationRow:
    cache_key: str
    model_id: str
    request_type: str
    prompt: str
    params: dict[str, Any]
    output: str | None
    result: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None


# Corpus metrics keep sacreBLEU segment statistics as a JSON int array in scores.detail.
_STATS_SQL = (
    ", CAST(json_extract({t}.detail, '$.stats') AS BIGINT[]) AS stats{suffix},"
    " CAST(json_extract({t}.detail, '$.nrefs') AS INTEGER) AS nrefs{suffix}"
)


def _j(v: Any) -> str | None:
    # Scrubbing the JSON text catches a secret in any string, key or value, raw or escaped.
    return None if v is None else scrub(json.dumps(v, ensure_ascii=False, sort_keys=True))


def one_row(cur: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a query that always returns one: an aggregate (count(*), max()), or a row that
    must exist (a run's own model)."""
    row = cur.fetchone()
    assert row is not None, "the query returned no row"
    return row


def like_prefix(ref: str) -> str:
    """A LIKE pattern matching ids that start with `ref` taken literally (`_`, `%` are not wildcards)."""
    return ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_HEADERS = 3 * 4096  # DuckDB's file header and its two database headers precede the blocks


def _is_lock(e: Exception) -> bool:
    return "Could not set lock" in str(e) or "Conflicting lock" in str(e)


class Store:
    """Typed access to the tunegate DuckDB file. Every open migrates first."""

    default_wait: float = 0.0
    """Seconds to retry a store locked by another process (the CLI's --wait)."""

    def __init__(
        self,
        path: str | Path,
        *,
        must_exist: bool = False,
        wait: float | None = None,
        attach: Sequence[Path] = (),
        write_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        """`attach`: other stores this connection may ATTACH (`db merge`); `write_dir`: the one
        folder it may write files into (`db export`). No other file is reachable from SQL.
        `threads`: DuckDB's worker threads (the configuration is locked once open)."""
        self.path = Path(path)
        self._threads = threads
        self._allowed = ([p.resolve() for p in attach], [write_dir.resolve()] if write_dir else [])
        if must_exist and not self.path.exists():
            raise UserError(f"no tunegate store at {self.path} (run `tunegate run` first or pass --db)")
        self.read_only_reason: str | None = None
        """Set when the store is newer than this tunegate: it is open read-only."""
        self._check_intact()
        self.db = self._connect(Store.default_wait if wait is None else wait)
        try:
            check_schema(self.db, self.path)  # before any statement reads or writes a table
            self._migrate()
        except duckdb.Error as e:
            self.db.close()
            raise self._open_error(e, 0) from None
        except UserError:
            self.db.close()
            raise

    def _check_intact(self) -> None:
        """Refuse a truncated file before a read-write open, which would write into it.

        The header's block count says how long the file must be; a shorter file lost data (a
        copy cut short, a full disk). Read-only, metadata only: milliseconds for any size.
        """
        wal = self.path.with_name(self.path.name + ".wal")
        if not self.path.is_file() or self.path.stat().st_size == 0 or wal.exists():
            return  # new, or with a log to replay first: DuckDB itself checks those
        try:
            con = safe_connect(self.path, read_only=True)
        except duckdb.Error as e:
            if _is_lock(e):
                return  # a writer holds it: the read-write open reports the lock (and waits)
            raise self._open_error(e, 0) from None
        try:
            # free blocks at the end are truncated away by DuckDB's own checkpoint, so only the
            # used blocks are sure to be in the file (total_blocks gave false alarms)
            block_size, blocks = one_row(
                con.execute("SELECT block_size, used_blocks FROM pragma_database_size()")
            )
        except duckdb.Error as e:
            raise self._open_error(e, 0) from None
        finally:
            con.close()
        need, size = _HEADERS + blocks * block_size, self.path.stat().st_size
        if size < need:
            raise UserError(
                f"store is damaged: {self.path} is {size} bytes but its header needs {need} (the file "
                "was cut short); nothing was changed: restore it from a copy or pass another --db"
            )

    def _connect(self, wait: float, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        deadline, delay = time.monotonic() + wait, 0.05
        while True:
            try:
                allowed_paths, allowed_dirs = self._allowed
                return safe_connect(
                    self.path,
                    read_only=read_only,
                    allowed_paths=allowed_paths,
                    allowed_dirs=allowed_dirs,
                    threads=self._threads,
                )
            except duckdb.Error as e:
                left = deadline - time.monotonic()
                if not _is_lock(e) or left <= 0:
                    raise self._open_error(e, wait) from None
                time.sleep(min(delay, left))
                delay = min(delay * 2, 1.0)

    def _open_error(self, e: duckdb.Error, wait: float) -> UserError:
        if _is_lock(e):
            m = re.search(r"\(PID (\d+)\)", str(e))
            holder = f" (PID {m.group(1)})" if m else ""
            waited = f" after waiting {wait:g}s" if wait else ""
            return StoreLocked(
                f"store {self.path} is locked by another process{holder}{waited}; "
                "retry later or pass --wait SECONDS"
            )
        if isinstance(e, duckdb.IOException | duckdb.SerializationException | duckdb.InternalException):
            return UserError(
                f"store is damaged: {self.path} cannot be read ({e}); nothing was changed: "
                "restore it from a copy or pass another --db"
            )
        return UserError(f"cannot open store {self.path}: {e}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------
    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)"
        )
        applied = {r[0] for r in self.db.execute("SELECT version FROM schema_version").fetchall()}
        newest, known = max(applied, default=0), len(MIGRATIONS)
        if newest > known:
            # Written by a newer tunegate: read what we understand, never write (a read-only
            # connection makes that a guarantee, not a convention).
            self.read_only_reason = (
                f"store {self.path} has schema version {newest}, newer than this tunegate knows "
                f"({known}): upgrade tunegate to a release with schema version {newest} to write to it"
            )
            self.db.close()
            self.db = self._connect(0, read_only=True)
            return
        for number, fn in enumerate(MIGRATIONS, start=1):
            if number in applied:
                continue
            with self.transaction():
                fn(self.db)
                self.db.execute(
                    "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                    [number, fn.__name__],
                )

    def schema_version(self) -> int:
        return one_row(self.db.execute("SELECT max(version) FROM schema_version"))[0] or 0

    def require_writable(self) -> None:
        """A user error before the first write to a store from a newer tunegate."""
        if self.read_only_reason:
            raise UserError(self.read_only_reason)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; Ctrl-C or SIGTERM inside waits until it has committed or rolled back."""
        self.require_writable()
        with signals.deferred():
            self.db.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # -- models and suites --------------------------------------------------------------
    def upsert_model(
        self,
        model_id: str,
        spec: str,
        kind: str,
        fingerprint: str,
        *,
        base_model_id: str | None = None,
        adapter_path: str | None = None,
        load_options: dict[str, Any] | None = None,
    ) -> None:
        self.require_writable()
        self.db.execute(
            "INSERT INTO models (model_id, spec, kind, fingerprint, base_model_id, adapter_path,"
            " load_options) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [model_id, scrub(spec), kind, fingerprint, base_model_id, adapter_path, _j(load_options)],
        )

    def upsert_suite(
        self,
        suite_id: str,
        name: str,
        kind: str,
        content_hash: str,
        path: str,
        config: dict[str, Any],
        examples: Sequence[tuple[str, dict[str, Any], list[str]]],
    ) -> None:
        """Store the suite and its examples once; a changed suite has a new id."""
        exists = self.db.execute("SELECT 1 FROM suites WHERE suite_id = ?", [suite_id]).fetchone()
        if exists:
            return
        with self.transaction():
            self.db.execute(
                "INSERT INTO suites (suite_id, name, kind, content_hash, path, config)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [suite_id, name, kind, content_hash, path, _j(config)],
            )
            self.db.executemany(
                "INSERT INTO examples (suite_id, example_id, position, input, reference)"
                " VALUES (?, ?, ?, ?, ?)",
                [(suite_id, eid, i, _j(inp), _j(ref)) for i, (eid, inp, ref) in enumerate(examples)],
            )

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        run_id: str,
        model_id: str,
        suite_id: str,
        *,
        config: dict[str, Any],
        seed: int | None,
        versions: dict[str, str],
        git_sha: str | None,
        host: str,
        n_examples: int,
        metrics: Sequence[tuple[str, dict[str, Any], str, bool, bool]],
        measurement: dict[str, Any] | None = None,
    ) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO runs (run_id, model_id, suite_id, status, config, seed, versions,"
                " git_sha, host, started_at, n_examples, pid, heartbeat_at, measurement)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, current_timestamp, ?, ?, ?, ?)",
                [
                    run_id,
                    model_id,
                    suite_id,
                    _j(config),
                    seed,
                    _j(versions),
                    git_sha,
                    host,
                    n_examples,
                    os.getpid(),
                    utc_now(),
                    _j(measurement),
                ],
            )
            self.db.executemany(
                "INSERT INTO run_metrics (run_id, metric, spec, aggregation, higher_is_better, is_binary)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, name, _j(spec), agg, hib, binary) for name, spec, agg, hib, binary in metrics],
            )

    def mark_run(self, run_id: str, status: str, error: str | None = None) -> None:
        self.require_writable()
        with signals.deferred():
            self.db.execute(
                "UPDATE runs SET status = ?, error = ?, ended_at = current_timestamp WHERE run_id = ?",
                [status, scrub(error), run_id],
            )

    def reopen_run(self, run_id: str) -> None:
        """The run is ours again: this host and process own it from now on."""
        self.require_writable()
        self.db.execute(
            "UPDATE runs SET status = 'running', error = NULL, ended_at = NULL, host = ?, pid = ?,"
            " heartbeat_at = ? WHERE run_id = ?",
            [this_host(), os.getpid(), utc_now(), run_id],
        )

    def get_run(self, ref: str) -> RunRecord:
        """A run by id or unique id prefix; unknown or ambiguous ids are user errors."""
        rows = self.db.execute(
            "SELECT r.run_id, r.model_id, r.suite_id, r.status, r.config, r.seed, r.started_at,"
            " r.ended_at, r.n_examples, s.name, s.kind, m.spec, r.host, r.pid, r.heartbeat_at"
            " FROM runs r JOIN suites s USING (suite_id) JOIN models m USING (model_id)"
            " WHERE r.run_id = ? OR r.run_id LIKE ? ESCAPE '\\' ORDER BY r.run_id",
            [ref, like_prefix(ref)],
        ).fetchall()
        exact = [r for r in rows if r[0] == ref]
        rows = exact or rows
        if not rows:
            raise UserError(f"unknown run id '{ref}' in {self.path} (see `tunegate runs`)")
        if len(rows) > 1:
            raise UserError(f"run id prefix '{ref}' is ambiguous: {', '.join(r[0] for r in rows[:5])}")
        r = rows[0]
        return RunRecord(
            r[0],
            r[1],
            r[2],
            r[3],
            json.loads(r[4] or "{}"),
            r[5],
            r[6],
            r[7],
            r[8] or 0,
            r[9],
            r[10],
            r[11],
            r[12],
            r[13],
            r[14],
        )

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT r.run_id, r.status, m.spec AS model, s.name AS suite, r.started_at,"
            " r.n_examples, count(e.example_id) AS done, count(e.error) AS errors,"
            " r.host, r.pid, r.heartbeat_at"
            " FROM runs r JOIN models m USING (model_id) JOIN suites s USING (suite_id)"
            " LEFT JOIN run_examples e USING (run_id)"
            " GROUP BY ALL ORDER BY r.started_at DESC LIMIT ?",
            [limit],
        )
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, row)) for row in cur.fetchall()]
        for r in rows:  # what users see: a running run whose process is gone is dead
            r["shown_status"] = shown_status(r["status"], r["host"], r["pid"], r["heartbeat_at"], r["run_id"])
        return rows

    def done_example_ids(self, run_id: str, *, include_errors: bool = True) -> set[str]:
        """Examples of the run with a stored result (`include_errors=False`: successes only, so
        a resume retries the failed ones)."""
        sql = "SELECT example_id FROM run_examples WHERE run_id = ?"
        if not include_errors:
            sql += " AND error IS NULL"
        rows = self.db.execute(sql, [run_id])
        return {r[0] for r in rows.fetchall()}

    # -- generation cache and results -----------------------------------------------------
    def cached_generations(self, keys: Iterable[str]) -> dict[str, GenerationRow]:
        """Successful generations for these cache keys (errors are never cache hits)."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        rows = self.db.execute(
            "SELECT cache_key, model_id, request_type, prompt, params, output, result,"
            " prompt_tokens, output_tokens, latency_s FROM generations"
            " WHERE error IS NULL AND cache_key IN (SELECT unnest(?))",
            [keys],
        ).fetchall()
        return {
            r[0]: GenerationRow(
                r[0],
                r[1],
                r[2],
                r[3],
                json.loads(r[4] or "{}"),
                r[5],
                json.loads(r[6]) if r[6] else None,
                r[7],
                r[8],
                r[9],
            )
            for r in rows
        }

    def write_batch(
        self,
        run_id: str,
        generations: Sequence[GenerationRow],
        items: Sequence[tuple[str, str | None, bool, str | None]],
        scores: Sequence[ScoreRow],
        *,
        replace: bool = False,
    ) -> None:
        """One transaction: new generations, the run's finished examples and their scores.
        `replace`: these examples were stored before (as errors) and are retried: their old
        rows go in the same transaction, so a crash keeps either the old rows or the new."""
        with self.transaction():
            if replace and items:
                ids = [eid for eid, *_ in items]
                for table in ("run_examples", "scores"):
                    self.db.execute(
                        f"DELETE FROM {table} WHERE run_id = ? AND example_id IN (SELECT unnest(?))",
                        [run_id, ids],
                    )
            if generations:
                # one statement may not hold a key twice: the last row of a key wins, as before
                generations = list({g.cache_key: g for g in generations}.values())
                self._insert_many(
                    "INSERT OR REPLACE INTO generations (cache_key, model_id, request_type, prompt,"
                    " params, output, result, prompt_tokens, output_tokens, latency_s, error)",
                    [
                        (
                            g.cache_key,
                            g.model_id,
                            g.request_type,
                            scrub(g.prompt),
                            _j(g.params),
                            scrub(g.output),
                            _j(g.result),
                            g.prompt_tokens,
                            g.output_tokens,
                            g.latency_s,
                            scrub(g.error),
                        )
                        for g in generations
                    ],
                )
            if items:
                self._insert_many(
                    "INSERT INTO run_examples (run_id, example_id, cache_key, cached, error)",
                    [(run_id, eid, key, cached, scrub(err)) for eid, key, cached, err in items],
                )
            if scores:
                self._insert_many(
                    "INSERT INTO scores (run_id, example_id, metric, value, weight, error, detail)",
                    [
                        (run_id, s.example_id, s.metric, s.value, s.weight, scrub(s.error), _j(s.detail))
                        for s in scores
                    ],
                )
            # The owner is alive: `runs` tells a slow run from a dead one by this.
            self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [utc_now(), run_id])

    def _insert_many(self, insert: str, rows: Sequence[tuple[Any, ...]], chunk: int = 256) -> None:
        """Rows as multi-row VALUES statements: one execution per chunk instead of one per row
        (DuckDB's executemany runs the statement once per row; ~8x slower for a cached batch)."""
        width = len(rows[0])
        one = "(" + ", ".join("?" * width) + ")"
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params = [v for row in part for v in row]
            self.db.execute(f"{insert} VALUES {', '.join([one] * len(part))}", params)

    # -- how a run measured (harness.measurement) -------------------------------------------
    def measurement(self, run_id: str) -> dict[str, Any]:
        """The run's measurement record; for a run stored before records existed, the part that
        can be rebuilt from its suite config and metric specs (marked `legacy`)."""
        from harness.measurement import legacy_record

        row = one_row(
            self.db.execute(
                "SELECT r.measurement, s.kind, s.config FROM runs r JOIN suites s USING (suite_id)"
                " WHERE r.run_id = ?",
                [run_id],
            )
        )
        if row[0]:
            return dict(json.loads(row[0]))
        specs = {m["metric"]: m["spec"] for m in self.run_metrics(run_id)}
        return legacy_record(row[1], json.loads(row[2] or "{}"), specs)

    def scored_token_differences(self, run_a: str, run_b: str) -> tuple[int, int, str | None, Any, Any]:
        """Paired examples whose log-likelihood rows scored a different number of tokens:
        (differing, paired, first differing example id, its count in a, in b)."""
        cur = self.db.execute(
            "WITH t AS (SELECT e.run_id, e.example_id,"
            " TRY_CAST(json_extract_string(g.result, '$.n_tokens') AS BIGINT) AS n"
            " FROM run_examples e JOIN generations g USING (cache_key)"
            " WHERE e.run_id IN (?, ?) AND e.error IS NULL AND g.result IS NOT NULL)"
            " SELECT a.example_id, a.n, b.n FROM t a JOIN t b USING (example_id)"
            " WHERE a.run_id = ? AND b.run_id = ? AND a.n IS NOT NULL AND b.n IS NOT NULL"
            " ORDER BY (a.n = b.n), a.example_id",
            [run_a, run_b, run_a, run_b],
        )
        rows = cur.fetchall()
        bad = [r for r in rows if r[1] != r[2]]
        first = bad[0] if bad else (None, None, None)
        return len(bad), len(rows), first[0], first[1], first[2]

    # -- reading results ------------------------------------------------------------------
    def run_metrics(self, run_id: str) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT metric, spec, aggregation, higher_is_better, is_binary FROM run_metrics"
            " WHERE run_id = ? ORDER BY metric",
            [run_id],
        )
        return [
            {
                "metric": m,
                "spec": json.loads(s or "{}"),
                "aggregation": a,
                "higher_is_better": h,
                "binary": b,
            }
            for m, s, a, h, b in cur.fetchall()
        ]

    def scores(self, run_id: str, metric: str) -> list[tuple[str, float | None, float, str | None, Any]]:
        """(example_id, value, weight, error, detail) in suite order."""
        rows = self.db.execute(
            "SELECT s.example_id, s.value, s.weight, s.error, s.detail FROM scores s"
            " JOIN runs r USING (run_id)"
            " LEFT JOIN examples e ON e.suite_id = r.suite_id AND e.example_id = s.example_id"
            " WHERE s.run_id = ? AND s.metric = ? ORDER BY e.position",
            [run_id, metric],
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None) for r in rows]

    def score_columns(
        self, run_id: str, metric: str, *, labels: bool = False, stats: bool = False
    ) -> dict[str, Any]:
        """Scored (non-error) rows of one metric as numpy columns, in suite order, plus the error count.

        `stats` adds each row's sufficient statistics (detail.stats, corpus metrics) and nrefs.
        """
        extra = (
            (
                ", json_extract_string(s.detail, '$.pred') AS pred,"
                " json_extract_string(s.detail, '$.label') AS label"
            )
            if labels
            else ""
        )
        if stats:
            extra += _STATS_SQL.format(t="s", suffix="")
        cols = self.db.execute(
            f"SELECT s.example_id, s.value, coalesce(s.weight, 1.0) AS weight{extra} FROM scores s"
            " JOIN runs r USING (run_id)"
            " LEFT JOIN examples e ON e.suite_id = r.suite_id AND e.example_id = s.example_id"
            " WHERE s.run_id = ? AND s.metric = ? AND s.error IS NULL AND s.value IS NOT NULL"
            " ORDER BY e.position, s.example_id",
            [run_id, metric],
        ).fetchnumpy()
        cols["n_errors"] = self._errors(run_id, metric)
        return cols

    def paired_score_columns(
        self, run_a: str, run_b: str, metric: str, *, labels: bool = False, stats: bool = False
    ) -> dict[str, Any]:
        """One metric of two runs joined on example id (both scored), as numpy columns.

        Also returns how many examples errored on each side and how many were scored on one
        side only, so nothing silently drops out of a comparison.
        """
        extra = ""
        if labels:
            extra = "".join(
                f", json_extract_string({t}.detail, '$.{f}') AS {f}_{t}"
                for t in "ab"
                for f in ("pred", "label")
            )
        if stats:
            extra += "".join(_STATS_SQL.format(t=t, suffix="_" + t) for t in "ab")
        ok = "error IS NULL AND value IS NOT NULL"
        cols = self.db.execute(
            "WITH a AS (SELECT * FROM scores WHERE run_id = ? AND metric = ? AND " + ok + "),"
            " b AS (SELECT * FROM scores WHERE run_id = ? AND metric = ? AND " + ok + ")"
            f" SELECT a.example_id, a.value AS value_a, b.value AS value_b,"
            f" coalesce(a.weight, 1.0) AS weight_a, coalesce(b.weight, 1.0) AS weight_b{extra}"
            " FROM a JOIN b USING (example_id)"
            " LEFT JOIN (SELECT e.example_id, e.position FROM examples e JOIN runs r USING (suite_id)"
            "            WHERE r.run_id = ?) p USING (example_id)"
            " ORDER BY p.position, a.example_id",
            [run_a, metric, run_b, metric, run_a],
        ).fetchnumpy()
        n_a, n_b = (
            one_row(
                self.db.execute(
                    "SELECT count(*) FROM scores WHERE run_id = ? AND metric = ? AND " + ok, [r, metric]
                )
            )[0]
            for r in (run_a, run_b)
        )
        paired = len(cols["example_id"])
        cols["n_errors"] = (self._errors(run_a, metric), self._errors(run_b, metric))
        cols["only_in"] = (n_a - paired, n_b - paired)
        return cols

    def _errors(self, run_id: str, metric: str) -> int:
        return one_row(
            self.db.execute(
                "SELECT count(*) FROM scores WHERE run_id = ? AND metric = ? AND error IS NOT NULL",
                [run_id, metric],
            )
        )[0]

    def example_outputs(self, run_id: str, example_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Prompt, reference and output for some examples of a run (for regression listings)."""
        rows = self.db.execute(
            "SELECT re.example_id, g.prompt, g.output, re.error, e.reference FROM run_examples re"
            " JOIN runs r USING (run_id)"
            " LEFT JOIN generations g USING (cache_key)"
            " LEFT JOIN examples e ON e.suite_id = r.suite_id AND e.example_id = re.example_id"
            " WHERE re.run_id = ? AND re.example_id IN (SELECT unnest(?))",
            [run_id, list(example_ids)],
        ).fetchall()
        return {
            r[0]: {
                "prompt": r[1],
                "output": r[2],
                "error": r[3],
                "reference": json.loads(r[4]) if r[4] else [],
            }
            for r in rows
        }

    def counts(self, run_id: str) -> tuple[int, int]:
        """(examples finished, examples with an error) for a run."""
        return one_row(
            self.db.execute("SELECT count(*), count(error) FROM run_examples WHERE run_id = ?", [run_id])
        )
