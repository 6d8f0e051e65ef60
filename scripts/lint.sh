#!/usr/bin/env bash
# The code's habits, checked (scripts/test.sh runs this before the tests; CI fails when it fails):
# ruff's lint rules and its formatter, the import contracts (import-linter: the packages' layers, no cycles) and
# mypy's type check of orchestrator/, all configured in pyproject.toml. Fix the first two with
#   .venv/bin/ruff check --fix . && .venv/bin/ruff format .
set -uo pipefail
cd "$(dirname "$0")/.."
code=0
.venv/bin/ruff check . || code=1
.venv/bin/ruff format --check . || { echo "error: files above need \`.venv/bin/ruff format .\`" >&2; code=1; }
.venv/bin/lint-imports --no-cache || code=1
.venv/bin/mypy || code=1
exit "$code"
