"""Scoring throughput for Chinese text, per tokenizer, and jieba's one-time start-up cost.

10,000 Chinese (prediction, reference) pairs built from the zh-support answers with seeded
edits (dropped, swapped and substituted characters), scored by each text metric under
tokenize=default / char / jieba (auto is char on this data), plus the llamafactory preset.

    .venv/bin/python bench/bench_zh_metrics.py [--pairs 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import timed  # noqa: E402

METRICS = ["exact_match", "token_f1", "rouge1", "rougeL", "bleu", "chrf"]


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    import random

    rng = random.Random(seed)
    answers = [
        json.loads(line)["answer"]
        for line in (ROOT / "suites/builtin/data/zh_support.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    filler = "的了是在我有和就不人都一上也很到说要去你会着没有看好自己这"
    pairs = []
    for _ in range(n):
        ref = rng.choice(answers)
        chars = list(ref)
        for _ in range(rng.randint(0, 4)):
            k = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                chars[k] = rng.choice(filler)
            elif op < 0.7 and len(chars) > 2:
                del chars[k]
            else:
                j = rng.randrange(len(chars))
                chars[k], chars[j] = chars[j], chars[k]
        pairs.append(("".join(chars), ref))
    return pairs


def jieba_startup() -> dict[str, float]:
    """Seconds to import jieba and load its dictionary in a fresh process (cold: no cache file)."""
    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import time, jieba, logging\n"
            "jieba.setLogLevel(logging.WARNING)\n"
            f"jieba.dt.cache_file = {str(Path(tmp) / 'jieba.cache')!r}\n"
            "t = time.perf_counter(); jieba.initialize(); print(time.perf_counter() - t)\n"
        )
        out = {}
        for label in ("cold (builds its cache file)", "warm (cache file present)"):
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            out[label] = float(r.stdout.strip())
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=10_000)
    args = ap.parse_args()
    from suites.metrics import METRICS as REGISTRY
    from suites.metrics import PRESETS, ExampleView
    from suites.metrics import tokenize as tk

    pairs = make_pairs(args.pairs)
    views = [(p, ExampleView([r])) for p, r in pairs]

    print(f"\n== jieba start-up, once per process ({sys.executable})")
    for label, secs in jieba_startup().items():
        print(f"  {label:<34} {secs:7.3f} s")
    t0 = time.perf_counter()
    tk.jieba_module()  # this process: loaded once here, never again per example
    print(f"  {'in this process (tk.jieba_module)':<34} {time.perf_counter() - t0:7.3f} s")

    print(f"\n== scoring throughput, {len(pairs)} Chinese pairs, pairs per second")
    print(f"  {'metric':<14}" + "".join(f"{t:>12}" for t in ("default", "char", "jieba")))
    for name in METRICS:
        row = []
        for tokenize in ("default", "char", "jieba"):
            scorer = REGISTRY.build(name, {"tokenize": tokenize}).unit
            secs, _ = timed(
                lambda s=scorer: [s(p, v) for p, v in views], 3
            )  # median of 3: a shared CPU is noisy
            row.append(len(pairs) / secs)
        print(f"  {name:<14}" + "".join(f"{x:12.0f}" for x in row))

    scorers = [REGISTRY.build(e["name"], {k: v for k, v in e.items() if k not in ("name", "as")}).unit
               for e in PRESETS["llamafactory"]]  # fmt: skip
    from suites.metrics.llamafactory import lf_rouge

    lf_rouge.cache_clear()
    secs, _ = timed(lambda: [[s(p, v) for s in scorers] for p, v in views])
    print(
        f"  {'llamafactory (4 metrics, jieba + rouge-chinese + nltk)':<56} {len(pairs) / secs:8.0f} pairs/s"
    )


if __name__ == "__main__":
    main()
