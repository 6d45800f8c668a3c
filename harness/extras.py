"""Which `pip install 'tunegate[...]'` brings a missing module: the core has no torch.

The core (store, suites, metrics, predictions, endpoints, judges over them, compare, gate,
report) imports none of the packages below at module level; they are imported inside the
functions that need them. When one is missing, `missing_extra()` turns the ImportError into one
sentence naming the extra to install, and the CLI exits 2 with it.
"""

from __future__ import annotations

from harness.errors import UserError

# top-level module → the extra that installs it
EXTRA_OF: dict[str, str] = {
    "torch": "local",
    "transformers": "local",
    "peft": "local",
    "bitsandbytes": "local",
    "accelerate": "local",
    "safetensors": "local",
    "gguf": "local",
    "datasets": "local",
    "lm_eval": "local",
    "evaluate": "evaluate",
    "trl": "train",
    "llama_cpp": "llamacpp",
    "deepeval": "deepeval",
    "ray": "ray",
}

WHAT: dict[str, str] = {
    "local": "local models (hf:, gguf:, smollm2), benchmark suites and the local judge",
    "train": "training",
    "llamacpp": "llamacpp: models",
    "evaluate": "Hugging Face `evaluate` metrics",
    "deepeval": "deepeval judges",
    "ray": "shards as Ray tasks (run --ray)",
}


class MissingExtra(UserError):
    """A feature whose optional dependencies are not installed (exit 2)."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{module} is not installed (needed for {WHAT[extra]}): pip install 'tunegate[{extra}]'"
        )


def missing_extra(error: ImportError) -> MissingExtra | None:
    """The MissingExtra an ImportError stands for, or None when it is not an optional package."""
    name = getattr(error, "name", None) or ""
    top = name.split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None or not isinstance(error, ModuleNotFoundError):
        return None
    return MissingExtra(top, extra)


def require(module: str) -> None:
    """Raise MissingExtra now when `module` (one of EXTRA_OF) cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtra(module, EXTRA_OF[module])
