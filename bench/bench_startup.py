"""`tunegate --help` start-up time (target < 0.5 s), against a bare interpreter.

.venv/bin/python bench/bench_startup.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import report, timed  # noqa: E402


def main() -> None:
    def run(*args: str) -> None:
        subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, check=True)

    rows = [
        ("python -c pass", timed(lambda: run("-c", "pass"), 7)[0]),
        ("tunegate --help", timed(lambda: run("-m", "tunegate", "--help"), 7)[0]),
        ("python -c 'import torch'", timed(lambda: run("-c", "import torch"), 3)[0]),
    ]
    report("start-up (median)", rows, "python -c pass", "tunegate --help < 0.5 s")


if __name__ == "__main__":
    main()
