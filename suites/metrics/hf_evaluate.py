"""A metric written as a Hugging Face `evaluate` module, from a local file or folder, offline.

    metrics:
      - name: hf_evaluate
        path: metrics/keyword_hit.py     # relative to the suite file; a folder holding NAME/NAME.py works too
        key: keyword_hit                 # which value of compute()'s dict (default: its only one)
        higher_is_better: true
        as: keyword_hit

The module is loaded with `evaluate.load(path)` while the hub is off (HF_HUB_OFFLINE,
HF_EVALUATE_OFFLINE), and called per example as `compute(predictions=[output],
references=[reference])` (the first reference; `references: all` passes the list). The stored
spec carries the path, the arguments and the sha256 of the module's code, so a changed module is
a different metric in the store.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Literal

from harness.errors import UserError
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer


def module_file(path: Path) -> Path:
    """The module's .py file: `path` itself, or `path/<name>.py` for a folder."""
    if path.is_file():
        return path
    candidate = path / f"{path.name}.py"
    if path.is_dir() and candidate.is_file():
        return candidate
    raise UserError(
        f"no evaluate module at {path} (a .py file, or a folder holding {path.name}.py)", field="path"
    )


def code_hash(path: Path) -> str:
    """sha256 of the module's code: every .py file of its folder (a module may import siblings)."""
    main = module_file(path)
    files = sorted(main.parent.glob("*.py")) if path.is_dir() else [main]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def load_module(path: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    try:
        import evaluate
    except ModuleNotFoundError:
        from harness.extras import MissingExtra

        raise MissingExtra("evaluate", "evaluate") from None
    evaluate.logging.set_verbosity_error()
    evaluate.disable_progress_bar()
    try:
        return evaluate.load(str(module_file(path)))
    except UserError:
        raise
    except Exception as e:  # a broken module is bad configuration: say so before any run
        raise UserError(f"could not load the evaluate module {path}: {e}", field="path") from None


@METRICS.register("hf_evaluate", higher_is_better=True, aggregation="mean", binary=False)
def hf_evaluate(
    *,
    path: str,
    key: str | None = None,
    higher_is_better: bool = True,
    references: Literal["first", "all"] = "first",
    sha256: str | None = None,
) -> Scorer:
    """A Hugging Face `evaluate` module (local file or folder) scored per example."""
    where = Path(path)
    if not where.exists():
        raise UserError(f"no evaluate module at {path}", field="path")
    from harness.trust import require_trust

    require_trust(f"the hf_evaluate metric module {path}", field="path")
    found = code_hash(where)
    if sha256 is not None and sha256 != found:
        raise UserError(f"the evaluate module at {path} changed: sha256 {found}, the suite pins {sha256}")
    module = load_module(where)

    def score(prediction: str, example: ExampleView) -> MetricResult:
        refs = example.references
        if not refs:
            return MetricResult(error="example has no reference answer")
        try:
            out = module.compute(
                predictions=[prediction], references=[refs if references == "all" else refs[0]]
            )
        except Exception as e:  # the module failed on this example: an error row, not a 0
            return MetricResult(error=f"evaluate module failed: {e}")
        if not isinstance(out, dict) or not out:
            return MetricResult(error=f"evaluate module returned {out!r}, expected a dict of numbers")
        name = key if key is not None else next(iter(out)) if len(out) == 1 else None
        if name is None or name not in out:
            raise UserError(
                f"evaluate module {path} returns {', '.join(out)}: choose one with 'key'", field="key"
            )
        value = out[name]
        if not isinstance(value, int | float) or not math.isfinite(value):
            return MetricResult(error=f"evaluate module gave {name}={value!r}, not a finite number")
        detail = {k: v for k, v in out.items() if k != name and isinstance(v, str | int | float | bool)}
        return MetricResult(value=float(value), detail=detail or None)

    score.higher_is_better = higher_is_better  # type: ignore[attr-defined]
    score.spec_extra = {"sha256": found, "module": module.name}  # type: ignore[attr-defined]
    return score
