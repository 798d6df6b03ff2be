"""Robots, declared once: the registry every other layer reads a robot from.

A robot is one `Robot` value in its own package under `models/` (`models/<robot>/robot.py`, installed
as `robot_rl.models.<robot>.robot`), next to its model file. Tasks, the env, export (`spec.json`),
the robot twin, the policy node and the safety node read the robot from here; nothing else names a
robot or its joints.

```
from robot_rl.robots import get_robot, robot_names
robot = get_robot("iiwa14")
robot.joint_names, robot.default_pose, robot.actuator.kp, robot.frames["ee"]
model = robot.load_model()                  # mujoco.MjModel of models/<robot>/<file>.xml
```

What a declaration holds, and what it means on a real robot:

* `model_file`: MJCF under `models/` (built from the vendor URDF by the robot's build script, which
  reads the constants from this declaration, so model and declaration cannot disagree; a test
  checks it). `urdf`: the URDF the MJCF was built from (used by the PyBullet backend).
* `joint_names`: the joints the robot reports on `joint_states` and the policy acts on, in order;
  `passive_joints`: joints that are measured but not actuated (a pendulum's hinge).
* `default_pose`: the home posture (the reset pose of tasks, and the retreat pose of the safety
  layer).
* limits: position limits come from the model; `velocity_limits` and `effort_limits` are the
  robot's rated values.
* `actuator`: the joint controller as it really behaves (`ActuatorModel`). A real robot's
  controller must provide exactly this (see the README, "What the robot's controller must do").
* `frames`: named points on the robot (`ee`, `flange`, `tool`...) -> MJCF site names. Frame
  positions are in the robot base frame (the model's world frame).
* `gripper`: a parallel gripper, if any (`Gripper`).
* `scene`: the name of the robot's default scene (`robot_rl.scenes`: a table and obstacles in the
  base frame), which the twin simulates and the safety layer's CBF filter keeps the arm out of.

This module imports numpy and (lazily) mujoco only: it runs on the robot.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, Mapping

import numpy as np

import robot_rl.models

MODELS = Path(robot_rl.models.__file__).resolve().parent
"""Where robot and scene descriptions live (`models/`, installed as `robot_rl.models`)."""


def _tuple(name: str, value, n: int) -> tuple[float, ...]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise ValueError(f"{name} needs {n} finite values (one per joint) or one scalar, got {value!r}")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class ActuatorModel:
    """The joint controller as it really is (per actuated joint; a scalar is broadcast).

    * `kind="position"`: the robot's own controller runs a PD law on a joint position target,
      `tau = kp (q_target - q) - kd qdot (+ gravity compensation)`, limited to `effort_limit`,
      times `motor_strength` (the fraction of rated torque the motors really deliver).
    * `kind="effort"`: the command is a force/torque, `tau = gear * u` for `u` in [-1, 1].

    `gravity_compensation`: the controller adds the gravity torque of the *nominal* model (as the
    iiwa's and the Panda's controllers do); a payload it does not know about sags the arm.
    `armature` (reflected rotor inertia, kg m^2), `damping` (viscous joint friction, N m s/rad)
    and `frictionloss` (dry joint friction, N m) are properties of the joints that the simulator
    models and the controller does not cancel.
    """

    kind: Literal["position", "effort"] = "position"
    kp: tuple[float, ...] | float = 0.0
    kd: tuple[float, ...] | float = 0.0
    gravity_compensation: bool = False
    armature: tuple[float, ...] | float = 0.0
    damping: tuple[float, ...] | float = 0.0
    frictionloss: tuple[float, ...] | float = 0.0
    motor_strength: float = 1.0
    gear: tuple[float, ...] | float = 1.0

    def per_joint(self, n: int) -> "ActuatorModel":
        """This model with every per-joint field as an `n`-tuple."""
        if self.kind not in ("position", "effort"):
            raise ValueError(f"ActuatorModel.kind must be 'position' or 'effort', got {self.kind!r}")
        return ActuatorModel(kind=self.kind, gravity_compensation=bool(self.gravity_compensation),
                             motor_strength=float(self.motor_strength),
                             **{k: _tuple(f"actuator.{k}", getattr(self, k), n)
                                for k in ("kp", "kd", "armature", "damping", "frictionloss", "gear")})

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


@dataclass(frozen=True)
class Gripper:
    """A parallel gripper: finger joints driven together by one position actuator."""

    joint_names: tuple[str, ...]
    actuator: str
    """MJCF actuator driving the fingers (position target = finger opening per finger joint)."""
    open_position: float
    """Finger joint position when open (m for slide joints)."""
    closed_position: float
    max_force: float
    """Largest grip force (N)."""


@dataclass(frozen=True)
class Robot:
    name: str
    model_file: str
    """MJCF path relative to `models/`."""
    joint_names: tuple[str, ...]
    """Actuated joints, in the order of observations and actions."""
    default_pose: tuple[float, ...]
    velocity_limits: tuple[float, ...] | float
    effort_limits: tuple[float, ...] | float
    actuator: ActuatorModel
    frames: Mapping[str, str] = field(default_factory=dict)
    """Frame name -> MJCF site (`ee` is the point tasks reach with)."""
    passive_joints: tuple[str, ...] = ()
    """Joints that are measured but not actuated (e.g. a pendulum hinge)."""
    gripper: Gripper | None = None
    urdf: str = ""
    """The URDF the MJCF was built from: `pybullet_data:<path>` or a path relative to `models/`."""
    base_body: str = ""
    """The body whose frame is the robot base (frames are reported in it); "" = the world."""
    payload_body: str = ""
    """Where a tool or payload attaches (the last link of an arm)."""
    scene: str = ""
    """The default scene around the robot (`robot_rl.scenes`: table, obstacles); "" = none."""
    description: str = ""

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if n == 0 or len(set(self.joint_names)) != n:
            raise ValueError(f"robot {self.name!r}: joint_names must be distinct and non-empty")
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        object.__setattr__(self, "passive_joints", tuple(self.passive_joints))
        object.__setattr__(self, "default_pose", _tuple(f"robot {self.name}: default_pose", self.default_pose, n))
        object.__setattr__(self, "velocity_limits", _tuple(f"robot {self.name}: velocity_limits",
                                                           self.velocity_limits, n))
        object.__setattr__(self, "effort_limits", _tuple(f"robot {self.name}: effort_limits", self.effort_limits, n))
        object.__setattr__(self, "actuator", self.actuator.per_joint(n))
        object.__setattr__(self, "frames", dict(self.frames))

    # -- model ---------------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return MODELS / self.model_file

    def urdf_path(self) -> Path:
        """The URDF file (for PyBullet); raises if the robot has none."""
        if not self.urdf:
            raise ValueError(f"robot {self.name!r} declares no URDF; the PyBullet backend needs one")
        if self.urdf.startswith("pybullet_data:"):
            import pybullet_data

            return Path(pybullet_data.getDataPath()) / self.urdf.split(":", 1)[1]
        return MODELS / self.urdf

    def load_spec(self):
        """The robot's MJCF as a `mujoco.MjSpec` (tasks add their scene to it)."""
        import mujoco

        return mujoco.MjSpec.from_file(str(self.model_path))

    def load_model(self):
        import mujoco

        return mujoco.MjModel.from_xml_path(str(self.model_path))

    @property
    def state_joints(self) -> tuple[str, ...]:
        """Joints whose position and velocity make up the robot state: actuated, then passive."""
        return self.joint_names + self.passive_joints

    def position_limits(self, model=None) -> np.ndarray:
        """[n, 2] position limits of `joint_names`, from the model (inf where unlimited)."""
        m = model if model is not None else self.load_model()
        out = np.empty((len(self.joint_names), 2))
        for i, name in enumerate(self.joint_names):
            j = m.joint(name)
            out[i] = j.range if m.jnt_limited[j.id] else (-np.inf, np.inf)
        return out

    def describe(self, model=None) -> dict:
        """The robot as `spec.json` records it (JSON-serializable)."""
        lim = self.position_limits(model)
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "passive_joints": list(self.passive_joints),
            "default_pose": list(self.default_pose),
            "position_limits": [[float(a), float(b)] for a, b in lim],
            "velocity_limits": list(self.velocity_limits),
            "effort_limits": list(self.effort_limits),
            "actuator": self.actuator.to_dict(),
            "frames": dict(self.frames),
            "gripper": None if self.gripper is None else {
                "joint_names": list(self.gripper.joint_names), "actuator": self.gripper.actuator,
                "open_position": self.gripper.open_position, "closed_position": self.gripper.closed_position,
                "max_force": self.gripper.max_force},
            "base_body": self.base_body,
            "payload_body": self.payload_body,
            "scene": self.scene,
        }


# -- registry ------------------------------------------------------------------------------------
_BUILTIN = {
    "cartpole": "robot_rl.models.cartpole.robot:CARTPOLE",
    "iiwa14": "robot_rl.models.iiwa14.robot:IIWA14",
    "panda": "robot_rl.models.panda.robot:PANDA",
}
_EXTRA: dict[str, Robot] = {}


def register_robot(robot: Robot) -> None:
    """Add a robot from user code (a test, a user's own package) without editing this file."""
    if not isinstance(robot, Robot):
        raise TypeError(f"register_robot needs a Robot, got {robot!r}")
    _EXTRA[robot.name] = robot


def robot_names() -> list[str]:
    return sorted({*_BUILTIN, *_EXTRA})


def get_robot(name: str) -> Robot:
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in _BUILTIN:
        raise ValueError(f"unknown robot {name!r}; registered robots: {', '.join(robot_names())} "
                         "(declare it in models/<robot>/robot.py and add it to robot_rl.robots._BUILTIN, "
                         "or call robot_rl.robots.register_robot)")
    module, attr = _BUILTIN[name].split(":")
    return getattr(importlib.import_module(module), attr)
