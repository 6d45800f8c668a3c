"""`openai:MODEL@URL1,URL2`: replicas of one model behind one spec (harness.models.replicas),
against two real llama-cpp-python servers on loopback (one killed mid-run) and the misbehaving
server for a replica that reports another model."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import duckdb
import pytest

from tests.conftest import run_cli, write_suite
from tests.fake_openai import FakeOpenAI
from tests.llama_server import LlamaServer

QA = """name: rep-qa
kind: task
data: data.jsonl
prompt: "Answer in a few words. {{ question }}"
reference: answer
generation: {max_new_tokens: 8, stop: ["\\n"]}
metrics: [exact_match, token_f1]
"""
QUESTIONS = [
    ("What is the capital of France?", "Paris"),
    ("What colour is the sky?", "blue"),
    ("2+2=?", "4"),
    ("Name a fruit that is yellow.", "banana"),
    ("What do bees make?", "honey"),
    ("How many legs has a spider?", "eight"),
    ("What is frozen water called?", "ice"),
    ("Which planet do we live on?", "Earth"),
    ("What is the opposite of hot?", "cold"),
    ("What animal says moo?", "cow"),
    ("How many days are in a week?", "seven"),
    ("What colour is grass?", "green"),
]
DATA = "".join(
    json.dumps({"id": f"q{i:02d}", "question": q, "answer": a}) + "\n" for i, (q, a) in enumerate(QUESTIONS)
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two llama-cpp-python servers of the same GGUF, one thread each (same numerics)."""
    logs = tmp_path_factory.mktemp("replicas")
    with (
        LlamaServer(n_threads=1, log=logs / "a.log") as a,
        LlamaServer(n_threads=1, log=logs / "b.log") as b,
    ):
        yield a, b


def _run_in_process(db, spec, suite_path, on_progress=None):
    """One run of `spec` on the suite, in this process (so the test can act between batches)."""
    from harness.models import parse_model_spec, resolve_model
    from harness.models.backend import open_backend
    from harness.runner import RunOptions, run_suite
    from harness.store import Store
    from suites import load_suite

    backend = open_backend(resolve_model(parse_model_spec(spec)))
    start = (lambda desc, total: lambda n: on_progress(backend, n)) if on_progress else None
    with Store(db) as store:
        out = run_suite(store, backend, load_suite(str(suite_path)), RunOptions(batch_size=2), on_start=start)
    return backend, out


