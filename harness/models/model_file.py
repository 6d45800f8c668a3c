"""A model described in a YAML file instead of a spec string (`--model cand.yaml`).

    # the same keys as the spec's options, plus where the model is
    backend: openai                # any registered scheme: openai, llamacpp, hf, gguf, predictions
    model: cand                    # openai: the served model name …
    base_url: http://127.0.0.1:8000/v1   # … and the server
    path: ./merged                 # other backends: the file or folder (relative to this file)
    api_key_env: VLLM_API_KEY
    revision: adapter-sha256:1f3e…
    chat: true

or simply `spec: openai:cand@http://…` with options beside it. The file becomes the spec string
it stands for, so runs, the cache and `--resume` see exactly what a spec string would give.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from harness.config import LocatedYaml

_WHERE = {"backend", "model", "base_url", "path", "spec"}


def spec_from_file(path: Path) -> str:
    """The spec string a model file stands for; every problem is located in the file."""
    doc = LocatedYaml(path)
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error("a model file must be a YAML mapping", ())
    options = {k: v for k, v in data.items() if k not in _WHERE}
    for k, v in options.items():
        if isinstance(v, (dict, list)) or v is None:
            raise doc.error("an option must be a string, number or boolean", (k,))
    if "spec" in data:
        base = str(data["spec"])
    else:
        backend = data.get("backend")
        if not isinstance(backend, str):
            raise doc.error("missing 'backend' (openai, llamacpp, hf, gguf, predictions) or 'spec'", ())
        if backend == "openai":
            for key in ("model", "base_url"):
                if not data.get(key):
                    raise doc.error(f"an openai model needs '{key}'", (key,))
            base = f"openai:{data['model']}@{data['base_url']}"
        else:
            if not data.get("path"):
                raise doc.error(f"a {backend} model needs 'path'", ("path",))
            where = Path(str(data["path"])).expanduser()
            where = where if where.is_absolute() else (path.parent / where)
            base = f"{backend}:{where}"
    query = urlencode({k: _text(v) for k, v in options.items()})
    return f"{base}?{query}" if query else base


def _text(v: Any) -> str:
    return ("1" if v else "0") if isinstance(v, bool) else str(v)
