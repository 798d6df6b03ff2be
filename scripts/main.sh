#!/usr/bin/env bash
# The main job on the CPU: set up, train iiwa-reach with DR, evaluate, export (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
exec .venv/bin/robot-rl main "$@"
