#!/usr/bin/env bash
# The llama-cpp-python wheel (the judge and endpoint tests' real OpenAI-compatible server, and
# `llamacpp:`), compiled once from source into a cache folder that every later (fresh-venv) setup
# installs from: ~/.cache/tunegate/wheels (CI: cache that folder). Compiling llama.cpp takes
# ~3-4 min on 2 cores, so scripts/test.sh starts this first, beside the installs of setup.sh.
# Needs only a python3 with pip (the wheel is py3-none: any interpreter builds it); PYTHON=…
# picks it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_CPP="llama-cpp-python==0.3.36"
WHEELS=${TUNEGATE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tunegate/wheels}
mkdir -p "$WHEELS"
if ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
  exit 0
fi
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  echo "no pip for $PYTHON: the llama.cpp wheel is built later, by setup-test.sh" >&2
  exit 0
fi
echo "building $LLAMA_CPP once (cached in $WHEELS)"
# LLAVA_BUILD=OFF: the multimodal library is not needed to serve a text model, and is a large
# part of the build. Built in a folder of its own and moved in whole: a concurrent setup never
# sees half a wheel.
TMP=$(mktemp -d "$WHEELS/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$TMP" "$LLAMA_CPP" \
  2> >(grep -v "is ignored: it is neither" >&2)
mv "$TMP"/llama_cpp_python-0.3.36-*.whl "$WHEELS"/
