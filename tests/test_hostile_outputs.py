"""What leaves tunegate is escaped and secret-free; bad input is one clear error (issue #22, 4-6).

- The gate's Markdown (the step summary) and JUnit carry text from suites, stores and models: a
  metric alias `<img src=…>`, a model spec with a Markdown link, a store doctored to hold HTML.
  The Markdown is rendered the way GitHub would (CommonMark + tables, markdown-it-py) and holds no
  tag, link or image from the payload; the JUnit parses.
- Credentials in an endpoint URL and a key the server echoes `\\u`-escaped, URL-encoded, split by
  a newline or straddling the 300-character error cut reach no store byte, output or report.
- The remaining tracebacks and wrong exit codes: exit 2 with one message, the store unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import xml.etree.ElementTree as ET

import duckdb
import pytest
from markdown_it import MarkdownIt

from tests.conftest import run_cli, table_dump, write_suite
from tests.fake_openai import FakeOpenAI
from tests.test_hostile_limits import GB, measured_cli

PAYLOADS = [
    '<img src="https://evil.example/x.png" onerror="alert(1)">',
    "[click](https://evil.example/phish)",
    "![pixel](https://evil.example/p.png)",
    "<script>alert(1)</script>",
    "www.evil.example",
]
ALIAS = PAYLOADS[0] + " " + PAYLOADS[1]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


ROWS = [{"id": f"e{i}", "q": f"What is {i}?", "a": str(i)} for i in range(6)]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A baseline and a candidate run of a suite whose metric alias is an HTML/Markdown payload."""
    tmp = tmp_path_factory.mktemp("md")
    suite = write_suite(
        tmp / "s",
        'name: qa\nkind: task\ndata: data.jsonl\nprompt: "Q: {{ q }}"\nreference: a\n'
        f"metrics: [{{name: exact_match, as: {json.dumps(ALIAS)}}}]\n",
        _jsonl(ROWS),
    )
    db = tmp / "t.duckdb"
    ids = []
    for name, right in (("base", 6), ("cand", 3)):
        # a predictions file whose name is a Markdown image: it becomes the model spec
        folder = tmp / f"{name}-![x](https:" / "evil.example"
        folder.mkdir(parents=True)
        preds = folder / f"{name}<b>.jsonl"
        preds.write_text(
            _jsonl([{"id": r["id"], "output": r["a"] if i < right else "no"} for i, r in enumerate(ROWS)])
        )
        r = run_cli("run", "--model", f"predictions:{preds}", "--suite", str(suite), "--db", str(db))
        assert r.returncode == 0, r.stderr[-2000:]
        ids.append(re.findall(r"\br-[0-9a-f]{8}\b", r.stdout)[0])
    return db, ids


def _gate(tmp_path, db, ids, policy_name="policy.yaml"):
    policy = tmp_path / policy_name
    policy.write_text("rules:\n  - {metric: '*', max_drop: 0.01}\n", encoding="utf-8")
    summary, junit, step = tmp_path / "s.md", tmp_path / "j.xml", tmp_path / "step.md"
    r = run_cli(
        "gate",
        "--baseline",
        ids[0],
        "--candidate",
        ids[1],
        "--policy",
        str(policy),
        "--db",
        str(db),
        "--summary",
        str(summary),
        "--junit",
        str(junit),
        env={"GITHUB_STEP_SUMMARY": str(step)},
    )
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]  # the candidate dropped: fail
    assert step.read_text() == summary.read_text()
    return summary.read_text(), junit.read_text()


def _no_markup_from(html: str) -> None:
    tags = set(re.findall(r"<\s*([a-zA-Z][a-zA-Z0-9]*)", html))
    assert tags <= {"h2", "p", "strong", "code", "table", "thead", "tbody", "tr", "th", "td", "ul", "li"}, (
        tags
    )
    assert "evil.example" not in " ".join(re.findall(r'(?:href|src)="([^"]*)"', html))


def test_gate_markdown_renders_no_tag_link_or_image_from_the_payload(tmp_path, two_runs):
    db, ids = two_runs
    md, junit = _gate(tmp_path, db, ids, policy_name="p<i>[x](https:evil.example).yaml")
    html = MarkdownIt("commonmark").enable("table").render(md)
    _no_markup_from(html)
    # what the payload said is still shown, as text
    assert "&lt;img src=" in html and "[click]" in html
    root = ET.fromstring(junit)  # well-formed, the payload in attribute values
    names = [c.get("name") for c in root.iter("testcase")]
    assert any(ALIAS in n for n in names)


def test_gate_markdown_of_a_doctored_store_is_escaped(tmp_path, two_runs):
    db, ids = two_runs
    evil = tmp_path / "evil.duckdb"
    shutil.copy(db, evil)
    con = duckdb.connect(str(evil))  # values only: the schema stays tunegate's
    con.execute("UPDATE models SET spec = ?", [" ".join(PAYLOADS) + " `x` | \x00\x1b"])
    con.execute("UPDATE run_metrics SET metric = ?", [PAYLOADS[2]])
    con.execute("UPDATE scores SET metric = ?", [PAYLOADS[2]])
    con.close()
    md, junit = _gate(tmp_path, evil, ids)
    html = MarkdownIt("commonmark").enable("table").render(md)
    _no_markup_from(html)
    ET.fromstring(junit)  # control characters replaced: still parses


