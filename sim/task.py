"""What a task declares: its robot, scene, commands, observation and action terms, rewards, resets,
DR ranges and training defaults.

A task is one file in `sim/tasks/`. The robot comes from the registry (`robot_rl.robots`); the
task adds its scene to the robot's model (`scene`), names its observation and action terms
(`robot_rl.terms`: functions of the robot state shared with the deploy node) and its commands
(task inputs such as a target position, which a deployed robot receives on a topic). Rewards,
resets and success use only batched torch operations on `env` tensors (never a Python loop over
envs), so the same task runs on every backend. See the README section "Adding a task".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import mujoco
import torch

from robot_rl.robots import Robot, get_robot
from robot_rl.sim.randomization import DRPresets
from robot_rl.terms import ActTerm, ObsTerm

if TYPE_CHECKING:
    from robot_rl.sim.env import BatchedEnv

__all__ = ["ActTerm", "Command", "Expert", "ObsTerm", "Task"]


class Expert(Protocol):
    """What `Task.expert` returns: a batched demonstrator run by `robot-rl record`."""

    def reset(self, env: "BatchedEnv", ids: torch.Tensor) -> None: ...

    def act(self, env: "BatchedEnv", obs: dict[str, torch.Tensor]) -> torch.Tensor: ...


@dataclass(frozen=True)
class Command:
    """A task input: in the env the task sets it; on a robot the policy node reads it from `topic`
    (relative, resolved in the node's namespace) as `msg`'s `field`."""

    dim: int
    topic: str
    msg: str = "geometry_msgs/PoseStamped"
    field: str = "pose.position"
    unit: str = ""

    def to_dict(self) -> dict:
        return {"dim": self.dim, "topic": self.topic, "msg": self.msg, "field": self.field, "unit": self.unit}


@dataclass
class Task(ABC):
    """Base class: subclasses fill the fields and override the hooks below."""

    name: str
    robot_name: str
    """The robot, by its registry name (`robot_rl.robots`)."""
    decimation: int
    """Physics steps per control step."""
    episode_length_s: float
    dr: DRPresets = field(default_factory=DRPresets)
    success_rate_to_solve: float = 0.9
    """Success rate at which the task counts as solved (time-to-solve benchmark, early stop)."""
    frames: tuple[str, ...] = ()
    """Extra sites of the task's scene whose positions the task reads (`env.frame(site)`)."""
    toleranced_geoms: tuple[str, ...] = ()
    """Geoms of the task's scene (spheres, capsules, cylinders) whose radius the DR term
    `part_size_delta_m` changes per physics variant (a part's size tolerance). Only a task that
    names some has that term's column in its DR values and critic group."""
    safety_scene: str = "default"
    """The scene (`robot_rl.scenes`: table, obstacles) the twin simulates and the deployed safety
    layer keeps clear: "default" = the robot's (`Robot.scene`), a registered name, or "none"."""
    train_defaults: dict[str, Any] = field(default_factory=dict)
    """Training defaults of this task as dotted config paths, e.g. `{"env.num_envs": 256,
    "ppo.entropy_coef": 0.0}` (what `robot-rl train <task>` starts from)."""

    @property
    def robot(self) -> Robot:
        return get_robot(self.robot_name)

    def scene_name(self) -> str:
        """The safety scene's name ("" = none): `safety_scene`, or the robot's by default."""
        name = self.robot.scene if self.safety_scene == "default" else self.safety_scene
        return "" if name in ("", "none") else name

    # -- model ---------------------------------------------------------------------------------
    def scene(self, spec: mujoco.MjSpec) -> None:
        """Add the task's objects and markers to the robot's model (`robot_rl.sim.model`)."""

    # -- terms ---------------------------------------------------------------------------------
    def commands(self) -> dict[str, Command]:
        """Task inputs by name (the env's `env.commands[name]` holds them, `[N, dim]`)."""
        return {}

    @abstractmethod
    def observations(self) -> list[ObsTerm]:
        """Terms the policy sees, in order (noise and delays from DR are applied to them)."""

    def critic_observations(self) -> list[ObsTerm]:
        """Privileged terms; by default the policy terms without noise (DR params are appended)."""
        return self.observations()

    @abstractmethod
    def actions(self) -> list[ActTerm]:
        """Action terms, in the order of the policy's action vector."""

    # -- episode hooks -------------------------------------------------------------------------
    def setup(self, env: "BatchedEnv") -> None:
        """Allocate task state as tensors on `env.device`; fill `env.commands`."""

    @abstractmethod
    def reset(self, env: "BatchedEnv", ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample task state for envs `ids`; return their initial full (qpos [k, nq], qvel [k, nv])."""

    @abstractmethod
    def reward(self, env: "BatchedEnv") -> torch.Tensor:
        """Reward of the control step just taken, [num_envs]. Called once per control step (after
        the physics, before finished envs reset), so it may keep state between steps, e.g. the
        last value of a shaping potential (panda-peg-insert), reset in `reset`."""

    def terminated(self, env: "BatchedEnv") -> torch.Tensor:
        return torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)

    def success(self, env: "BatchedEnv") -> torch.Tensor:
        """Whether each env counts as a success if its episode ended now."""
        return torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)

    def after_step(self, env: "BatchedEnv", running: torch.Tensor) -> None:
        """After rewards, before resets: update commands of the envs still `running` (a bool mask),
        e.g. resample a target mid-episode as Isaac Lab's command terms do."""

    # -- demonstrations ------------------------------------------------------------------------
    def expert(self, env: "BatchedEnv", seed: int) -> "Expert":
        """A scripted demonstrator for `robot-rl record`: an object with `reset(env, ids)` (new
        episodes start in envs `ids`) and `act(env, obs) -> [num_envs, A]` actions in [-1, 1]
        (`obs` is the env's observation dict; the expert may read privileged env state). `seed`
        makes its imperfection (noise, hesitation) reproducible. Tasks without one raise."""
        raise ValueError(f"task {self.name} has no scripted expert; record with --expert ARTIFACT_DIR "
                         "(an exported policy) instead")

    def markers(self, env: "BatchedEnv", env_id: int) -> dict[str, Any]:
        """Visual-only sites to move before rendering env `env_id` (site name -> position)."""
        return {}
