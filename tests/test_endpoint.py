"""`openai:` backend against real servers on loopback: llama-cpp-python's OpenAI-compatible server
(the real, buggy echo), and the misbehaving server for faults a real one cannot make on demand."""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from tests.conftest import run_cli, table_dump, write_suite
from tests.fake_openai import FakeOpenAI

QA = """name: ep-qa
kind: task
data: data.jsonl
prompt: "Answer in one word. {{ question }}"
reference: answer
generation: {max_new_tokens: 8, stop: ["\\n"]}
metrics: [exact_match, token_f1]
"""
RAW = QA.replace("name: ep-qa", "name: ep-raw").replace("metrics:", "chat: false\nmetrics:")
DATA = "".join(
    json.dumps({"id": f"q{i}", "question": q, "answer": a}) + "\n"
    for i, (q, a) in enumerate(
        [("What is the capital of France?", "Paris"), ("What colour is the sky?", "blue"), ("2+2=?", "4")]
    )
)


def _calls(out: str) -> int:
    return sum(int(n) for n in re.findall(r"(\d+) model calls", out))


def _run_ids(out: str) -> list[str]:
    return re.findall(r"^(r-[0-9a-f]{8})", out, flags=re.M)


@pytest.fixture()
def suites(tmp_path):
    qa = write_suite(tmp_path / "qa", QA, DATA)
    raw = write_suite(tmp_path / "raw", RAW, DATA)
    return qa, raw


def test_chat_and_completion_modes_store_runs_and_rerun_for_free(llama, tmp_path, suites):
    qa, raw = suites
    db = tmp_path / "ep.duckdb"
    spec = f"openai:smollm2@{llama.base_url}"
    r = run_cli("run", "--model", spec, "--suite", str(qa), "--suite", str(raw), "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert _calls(r.stdout) == 6  # 3 chat + 3 raw completions
    con = duckdb.connect(str(db), read_only=True)
    gens = con.execute(
        "SELECT prompt, output, prompt_tokens, output_tokens, result FROM generations"
    ).fetchall()
    con.close()
    chat = [g for g in gens if g[0].startswith("[")]
    assert len(chat) == 3 and json.loads(chat[0][0])[0]["role"] == "user"  # messages were sent as messages
    assert all(g[1] is not None and g[2] and g[3] is not None for g in gens)  # output, token usage
    assert all(json.loads(g[4])["finish_reason"] in ("stop", "length") for g in gens)
    # chat=0: the chat suite is rendered (no tokenizer given: the turns' text) and sent to /completions
    r0 = run_cli("run", "--model", spec + "?chat=0", "--suite", str(qa), "--db", str(db))
    assert r0.returncode == 0, r0.stderr
    # a re-run makes zero endpoint calls; a new revision misses the cache
    again = run_cli("run", "--model", spec, "--suite", str(qa), "--suite", str(raw), "--db", str(db))
    assert again.returncode == 0 and _calls(again.stdout) == 0, again.stdout
    rev = run_cli("run", "--model", spec + "?revision=v2", "--suite", str(qa), "--db", str(db))
    assert rev.returncode == 0 and _calls(rev.stdout) == 3, rev.stdout


def test_base_vs_candidate_alias_compare_and_gate(llama, tmp_path, suites):
    qa, _ = suites
    db = tmp_path / "ab.duckdb"
    base = run_cli("run", "--model", f"openai:smollm2@{llama.base_url}", "--suite", str(qa), "--db", str(db))
    cand = run_cli(
        "run", "--model", f"openai:candidate@{llama.base_url}", "--suite", str(qa), "--db", str(db)
    )
    assert base.returncode == 0 and cand.returncode == 0, base.stderr + cand.stderr
    (rb,), (rc,) = _run_ids(base.stdout), _run_ids(cand.stdout)
    cmp_ = run_cli("compare", rb, rc, "--db", str(db))
    assert cmp_.returncode == 0, cmp_.stderr
    assert "exact_match" in cmp_.stdout
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "name: ep\nrules:\n  - {suite: '*', metric: '*', max_drop: 0.2}\n"
        "  - {suite: '*', metric: '*', max_error_rate: 0.0}\n"
    )
    gate = run_cli("gate", "--baseline", rb, "--candidate", rc, "--policy", str(policy), "--db", str(db))
    # the alias serves the same GGUF: greedy outputs are identical, so the candidate passes
    assert gate.returncode == 0, gate.stdout + gate.stderr
    # ...and a policy that asks for a real improvement fails on the same two runs (exit 1)
    policy.write_text("name: ep\nrules:\n  - {suite: '*', metric: exact_match, superior: 0.0}\n")
    gate = run_cli("gate", "--baseline", rb, "--candidate", rc, "--policy", str(policy), "--db", str(db))
    assert gate.returncode == 1 and "superior" in gate.stdout, gate.stdout + gate.stderr
    runs = run_cli("runs", "--db", str(db))
    assert "endpoint" in runs.stdout


