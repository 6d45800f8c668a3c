#!/usr/bin/env bash
# The test command: install (idempotent; test-only parts built once and cached), the static
# checks (ruff, ruff format, mypy), then the whole pytest suite on the real model.
set -euo pipefail
cd "$(dirname "$0")/.."
# What takes minutes cold starts first, beside setup.sh's downloads and unpacking instead of after
# them: the llama.cpp wheel (compiled from source once, then cached) and the cached side
# environments (tests/envs.py needs only the standard library; scripts/setup-test.sh then leaves
# them to this script, which waits for them after the static checks).
bash scripts/build-llama-wheel.sh &
WHEEL=$!
"${PYTHON:-python3}" tests/envs.py core deepeval vllm 2> >(grep -v "is ignored: it is neither" >&2) &
ENVS=$!
bash scripts/setup.sh
wait "$WHEEL"
TUNEGATE_SIDE_ENVS=started bash scripts/setup-test.sh
bash scripts/lint.sh
wait "$ENVS"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# One pytest-xdist worker per core (at most 4; TUNEGATE_TEST_WORKERS=1 runs in one process), a
# test file per worker at a time: module fixtures are built once, and the heavy files start first
# (tests/conftest.py). The 20 slowest tests are printed at the end of every run.
WORKERS=${TUNEGATE_TEST_WORKERS:-$(nproc)}
if (( WORKERS > 4 )); then WORKERS=4; fi
XDIST=()
if (( WORKERS > 1 )); then XDIST=(-n "$WORKERS" --dist loadfile); fi
exec .venv/bin/python -m pytest -q --durations=20 "${XDIST[@]}" "$@"
