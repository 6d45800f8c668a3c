"""Requests out to batch engines that are not tunegate, their outputs back in as cache entries.

`tunegate requests export` writes every generation request of a set of suites exactly as the
runner would send it to a model — the rendered prompt (local models: the model's own chat
template) or the chat messages (endpoints), the generation parameters, and the cache key the
runner looks up (harness.runner.plan.cache_key). An engine elsewhere (a Slurm array of vLLM
offline jobs, Ray Data LLM: examples/scale-out/) answers them; `tunegate outputs import` stores
the answers as generations under those keys, so `tunegate run` scores them as cache hits with
no model call.

Every key is checked on import by computing it again from its request and the `--model`'s
fingerprint: a key of another model (or of an edited request) is refused, as is a key no request
has. Nothing is written unless the whole file is good; a generation already stored is kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.models.base import cut_at_stop
from harness.runner.plan import Item, cache_key, plan_items
from harness.secrets import scrub
from harness.store import GenerationRow, Store
from harness.suite import Request, SuiteKind, suite_id

FORMATS = (".parquet", ".jsonl")
REQUEST_COLUMNS = (
    "cache_key",
    "model_id",
    "model_spec",
    "suite",
    "example_id",
    "request_type",
    "prompt",
    "messages",
    "params",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
)
"""What `requests export` writes. `prompt` (a text to complete) or `messages` (JSON list of
{role, content}: a chat request) is set, never both; `params` is the JSON the cache key hashes;
max_tokens / temperature / top_p / stop (JSON list) are the same values, spelled for engines."""
OUTPUT_COLUMNS = ("cache_key", "output")
"""What `outputs import` needs; optional: error, prompt_tokens, output_tokens, latency_s, and
the request columns above when the outputs file carries them (else give --requests)."""
_REQUEST_NEEDS = ("cache_key", "request_type", "params", "seed")


# -- export ---------------------------------------------------------------------------------
def request_rows(
    backend: Any, suites: Sequence[SuiteKind], *, seed: int, limit: int | None = None
) -> list[dict[str, Any]]:
    """One row per distinct generation request of `suites` on `backend` (REQUEST_COLUMNS). A
    judge suite's generations are exported too (its judge calls still run in tunegate)."""
    resolved = backend.resolved
    if backend.capabilities.replay:
        raise UserError(f"{resolved.spec.raw} replays outputs made elsewhere: there is nothing to export")
    rows: dict[str, dict[str, Any]] = {}
    for suite in suites:
        if not callable(getattr(suite, "request", None)):  # lm-eval benchmarks: their own loop
            raise UserError(
                f"{suite.kind} suite '{suite.config.name}' sends its requests from its own loop "
                "(lm-eval), not through tunegate's cache: its requests cannot be exported",
                path=suite.path,
            )
        examples = suite.examples[:limit] if limit else suite.examples
        items = plan_items(suite, examples, set(), resolved.fingerprint, backend.prepare, seed)
        for it in items:
            if it.request.type != "generate":
                raise UserError(
                    f"suite '{suite.config.name}' asks for {it.request.type.replace('_', '-')} "
                    "requests; only generations can be exported and imported (run it with tunegate)",
                    path=suite.path,
                )
            rows.setdefault(it.cache_key, _request_row(it, resolved, suite, seed))
    return list(rows.values())


def _request_row(it: Item, resolved: Any, suite: SuiteKind, seed: int) -> dict[str, Any]:
    req, params = it.request, it.request.params
    return {
        "cache_key": it.cache_key,
        "model_id": resolved.model_id,
        "model_spec": scrub(resolved.spec.raw),
        "suite": suite_id(suite),
        "example_id": it.example.id,
        "request_type": req.type,
        "prompt": None if req.messages is not None else req.prompt,
        "messages": None if req.messages is None else json.dumps(list(req.messages), ensure_ascii=False),
        "params": json.dumps(params, sort_keys=True, ensure_ascii=False),
        "max_tokens": params.get("max_new_tokens"),
        "temperature": params.get("temperature", 0.0),
        "top_p": params.get("top_p", 1.0),
        "stop": json.dumps(list(params.get("stop") or []), ensure_ascii=False),
        "seed": seed,
    }


