"""Environment for child processes whose ROS 2 traffic must stay on this machine."""

from __future__ import annotations

import os

# settings a user may have exported that would take traffic off loopback or change the middleware
_DROPPED = ("CYCLONEDDS_URI", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY", "RMW_IMPLEMENTATION")


def loopback_env(domain_id: int, base: dict | None = None) -> dict:
    """A copy of `base` (default `os.environ`) for a node process on the DDS backend, in ROS domain
    `domain_id`, discovering peers on localhost only."""
    env = dict(os.environ if base is None else base)
    for var in _DROPPED:
        env.pop(var, None)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain_id),
               ROBOT_RL_TRANSPORT="dds", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return env
