"""Like with like (#21 §1–§2): every run stores how it measured, and compare / gate / report refuse
a pair measured differently unless the mismatch is allowed by name — real SmolLM2 runs, a real
DuckDB file, the CLI as a user runs it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from harness.runner import RunOptions, run_suite
from harness.store import Store
from suites import load_suite
from tests.conftest import run_cli, table_dump, write_suite

QA = "\n".join(
    json.dumps(r)
    for r in [
        {"id": "q1", "question": "What is the capital of France?", "answer": "Paris"},
        {"id": "q2", "question": "How many legs does a spider have?", "answer": "eight"},
        {"id": "q3", "question": "What colour is the sky on a clear day?", "answer": "blue"},
        {"id": "q4", "question": "What is two plus two?", "answer": "four"},
    ]
)
TEXTS = "\n".join(
    json.dumps({"id": f"t{i}", "text": t})
    for i, t in enumerate(
        [
            "The library opens at nine in the morning and closes at six in the evening on weekdays.",
            "A small boat drifted slowly across the lake while the sun went down behind the hills.",
            "Fine-tuning a language model changes its weights so that it follows a new set of examples.",
        ]
    )
)
POLICY = """name: like-with-like
{extra}
rules:
  - {{suite: "*", metric: "*", max_drop: 1.0}}
"""


def task_yaml(max_new_tokens: int = 8) -> str:
    return f"""name: cmp-qa
