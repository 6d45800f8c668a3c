"""Paired bootstrap of corpus BLEU: tunegate (stored statistics) vs sacreBLEU's own, side by side.

2,000 sentence pairs × 1,000 resamples, seed 12345 on both sides. sacreBLEU's PairedTest starts
from the text (it extracts statistics and then resamples); tunegate starts from the per-example
statistics its store already holds (extracted once when the run was scored), so two tunegate
figures are given: the test alone on stored statistics, and the whole `compare` path (read the
rows from a DuckDB store + test). The p-values must be identical. Target: ≤ 1× of sacreBLEU.

    .venv/bin/python bench/bench_corpus_bleu.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import report, timed  # noqa: E402

N, RESAMPLES = 2000, 1000
WORDS = (
    "the a of to in and is for on that with as by at this from be it an are was not or have "
    "model data system results translation quality score test sentence word corpus method"
).split()


def corpus(seed: int = 1) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    refs = [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 40)))) for _ in range(N)]

    def noisy(keep: float) -> list[str]:
        return [
            " ".join(t if rng.random() < keep else str(rng.choice(WORDS)) for t in r.split()) for r in refs
        ]

    return refs, noisy(0.6), noisy(0.605)


def store_with_runs(path: Path, refs: list[str], base: list[str], cand: list[str]) -> tuple[str, str]:
    """A store holding both systems scored with the real corpus_bleu metric."""
    import json

    from harness.store import Store
    from suites.metrics import METRICS, ExampleView

    built = METRICS.build("corpus_bleu", {})
    with Store(path) as s:
        s.upsert_model("m-a", "base", "hf", "a" * 64)
        s.upsert_model("m-b", "cand", "hf", "b" * 64)
        s.db.execute("INSERT INTO suites VALUES ('mt-1', 'mt', 'task', 'h', 'mt.yaml', '{}', now())")
        s.db.executemany(
            "INSERT INTO examples VALUES ('mt-1', ?, ?, NULL, ?)",
            [(f"e{i}", i, json.dumps([r])) for i, r in enumerate(refs)],
        )
        for run, model, hyps in (("r-a", "m-a", base), ("r-b", "m-b", cand)):
            s.create_run(
                run,
                model,
                "mt-1",
                config={},
                seed=0,
                versions={},
                git_sha=None,
                host="h",
                n_examples=N,
                metrics=[("corpus_bleu", built.spec, "corpus_bleu", True, False)],
            )
            rows = []
            for i, (h, r) in enumerate(zip(hyps, refs)):
                res = built.unit(h, ExampleView([r]))
                rows.append((run, f"e{i}", "corpus_bleu", res.value, 1.0, None, json.dumps(res.detail)))
            s.db.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            s.mark_run(run, "completed")
    return "r-a", "r-b"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    from harness.results import compare_runs
    from harness.stats import compare_paired
    from harness.store import Store

    refs, base, cand = corpus()
    print(f"{N} sentence pairs, {RESAMPLES} resamples, seed 12345 (sacreBLEU's default)")

    def sacre() -> float:
        named = [("base", base), ("cand", cand)]
        _, scores = PairedTest(named, {"bleu": BLEU()}, [refs], test_type="bs", n_samples=RESAMPLES)()
        return scores["BLEU"][1].p_value

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        ra, rb = store_with_runs(db, refs, base, cand)
        with Store(db) as store:
            from harness.results import paired_arrays

            spec = store.run_metrics(ra)[0]["spec"]
            pa, pb, _, _ = paired_arrays(store, ra, rb, "corpus_bleu", "corpus_bleu", spec)

            def ours_test() -> float:
                return compare_paired(pa, pb, aggregation="corpus_bleu", n_resamples=RESAMPLES).p_value

            def ours_compare() -> float:
                return compare_runs(store, ra, rb, k=0)[2][0].paired.p_value

            rows, ps = [], {}
            # Alternate the sides so load changes on the shared machine hit both alike.
            times: dict[str, list[float]] = {
                "sacrebleu PairedTest (bs)": [],
                "tunegate test": [],
                "tunegate compare": [],
            }
            fns = {
                "sacrebleu PairedTest (bs)": sacre,
                "tunegate test": ours_test,
                "tunegate compare": ours_compare,
            }
            for _ in range(args.repeat):
                for name, fn in fns.items():
                    t, p = timed(fn)
                    times[name].append(t)
                    ps[name] = p
    rows = [(name, float(np.median(ts))) for name, ts in times.items()]
    from suites.metrics import METRICS, ExampleView

    unit = METRICS.build("corpus_bleu", {}).unit
    t_score, _ = timed(
        lambda: [unit(h, ExampleView([r])) for hyps in (base, cand) for h, r in zip(hyps, refs)]
    )
    rows.append(("(scoring both runs, paid once)", t_score))
    report(
        "paired bootstrap of corpus BLEU", rows, "sacrebleu PairedTest (bs)", "tunegate <= 1x of sacreBLEU"
    )
    print("  p-values:", {k: round(v, 6) for k, v in ps.items()})
    assert len(set(ps.values())) == 1, "p-values differ"


if __name__ == "__main__":
    main()
