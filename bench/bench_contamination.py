"""Contamination scan at scale: 100,000 training records against 10,000 suite examples.

Target: under a minute on 2 cores, with its memory reported. The data are synthetic sentences
over a 20,000-word vocabulary (Zipf-like), with 100 planted copies of suite examples, so the
scan also has to find them (the count is checked and printed).

    .venv/bin/python bench/bench_contamination.py [--records 100000] [--examples 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.common  # noqa: E402,F401  (offline environment)


def sentence(rng: np.random.Generator, words: np.ndarray, lo: int, hi: int) -> str:
    idx = np.minimum(rng.zipf(1.3, rng.integers(lo, hi)), len(words)) - 1
    return " ".join(words[idx]).capitalize() + "."


def build(folder: Path, n_records: int, n_examples: int, planted: int) -> tuple[Path, Path, set[str]]:
    """The suite, the training file, and the ids of the examples planted in it."""
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(20_000)])
    examples = [
        {"id": f"ex{i}", "question": sentence(rng, words, 8, 30), "answer": sentence(rng, words, 3, 20)}
        for i in range(n_examples)
    ]
    (folder / "data.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    (folder / "suite.yaml").write_text(
        "name: big\nkind: task\ndata: data.jsonl\nprompt: '{{ question }}'\nreference: answer\n"
        "metrics: [exact_match]\n"
    )
    records = []
    copies = set(rng.choice(n_records, planted, replace=False).tolist())
    planted_ids = set()
    for i in range(n_records):
        if i in copies:
            e = examples[int(rng.integers(n_examples))]
            planted_ids.add(e["id"])
            records.append({"instruction": e["question"], "output": e["answer"]})
        else:
            q, a = sentence(rng, words, 10, 40), sentence(rng, words, 20, 80)
            records.append({"instruction": q, "output": a})
    train = folder / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder / "suite.yaml", train, planted_ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--planted", type=int, default=100)
    args = ap.parse_args()
    from suites import load_suite
    from trainers.contamination import scan

    with tempfile.TemporaryDirectory() as tmp:
        suite_path, train, planted_ids = build(Path(tmp), args.records, args.examples, args.planted)
        suite = load_suite(str(suite_path))
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        result = scan([train], [suite])
        secs = time.perf_counter() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = train.stat().st_size
    info = result.suites[0]
    print(f"\n== contamination scan: {args.records:,} training records ({size / 1e6:.1f} MB) × "
          f"{args.examples:,} suite examples")  # fmt: skip
    print(f"  wall                 {secs:8.2f} s   (target < 60 s on 2 cores)")
    print(f"  peak RSS             {rss1 / 1024:8.0f} MB  (before the scan {rss0 / 1024:.0f} MB)")
    print(f"  contaminated found   {len(info['contaminated']):8d}   by method {info['by_method']}")
    print(f"  planted copies       {args.planted:8d}   (of random examples, with replacement: "
          f"{len(planted_ids)} distinct)")  # fmt: skip
    missed = planted_ids - set(info["contaminated"])
    if missed:
        raise SystemExit(f"the scan missed {len(missed)} planted examples, e.g. {sorted(missed)[:5]}")
    print(f"  every planted example found; {len(set(info['contaminated']) - planted_ids)} found beyond them")


if __name__ == "__main__":
    main()
