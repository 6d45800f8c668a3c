"""A fork server for the tests' `tunegate` command lines (conftest.run_cli).

Each CLI call in the tests used to start a fresh interpreter that imported torch and transformers
(~3 s of CPU per call on this 2-core machine, a few hundred calls per run). This server imports
those heavy third-party libraries once and forks a child per call; the child takes the call's
working folder, environment, argv and output files, runs `python -m tunegate` exactly as the
interpreter would (`runpy`, uncaught exceptions and `SystemExit` reach the top level, so exit
codes, tracebacks, atexit handlers and module finalisation are the interpreter's own), and its
wait status is sent back. tunegate's own modules are never imported here: every child imports
them fresh, after its environment is set.

What cannot be faithful is refused by the client (conftest.run_cli falls back to a real
subprocess): an environment that differs from the server's in a variable read at import time by
the preloaded libraries or the interpreter (PYTHON*, LD_*, thread counts, HF_*, XDG_*, locale),
stdin input, and any other `subprocess.run` keyword. `TUNEGATE_TEST_FORK=0` turns the server off.

Protocol (one JSON line each way, on a Unix socket): request {argv, env, cwd, out, err} →
{"pid": N} right after the fork → {"status": S} once the child is reaped (S as `os.waitpid`).
"""

from __future__ import annotations

import json
import os
import runpy
import select
import socket
import sys

# Read at import time by the preloaded libraries or by the interpreter itself: a call whose
# environment differs from the server's in any of these runs as a real subprocess.
IMPORT_TIME_PREFIXES = (
    "PYTHON",
    "LD_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "KMP_",
    "GOMP_",
    "HF_",
    "HUGGINGFACE_",
    "TRANSFORMERS_",
    "TORCH",
    "PYTORCH_",
    "CUDA",
    "TOKENIZERS_",
    "XDG_",
    "LC_",
    "LANG",
    "SAFETENSORS_",
    "PEFT_",
    "NUMPY_",
)

PRELOAD = (
    "numpy",
    "torch",
    "safetensors.torch",
    "transformers",
    "transformers.modeling_layers",
    "transformers.masking_utils",
    "transformers.models.llama.modeling_llama",
    "peft",
    "duckdb",
)

# The commands that load a model (torch and transformers); the others start faster as a fresh
# interpreter than as a fork that must tear the preloaded libraries down at exit (~0.2 s).
MODEL_COMMANDS = frozenset({"run", "quickstart", "merge", "sweep", "train", "judge", "data", "requests"})


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_PREFIXES)}


def _send(conn: socket.socket, obj: dict) -> None:
    conn.sendall((json.dumps(obj) + "\n").encode())


def _read_request(conn: socket.socket) -> dict:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client left")
        buf += chunk
    return json.loads(buf)


def _become(req: dict) -> None:
    """In the child: the call's folder, environment, stdio and argv."""
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, req["out"]), (2, req["err"])):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    sys.argv = ["-m", *req["argv"]]  # runpy puts the module's file in argv[0], as `python -m` does
    sys.path[0] = os.getcwd()  # `python -m` puts the working folder first
    import importlib

    importlib.invalidate_caches()  # packages installed after the server started


def serve(path: str) -> dict:
    """The accept loop; returns only in a forked child, with its request."""
    for name in PRELOAD:
        __import__(name)
    import gc

    gc.freeze()  # the preloaded objects out of the children's collections: no copy-on-write walks
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([listener], [], [], 0.05)
        if ready:
            conn, _ = listener.accept()
            try:
                req = _read_request(conn)
            except (ConnectionError, ValueError):
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                _become(req)
                return req
            waiting[pid] = conn
            try:
                _send(conn, {"pid": pid})
            except OSError:
                pass
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    _send(conn, {"status": status})
                except OSError:
                    pass
                conn.close()
        if os.getppid() != parent:  # the pytest worker is gone
            sys.exit(0)


if __name__ == "__main__":
    serve(sys.argv[1])
    # Only a forked child gets here: the CLI runs at the top level, as under `python -m tunegate`.
    runpy.run_module("tunegate", run_name="__main__", alter_sys=True)
