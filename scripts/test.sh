#!/usr/bin/env bash
# Install what the tests need, then run every test: lint, Python suite
# (unit, API against moto, local stack, browser), frontend component tests.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

bash scripts/setup.sh --browser

say "Lint: ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

if [ -f frontend/package.json ]; then
  say "Frontend: component tests (vitest)"
  (cd frontend && npm test --silent)
fi

say "Python: pytest (two workers, each test file on one of them)"
# Servers bind free ports and tests keep to their own data, so files run side
# by side; a module's stack or browser starts once, on its file's worker.
# The timing comparisons (marker "timing") run after, alone on the machine.
if [ $# -gt 0 ]; then  # the caller's selection, as given, on the workers
  .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
  exit
fi
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile -m "not timing"
say "Python: pytest, the timing comparisons alone"
.venv/bin/python -m pytest -m timing
