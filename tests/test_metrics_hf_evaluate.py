"""A Hugging Face `evaluate` module from a local folder, used as a task metric, offline."""

from __future__ import annotations

import hashlib
import json

from harness.store import Store
from tests.conftest import run_cli

MODULE = '''
import datasets
import evaluate


class CharOverlap(evaluate.Metric):
    """Share of the reference's characters found in the prediction; and the prediction's length."""

    def _info(self):
        return evaluate.MetricInfo(
            description="char overlap",
            citation="",
            inputs_description="predictions, references",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        p, r = predictions[0], references[0]
        hit = sum(1 for c in set(r) if c in p) / max(len(set(r)), 1)
        return {"overlap": hit, "length": len(p)}
'''


def test_evaluate_module_scores_a_task_suite(tmp_path):
    folder = tmp_path / "metrics" / "char_overlap"
    folder.mkdir(parents=True)
    (folder / "char_overlap.py").write_text(MODULE)
    data = tmp_path / "qa.jsonl"
    data.write_text('{"id": "a", "q": "x", "answer": "abcd"}\n{"id": "b", "q": "y", "answer": "wxyz"}\n')
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: ev\nkind: task\ndata: qa.jsonl\nprompt: '{{ q }}'\nreference: answer\nmetrics:\n"
        "  - {name: hf_evaluate, path: metrics/char_overlap, key: overlap, as: overlap}\n"
        "  - {name: hf_evaluate, path: metrics/char_overlap, key: length, higher_is_better: false,\n"
        "     as: length}\n"
    )
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "a", "output": "ab"}\n{"id": "b", "output": "wxyz!"}\n')
    db = tmp_path / "e.duckdb"
    # a metric module is Python the suite brings: refused unless the caller trusts it
    args = ["score", "-p", str(preds), "-s", str(suite), "--db", str(db), "--no-progress"]
    p = run_cli(*args, env={"HF_HUB_OFFLINE": "1", "TUNEGATE_TRUST_CODE": ""})
    assert p.returncode == 2 and "--trust-code" in p.stderr and "metrics.0.path" in p.stderr, p.stderr
    assert "s.yaml:7" in p.stderr and not db.exists()
    p = run_cli(
        "--trust-code",
        "score",
        "-p",
        str(preds),
        "-s",
        str(suite),
        "--db",
        str(db),
        "--no-progress",
        env={"HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"},
    )
    assert p.returncode == 0, p.stdout + p.stderr
    with Store(db) as store:
        rows = store.db.execute(
            "SELECT example_id, metric, value, error FROM scores ORDER BY 1, 2"
        ).fetchall()
        specs = dict(store.db.execute("SELECT metric, spec FROM run_metrics").fetchall())
        hib = dict(store.db.execute("SELECT metric, higher_is_better FROM run_metrics").fetchall())
    assert rows == [
        ("a", "length", 2.0, None),
        ("a", "overlap", 0.5, None),
        ("b", "length", 5.0, None),
        ("b", "overlap", 1.0, None),
    ]
    spec = json.loads(specs["overlap"])
    assert spec["name"] == "hf_evaluate" and spec["args"]["path"] == str(folder.resolve())
    assert spec["sha256"] == hashlib.sha256(b"char_overlap.py\0" + MODULE.encode() + b"\0").hexdigest()
    assert hib == {"overlap": True, "length": False}


def test_evaluate_module_errors_are_one_line(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"id": "a", "q": "x", "answer": "abcd"}\n')
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: ev\nkind: task\ndata: qa.jsonl\nprompt: '{{ q }}'\nreference: answer\n"
        "metrics:\n  - {name: hf_evaluate, path: nowhere.py}\n"
    )
    p = run_cli("--trust-code", "suites", "validate", str(suite))
    assert p.returncode == 2 and "no evaluate module" in p.stderr and "Traceback" not in p.stderr
