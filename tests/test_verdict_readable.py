"""#21 §4–§5: verdicts a user can read, about the runs the user meant.

Real CLI, real DuckDB files. The models are predictions files (no model load), a real SmolLM2
perplexity run where the shipped quickstart policy needs one, and a tiny transformers folder for
"the same folder, retrained"."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, write_suite

N = 30
WORDS = ["rank", "adapter", "alpha", "dropout", "optimizer", "learning", "rate", "matrix", "token"]


def _answer(i: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3))


DATA = "".join(
    json.dumps({"id": f"q{i:02d}", "question": f"Which three words name item {i}?", "answer": _answer(i)})
    + "\n"
    for i in range(N)
)
SUITE = (
    'name: qa\nkind: task\ndata: data.jsonl\nprompt: "Answer briefly.\\nQuestion: {{ question }}"\n'
    "reference: answer\ngeneration: {max_new_tokens: 8}\nmetrics: [exact_match, token_f1, rougeL, chrf]\n"
)


def _suite(tmp: Path) -> Path:
    return write_suite(tmp / "suite", SUITE, DATA)


def _preds(path: Path, outputs: list[str], ids: bool = True) -> Path:
    rows = [({"id": f"q{i:02d}"} if ids else {}) | {"output": o} for i, o in enumerate(outputs)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _outputs(kind: str) -> list[str]:
    """base: mostly right; cand: a few more wrong; echo: the prompt back; same-ish: base's but one."""
    out = []
    for i in range(N):
        right, wrong = _answer(i), _answer(i + 4)
        if kind == "base":
            out.append(right if i % 3 else wrong)
        elif kind == "cand":
            out.append(right if i % 4 else f"{WORDS[i % 9]} {wrong}")
        elif kind == "echo":
            out.append(f"Answer briefly.\nQuestion: Which three words name item {i}?")
        else:
            out.append(right if i % 3 else wrong if i else "something new")
    return out


def _ok(r) -> None:
    assert r.returncode == 0, r.stdout + r.stderr


def _score(db: Path, preds: Path, suite: Path | str, *extra: str):
    return run_cli("score", "--predictions", str(preds), "--suite", str(suite), "--db", str(db),
                   "--no-progress", *extra)  # fmt: skip


def _run_ids(db: Path) -> list[str]:
    from harness.store import Store

    with Store(db) as s:
        return [r[0] for r in s.db.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()]


def _policy(tmp: Path, text: str) -> Path:
    p = tmp / "policy.yaml"
    p.write_text(text, encoding="utf-8")
    return p