kind: task
data: data.jsonl
prompt: "Answer briefly.\\nQuestion: {{{{ question }}}}"
reference: answer
generation: {{max_new_tokens: {max_new_tokens}, stop: ["\\n"]}}
metrics: [exact_match, token_f1, {{name: macro_f1, labels: [Paris, eight, blue, four]}}]
"""


def ppl_yaml(max_length: int) -> str:
    return f"name: cmp-text\nkind: perplexity\ndata: data.jsonl\nmax_length: {max_length}\n"


def _run(db, smollm2, path) -> str:
    with Store(db) as store:
        return run_suite(store, smollm2, load_suite(path), RunOptions(batch_size=4)).run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory, smollm2):
    """One store: task runs with two generation settings, perplexity runs with two windows."""
    root = tmp_path_factory.mktemp("cmp")
    db = root / "t.duckdb"
    out = {
        "gen8": _run(db, smollm2, write_suite(root / "a", task_yaml(8), QA)),
        "gen8b": _run(db, smollm2, write_suite(root / "a2", task_yaml(8), QA)),
        "gen12": _run(db, smollm2, write_suite(root / "b", task_yaml(12), QA)),
        "w64": _run(db, smollm2, write_suite(root / "c", ppl_yaml(64), TEXTS)),
        "w16": _run(db, smollm2, write_suite(root / "d", ppl_yaml(16), TEXTS)),
    }
    return db, root, out


def test_every_run_stores_its_measurement_record(runs):
    db, _, r = runs
    shown = json.loads(run_cli("show", r["gen8"], "--db", str(db), "--json").stdout)
    rec = shown["measurement"]
    assert rec["generation"] == {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "stop": ["\n"]}
    assert rec["metrics"]["macro_f1"]["version"] == 2 and rec["metrics"]["exact_match"]["version"] == 1
    assert rec["chat"]["rendered"] == "local" and rec["chat"]["template"]
    assert rec["identity"]["backend"] == "hf" and rec["identity"]["dtype"] == "float32"
    ppl = json.loads(run_cli("show", r["w64"], "--db", str(db), "--json").stdout)["measurement"]
    assert ppl["window"] == {"max_length": 64, "stride": None}
    ll = ppl["loglikelihood"]
    assert ll["first_token_scored"] is True and ll["prefix_token"] and ll["tokenizer"]


def test_same_measurement_compares_with_what_differs_shown(runs):
    db, _, r = runs
    out = run_cli("compare", r["gen8"], r["gen8b"], "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "MEASURED DIFFERENTLY" not in out.stdout


def test_generation_parameters_differ_refused_then_allowed_and_shown_everywhere(runs, tmp_path):
    db, root, r = runs
    before = table_dump(db)
    out = run_cli("compare", r["gen8"], r["gen12"], "--db", str(db))
    assert out.returncode == 2, out.stdout + out.stderr
    msg = " ".join(out.stderr.split())
    assert r["gen8"] in msg and r["gen12"] in msg
    assert "generation.max_new_tokens: 8 vs 12" in msg and "--allow-mismatch generation" in msg
    assert table_dump(db) == before  # nothing written

    ok = run_cli("compare", r["gen8"], r["gen12"], "--db", str(db), "--allow-mismatch", "generation")
    assert ok.returncode == 0, ok.stderr
    assert "MEASURED DIFFERENTLY (allowed: generation): generation.max_new_tokens: 8 vs 12" in ok.stdout
    js = json.loads(
        run_cli(
            "compare", r["gen8"], r["gen12"], "--db", str(db), "--allow-mismatch", "generation", "--json"
        ).stdout
    )
    assert js["comparability"]["allowed_mismatches"][0]["what"] == "generation.max_new_tokens"
    assert all(m["mismatches"] for m in js["metrics"])

    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.format(extra=""))
    gate = [
        "gate",
        "--baseline",
        r["gen8"],
        "--candidate",
        r["gen12"],
        "--policy",
        str(policy),
        "--db",
        str(db),
    ]
    refused = run_cli(*gate)
    assert refused.returncode == 2 and "generation.max_new_tokens: 8 vs 12" in " ".join(
        refused.stderr.split()
    )
    policy.write_text(POLICY.format(extra="allow_mismatch: [generation]"))
    md, junit = tmp_path / "s.md", tmp_path / "j.xml"
    allowed = run_cli(*gate, "--summary", str(md), "--junit", str(junit))
    assert allowed.returncode in (0, 1), allowed.stderr
    assert "MEASURED DIFFERENTLY (allowed: generation)" in allowed.stdout
    assert "MEASURED DIFFERENTLY (allowed: generation)" in md.read_text()
    props = [
        p.get("value")
        for p in ET.parse(junit).iter("property")
        if p.get("name", "").startswith("measurement.")
    ]
    assert any("generation.max_new_tokens: 8 vs 12" in (v or "") for v in props)

    html = tmp_path / "r.html"
    assert run_cli(*gate, "--html", str(html)).returncode in (0, 1)
    assert (
        "MEASURED DIFFERENTLY (allowed: generation): generation.max_new_tokens: 8 vs 12" in html.read_text()
    )


def test_perplexity_window_differs_refused(runs):
    db, _, r = runs
    out = run_cli("compare", r["w64"], r["w16"], "--db", str(db))
    assert out.returncode == 2
    assert "window max_length: 64 vs 16" in " ".join(out.stderr.split())
    assert (
        run_cli("compare", r["w64"], r["w16"], "--db", str(db), "--allow-mismatch", "window").returncode == 0
    )


def _edit_record(db, run_id, edit) -> None:
    import duckdb

    con = duckdb.connect(str(db))
    try:
        rec = json.loads(con.execute("SELECT measurement FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])
        edit(rec)
        con.execute("UPDATE runs SET measurement = ? WHERE run_id = ?", [json.dumps(rec), run_id])
    finally:
        con.close()


def test_metric_version_differs_refused_for_that_metric_only(runs, tmp_path):
    """A baseline scored by an older definition of macro-F1 (its record says version 1)."""
    db, root, r = runs
    old = tmp_path / "old.duckdb"
    old.write_bytes(db.read_bytes())

    def v1(rec):
        rec["metrics"]["macro_f1"]["version"] = 1

    _edit_record(old, r["gen8"], v1)
    out = run_cli("compare", r["gen8"], r["gen8b"], "--db", str(old))
    assert out.returncode == 2
    assert "metric macro_f1 version: 1 vs 2" in " ".join(out.stderr.split())
    allowed = run_cli(
        "compare", r["gen8"], r["gen8b"], "--db", str(old), "--allow-mismatch", "metric", "--json"
    )
    metrics = {m["metric"]: m for m in json.loads(allowed.stdout)["metrics"]}
    assert metrics["macro_f1"]["mismatches"] and not metrics["exact_match"]["mismatches"]


def test_scored_token_counts_are_compared_example_by_example(runs, tmp_path):
    """A run whose records agree but whose rows scored one token fewer per text (an endpoint that
    leaves the first token unscored, recorded by an older tunegate): refused with the example."""
    import duckdb

    db, _, r = runs
    copy = tmp_path / "c.duckdb"
    copy.write_bytes(db.read_bytes())
    con = duckdb.connect(str(copy))
    try:
        # a second run of the same suite whose generations scored n - 1 tokens
        rows = con.execute("SELECT * FROM runs WHERE run_id = ?", [r["w64"]]).fetchall()
        cols = [d[0] for d in con.description]
        new = dict(zip(cols, rows[0]), run_id="r-shifted0")
        con.execute(
            f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", list(new.values())
        )
        con.execute(
            "INSERT INTO run_metrics SELECT 'r-shifted0', metric, spec, aggregation, higher_is_better,"
            " is_binary FROM run_metrics WHERE run_id = ?",
            [r["w64"]],
        )
        con.execute(
            "INSERT INTO generations SELECT 'shifted-' || cache_key, model_id, request_type, prompt, params,"
            " output, json_object('nll', CAST(json_extract(result, '$.nll') AS DOUBLE) - 1,"
            " 'n_tokens', CAST(json_extract(result, '$.n_tokens') AS INTEGER) - 1), prompt_tokens,"
            " output_tokens, latency_s, error, created_at FROM generations WHERE cache_key IN"
            " (SELECT cache_key FROM run_examples WHERE run_id = ?)",
            [r["w64"]],
        )
        con.execute(
            "INSERT INTO run_examples SELECT 'r-shifted0', example_id, 'shifted-' || cache_key, cached,"
            " error, created_at FROM run_examples WHERE run_id = ?",
            [r["w64"]],
        )
        con.execute(
            "INSERT INTO scores SELECT 'r-shifted0', example_id, metric, value, weight, error, detail"
            " FROM scores WHERE run_id = ?",
            [r["w64"]],
        )
    finally:
        con.close()
    out = run_cli("compare", r["w64"], "r-shifted0", "--db", str(copy))
    assert out.returncode == 2
    msg = " ".join(out.stderr.split())
    assert "scored tokens per example (differ on 3 of 3 paired examples, first on example 't0')" in msg


def test_a_run_without_a_record_compares_with_what_was_not_checked(runs, tmp_path):
    import duckdb

    db, _, r = runs
    old = tmp_path / "legacy.duckdb"
    old.write_bytes(db.read_bytes())
    con = duckdb.connect(str(old))
    con.execute("UPDATE runs SET measurement = NULL WHERE run_id = ?", [r["gen8"]])
    con.close()
    out = run_cli("compare", r["gen8"], r["gen8b"], "--db", str(old))
    assert out.returncode == 0, out.stderr
    assert "not checked (a run stored before measurement records): metric versions" in out.stdout
    # what can be rebuilt from the stored suite config is still checked
    refused = run_cli("compare", r["gen8"], r["gen12"], "--db", str(old))
    assert refused.returncode == 2 and "generation.max_new_tokens: 8 vs 12" in " ".join(
        refused.stderr.split()
    )


def test_unknown_allow_mismatch_field_is_exit_2(runs):
    db, _, r = runs
    out = run_cli("compare", r["gen8"], r["gen12"], "--db", str(db), "--allow-mismatch", "generations")
    assert out.returncode == 2 and "unknown mismatch field 'generations'" in out.stderr


def judge_yaml(base_url: str, model: str) -> str:
    ep = json.dumps({"base_url": base_url, "model": model, "backoff_base": 0.01})
    return f"""name: cmp-judge
