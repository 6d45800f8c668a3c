"""Walk one suite from `tunegate run` to the first `Store.write_batch`, and count the hops.

    .venv/bin/python scripts/walk.py            # prints the figures (and --chain: the call chain)

It runs `run_cmd` in-process on a two-example task suite scored from a predictions file (no
model weights, no network), twice: the second run (every module already imported) is traced,
every call and return between tunegate's own files (harness/, suites/, judges/, trainers/,
reports/, tunegate/) until `write_batch` is entered:

- hops: how often the running code moves from one of those files to another (a call into
  another file, or a return back);
- returns to a file already left: hops whose destination is a file the walk had already
  been in and left before;
- chain: the call stack at `write_batch`, as files (how deep the path runs);
- calls of the steps that should run once per model/suite (spec parsing, capability check,
  predictions binding, suite loading).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "suites", "judges", "trainers", "reports", "tunegate")
SUITE = """name: walk
kind: task
data: data.jsonl
prompt: "{{ question }}"
reference: answer
metrics: [exact_match]
"""
DATA = '{"id": "a", "question": "one?", "answer": "1"}\n{"id": "b", "question": "two?", "answer": "2"}\n'
ONCE = ("parse_model_spec", "check_capabilities", "bind", "load_suite", "resolve_model")
PREDS = '{"id": "a", "output": "1"}\n{"id": "b", "output": "3"}\n'


def _own(path: str) -> str | None:
    try:
        rel = Path(path).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return str(rel) if rel.parts and rel.parts[0] in PACKAGES else None


class Walk(Exception):
    """Raised from the tracer at write_batch, to stop the run there."""


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tunegate.cli.run import run_cmd

    tmp = Path(tempfile.mkdtemp(prefix="walk-"))
    (tmp / "data.jsonl").write_text(DATA, encoding="utf-8")
    (tmp / "suite.yaml").write_text(SUITE, encoding="utf-8")
    (tmp / "preds.jsonl").write_text(PREDS, encoding="utf-8")
    current: list[str | None] = [None]
    left: set[str] = set()
    seen: set[str] = set()
    hops = revisits = 0
    chain: list[str] = []
    once: dict[str, int] = dict.fromkeys(ONCE, 0)

    def move(to: str | None) -> None:
        nonlocal hops, revisits
        was = current[0]
        if to is None or to == was:
            return
        if was is not None:
            hops += 1
            left.add(was)
            if to in left:
                revisits += 1
        seen.add(to)
        current[0] = to

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            own = _own(frame.f_code.co_filename)
            if own is None:
                return None
            if frame.f_code.co_name == "write_batch" and own.endswith("store/db.py"):
                f: FrameType | None = frame
                while f is not None:
                    name = _own(f.f_code.co_filename)
                    if name is not None:
                        chain.append(f"{name}:{f.f_code.co_name}")
                    f = f.f_back
                raise Walk
            if frame.f_code.co_name in once and own != "harness/suite.py":  # its load_suite is the hook
                once[frame.f_code.co_name] += 1
            move(own)
            return tracer
        if event == "return":
            back = frame.f_back
            move(_own(back.f_code.co_filename) if back is not None else None)
        return tracer

    def run(db: Path) -> None:
        run_cmd(
            model=f"predictions:{tmp / 'preds.jsonl'}", suite=[str(tmp / "suite.yaml")], db=db, progress=False
        )

    run(tmp / "warm.duckdb")  # every module imported once before the walk: module bodies are not hops
    sys.settrace(tracer)
    try:
        run(tmp / "walk.duckdb")
    except Walk:
        pass
    finally:
        sys.settrace(None)
    if not chain:
        raise SystemExit("write_batch was never reached")
    files = list(dict.fromkeys(c.split(":")[0] for c in reversed(chain)))
    print(f"hops {hops}  returns to a file already left {revisits}  files touched {len(seen)}")
    print(f"chain at write_batch: {len(chain)} frames in {len(files)} files")
    print("calls: " + "  ".join(f"{k} {v}" for k, v in once.items()))
    if "--chain" in sys.argv:
        for c in reversed(chain):
            print("  " + c)


if __name__ == "__main__":
    main()
