"""The CI gate on stored runs: verdicts, the significance switch, JUnit, Markdown, bad input."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from harness.store import ScoreRow, Store
from tests.conftest import run_cli, table_dump

N = 60


def _make_store(path, cand_f1, *, base_f1=None, cand_ppl_factor=1.0, cand_errors=0):
    """Two models × two suites (qa: token_f1 + exact_match, text: perplexity), written as runs are."""
    rng = np.random.default_rng(7)
    base_f1 = rng.uniform(0.2, 0.9, N) if base_f1 is None else base_f1
    em = (base_f1 > 0.5).astype(float)
    ppl = rng.uniform(8, 20, N)
    with Store(path) as s:
        for m in ("m-base", "m-cand"):
            s.upsert_model(m, m.removeprefix("m-"), "hf", m * 8)
        s.upsert_suite("qa-1", "qa", "task", "h1", "qa.yaml", {}, [(f"q{i}", {}, ["x"]) for i in range(N)])
        s.upsert_suite(
            "text-1", "text", "perplexity", "h2", "t.yaml", {}, [(f"t{i}", {}, []) for i in range(N)]
        )
        for model, f1, ppl_f, errors in (
            ("m-base", base_f1, 1.0, 0),
            ("m-cand", cand_f1(base_f1), cand_ppl_factor, cand_errors),
        ):
            side = model.removeprefix("m-")
            qa = [("token_f1", {}, "mean", True, False), ("exact_match", {}, "mean", True, True)]
            s.create_run(
                f"r-qa-{side}",
                model,
                "qa-1",
                config={},
                seed=0,
                versions={},
                git_sha=None,
                host="h",
                n_examples=N,
                metrics=qa,
            )
            rows = [ScoreRow(f"q{i}", "token_f1", float(f1[i])) for i in range(N - errors)]
            rows += [
                ScoreRow(f"q{i}", "token_f1", None, 1.0, "RuntimeError: boom") for i in range(N - errors, N)
            ]
            rows += [ScoreRow(f"q{i}", "exact_match", float(em[i])) for i in range(N)]
            s.write_batch(f"r-qa-{side}", [], [(f"q{i}", None, False, None) for i in range(N)], rows)
            s.mark_run(f"r-qa-{side}", "completed")
            s.create_run(
                f"r-text-{side}",
                model,
                "text-1",
                config={},
                seed=0,
                versions={},
                git_sha=None,
                host="h",
                n_examples=N,
                metrics=[("perplexity", {}, "perplexity", False, False)],
            )
            s.write_batch(
                f"r-text-{side}",
                [],
                [(f"t{i}", None, False, None) for i in range(N)],
                [ScoreRow(f"t{i}", "perplexity", float(ppl[i] * ppl_f), 100.0) for i in range(N)],
            )
            s.mark_run(f"r-text-{side}", "completed")
    return path


def _policy(tmp_path, text, name="policy.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _gate(db, policy, *extra, baseline="base", candidate="cand", **kw):
    return run_cli(
        "gate",
        "--baseline",
        baseline,
        "--candidate",
        candidate,
        "--policy",
        str(policy),
        "--db",
        str(db),
        *extra,
        **kw,
    )


FORGETTING = """
required: [qa, text]
rules:
  - {suite: "*", metric: "*", max_drop: 0.01}
  - {suite: text, metric: perplexity, max: 30}