# -- the quickstart's gate output ------------------------------------------------------------------
def test_quickstart_policy_gate_output_is_readable(tmp_path):
    """The shipped quickstart policy on stored runs of its suites: margins on each metric's scale,
    one power line per suite, no 7-digit "examples needed"."""
    db = tmp_path / "t.duckdb"
    held = run_cli("run", "--model", "smollm2", "--suite", "heldout-text", "--limit", "3", "--db", str(db),
                   "--no-progress")  # fmt: skip
    _ok(held)
    (r_held,) = _run_ids(db)
    refs = [json.loads(line)["answer"] for line in (ROOT / "suites/builtin/data/finetune_qa.jsonl").open()]
    base = [a if i % 3 else "I do not know" for i, a in enumerate(refs)]
    cand = [a if i % 4 else f"perhaps {a.split()[0]}" for i, a in enumerate(refs)]
    ids = [json.loads(line)["id"] for line in (ROOT / "suites/builtin/data/finetune_qa.jsonl").open()]
    for name, outs in (("base", base), ("cand", cand)):
        rows = "".join(json.dumps({"id": i, "output": o}) + "\n" for i, o in zip(ids, outs))
        (tmp_path / f"{name}.jsonl").write_text(rows, encoding="utf-8")
        _ok(_score(db, tmp_path / f"{name}.jsonl", "finetune-qa"))
    # what `tunegate quickstart` does after evaluating: run_gate on the run ids, report_gate
    runs = _run_ids(db)
    script = (
        "import json, sys\n"
        "from tunegate.api import gate_record\n"
        "from tunegate.cli.gate import report_gate\n"
        "from tunegate.cli.quickstart import POLICY\n"
        "from harness.gate import load_policy, run_gate\n"
        "from harness.store import Store\n"
        "from suites.loader import BUILTIN_DIR\n"
        "db, held, base, cand, out = sys.argv[1:]\n"
        "with Store(db) as store:\n"
        "    policy, doc = load_policy(BUILTIN_DIR / POLICY)\n"
        "    result = run_gate(store, policy, doc, [held, base], [held, cand])\n"
        "open(out, 'w').write(json.dumps(gate_record(result)))\n"
        "report_gate(result)\n"
    )
    rec_file = tmp_path / "gate.json"
    r = subprocess.run(
        [sys.executable, "-c", script, str(db), r_held, runs[1], runs[2], str(rec_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert not re.search(r"\d{1,3}(,\d{3}){2,}|~\d{5,}", out), out  # no "~1,493,041 examples"
    power = [line for line in out.splitlines() if "underpowered" in line]
    assert len(power) == 1 and "finetune-qa: underpowered at n=30" in power[0], out  # one line, one suite
    assert all(m in power[0] for m in ("chrf", "rougeL")), power
    # chrF's margin is on its own 0-100 scale: 5% of the baseline's value, not 0.05 points
    rec = json.loads(rec_file.read_text())
    chrf = next(c for c in rec["checks"] if c["metric"] == "chrf" and c["check"] == "max_drop")
    assert chrf["threshold"] == pytest.approx(0.05 * chrf["baseline"], rel=1e-9)
    assert "5% of the baseline's" in chrf["reason"]


def test_relative_margins_and_one_power_line_per_suite(tmp_path):
    db, suite = tmp_path / "t.duckdb", _suite(tmp_path)
    base, cand = (
        _preds(tmp_path / "b.jsonl", _outputs("base")),
        _preds(tmp_path / "c.jsonl", _outputs("cand")),
    )
    _ok(_score(db, base, suite))
    _ok(_score(db, cand, suite))
    pol = _policy(
        tmp_path, "rules:\n  - {metric: '*', max_drop_rel: 2%}\n  - {metric: '*', non_inferior_rel: 1%}\n"
    )
    r = run_cli("gate", "--baseline", f"predictions:{base}", "--candidate", f"predictions:{cand}",
                "--policy", str(pol), "--db", str(db), "--json")  # fmt: skip
    rec = json.loads(r.stdout)
    for c in rec["checks"]:
        share = 0.02 if c["check"] == "max_drop" else 0.01
        bar = share * abs(c["baseline"])
        assert abs(c["threshold"]) == pytest.approx(bar, rel=1e-9), c
    underpowered = [w for w in rec["warnings"] if "underpowered" in w]
    assert len(underpowered) == 1 and underpowered[0].startswith("qa: underpowered at n=30")
    assert all(m in underpowered[0] for m in ("chrf", "rougeL", "token_f1")), underpowered
    bad = _policy(tmp_path, "rules:\n  - {metric: '*', max_drop: 0.1, max_drop_rel: 2%}\n")
    r = run_cli("gate", "--baseline", f"predictions:{base}", "--candidate", f"predictions:{cand}",
                "--policy", str(bad), "--db", str(db))  # fmt: skip
    assert r.returncode == 2 and "max_drop and max_drop_rel" in r.stderr


# -- the right runs --------------------------------------------------------------------------------
def test_spec_resolves_to_what_the_file_holds_now(tmp_path):
    db, suite = tmp_path / "t.duckdb", _suite(tmp_path)
    base = _preds(tmp_path / "base.jsonl", _outputs("base"))
    _ok(_score(db, base, suite))
    preds = _preds(tmp_path / "preds.jsonl", _outputs("same"))
    _ok(_score(db, preds, suite))
    first = _run_ids(db)[-1]
    _preds(preds, _outputs("cand"))  # the file changes, and is scored again
    _ok(_score(db, preds, suite))
    second = _run_ids(db)[-1]
    assert first != second
    pol = _policy(tmp_path, "rules:\n  - {metric: rougeL, max_drop: 1}\n")
    gate = ["gate", "--baseline", f"predictions:{base}", "--candidate", f"predictions:{preds}",
            "--policy", str(pol), "--db", str(db)]  # fmt: skip
    r = run_cli(*gate, "--json")
    _ok(r)
    assert json.loads(r.stdout)["candidate"] == {"qa": second}  # the new run, not the oldest
    # compare (CLI and Python) takes the same specs and picks the same run
    cmp = run_cli("compare", f"predictions:{base}", f"predictions:{preds}", "--db", str(db), "--json")
    _ok(cmp)
    assert json.loads(cmp.stdout)["candidate"]["run_id"] == second
    import tunegate

    frame = tunegate.open(db).compare(f"predictions:{base}", f"predictions:{preds}")
    assert set(frame["metric"]) == {"exact_match", "token_f1", "rougeL", "chrf"}
    # `runs` tells the two runs of one spec apart by the model id (short fingerprint)
    runs = json.loads(run_cli("runs", "--db", str(db), "--json").stdout)
    mine = {r["run_id"]: r["model_id"] for r in runs if r["model"].endswith("preds.jsonl")}
    assert len(set(mine.values())) == 2
    table = run_cli("runs", "--db", str(db)).stdout
    assert mine[first] in table and mine[second] in table
    # edited again but not scored: no stored run is of what the spec names now → refused, listed
    _preds(preds, _outputs("echo"))
    r = run_cli(*gate)
    assert r.returncode == 2, r.stdout
    err = " ".join(r.stderr.split())
    assert "matches none of its 2 stored models" in err and mine[first] in err and mine[second] in err
    assert first in err and second in err


def _tiny_folder(folder: Path, seed: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.models import resolve_model

    torch.manual_seed(seed)
    tok_src = resolve_model("smollm2").weights
    cfg = LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tok_src / name).is_file():
            shutil.copy(tok_src / name, folder / name)


def test_two_runs_of_one_folder_retrained_in_between_are_told_apart(tmp_path):
    db, suite = tmp_path / "t.duckdb", _suite(tmp_path)
    folder = tmp_path / "out"
    base = _preds(tmp_path / "base.jsonl", _outputs("base"))
    _ok(_score(db, base, suite))
    spec = f"hf:{folder}"
    for seed in (1, 2):  # trained, evaluated; retrained into the same folder, evaluated again
        _tiny_folder(folder, seed)
        _ok(
            run_cli(
                "run",
                "--model",
                spec,
                "--suite",
                str(suite),
                "--limit",
                "4",
                "--db",
                str(db),
                "--no-progress",
            )
        )
    old, new = _run_ids(db)[1:]
    runs = {r["run_id"]: r for r in json.loads(run_cli("runs", "--db", str(db), "--json").stdout)}
    assert runs[old]["model"] == runs[new]["model"] == spec
    assert runs[old]["model_id"] != runs[new]["model_id"]
    cmp = run_cli("compare", old, spec, "--db", str(db), "--json")  # a run id and a model spec
    _ok(cmp)
    assert json.loads(cmp.stdout)["candidate"]["run_id"] == new


# -- predictions without ids -----------------------------------------------------------------------
def test_predictions_without_ids_say_so_and_can_be_refused(tmp_path):
    db, suite = tmp_path / "t.duckdb", _suite(tmp_path)
    preds = _preds(tmp_path / "noids.jsonl", _outputs("base"), ids=False)
    r = _score(db, preds, suite)
    _ok(r)
    err = " ".join(r.stderr.split())
    assert "has no ids" in err and "by position" in err and "--require-ids" in err
    assert err.count("has no ids") == 1
    r = _score(tmp_path / "other.duckdb", preds, suite, "--require-ids")
    assert r.returncode == 2 and "ids are required" in r.stderr
    r = run_cli("run", "--model", f"predictions:{preds}", "--suite", str(suite), "--require-ids",
                "--db", str(tmp_path / "other.duckdb"))  # fmt: skip
    assert r.returncode == 2 and "ids are required" in r.stderr
    # a file with ids is the same model with or without --require-ids
    with_ids = _preds(tmp_path / "ids.jsonl", _outputs("base"))
    _ok(_score(db, with_ids, suite))
    _ok(_score(db, with_ids, suite, "--require-ids"))
    runs = json.loads(run_cli("runs", "--db", str(db), "--json").stdout)
    assert len({r["model_id"] for r in runs if r["model"].startswith(f"predictions:{with_ids}")}) == 1
    action = (ROOT / "action.yml").read_text(encoding="utf-8")
    assert "predictions:*) ids=(--require-ids)" in action


# -- one sign convention ---------------------------------------------------------------------------
def test_compare_and_gate_print_the_same_signed_delta(tmp_path):
    db, suite = tmp_path / "t.duckdb", _suite(tmp_path)
    base, cand = (
        _preds(tmp_path / "b.jsonl", _outputs("cand")),
        _preds(tmp_path / "c.jsonl", _outputs("base")),
    )
    _ok(_score(db, base, suite))
    _ok(_score(db, cand, suite))
    b, c = f"predictions:{base}", f"predictions:{cand}"
    rec = json.loads(run_cli("compare", b, c, "--db", str(db), "--json").stdout)
    delta = next(m["delta"] for m in rec["metrics"] if m["metric"] == "rougeL")
    assert delta < 0  # the candidate is worse here
    text = run_cli("compare", b, c, "--db", str(db)).stdout
    assert "excludes 0, or not" not in text and "delta = candidate − baseline" in text
    pol = _policy(
        tmp_path, "rules:\n  - {metric: rougeL, max_drop: 0.5}\n  - {metric: rougeL, max_error_rate: 0}\n"
    )
    gate = run_cli("gate", "--baseline", b, "--candidate", c, "--policy", str(pol), "--db", str(db))
    _ok(gate)
    shown = f"{delta:.4g}"  # compare's 4 significant digits, with its sign
    drop_row = next(line for line in gate.stdout.splitlines() if "max_drop" in line and "rougeL" in line)
    assert shown in drop_row and f"delta {shown}" in drop_row, drop_row
    assert "delta = candidate − baseline" in gate.stdout
    err_row = next(line for line in gate.stdout.splitlines() if "max_error_rate" in line)
    assert "p=" not in err_row, err_row
    gj = json.loads(run_cli("gate", "--baseline", b, "--candidate", c, "--policy", str(pol), "--db", str(db),
                            "--json").stdout)  # fmt: skip
    err_check = next(x for x in gj["checks"] if x["check"] == "max_error_rate")
    assert err_check["p_value"] is None and err_check["test"] is None


def test_gate_warnings_are_in_the_html_report(tmp_path):
    db, suite = tmp_path / "t.duckdb", _suite(tmp_path)
    base, cand = (
        _preds(tmp_path / "b.jsonl", _outputs("base")),
        _preds(tmp_path / "c.jsonl", _outputs("cand")),
    )
    _ok(_score(db, base, suite))
    _ok(_score(db, cand, suite))
    pol = _policy(tmp_path, "rules:\n  - {metric: '*', max_drop: 0.001}\n")
    html = tmp_path / "r.html"
    r = run_cli("gate", "--baseline", f"predictions:{base}", "--candidate", f"predictions:{cand}",
                "--policy", str(pol), "--db", str(db), "--html", str(html))  # fmt: skip
    assert r.returncode in (0, 1), r.stderr
    page = html.read_text(encoding="utf-8")
    assert "qa: underpowered at n=30" in page
    assert 'title="candidate − baseline">delta' in page  # the gate table's delta, signed as compare's


# -- degenerate outputs ----------------------------------------------------------------------------
def test_identical_and_echoed_outputs_are_said_and_can_fail_the_gate(tmp_path):
    db, suite = tmp_path / "t.duckdb", _suite(tmp_path)
    base = _preds(tmp_path / "b.jsonl", _outputs("base"))
    same = _preds(tmp_path / "same.jsonl", _outputs("same"))
    echo = _preds(tmp_path / "echo.jsonl", _outputs("echo"))
    for p in (base, same, echo):
        _ok(_score(db, p, suite))
    b = f"predictions:{base}"
    text = " ".join(run_cli("compare", b, f"predictions:{same}", "--db", str(db)).stdout.split())
    assert "29 of 30 candidate outputs are identical to the baseline's" in text
    text = " ".join(run_cli("compare", b, f"predictions:{echo}", "--db", str(db)).stdout.split())
    assert "30 of 30 candidate outputs repeat the prompt" in text
    loose = _policy(tmp_path, "rules:\n  - {metric: token_f1, max_drop: 1}\n")
    r = run_cli("gate", "--baseline", b, "--candidate", f"predictions:{same}", "--policy", str(loose),
                "--db", str(db))  # fmt: skip
    assert r.returncode == 0 and "identical to the baseline's" in r.stdout  # said beside the verdict
    strict = _policy(
        tmp_path, "rules:\n  - {metric: token_f1, max_drop: 1}\n"
        "  - {max_identical_to_baseline: 0.5, max_prompt_echo: 0.5}\n",
    )  # fmt: skip
    for cand, check in ((same, "max_identical_to_baseline"), (echo, "max_prompt_echo")):
        r = run_cli("gate", "--baseline", b, "--candidate", f"predictions:{cand}", "--policy", str(strict),
                    "--db", str(db), "--json")  # fmt: skip
        assert r.returncode == 1, r.stdout + r.stderr
        failed = [c["check"] for c in json.loads(r.stdout)["checks"] if not c["passed"]]
        assert failed == [check]
