"""The backend-neutral robot state that observation and action terms are functions of.

The same `RobotState` is built batched in the env (torch tensors `[N, ...]` on the env's device)
and for one robot in the deploy node (numpy arrays `[1, ...]`), so one term function serves both.
Term code may use operators, indexing and `state.xp` (the `torch` or `numpy` module) with
*positional* arguments only (`xp.cos(x)`, `xp.concatenate`-style calls go through `cat`/`stack`
below), which behave the same in both libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass
class RobotState:
    joint_pos: Any
    """[B, J] positions of the state joints (`TermContext.state_joints`: actuated, then passive)."""
    joint_vel: Any
    """[B, J] velocities of the state joints."""
    joint_effort: Any
    """[B, A] actuator effort on the actuated joints (NaN where a robot does not report it)."""
    frames: Mapping[str, Any]
    """Frame name (the robot's `frames`, e.g. `ee`) -> [B, 3] position in the robot base frame."""
    commands: Mapping[str, Any]
    """Task inputs by name (e.g. `target_pos` [B, 3]): commands in the env, topics on the robot."""
    last_action: Any
    """[B, D_action] the previous policy output (clipped to [-1, 1])."""
    joint_target: Any
    """[B, A] the joint position target the action terms currently hold (NaN where none)."""
    jacobians: Mapping[str, Any] = field(default_factory=dict)
    """Frame name -> [B, 3, A] positional Jacobian w.r.t. the actuated joints (only for frames an
    action term asks for)."""

    @property
    def xp(self):
        return np if isinstance(self.joint_pos, np.ndarray) else _torch()


def _torch():
    import torch

    return torch


def cat(xs: Sequence[Any]) -> Any:
    """Concatenate along the last axis (torch or numpy)."""
    return np.concatenate(xs, -1) if isinstance(xs[0], np.ndarray) else _torch().cat(list(xs), -1)


def stack(xs: Sequence[Any]) -> Any:
    """Stack along a new last axis (torch or numpy)."""
    return np.stack(xs, -1) if isinstance(xs[0], np.ndarray) else _torch().stack(list(xs), -1)


def _columns(names: Sequence[str], within: Sequence[str], what: str) -> slice | list[int]:
    names = list(names)
    missing = [j for j in names if j not in within]
    if missing:
        raise ValueError(f"joints {missing} are not {what} joints of this robot ({list(within)})")
    idx = [list(within).index(j) for j in names]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return slice(idx[0], idx[0] + len(idx))
    return idx


@dataclass(frozen=True)
class TermContext:
    """What a term factory may know about the robot and the task (names, limits, defaults).

    Array fields have the type of the state the terms will see: torch tensors on the env's device
    in the env, numpy arrays on the robot (`make_context` builds both)."""

    state_joints: tuple[str, ...]
    actuated: tuple[str, ...]
    default_pose: Any
    """[J] per state joint: the robot's default pose for actuated joints, 0 for passive ones."""
    lower: Any
    """[A] position limits of the actuated joints."""
    upper: Any
    frames: tuple[str, ...]
    commands: Mapping[str, int]
    """Command name -> dimension."""
    gripper: Mapping[str, Any] | None = None

    def joint_index(self, joints: Sequence[str] | None) -> slice | list[int]:
        """Columns of the state joints `joints` (all actuated joints for None): a slice when they
        are consecutive (a view, no copy)."""
        return _columns(self.actuated if joints is None else joints, self.state_joints, "state")

    def actuated_index(self, joints: Sequence[str] | None) -> slice | list[int]:
        """Columns of `joints` among the actuated joints (all for None)."""
        return _columns(self.actuated if joints is None else joints, self.actuated, "actuated")

    def check_frame(self, frame: str) -> None:
        if frame not in self.frames:
            raise ValueError(f"frame {frame!r} is not declared by the robot (frames: {list(self.frames)})")

    def check_command(self, name: str) -> None:
        if name not in self.commands:
            raise ValueError(f"command {name!r} is not declared by the task (commands: {list(self.commands)})")


def make_context(robot, task_commands: Mapping[str, int], task_frames: Sequence[str] = (), *,
                 position_limits=None, torch_device=None) -> TermContext:
    """The context of `robot` (a `robot_rl.robots.Robot` or the `robot` section of a spec) for a task
    with these commands; arrays are torch tensors on `torch_device` if given, else numpy."""
    d = robot if isinstance(robot, dict) else robot.describe()
    actuated = tuple(d["joint_names"])
    state_joints = actuated + tuple(d.get("passive_joints", ()))
    q0 = np.concatenate([np.asarray(d["default_pose"], dtype=np.float64), np.zeros(len(state_joints) - len(actuated))])
    lim = np.asarray(d["position_limits"] if position_limits is None else position_limits, dtype=np.float64)
    arrays = {"default_pose": q0, "lower": lim[:, 0], "upper": lim[:, 1]}
    if torch_device is not None:
        torch = _torch()
        arrays = {k: torch.as_tensor(v, dtype=torch.float32, device=torch_device) for k, v in arrays.items()}
    return TermContext(state_joints=state_joints, actuated=actuated, frames=tuple(d["frames"]) + tuple(task_frames),
                       commands=dict(task_commands), gripper=d.get("gripper"), **arrays)
