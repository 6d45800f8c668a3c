"""Corpus metrics end to end: suite → predictions → store → show / compare / gate (#13). No model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

import suites  # noqa: F401  (registers the suite loader harness.evaluate uses)
from harness.evaluate import evaluate_runs as evaluate
from harness.results import compare_runs, summarize_run
from harness.runner import RunOptions
from harness.store import Store
from tests.conftest import run_cli, write_suite

WORDS = "we the model a data test is on of and score translation system good new".split()
SUITE = """name: mt
kind: task
data: data.jsonl
prompt: "Translate: {{ src }}"
reference: refs
metrics:
  - corpus_bleu
  - corpus_chrf
  - {name: corpus_bleu, as: bleu_lc, lowercase: true}
"""


def _setup(tmp_path: Path) -> tuple[Path, Path, list[list[str]], list[str], list[str]]:
    rng = np.random.default_rng(3)
    refs, base, cand = [], [], []
    for i in range(40):
        r1 = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 12))))
        refs.append([r1] if i % 4 else [r1, " ".join(rng.choice(WORDS, size=6))])
        base.append(" ".join(t if rng.random() < 0.5 else "x" for t in r1.split()))
        cand.append(" ".join(t if rng.random() < 0.8 else "x" for t in r1.split()))
    data = "".join(json.dumps({"id": f"s{i}", "src": str(i), "refs": r}) + "\n" for i, r in enumerate(refs))
    suite = write_suite(tmp_path, SUITE, data)
    for name, hyps in (("base", base), ("cand", cand)):
        lines = "".join(json.dumps({"id": f"s{i}", "output": h}) + "\n" for i, h in enumerate(hyps))
        (tmp_path / f"{name}.jsonl").write_text(lines)
    return suite, tmp_path / "t.duckdb", refs, base, cand


def test_corpus_metrics_from_rows_compare_and_gate(tmp_path: Path) -> None:
    suite, db, refs, base, cand = _setup(tmp_path)
    ra, rb = (
        evaluate(f"predictions:{tmp_path / name}.jsonl", [str(suite)], db, RunOptions())[0].run_id
        for name in ("base", "cand")
    )
    streams = [[r[0] for r in refs], [r[1] if len(r) > 1 else None for r in refs]]
    with Store(db) as store:
        _, summaries = summarize_run(store, ra)
        got = {m.metric: m for m in summaries}
        assert got["corpus_bleu"].summary.value == sacrebleu.corpus_bleu(base, streams).score
        assert got["corpus_chrf"].summary.value == sacrebleu.corpus_chrf(base, streams).score
        assert got["bleu_lc"].summary.value == sacrebleu.corpus_bleu(base, streams, lowercase=True).score
        # sacreBLEU's own signature, with tokenize: auto (13a here: no Chinese reference) named as such
        assert got["corpus_bleu"].signature == str(
            (m := BLEU()).corpus_score(base, streams) and m.get_signature()
        ).replace("tok:13a", "tok:auto(zh|13a)")
        comps = {c.metric: c for c in compare_runs(store, ra, rb)[2]}
        named = [("base", base), ("cand", cand)]
        _, ref = PairedTest(named, {"BLEU": BLEU()}, streams, test_type="bs", n_samples=1000)()
        c = comps["corpus_bleu"]
        assert c.paired.test == "paired_bs" and c.paired.p_value == ref["BLEU"][1].p_value
        assert c.signature.endswith("|bs:1000|seed:12345") and "nrefs:var" in c.signature
    shown = run_cli("show", ra, "--db", str(db))
    assert shown.returncode == 0 and "nrefs:var" in shown.stdout, shown.stdout + shown.stderr
    ar = run_cli("compare", ra, rb, "--db", str(db), "--test", "paired_ar")
    assert ar.returncode == 0 and "paired_ar" in ar.stdout, ar.stdout + ar.stderr
    bad = run_cli("compare", ra, rb, "--db", str(db), "--test", "t")
    assert bad.returncode == 2 and "mean" in bad.stderr + bad.stdout
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  - {suite: mt, metric: corpus_bleu, max_drop: 0.5, significance: 0.05, test: paired_ar}\n"
    )
    ok = run_cli("gate", "--baseline", ra, "--candidate", rb, "--policy", str(policy), "--db", str(db))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    worse = run_cli("gate", "--baseline", rb, "--candidate", ra, "--policy", str(policy), "--db", str(db))
    assert worse.returncode == 1 and "paired_ar" in worse.stdout, worse.stdout + worse.stderr
    policy.write_text("rules:\n  - {suite: mt, metric: corpus_bleu, max_drop: 0.5, test: mcnemar}\n")
    located = run_cli("gate", "--baseline", ra, "--candidate", rb, "--policy", str(policy), "--db", str(db))
    assert located.returncode == 2 and "policy.yaml" in located.stderr + located.stdout
    policy.write_text("rules:\n  - {suite: mt, metric: corpus_bleu, max_drop: 0.5, test: ztest}\n")
    typo = run_cli("gate", "--baseline", ra, "--candidate", rb, "--policy", str(policy), "--db", str(db))
    assert typo.returncode == 2 and "policy.yaml:2" in typo.stderr + typo.stdout
