#!/usr/bin/env bash
# The whole test suite: unit tests, ruff, a fast book build, and every notebook under nbval
# in fast mode (GENAI_FAST=1 is set by tests/conftest.py and chapters/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two worker processes (pytest-xdist; GENAI_TEST_WORKERS changes the number, 0 runs in this
# process). --dist loadfile keeps each file, and so each notebook's cells, on one worker in
# order. One thread per worker, so the two share the cores instead of fighting over them.
workers="${GENAI_TEST_WORKERS:-2}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
if [ "$workers" = 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
