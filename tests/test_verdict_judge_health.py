"""Judge health, fail closed: a judge that always answers 3, flips on swap or returns garbage is
not evidence, and the gate says so by default. Real runs through the CLI (predictions as the
judged model, so no model loads), the misbehaving loopback server and the real llama.cpp server.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.store import Store
from harness.store.judge_health import get_health
from tests.conftest import run_cli, write_suite
from tests.fake_openai import FakeOpenAI

QA = [
    ("q1", "What is the capital of France?", "Paris"),
    ("q2", "How many legs does a spider have?", "eight"),
    ("q3", "What colour is the sky on a clear day?", "blue"),
    ("q4", "What is two plus two?", "four"),
    ("q5", "Which planet is called the red planet?", "Mars"),
    ("q6", "What do bees make?", "honey"),
]
DATA = "".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in QA)
SANITY = "".join(
    json.dumps({"question": q, "reference": a, "wrong": "I like turtles"}) + "\n" for _, q, a in QA[:3]
)


def _suite(tmp: Path, judge: str) -> Path:
    (tmp / "sanity.jsonl").write_text(SANITY)
    return write_suite(
        tmp,
        "name: jh\nkind: judge\ndata: data.jsonl\nprompt: 'Q: {{ question }}'\nreference: answer\n"
        "generation: {max_new_tokens: 6}\n"
        f"judge:\n{judge}\n  sanity: sanity.jsonl\n",
        DATA,
    )


def _rubric(url: str, **ep) -> str:
    endpoint = {"base_url": url, "model": "fake", "backoff_base": 0.01, "parse_retries": 0, **ep}
    return (
        "  type: rubric\n  criteria: [{name: accuracy, description: 'Correct?', max_points: 4}]\n"
        f"  endpoint: {json.dumps(endpoint)}"
    )


def _two_runs(tmp: Path, suite: Path, url: str, model: str = "fake") -> tuple[Path, str, str]:
    """Baseline and candidate: two revisions of the loopback endpoint as the judged model (no model
    loads; predictions files cannot feed a judge suite)."""
    db = tmp / "t.duckdb"
    base, cand = f"openai:{model}@{url}?revision=base", f"openai:{model}@{url}?revision=cand"
    for spec in (base, cand):
        r = run_cli("run", "-m", spec, "-s", str(suite), "--db", str(db), "--no-progress")
        assert r.returncode == 0, r.stderr
    return db, base, cand


def _gate(tmp: Path, db: Path, base: str, cand: str, policy: str):
    pol = tmp / "policy.yaml"
    pol.write_text(policy)
    return run_cli("gate", "--baseline", base, "--candidate", cand,
                   "--policy", str(pol), "--db", str(db), "--junit", str(tmp / "j.xml"))  # fmt: skip


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI() as srv:
        yield srv


def _health(db: Path) -> list[dict]:
    with Store(db) as s:
        ids = [r[0] for r in s.db.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()]
        return [get_health(s, i) for i in ids]


def test_constant_judge_is_unhealthy_and_fails_the_gate_by_default(server, tmp_path):
    server.reset()  # every answer gets the same mid-range score: "always answers 3"
    db, base, cand = _two_runs(tmp_path, _suite(tmp_path, _rubric(server.base_url)), server.base_url)
    for h in _health(db):
        assert h["n"] == len(QA) and h["parse_failures"] == 0 and h["distinct_scores"] == 1
        assert h["score_sd"] == 0.0
        # the sanity set: reference and wrong answers get the same score, so it cannot tell them apart
        assert h["sanity"]["separation"] == 0.0 and h["sanity"]["tells_apart"] is False
    with Store(db) as s:
        last = s.db.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    shown = run_cli("show", last, "--db", str(db))
    line = " ".join(shown.stdout.split())
    assert "judge health (rubric)" in line and "cannot tell reference from wrong answers" in line, line
    assert "unhealthy: every answer got the same score" in line
    r = _gate(tmp_path, db, base, cand, "rules:\n  - {suite: jh, metric: total, max_drop: 1}\n")
    assert r.returncode == 1, r.stdout
    assert "judge_health" in r.stdout and "same score" in r.stdout
    # the same runs pass when the policy explicitly opts out of the default
    ok = _gate(
        tmp_path, db, base, cand, "judge_health: warn\nrules:\n  - {suite: jh, metric: total, max_drop: 1}\n"
    )
    assert ok.returncode == 0, ok.stdout
    assert "warning" in ok.stdout
    # the explicit rules: the sanity set cannot tell reference from wrong answers; no human labels
    for rule, says in (
        ("judge_min_separation: 0.5", "reference answers beat wrong ones by 0.00 < 0.5"),
        ("judge_min_kappa: 0.4", "no human labels to compute kappa"),
    ):
        r = _gate(tmp_path, db, base, cand, "judge_health: off\nrules:\n  - {suite: jh, " + rule + "}\n")
        assert r.returncode == 1 and says in " ".join(r.stdout.split()), r.stdout


def test_garbage_judge_counts_parse_failures(server, tmp_path):
    server.reset(default="garbage")
    db, base, cand = _two_runs(tmp_path, _suite(tmp_path, _rubric(server.base_url)), server.base_url)
    with Store(db) as s:
        errors = s.db.execute(
            "SELECT count(*) FROM scores WHERE metric = 'total' AND error IS NOT NULL"
        ).fetchone()
    for h in _health(db):
        assert h["parse_failures"] == len(QA) and h["parse_failure_rate"] == 1.0
    assert errors[0] == 2 * len(QA)  # never scored as 0
    r = _gate(tmp_path, db, base, cand, "rules:\n  - {suite: jh, judge_max_parse_failures: 0.2}\n")
    assert r.returncode == 1 and "unparseable" in r.stdout


def test_judge_that_flips_on_swap_has_zero_consistency(server, tmp_path):
    # always "A": the verdict follows the position, not the answer
    server.reset(reply=lambda body: json.dumps({"winner": "A", "rationale": "first"}))
    judge = _rubric(server.base_url).replace("type: rubric", "type: pairwise\n  baseline: smollm2")
    db = tmp_path / "t.duckdb"
    suite = _suite(tmp_path, judge)
    r = run_cli("run", "-m", f"openai:fake@{server.base_url}", "-s", str(suite), "--db", str(db),
                "--limit", "3", "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    with Store(db) as s:
        run_id = s.db.execute("SELECT run_id FROM runs").fetchone()[0]
        vals = [v for (v,) in s.db.execute(
            "SELECT value FROM scores WHERE run_id = ? AND metric = 'consistency' AND error IS NULL", [run_id]
        ).fetchall()]  # fmt: skip
        h = get_health(s, run_id)
    assert len(vals) == 3 and h["consistency"] == pytest.approx(np.mean(vals)) == 0.0
    # the sanity pairs (reference vs "I like turtles"): inconsistent too, so a tie, win rate 0.5
    assert h["sanity"]["reference_win_rate"] == 0.5 and h["sanity"]["tells_apart"] is False
    from harness.store.judge_health import DEFAULTS, problems

    assert any("position consistency" in p for p in problems(h, DEFAULTS))
    # the gate rule on it (the run gated against itself: only the judge's health can fail it)
    r = _gate(
        tmp_path,
        db,
        run_id,
        run_id,
        "judge_health: off\nrules:\n  - {suite: jh, judge_min_consistency: 0.8}\n",
    )
    assert r.returncode == 1 and "position consistency 0.00 < 0.8" in " ".join(r.stdout.split()), r.stdout


@pytest.mark.slow
def test_real_llama_judge_health_matches_its_stored_scores(llama, tmp_path):
    ep = {"model": "smollm2", "max_tokens": 96, "timeout": 120}
    db, base, cand = _two_runs(
        tmp_path, _suite(tmp_path, _rubric(llama.base_url, **ep)), llama.base_url, "smollm2"
    )
    healths = _health(db)
    with Store(db) as s:
        for h in healths:
            vals = [
                v
                for (v,) in s.db.execute(
                    "SELECT value FROM scores WHERE run_id = ? AND metric = 'total' AND error IS NULL",
                    [h["run_id"]],
                ).fetchall()
            ]
            errs = s.db.execute(
                "SELECT count(*) FROM scores WHERE run_id = ? AND metric = 'total' AND error IS NOT NULL",
                [h["run_id"]],
            ).fetchone()[0]
            assert h["judge"] == "rubric" and h["n"] == len(QA) and h["parse_failures"] == errs
            assert h["distinct_scores"] == len(set(vals))
            if len(vals) > 1:
                assert h["score_sd"] == pytest.approx(np.std(vals, ddof=1))
            assert h["sanity"]["n"] == 3 and "separation" in h["sanity"]
    r = _gate(tmp_path, db, base, cand, "rules:\n  - {suite: jh, metric: total, max_drop: 4}\n")
    # healthy or not, the verdict names the judge's state
    assert r.returncode in (0, 1) and "judge" in r.stdout


def _score_by_question(body: dict) -> str:
    """A judge that grades the question, not the answer: scores spread over the suite (0..4), but
    a reference and a wrong answer to one question get the same score."""
    from tests.fake_openai import answer_for

    text = json.dumps(body.get("messages"), ensure_ascii=False)
    k = next((i for i, (_, q, _) in enumerate(QA) if q in text), 0)
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
    out = answer_for(schema)
    for name, prop in ((schema or {}).get("properties") or {}).items():
        if prop.get("type") in ("integer", "number"):
            out[name] = k % 5
    return json.dumps(out)


def test_judge_that_cannot_tell_reference_from_wrong_fails_the_default(server, tmp_path):
    # #21: spread scores and no parse failures passed before; a sanity separation of +0.00 is not health
    server.reset(reply=_score_by_question)
    db, base, cand = _two_runs(tmp_path, _suite(tmp_path, _rubric(server.base_url)), server.base_url)
    for h in _health(db):
        assert h["parse_failures"] == 0 and h["distinct_scores"] >= 2
        assert h["sanity"]["separation"] == 0.0 and h["sanity"]["tells_apart"] is False
    r = _gate(tmp_path, db, base, cand, "rules:\n  - {suite: jh, metric: total, max_drop: 4}\n")
    out = " ".join(r.stdout.split())
    assert r.returncode == 1, r.stdout
    assert "cannot tell reference from wrong answers" in out and "separation +0.00" in out
    assert "judge healthy" not in out
    shown = run_cli("show", _health(db)[0]["run_id"], "--db", str(db))
    assert "unhealthy: sanity set: cannot tell reference from wrong answers" in " ".join(shown.stdout.split())
