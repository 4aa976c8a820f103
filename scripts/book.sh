#!/usr/bin/env bash
# The main job: set up the environment and build the book (full mode) into _build/html.
# Notebooks run with GENAI_BOOK=1 so widgets pre-render frames that work with no kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GENAI_BOOK=1
unset GENAI_FAST
.venv/bin/jupyter-book build . -W --keep-going "$@"
echo "The book is in $(pwd)/_build/html/index.html"
