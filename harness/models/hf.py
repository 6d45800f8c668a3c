"""Local Hugging Face backend: batched generation and rolling log-likelihood.

Lists in, lists out (lm-eval's contract), but results are yielded batch by batch so the
runner can store each batch as it lands. Requests are sorted longest first (memory errors
come early, ETAs are honest) and yielded with their original index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harness.config import GenerationParams
from harness.errors import UserError
from harness.models.resolve import ResolvedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generated:
    text: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    latency_s: float
    error: str | None = None


@dataclass(frozen=True)
class RollingLL:
    """Summed negative log-likelihood (nats) of every token of a text."""

    nll: float | None
    n_tokens: int
    latency_s: float
    error: str | None = None


class HFModel:
    """A causal LM loaded with transformers (+ peft adapter). Weights load on first use."""

    def __init__(self, resolved: ResolvedModel) -> None:
        from transformers import AutoTokenizer

        self.resolved = resolved
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.weights)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._model: Any = None
        self.calls = {"generate": 0, "forward": 0}
        """Model invocations (batches), so tests and benches can prove cache hits."""

    # -- loading --------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        opts = self.resolved.options
        kwargs: dict[str, Any] = {"dtype": getattr(torch, opts.get("dtype", "float32"))}
        if opts.get("load_in_4bit"):
            kwargs["quantization_config"] = _nf4_config(torch)
        model = AutoModelForCausalLM.from_pretrained(self.resolved.weights, **kwargs)
        if self.resolved.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(self.resolved.adapter))
        model.eval()
        return model

    # -- prompts --------------------------------------------------------------------------
    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The model's own chat template, ready for the assistant's turn."""
        if not self.tokenizer.chat_template:
            return "\n".join(m["content"] for m in messages) + "\n"
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    # -- generation -----------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[str], params: GenerationParams, batch_size: int
    ) -> Iterator[list[tuple[int, Generated]]]:
        """Greedy (or sampled) continuations of already-rendered prompts, a batch at a time."""
        import torch

        tok = self.tokenizer
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -len(ids[i]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            t0 = time.perf_counter()
            try:
                outs = self._generate_batch([ids[i] for i in batch], params, torch)
            except (RuntimeError, ValueError) as e:  # e.g. out of memory, bad length
                dt = (time.perf_counter() - t0) / len(batch)
                yield [(i, Generated(None, len(ids[i]), 0, dt, f"{type(e).__name__}: {e}")) for i in batch]
                continue
            dt = (time.perf_counter() - t0) / len(batch)
            yield [
                (i, Generated(_cut_at_stop(text, params.stop), len(ids[i]), n, dt))
                for i, (text, n) in zip(batch, outs)
            ]

    def _generate_batch(self, batch_ids: list[list[int]], params: GenerationParams, torch: Any):
        tok, model = self.tokenizer, self.model
        width = max(len(x) for x in batch_ids)
        pad = tok.pad_token_id
        # Left padding: every row's last prompt token sits at the same position.
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch_ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch_ids])
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": pad,
            "do_sample": params.temperature > 0,
        }
        if params.temperature > 0:
            gen_kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:  # silence generation_config sampling defaults under greedy decoding
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        self.calls["generate"] += 1
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=mask, **gen_kwargs)
        new = out[:, width:]
        results = []
        eos = {tok.eos_token_id, pad}
        for row in new.tolist():
            n = next((k for k, t in enumerate(row) if t in eos), len(row))
            results.append((tok.decode(row[:n], skip_special_tokens=True), n))
        return results

    # -- log-likelihood -------------------------------------------------------------------
    def rolling_loglikelihood(
        self, texts: Sequence[str], max_length: int, stride: int, batch_size: int
    ) -> Iterator[list[tuple[int, RollingLL]]]:
        """NLL of every token of each text, in strided windows of at most `max_length` tokens.

        Window layout follows lm-eval's `get_rolling_token_windows`: the first token is
        predicted from the BOS (or EOS) token; each later window predicts `stride` new tokens
        with the preceding `max_length - stride` tokens as context. stride == max_length gives
        exactly lm-eval's `loglikelihood_rolling`.
        """
        import torch

        tok = self.tokenizer
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        context_len = max_length - stride + 1
        encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        # Each window is (text index, input ids, number of trailing positions scored).
        windows: list[tuple[int, list[int], list[int]]] = []
        for i, ids in enumerate(encoded):
            for inp, tgt in rolling_windows(ids, prefix, max_length, context_len):
                windows.append((i, inp, tgt))
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w][1]))
        totals = {i: [0.0, 0, 0.0] for i in range(len(texts))}  # nll, tokens, seconds
        remaining = {i: 0 for i in range(len(texts))}
        for w in windows:
            remaining[w[0]] += 1
        for i, ids in enumerate(encoded):
            if not ids:
                remaining.pop(i)
                yield [(i, RollingLL(None, 0, 0.0, "empty text: no tokens to score"))]
        for start in range(0, len(order), batch_size):
            batch = [windows[w] for w in order[start : start + batch_size]]
            t0 = time.perf_counter()
            nlls = self._window_nll(batch, torch)
            dt = (time.perf_counter() - t0) / len(batch)
            finished = []
            for (i, _inp, tgt), nll in zip(batch, nlls):
                totals[i][0] += nll
                totals[i][1] += len(tgt)
                totals[i][2] += dt
                remaining[i] -= 1
                if remaining[i] == 0:
                    finished.append((i, RollingLL(totals[i][0], totals[i][1], totals[i][2])))
            if finished:
                yield finished

    def _window_nll(self, batch: list[tuple[int, list[int], list[int]]], torch: Any) -> list[float]:
        width = max(len(inp) for _, inp, _ in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([inp + [pad] * (width - len(inp)) for _, inp, _ in batch])
        mask = torch.tensor([[1] * len(inp) + [0] * (width - len(inp)) for _, inp, _ in batch])
        self.calls["forward"] += 1
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask).logits.float()
        out = []
        for row, (_, inp, tgt) in enumerate(batch):
            n = len(inp)
            lp = torch.log_softmax(logits[row, n - len(tgt) : n], dim=-1)
            picked = lp.gather(1, torch.tensor(tgt).unsqueeze(1)).squeeze(1)
            out.append(-float(picked.double().sum()))
        return out


def rolling_windows(
    tokens: list[int], prefix: int, max_len: int, context_len: int
) -> Iterator[tuple[list[int], list[int]]]:
    """(input ids, target ids) pairs; the targets score the last len(targets) input positions."""
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


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text


def _nf4_config(torch: Any) -> Any:
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise UserError("load_in_4bit needs bitsandbytes: pip install bitsandbytes") from None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
