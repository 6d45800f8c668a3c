"""#16 §3–§4: the pandas API against the CLI's JSON, and output people can read.

Two predictions runs (no model) on a small suite; every command runs as a user runs it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

import tunegate
from tests.conftest import ROOT, run_cli, write_suite

SUITE = """name: eco-output-suite-with-a-long-name
kind: task
data: data.jsonl
prompt: "Q: {{ q }}"
reference: a
metrics: [exact_match, token_f1, rouge1, {name: exact_match, as: exact_match_with_a_very_long_alias_name}]
"""
N = 24
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    # a long path: a model spec that a table would cut at 80 columns
    tmp = tmp_path_factory.mktemp("output") / ("a-rather-long-folder-name-for-predictions-" * 2)
    data = "".join(json.dumps({"id": f"e{i}", "q": f"q{i}", "a": f"answer {i}"}) + "\n" for i in range(N))
    suite = write_suite(tmp / "suite", SUITE, data)
    db = tmp / "t.duckdb"
    runs = []
    for name, wrong in (("baseline", 2), ("candidate", 5)):
        preds = tmp / f"{name}-predictions.jsonl"
        rows = [
            {"id": f"e{i}", "output": "[red]no[/] idea" if i % wrong == 0 else f"answer {i}"}
            for i in range(N)
        ]
        preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
        r = run_cli("run", "-m", f"predictions:{preds}", "-s", str(suite), "--db", str(db), "--no-progress")
        assert r.returncode == 0, r.stderr
        runs.append(re.search(r"r-[0-9a-f]{8}", r.stdout).group(0))
    policy = tmp / "policy.yaml"
    policy.write_text(
        "name: eco\nrules:\n"
        "  - {suite: '*', metric: token_f1, min_delta: 0.5}\n"  # fails: +0.25 is not +0.5
        "  - {suite: '*', metric: '*', max_error_rate: 0.0}\n"
    )
    return {"tmp": tmp, "db": db, "a": runs[0], "b": runs[1], "policy": policy, "suite": suite}


def _json(*args: str) -> object:
    r = run_cli(*args, "--json")
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def test_frames_equal_the_cli_json(env):
    s = tunegate.open(env["db"])
    db = ("--db", str(env["db"]))
    runs = s.runs()
    cli_runs = _json("runs", *db)
    assert list(runs.columns) == list(cli_runs[0]) and runs.to_dict("records") == cli_runs

    show = _json("show", env["a"], *db)
    assert s.summary(env["a"]).to_dict("records") == show["metrics"]
    assert {m["metric"] for m in show["metrics"]} == {
        "exact_match", "token_f1", "rouge1", "exact_match_with_a_very_long_alias_name"}  # fmt: skip

    cmp_ = _json("compare", env["a"], env["b"], *db)
    frame = s.compare(env["a"], env["b"])
    assert frame.to_dict("records") == [
        {k: v for k, v in m.items() if k != "regressed"} for m in cmp_["metrics"]
    ]
    em = frame.set_index("metric").loc["exact_match"]
    assert (em["baseline"], em["candidate"], em["n"]) == (0.5, 19 / 24, N)

    ex = s.examples(env["b"])
    assert len(ex) == N and {"example_id", "prompt", "reference", "output", "error"} <= set(ex.columns)
    assert ex.loc[0, "prompt"].endswith("q0") and ex.loc[0, "reference"] == ["answer 0"]
    assert ex.loc[0, "output"] == "[red]no[/] idea" and ex.loc[1, "output"] == "answer 1"
    scores = s.scores(env["b"])
    assert len(scores) == N * 4
    wide = scores.pivot(index="example_id", columns="metric", values="value")
    for metric in ("exact_match", "token_f1"):
        assert ex.set_index("example_id")[metric].to_dict() == wide[metric].to_dict()
        mean = next(m["value"] for m in _json("show", env["b"], *db)["metrics"] if m["metric"] == metric)
        assert ex[metric].mean() == pytest.approx(mean)

    gate = _json("gate", "--baseline", env["a"], "--candidate", env["b"], "--policy", str(env["policy"]), *db)
    assert gate["passed"] is False and gate["checks"][0]["passed"] is False  # failures first


def _tables(env, cmd: str) -> list[list[str]]:
    db = ("--db", str(env["db"]))
    return {
        "runs": ["runs", *db],
        "show": ["show", env["b"], *db],
        "compare": ["compare", env["a"], env["b"], "--top", "0", *db],
        "gate": [
            "gate",
            "--baseline",
            env["a"],
            "--candidate",
            env["b"],
            "--policy",
            str(env["policy"]),
            *db,
        ],
    }[cmd]


@pytest.mark.parametrize("cmd", ["runs", "show", "compare", "gate"])
def test_piped_output_is_never_cut_and_never_shows_markup(env, cmd):
    r = run_cli(*_tables(env, cmd), env={"COLUMNS": "60"})  # a narrow COLUMNS must not cut a log
    assert r.returncode in (0, 1), r.stderr
    assert "…" not in r.stdout and "\x1b[" not in r.stdout, r.stdout
    if cmd in ("runs", "show", "compare"):
        assert env["tmp"].name in r.stdout  # the whole model spec
    if cmd == "compare":
        assert "exact_match_with_a_very_long_alias_name" in r.stdout
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith(("exact_match", "token_f1", "rouge1"))]
        assert len(lines) == 4  # one line per metric, never wrapped
        assert "▲ better" in r.stdout and "wins/losses/ties" in r.stdout  # the verdict legend
    if cmd == "gate":
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        checks = [ln for ln in lines if "PASS" in ln or "FAIL" in ln]
        assert "FAIL" in checks[0] and all("PASS" in ln for ln in checks[1:])  # failures first
        assert lines[-1].startswith("gate failed: 1 of")  # the verdict, last


@pytest.mark.parametrize("cmd", ["runs", "show", "compare", "gate"])
def test_a_100_column_terminal_fits_every_line(env, cmd):
    r = run_cli(*_tables(env, cmd), env={"COLUMNS": "100", "FORCE_COLOR": "1"})
    assert r.returncode in (0, 1), r.stderr
    lines = ANSI.sub("", r.stdout).splitlines()
    assert max(cell_len(ln.rstrip()) for ln in lines) <= 100, r.stdout
    if cmd == "compare":  # one line per metric: nothing wrapped
        assert len([ln for ln in lines if ln.startswith(("exact_", "token_f1", "rouge1"))]) == 4


def test_data_check_prints_its_labels_never_the_markup(tmp_path: Path):
    f = tmp_path / "train.jsonl"
    turns = [{"role": "user", "content": "q [b]x[/b]"}, {"role": "assistant", "content": "a b c"}]
    good = json.dumps({"messages": turns}) + "\n"
    f.write_text(good * 3 + "not json [red]\n")
    r = run_cli("data", "check", str(f))
    out = r.stdout + r.stderr
    assert f"error {f}:4: " in out and "[red]error[/]" not in out and "[/]" not in out.replace("[/b]", "")


def test_reading_through_the_api_never_imports_torch(env):
    code = (
        "import sys, tunegate\n"
        f"s = tunegate.open({str(env['db'])!r})\n"
        f"s.runs(); s.summary({env['a']!r}); s.examples({env['a']!r})\n"
        f"s.compare({env['a']!r}, {env['b']!r})\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
