"""Action terms: the policy output -> joint commands, one implementation for the env (batched torch)
and the deploy node (numpy, one robot).

An action term takes its slice of the policy's action vector (clipped to [-1, 1]) and the
`RobotState`, and returns commands for its joints. Terms with state (the held joint target of a
delta action) keep it in per-env buffers that `allocate` creates in the state's array type and
`reset` re-anchors at the measured joint positions.

| func | params | command |
|---|---|---|
| `joint_position` | `scale`, `joints` | position target = default_pose + scale * a |
| `joint_position_delta` | `scale`, `joints` | target += scale * a each step (from the measured pose), within limits |
| `ee_delta` | `scale`, `frame`, `damping`, `hold_frame`, `hold_axis`, `hold_gain`, `anchor`, `max_lead` | target = q (or the held target) + damped least-squares IK of a frame displacement scale * a (m); with `hold_frame`, the tool axis held |
| `gripper` | - | finger position target: open at a = 1, closed at a = -1 |
| `joint_effort` | `scale`, `joints` | force/torque command = scale * a (normalized actuator input) |

A task lists its terms as `ActTerm(name, func, params)`; `spec.json` records them, and the node
rebuilds the same objects. `register_action(func, cls)` adds one from user code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from robot_rl.terms.state import RobotState, TermContext, cat


def _zeros_like(like, shape):
    if isinstance(like, np.ndarray):
        return np.zeros(shape)
    import torch

    return torch.zeros(shape, dtype=like.dtype, device=like.device)


def _clip(x, lo, hi):
    if isinstance(x, np.ndarray):
        return np.minimum(np.maximum(x, lo), hi)
    import torch

    return torch.minimum(torch.maximum(x, lo), hi)


class ActionTerm:
    func: ClassVar[str]
    mode: ClassVar[str] = "position"
    """`position`: joint position targets; `effort`: normalized force/torque commands."""

    def __init__(self, ctx: TermContext, joints=None, **params):
        self.ctx = ctx
        self.joints: tuple[str, ...] = tuple(ctx.actuated if joints is None else joints)
        self.idx = ctx.actuated_index(self.joints)  # columns among the actuated joints
        self.state_idx = ctx.joint_index(self.joints)
        self.params = params
        self.dim = len(self.joints)
        self.target = None

    def allocate(self, batch: int, like) -> None:
        """Per-env buffers in the array type of `like` (a torch tensor or a numpy array)."""

    def reset(self, state: RobotState, ids=None) -> None:
        """Re-anchor envs `ids` (all for None) at the measured state."""

    def __call__(self, action, state: RobotState):
        raise NotImplementedError

    def describe(self) -> dict:
        return {"func": self.func, "mode": self.mode, "joints": list(self.joints), "dim": self.dim,
                "params": dict(self.params)}


class JointPosition(ActionTerm):
    func = "joint_position"

    def __init__(self, ctx, joints=None, scale: float = 0.5):
        super().__init__(ctx, joints, scale=scale)
        self.scale = float(scale)
        self.q0 = ctx.default_pose[self.state_idx]
        self.lo, self.hi = ctx.lower[self.idx], ctx.upper[self.idx]

    def __call__(self, action, state):
        self.target = _clip(self.q0 + self.scale * action, self.lo, self.hi)
        return self.target


class JointPositionDelta(ActionTerm):
    func = "joint_position_delta"

    def __init__(self, ctx, joints=None, scale: float = 0.05):
        super().__init__(ctx, joints, scale=scale)
        self.scale = float(scale)
        self.lo, self.hi = ctx.lower[self.idx], ctx.upper[self.idx]

    def allocate(self, batch, like):
        self.target = _zeros_like(like, (batch, self.dim))

    def reset(self, state, ids=None):
        q = state.joint_pos[:, self.state_idx]
        if ids is None:
            self.target[:] = _clip(q, self.lo, self.hi)
        else:
            self.target[ids] = _clip(q[ids], self.lo, self.hi)

    def __call__(self, action, state):
        self.target = _clip(self.target + self.scale * action, self.lo, self.hi)
        return self.target


class EndEffectorDelta(ActionTerm):
    """Differential IK (damped least squares) of a desired frame displacement `scale * a` (m).

    Position-only IK (the default) leaves the hand's orientation free: the minimum-norm joint step
    that moves one point also turns the hand, and a held tool tilts over a few centimetres of
    travel. `hold_frame` (a second frame on the same link, e.g. `flange` above `ee`) holds the
    orientation of the axis between the two frames: the IK solves for both points at once (a
    [6, n] Jacobian), the held frame moving by the same displacement plus a correction
    `hold_gain * (|r| * hold_axis - r)` of its offset `r` from `frame`, which turns that axis back
    to `hold_axis` (world frame; (0, 0, 1): the hold frame straight above `frame`, a tool pointing
    down). Rotation about that axis stays free (not commanded, not held).

    `anchor`: where the joint step starts. `measured` (default): target = q + dq, so a zero action
    commands the measured pose, and a constant torque the controller does not compensate (a
    payload, a gravity-model error) moves the arm a little every step. `held`: target += dq from
    the held target (re-anchored at the measured pose at reset, as `joint_position_delta`), kept
    within `max_lead` rad of the measured pose on each joint (bounding the force the servo builds
    up against an obstacle): the frame goes where it is commanded despite such torques."""

    func = "ee_delta"

    def __init__(self, ctx, joints=None, scale: float = 0.02, frame: str = "ee", damping: float = 0.05,
                 hold_frame: str | None = None, hold_axis=(0.0, 0.0, 1.0), hold_gain: float = 0.5,
                 anchor: str = "measured", max_lead: float = 0.05):
        params = dict(scale=scale, frame=frame, damping=damping)
        if hold_frame is not None:
            params.update(hold_frame=hold_frame, hold_axis=[float(v) for v in hold_axis], hold_gain=float(hold_gain))
        if anchor not in ("measured", "held"):
            raise ValueError(f"ee_delta: anchor must be 'measured' or 'held', got {anchor!r}")
        if anchor == "held":
            if not max_lead > 0:
                raise ValueError(f"ee_delta: max_lead must be > 0 rad, got {max_lead!r}")
            params.update(anchor=anchor, max_lead=float(max_lead))
        self.held, self.max_lead = anchor == "held", float(max_lead)
        super().__init__(ctx, joints, **params)
        ctx.check_frame(frame)
        self.scale, self.frame, self.damping = float(scale), frame, float(damping)
        self.hold_frame = hold_frame
        if hold_frame is not None:
            ctx.check_frame(hold_frame)
            if hold_frame == frame:
                raise ValueError(f"ee_delta: hold_frame must be another frame than frame ({frame!r})")
            axis = np.asarray(hold_axis, dtype=np.float64)
            if axis.shape != (3,) or not np.isfinite(axis).all() or np.linalg.norm(axis) < 1e-9:
                raise ValueError(f"ee_delta: hold_axis must be a non-zero 3-vector, got {hold_axis!r}")
            self.axis = axis / np.linalg.norm(axis)
            self.gain = float(hold_gain)
        self.dim_joints = len(self.joints)
        self.dim = 3
        self.lo, self.hi = ctx.lower[self.idx], ctx.upper[self.idx]

    def __call__(self, action, state):
        xp = state.xp
        dx = self.scale * action  # [B, 3]
        jac = state.jacobians[self.frame][:, :, self.idx]  # [B, 3, n]
        if self.hold_frame is not None:
            r = state.frames[self.hold_frame] - state.frames[self.frame]  # [B, 3]
            length = xp.linalg.norm(r, 2, -1)[:, None]
            axis = self.axis if xp is np else xp.as_tensor(self.axis, dtype=r.dtype, device=r.device)
            dx = cat([dx, dx + self.gain * (length * axis - r)])
            jac = cat([jac.swapaxes(1, 2), state.jacobians[self.hold_frame][:, :, self.idx].swapaxes(1, 2)]).swapaxes(1, 2)
        jt = jac.swapaxes(1, 2)
        m = jac.shape[1]
        eye = xp.eye(m, dtype=jac.dtype) if xp is np else xp.eye(m, dtype=jac.dtype, device=jac.device)
        dq = (jt @ xp.linalg.solve(jac @ jt + self.damping ** 2 * eye, dx[:, :, None]))[:, :, 0]
        q = state.joint_pos[:, self.state_idx]
        if self.held:
            self.target = _clip(_clip(self.target + dq, q - self.max_lead, q + self.max_lead), self.lo, self.hi)
        else:
            self.target = _clip(q + dq, self.lo, self.hi)
        return self.target

    def allocate(self, batch, like):
        if self.held:
            self.target = _zeros_like(like, (batch, self.dim_joints))

    def reset(self, state, ids=None):
        if not self.held:
            return
        q = _clip(state.joint_pos[:, self.state_idx], self.lo, self.hi)
        if ids is None:
            self.target[:] = q
        else:
            self.target[ids] = q[ids]


class GripperAction(ActionTerm):
    """One value for a parallel gripper: every finger joint gets the same position target."""

    func = "gripper"

    def __init__(self, ctx, joints=None):
        g = ctx.gripper
        if not g:
            raise ValueError("this robot has no gripper; remove the gripper action term")
        self.ctx = ctx
        self.joints = tuple(g["joint_names"])
        self.idx = self.state_idx = None
        self.params = {}
        self.dim = 1
        self.open, self.closed = float(g["open_position"]), float(g["closed_position"])
        self.target = None

    def __call__(self, action, state):
        width = self.closed + (action[:, :1] + 1.0) * (0.5 * (self.open - self.closed))
        self.target = cat([width] * len(self.joints))
        return self.target


class JointEffort(ActionTerm):
    func = "joint_effort"
    mode = "effort"

    def __init__(self, ctx, joints=None, scale: float = 1.0):
        super().__init__(ctx, joints, scale=scale)
        self.scale = float(scale)

    def __call__(self, action, state):
        return self.scale * action


ACTIONS: dict[str, type[ActionTerm]] = {
    c.func: c for c in (JointPosition, JointPositionDelta, EndEffectorDelta, GripperAction, JointEffort)
}


def register_action(func: str, cls: type[ActionTerm]) -> None:
    ACTIONS[func] = cls


@dataclass(frozen=True)
class ActTerm:
    """One action term as a task declares it (and `spec.json` records it)."""

    name: str
    func: str
    params: dict = field(default_factory=dict)

    def build(self, ctx: TermContext) -> ActionTerm:
        if self.func not in ACTIONS:
            raise ValueError(f"action term {self.name!r} uses unknown function {self.func!r}; "
                             f"known: {', '.join(sorted(ACTIONS))} (register_action adds one)")
        try:
            return ACTIONS[self.func](ctx, **self.params)
        except TypeError as e:
            raise ValueError(f"action term {self.name!r}: bad params {self.params} for {self.func!r}: {e}") from None


class ActionGroup:
    """The task's action terms in order: splits the policy output, applies each term.

    `group(action, state)` returns one command array per term (in term order); `joint_target`
    [B, A] holds the position targets over the actuated joints (for the `joint_target_offset`
    observation; NaN for joints no position term commands)."""

    def __init__(self, terms: list[ActTerm], ctx: TermContext):
        self.specs = list(terms)
        self.terms = [t.build(ctx) for t in self.specs]
        self.dim = sum(t.dim for t in self.terms)
        self.ctx = ctx
        self._slices = []
        i = 0
        for t in self.terms:
            self._slices.append(slice(i, i + t.dim))
            i += t.dim
        self._arm = [t for t in self.terms if t.idx is not None and t.mode == "position"]
        n = len(ctx.actuated)
        self._full = (len(self._arm) == 1 and self._arm[0].idx == slice(0, n))
        self._nan = None

    @property
    def modes(self) -> set[str]:
        return {t.mode for t in self.terms}

    def allocate(self, batch: int, like) -> None:
        for t in self.terms:
            t.allocate(batch, like)
        self._nan = _zeros_like(like, (batch, len(self.ctx.actuated))) * float("nan")

    @property
    def joint_target(self):
        """[B, A] held position targets of the actuated joints (NaN where none is held)."""
        if self._full and self._arm[0].target is not None:
            return self._arm[0].target
        out = self._nan * 1.0
        for t in self._arm:
            if t.target is not None:
                out[:, t.idx] = t.target
        return out

    def reset(self, state: RobotState, ids=None) -> None:
        for t in self.terms:
            t.reset(state, ids)

    def __call__(self, action, state: RobotState) -> list[Any]:
        return [t(action[:, sl], state) for t, sl in zip(self.terms, self._slices)]

    def describe(self) -> list[dict]:
        return [{"name": s.name, **t.describe()} for s, t in zip(self.specs, self.terms)]


__all__ = ["ACTIONS", "ActTerm", "ActionGroup", "ActionTerm", "register_action"]
