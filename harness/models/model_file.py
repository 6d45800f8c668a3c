"""A model described in a YAML file instead of a spec string (`--model cand.yaml`).

    # the same keys as the spec's options, plus where the model is
    backend: openai                # any registered scheme: openai, llamacpp, hf, gguf, predictions
    model: cand                    # openai: the served model name …
    base_url: http://127.0.0.1:8000/v1   # … and the server, or its replicas:
    base_urls: [http://10.0.0.1:8000/v1, http://10.0.0.2:8000/v1]
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

_WHERE = {"backend", "model", "base_url", "base_urls", "path", "spec"}


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
            base = f"openai:{_openai_where(doc, data)}"
        else:
            if not data.get("path"):
                raise doc.error(f"a {backend} model needs 'path'", ("path",))
            where = Path(str(data["path"])).expanduser()
            where = where if where.is_absolute() else (path.parent / where)
            base = f"{backend}:{where}"
    query = urlencode({k: _text(v) for k, v in options.items()})
    return f"{base}?{query}" if query else base


def _openai_where(doc: LocatedYaml, data: dict[str, Any]) -> str:
    """MODEL@URL, or MODEL@URL1,URL2,… from `base_urls` (replicas of one model)."""
    if not data.get("model"):
        raise doc.error("an openai model needs 'model'", ("model",))
    if "base_urls" in data:
        if "base_url" in data:
            raise doc.error(
                "give 'base_url' (one server) or 'base_urls' (replicas), not both", ("base_urls",)
            )
        urls = data["base_urls"]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
            raise doc.error("'base_urls' must be a list of base URLs", ("base_urls",))
        for k, u in enumerate(urls):
            if "," in u:
                raise doc.error("a base URL cannot hold a comma", ("base_urls", k))
        return f"{data['model']}@{','.join(urls)}"
    if not data.get("base_url"):
        raise doc.error("an openai model needs 'base_url' (or 'base_urls' for replicas)", ("base_url",))
    return f"{data['model']}@{data['base_url']}"


def _text(v: Any) -> str:
    return ("1" if v else "0") if isinstance(v, bool) else str(v)