def write_rows(rows: list[dict[str, Any]], path: Path, columns: Sequence[str] = REQUEST_COLUMNS) -> None:
    """`rows` as a .parquet (DuckDB, in memory: no store is opened) or .jsonl file."""
    fmt = check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({c: r.get(c) for c in columns}, ensure_ascii=False) + "\n")
        return
    import pandas as pd

    from harness.store.parquet import write_parquet

    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))
    write_parquet(frame, path, columns, _SQL_TYPES)


_SQL_TYPES = {
    "max_tokens": "BIGINT",
    "temperature": "DOUBLE",
    "top_p": "DOUBLE",
    "seed": "BIGINT",
    "prompt_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "latency_s": "DOUBLE",
}


# -- import ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportReport:
    stored: int
    """Generations written (outputs and errors)."""
    errors: int
    """Of those, rows that carry an error (never cache hits: `run` generates them again)."""
    kept: int
    """Keys already stored as successful generations, left as they were."""


def read_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of a .parquet or .jsonl file; a row's `_line` is where it came from."""
    fmt = check_format(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist", path=path)
    if fmt == ".jsonl":
        cols: dict[str, None] = {}
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"not JSON ({e.msg})", path=path, line=n) from None
            if not isinstance(row, dict):
                raise UserError("each line must be a JSON object", path=path, line=n)
            cols.update(dict.fromkeys(row))
            rows.append({**row, "_line": n})
        return list(cols), rows
    import duckdb

    from harness.store.parquet import read_parquet

    try:
        names, data = read_parquet(path)
    except duckdb.Error as e:
        raise UserError(f"cannot read it as Parquet: {str(e).splitlines()[0]}", path=path) from None
    return names, [{**dict(zip(names, r)), "_line": k + 1} for k, r in enumerate(data)]


def import_outputs(
    store: Store, resolved: Any, outputs: Path | Sequence[Path], requests: Path | None = None
) -> ImportReport:
    """Store `outputs` (cache_key + output, …; one file or several, e.g. one per shard) as
    generations of `resolved`'s model; every key must come from a request (each outputs file's
    own request columns, or `requests`: the exported file) whose key, computed again for this
    model, is the same. Every file is checked before anything is written."""
    files = [outputs] if isinstance(outputs, Path) else list(outputs)
    known = _verified_requests(*read_rows(requests), requests, resolved) if requests is not None else None
    seen: dict[str, tuple[Path, int]] = {}
    generations = []
    for path in files:
        cols, rows = read_rows(path)
        missing = [c for c in OUTPUT_COLUMNS if c not in cols]
        if missing:
            raise UserError(
                f"missing column(s) {', '.join(missing)} (it has: {', '.join(cols) or 'none'}); an "
                "outputs file needs cache_key and output (optional: error, prompt_tokens, output_tokens)",
                path=path,
            )
        own = known
        if own is None:
            if not all(c in cols for c in _REQUEST_NEEDS):
                raise UserError(
                    "the outputs file does not carry the requests (columns request_type, params, seed, "
                    "prompt or messages): give the exported file with --requests",
                    path=path,
                )
            own = _verified_requests(cols, rows, path, resolved)
        for row in rows:
            key, line = row.get("cache_key"), row["_line"]
            if not isinstance(key, str) or not key:
                raise UserError("cache_key is empty", path=path, line=line, field="cache_key")
            if key in seen:
                first = seen[key]
                raise UserError(
                    f"cache key {key[:12]}… is listed twice (first in {first[0]}, line {first[1]})",
                    path=path,
                    line=line,
                )
            seen[key] = (path, line)
            req = own.get(key)
            if req is None:
                spec = scrub(resolved.spec.raw)
                raise UserError(
                    f"unknown cache key {key[:12]}…: no exported request of {spec} has it",
                    path=path,
                    line=line,
                    field="cache_key",
                )
            generations.append(_generation(row, key, req, resolved, path))
    stored = store.cached_generations(g.cache_key for g in generations)
    new = [g for g in generations if g.cache_key not in stored]
    if new:
        store.write_batch("", new, [], [])  # one transaction: all rows or none
    return ImportReport(len(new), sum(g.error is not None for g in new), len(generations) - len(new))


