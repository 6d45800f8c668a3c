#!/usr/bin/env bash
# What only the tests need, on top of scripts/setup.sh: the test extra (pytest, ruff, mypy,
# actionlint) and the docs extra (mkdocs-material: the site is built strictly in the tests),
# the llama.cpp server (the judge and endpoint tests' real OpenAI-compatible server), headless
# Chromium + a CJK font (the report's browser tests), and the cached side environments (a
# core-only tunegate; deepeval). Each is built once and reused: the llama.cpp
# wheel and the side environments live under ~/.cache/tunegate (CI: cache that folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# Side environments (tests/envs.py; dependencies cached by a hash of pyproject.toml), built in the
# background: mostly downloads and unpacking, beside the llama.cpp compile below (cold: ~4 min
# saved on 2 cores).
# (scripts/test.sh starts them itself, before setup.sh, and says so with TUNEGATE_SIDE_ENVS.)
ENVS=
if [ "${TUNEGATE_SIDE_ENVS:-}" != started ]; then
  .venv/bin/python tests/envs.py core deepeval vllm 2> >(grep -v "is ignored: it is neither" >&2) &
  ENVS=$!
fi
"${PIP[@]}" -e ".[local,train,test,docs,ray]"
# Headless Chromium and a CJK font: the HTML report is tested in a real browser (Debian packages).
if ! { /usr/bin/chromium --version >/dev/null 2>&1 \
       && dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q "ok installed"; }; then
  SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)
  if command -v apt-get >/dev/null; then
    "${SUDO[@]}" apt-get update -qq \
      && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-noto-cjk >/dev/null \
      || echo "warning: could not install chromium + fonts-noto-cjk; the report's browser tests need them" >&2
  fi
fi
# llama-cpp-python serves the judge tests' real OpenAI-compatible endpoint. It compiles llama.cpp
# from source, so the wheel is built once into a cache folder (scripts/build-llama-wheel.sh; a
# no-op when scripts/test.sh already built it) and installed from there on every later setup.
if ! .venv/bin/python -c "import llama_cpp.server" 2>/dev/null; then
  PYTHON=.venv/bin/python bash scripts/build-llama-wheel.sh
  WHEELS=${TUNEGATE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tunegate/wheels}
  "${PIP[@]}" --find-links "$WHEELS" "llama-cpp-python[server]==0.3.36"
fi
# The side environments, started at the top, must have finished too (their exit status counts).
if [ -n "$ENVS" ]; then wait "$ENVS"; fi
