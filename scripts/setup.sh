#!/usr/bin/env bash
# Create (or reuse) the course environment in .venv and install the pinned requirements, then
# what the browser tests need (tests/test_browser_book.py, tests/test_jupyterlab.py): Chromium
# from the system's packages (as root, with apt-get) and the npm packages in tests/browser
# (local copies of the CDN assets the book loads, and axe-core). Where either cannot be
# installed, this says so and the browser tests skip, naming what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium with apt-get; the browser tests will skip"
  else
    echo "setup: chromium is missing (as root: apt-get install -y chromium); the browser tests will skip"
  fi
fi
if [ ! -f tests/browser/node_modules/.package-lock.json ] \
   || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
      || echo "setup: could not install npm with apt-get"
  fi
  if command -v npm >/dev/null 2>&1; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) \
      || echo "setup: npm ci in tests/browser failed; the browser tests will skip"
  else
    echo "setup: npm is missing (install Node.js); the browser tests will skip"
  fi
fi
