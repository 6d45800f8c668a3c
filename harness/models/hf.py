"""Local Hugging Face backend: batched generation and rolling log-likelihood.

Lists in, lists out (lm-eval's contract), but results are yielded batch by batch so the
runner can store each batch as it lands. Requests are sorted longest first (memory errors
come early, ETAs are honest) and yielded with their original index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from harness.config import GenerationParams
from harness.errors import UserError
from harness.models.base import (
    Capabilities,
    Generated,
    LogLikelihood,
    RollingLL,
    cut_at_stop,
    prepare_local,
    render_messages_plain,
)
from harness.models.batching import Batcher, BatchSize
from harness.models.resolve import ResolvedModel
from harness.models.windows import rolling_windows
from harness.suite import Request

__all__ = ["Generated", "HFModel", "RollingLL", "rolling_windows"]

log = logging.getLogger(__name__)


class HFModel:
    """A causal LM loaded with transformers (+ peft adapter). Weights load on first use.

    Placement (device, dtype, device_map) was chosen when the spec was resolved
    (harness.models.device); `batch_size="auto"` searches the largest batch that fits
    (harness.models.batching)."""

    capabilities = Capabilities(
        requests=frozenset({"generate", "loglikelihood", "rolling_loglikelihood"}),
        tokenizer=True,
        local_weights=True,
        auto_batch=True,
    )

    def __init__(self, resolved: ResolvedModel) -> None:
        from transformers import AutoTokenizer

        self.resolved = resolved
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.weights)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._model: Any = None
        self.calls = {"generate": 0, "forward": 0}
        """Model invocations (batches), so tests and benches can prove cache hits."""
        self._batchers: dict[str, Batcher] = {}

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
        dtype = getattr(torch, opts.get("dtype", "float32"))
        kwargs: dict[str, Any] = {"dtype": dtype}
        placed = False  # 4-bit and device_map load straight onto their devices
        if opts.get("load_in_4bit"):
            # On CPU the 4-bit matmuls stay in float32 whatever the dtype (as before device choice)
            compute = dtype if self.device != "cpu" else torch.float32
            kwargs["quantization_config"] = _nf4_config(torch, compute)
            if self.device != "cpu":
                kwargs["device_map"] = opts.get("device_map") or {"": self.device}
            placed = True
        elif opts.get("device_map"):
            kwargs["device_map"] = opts["device_map"]
            placed = True
        model = AutoModelForCausalLM.from_pretrained(self.resolved.weights, **kwargs)
        if self.resolved.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(self.resolved.adapter))
        if not placed and self.device != "cpu":
            model = model.to(self.device)
        model.eval()
        return model

    @property
    def device(self) -> str:
        return self.resolved.device

    def input_device(self) -> Any:
        """Where inputs go: the model's first parameter's device (device_map spreads layers)."""
        if self._model is None or self.device == "cpu":
            return self.device
        return next(self._model.parameters()).device

    def _batcher(self, loop: str, batch_size: BatchSize) -> Batcher:
        """A fixed size is used as given; `auto` keeps what fitted last time in this loop."""
        if batch_size != "auto":
            return Batcher(batch_size, self.device)
        return self._batchers.setdefault(loop, Batcher("auto", self.device))

    def preflight(self, needed: set[str], what: str) -> None:
        """Nothing to verify: the capabilities are static."""

    def scoring(self) -> dict[str, Any]:
        """How texts are scored (the keys of `OpenAIBackend.scoring`): every token, the first
        one predicted from the BOS (else EOS) token; the tokenizer by its vocabulary hash."""
        from harness.models.prefix import Scoring, hf_tokenizer_facts

        vocab, prefix = hf_tokenizer_facts(self.tokenizer)
        return Scoring(vocab, prefix, True, "tokenizer").record()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "hf",
            "device": self.device,
            "dtype": self.resolved.options.get("dtype", "float32"),
            "load_in_4bit": bool(self.resolved.options.get("load_in_4bit")),
            "device_map": self.resolved.options.get("device_map"),
        }

    # -- prompts --------------------------------------------------------------------------
    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The model's own chat template, ready for the assistant's turn."""
        if not self.tokenizer.chat_template:
            return render_messages_plain(messages)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prepare(self, request: Request) -> Request:
        return prepare_local(request, self.render_chat)

    # -- generation -----------------------------------------------------------------------
    def generate(
        self,
        requests: Sequence[Request | str],
        params: GenerationParams,
        batch_size: BatchSize,
        seed: int | None = None,
    ) -> Iterator[list[tuple[int, Generated]]]:
        """Greedy (or sampled) continuations of prepared requests (or prompt strings), a batch
        at a time. Sampling draws from torch's generator, which the runner seeds per run."""
        import torch

        tok = self.tokenizer
        prompts = [r if isinstance(r, str) else self.prepare(r).prompt or "" for r in requests]
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -len(ids[i]))
        batches = self._batcher("generate", batch_size).run(
            order,
            lambda batch: self._generate_batch([ids[i] for i in batch], params, torch),
            keep=(RuntimeError, ValueError),  # e.g. out of memory (at batch size 1), bad length
        )
        for batch, outs, seconds in batches:
            dt = seconds / len(batch)
            if isinstance(outs, BaseException):
                e = outs
                yield [(i, Generated(None, len(ids[i]), 0, dt, f"{type(e).__name__}: {e}")) for i in batch]
                continue
            yield [
                (i, Generated(cut_at_stop(text, params.stop), len(ids[i]), n, dt))
                for i, (text, n) in zip(batch, outs)
            ]

    def _generate_batch(
        self,
        batch_ids: list[list[int]],
        params: GenerationParams,
        torch: Any,
        model: Any = None,
        **extra: Any,
    ) -> list[tuple[str, int]]:
        """(text, new tokens) per row; `model` and `extra` generate kwargs: a shared peft model
        with per-row `adapter_names` (harness.models.adapters.SharedBase.generate_mixed)."""
        tok, model = self.tokenizer, model if model is not None else self.model
        width = max(len(x) for x in batch_ids)
        pad = tok.pad_token_id
        # Left padding: every row's last prompt token sits at the same position.
        dev = self.input_device()
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch_ids], device=dev)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch_ids], device=dev)
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
            out = model.generate(input_ids=input_ids, attention_mask=mask, **gen_kwargs, **extra)
        new = out[:, width:]
        results = []
        eos = {tok.eos_token_id, pad}
        for row in new.tolist():
            n = next((k for k, t in enumerate(row) if t in eos), len(row))
            results.append((tok.decode(row[:n], skip_special_tokens=True), n))
        return results

    # -- log-likelihood -------------------------------------------------------------------
    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], batch_size: BatchSize
    ) -> Iterator[list[tuple[int, LogLikelihood]]]:
        """log P(continuation | context) and is-greedy, as lm-eval's HFLM computes them: the
        whole string is encoded, the context's tokens are those of the context alone (a
        trailing space moves to the continuation), and the last `max_length` tokens are kept."""
        import torch

        tok = self.tokenizer
        limit = getattr(self.model.config, "max_position_embeddings", 2048)
        pairs = []
        for ctx, cont in requests:
            n_space = len(ctx) - len(ctx.rstrip())
            if n_space:
                ctx, cont = ctx[:-n_space], ctx[-n_space:] + cont
            whole = tok(ctx + cont, add_special_tokens=False)["input_ids"]
            n_ctx = len(tok(ctx, add_special_tokens=False)["input_ids"])
            ctx_ids, cont_ids = whole[:n_ctx], whole[n_ctx:]
            if not ctx_ids:  # lm-eval: an empty context is predicted from the EOS/BOS token
                ctx_ids = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
            pairs.append(((ctx_ids + cont_ids)[-(limit + 1) :][:-1], cont_ids))
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]))

        def forward(idx: list[int]) -> tuple[list[tuple[int, list[int], list[int]]], Any]:
            batch = [(i, inp, tgt) for i in idx for inp, tgt in [pairs[i]]]
            return batch, self._window_logits(batch, torch)

        for _idx, (batch, logits), seconds in self._batcher("loglikelihood", batch_size).run(order, forward):
            dt = seconds / len(batch)
            out = []
            for row, (i, inp, tgt) in enumerate(batch):
                n = len(inp)
                if not tgt:
                    out.append((i, LogLikelihood(0.0, True, 0, dt)))
                    continue
                lp = torch.log_softmax(logits[row, n - len(tgt) : n].float().cpu(), dim=-1)
                picked = lp.gather(1, torch.tensor(tgt).unsqueeze(1)).squeeze(1)
                greedy = bool((lp.argmax(-1) == torch.tensor(tgt)).all())
                out.append((i, LogLikelihood(float(picked.double().sum()), greedy, len(tgt), dt)))
            yield out

    def rolling_loglikelihood(
        self, texts: Sequence[str], max_length: int, stride: int, batch_size: BatchSize
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
        batches = self._batcher("rolling", batch_size).run(
            order, lambda ws: self._window_nll([windows[w] for w in ws], torch)
        )
        for ws, nlls, seconds in batches:
            batch = [windows[w] for w in ws]
            dt = seconds / len(batch)
            finished = []
            for (i, _inp, tgt), nll in zip(batch, nlls):
                totals[i][0] += nll
                totals[i][1] += len(tgt)
                totals[i][2] += dt
                remaining[i] -= 1
                if remaining[i] == 0:
                    finished.append((i, RollingLL(totals[i][0], int(totals[i][1]), totals[i][2])))
            if finished:
                yield finished

    def _window_nll(self, batch: list[tuple[int, list[int], list[int]]], torch: Any) -> list[float]:
        logits = self._window_logits(batch, torch)
        out = []
        for row, (_, inp, tgt) in enumerate(batch):
            n = len(inp)
            lp = torch.log_softmax(logits[row, n - len(tgt) : n].float().cpu(), dim=-1)
            picked = lp.gather(1, torch.tensor(tgt).unsqueeze(1)).squeeze(1)
            out.append(-float(picked.double().sum()))
        return out

    def _window_logits(self, batch: list[tuple[int, list[int], list[int]]], torch: Any) -> Any:
        """Right-padded forward pass. Logits stay where the model is (callers move only the
        scored positions to the CPU in float32: the whole batch's logits can be gigabytes)."""
        width = max(len(inp) for _, inp, _ in batch)
        pad = self.tokenizer.pad_token_id
        model = self.model
        dev = self.input_device()
        input_ids = torch.tensor([inp + [pad] * (width - len(inp)) for _, inp, _ in batch], device=dev)
        mask = torch.tensor([[1] * len(inp) + [0] * (width - len(inp)) for _, inp, _ in batch], device=dev)
        self.calls["forward"] += 1
        with torch.inference_mode():
            return model(input_ids=input_ids, attention_mask=mask).logits


def _nf4_config(torch: Any, compute_dtype: Any) -> Any:
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise UserError("load_in_4bit needs bitsandbytes: pip install bitsandbytes") from None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
