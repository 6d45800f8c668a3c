"""#24 §3: `tunegate run --ray ADDRESS --shards N`, the `--shard K/N` runs as Ray tasks, merged.

One local Ray cluster for the module (`ray.init(num_cpus=2)` here; the CLI joins it by address),
the real SmolLM2 through the transformers backend and the built-in sentiment suite cut to 6
examples. Batch size 1, so every example is computed on its own and sharding cannot change a
number: the merged store must equal the unsharded run example for example. The crash is real:
the test hook (harness.ray_shards.KILL_ENV) SIGKILLs shard 1's `tunegate run` after its first
stored batch and then ends its Ray worker with os._exit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from harness.ray_shards import KILL_ENV
from tests.conftest import run_cli

N_EXAMPLES = 6
RUN = ("run", "-m", "smollm2", "-s", "sentiment", "--limit", str(N_EXAMPLES), "-b", "1", "--no-progress")
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def cluster():
    import ray

    from harness.models import resolve_model

    resolve_model("smollm2")  # converted once here, not by two shards at the same time
    t0 = time.monotonic()
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    TIMES["ray.init (local cluster, 2 CPUs)"] = time.monotonic() - t0
    yield ctx.address_info["gcs_address"]
    ray.shutdown()
    print("\n" + "\n".join(f"{k}: {v:.1f}s" for k, v in TIMES.items()))  # shown with pytest -s


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("full") / "full.duckdb"
    t0 = time.monotonic()
    r = run_cli(*RUN, "--db", str(db))
    TIMES["unsharded run"] = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    return db


def _rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _assert_same_examples(merged: Path, full: Path) -> None:
    """One completed run of every example, each with the unsharded run's output and scores."""
    [(run_id, status, n, config)] = _rows(merged, "SELECT run_id, status, n_examples, config FROM runs")
    assert status == "completed" and n == N_EXAMPLES
    assert [s["k"] for s in json.loads(config)["shards"]] == [1, 2]
    for sql in (
        "SELECT re.example_id, g.output, re.error FROM run_examples re JOIN generations g USING (cache_key)"
        " ORDER BY ALL",
        "SELECT example_id, metric, value, weight, error, detail FROM scores ORDER BY ALL",
        "SELECT metric, spec, aggregation FROM run_metrics ORDER BY ALL",
    ):
        assert _rows(merged, sql) == _rows(full, sql), sql
    # nothing stored twice: one row per example, as many scores as the unsharded run
    [(rows, ids)] = _rows(merged, "SELECT count(*), count(DISTINCT example_id) FROM run_examples")
    assert rows == ids == N_EXAMPLES
    count = "SELECT count(*) FROM scores"
    assert _rows(merged, count) == _rows(full, count)


def _sharded(cluster: str, db: Path, **env: str) -> subprocess.CompletedProcess:
    r = run_cli(*RUN, "--db", str(db), "--ray", cluster, "--shards", "2", env=env)
    ready = re.search(r"Ray ready in ([0-9.]+)s", r.stdout)
    if ready:
        TIMES["ray.init in the CLI (joining the cluster)"] = float(ready.group(1))
    return r


def test_sharded_on_ray_equals_the_unsharded_run_example_for_example(cluster, full, tmp_path):
    db = tmp_path / "merged.duckdb"
    t0 = time.monotonic()
    r = _sharded(cluster, db)
    TIMES["sharded run, N=2 (CLI joining the cluster)"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert "from 2 shards (completed)" in r.stdout
    assert "shard 1/2 finished" in r.stderr and "shard 2/2 finished" in r.stderr and "attempt" not in r.stderr
    _assert_same_examples(db, full)
    assert not (tmp_path / "merged.duckdb.shards").exists()  # merged: the shard stores are gone


def test_a_shard_killed_mid_run_is_retried_by_ray_and_resumes_its_store(cluster, full, tmp_path):
    db = tmp_path / "merged.duckdb"
    t0 = time.monotonic()
    r = _sharded(cluster, db, **{KILL_ENV: "1"})
    TIMES["sharded run, N=2, shard 1 killed once"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    # Ray ran shard 1 again; the retry continued the run the killed attempt had started
    assert "shard 1/2 finished" in r.stderr and "(attempt 2), resumed r-" in r.stderr, r.stderr
    assert "shard 2/2 finished" in r.stderr
    _assert_same_examples(db, full)


def test_bad_combinations_are_refused_before_a_cluster_starts(tmp_path):
    db = tmp_path / "t.duckdb"
    cases = [
        (("--ray", "local"), "--ray and --shards go together"),
        (("--shards", "2"), "--ray and --shards go together"),
        (("--ray", "local", "--shards", "2", "--shard", "1/2"), "give --shards N or --shard K/N"),
        (("--ray", "local", "--shards", "2", "--resume", "r-1"), "run the same command again to resume"),
        (("--ray", "local", "--shards", "2", "--adapter", str(tmp_path)), "--ray shards one model"),
    ]
    for extra, message in cases:
        r = run_cli(*RUN, "--db", str(db), *extra)
        assert r.returncode == 2 and message in r.stderr, (extra, r.stderr)
    r = run_cli(
        "run", "-m", "smollm2", "-s", "general-mini", "--ray", "local", "--shards", "2", "--db", str(db)
    )
    assert r.returncode == 2 and "cannot be sharded" in r.stderr, r.stderr
    # the shard stores of another evaluation are not resumed as if they were this one's
    folder = tmp_path / "t.duckdb.shards"
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps({"n": 3, "model": "smollm2"}))
    r = run_cli(*RUN, "--db", str(db), "--ray", "local", "--shards", "2")
    assert r.returncode == 2 and "holds the unfinished shards of another sharded run" in r.stderr, r.stderr
    assert not db.exists() and json.loads((folder / "plan.json").read_text())["n"] == 3


def test_without_ray_installed_the_error_names_the_extra(tmp_path, side_env):
    core = side_env("core")  # tunegate without extras: no ray (and no torch)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    p = subprocess.run(
        [str(core / "bin" / "python"), "-m", "tunegate", *RUN, "--ray", "local", "--shards", "2"],
        cwd=tmp_path,
        env={**clean, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2 and "pip install 'tunegate[ray]'" in p.stderr, p.stderr
