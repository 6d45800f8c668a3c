#!/usr/bin/env bash
# The test command: install (idempotent; test-only parts built once and cached), the static
# checks (ruff, ruff format, mypy), then the whole pytest suite on the real model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-test.sh
bash scripts/lint.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest -q --durations=20 "$@"
