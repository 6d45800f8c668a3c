"""Is an endpoint's echo log-probability *right*? Checked before the first log-likelihood request.

Presence is not enough: upstream llama-server rejects `echo`, Ollama scores generated tokens
only, and llama-cpp-python 0.3.x's `create_completion(echo=True)` (so its server) scores token
*i* with the distribution that follows token *i*, not the one before it. Two checks on the live
endpoint, three to six small requests in all:

1. Copying: a sentence repeated twice must score far better the second time, because any
   language model copies; a shifted score (P(next token = this token)) does not improve.
2. Agreement: at a few positions, the top token the server reports must be what it generates
   greedily from the same prefix.

`probe_prefix` checks a prefix token found without the user (`prefix.py`): the server must read
its text as that one token and score the text's first token from it (one more request).
"""

from __future__ import annotations

from typing import Any

SENTENCE = "Seven quiet violet lanterns drifted slowly across the frozen northern harbour tonight."
MIN_GAIN = 1.0
"""Nats per token the second copy must gain over the first (a real model gains 3-5)."""


async def probe_echo_logprobs(backend: Any) -> str | None:
    """None when the endpoint passes; otherwise one sentence saying what was found."""
    text = f"{SENTENCE} {SENTENCE}"
    out = await backend.echo(text)
    if out.error is not None:
        if out.status is not None and 400 <= out.status < 500:
            return f"the server rejects echo + logprobs on /completions ({out.error})"
        return f"the echo request failed ({out.error})"
    toks = out.value
    scored = [t for t in toks if t.logprob is not None]
    if len(scored) < 4:
        return (
            "the server ignores `echo`: it returned no log-probabilities for the prompt's tokens "
            "(only for generated ones, or none)"
        )
    half = len(SENTENCE) + 1
    first = [t.logprob for t in scored if 0 < t.offset < len(SENTENCE)]
    second = [t.logprob for t in scored if t.offset > half]
    if not first or not second:
        return "the server's echo tokens have no usable text offsets"
    m1, m2 = sum(first) / len(first), sum(second) / len(second)
    if m2 - m1 < MIN_GAIN:
        return (
            f"a sentence repeated twice scores {m1:.2f} nats/token the first time and {m2:.2f} the "
            f"second (a model that copies gains over {MIN_GAIN:g}); the log-probabilities are "
            "attached to the wrong positions (llama-cpp-python's echo is shifted by one token) "
            "or are not the model's"
        )
    # positions in the second copy, away from its edges, whose top token is reported
    candidates = [t for t in toks if t.offset > half + 4 and t.top is not None and t.text.strip()]
    picks = candidates[1 : -1 : max(1, len(candidates) // 3)][:3]
    if not picks:
        return None  # no top lists to compare; the copying check passed
    agree = 0
    for t in picks:
        g = await backend.greedy_next(text[: t.offset])
        if g.error is None and g.value is not None and _same_token(g.value, t.top):
            agree += 1
    if agree * 2 < len(picks):
        return (
            f"the top token it reports at a position agrees with its own greedy generation from "
            f"the same prefix at {agree} of {len(picks)} positions, so each log-probability is "
            "attached to the wrong token (llama-cpp-python's echo is shifted by one position)"
        )
    return None


def _same_token(generated: str, top: str) -> bool:
    a, b = generated.strip(), top.strip()
    return bool(a) and bool(b) and (a.startswith(b) or b.startswith(a))


PREFIX_PROBE = "Hello world"


async def probe_prefix(backend: Any, prefix: str) -> str | None:
    """None when the server reads `prefix` as exactly one token before the text and scores the
    text's first token from it; otherwise the end of a sentence saying what it did instead (a
    server that adds its own BOS, or splits the token's text into pieces)."""
    out = await backend.echo(prefix + PREFIX_PROBE)
    if out.error is not None:
        return f"could not be checked: the echo request failed ({out.error})"
    toks = out.value
    echoed = "".join(t.text for t in toks)
    if echoed != prefix + PREFIX_PROBE:  # e.g. a server that adds the BOS itself: two of them
        return f"does not come back as sent (the server echoed {echoed[:80]!r})"
    head = [t for t in toks if t.offset < len(prefix)]
    if len(head) != 1 or head[0].text != prefix:
        got = [t.text for t in head][:4]
        return f"is not read as one token by the server (it echoed {got!r} before the text)"
    first = next((t for t in toks if t.offset >= len(prefix)), None)
    if first is None or first.offset != len(prefix) or first.logprob is None:
        return "does not give the text's first token a log-probability on this server"
    return None
