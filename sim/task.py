"""What a task declares: model, control, observation terms, rewards, resets, DR ranges.

A task is one file in `sim/tasks/`. Its methods receive the `BatchedEnv` and use only batched torch
operations on `env` tensors (never a Python loop over envs), so the same task runs on every
backend. See the README section "Adding a task".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import mujoco
import torch

from robot_rl.sim.randomization import DRPresets

if TYPE_CHECKING:
    from robot_rl.sim.env import BatchedEnv

import robot_rl.models

MODELS = Path(robot_rl.models.__file__).resolve().parent
"""Where the robot and scene descriptions are (`models/`, installed as `robot_rl.models`)."""


@dataclass(frozen=True)
class ObsTerm:
    """One observation term: `fn(env) -> [num_envs, dim]` in `unit`, multiplied by `scale`."""

    name: str
    fn: Callable[["BatchedEnv"], torch.Tensor]
    unit: str = ""
    scale: float = 1.0
    noise: float = 0.0
    """Standard deviation of sensor noise in `unit` (before `scale`), times DR's noise scale."""
    source: str = ""
    """How a deployed node computes this term from robot topics (documented in spec.json)."""


@dataclass
class Task(ABC):
    """Base class: subclasses fill the fields and override the hooks below."""

    name: str
    model_file: str
    joint_names: tuple[str, ...]
    """Actuated joints, in action order."""
    default_pose: tuple[float, ...]
    """Joint positions the action is an offset from (and the reset pose)."""
    action_scale: float
    decimation: int
    """Physics steps per control step."""
    episode_length_s: float
    action_mode: str = "joint_position"
    """`joint_position`: target = default_pose + action_scale * action;
    `joint_position_delta`: target += action_scale * action each control step (from the measured
    position at reset); `joint_effort`: actuator input = action_scale * action."""
    dr: DRPresets = field(default_factory=DRPresets)
    payload_body: str = ""
    success_rate_to_solve: float = 0.9
    """Success rate at which the task counts as solved (time-to-solve benchmark, early stop)."""

    # -- model ---------------------------------------------------------------------------------
    def build_model(self) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_path(str(MODELS / self.model_file))

    # -- hooks a task overrides ----------------------------------------------------------------
    def setup(self, env: "BatchedEnv") -> None:
        """Allocate task state (targets, ...) as tensors on `env.device`."""

    @abstractmethod
    def policy_terms(self) -> list[ObsTerm]:
        """Terms the policy sees, in order (noise and delays from DR are applied to them)."""

    def critic_terms(self) -> list[ObsTerm]:
        """Privileged terms; by default the policy terms without noise (DR params are appended)."""
        return self.policy_terms()

    @abstractmethod
    def reset(self, env: "BatchedEnv", ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample task state for envs `ids`; return their initial (qpos, qvel)."""

    def action_to_ctrl(self, env: "BatchedEnv", actions: torch.Tensor) -> torch.Tensor:
        """Map clipped policy actions to actuator controls (default: joint position targets)."""
        return env.default_pose + self.action_scale * actions

    @abstractmethod
    def reward(self, env: "BatchedEnv") -> torch.Tensor:
        """Reward of the control step just taken, [num_envs]."""

    def terminated(self, env: "BatchedEnv") -> torch.Tensor:
        return torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)

    def success(self, env: "BatchedEnv") -> torch.Tensor:
        """Whether each env counts as a success if its episode ended now."""
        return torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)

    def after_step(self, env: "BatchedEnv", running: torch.Tensor) -> None:
        """After rewards, before resets: update commands of the envs still `running` (a bool mask),
        e.g. resample a target mid-episode as Isaac Lab's command terms do."""

    def render_scene(self, env: "BatchedEnv", env_id: int, model: mujoco.MjModel, data) -> None:
        """Update visual-only elements (e.g. a target marker) before rendering env `env_id`."""
