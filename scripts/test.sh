#!/usr/bin/env bash
# The whole test suite: unit tests, ruff, a fast book build, and every notebook under nbval
# in fast mode (GENAI_FAST=1 is set by tests/conftest.py and chapters/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