"""


def test_same_runs_pass_one_policy_and_fail_another(tmp_path):
    db = _make_store(tmp_path / "g.duckdb", lambda b: b + 0.05)  # candidate better on every example
    ok = _gate(db, _policy(tmp_path, FORGETTING))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "gate passed" in ok.stdout
    strict = _policy(tmp_path, "rules:\n  - {suite: qa, metric: token_f1, min_delta: 0.10}\n", "strict.yaml")
    bad = _gate(db, strict)
    assert bad.returncode == 1
    assert "improved by +0.05 (needs >= 0.1)" in bad.stdout


def test_perplexity_rise_is_a_drop(tmp_path):
    db = _make_store(tmp_path / "g.duckdb", lambda b: b, cand_ppl_factor=1.2)
    r = _gate(db, _policy(tmp_path, "rules:\n  - {suite: text, metric: perplexity, max_drop: 0.5}\n"))
    assert r.returncode == 1
    assert "FAIL" in r.stdout and "perplexity" in r.stdout


def test_significance_switch(tmp_path):
    rng = np.random.default_rng(3)
    noise = rng.normal(-0.02, 0.15, N)  # small mean drop, lots of noise
    db = _make_store(tmp_path / "g.duckdb", lambda b: np.clip(b + noise, 0, 1))
    plain = _policy(tmp_path, "rules:\n  - {suite: qa, metric: token_f1, max_drop: 0.005}\n", "plain.yaml")
    with_sig = _policy(
        tmp_path,
        "rules:\n  - {suite: qa, metric: token_f1, max_drop: 0.005, significance: 0.05}\n",
        "sig.yaml",
    )
    assert _gate(db, plain).returncode == 1
    r = _gate(db, with_sig)
    assert r.returncode == 0, r.stdout
    assert "not significant" in r.stdout


def test_significant_drop_fails_even_with_significance(tmp_path):
    db = _make_store(tmp_path / "g.duckdb", lambda b: b - 0.1)
    r = _gate(
        db,
        _policy(tmp_path, "rules:\n  - {suite: qa, metric: token_f1, max_drop: 0.01, significance: 0.05}\n"),
    )
    assert r.returncode == 1 and "t p=" in r.stdout  # a mean delta: the paired t-test (#15)


def test_junit_and_markdown_and_step_summary(tmp_path):
    db = _make_store(tmp_path / "g.duckdb", lambda b: b - 0.1)
    junit, summary, step = tmp_path / "j.xml", tmp_path / "s.md", tmp_path / "step.md"
    step.write_text("earlier step\n")
    r = _gate(
        db,
        _policy(tmp_path, FORGETTING),
        "--junit",
        str(junit),
        "--summary",
        str(summary),
        env={"GITHUB_STEP_SUMMARY": str(step)},
    )
    assert r.returncode == 1
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    failures = root.findall(".//testcase/failure")
    assert len(cases) == 4 and int(root.get("tests")) == 4  # 3 metrics × max_drop + 1 max
    assert len(failures) == int(root.get("failures")) >= 1
    f1_fail = next(c for c in cases if c.get("name") == "token_f1 max_drop")
    assert "exceeds 0.01" in f1_fail.find("failure").get("message")
    md = summary.read_text()
    assert md.startswith("## tunegate gate") and "❌ **FAIL**" in md and "| token_f1 | max_drop |" in md
    assert step.read_text() == "earlier step\n" + md


def test_error_rate_rule(tmp_path):
    db = _make_store(tmp_path / "g.duckdb", lambda b: b, cand_errors=3)
    r = _gate(db, _policy(tmp_path, "rules:\n  - {suite: qa, metric: token_f1, max_error_rate: 0.02}\n"))
    assert r.returncode == 1 and "3/60 candidate examples errored" in r.stdout


def test_run_ids_work_as_sides(tmp_path):
    db = _make_store(tmp_path / "g.duckdb", lambda b: b + 0.05)
    r = _gate(
        db,
        _policy(tmp_path, "rules:\n  - {metric: token_f1, min_delta: 0.01}\n"),
        baseline="r-qa-base",
        candidate="r-qa-cand",
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "policy, baseline, candidate, message",
    [
        (
            "rules:\n  - {suite: qa, metric: token_f1, max_drop: 0.1}\n  - {suite: nope, max_drop: 0.1}\n",
            "base",
            "cand",
            "policy.yaml:3 field 'rules.1.suite': no compared suite matches 'nope'",
        ),
        (
            "rules:\n  - {suite: qa, metric: bleu, max_drop: 0.1}\n",
            "base",
            "cand",
            "field 'rules.0.metric': no metric matches 'bleu'",
        ),
        ("required: [qa, gsm8k]\nrules:\n  - {max_drop: 0.1}\n", "base", "cand", "required suite 'gsm8k'"),
        ("rules:\n  - {suite: qa, max_dorp: 0.1}\n", "base", "cand", "unknown key"),
        ("rules:\n  - {suite: qa}\n", "base", "cand", "a rule needs at least one of"),
        ("rules: []\n", "base", "cand", "at least 1 item"),
        (
            "rules:\n  - {max_drop: 0.1}\n",
            "r-qa-base",
            "r-text-cand",
            "suite 'qa' has no completed run for the candidate",
        ),
        (
            "rules:\n  - {max_drop: 0.1}\n",
            "base",
            "nobody",
            "'nobody' is neither a run id nor a stored model",
        ),
        ("rules:\n  - {max_drop: 0.1}\n", "base", "r-nope", "unknown run id 'r-nope'"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(tmp_path, policy, baseline, candidate, message):
    db = _make_store(tmp_path / "g.duckdb", lambda b: b)
    before = table_dump(db)
    r = _gate(db, _policy(tmp_path, policy), baseline=baseline, candidate=candidate)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr.replace("\n", "")
    assert table_dump(db) == before


def test_gate_reads_only_the_store(tmp_path):
    """No model files needed: the models in this store do not exist anywhere on disk."""
    db = _make_store(tmp_path / "g.duckdb", lambda b: b)
    assert _gate(db, _policy(tmp_path, FORGETTING)).returncode == 0
