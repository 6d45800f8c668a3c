"""#16 §2: `run --shard K/N` into one store per job, `db merge` into one run, `db export`.

No model: the outputs come from a predictions file, so the sharded and the unsharded runs see
exactly the same outputs and must agree example for example.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

import tunegate
from tests.conftest import run_cli, table_dump, write_suite

SUITE = """name: eco-shards
kind: task
data: data.jsonl
prompt: "Q: {{ q }}"
reference: a
metrics: [exact_match, token_f1]
"""
# ids not in file order: shards go by id, so a file sorted differently would shard the same
IDS = [f"ex-{i:02d}" for i in (7, 3, 11, 0, 12, 5, 9, 1, 4, 10, 2, 8, 6)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("shards")
    data = "".join(json.dumps({"id": i, "q": f"q {i}", "a": f"answer {i}"}) + "\n" for i in IDS)
    suite = write_suite(tmp / "suite", SUITE, data)
    preds = tmp / "preds.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"id": i, "output": f"answer {i}" if n % 3 else "no idea"}) + "\n"
            for n, i in enumerate(IDS)
        )
    )
    model = f"predictions:{preds}"
    stores = [tmp / f"shard{k}.duckdb" for k in (1, 2, 3)]
    r = run_cli(
        "run", "-m", model, "-s", str(suite), "--shard", "1/3", "--db", str(stores[0]), "--no-progress"
    )
    assert r.returncode == 0, r.stderr
    for k in (2, 3):  # the Python API's evaluate: the same run path as the CLI
        tunegate.evaluate(model, [str(suite)], db=stores[k - 1], shard=f"{k}/3")
    [full_run] = tunegate.evaluate(model, str(suite), db=tmp / "full.duckdb")
    return {"tmp": tmp, "suite": suite, "model": model, "stores": stores, "full": tmp / "full.duckdb",
            "full_run": full_run}  # fmt: skip


def _rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_shards_split_the_examples_by_id_into_disjoint_near_equal_parts(shards):
    parts = [{r[0] for r in _rows(db, "SELECT example_id FROM run_examples")} for db in shards["stores"]]
    assert set().union(*parts) == set(IDS) and sum(map(len, parts)) == len(IDS)
    assert sorted(map(len, parts)) == [4, 4, 5]
    assert parts[0] == set(sorted(IDS)[0::3])  # every 3rd by id, from the 1st
    [(config,)] = _rows(shards["stores"][1], "SELECT config FROM runs")
    assert json.loads(config)["shard"] == {"k": 2, "n": 3}


def test_merged_shards_equal_one_unsharded_run_example_for_example(shards):
    out = shards["tmp"] / "merged.duckdb"
    r = run_cli("db", "merge", str(out), *map(str, shards["stores"]))
    assert r.returncode == 0, r.stderr
    assert "one run from 3 shards" in r.stdout
    [(run_id, status, n, config)] = _rows(out, "SELECT run_id, status, n_examples, config FROM runs")
    assert status == "completed" and n == len(IDS)
    assert [s["k"] for s in json.loads(config)["shards"]] == [1, 2, 3]

    score_sql = (
        "SELECT example_id, metric, value, weight, error, detail FROM scores WHERE run_id = ? ORDER BY ALL"
    )
    out_sql = (
        "SELECT re.example_id, g.output, re.error FROM run_examples re JOIN generations g USING (cache_key)"
        " WHERE run_id = ? ORDER BY ALL"
    )
    full, full_run = shards["full"], shards["full_run"]
    assert _rows(out, score_sql, [run_id]) == _rows(full, score_sql, [full_run])
    assert _rows(out, out_sql, [run_id]) == _rows(full, out_sql, [full_run])
    metrics_sql = "SELECT metric, spec, aggregation FROM run_metrics WHERE run_id = ? ORDER BY ALL"
    assert _rows(out, metrics_sql, [run_id]) == _rows(full, metrics_sql, [full_run])

    # merging the same shards again changes nothing: identical rows are kept once
    before = table_dump(out)
    again = run_cli("db", "merge", str(out), *map(str, shards["stores"]))
    assert again.returncode == 0 and "nothing new" in again.stdout, again.stdout + again.stderr
    assert table_dump(out) == before

    # with the unsharded run in the same store, compare, gate and report see one run per side
    assert run_cli("db", "merge", str(out), str(full)).returncode == 0
    cmp_ = run_cli("compare", full_run, run_id, "--db", str(out), "--json")
    assert cmp_.returncode == 0, cmp_.stderr
    for m in json.loads(cmp_.stdout)["metrics"]:
        assert m["n"] == len(IDS) and m["delta"] == 0 and m["ties"] == len(IDS), m
    policy = shards["tmp"] / "policy.yaml"
    policy.write_text("name: same\nrules:\n  - {suite: eco-shards, metric: exact_match, max_drop: 0.0}\n")
    gate = run_cli("gate", "--baseline", full_run, "--candidate", run_id, "--policy", str(policy),
                   "--db", str(out), "--json")  # fmt: skip
    assert gate.returncode == 0 and json.loads(gate.stdout)["candidate"] == {"eco-shards": run_id}
    html = shards["tmp"] / "r.html"
    rep = run_cli("report", full_run, run_id, "-o", str(html), "--db", str(out))
    assert rep.returncode == 0 and run_id in html.read_text(), rep.stderr


def test_conflicting_or_missing_shards_are_refused_and_nothing_is_written(shards):
    tmp, stores = shards["tmp"], shards["stores"]
    bad = tmp / "bad2.duckdb"
    shutil.copy(stores[1], bad)
    con = duckdb.connect(str(bad))
    [(key,)] = con.execute("SELECT cache_key FROM generations ORDER BY cache_key LIMIT 1").fetchall()
    con.execute("UPDATE generations SET output = 'changed' WHERE cache_key = ?", [key])
    con.close()
    first = tmp / "conflict.duckdb"
    assert run_cli("db", "merge", str(first), str(shards["full"])).returncode == 0
    before = table_dump(first)
    # shard 2 says another output for a prompt the unsharded run also generated
    r = run_cli("db", "merge", str(first), str(stores[0]), str(bad), str(stores[2]))
    assert r.returncode == 2
    assert "table generations" in r.stderr and key in r.stderr and "output" in r.stderr, r.stderr
    assert table_dump(first) == before

    missing = tmp / "missing.duckdb"
    r = run_cli("db", "merge", str(missing), str(stores[0]), str(stores[1]))
    assert r.returncode == 2 and "shard 3/3" in r.stderr and "is missing" in r.stderr, r.stderr
    assert not missing.exists()  # a new output is not left half made

    r = run_cli(
        "run", "-m", shards["model"], "-s", str(shards["suite"]), "--shard", "4/3", "--db", str(missing)
    )
    assert r.returncode == 2 and "--shard takes K/N" in r.stderr


def test_export_writes_every_table_as_parquet_and_csv(shards):
    db = shards["full"]
    for fmt in ("parquet", "csv"):
        folder = shards["tmp"] / f"export-{fmt}"
        r = run_cli("db", "export", str(folder), "--format", fmt, "--db", str(db))
        assert r.returncode == 0, r.stderr
        reader = "read_parquet" if fmt == "parquet" else "read_csv_auto"
        for table in ("runs", "scores", "examples", "generations", "models"):
            [(n,)] = _rows(db, f"SELECT count(*) FROM {table}")
            con = duckdb.connect()
            assert (
                con.execute(f"SELECT count(*) FROM {reader}(?)", [str(folder / f"{table}.{fmt}")]).fetchone()[
                    0
                ]
                == n
            )
    bad = run_cli("db", "export", str(shards["tmp"] / "x"), "--format", "xlsx", "--db", str(db))
    assert bad.returncode == 2 and "unknown export format 'xlsx'" in bad.stderr
