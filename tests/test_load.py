"""`tunegate load` (issue #26) against real servers on loopback: the misbehaving server with a
fixed delay and error rate (streaming), and the real llama.cpp server. Every load is bounded in
requests, hits 127.0.0.1 only, and stops by itself."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import duckdb
import numpy as np
import pytest

from tests.conftest import ROOT, run_cli, table_dump, write_suite
from tests.fake_openai import FakeOpenAI
from tests.llama_server import free_port

QA = """name: load-qa
kind: task
data: data.jsonl
prompt: "Answer in one word. {{ question }}"
reference: answer
generation: {max_new_tokens: 6, stop: ["\\n"]}
metrics: [exact_match]
"""
DATA = "".join(
    json.dumps({"id": f"q{i}", "question": q, "answer": a}) + "\n"
    for i, (q, a) in enumerate(
        [("What is the capital of France?", "Paris"), ("What colour is the sky?", "blue"), ("2+2=?", "4")]
    )
)
DELAY, CHUNKS, GAP = 0.1, 4, 0.01
"""The fake server's wait before the first token, text events per reply, and gap between them."""


@pytest.fixture()
def suite(tmp_path):
    return write_suite(tmp_path / "qa", QA, DATA)


@pytest.fixture()
def fake():
    with FakeOpenAI() as srv:
        yield srv


def _rows(db, sql, params=()):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _load_id(stdout: str) -> str:
    return json.loads(stdout)["load_run_id"]


def _stored_percentiles_match_numpy(db, load_run_id: str) -> None:
    for level, *stored in _rows(
        db,
        "SELECT level, e2e_p50, e2e_p90, e2e_p95, e2e_p99, ttft_p50, ttft_p90, ttft_p95, ttft_p99"
        " FROM load_levels WHERE load_run_id = ? ORDER BY level",
        [load_run_id],
    ):
        e2e, ttft = zip(
            *_rows(
                db,
                "SELECT e2e_s, ttft_s FROM load_requests"
                " WHERE load_run_id = ? AND level = ? AND error IS NULL",
                [load_run_id, level],
            )
        )
        want = list(np.percentile(e2e, [50, 90, 95, 99])) + list(np.percentile(ttft, [50, 90, 95, 99]))
        assert stored == want  # exactly numpy's (linear), on the stored values


