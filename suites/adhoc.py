"""A suite made on the fly from a data file plus metrics:

    tunegate run -m smollm2 --suite splits/train.test.jsonl --metric token_f1 --metric rougeL

The file is read as conversation data (`data_format: auto`: messages, ShareGPT or Alpaca). The
suite is written once into the cache as a real suite file beside a copy of the data, named by
the content hash of both, so its identity is its content (the same data and metrics give the same
suite id wherever the file lives) and `--resume` finds it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError
from harness.paths import cache_dir

DATA_SUFFIXES = (".jsonl", ".json")


def is_data_file(ref: str) -> bool:
    return ref.endswith(DATA_SUFFIXES)


def adhoc_suite(data: Path, metrics: list[str]) -> Path:
    """The suite file standing for `data` scored with `metrics` (created once, then reused)."""
    data = data.expanduser()
    if not data.is_file():
        raise UserError("data file not found", path=data, field="suite")
    _check(data, metrics)  # errors name the user's file and flags, not the cached copy
    raw = data.read_bytes()
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", data.name.removesuffix(".jsonl").removesuffix(".json")).lstrip(
        "-._"
    )
    spec: dict[str, Any] = {
        "name": name or "data",
        "kind": "task",
        "description": f"made on the fly from {data.name}",
        "data": "data" + data.suffix,
        "data_format": "auto",
        "metrics": list(metrics),
    }
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    key = hashlib.sha256(text.encode() + b"\0" + raw).hexdigest()[:16]
    folder = cache_dir() / "suites" / f"{spec['name']}-{key}"
    suite = folder / "suite.yaml"
    if suite.is_file():
        return suite
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / spec["data"]).write_bytes(raw)
    (tmp / "suite.yaml").write_text(text, encoding="utf-8")
    (tmp / "source.json").write_text(json.dumps({"source": str(data.resolve())}), encoding="utf-8")
    try:
        tmp.rename(folder)  # atomic: a concurrent run made the same folder first, which is as good
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return suite


def _check(data: Path, metrics: list[str]) -> None:
    from suites.conversation import conversation_examples
    from suites.metrics import METRICS, PRESETS

    for m in metrics:
        if m not in PRESETS:
            try:
                METRICS.build(m, {})
            except UserError as e:
                raise UserError(f"--metric {m}: {e.detail}", field="metric") from None
    conversation_examples(data, "auto", "id")
