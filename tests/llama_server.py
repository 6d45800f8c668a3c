"""The real OpenAI-compatible server of the judge tests: llama-cpp-python serving the bundled
SmolLM2 GGUF on loopback. Started as a subprocess, stopped by its PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LLAMA_THREADS = 1 if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 else 2
"""llama.cpp threads of the tests' servers and in-process contexts: one per pytest-xdist worker.
llama.cpp's thread barriers spin: two 2-thread pools on 2 cores ran 50-100x slower (measured with
bench/llamacpp_kv_probe.py), so a worker never starts more threads than its share of the cores."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc: subprocess.Popen, url: str, timeout: float, what: str, log: Path | None) -> None:
    """Poll `url` until it answers 200; a server that exits or never answers is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} (log: {log})")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    stop_process(proc)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:g} s")


def stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM by PID, SIGKILL after 10 s."""
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


class LlamaServer:
    """`with LlamaServer() as srv: srv.base_url`; `n_threads` bounds its CPU use."""

    def __init__(
        self,
        n_threads: int = LLAMA_THREADS,
        n_ctx: int = 2048,
        log: Path | None = None,
        aliases: tuple[str, ...] = ("smollm2",),
    ) -> None:
        from harness.models.gguf import smollm2_gguf

        self.model = smollm2_gguf()
        self.port = free_port()
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.log = log
        self.aliases = aliases
        """Model names served; more than one goes through a config file (the server swaps the
        loaded model on demand: same GGUF, so a 'candidate' alias costs one reload)."""
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LlamaServer:
        out = open(self.log, "wb") if self.log else subprocess.DEVNULL  # noqa: SIM115
        if len(self.aliases) > 1:
            import json
            import tempfile

            cfg = {
                "host": "127.0.0.1",
                "port": self.port,
                # queue concurrent requests as production servers do (its default cuts a stream
                # off when the next request arrives: tests/test_load.py)
                "interrupt_requests": False,
                "models": [
                    {
                        "model": str(self.model),
                        "model_alias": a,
                        "n_threads": self.n_threads,
                        "n_ctx": self.n_ctx,
                        "logits_all": True,
                        "verbose": False,
                    }
                    for a in self.aliases
                ],
            }
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(cfg, f)
            args = ["--config_file", f.name]
        else:
            args = [
                "--model",
                str(self.model),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_threads",
                str(self.n_threads),
                "--n_ctx",
                str(self.n_ctx),
                "--model_alias",
                self.aliases[0],
                "--interrupt_requests",
                "False",
            ]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": str(self.n_threads)},
        )
        wait_until_serving(self.proc, f"{self.base_url}/models", 120, "llama_cpp.server", self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)