# -- secrets --------------------------------------------------------------------------------------
KEY = "sk-probe-SECRET-0a1b2c3d4e5f60718293"


def _leaky(body: dict) -> str:
    """A reply repeating the key in every form a naive mask misses."""
    return " | ".join(
        [
            "x" * 260 + KEY,  # straddles the 300-character cut of an error body
            KEY[:12] + "\n" + KEY[12:],  # split by a newline
            "".join(f"\\u{ord(c):04x}" for c in KEY),  # \u-escaped
            urllib.parse.quote(KEY, safe=""),
            "".join(f"%{ord(c):02X}" for c in KEY),
        ]
    )


def test_url_credentials_and_echoed_key_forms_reach_no_output(tmp_path):
    suite = write_suite(
        tmp_path / "s",
        'name: qa\nkind: task\ndata: data.jsonl\nprompt: "Q: {{ q }}"\nreference: a\n'
        "generation: {max_new_tokens: 8}\nmetrics: [exact_match]\n",
        _jsonl(ROWS[:2]),
    )
    db = tmp_path / "t.duckdb"
    with FakeOpenAI() as fake:
        fake.reset(reply=_leaky)
        url = fake.base_url.replace("http://", "http://tgUser:hunter2pass@")
        spec = f"openai:fake@{url}?api_key_env=MY_KEY&max_retries=0"
        env = {"MY_KEY": KEY}
        outs = [run_cli("--debug", "run", "--model", spec, "--suite", str(suite), "--db", str(db), env=env)]
        assert outs[0].returncode == 0, outs[0].stderr[-2000:]
        assert fake.state.requests  # (httpx sends the URL's user:password as Basic auth)
        run_id = re.findall(r"\br-[0-9a-f]{8}\b", outs[0].stdout)[0]
        fake.reset(default="500_echo", reply=_leaky)  # the key in an error body, cut at 300 characters
        outs.append(
            run_cli(
                "run", "--model", spec, "--suite", str(suite), "--db", str(tmp_path / "e.duckdb"), env=env
            )
        )
        assert outs[-1].returncode == 0, outs[-1].stderr[-2000:]
    rep = tmp_path / "r.html"
    outs += [
        run_cli("runs", "--db", str(db), env=env),
        run_cli("show", run_id, "--db", str(db), env=env),
        run_cli("report", run_id, "--db", str(db), "-o", str(rep), env=env),
    ]
    dead = spec.replace(str(fake.port), "1")  # nobody listens: the connection error prints the URL
    outs.append(
        run_cli("run", "--model", dead, "--suite", str(suite), "--db", str(tmp_path / "d.duckdb"), env=env)
    )
    assert outs[-1].returncode == 2
    con = duckdb.connect(str(tmp_path / "e.duckdb"), read_only=True)
    errors = [e for (e,) in con.execute("SELECT error FROM generations").fetchall()]
    con.close()
    assert errors and all("HTTP 500" in e for e in errors), errors
    texts = [*errors]
    texts += [o.stdout + o.stderr for o in outs] + [rep.read_text()]
    stored = json.dumps(table_dump(db))
    for secret in ("hunter2pass", KEY, KEY[:12], KEY[-12:]):
        for f in (db, tmp_path / "e.duckdb"):
            assert secret.encode() not in f.read_bytes(), (secret, f)
        assert secret not in stored, secret
        for t in texts:
            assert secret not in t, (secret, t[-1500:])
    assert "tgUser:" not in stored and "http://***@127.0.0.1" in stored


# -- tracebacks and wrong exit codes --------------------------------------------------------------
@pytest.fixture()
def one_run(tmp_path):
    suite = write_suite(
        tmp_path / "s",
        'name: qa\nkind: task\ndata: data.jsonl\nprompt: "Q: {{ q }}"\nreference: a\n'
        "metrics: [exact_match]\n",
        _jsonl(ROWS),
    )
    preds = tmp_path / "p.jsonl"
    preds.write_text(_jsonl([{"id": r["id"], "output": r["a"]} for r in ROWS]))
    db = tmp_path / "t.duckdb"
    r = run_cli("run", "--model", f"predictions:{preds}", "--suite", str(suite), "--db", str(db))
    assert r.returncode == 0, r.stderr[-2000:]
    return suite, db, re.findall(r"\br-[0-9a-f]{8}\b", r.stdout)[0]


def _exit2(r, *needles):
    out = (r.stdout + r.stderr).replace("\n", " ")
    assert r.returncode == 2, (r.returncode, out[-3000:])
    assert "Traceback" not in out, out[-3000:]
    for n in needles:
        assert n in out, (n, out[-3000:])


