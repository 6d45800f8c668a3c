"""The client side of tests/cli_server.py: one server per test process, started on first use."""

from __future__ import annotations

import atexit
import json
import locale
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.cli_server import import_time_env

START_TIMEOUT = 180.0


class CliServer:
    def __init__(self, proc: subprocess.Popen, folder: Path, env: dict[str, str]) -> None:
        self.proc = proc
        self.folder = folder
        self.sock = str(folder / "s")
        self.env = import_time_env(env)
        self._n = 0
        self._lock = threading.Lock()

    @classmethod
    def start(cls, root: Path) -> CliServer | None:
        folder = Path(tempfile.mkdtemp(prefix="tgcli-"))
        env = dict(os.environ)
        proc = subprocess.Popen(
            [sys.executable, str(root / "tests" / "cli_server.py"), str(folder / "s")],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None,  # a failed preload shows in the test output
            text=True,
        )
        line = _readline(proc, START_TIMEOUT)
        if line.strip() != "ready":
            proc.kill()
            proc.wait()
            shutil.rmtree(folder, ignore_errors=True)
            print("tests/cli_server.py did not start: CLI calls run as plain subprocesses", file=sys.stderr)
            return None
        server = cls(proc, folder, env)
        atexit.register(server.stop)
        return server

    def can_run(self, env: dict[str, str]) -> bool:
        return self.proc.poll() is None and import_time_env(env) == self.env

    def run(
        self, cmd: list[str], args: tuple[str, ...], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        with self._lock:
            self._n += 1
            n = self._n
        out, err = self.folder / f"{n}.out", self.folder / f"{n}.err"
        req = {"argv": list(args), "env": env, "cwd": str(cwd), "out": str(out), "err": str(err)}
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.sock)
            conn.sendall((json.dumps(req) + "\n").encode())
            reader = conn.makefile("r")
            conn.settimeout(60)
            pid = json.loads(reader.readline())["pid"]
            conn.settimeout(timeout)
            try:
                status = json.loads(reader.readline())["status"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)  # as subprocess.run does on a time-out
                conn.settimeout(60)
                json.loads(reader.readline())
                raise subprocess.TimeoutExpired(cmd, timeout, output=_read(out), stderr=_read(err)) from None
        finally:
            conn.close()
        try:
            return subprocess.CompletedProcess(cmd, os.waitstatus_to_exitcode(status), _read(out), _read(err))
        finally:
            out.unlink(missing_ok=True)
            err.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def _read(path: Path) -> str:
    """As `subprocess.run(text=True)` decodes: the locale's encoding, universal newlines."""
    try:
        with open(path, encoding=locale.getpreferredencoding(False), newline=None) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    box: list[str] = []
    out = proc.stdout
    t = threading.Thread(target=lambda: box.append(out.readline() if out else ""), daemon=True)
    t.start()
    t.join(timeout)
    return box[0] if box else ""
