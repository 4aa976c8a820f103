#!/usr/bin/env bash
# The main job: set up the environment and build the book (full mode) into _build/html.
# Notebooks run with GENAI_BOOK=1 so widgets pre-render frames that work with no kernel, and
# execute side by side in Sphinx's parallel read (scripts/jb_parallel.py; GENAI_BOOK_JOBS sets
# how many at once, default: the CPU cores, at most 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GENAI_BOOK=1
unset GENAI_FAST
.venv/bin/python scripts/jb_parallel.py build . -W --keep-going "$@"
echo "The book is in $(pwd)/_build/html/index.html"
