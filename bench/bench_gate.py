"""`compare` and `gate` on a store with 1,000,000 score rows (two runs × 500k examples).

Targets: the query part <= 1 s; the bootstrap (1,000 resamples of 500k paired differences)
<= 2 s, reported separately; the comparability check (harness.measurement: both runs' measurement
records, refused unless alike) <= 5% of the whole gate.

    .venv/bin/python bench/bench_gate.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = 500_000


def build(path: Path) -> None:
    from harness.store import Store

    with Store(path) as s:
        s.upsert_model("m-a", "base", "hf", "a" * 64)
        s.upsert_model("m-b", "cand", "hf", "b" * 64)
        s.db.execute("INSERT INTO suites VALUES ('big-1', 'big', 'task', 'h', 'big.yaml', '{}', now())")
        s.db.execute("INSERT INTO examples SELECT 'big-1', 'e' || i, i, NULL, NULL FROM range(?) t(i)", [N])
        for run, model, shift in (("r-a", "m-a", 0.0), ("r-b", "m-b", 0.002)):
            s.create_run(
                run,
                model,
                "big-1",
                config={},
                seed=0,
                versions={},
                git_sha=None,
                host="h",
                n_examples=N,
                metrics=[("token_f1", {}, "mean", True, False), ("exact_match", {}, "mean", True, True)],
                measurement=_record(model),
            )
            s.db.execute(
                "INSERT INTO run_examples SELECT ?, 'e' || i, NULL, false, NULL, now() FROM range(?) t(i)",
                [run, N],
            )
            # deterministic pseudo-random scores: hash(i) mapped to [0, 1)
            s.db.execute(
                "INSERT INTO scores SELECT ?, 'e' || i, 'token_f1',"
                " least(1.0, (hash(i + ?) % 1000000) / 1e6), 1.0, NULL, NULL FROM range(?) t(i)",
                [run, int(shift * 1000), N],
            )
            s.db.execute(
                "INSERT INTO scores SELECT ?, 'e' || i, 'exact_match', CASE WHEN (hash(i * 7 + ?) % 100) < 40"
                " THEN 1.0 ELSE 0.0 END, 1.0, NULL, NULL FROM range(?) t(i)",
                [run, int(shift * 1000), N],
            )
            s.mark_run(run, "completed")


def _record(model: str) -> dict:
    """A measurement record as a real task run stores one (harness.measurement.build_record)."""
    spec = {"token_f1": {"name": "token_f1", "args": {}}, "exact_match": {"name": "exact_match", "args": {}}}
    return {
        "version": 1,
        "request_types": ["generate"],
        "suite": {"name": "big", "kind": "task", "prompt": "p" * 16, "content_hash": "h", "data": "d" * 16},
        "generation": {"max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0, "stop": ["\n"]},
        "metrics": {k: {"spec": v, "version": 1} for k, v in spec.items()},
        "chat": {"rendered": "local", "template": "t" * 16},
        "suite_facts": {},
        "identity": {
            "weights": model,
            "adapter": None,
            "backend": "hf",
            "quantization": None,
            "device": "cpu",
            "dtype": "float32",
        },  # fmt: skip
        "tunegate": "bench",
    }


def main() -> None:
    from harness import stats
    from harness.results import compare_runs, paired_arrays
    from harness.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.duckdb"
        t0 = time.perf_counter()
        build(path)
        print(
            f"built store with {4 * N:,} score rows (2 runs × {N:,} examples × 2 metrics) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        with Store(path) as store:
            for metric in ("token_f1", "exact_match"):
                t0 = time.perf_counter()
                pa, pb, _ids, _extra = paired_arrays(store, "r-a", "r-b", metric, "mean")
                t_query = time.perf_counter() - t0
                t0 = time.perf_counter()
                p = stats.compare_paired(pa, pb, n_boot=1000, binary=metric == "exact_match")
                t_boot = time.perf_counter() - t0
                print(f"\n== {metric}: {len(pa.value):,} paired examples")
                print(f"  query (store → paired numpy arrays)  {t_query:7.3f} s   target <= 1 s")
                print(
                    f"  paired bootstrap, 1,000 resamples     {t_boot:7.3f} s   target <= 2 s "
                    f"(test {p.test}, delta {p.delta:+.5f} [{p.ci_low:+.5f}, {p.ci_high:+.5f}])"
                )
            t0 = time.perf_counter()
            compare_runs(store, "r-a", "r-b")
            t_compare = time.perf_counter() - t0
            print(f"\n  full compare_runs (2 metrics, 2,000 resamples each, regressions) {t_compare:.3f} s")
            from harness.config import LocatedYaml
            from harness.gate import load_policy, run_gate
            from harness.results import comparability

            policy = Path(tmp) / "policy.yaml"
            policy.write_text("rules:\n  - {metric: '*', max_drop: 0.01}\n")
            pol, doc = load_policy(policy)
            t0 = time.perf_counter()
            run_gate(store, pol, doc, ["r-a"], ["r-b"])
            t_gate = time.perf_counter() - t0
            ra, rb = store.get_run("r-a"), store.get_run("r-b")
            reps = 20
            t0 = time.perf_counter()
            for _ in range(reps):
                comparability(store, ra, rb)
            t_check = (time.perf_counter() - t0) / reps
            assert isinstance(doc, LocatedYaml)
            print(
                f"  gate (policy max_drop on both metrics)  {t_gate:.3f} s; comparability check "
                f"{t_check * 1000:.1f} ms = {t_check / t_gate:.2%} of the gate (target <= 5%; the gate "
                "runs it once per suite and once per rule re-comparison)"
            )
        # the pipelined, vectorised bootstrap vs a plain Python loop over resamples (same draws)
        d = pb.value - pa.value
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        loop = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(100)]
        t_loop = (time.perf_counter() - t0) * 10
        t0 = time.perf_counter()
        stats._bootstrap(len(d), lambda i: d[i].mean(axis=1), 1000, 0)
        print(
            f"\n  1,000 resamples of {len(d):,} continuous differences: python loop {t_loop:.2f} s "
            f"(extrapolated from 100, {len(loop)} done) vs tunegate {time.perf_counter() - t0:.2f} s"
        )


if __name__ == "__main__":
    main()