def _rows(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        examples = con.execute(
            "SELECT e.example_id, g.output, e.error FROM run_examples e"
            " JOIN generations g USING (cache_key) ORDER BY e.example_id"
        ).fetchall()
        scores = con.execute("SELECT example_id, metric, count(*) FROM scores GROUP BY ALL").fetchall()
    finally:
        con.close()
    return examples, scores


def test_replica_killed_mid_run_loses_and_duplicates_nothing(pair, tmp_path):
    a, b = pair
    suite = write_suite(tmp_path / "qa", QA, DATA)
    one_backend, one = _run_in_process(tmp_path / "one.duckdb", f"openai:smollm2@{a.base_url}", suite)
    assert one.n_errors == 0 and one.n_examples == len(QUESTIONS)

    killed = []

    def progress(backend, n: int) -> None:  # once B has answered: it dies with work in flight
        if not killed and backend.transport.replicas[1].served:
            os.kill(b.proc.pid, signal.SIGKILL)
            b.proc.wait(10)
            killed.append(n)

    backend, out = _run_in_process(
        tmp_path / "two.duckdb", f"openai:smollm2@{a.base_url},{b.base_url}", suite, progress
    )
    assert killed, "the run finished before the replica could be killed"
    pool = backend.transport
    first, second = pool.replicas
    assert second.down is not None, "the killed replica stayed in rotation"
    assert first.down is None
    assert second.served >= 1, "the second replica never answered: nothing was spread"
    assert first.served + second.served == len(QUESTIONS)  # each request answered exactly once
    assert out.n_errors == 0 and out.n_examples == len(QUESTIONS)

    rows_one, scores_one = _rows(tmp_path / "one.duckdb")
    rows_two, scores_two = _rows(tmp_path / "two.duckdb")
    assert [r[0] for r in rows_two] == sorted(f"q{i:02d}" for i in range(len(QUESTIONS)))  # no loss, no dup
    assert all(r[2] is None for r in rows_two)
    assert rows_two == rows_one  # the same greedy outputs as one server
    assert sorted(scores_two) == sorted(scores_one) and all(c == 1 for *_, c in scores_two)
    # the identity is the model's, not the URL list's: one replica and two share runs and cache
    assert backend.resolved.fingerprint == one_backend.resolved.fingerprint


def _entry(base_url: str) -> dict:
    with urllib.request.urlopen(f"{base_url}/models", timeout=10) as r:
        return json.loads(r.read())["data"][0]


@pytest.mark.parametrize("how", ["other_id", "other_root"])
def test_replicas_of_different_models_are_refused_at_start(pair, tmp_path, how):
    a, _ = pair
    suite = write_suite(tmp_path / "qa", QA, DATA)
    db = tmp_path / "t.duckdb"
    with FakeOpenAI() as fake:
        entry = _entry(a.base_url)
        entry = {**entry, "id": "other"} if how == "other_id" else {**entry, "root": "/elsewhere/model"}
        fake.state.model_entries = [entry]
        # credentials in a URL stay masked in what is printed
        fake_url = fake.base_url.replace("http://", "http://tok:s3cret-in-url@")
        r = run_cli(
            "run",
            "--model",
            f"openai:smollm2@{a.base_url},{fake_url}",
            "--suite",
            str(suite),
            "--db",
            str(db),
        )
        assert fake.state.requests == []  # refused before any request was sent
    err = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, err
    assert a.base_url in err and f"127.0.0.1:{fake.port}/v1" in err
    assert "s3cret-in-url" not in err
    assert ("does not serve model 'smollm2'" if how == "other_id" else "do not report the same model") in err
    assert (
        not db.exists()
        or not duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM runs").fetchone()[0]
    )


def test_replica_specs_and_model_files(tmp_path):
    from harness.errors import UserError
    from harness.models import parse_model_spec

    spec = parse_model_spec("openai:m@http://127.0.0.1:1/v1, http://127.0.0.1:2/v1/")
    assert spec.path == "http://127.0.0.1:1/v1"
    assert spec.options["base_urls"] == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert "base_urls" not in parse_model_spec("openai:m@http://127.0.0.1:1/v1").options
    with pytest.raises(UserError, match="listed twice"):
        parse_model_spec("openai:m@http://127.0.0.1:1/v1,http://127.0.0.1:1/v1")
    with pytest.raises(UserError, match="not an http"):
        parse_model_spec("openai:m@http://127.0.0.1:1/v1,ftp://x")
    f = tmp_path / "m.yaml"
    f.write_text("backend: openai\nmodel: m\nbase_urls: [http://127.0.0.1:1/v1, http://127.0.0.1:2/v1]\n")
    assert parse_model_spec(str(f)).options["base_urls"] == spec.options["base_urls"]
    f.write_text("backend: openai\nmodel: m\nbase_urls: http://127.0.0.1:1/v1\n")
    with pytest.raises(UserError, match="base_urls") as e:
        parse_model_spec(str(f))
    assert e.value.line == 3


def test_every_replica_gone_stops_the_run_and_a_dead_one_fails_over():
    """Faults on demand: a request on a replica that refuses goes to the other one; when both
    are gone the run stops (EndpointGone), and a request that times out on every replica is an
    error after max_retries + 1 tries, not an endless loop."""
    import asyncio

    from harness.models.replicas import ReplicaPool
    from harness.transport import EndpointGone, HttpPolicy

    async def make(oai):
        r = await oai.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}])
        return r.choices[0].message.content

    with FakeOpenAI() as live, FakeOpenAI() as hanging:
        dead = FakeOpenAI()
        dead.__enter__()
        dead_url = dead.base_url
        dead.__exit__(None)
        pool = ReplicaPool([dead_url, live.base_url], None, HttpPolicy(max_retries=1, timeout=0.5))

        async def go(p, n):
            try:
                return await asyncio.gather(*(p.call(make) for _ in range(n)))
            finally:
                await p.aclose()

        outs = asyncio.run(go(pool, 4))
        assert all(o.error is None for o in outs)
        assert pool.replicas[0].down is not None and pool.replicas[1].served == 4

        hanging.state.default = "hang"
        live.state.default = "hang"
        pool = ReplicaPool([live.base_url, hanging.base_url], None, HttpPolicy(max_retries=1, timeout=0.3))
        (out,) = asyncio.run(go(pool, 1))
        assert out.value is None and "no replica answered" in out.error

        pool = ReplicaPool([dead_url, dead_url.replace("/v1", "/v2")], None, HttpPolicy(timeout=0.5))
        with pytest.raises(EndpointGone, match="every replica"):
            asyncio.run(go(pool, 1))
