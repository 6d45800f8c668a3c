"""How a run measured, and whether two runs measured the same way.

Every run stores a **measurement record** (`runs.measurement`, migration m006): per request type,
what decides the meaning of its numbers (the suite's data and prompt, generation parameters, each
metric's spec and implementation version, the judge, the log-likelihood scoring convention and
tokenizer, the perplexity window, lm-eval's version and few-shot) and what is *meant* to differ
(weights, adapter, quantization, backend, device, dtype, chat template). `check(a, b)` compares two
records field by field before any statistic: a difference that changes what a number means is a
`Mismatch`, refused by `harness.results.compare_runs` unless the user allowed that field by name;
what is meant to differ is a `Difference`, only shown.

Runs stored before records existed get a partial record rebuilt from their stored suite config and
metric specs (`legacy_record`); what it cannot know is listed as unchecked, never assumed equal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from harness.models.base import Backend
    from harness.suite import Suite

RECORD_VERSION = 1

LOGLIKELIHOOD_TYPES = frozenset({"loglikelihood", "rolling_loglikelihood"})
# Config keys recorded as fields of their own (or not changing a number): the rest of a suite's
# config is its "prompt" (templates, system prompt, fields read, chat settings).
_SEPARATE = frozenset(
    {
        "name",
        "description",
        "data",
        "generation",
        "metrics",
        "judge",
        "max_length",
        "stride",
        "num_fewshot",
        "batch_size",
        "limit",
        "bootstrap_iters",
    }
)
# Token-level metrics: their value depends on how text is cut into tokens. Word/byte-level ones
# (word_perplexity, byte_perplexity, bits_per_byte) are comparable across tokenizers.
TOKEN_METRICS = frozenset({"perplexity"})
_WINDOW_ARGS = frozenset({"args.max_length", "args.stride"})


def digest(value: Any) -> str:
    """A short, stable hash of a JSON-able value."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- building a record --------------------------------------------------------------------------


def build_record(backend: Backend, suite: Suite, seed: int | None) -> dict[str, Any]:
    """The record of a run of `suite` on `backend` (after the backend's preflight)."""
    from harness.suite import content_hash

    types = set(suite.request_types())
    config = suite.config.model_dump(mode="json")
    record = _suite_part(suite.kind, config, types)
    record["suite"]["content_hash"] = content_hash(suite)
    record["suite"]["data"] = _file_hash(suite)
    record["metrics"] = {m.name: {"spec": m.spec, "version": m.version} for m in suite.metrics}
    gen = record.get("generation")
    if gen is not None and gen.get("temperature", 0) > 0:
        gen["seed"] = seed  # sampled outputs depend on it; greedy ones do not
    record["chat"] = _chat(backend) if "generate" in types else None
    if types & LOGLIKELIHOOD_TYPES:
        scoring = backend.scoring() if hasattr(backend, "scoring") else {}
        record["loglikelihood"] = {
            "tokenizer": scoring.get("tokenizer"),
            "prefix_token": scoring.get("prefix_token"),
            "first_token_scored": scoring.get("first_token_scored"),
            "prefix_source": scoring.get("prefix_source"),
        }
    record["suite_facts"] = suite.measurement_facts()
    record["identity"] = _identity(backend)
    record["tunegate"] = _version("tunegate")
    return record


def legacy_record(
    suite_kind: str, suite_config: dict[str, Any], metric_specs: dict[str, Any]
) -> dict[str, Any]:
    """What can be rebuilt of a run stored before records existed (marked `legacy`)."""
    record = _suite_part(suite_kind, suite_config, None)
    record["metrics"] = {name: {"spec": spec, "version": None} for name, spec in metric_specs.items()}
    record["legacy"] = True
    return record


def _suite_part(kind: str, config: dict[str, Any], types: set[str] | None) -> dict[str, Any]:
    prompt = {k: v for k, v in config.items() if k not in _SEPARATE}
    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "request_types": sorted(types) if types is not None else None,
        "suite": {"name": config.get("name"), "kind": kind, "prompt": digest(prompt)},
        "generation": dict(config["generation"]) if isinstance(config.get("generation"), dict) else None,
    }
    if kind == "perplexity" or "max_length" in config and kind != "benchmark":
        record["window"] = {"max_length": config.get("max_length"), "stride": config.get("stride")}
    if kind == "benchmark":
        record["fewshot"] = config.get("num_fewshot")
    return record