def test_fixed_delay_and_error_rate_measured_and_stored(fake, suite, tmp_path):
    st = fake.reset(latency=DELAY, stream_chunks=CHUNKS, chunk_delay=GAP, error_rate=0.1)
    db = tmp_path / "load.duckdb"
    spec = f"openai:fake@{fake.base_url}"
    r = run_cli(
        "load",
        "-m",
        spec,
        "-s",
        str(suite),
        "--concurrency",
        "4",
        "--requests",
        "40",
        "--db",
        str(db),
        "--json",
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lid = _load_id(r.stdout)
    level = json.loads(r.stdout)["levels"][0]
    # the preflight request was the server's first: its planned failures are requests 9, 19, 29, 39
    assert (level["n_requests"], level["n_errors"], level["error_rate"]) == (40, 4, 0.1)
    rows = _rows(
        db,
        "SELECT e2e_s, ttft_s, itl_s, output_tokens, tokens_from, status, error, failed_after_s"
        " FROM load_requests WHERE load_run_id = ?",
        [lid],
    )
    failed = [x for x in rows if x[6] is not None]
    assert len(failed) == 4
    for e2e, ttft, itl, _, _, status, error, after in failed:  # an error row, never a latency of 0
        assert e2e is None and ttft is None and itl is None and status == 500 and "HTTP 500" in error
        assert after >= DELAY
    ok = [x for x in rows if x[6] is None]
    floor = DELAY + (CHUNKS - 1) * GAP  # the fixed delay the server adds before its last event
    for e2e, ttft, itl, tokens, source, status, _, _ in ok:
        assert ttft >= DELAY and e2e >= floor and e2e > ttft
        assert len(itl) == CHUNKS - 1 and all(g > 0 for g in itl)
        assert (tokens, source, status) == (CHUNKS, "usage", 200)
    # client and server share 2 busy cores: the median holds tight, the tail gets more room
    assert floor <= level["e2e_p50"] <= floor + 0.1 and floor <= level["e2e_p95"] <= floor + 0.5
    _stored_percentiles_match_numpy(db, lid)
    # the suite's prompts and parameters, streamed as the openai: backend would send them
    body = st.requests[-1]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 6 and body["stop"] == ["\n"] and body["temperature"] == 0
    assert body["messages"][0]["role"] == "user" and body["messages"][0]["content"].startswith(
        "Answer in one word."
    )
    assert _rows(db, "SELECT status FROM load_runs")[0][0] == "completed"


def test_open_loop_poisson_arrivals_are_seeded(fake, suite, tmp_path):
    fake.reset(latency=0.01, stream_chunks=2)
    db = tmp_path / "load.duckdb"
    spec = f"openai:fake@{fake.base_url}?chat=0"
    r = run_cli(
        "load",
        "-m",
        spec,
        "-s",
        str(suite),
        "--rate",
        "40",
        "--requests",
        "30",
        "--seed",
        "7",
        "--db",
        str(db),
        "--json",
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lid = _load_id(r.stdout)
    sched, sent = zip(
        *_rows(db, "SELECT scheduled_s, sent_s FROM load_requests WHERE load_run_id = ? ORDER BY seq", [lid])
    )
    rng = np.random.default_rng(7)  # level 0 draws from the seed itself
    want = np.concatenate([[0.0], np.cumsum(rng.exponential(1 / 40, 29))])
    assert np.allclose(sched, want)
    assert max(s - a for s, a in zip(sent, sched)) < 0.25  # the client kept to the schedule
    # chat=0: the prompt rendered as text, sent to /completions
    assert json.loads(r.stdout)["levels"][0]["n_errors"] == 0


def test_duration_bounds_when_requests_are_sent(fake, suite, tmp_path):
    fake.reset(latency=0.05, stream_chunks=2)
    db = tmp_path / "load.duckdb"
    spec = f"openai:fake@{fake.base_url}"
    key = "sk-load-secret-7731"
    r = run_cli(
        "load",
        "-m",
        spec,
        "-s",
        str(suite),
        "--concurrency",
        "2",
        "--duration",
        "1",
        "--warmup",
        "2",
        "--db",
        str(db),
        "--json",
        env={"OPENAI_API_KEY": key},
    )
    assert r.returncode == 0, r.stderr
    level = json.loads(r.stdout)["levels"][0]
    sent = [s for (s,) in _rows(db, "SELECT sent_s FROM load_requests")]
    assert max(sent) < 1.0 and level["duration_s"] >= 1.0  # none sent after 1 s; those in flight finish
    assert 10 <= level["n_requests"] <= 2 / 0.05 + 2  # at most 2 in flight, each >= 50 ms
    assert len(fake.state.requests) == 1 + 2 + level["n_requests"]  # preflight + warmup, neither stored
    assert fake.state.requests[-1]["auth"] == f"Bearer {key}"  # the key from the environment
    assert key not in repr(table_dump(db))  # and never stored


def test_kill_9_then_resume_counts_each_request_once(fake, suite, tmp_path):
    fake.reset(latency=0.05, stream_chunks=2)
    db = tmp_path / "load.duckdb"
    args = [
        sys.executable,
        "-m",
        "tunegate",
        "load",
        "-m",
        f"openai:fake@{fake.base_url}",
        "-s",
        str(suite),
        "--concurrency",
        "2,3",
        "--requests",
        "60",
        "--db",
        str(db),
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    seen_level = False
    try:
        while time.monotonic() < deadline:  # kill it once level 2 has stored a batch or two
            line = proc.stderr.readline()
            if not line:
                break
            if line.startswith("level 1/2"):
                seen_level = True
            elif seen_level and "requests stored" in line and int(line.split()[0]) >= 70:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None and not seen_level:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    ((lid, status),) = _rows(db, "SELECT load_run_id, status FROM load_runs")
    assert status == "running"  # nobody marked it: the process died
    first = _rows(db, "SELECT * FROM load_requests WHERE level = 0 ORDER BY seq")
    partial = _rows(db, "SELECT count(*) FROM load_requests WHERE level = 1")[0][0]
    assert len(first) == 60 and 0 < partial < 60
    assert _rows(db, "SELECT status FROM load_levels ORDER BY level") == [("completed",), ("running",)]
    r = run_cli("runs", "--db", str(db))  # (a quality-run listing is unaffected)
    assert r.returncode == 0
    r = run_cli("load", "--list", "--db", str(db))
    assert "dead (resume with tunegate load --resume" in r.stdout
    r = run_cli("load", "--resume", lid, "--db", str(db), "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    assert _rows(db, "SELECT * FROM load_requests WHERE level = 0 ORDER BY seq") == first  # kept as stored
    seqs = [s for (s,) in _rows(db, "SELECT seq FROM load_requests WHERE level = 1 ORDER BY seq")]
    assert seqs == list(range(60))  # the level measured again in one piece: no request twice
    levels = json.loads(r.stdout)["levels"]
    assert [lv["n_requests"] for lv in levels] == [60, 60] and all(
        lv["status"] == "completed" for lv in levels
    )
    assert _rows(db, "SELECT status FROM load_runs") == [("completed",)]
    _stored_percentiles_match_numpy(db, lid)


def test_a_stream_cut_off_is_an_error_not_a_fast_answer(fake, suite, tmp_path):
    db = tmp_path / "load.duckdb"
    spec = f"openai:fake@{fake.base_url}"
    fake.reset(cut_from=0)  # as llama-cpp-python's server when the next request arrives
    r = run_cli("load", "-m", spec, "-s", str(suite), "--requests", "3", "--db", str(db))
    assert r.returncode == 2 and "without a finish_reason" in r.stderr  # the preflight failed
    assert not db.exists()
    fake.reset(cut_from=2)  # the preflight and the first request end properly, the rest are cut
    r = run_cli("load", "-m", spec, "-s", str(suite), "--requests", "3", "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    level = json.loads(r.stdout)["levels"][0]
    assert (level["n_requests"], level["n_errors"]) == (3, 2)
    errors = _rows(db, "SELECT error, e2e_s, status FROM load_requests WHERE error IS NOT NULL")
    assert all("cut off" in e and t is None and s == 200 for e, t, s in errors)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "0"], "--rate must be greater than 0"),
        (["--concurrency", "0"], "--concurrency must be greater than 0"),
        (["--concurrency", "2", "--duration", "1", "--requests", "5"], "--duration or --requests"),
        (["--concurrency", "1", "--rate", "1"], "not both"),
    ],
)
def test_bad_levels_exit_2_and_store_nothing(fake, suite, tmp_path, flags, message):
    db = tmp_path / "load.duckdb"
    r = run_cli("load", "-m", f"openai:fake@{fake.base_url}", "-s", str(suite), *flags, "--db", str(db))
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not db.exists()
    assert fake.state.requests == []  # refused before the endpoint was asked anything


def test_endpoint_down_exit_2_and_store_nothing(suite, tmp_path):
    db = tmp_path / "load.duckdb"
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = run_cli("load", "-m", f"openai:x@{url}", "-s", str(suite), "--requests", "3", "--db", str(db))
    assert r.returncode == 2 and "cannot reach" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not db.exists()


def test_quality_and_load_rules_gate_together_and_the_report_draws_latency(fake, suite, tmp_path):
    db = tmp_path / "load.duckdb"
    base, cand = (f"openai:fake@{fake.base_url}?revision={r}" for r in ("f16", "q4"))  # two deployments
    fake.reset(latency=0.02, stream_chunks=3)
    for spec in (base, cand):
        r = run_cli("run", "-m", spec, "-s", str(suite), "--db", str(db))
        assert r.returncode == 0, r.stderr
    for spec, latency in ((base, 0.02), (cand, 0.15)):  # the candidate's deployment is slower
        fake.state.latency = latency
        r = run_cli(
            "load", "-m", spec, "-s", str(suite), "--concurrency", "1,2", "--requests", "12", "--db", str(db)
        )
        assert r.returncode == 0, r.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "name: release\nrules:\n  - metric: exact_match\n    max_drop: 0.5\n"
        "  - load: {concurrency: 2}\n    max_p95_latency_s: 5\n    max_error_rate: 0.001\n"
        "    max_p95_slowdown_rel: 10%\n    max_throughput_drop_rel: 90%\n",
        encoding="utf-8",
    )
    r = run_cli(
        "gate", "--baseline", base, "--candidate", cand, "--policy", str(policy), "--db", str(db), "--json"
    )
    assert r.returncode == 1, r.stdout + r.stderr
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["max_drop"]["passed"] and checks["max_p95_latency_s"]["passed"]
    assert checks["max_error_rate"]["suite"] == "load" and checks["max_error_rate"]["passed"]
    slow = checks["max_p95_slowdown_rel"]
    assert not slow["passed"] and "cannot be ruled out" in slow["reason"], slow
    assert checks["max_throughput_drop_rel"]["passed"]  # slower, but within a 90% drop
    r = run_cli(
        "gate", "--baseline", base, "--candidate", base, "--policy", str(policy), "--db", str(db), "--json"
    )
    same = next(c for c in json.loads(r.stdout)["checks"] if c["check"] == "max_p95_slowdown_rel")
    # against itself the delta is 0 and its CI straddles 0; with 12 requests a side the CI is
    # too wide to rule out a 10% slowdown, so the rule fails closed (as non_inferior does)
    assert "delta +0 s" in same["reason"] and re.search(r"CI \[-[\d.e-]+, \+[\d.e-]+\]", same["reason"])
    out = tmp_path / "report.html"
    r = run_cli("report", base, cand, "-o", str(out), "--db", str(db))
    assert r.returncode == 0, r.stderr
    page = out.read_text(encoding="utf-8")
    assert 'id="latency"' in page and page.count("(CDF)") >= 2 and "Throughput vs load" in page
    run_id = json.loads(run_cli("runs", "--db", str(db), "--json").stdout)[0]["run_id"]
    shown = run_cli("show", run_id, "--db", str(db))
    assert shown.returncode == 0 and "not a load measurement" in shown.stdout


