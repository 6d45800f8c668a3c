"""Our rolling log-likelihood vs lm-eval's `loglikelihood_rolling` on the same texts and model
object (target: same values within 1e-4 relative; speed ratio reported). Needs `lm_eval`.

    .venv/bin/pip install lm_eval && .venv/bin/python bench/bench_perplexity.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import report, timed  # noqa: E402


def main() -> None:
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        sys.exit("this benchmark needs lm_eval: .venv/bin/pip install lm_eval")
    from harness.models import resolve_model
    from harness.models.hf import HFModel

    texts = [
        json.loads(x)["text"]
        for x in (ROOT / "suites/builtin/data/heldout_text.jsonl").read_text().splitlines()
    ]
    ours = HFModel(resolve_model("smollm2"))
    max_length, batch = 256, 8
    lm = HFLM(pretrained=ours.model, tokenizer=ours.tokenizer, batch_size=batch, max_length=max_length)
    reqs = [
        Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i)
        for i, t in enumerate(texts)
    ]
    list(ours.rolling_loglikelihood(texts[:2], max_length, max_length, batch))  # warm-up

    def run_ours() -> list[float]:
        got = {i: r for b in ours.rolling_loglikelihood(texts, max_length, max_length, batch) for i, r in b}
        return [-got[i].nll for i in range(len(texts))]

    t_ours, a = timed(run_ours, 3)
    t_lm, b = timed(lambda: lm.loglikelihood_rolling(reqs, disable_tqdm=True), 3)
    rel = max(abs(x - y) / abs(y) for x, y in zip(a, b))
    report(
        f"rolling log-likelihood, {len(texts)} texts, window {max_length}, batch {batch}",
        [("lm-eval loglikelihood_rolling", t_lm), ("tunegate rolling_loglikelihood", t_ours)],
        "lm-eval loglikelihood_rolling",
        "values equal within 1e-4 relative",
    )
    print(f"  max relative difference of summed log-likelihoods: {rel:.2e}")
    n_long = sum(len(ours.tokenizer(t)["input_ids"]) > max_length for t in texts)
    print(f"  texts longer than the window: {n_long}")


if __name__ == "__main__":
    main()
