"""Observation terms: each one function of a `RobotState`, used batched in the env and on one state
in the deploy node.

A term is a *factory* in `OBSERVATIONS`: `factory(ctx, **params) -> fn(state) -> [B, d]`, where
`ctx` is the `TermContext` (joint names, limits, frames, commands) and `params` are the JSON values
recorded in `spec.json`, so the node rebuilds exactly the function the env used. A task lists its
terms as `ObsTerm(name, func, params, unit, scale, noise)`.

| func | params | value |
|---|---|---|
| `joint_pos` | `joints` (default: actuated), `relative` (True) | q - default_pose (or q) |
| `joint_vel` | `joints` | qdot |
| `joint_cos_sin` | `joints` | cos(q) then sin(q) |
| `joint_effort` | `joints` | actuator effort |
| `frame_pos` | `frame` | frame position in the base frame |
| `command` | `name` | a task input (e.g. `target_pos`) |
| `frame_to_command` | `frame`, `command` | command - frame position |
| `command_to_joint_pos` | `command`, `joints` | a joint-space command - q |
| `joint_target_offset` | - | held joint target - q (actuated joints) |
| `last_action` | - | the previous policy output |

`register_observation(func, factory)` adds one from user code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from robot_rl.terms.state import RobotState, TermContext, _torch, cat, stack

TermFn = Callable[[RobotState], Any]


def joint_pos(ctx: TermContext, joints=None, relative: bool = True) -> TermFn:
    idx = ctx.joint_index(joints)
    if not relative:
        return lambda s: s.joint_pos[:, idx]
    q0 = ctx.default_pose[idx]
    return lambda s: s.joint_pos[:, idx] - q0


def joint_vel(ctx: TermContext, joints=None) -> TermFn:
    idx = ctx.joint_index(joints)
    return lambda s: s.joint_vel[:, idx]


def joint_cos_sin(ctx: TermContext, joints=None) -> TermFn:
    idx = ctx.joint_index(joints)
    return lambda s: cat([s.xp.cos(s.joint_pos[:, idx]), s.xp.sin(s.joint_pos[:, idx])])


def joint_effort(ctx: TermContext, joints=None) -> TermFn:
    idx = ctx.actuated_index(joints)
    return lambda s: s.joint_effort[:, idx]


def frame_pos(ctx: TermContext, frame: str = "ee") -> TermFn:
    ctx.check_frame(frame)
    return lambda s: s.frames[frame]


def command(ctx: TermContext, name: str) -> TermFn:
    ctx.check_command(name)
    return lambda s: s.commands[name]


def frame_to_command(ctx: TermContext, frame: str = "ee", command: str = "target_pos") -> TermFn:
    ctx.check_frame(frame)
    ctx.check_command(command)
    return lambda s: s.commands[command] - s.frames[frame]


def command_to_joint_pos(ctx: TermContext, command: str, joints=None) -> TermFn:
    """A joint-space command minus the joints' positions (the error to a commanded joint target)."""
    ctx.check_command(command)
    idx = ctx.joint_index(joints)
    return lambda s: s.commands[command] - s.joint_pos[:, idx]


def joint_target_offset(ctx: TermContext) -> TermFn:
    idx = ctx.joint_index(None)
    return lambda s: s.joint_target - s.joint_pos[:, idx]


def last_action(ctx: TermContext) -> TermFn:
    return lambda s: s.last_action


OBSERVATIONS: dict[str, Callable[..., TermFn]] = {
    "joint_pos": joint_pos,
    "joint_vel": joint_vel,
    "joint_cos_sin": joint_cos_sin,
    "joint_effort": joint_effort,
    "frame_pos": frame_pos,
    "command": command,
    "frame_to_command": frame_to_command,
    "command_to_joint_pos": command_to_joint_pos,
    "joint_target_offset": joint_target_offset,
    "last_action": last_action,
}


def register_observation(func: str, factory: Callable[..., TermFn]) -> None:
    OBSERVATIONS[func] = factory


@dataclass(frozen=True)
class ObsTerm:
    """One observation term as a task declares it (and `spec.json` records it)."""

    name: str
    func: str
    params: dict = field(default_factory=dict)
    unit: str = ""
    scale: float = 1.0
    noise: float = 0.0
    """Standard deviation of sensor noise in `unit` (before `scale`), times DR's noise scale."""

    def build(self, ctx: TermContext) -> TermFn:
        if self.func not in OBSERVATIONS:
            raise ValueError(f"observation term {self.name!r} uses unknown function {self.func!r}; "
                             f"known: {', '.join(sorted(OBSERVATIONS))} (register_observation adds one)")
        try:
            return OBSERVATIONS[self.func](ctx, **self.params)
        except TypeError as e:
            raise ValueError(f"observation term {self.name!r}: bad params {self.params} for {self.func!r}: {e}") from None

    def to_dict(self, dim: int) -> dict:
        return {"name": self.name, "func": self.func, "params": dict(self.params), "dim": int(dim),
                "unit": self.unit, "scale": float(self.scale), "noise_std": float(self.noise)}

    @classmethod
    def from_dict(cls, d: dict) -> "ObsTerm":
        return cls(d["name"], d["func"], dict(d.get("params", {})), d.get("unit", ""), float(d.get("scale", 1.0)),
                   float(d.get("noise_std", 0.0)))


class ObservationGroup:
    """Terms evaluated together: `group(state) -> [B, sum of dims]`, each term times its scale."""

    def __init__(self, terms: list[ObsTerm], ctx: TermContext):
        self.terms = list(terms)
        self.fns = [t.build(ctx) for t in self.terms]
        self.dims: list[int] | None = None
        self._scale = None  # one scale per column, as an array like the state's (built on first call)

    def __call__(self, state: RobotState):
        parts = [fn(state) for fn in self.fns]
        if self._scale is None:
            self.dims = [int(p.shape[-1]) for p in parts]
            cols = [float(t.scale) for t, d in zip(self.terms, self.dims) for _ in range(d)]
            x = parts[0]
            self._scale = np.asarray(cols) if isinstance(x, np.ndarray) else _torch().tensor(
                cols, dtype=x.dtype, device=x.device)
            self._unscaled = all(t.scale == 1.0 for t in self.terms)
        out = cat(parts)
        if self._unscaled:
            return out
        if isinstance(out, np.ndarray):
            out *= self._scale
            return out
        return out.mul_(self._scale)

    def describe(self) -> list[dict]:
        if self.dims is None:
            raise RuntimeError("evaluate the group once before describing it (term sizes are not known yet)")
        return [t.to_dict(d) for t, d in zip(self.terms, self.dims)]


__all__ = ["OBSERVATIONS", "ObsTerm", "ObservationGroup", "register_observation", "stack"]
