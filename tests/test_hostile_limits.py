"""Limits where untrusted input grows (issue #22, item 3).

Each probe runs the real CLI in a child process and measures that child's peak RSS (a fresh
wrapper process per probe, so `RUSAGE_CHILDREN` is that probe's alone) and its wall time:
YAML bombs and duplicate keys, template bombs, and a misbehaving loopback server (a 64 MB
reply, a gzip bomb, a one-byte trickle, HTML with status 200, `content` that is not text).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT, write_suite
from tests.fake_openai import FakeOpenAI

GB = 1024 * 1024 * 1024

_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[2:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
    "open(sys.argv[1], 'w').write(json.dumps(peak))\n"
    "sys.exit(p.returncode)\n"
)


def measured_cli(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 300):
    """`tunegate ARGS` in a child; returns (CompletedProcess, peak RSS bytes of the child, seconds)."""
    out = tmp_path / f"rss-{time.monotonic_ns()}.json"
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(out), sys.executable, "-m", "tunegate", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return r, json.loads(out.read_text()), time.monotonic() - t0


def _one_error(r, *needles: str) -> str:
    out = (r.stdout + r.stderr).replace("\n", " ")
    assert r.returncode == 2, (r.returncode, out[-3000:])
    assert "Traceback" not in out, out[-3000:]
    for n in needles:
        assert n in out, (n, out[-3000:])
    return out


# -- YAML ---------------------------------------------------------------------------------------
LAUGHS = "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi")
)  # i expands to 9**9 ≈ 387 million strings


@pytest.mark.parametrize("where", ["top", "extra_key", "stop"])
def test_yaml_billion_laughs_is_refused_fast_and_small(tmp_path, where):
    body = 'name: qa\nkind: task\ndata: data.jsonl\nprompt: "{{ q }}"\nreference: a\n'
    if where == "top":
        text = LAUGHS + body
    elif where == "extra_key":
        text = body + "x-anchors:\n" + "".join("  " + line + "\n" for line in LAUGHS.splitlines())
    else:
        text = body + "x-anchors:\n" + "".join("  " + line + "\n" for line in LAUGHS.splitlines())
        text += "generation: {stop: *i}\n"
    suite = write_suite(tmp_path / "s", text, '{"id": "1", "q": "x", "a": "y"}\n')
    r, peak, secs = measured_cli(tmp_path, "suites", "validate", str(suite))
    _one_error(r, str(suite), "TUNEGATE_MAX_YAML_NODES")
    assert peak < GB and secs < 60, (peak, secs)
    print(f"yaml bomb ({where}): peak RSS {peak / 2**20:.0f} MiB, {secs:.1f} s")


def test_yaml_duplicate_key_is_a_located_error(tmp_path):
    suite = write_suite(
        tmp_path / "s",
        'name: qa\nkind: task\ndata: data.jsonl\nprompt: "{{ q }}"\nreference: a\nprompt: "{{ a }}"\n',
        '{"id": "1", "q": "x", "a": "y"}\n',
    )
    r, _, _ = measured_cli(tmp_path, "suites", "validate", str(suite))
    _one_error(r, f"{suite}:6", "duplicate key 'prompt' (first on line 4)")


def test_yaml_aliases_within_budget_and_merge_keys_still_load(tmp_path):
    suite = write_suite(
        tmp_path / "s",
        'base: &b {name: qa, kind: task}\n<<: *b\ndata: data.jsonl\nprompt: "{{ q }}"\nreference: a\n'
        "stops: &s ['\\n\\n']\ngeneration: {stop: *s}\nmetrics: [exact_match]\n".replace(
            "stops:", "x-stops:"
        ),
        '{"id": "1", "q": "x", "a": "y"}\n',
    )
    # `base`/`x-stops` are unknown keys: that error (not a YAML one) proves the YAML loaded
    r, _, _ = measured_cli(tmp_path, "suites", "validate", str(suite))
    assert "malformed YAML" not in r.stdout + r.stderr


# -- templates ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt, needle",
    [
        ("{{ 9 ** (9 ** 9) }}", "too large a number"),
        ("{{ 'x' * 10**12 }}", "TUNEGATE_MAX_TEMPLATE_CHARS"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recurses too deep"),
        (
            "{% for a in range(99999) %}{% for b in range(99999) %}{{ a }}{% endfor %}{% endfor %}",
            "TUNEGATE_MAX_TEMPLATE_CHARS",
        ),
        (
            "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
            "TUNEGATE_MAX_TEMPLATE_SECONDS",
        ),
        ("{{ '{:>9999999999}'.format(1) }}", "format width"),
        ("{{ 'x'|center(10**10) }}", "TUNEGATE_MAX_TEMPLATE_CHARS"),
    ],
    ids=["pow", "repeat", "recursion", "loops", "silent_loops", "format", "center"],
)
def test_template_bombs_are_located_errors(tmp_path, prompt, needle):
    suite = write_suite(
        tmp_path / "s",
        f"name: qa\nkind: task\ndata: data.jsonl\nprompt: {json.dumps(prompt)}\nreference: a\n"
        "metrics: [exact_match]\n",
        '{"id": "1", "q": "x", "a": "y"}\n',
    )
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "1", "output": "y"}\n')
    db = tmp_path / "t.duckdb"
    r, peak, secs = measured_cli(
        tmp_path,
        "run",
        "--model",
        f"predictions:{preds}",
        "--suite",
        str(suite),
        "--db",
        str(db),
        env={"TUNEGATE_MAX_TEMPLATE_SECONDS": "2"},
    )
    _one_error(r, f"{suite}:4 field 'prompt'", needle)
    assert peak < GB and secs < 60, (peak, secs)
    assert not db.exists()
    print(f"template {needle}: peak RSS {peak / 2**20:.0f} MiB, {secs:.1f} s")


# -- HTTP -----------------------------------------------------------------------------------------
QA = """name: ep-qa
kind: task
data: data.jsonl
prompt: "Q: {{ q }}"
reference: a
generation: {max_new_tokens: 8}
metrics: [exact_match]
"""


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as srv:
        yield srv


@pytest.mark.parametrize(
    "behaviour, needle, chat",
    [
        ("huge", "TUNEGATE_MAX_HTTP_BYTES", True),
        ("gzip_bomb", "TUNEGATE_MAX_HTTP_BYTES", True),
        ("html", "the reply is text/html, not JSON", True),
        ("trickle", "TUNEGATE_MAX_HTTP_SECONDS", True),
        ("int_content", "content is a int, not text", True),
        ("list_content", "content is a list, not text", True),
        ("int_content", "text is a int, not text", False),
    ],
)
def test_hostile_server_reply_is_an_error_row(fake, tmp_path, behaviour, needle, chat):
    text = QA if chat else QA.replace("metrics:", "chat: false\nmetrics:")
    suite = write_suite(tmp_path / "s", text, '{"id": "q1", "q": "hi", "a": "x"}\n')
    db = tmp_path / "t.duckdb"
    fake.reset(default=behaviour)
    spec = f"openai:fake@{fake.base_url}?timeout=5&max_retries=0"
    r, peak, secs = measured_cli(
        tmp_path,
        "run",
        "--model",
        spec,
        "--suite",
        str(suite),
        "--db",
        str(db),
        env={"TUNEGATE_MAX_HTTP_SECONDS": "3"},  # the byte cap at its default (16 MiB)
    )
    fake.reset()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    con = duckdb.connect(str(db), read_only=True)
    try:
        (err,) = con.execute("SELECT error FROM generations").fetchone()
        status = con.execute("SELECT status FROM runs").fetchone()[0]
        values = con.execute("SELECT value, error FROM scores").fetchall()
    finally:
        con.close()
    assert err and needle in err, err
    assert status == "completed" and all(v is None and e for v, e in values)  # an error, never a 0
    assert peak < GB and secs < 60, (peak, secs)
    print(f"server {behaviour}: peak RSS {peak / 2**20:.0f} MiB, {secs:.1f} s")


def test_judge_reply_content_not_text_is_an_error_row(fake, store):
    from judges.base import DEFAULT_CRITERIA, Subject
    from judges.client import EndpointConfig, JudgeClient
    from judges.rubric import RubricJudge

    fake.reset(default="int_content")
    cfg = EndpointConfig(base_url=fake.base_url, model="fake", response_format="json_object", max_retries=0)
    judge = RubricJudge(DEFAULT_CRITERIA, JudgeClient(cfg))
    [v] = judge.judge(store, [Subject("e1", "What is 1 + 1?", "2", reference="2")])
    fake.reset()
    assert v.scores is None and "content is a int, not text" in v.error


def test_judge_trickle_stops_at_the_endpoint_deadline(fake, store):
    from judges.base import DEFAULT_CRITERIA, Subject
    from judges.client import EndpointConfig, JudgeClient
    from judges.rubric import RubricJudge

    fake.reset(default="trickle")
    cfg = EndpointConfig(
        base_url=fake.base_url, model="fake", response_format="json_object", max_retries=0, deadline=1.5
    )
    t0 = time.monotonic()
    [v] = RubricJudge(DEFAULT_CRITERIA, JudgeClient(cfg)).judge(
        store, [Subject("e1", "Q?", "2", reference="2")]
    )
    fake.reset()
    assert time.monotonic() - t0 < 10
    assert v.scores is None and "its deadline of 1.5 s" in v.error


@pytest.mark.parametrize(
    "behaviour, needle",
    [
        ("html", "the reply is text/html, not JSON"),
        ("gzip_bomb", "TUNEGATE_MAX_HTTP_BYTES"),
        ("trickle", "TUNEGATE_MAX_HTTP_SECONDS"),
    ],
)
def test_hostile_models_listing_is_exit_2_before_any_run(fake, tmp_path, behaviour, needle):
    suite = write_suite(tmp_path / "s", QA, '{"id": "q1", "q": "hi", "a": "x"}\n')
    db = tmp_path / "t.duckdb"
    fake.reset(models=behaviour)
    r, peak, secs = measured_cli(
        tmp_path,
        "run",
        "--model",
        f"openai:fake@{fake.base_url}?timeout=5&max_retries=0",
        "--suite",
        str(suite),
        "--db",
        str(db),
        env={"TUNEGATE_MAX_HTTP_SECONDS": "2"},
    )
    fake.reset()
    _one_error(r, "/models", needle)
    assert not db.exists()
    assert peak < GB and secs < 60, (peak, secs)
    print(f"/models {behaviour}: peak RSS {peak / 2**20:.0f} MiB, {secs:.1f} s")
