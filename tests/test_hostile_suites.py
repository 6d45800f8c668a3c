"""Suites read inside their own folder (issue #22, item 2).

A suite a pull request brings names a file outside its folder (an absolute path, `../..`, a
symlink pointing out); the real CLI refuses it with an error naming the suite file, the line and
the field, reads nothing and stores nothing, unless the caller allows a root with --data-root
or TUNEGATE_DATA_ROOT. The built-in suites keep working.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_cli, write_suite

SECRET = "runner-secret-0b7e1c"
ROWS = [{"id": f"e{i}", "q": f"{SECRET} {i}", "a": str(i)} for i in range(3)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _task(data: str, extra: str = "") -> str:
    head = f'name: qa\nkind: task\ndata: {data}\nprompt: "Q: {{{{ q }}}}"\n'
    return head + f"reference: a\nmetrics: [exact_match]\n{extra}"


@pytest.fixture()
def outside(tmp_path):
    """A file outside the suite folder that the suite must not reach."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "secret.jsonl").write_text(_jsonl(ROWS), encoding="utf-8")
    (folder / "secret.txt").write_text(f"{SECRET}\n\nmore text\n", encoding="utf-8")
    (folder / "tpl.jinja").write_text("{{ messages }}", encoding="utf-8")
    return folder


def _preds(tmp_path):
    p = tmp_path / "preds.jsonl"
    p.write_text(_jsonl([{"id": r["id"], "output": r["a"]} for r in ROWS]), encoding="utf-8")
    return p


def _refused(r, suite, line: int, field: str) -> None:
    out = (r.stdout + r.stderr).replace("\n", "")
    assert r.returncode == 2, (r.returncode, out[-2000:])
    assert "Traceback" not in out
    assert f"{suite}:{line} field '{field}'" in out, out[-2000:]
    assert "outside the suite's folder" in out and "--data-root" in out
    assert SECRET not in out


@pytest.mark.parametrize(
    "how",
    ["absolute", "dotdot", "symlink_file", "symlink_folder"],
)
def test_task_data_outside_the_suite_folder_is_refused(tmp_path, outside, how):
    suite_dir = tmp_path / "pr" / "evals"
    suite_dir.mkdir(parents=True)
    if how == "absolute":
        data = str(outside / "secret.jsonl")
    elif how == "dotdot":
        data = "../../secrets/secret.jsonl"
    elif how == "symlink_file":
        os.symlink(outside / "secret.jsonl", suite_dir / "data.jsonl")
        data = "data.jsonl"
    else:
        os.symlink(outside, suite_dir / "d")
        data = "d/secret.jsonl"
    suite = write_suite(suite_dir, _task(data))
    db = tmp_path / "t.duckdb"
    r = run_cli("run", "--model", f"predictions:{_preds(tmp_path)}", "--suite", str(suite), "--db", str(db))
    _refused(r, suite, 3, "data")
    assert not db.exists()
    r = run_cli("suites", "validate", str(suite))
    _refused(r, suite, 3, "data")


def test_perplexity_txt_outside_is_refused(tmp_path, outside):
    suite = write_suite(tmp_path / "s", f"name: ppl\nkind: perplexity\ndata: {outside / 'secret.txt'}\n")
    _refused(run_cli("suites", "validate", str(suite)), suite, 3, "data")


def test_chat_template_outside_is_refused(tmp_path, outside):
    suite = write_suite(
        tmp_path / "s", _task("data.jsonl", f"chat_template: {outside / 'tpl.jinja'}\n"), _jsonl(ROWS)
    )
    _refused(run_cli("suites", "validate", str(suite)), suite, 7, "chat_template")


def test_benchmark_include_path_outside_is_refused(tmp_path, outside):
    suite = write_suite(tmp_path / "s", f"name: b\nkind: benchmark\ninclude_path: [{outside}]\ntasks: [x]\n")
    _refused(run_cli("suites", "validate", str(suite)), suite, 3, "include_path.0")


def test_judge_sanity_set_outside_is_refused_before_any_call(tmp_path, outside):
    text = (
        'name: j\nkind: judge\ndata: data.jsonl\nprompt: "Q: {{ q }}"\nreference: a\n'
        "judge:\n  type: rubric\n  endpoint: {base_url: 'http://127.0.0.1:9/v1'}\n"
        f"  sanity: {outside / 'secret.jsonl'}\n"
    )
    suite = write_suite(tmp_path / "s", text, _jsonl(ROWS))
    _refused(run_cli("suites", "validate", str(suite)), suite, 9, "judge.sanity")


def test_data_root_allows_a_wider_folder(tmp_path, outside):
    suite_dir = tmp_path / "pr" / "evals"
    suite = write_suite(suite_dir, _task("../../secrets/secret.jsonl"))
    preds = _preds(tmp_path)
    r = run_cli(
        "--data-root",
        str(tmp_path),
        "run",
        "--model",
        f"predictions:{preds}",
        "--suite",
        str(suite),
        "--db",
        str(tmp_path / "a.duckdb"),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli(
        "run",
        "--model",
        f"predictions:{preds}",
        "--suite",
        str(suite),
        "--db",
        str(tmp_path / "b.duckdb"),
        env={"TUNEGATE_DATA_ROOT": str(outside)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    # a root elsewhere does not help
    r = run_cli("--data-root", str(suite_dir), "suites", "validate", str(suite))
    _refused(r, suite, 3, "data")


def test_data_inside_the_folder_and_builtin_suites_still_load(tmp_path):
    suite = write_suite(tmp_path / "s", _task("sub/../data.jsonl"), _jsonl(ROWS))
    r = run_cli("suites", "validate", str(suite))
    assert r.returncode == 0, r.stderr[-2000:]
    names = [
        "finetune-qa",
        "general-mini",
        "heldout-text",
        "json-extract",
        "judge-qa",
        "sentiment",
        "zh-support",
    ]
    r = run_cli("suites", "validate", *names, env={"TUNEGATE_DATA_ROOT": ""})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
