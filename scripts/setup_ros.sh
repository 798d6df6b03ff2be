#!/usr/bin/env bash
# Create a separate Python environment with real rclpy (ROS 2 Kilted wheels) for the rclpy
# backend of robot_rl.transport and for the interop tests in tests/transport.
#
# Why separate: the ROS wheels install a `ros_wheels_bootstrapper.pth` that re-executes every
# interpreter of the environment they live in (to set LD_LIBRARY_PATH). That must never happen to
# the project's main environment, so they go into their own venv.
#
# Usage:  bash scripts/setup_ros.sh            # creates /work/main/.ros-venv (repo/.ros-venv)
#         ROS_VENV=/some/path bash scripts/setup_ros.sh
#         PYTHON=python3.11 bash scripts/setup_ros.sh
#
# Idempotent: if the venv already imports rclpy and the message packages, nothing is installed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROS_VENV="${ROS_VENV:-$REPO/.ros-venv}"

# The ROS wheels are built for CPython 3.11.
if [[ -z "${PYTHON:-}" ]]; then
    for cand in python3.11 "$REPO/.venv/bin/python" python3; do
        if command -v "$cand" >/dev/null 2>&1 && \
           "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            PYTHON="$cand"
            break
        fi
    done
fi
if [[ -z "${PYTHON:-}" ]]; then
    echo "setup_ros.sh: need a Python 3.11 interpreter (the ROS 2 Kilted wheels are cp311); set PYTHON=..." >&2
    exit 1
fi

check() {
    [[ -x "$ROS_VENV/bin/python" ]] || return 1
    "$ROS_VENV/bin/python" - <<'EOF' >/dev/null 2>&1
import rclpy
import std_msgs.msg, sensor_msgs.msg, trajectory_msgs.msg, geometry_msgs.msg
import numpy, cyclonedds
import robot_rl.transport
EOF
}

if check; then
    echo "setup_ros.sh: $ROS_VENV already has rclpy and robot_rl; nothing to do"
    exit 0
fi

if [[ ! -x "$ROS_VENV/bin/python" ]]; then
    echo "setup_ros.sh: creating $ROS_VENV with $PYTHON"
    # If PYTHON is itself a venv interpreter, resolve the base interpreter so the new venv does
    # not chain to the main venv.
    BASE_PY="$("$PYTHON" -c 'import sys, os; print(os.path.join(sys.base_prefix, "bin", "python3"))')"
    [[ -x "$BASE_PY" ]] || BASE_PY="$PYTHON"
    "$BASE_PY" -m venv "$ROS_VENV"
fi

PIP=("$ROS_VENV/bin/python" -m pip --disable-pip-version-check)
# cyclonedds is pinned like in pyproject.toml; numpy is needed by robot_rl.transport.
"${PIP[@]}" install \
    "ros-rclpy[fastrtps]" ros-std-msgs ros-sensor-msgs ros-trajectory-msgs ros-geometry-msgs \
    "numpy>=1.26" "cyclonedds==11.0.1"
# The project itself, without its heavy training dependencies (torch, mujoco...).
"${PIP[@]}" install --no-deps -e "$REPO"

if ! check; then
    echo "setup_ros.sh: installation finished but the check import failed:" >&2
    "$ROS_VENV/bin/python" -c 'import rclpy, std_msgs.msg, sensor_msgs.msg, robot_rl.transport' >&2 || true
    exit 1
fi
echo "setup_ros.sh: ready: $ROS_VENV/bin/python"