def _file_hash(suite: Suite) -> str | None:
    try:
        return hashlib.sha256(suite.data_path().read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _chat(backend: Backend) -> dict[str, Any]:
    """The chat template as a fingerprint of what it renders: a canary conversation through the
    backend's own `prepare`. A chat endpoint keeps the messages: rendered by the server."""
    from harness.suite import Request

    if backend.capabilities.replay:  # outputs made elsewhere: how they were prompted is not known
        return {"rendered": "elsewhere", "template": None}
    canary = (
        {"role": "system", "content": "\x00system"},
        {"role": "user", "content": "\x00user"},
    )
    try:
        prepared = backend.prepare(Request("generate", None, {}, messages=canary))
    except Exception as e:  # a replaying backend renders nothing; record why instead of failing a run
        return {"rendered": "unknown", "template": None, "why": f"{type(e).__name__}"}
    if prepared.messages is not None:
        return {"rendered": "server", "template": None}
    return {"rendered": "local", "template": digest(prepared.prompt)}


def _identity(backend: Backend) -> dict[str, Any]:
    r = backend.resolved
    facts = backend.describe()
    return {
        "weights": r.fingerprint[:16],
        "adapter": str(r.adapter) if r.adapter else None,
        "backend": facts.get("backend", r.spec.kind),
        "quantization": facts.get("quantization") or ("nf4" if facts.get("load_in_4bit") else None),
        "device": facts.get("device"),
        "dtype": facts.get("dtype"),
    }


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


# -- comparing two records ----------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """Two runs differ in something that changes what a number means."""

    field: str
    """The name `--allow-mismatch` takes: data, prompt, generation, metric, judge, scoring,
    tokenizer, window, fewshot, lm_eval."""
    what: str
    """The exact sub-field, e.g. generation.max_new_tokens or metric macro_f1 version."""
    a: Any
    b: Any
    metrics: frozenset[str] | None = None
    """The metrics it concerns (None: every metric of the pair)."""

    def concerns(self, metric: str) -> bool:
        return self.metrics is None or metric in self.metrics

    def text(self) -> str:
        return f"{self.what}: {_show(self.a)} vs {_show(self.b)}"


@dataclass(frozen=True)
class Comparability:
    """The outcome of checking two runs' records."""

    mismatches: list[Mismatch] = field(default_factory=list)
    differs: list[tuple[str, Any, Any]] = field(default_factory=list)
    """What is meant to differ and does (weights, backend, …): shown, never refused."""
    unchecked: list[str] = field(default_factory=list)
    """What could not be checked (a run stored before records existed)."""

    def for_metric(self, metric: str) -> list[Mismatch]:
        return [m for m in self.mismatches if m.concerns(metric)]


MismatchField = Literal[
    "data", "prompt", "generation", "metric", "judge", "scoring", "tokenizer", "window", "fewshot", "lm_eval"
]
"""The names `--allow-mismatch` and a policy's `allow_mismatch:` take."""
FIELDS: tuple[str, ...] = get_args(MismatchField)
HOW_TO_FIX = {
    "data": "run both on the same suite data",
    "prompt": "run both with the same suite file",
    "generation": "run both with the same generation parameters",
    "metric": "score both runs with the same tunegate (run the older one again: --resume does not re-score)",
    "judge": "judge both runs with the same judge model, rubric and sampling parameters",
    "scoring": "score both with the prefix token (e.g. ?prefix= or ?tokenizer=DIR on the endpoint)",
    "tokenizer": "compare a tokenizer-independent metric (bits_per_byte, word_perplexity) instead",
    "window": "run both with the same max_length and stride",
    "fewshot": "run both with the same num_fewshot",
    "lm_eval": "run both with the same lm-eval version and task config",
}
_IDENTITY = ("weights", "adapter", "quantization", "backend", "device", "dtype")


def check(a: dict[str, Any], b: dict[str, Any], metrics: Iterable[str]) -> Comparability:
    """Compare records `a` (baseline) and `b` (candidate) for the `metrics` both runs have."""
    names = set(metrics)
    out = Comparability()
    legacy = bool(a.get("legacy") or b.get("legacy"))
    for fn in _CHECKS:
        fn(a, b, names, out)
    if legacy:
        out.unchecked.extend(
            [
                "metric versions",
                "log-likelihood scoring convention and tokenizer",
                "chat template",
                "lm-eval version",
            ]
        )
    else:
        for key in _IDENTITY:
            va, vb = (a.get("identity") or {}).get(key), (b.get("identity") or {}).get(key)
            if va != vb:
                out.differs.append((key, va, vb))
        ca, cb = a.get("chat") or {}, b.get("chat") or {}
        if ca and cb and (ca.get("rendered"), ca.get("template")) != (cb.get("rendered"), cb.get("template")):
            out.differs.append(("chat template", _template(ca), _template(cb)))
    return out


def _template(chat: dict[str, Any]) -> str:
    if chat.get("rendered") == "local":
        return f"local {chat.get('template')}"
    return str(chat.get("rendered"))


Check = Callable[[dict[str, Any], dict[str, Any], set[str], Comparability], None]


def _suite(a: dict[str, Any], b: dict[str, Any], names: set[str], out: Comparability) -> None:
    sa, sb = a.get("suite") or {}, b.get("suite") or {}
    if sa.get("prompt") != sb.get("prompt"):
        out.mismatches.append(
            Mismatch("prompt", "suite prompt and options", sa.get("prompt"), sb.get("prompt"))
        )
    if sa.get("data") and sb.get("data") and sa["data"] != sb["data"]:
        out.mismatches.append(Mismatch("data", "suite data file", sa["data"], sb["data"]))


def _generation(a: dict[str, Any], b: dict[str, Any], names: set[str], out: Comparability) -> None:
    ga, gb = a.get("generation") or {}, b.get("generation") or {}
    for key in sorted(set(ga) | set(gb)):
        if ga.get(key) != gb.get(key):
            out.mismatches.append(Mismatch("generation", f"generation.{key}", ga.get(key), gb.get(key)))


def _metrics(a: dict[str, Any], b: dict[str, Any], names: set[str], out: Comparability) -> None:
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    for name in sorted(names & set(ma) & set(mb)):
        xa, xb = ma[name], mb[name]
        spec_a, spec_b = xa.get("spec") or {}, xb.get("spec") or {}
        judge = str(spec_a.get("name", "")).startswith("judge:") or str(spec_b.get("name", "")).startswith(
            "judge:"
        )
        if spec_a != spec_b:
            what = f"judge of {name}" if judge else f"metric {name} arguments"
            # an argument only one side has was added by a newer tunegate with a default that keeps
            # the old numbers (a new default that changes them bumps the metric's version instead)
            for key, va, vb in _diff(spec_a, spec_b, both=True):
                if key in _WINDOW_ARGS:  # the perplexity window: its own field (_window)
                    continue
                out.mismatches.append(
                    Mismatch("judge" if judge else "metric", f"{what}: {key}", va, vb, frozenset({name}))
                )
        va, vb = xa.get("version"), xb.get("version")
        if va is not None and vb is not None and va != vb:
            out.mismatches.append(Mismatch("metric", f"metric {name} version", va, vb, frozenset({name})))


def _loglikelihood(a: dict[str, Any], b: dict[str, Any], names: set[str], out: Comparability) -> None:
    la, lb = a.get("loglikelihood"), b.get("loglikelihood")
    if la is None or lb is None:
        return
    ka = (la.get("first_token_scored"), la.get("prefix_token"))
    kb = (lb.get("first_token_scored"), lb.get("prefix_token"))
    if ka != kb:
        out.mismatches.append(Mismatch("scoring", "tokens scored", _scoring(la), _scoring(lb)))
    ta, tb = la.get("tokenizer"), lb.get("tokenizer")
    token_metrics = frozenset(n for n in names if n in TOKEN_METRICS)
    if token_metrics and ta != tb:
        out.mismatches.append(Mismatch("tokenizer", "tokenizer", ta, tb, token_metrics))


def _scoring(ll: dict[str, Any]) -> str:
    if ll.get("first_token_scored") is None:
        return "unknown"
    if not ll.get("first_token_scored"):
        return "first token unscored"
    return f"every token, from prefix {ll.get('prefix_token')!r}"


def _window(a: dict[str, Any], b: dict[str, Any], names: set[str], out: Comparability) -> None:
    wa, wb = a.get("window"), b.get("window")
    if wa is not None and wb is not None and wa != wb:
        for key, va, vb in _diff(wa, wb):
            out.mismatches.append(Mismatch("window", f"window {key}", va, vb))


def _benchmark(a: dict[str, Any], b: dict[str, Any], names: set[str], out: Comparability) -> None:
    fa, fb = a.get("suite_facts") or {}, b.get("suite_facts") or {}
    legacy = a.get("legacy") or b.get("legacy")  # then only the suite's own num_fewshot is known
    shots_a = a.get("fewshot") if legacy else fa.get("fewshot", a.get("fewshot"))
    shots_b = b.get("fewshot") if legacy else fb.get("fewshot", b.get("fewshot"))
    if isinstance(shots_a, dict) and isinstance(shots_b, dict):
        for key, va, vb in _diff(shots_a, shots_b):
            out.mismatches.append(Mismatch("fewshot", f"num_fewshot of {key}", va, vb))
    elif shots_a != shots_b:
        out.mismatches.append(Mismatch("fewshot", "num_fewshot", shots_a, shots_b))
    for key in ("lm_eval", "tasks"):
        if key in fa and key in fb and fa[key] != fb[key]:
            what = "lm-eval version" if key == "lm_eval" else "lm-eval task configs"
            out.mismatches.append(Mismatch("lm_eval", what, fa[key], fb[key]))


_CHECKS: list[Check] = [_suite, _generation, _metrics, _loglikelihood, _window, _benchmark]


def _diff(
    a: dict[str, Any], b: dict[str, Any], prefix: str = "", both: bool = False
) -> list[tuple[str, Any, Any]]:
    """The leaves that differ between two nested dicts, as dotted keys (`both`: only keys that
    both sides have)."""
    out = []
    keys = set(a) & set(b) if both else set(a) | set(b)
    for key in sorted(keys, key=str):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_diff(va, vb, f"{prefix}{key}.", both))
        elif va != vb:
            out.append((f"{prefix}{key}", va, vb))
    return out


