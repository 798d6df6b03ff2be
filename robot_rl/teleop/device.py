"""The teleoperator contract: a device produces commands for the robot and a clutch.

A device is polled by whoever runs it (the `teleop` node, a test, the simulated operator's loop)
and returns the newest `TeleopSample`, or None when it has nothing newer. The arbiter
(`robot_rl.teleop.arbiter`) decides who commands the robot: the person while the clutch is held
(hold to intervene), the policy otherwise, with a bumpless handover both ways. A sample older
than the arbiter's timeout counts as a silent device: the robot holds.

Modes (what `values` means; each device declares one, with its scale):

| mode | values | units |
|---|---|---|
| `ee_twist` | [vx, vy, vz, wx, wy, wz] of the end-effector frame, in the robot base frame | m/s, rad/s |
| `joint_velocity` | one velocity per robot joint, in the robot's joint order | rad/s |
| `joint_position` | one absolute position per robot joint (a leader arm) | rad |

Devices scale their raw input by their declared `DeviceScale` before they report it, so every
sample is already in physical units and bounded by that scale; `check_sample` enforces it.
One-shot `events` carry the operator's buttons: `success`, `failure` (episode labels), `reset`.

Devices register their config dataclass (LeRobot-style registry) with `register_device`; `make_device`
builds one from its config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

MODES = ("ee_twist", "joint_velocity", "joint_position")
EVENTS = frozenset({"success", "failure", "reset"})


class TeleopError(ValueError):
    """Bad input from or for a teleop device: the message names the problem and the fix."""


@dataclass(frozen=True)
class DeviceScale:
    """What a full-scale input means, declared by each device (and shown to the operator)."""

    linear_m_s: float = 0.10
    angular_rad_s: float = 0.5
    joint_rad_s: float = 0.5


@dataclass(frozen=True)
class TeleopSample:
    stamp: float
    """Monotonic time (s) at which the device produced this input."""
    mode: str
    values: np.ndarray
    clutch: bool
    """True while the person holds the clutch (intervenes)."""
    events: frozenset = field(default_factory=frozenset)
    gripper: float | None = None
    """0 open .. 1 closed; None: leave the gripper as it is."""
    device: str = ""
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"stamp": self.stamp, "mode": self.mode, "values": [float(v) for v in self.values],
                "clutch": bool(self.clutch), "events": sorted(self.events), "gripper": self.gripper,
                "device": self.device, "seq": int(self.seq)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TeleopSample":
        if not isinstance(d, dict):
            raise TeleopError(f"teleop sample must be a JSON object, got {type(d).__name__}")
        try:
            return cls(stamp=float(d["stamp"]), mode=str(d["mode"]),
                       values=np.asarray(d["values"], dtype=np.float64).reshape(-1),
                       clutch=bool(d["clutch"]), events=frozenset(d.get("events", ())),
                       gripper=None if d.get("gripper") is None else float(d["gripper"]),
                       device=str(d.get("device", "")), seq=int(d.get("seq", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise TeleopError(f"teleop sample is malformed ({e!r}); it needs stamp, mode, values, clutch") from e


def check_sample(sample: TeleopSample, scale: DeviceScale, n_joints: int) -> TeleopSample:
    """Refuse a sample the arbiter must not act on (one line naming the problem); return it."""
    if sample.mode not in MODES:
        raise TeleopError(f"teleop mode {sample.mode!r} is unknown; use one of {', '.join(MODES)}")
    v = np.asarray(sample.values, dtype=np.float64)
    want = 6 if sample.mode == "ee_twist" else n_joints
    if v.shape != (want,):
        raise TeleopError(f"teleop {sample.mode} needs {want} values, got {v.size}")
    if not np.all(np.isfinite(v)) or not math.isfinite(sample.stamp):
        raise TeleopError(f"teleop sample from {sample.device or 'device'} has NaN/inf values; dropped")
    if sample.mode == "ee_twist":
        lin, ang = np.linalg.norm(v[:3]), np.linalg.norm(v[3:])
        if lin > scale.linear_m_s * (1 + 1e-6) or ang > scale.angular_rad_s * (1 + 1e-6):
            raise TeleopError(f"teleop twist {lin:.3f} m/s, {ang:.3f} rad/s exceeds the device's declared "
                              f"scale ({scale.linear_m_s} m/s, {scale.angular_rad_s} rad/s)")
    elif sample.mode == "joint_velocity" and np.max(np.abs(v)) > scale.joint_rad_s * (1 + 1e-6):
        raise TeleopError(f"teleop joint velocity {np.max(np.abs(v)):.3f} rad/s exceeds the device's declared "
                          f"scale ({scale.joint_rad_s} rad/s)")
    unknown = set(sample.events) - EVENTS
    if unknown:
        raise TeleopError(f"teleop events {sorted(unknown)} are unknown; use {sorted(EVENTS)}")
    if sample.gripper is not None and not (0.0 <= sample.gripper <= 1.0):
        raise TeleopError(f"teleop gripper {sample.gripper} is outside [0, 1]")
    return sample


class Teleoperator(Protocol):
    """What every device implements."""

    name: str
    mode: str
    scale: DeviceScale

    def poll(self, now: float) -> TeleopSample | None:
        """The newest input since the last poll (None: nothing new). Never blocks."""

    def show_state(self, state: dict[str, Any]) -> None:
        """Live robot and arbiter state for the operator (devices without a display ignore it)."""

    def close(self) -> None:
        """Release the device."""


@dataclass
class DeviceConfig:
    """Base of every device's config (subclass it and `register_device` the subclass)."""

    scale: DeviceScale = field(default_factory=DeviceScale)


_DEVICES: dict[str, tuple[type, Callable[[Any], Teleoperator]]] = {}


def register_device(name: str, config_cls: type, factory: Callable[[Any], Teleoperator]) -> None:
    _DEVICES[name] = (config_cls, factory)


_BUILTIN = ("keyboard", "gamepad", "spacemouse", "leader_arm", "web")
"""Modules of `robot_rl.teleop` that register the built-in devices (imported on first lookup)."""


def _load_builtin() -> None:
    import importlib

    for m in _BUILTIN:
        importlib.import_module(f"robot_rl.teleop.{m}")


def device_names() -> list[str]:
    _load_builtin()
    return sorted(_DEVICES)


def device_config(name: str, **overrides: Any):
    _load_builtin()
    if name not in _DEVICES:
        raise TeleopError(f"teleop device {name!r} is unknown; known: {', '.join(device_names()) or 'none'}")
    return _DEVICES[name][0](**overrides)


def make_device(name: str, cfg=None) -> Teleoperator:
    _load_builtin()
    if name not in _DEVICES:
        raise TeleopError(f"teleop device {name!r} is unknown; known: {', '.join(device_names()) or 'none'}")
    cls, factory = _DEVICES[name]
    return factory(cfg if cfg is not None else cls())