def _verified_requests(
    cols: list[str], rows: list[dict[str, Any]], where: Path, resolved: Any
) -> dict[str, Request]:
    """cache key → request, each key computed again from its request for `resolved`."""
    missing = [c for c in _REQUEST_NEEDS if c not in cols]
    if missing or not ({"prompt", "messages"} & set(cols)):
        need = missing or ["prompt or messages"]
        raise UserError(f"missing request column(s) {', '.join(need)}", path=where)
    out = {}
    for row in rows:
        line = row["_line"]
        if row.get("model_id") not in (None, resolved.model_id):
            raise UserError(
                f"this request is for model {row['model_id']}, not {resolved.model_id} "
                f"({scrub(resolved.spec.raw)}): export the requests with the same --model",
                path=where,
                line=line,
                field="model_id",
            )
        req, seed = _request(row, where)
        key = row["cache_key"]
        if cache_key(resolved.fingerprint, req, seed) != key:
            raise UserError(
                f"cache key {str(key)[:12]}… is not {scrub(resolved.spec.raw)}'s key for this request "
                "(another model, or an edited request): export the requests with the same --model",
                path=where,
                line=line,
                field="cache_key",
            )
        out[key] = req
    return out


def _request(row: dict[str, Any], where: Path) -> tuple[Request, int | None]:
    line = row["_line"]
    try:
        params = json.loads(row["params"]) if isinstance(row["params"], str) else row["params"]
        messages = row.get("messages")
        if isinstance(messages, str):
            messages = json.loads(messages)
    except json.JSONDecodeError as e:
        raise UserError(f"params or messages is not JSON ({e.msg})", path=where, line=line) from None
    if not isinstance(params, dict):
        raise UserError("params must be a JSON object", path=where, line=line, field="params")
    if row.get("request_type") != "generate":
        raise UserError("only generate requests are imported", path=where, line=line, field="request_type")
    msgs = tuple(dict(m) for m in messages) if messages is not None else None
    seed = row.get("seed")
    return Request("generate", row.get("prompt"), params, msgs), int(seed) if seed is not None else None


def _generation(row: dict[str, Any], key: str, req: Request, resolved: Any, where: Path) -> GenerationRow:
    line = row["_line"]
    output, error = _text(row.get("output")), _text(row.get("error"))
    if output is None and error is None:
        raise UserError("neither output nor error is set", path=where, line=line, field="output")
    if output is not None and not isinstance(output, str):
        raise UserError("output must be text", path=where, line=line, field="output")
    if error is not None:
        output = None
    return GenerationRow(
        key,
        resolved.model_id,
        "generate",
        req.sent_text(),
        req.params,
        None if output is None else cut_at_stop(output, req.params.get("stop") or []),
        {"imported": True},
        _int(row.get("prompt_tokens"), where, line, "prompt_tokens"),
        _int(row.get("output_tokens"), where, line, "output_tokens"),
        _float(row.get("latency_s")),
        None if error is None else str(error),
    )


def _text(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _int(v: Any, where: Path, line: int, field: str) -> int | None:
    v = _text(v)
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise UserError(f"{field} must be a whole number", path=where, line=line, field=field) from None


def _float(v: Any) -> float | None:
    v = _text(v)
    return float(v) if isinstance(v, int | float) else None


# -- files ----------------------------------------------------------------------------------
def check_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: expected a .parquet or .jsonl file", path=path)
    return suffix
