"""What a load run does: its levels (closed loop at N in flight, or open loop at R arrivals/s),
how long each lasts, and the prompts it replays."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from harness.errors import UserError

Mode = Literal["concurrency", "rate"]
DEFAULT_REQUESTS = 100
MAX_CONCURRENCY = 4096


@dataclass(frozen=True)
class Level:
    """One load level: `concurrency` requests in flight (closed loop), or Poisson arrivals at
    `rate` per second (open loop)."""

    mode: Mode
    value: float

    @property
    def label(self) -> str:
        return f"concurrency {self.value:g}" if self.mode == "concurrency" else f"rate {self.value:g}/s"

    def matches(self, mode: str, value: float) -> bool:
        return self.mode == mode and math.isclose(self.value, value, rel_tol=1e-9)


@dataclass(frozen=True)
class LoadOptions:
    """How every level of one load run is driven."""

    levels: tuple[Level, ...]
    duration_s: float | None = None
    """Each level sends for this long (then waits for the requests in flight)."""
    requests: int | None = None
    """Each level sends this many requests (the default: DEFAULT_REQUESTS)."""
    warmup: int = 0
    """Requests sent (and not stored) before the first level, at its load."""
    seed: int = 1234
    """Open loop: the arrival times are drawn from this seed (level i uses seed + i)."""
    limit: int | None = None
    """Only the first N examples of each suite are replayed."""
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels"] = [asdict(lv) for lv in self.levels]
        return d

    @staticmethod
    def from_record(d: dict[str, Any]) -> LoadOptions:
        levels = tuple(Level(lv["mode"], float(lv["value"])) for lv in d["levels"])
        return LoadOptions(
            levels, d.get("duration_s"), d.get("requests"), d.get("warmup", 0), d.get("seed", 1234),
            d.get("limit"), d.get("extra") or {},
        )  # fmt: skip


def _numbers(text: str, flag: str, *, integer: bool) -> list[float]:
    out = []
    for part in text.split(","):
        part = part.strip().removesuffix("/s")
        try:
            v = float(part)
        except ValueError:
            raise UserError(f"{flag} takes numbers separated by commas, not '{text}'", field=flag) from None
        if not (v > 0 and math.isfinite(v)):
            raise UserError(f"{flag} must be greater than 0, got '{part}'", field=flag)
        if integer and v != int(v):
            raise UserError(f"{flag} takes whole numbers of requests in flight, got '{part}'", field=flag)
        if integer and v > MAX_CONCURRENCY:
            raise UserError(f"{flag} is at most {MAX_CONCURRENCY}, got '{part}'", field=flag)
        out.append(v)
    if len(set(out)) != len(out):
        raise UserError(f"{flag} lists a level twice: '{text}'", field=flag)
    return out


def parse_options(
    concurrency: str | None,
    rate: str | None,
    duration: float | None,
    requests: int | None,
    warmup: int,
    seed: int,
    limit: int | None,
) -> LoadOptions:
    """The CLI's flags, checked: one user error per bad value, before anything is stored."""
    if concurrency is not None and rate is not None:
        raise UserError("give --concurrency (closed loop) or --rate (open loop), not both")
    if duration is not None and requests is not None:
        raise UserError("give --duration or --requests for each level, not both")
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise UserError(f"--duration must be greater than 0 seconds, got {duration:g}", field="duration")
    if requests is not None and requests < 1:
        raise UserError(f"--requests must be at least 1, got {requests}", field="requests")
    if warmup < 0:
        raise UserError(f"--warmup must be 0 or more, got {warmup}", field="warmup")
    if rate is not None:
        levels = tuple(Level("rate", v) for v in _numbers(rate, "--rate", integer=False))
    else:
        values = _numbers(concurrency, "--concurrency", integer=True) if concurrency is not None else [1.0]
        levels = tuple(Level("concurrency", v) for v in values)
    if duration is None and requests is None:
        requests = DEFAULT_REQUESTS
    return LoadOptions(levels, duration, requests, warmup, seed, limit)
