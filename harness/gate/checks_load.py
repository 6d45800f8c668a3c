"""Built-in load checks (issue #26): latency percentiles, throughput and error rate of the
candidate's load run at the rule's level; two deployments compared by the bootstrap CI of the
p95 difference and the throughput ratio."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated

from pydantic import Field

from harness.gate.checks import LOAD_SUITE, LoadContext, gate_check
from harness.gate.load_level import Share
from harness.gate.result import CheckResult
from harness.load.stats import p95_difference
from harness.store import Store
from harness.store import load as load_store

Seconds = Annotated[float | None, Field(gt=0)]
Rate = Annotated[float | None, Field(ge=0)]


def _latency(ctx: LoadContext, check: str, col: str, what: str) -> Iterator[CheckResult]:
    c, limit = ctx.candidate[1], ctx.rule.value(check)
    got = c[col]
    if got is None:  # no successful request: nothing was fast enough (fails closed)
        yield ctx.result(check, limit, None, False, f"no successful request to time ({c['n_requests']} sent)")
        return
    ok = got <= limit
    n_ok = (c["n_requests"] or 0) - (c["n_errors"] or 0)
    yield ctx.result(
        check, limit, got, ok, f"{what} {got:.4g} s {'<=' if ok else '>'} {limit:g} s over {n_ok} requests"
    )


@gate_check("max_p95_latency_s", "load", {"max_p95_latency_s": Seconds})
def check_p95(ctx: LoadContext) -> Iterator[CheckResult]:
    """Largest p95 of the candidate's end-to-end latency at the level, in seconds."""
    return _latency(ctx, "max_p95_latency_s", "e2e_p95", "p95 latency")


@gate_check("max_p99_latency_s", "load", {"max_p99_latency_s": Seconds})
def check_p99(ctx: LoadContext) -> Iterator[CheckResult]:
    """Largest p99 of the candidate's end-to-end latency at the level, in seconds."""
    return _latency(ctx, "max_p99_latency_s", "e2e_p99", "p99 latency")


@gate_check("max_ttft_p95_s", "load", {"max_ttft_p95_s": Seconds})
def check_ttft(ctx: LoadContext) -> Iterator[CheckResult]:
    """Largest p95 of the candidate's time to first token at the level, in seconds."""
    return _latency(ctx, "max_ttft_p95_s", "ttft_p95", "p95 time to first token")


@gate_check("load:max_error_rate", "load", {"max_error_rate": Annotated[float | None, Field(ge=0, le=1)]})
def check_error_rate(ctx: LoadContext) -> Iterator[CheckResult]:
    """In a load rule: the share of failed requests under load, not of failed examples."""
    c, limit = ctx.candidate[1], ctx.rule.value("max_error_rate")
    rate = c["error_rate"] or 0.0
    ok = rate <= limit
    yield ctx.result("max_error_rate", limit, rate, ok,
                     f"{c['n_errors']}/{c['n_requests']} requests failed under load ({rate:.2%}, allowed "
                     f"{limit:.2%})")  # fmt: skip


def _floor(ctx: LoadContext, check: str, col: str, what: str, unit: str) -> Iterator[CheckResult]:
    floor = ctx.rule.value(check)
    got = ctx.candidate[1][col] or 0.0
    ok = got >= floor
    yield ctx.result(check, floor, got, ok, f"{what} {got:.4g} {unit} {'>=' if ok else '<'} {floor:g}")


@gate_check("min_throughput_rps", "load", {"min_throughput_rps": Rate})
def check_throughput(ctx: LoadContext) -> Iterator[CheckResult]:
    """Fewest successful requests per second the candidate must serve at the level."""
    return _floor(ctx, "min_throughput_rps", "requests_per_s", "throughput", "requests/s")


@gate_check("min_output_tokens_per_s", "load", {"min_output_tokens_per_s": Rate})
def check_output_tokens(ctx: LoadContext) -> Iterator[CheckResult]:
    """Fewest output tokens per second the candidate must produce at the level."""
    return _floor(ctx, "min_output_tokens_per_s", "output_tokens_per_s", "output", "tokens/s")


@gate_check("max_p95_slowdown_rel", "load", {"max_p95_slowdown_rel": Share | None}, needs_baseline=True)
def check_p95_slowdown(ctx: LoadContext) -> Iterator[CheckResult]:
    """The candidate's p95 may exceed the baseline's by at most this share (`10%`): passes only
    when the upper bound of the bootstrap CI of the p95 difference is within it."""
    assert ctx.baseline is not None
    (cid, c), (bid, b) = ctx.candidate, ctx.baseline
    ids = f"({bid} → {cid})"
    margin = float(ctx.rule.value("max_p95_slowdown_rel"))
    lat = [_ok_latencies(ctx.store, bid, b["level"]), _ok_latencies(ctx.store, cid, c["level"])]
    if not lat[0] or not lat[1]:
        yield CheckResult(LOAD_SUITE, ctx.level, "max_p95_slowdown_rel", margin, math.nan, False,
                          f"a side has no successful request to time {ids}", None)  # fmt: skip
        return
    d = p95_difference(lat[0], lat[1])
    allowed = margin * d.baseline
    rel_hi = d.ci_high / d.baseline if d.baseline > 0 else math.inf
    ok = d.ci_high <= allowed
    reason = (
        f"p95 {d.baseline:.4g} s → {d.candidate:.4g} s (delta {d.delta:+.4g} s, {d.confidence:.0%} "
        f"bootstrap CI [{d.ci_low:+.4g}, {d.ci_high:+.4g}] over {d.n_baseline}/{d.n_candidate} "
        f"requests): upper bound {'<=' if ok else '>'} {allowed:.4g} s ({margin:.4g} of the "
        f"baseline's p95) {ids}"
    )
    if not ok:
        reason += "; a slowdown beyond the margin cannot be ruled out"
    yield CheckResult(LOAD_SUITE, ctx.level, "max_p95_slowdown_rel", margin, rel_hi, ok, reason, None)


@gate_check("max_throughput_drop_rel", "load", {"max_throughput_drop_rel": Share | None}, needs_baseline=True)
def check_throughput_drop(ctx: LoadContext) -> Iterator[CheckResult]:
    """The candidate's requests/s may fall below the baseline's by at most this share (`10%`)."""
    assert ctx.baseline is not None
    (cid, c), (bid, b) = ctx.candidate, ctx.baseline
    margin = float(ctx.rule.value("max_throughput_drop_rel"))
    rb, rc = b["requests_per_s"] or 0.0, c["requests_per_s"] or 0.0
    ratio = rc / rb if rb > 0 else math.nan
    ok = rb > 0 and ratio >= 1 - margin
    reason = f"throughput {rb:.4g} → {rc:.4g} requests/s (ratio {ratio:.3f}, allowed >= {1 - margin:.3f})"
    reason += f" ({bid} → {cid})"
    yield CheckResult(LOAD_SUITE, ctx.level, "max_throughput_drop_rel", margin, ratio, ok, reason, None)


def _ok_latencies(store: Store, load_run_id: str, level: int) -> list[float]:
    cols = load_store.request_columns(store, load_run_id, level)
    return [e for e, err in zip(cols["e2e_s"], cols["error"]) if err is None and e is not None]
