"""Dataset loader for tunegate's bundled lm-eval tasks (referenced as `!function utils.load_jsonl`).

Paths in `data_files` are relative to this folder, so the tasks work from any working
directory, with plain `lm_eval --include_path` too, and never touch the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_jsonl(data_files: dict[str, str], **_metadata: Any) -> dict[str, Any]:
    """{split: datasets.Dataset} from JSONL files next to this module.

    lm-eval also passes the task metadata (and model args) as keyword arguments; they are
    not needed here.
    """
    import datasets

    out = {}
    for split, rel in data_files.items():
        path = HERE / rel
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out[split] = datasets.Dataset.from_list(rows)
    return out
