"""The backend contract: one registry, declared capabilities, requests that carry messages, and
the layering rule that the core never imports the suite kinds."""

from __future__ import annotations

import ast
import hashlib
import json

import pytest

from harness.errors import UserError
from harness.models import parse_model_spec, resolve_model
from harness.models.backend import open_backend
from harness.models.registry import BACKENDS, BackendEntry
from tests.conftest import ROOT, run_cli, table_dump, write_suite

QA = """name: c-qa
kind: task
data: data.jsonl
prompt: "Q: {{ question }}"
system_prompt: Be brief.
reference: answer
generation: {max_new_tokens: 4}
metrics: [exact_match]
"""
DATA = '{"id": "a", "question": "one?", "answer": "1"}\n{"id": "b", "question": "two?", "answer": "2"}\n'


def test_the_core_never_imports_suites_judges_trainers_reports_or_the_top_floor():
    """harness/ is the core: no import (module level or inside a function) runs from it up to the
    folders that build on it, or to the top floor (tunegate/: the CLI and the Python API)."""
    offenders = []
    for path in (ROOT / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in {"suites", "judges", "trainers", "reports", "tunegate"}
            ]
    assert not offenders, offenders


def test_unknown_scheme_suggests_the_registered_one():
    with pytest.raises(UserError, match="Did you mean 'llamacpp:'"):
        parse_model_spec("llamacp:/x.gguf")
    assert {"hf", "gguf", "llamacpp", "openai", "predictions"} <= set(BACKENDS.schemes())


def test_adding_a_backend_is_one_module_and_one_registration(tmp_path):
    """A backend written outside tunegate: registered, it runs suites through the real runner."""
    from harness.runner import RunOptions, run_suite
    from harness.store import Store
    from suites import load_suite

    snap = BACKENDS.snapshot()
    try:
        BACKENDS.register(
            BackendEntry(
                "shout",
                parse="tests.shout_backend:parse_spec",
                resolve="tests.shout_backend:resolve",
                open="tests.shout_backend:ShoutBackend",
                summary="upper-cases the last user turn (a test backend)",
            )
        )
        backend = open_backend(resolve_model("shout:v1"))
        suite = load_suite(write_suite(tmp_path, QA, DATA))
        with Store(tmp_path / "s.duckdb") as store:
            out = run_suite(store, backend, suite, RunOptions())
            rows = store.db.execute("SELECT prompt, output FROM generations ORDER BY output").fetchall()
        assert out.n_examples == 2 and out.model_calls == 1
        # it received the chat messages themselves, system turn included
        assert json.loads(rows[0][0]) == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Q: one?"},
        ]
        assert [r[1] for r in rows] == ["Q: ONE?", "Q: TWO?"]
    finally:
        BACKENDS.restore(snap)
    assert "shout" not in BACKENDS


def test_an_adapter_host_is_the_backends_registry_hook(tmp_path):
    """Adapters on a base go through the host its backend registers (`BackendEntry.candidates`),
    every view its own run; a backend without one refuses adapters before anything is stored."""
    import suites  # noqa: F401  (registers the suite loader)
    from harness.evaluate import Models, evaluate
    from harness.models.registry import candidates_opener, is_local
    from harness.store import Store

    assert all(is_local(k) and candidates_opener(k) is not None for k in ("hf", "gguf", "alias"))
    assert not is_local("openai") and candidates_opener("predictions") is None
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text("{}")
    suite = write_suite(tmp_path / "qa", QA, DATA)
    snap = BACKENDS.snapshot()
    try:
        BACKENDS.register(
            BackendEntry(
                "shout",
                parse="tests.shout_backend:parse_spec",
                resolve="tests.shout_backend:resolve",
                open="tests.shout_backend:ShoutBackend",
                summary="upper-cases the last user turn (a test backend)",
                candidates="tests.shout_backend:open_candidates",
            )
        )
        adapters = (str(tmp_path / "a"), str(tmp_path / "b"))
        results = evaluate(Models("shout:v1", adapters), [suite], tmp_path / "s.duckdb")
        with Store(tmp_path / "s.duckdb") as store:
            query = "SELECT g.output FROM run_examples JOIN generations g USING (cache_key) WHERE run_id = ?"
            outputs = [
                sorted(r[0] for r in store.db.execute(query, [runs[0].run_id]).fetchall())
                for _, runs in results
            ]
    finally:
        BACKENDS.restore(snap)
    assert outputs == [["Q: ONE?", "Q: TWO?"], ["a:Q: ONE?", "a:Q: TWO?"], ["b:Q: ONE?", "b:Q: TWO?"]]
    preds = tmp_path / "qa" / "p.jsonl"
    preds.write_text('{"id": "a", "output": "1"}\n{"id": "b", "output": "2"}\n')
    db = tmp_path / "refused.duckdb"
    r = run_cli(
        "run", "-m", f"predictions:{preds}", "--adapter", adapters[0], "-s", str(suite), "--db", str(db)
    )
    assert r.returncode == 2 and f"predictions:{preds} is not one" in " ".join(r.stderr.split()), r.stderr
    assert not db.exists()