def test_p95_difference_bootstrap_covers_a_known_shift():
    from harness.load.stats import p95_difference

    rng = np.random.default_rng(0)
    base = rng.gamma(4, 0.1, 400)
    d = p95_difference(base, base + 0.5, seed=1)
    assert d.ci_low < 0.5 < d.ci_high and d.delta == pytest.approx(0.5)
    same = p95_difference(base, rng.permutation(base), seed=1)
    assert same.ci_low < 0 < same.ci_high


# -- the real llama.cpp server ------------------------------------------------------------------


def test_llama_closed_and_open_loop_stored_and_gated(llama, suite, tmp_path):
    db = tmp_path / "load.duckdb"
    spec = f"openai:smollm2@{llama.base_url}"
    r = run_cli(
        "load",
        "-m",
        spec,
        "-s",
        str(suite),
        "--concurrency",
        "1,4",
        "--requests",
        "8",
        "--warmup",
        "1",
        "--db",
        str(db),
        "--json",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    closed = json.loads(r.stdout)
    r = run_cli(
        "load",
        "-m",
        spec,
        "-s",
        str(suite),
        "--rate",
        "2",
        "--requests",
        "6",
        "--db",
        str(db),
        "--json",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    opened = json.loads(r.stdout)
    for rec, n_levels in ((closed, 2), (opened, 1)):
        assert len(rec["levels"]) == n_levels
        for lv in rec["levels"]:
            assert lv["n_requests"] in (8, 6) and lv["n_errors"] == 0, lv
            assert 0 < lv["ttft_p50"] <= lv["e2e_p50"] and lv["requests_per_s"] > 0
        _stored_percentiles_match_numpy(db, rec["load_run_id"])
    # llama-cpp-python's server sends no usage in a stream: its text events are counted
    assert _rows(
        db, "SELECT DISTINCT tokens_from, min(output_tokens) > 0 FROM load_requests GROUP BY ALL"
    ) == [("chunks", True)]
    p95 = closed["levels"][1]["e2e_p95"]
    policy = tmp_path / "policy.yaml"
    for limit, code in ((p95 * 2 + 1, 0), (p95 / 2, 1)):
        policy.write_text(
            f"name: deploy\nrules:\n  - load: {{concurrency: 4}}\n    max_p95_latency_s: {limit}\n"
            "    max_error_rate: 0.001\n",
            encoding="utf-8",
        )
        r = run_cli(
            "gate",
            "--baseline",
            closed["load_run_id"],
            "--candidate",
            spec,
            "--policy",
            str(policy),
            "--db",
            str(db),
            "--json",
        )
        assert r.returncode == code, r.stdout + r.stderr
        checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
        assert checks["max_p95_latency_s"]["observed"] == pytest.approx(p95)
        assert checks["max_error_rate"]["passed"]