@pytest.mark.parametrize(
    "value, needle", [(".nan", "finite number"), ("true", "not true/false"), (".inf", "finite")]
)
def test_policy_max_drop_nan_or_bool_is_exit_2(tmp_path, one_run, value, needle):
    _, db, run_id = one_run
    policy = tmp_path / "p.yaml"
    policy.write_text(f"rules:\n  - metric: '*'\n    max_drop: {value}\n")
    before = table_dump(db)
    r = run_cli("gate", "--baseline", run_id, "--candidate", run_id, "--policy", str(policy), "--db", str(db))
    _exit2(r, f"{policy}:3", "max_drop", needle)
    assert table_dump(db) == before


def test_predictions_with_two_output_fields_is_exit_2(tmp_path, one_run):
    suite, _, _ = one_run
    preds = tmp_path / "two.jsonl"
    preds.write_text('{"id": "e0", "output": "0", "prediction": "1"}\n')
    db = tmp_path / "n.duckdb"
    r = run_cli("run", "--model", f"predictions:{preds}", "--suite", str(suite), "--db", str(db))
    _exit2(r, f"{preds}:1 field 'prediction'", "both 'output' and 'prediction'")
    assert not db.exists()


def test_predictions_nested_100k_deep_is_exit_2_and_small(tmp_path, one_run):
    suite, _, _ = one_run
    preds = tmp_path / "deep.jsonl"
    preds.write_text('{"id": "e0", "output": "0", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    db = tmp_path / "n.duckdb"
    r, peak, secs = measured_cli(
        tmp_path, "run", "--model", f"predictions:{preds}", "--suite", str(suite), "--db", str(db)
    )
    _exit2(r, f"{preds}:1", "TUNEGATE_MAX_JSON_DEPTH")
    assert peak < GB and secs < 60
    print(f"predictions 100k deep: peak RSS {peak / 2**20:.0f} MiB, {secs:.1f} s")
    data = tmp_path / "s" / "data.jsonl"  # the same in a suite's data
    data.write_text('{"id": "e0", "q": ' + '{"a": ' * 200 + "1" + "}" * 200 + ', "a": "0"}\n')
    _exit2(run_cli("suites", "validate", str(suite)), f"{data}:1", "TUNEGATE_MAX_JSON_DEPTH")


@pytest.fixture()
def review(tmp_path, one_run):
    _, db, run_id = one_run
    r = run_cli("review", run_id, "--db", str(db), "-o", str(tmp_path / "rv.html"), "--sample", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    con = duckdb.connect(str(db), read_only=True)
    rid, manifest = con.execute("SELECT review_id, manifest FROM review_pages").fetchone()
    con.close()
    example = next(iter(json.loads(manifest)))
    good = {
        "review_id": rid,
        "example_id": example,
        "slot": 0,
        "reviewer": "me",
        "criterion": "quality",
        "score": 3,
    }
    return db, good


@pytest.mark.parametrize(
    "kind",
    [
        "not_object",
        "bad_utf8",
        "score_true",
        "slot_true",
        "score_nan",
        "note_dict",
        "labelled_at_bad",
        "deep",
    ],
)
def test_malformed_review_labels_are_exit_2_and_store_nothing(tmp_path, review, kind):
    db, good = review
    labels = tmp_path / "labels.jsonl"
    line = dict(good)
    needle = ""
    if kind == "not_object":
        text, needle = "[1, 2]\n", "expected a JSON object, got list"
    elif kind == "bad_utf8":
        labels.write_bytes(json.dumps(good).encode().replace(b"me", b"m\xff"))
        text, needle = None, "not valid UTF-8"
    elif kind == "score_true":
        line["score"], needle = True, "field 'score'"
    elif kind == "slot_true":
        line["slot"], needle = True, "field 'slot'"
    elif kind == "score_nan":
        text, needle = json.dumps(good).replace('"score": 3', '"score": NaN') + "\n", "field 'score'"
    elif kind == "note_dict":
        line["note"], needle = {"a": 1}, "field 'note'"
    elif kind == "labelled_at_bad":
        line["labelled_at"], needle = "yesterday", "field 'labelled_at'"
    else:
        text = json.dumps(good)[:-1] + ', "x": ' + "[" * 50_000 + "]" * 50_000 + "}\n"
        needle = "TUNEGATE_MAX_JSON_DEPTH"
    if kind in ("score_true", "slot_true", "note_dict", "labelled_at_bad"):
        text = json.dumps(line) + "\n"
    if text is not None:
        labels.write_text(text)
    before = table_dump(db)
    r = run_cli("review", "import", str(labels), "--db", str(db))
    _exit2(r, f"{labels}:1", needle)
    assert table_dump(db) == before


def test_review_import_of_a_good_line_still_works(tmp_path, review):
    db, good = review
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps(good | {"labelled_at": "2026-01-02T03:04:05Z", "note": "ok"}) + "\n")
    r = run_cli("review", "import", str(labels), "--db", str(db))
    assert r.returncode == 0, r.stderr[-2000:]


def test_report_on_huge_equal_values_draws_its_histogram(tmp_path, one_run):
    _, db, run_id = one_run
    con = duckdb.connect(str(db))
    con.execute("UPDATE scores SET value = 1e20")
    con.close()
    r = run_cli("report", run_id, "--db", str(db), "-o", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "<svg" in (tmp_path / "r.html").read_text()