def test_run_checks_and_binds_once_and_names_the_run_it_made(tmp_path):
    """The walk from `run` to the first stored batch: each step that checks a model against a
    suite runs once (scripts/walk.py), and the "see:" hint names the run just made."""
    import re
    import subprocess
    import sys

    walk = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "walk.py")], capture_output=True, text=True, timeout=300
    )
    assert walk.returncode == 0, walk.stderr
    calls = dict(re.findall(r"(\w+) (\d+)", walk.stdout.splitlines()[-1].removeprefix("calls: ")))
    assert calls == dict.fromkeys(
        ("parse_model_spec", "check_capabilities", "bind", "load_suite", "resolve_model"), "1"
    )
    suite = write_suite(tmp_path / "qa", QA, DATA)
    preds = tmp_path / "qa" / "p.jsonl"
    preds.write_text('{"id": "a", "output": "1"}\n{"id": "b", "output": "2"}\n')
    db = tmp_path / "see.duckdb"
    for cmd in (("run", "-m", f"predictions:{preds}"), ("score", "-p", str(preds))):
        r = run_cli(*cmd, "-s", str(suite), "--db", str(db), "--no-progress")
        assert r.returncode == 0, r.stderr
        [run_id] = re.findall(r"^(r-[0-9a-f]+) ", r.stdout, re.M)
        assert f"see: tunegate show {run_id} --db {db}" in r.stdout, r.stdout


def test_local_backend_renders_messages_and_keeps_the_old_cache_key(smollm2, tmp_path):
    """The cache key of a rendered-prompt request is byte-for-byte what it was before requests
    carried messages, so every generation cached by an earlier version is still a hit."""
    from harness.runner.plan import cache_key
    from suites import load_suite

    suite = load_suite(write_suite(tmp_path, QA, DATA))
    req = suite.request(suite.examples[0])
    assert req.prompt is None and req.messages[0]["role"] == "system"
    prepared = smollm2.prepare(req)
    rendered = smollm2.render_chat(list(req.messages))
    assert prepared.messages is None and prepared.prompt == rendered
    old = hashlib.sha256(
        json.dumps(
            {"fp": "F", "type": "generate", "prompt": rendered, "params": req.params},
            sort_keys=True,
            ensure_ascii=False,
        ).encode()
    ).hexdigest()
    assert cache_key("F", prepared, 1) == old
    assert cache_key("F", req, 1) != old  # messages are hashed as what an endpoint is sent


def test_capability_mismatch_is_refused_before_anything_is_stored(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "paragraph-1", "output": "x"}\n')
    db = tmp_path / "c.duckdb"
    ok_suite = write_suite(tmp_path / "qa", QA, DATA)
    (tmp_path / "qa" / "p.jsonl").write_text('{"id": "a", "output": "1"}\n{"id": "b", "output": "2"}\n')
    assert (
        run_cli(
            "run",
            "--model",
            f"predictions:{tmp_path / 'qa' / 'p.jsonl'}",
            "--suite",
            str(ok_suite),
            "--db",
            str(db),
        ).returncode
        == 0
    )
    before = table_dump(db)
    r = run_cli("run", "--model", f"predictions:{preds}", "--suite", "heldout-text", "--db", str(db))
    assert r.returncode == 2, r.stderr
    assert "perplexity suite heldout-text needs prompt log-probabilities; predictions:" in r.stderr
    assert "no log-likelihoods" in r.stderr
    assert table_dump(db) == before


def test_a_model_file_is_the_spec_it_stands_for(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "a", "output": "1"}\n')
    (tmp_path / "m.yaml").write_text("backend: predictions\npath: p.jsonl\nmatch: order\n")
    a = resolve_model(str(tmp_path / "m.yaml"))
    b = resolve_model(f"predictions:{preds}?match=order")
    assert a.model_id == b.model_id and a.spec.raw == b.spec.raw
    (tmp_path / "bad.yaml").write_text("backend: openai\nmodel: x\n")
    with pytest.raises(UserError) as e:
        resolve_model(str(tmp_path / "bad.yaml"))
    assert e.value.path == str(tmp_path / "bad.yaml") and "base_url" in str(e.value)


def test_endpoint_model_file_and_spec_give_one_model(llama, tmp_path):
    f = tmp_path / "ep.yaml"
    f.write_text(f"backend: openai\nmodel: smollm2\nbase_url: {llama.base_url}\nrevision: r1\nchat: true\n")
    a = resolve_model(str(f))
    b = resolve_model(f"openai:smollm2@{llama.base_url}?revision=r1&chat=1")
    assert a.model_id == b.model_id
    assert a.model_id != resolve_model(f"openai:smollm2@{llama.base_url}?revision=r2").model_id
    assert a.model_id != resolve_model(f"openai:candidate@{llama.base_url}?revision=r1").model_id
