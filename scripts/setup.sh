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
# tests/teleop/test_web_browser.py drives Debian's chromium (the web teleop page in a real browser)
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
  if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; }; then
    echo "setup: installing chromium with apt-get (the web teleop browser tests need it)"
    aptlog=$(mktemp)
    if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$aptlog" 2>&1; then
      tail -n 5 "$aptlog"
      echo "setup: apt-get install chromium failed (above): the web teleop browser tests will not run"
    fi
    rm -f "$aptlog"
  else
    echo "setup: /usr/bin/chromium is missing and apt-get needs root: the web teleop browser tests will be skipped (run: sudo apt-get install chromium)"
  fi
fi
stamp="$VENV/.robot-rl-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing robot-rl and its dependencies into $VENV (first run takes a few minutes)"
  # CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
  "$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[dev]"
  touch "$stamp"
fi
