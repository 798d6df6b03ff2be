#!/usr/bin/env bash
# Set up and run the test suite (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -f scripts/setup_ros.sh ]; then scripts/setup_ros.sh; fi
export MUJOCO_GL=${MUJOCO_GL:-egl}
exec .venv/bin/python -m pytest -q "$@"
