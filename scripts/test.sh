#!/usr/bin/env bash
# The whole test suite in one command: set up .venv with the dev tools, then lint, type-check
# and run every test (unit, API, end-to-end against real servers).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
bootstrap_venv "[dev]"
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