def _show(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 80 else text[:77] + "..."


def refusal(run_a: str, run_b: str, mismatches: list[Mismatch]) -> str:
    """The one message for a refused pair: both runs, each field with both values, how to fix."""
    fields = sorted({m.field for m in mismatches}, key=FIELDS.index)
    lines = "; ".join(m.text() for m in mismatches[:6]) + (
        f"; and {len(mismatches) - 6} more" if len(mismatches) > 6 else ""
    )
    fixes = "; ".join(HOW_TO_FIX[f] for f in fields)
    allow = " ".join(f"--allow-mismatch {f}" for f in fields)
    return (
        f"runs {run_a} and {run_b} were measured differently, so their numbers do not compare: {lines}. "
        f"To make them comparable: {fixes}. To compare anyway, on purpose: {allow} "
        f"(policy key allow_mismatch: [{', '.join(fields)}]); every output then shows the mismatch"
    )


def parse_allow(values: Iterable[str]) -> set[str]:
    """`--allow-mismatch` values, checked against the field names."""
    from harness.errors import UserError

    out = set()
    for v in values:
        for name in str(v).split(","):
            name = name.strip()
            if not name:
                continue
            if name not in FIELDS:
                raise UserError(
                    f"unknown mismatch field '{name}'; known: {', '.join(FIELDS)}", field="allow_mismatch"
                )
            out.add(name)
    return out


def comparability_lines(comp: dict[str, Any] | None) -> list[str]:
    """What differs between the two runs (meant to), mismatches allowed on purpose, and what
    could not be checked: one line each, for compare, the gate and the report."""
    if not comp:
        return []
    lines = []
    if comp["differs"]:
        parts = [f"{d['field']} {_val(d['baseline'])} → {_val(d['candidate'])}" for d in comp["differs"]]
        lines.append("what differs (meant to): " + "; ".join(parts))
    for m in comp["allowed_mismatches"]:
        lines.append(
            f"MEASURED DIFFERENTLY (allowed: {m['field']}): {m['what']}: "
            f"{_val(m['baseline'])} vs {_val(m['candidate'])}"
        )
    if comp["unchecked"]:
        lines.append("not checked (a run stored before measurement records): " + ", ".join(comp["unchecked"]))
    return lines


def _val(v: Any) -> str:
    return "–" if v is None else str(v)


def mismatch_record(m: Any) -> dict[str, Any]:
    """An allowed measurement mismatch (harness.measurement.Mismatch) as JSON."""
    return {"field": m.field, "what": m.what, "baseline": m.a, "candidate": m.b}


def comparability_record(comps: Iterable[Any]) -> dict[str, Any]:
    """How the pair was measured: what is meant to differ and does, the mismatches allowed on
    purpose, what could not be checked (a run stored before measurement records)."""
    pair = next((c.pair for c in comps if c.pair is not None), None)
    if pair is None:
        return {"differs": [], "allowed_mismatches": [], "unchecked": []}
    return {
        "differs": [{"field": f, "baseline": a, "candidate": b} for f, a, b in pair.differs],
        "allowed_mismatches": [mismatch_record(m) for m in pair.mismatches],
        "unchecked": list(pair.unchecked),
    }
