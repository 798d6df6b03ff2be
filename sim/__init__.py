"""Simulators behind one batched-environment contract (see `robot_rl.sim.env`)."""

from robot_rl.sim.backend import BACKENDS
from robot_rl.sim.env import BatchedEnv, make_env
from robot_rl.sim.tasks import make_task, task_names

__all__ = ["BACKENDS", "BatchedEnv", "make_env", "make_task", "task_names"]