def test_perplexity_on_llamacpp_server_is_refused_by_the_correctness_probe(llama, tmp_path):
    db = tmp_path / "ppl.duckdb"
    r = run_cli(
        "run", "--model", f"openai:smollm2@{llama.base_url}", "--suite", "heldout-text", "--db", str(db)
    )
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr
    assert "perplexity suite heldout-text needs prompt log-probabilities" in err
    assert "shifted" in err and "Traceback" not in err
    assert not db.exists()  # refused before the store is even opened


def test_lm_eval_generation_task_through_the_endpoint_stores_per_doc_rows(llama, tmp_path):
    from suites.loader import BUILTIN_DIR

    suite = tmp_path / "arith.yaml"
    suite.write_text(
        "name: ep-arith\nkind: benchmark\n"
        f"include_path: {BUILTIN_DIR.parent / 'lm_eval_tasks'}\ntasks: [mini_arith]\nlimit: 3\n"
    )
    db = tmp_path / "b.duckdb"
    r = run_cli("run", "--model", f"openai:smollm2@{llama.base_url}", "--suite", str(suite), "--db", str(db))
    assert r.returncode == 0, r.stdout + r.stderr
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT example_id, metric, value, error FROM scores ORDER BY example_id").fetchall()
    con.close()
    assert {e for e, *_ in rows} == {"mini_arith/0", "mini_arith/1", "mini_arith/2"}
    assert all(v is not None and err is None for _, _, v, err in rows)


# -- faults a real server cannot make on demand ---------------------------------------------


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as srv:
        yield srv


def _spec(fake: FakeOpenAI, **opts: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in {"timeout": "1", "max_retries": "2", **opts}.items())
    return f"openai:fake@{fake.base_url}?{q}"


def test_faults_are_retried_then_error_rows_never_zero_and_resume_retries_them(fake, tmp_path, suites):
    _, raw = suites
    db = tmp_path / "f.duckdb"
    # One request at a time (the transport holds its slot through retries), 3 attempts each:
    # q0: 429 (Retry-After 0) then ok; q1: 500 ×3 → error; q2: garbage JSON ×3 → error.
    st = fake.reset(retry_after="0", default="ok")
    st.script = ["429", "ok", "500", "500", "500", "badjson", "badjson", "badjson"]
    r = run_cli("run", "--model", _spec(fake, max_concurrency="1"), "--suite", str(raw), "--db", str(db))
    assert r.returncode == 0, r.stdout + r.stderr
    con = duckdb.connect(str(db), read_only=True)
    scores = con.execute("SELECT example_id, metric, value, error FROM scores").fetchall()
    gen_err = con.execute("SELECT error FROM generations WHERE error IS NOT NULL").fetchall()
    con.close()
    failed = {e for e, _, v, err in scores if err is not None}
    assert len(failed) == 2 and all(v is None for e, _, v, err in scores if e in failed)  # never 0
    assert any("HTTP 500" in g[0] for g in gen_err) and any("malformed reply" in g[0] for g in gen_err)
    (run_id,) = _run_ids(r.stdout)
    show = run_cli("show", run_id, "--db", str(db))
    assert "2 errors" in show.stdout
    # the server recovers: --resume retries the failed examples and replaces their rows
    fake.reset(default="ok")
    res = run_cli("run", "--resume", run_id, "--db", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    assert _calls(res.stdout) == 2
    con = duckdb.connect(str(db), read_only=True)
    n, n_err = con.execute("SELECT count(*), count(error) FROM scores WHERE run_id = ?", [run_id]).fetchone()
    con.close()
    assert (n, n_err) == (6, 0)  # 3 examples × 2 metrics, each once


def test_hang_past_timeout_is_an_error_row(fake, tmp_path, suites):
    _, raw = suites
    db = tmp_path / "h.duckdb"
    fake.reset(default="hang")
    r = run_cli(
        "run", "--model", _spec(fake, max_retries="0"), "--suite", str(raw), "--db", str(db), "--limit", "1"
    )
    fake.reset()
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(db), read_only=True)
    (err,) = con.execute("SELECT error FROM generations").fetchone()
    con.close()
    assert "timed out after 1 s" in err


