#!/usr/bin/env bash
# The whole test suite in one command: set up .venv with the dev tools, then lint, type-check
# and run every test (unit, API, end-to-end against real servers) on SQLite, then the flag
# engine, API and security tests a second time on PostgreSQL. Arguments go to both passes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
bootstrap_venv "[dev]"
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
status=0
echo "== pytest (SQLite)"
.venv/bin/python -m pytest "$@" || status=$?
echo "== pytest (PostgreSQL): tests/flags tests/api tests/security"
.venv/bin/python -m pytest --backend=postgresql tests/flags tests/api tests/security "$@" ||
    status=$?
exit "$status"
