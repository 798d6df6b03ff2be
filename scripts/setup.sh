#!/usr/bin/env bash
# Create .venv and install robot-rl with its test and benchmark dependencies (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.robot-rl-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing robot-rl and its dependencies into $VENV (first run takes a few minutes)"
  # CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
  "$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[dev]"
  touch "$stamp"
fi