kind: judge
data: data.jsonl
prompt: "Answer briefly.\\nQuestion: {{{{ question }}}}"
reference: answer
generation: {{max_new_tokens: 8, stop: ["\\n"]}}
judge:
  type: rubric
  criteria:
    - {{name: accuracy, description: "Correct?", max_points: 4}}
  endpoint: {ep}
"""


def test_two_judges_refused(tmp_path, smollm2):
    from tests.fake_openai import FakeOpenAI

    db = tmp_path / "j.duckdb"
    with FakeOpenAI() as srv:
        a = _run(db, smollm2, write_suite(tmp_path / "a", judge_yaml(srv.base_url, "judge-a"), QA))
        b = _run(db, smollm2, write_suite(tmp_path / "b", judge_yaml(srv.base_url, "judge-b"), QA))
    out = run_cli("compare", a, b, "--db", str(db))
    assert out.returncode == 2
    msg = " ".join(out.stderr.split())
    assert (
        "judge of accuracy: args.endpoint.model: judge-a vs judge-b" in msg
        and "--allow-mismatch judge" in msg
    )
    assert run_cli("compare", a, b, "--db", str(db), "--allow-mismatch", "judge").returncode == 0


def test_fewshot_0_vs_2_refused(tmp_path, smollm2):
    from tests.conftest import ROOT

    tasks = ROOT / "suites" / "lm_eval_tasks"
    db = tmp_path / "b.duckdb"
    ids = {}
    for shots in (0, 2):
        text = f"name: cmp-mc\nkind: benchmark\ninclude_path: {tasks}\ntasks: [mini_knowledge]\nlimit: 3\n"
        ids[shots] = _run(db, smollm2, write_suite(tmp_path / f"s{shots}", text + f"num_fewshot: {shots}\n"))
    out = run_cli("compare", ids[0], ids[2], "--db", str(db))
    assert out.returncode == 2
    assert "num_fewshot of mini_knowledge: 0 vs 2" in " ".join(out.stderr.split())
    rec = json.loads(run_cli("show", ids[2], "--db", str(db), "--json").stdout)["measurement"]
    assert rec["suite_facts"]["fewshot"] == {"mini_knowledge": 2} and rec["suite_facts"]["lm_eval"]
    assert run_cli("compare", ids[0], ids[2], "--db", str(db), "--allow-mismatch", "fewshot").returncode == 0