def test_server_that_ignores_echo_is_refused_before_any_call(fake, tmp_path):
    db = tmp_path / "e.duckdb"
    fake.reset()
    r = run_cli("run", "--model", _spec(fake), "--suite", "heldout-text", "--db", str(db))
    assert r.returncode == 2 and "ignores `echo`" in r.stderr, r.stderr
    assert not db.exists()


def test_api_key_never_reaches_store_logs_or_report(fake, tmp_path, suites):
    qa, _ = suites
    key = "sk-test-7f3a9b2c4d5e6f708192"
    db = tmp_path / "k.duckdb"
    fake.reset(default="echo_auth")  # replies quote the Authorization header, key included
    env = {"MY_ENDPOINT_KEY": key}
    r = run_cli(
        "--debug",
        "run",
        "--model",
        _spec(fake, api_key_env="MY_ENDPOINT_KEY"),
        "--suite",
        str(qa),
        "--db",
        str(db),
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert fake.state.requests and key in fake.state.requests[0]["auth"]  # the key was really sent
    (run_id,) = _run_ids(r.stdout)
    rep = tmp_path / "rep.html"
    rr = run_cli("report", run_id, "--db", str(db), "-o", str(rep), env=env)
    assert rr.returncode == 0, rr.stderr
    assert key.encode() not in db.read_bytes()
    assert key not in rep.read_text() and key not in r.stdout + r.stderr
    fake.reset()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("openai:llama3", "expected openai:MODEL@BASE_URL"),
        ("openai:llama3@ftp://x/v1", "is not an http(s) URL"),
        ("openai:llama3@http://127.0.0.1:1/v1", "cannot reach http://127.0.0.1:1/v1"),
        ("openai:llama3@http://127.0.0.1:1/v1?bogus=1", "unknown option 'bogus'"),
        ("openai:llama3@http://127.0.0.1:1/v1?chat=2", "chat must be 0 or 1"),
        ("opena:llama3@http://127.0.0.1:1/v1", "Did you mean 'openai:'"),
    ],
)
def test_bad_specs_are_one_line_exit_2_store_unchanged(tmp_path, suites, spec, message):
    qa, _ = suites
    db = tmp_path / "s.duckdb"
    run_cli("run", "--model", "predictions:" + str(_preds(tmp_path)), "--suite", str(qa), "--db", str(db))
    before = table_dump(db)
    r = run_cli("run", "--model", spec, "--suite", str(qa), "--db", str(db))
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert table_dump(db) == before


def test_unknown_model_on_the_server(llama, tmp_path, suites):
    qa, _ = suites
    r = run_cli(
        "run",
        "--model",
        f"openai:nope@{llama.base_url}",
        "--suite",
        str(qa),
        "--db",
        str(tmp_path / "x.duckdb"),
    )
    assert r.returncode == 2 and "does not serve model 'nope' (it serves: smollm2" in r.stderr, r.stderr


def _preds(tmp_path):
    p = tmp_path / "preds.jsonl"
    p.write_text("".join(json.dumps({"id": f"q{i}", "output": "x"}) + "\n" for i in range(3)))
    return p


JUDGE = """name: ep-judge
kind: judge
data: data.jsonl
prompt: "Answer in one word. {{ question }}"
reference: answer
generation: {max_new_tokens: 8, stop: ["\\n"]}
judge:
  type: rubric
  criteria: [{name: accuracy, description: "Is the answer correct?", max_points: 4}]
  endpoint: {base_url: "URL", model: smollm2, max_tokens: 64}
"""


@pytest.mark.parametrize("chat", ["1", "0"])
def test_judge_suite_on_an_endpoint_model(llama, tmp_path, chat):
    """The judged model is the endpoint (chat or completion mode), the judge the same server."""
    path = write_suite(tmp_path, JUDGE.replace("URL", llama.base_url), DATA)
    db = tmp_path / "j.duckdb"
    spec = f"openai:smollm2@{llama.base_url}?chat={chat}"
    r = run_cli("run", "--model", spec, "--suite", str(path), "--db", str(db), "--limit", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT metric, value, error FROM scores ORDER BY metric").fetchall()
    sent = con.execute("SELECT prompt FROM generations").fetchall()
    con.close()
    assert len(rows) == 4 and all(v is not None or err for _, v, err in rows)  # an error is a row, not 0
    assert any(v is not None for _, v, _ in rows)  # and the judge really scored (not all errors)
    assert all(p.startswith("[") == (chat == "1") for (p,) in sent)  # messages vs rendered text
