"""The rolling-window layout every local backend scores texts with (lm-eval's).

One function shared by the transformers and llama.cpp backends, so their perplexities are
computed over exactly the same (context, target) token windows and differ only in the model.
"""

from __future__ import annotations

from collections.abc import Iterator


def rolling_windows(
    tokens: list[int], prefix: int, max_len: int, context_len: int
) -> Iterator[tuple[list[int], list[int]]]:
    """(input ids, target ids) pairs; the targets score the last len(targets) input positions.

    The first window predicts the first token from `prefix` (BOS, or EOS when there is none);
    each later window predicts up to `max_len - context_len + 1` new tokens after the
    preceding tokens as context (lm-eval's `get_rolling_token_windows`).
    """
    if not tokens:
        return
    pred_len = max_len - context_len + 1
    first = min(max_len, len(tokens))
    yield [prefix] + tokens[: first - 1], tokens[:first]
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, pred_len)
        end = predicted + n
        yield tokens[max(0, end - max_len - 1) : end - 1], tokens[end - n : end]
        predicted += n
