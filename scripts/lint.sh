#!/usr/bin/env bash
# The static checks of the test command (and of .pre-commit-config.yaml): lint, format, types.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(harness suites judges trainers reports tunegate)
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy "${PACKAGES[@]}"
