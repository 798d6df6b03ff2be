"""Features of the artifact safety critic (numpy + MuJoCo; runs on the robot and in training).

The critic scores a state and an action, Recovery RL's ``Q_risk(s, a)``: ``s`` is the measured
joint position ``q`` and velocity ``qd``; ``a`` is the command actually sent to the robot, its
position ``q_cmd`` and its *command velocity* ``v`` (rad/s) over one control period (in training:
the env's joint target after the action and its change per control step; on the robot:
:attr:`SafetyFilter.output` and :attr:`SafetyFilter.command_velocity`). While a backup holds or
retreats, these are the backup's own command, so the risk of what the backup does is scored, not
of the command the backup refused (the old critic's ``command_offset`` was the *policy's* command
offset, which stayed large while the backup held, and it fired during ordinary reaches).

Layout (``n`` joints, ``4 n + 4`` features; :func:`critic_feature_names`); an ``_ahead`` feature
is the smallest value over the points ``q_cmd + v * lookahead_s * k``, ``k`` in {0, 1/2, 1} (where
the command is and where it is heading; several points, so a thin obstacle is not stepped over):

1. ``joint_limit_margin`` (n) at ``q``, ``joint_limit_margin_ahead`` (n):
   ``min(q - lower, upper - q) / (0.5 (upper - lower))`` (1 mid-range, 0 at a limit, < 0 beyond);
2. ``self_clearance``, ``self_clearance_ahead``: smallest distance between non-adjacent robot
   geoms, ``scene_clearance``, ``scene_clearance_ahead``: smallest distance between a robot geom
   and the scene's table and obstacles (MuJoCo collision on the robot model plus the scene,
   :class:`robot_rl.safety.collision.SceneCollisionModel`), divided by ``activation`` (m) and
   clipped to [-1, 1];
3. ``joint_speed`` (n): ``qd / velocity``; ``command_velocity`` (n): ``v / velocity``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["CRITIC_FEATURES", "critic_feature_names", "Clearance", "CriticFeatures"]

CRITIC_FEATURES = "robot_rl.critic_features/3"
AHEAD_POINTS = (0.0, 0.5, 1.0)
_GROUPS = (("joint_limit_margin", 1), ("joint_limit_margin_ahead", 1), ("self_clearance", 0),
           ("self_clearance_ahead", 0), ("scene_clearance", 0), ("scene_clearance_ahead", 0),
           ("joint_speed", 1), ("command_velocity", 1))


def critic_feature_names(joint_names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name, per_joint in _GROUPS:
        out += [f"{name}/{j}" for j in joint_names] if per_joint else [name]
    return out


class Clearance:
    """Self and scene clearances (m) of robot configurations (MuJoCo collision with a margin).

    Robot link pairs already touching at ``home`` are ignored (as the CBF and the violation
    monitor do). Distances beyond ``activation`` are reported as ``activation``.
    """

    def __init__(self, robot_xml: str, joint_names: Sequence[str], scene, home: Sequence[float],
                 activation: float = 0.1):
        from .collision import SceneCollisionModel

        if not activation > 0:
            raise ValueError(f"activation must be > 0 m, got {activation}")
        self.activation = float(activation)
        self.col = SceneCollisionModel(robot_xml, list(joint_names), scene, self.activation, self_collision=True)
        self.col.exclude_within(np.asarray(home, dtype=np.float64), 0.0)
        self._scene = np.zeros(self.col.model.ngeom, dtype=bool)
        self._scene[self.col.scene_geoms] = True

    def __call__(self, q) -> tuple[np.ndarray, np.ndarray]:
        """(self clearance [...], scene clearance [...]) for q [..., n]."""
        q = np.asarray(q, dtype=np.float64)
        flat = q.reshape(-1, q.shape[-1])
        s_out = np.full(len(flat), self.activation)
        c_out = np.full(len(flat), self.activation)
        for i, qi in enumerate(flat):
            self.col.set(qi)
            dist, _, _, geoms = self.col.contacts()
            if len(dist):
                g1, g2 = geoms[:, 0], geoms[:, 1]
                scene = self._scene[g1] | self._scene[g2]
                if scene.any():
                    c_out[i] = min(self.activation, float(dist[scene].min()))
                if (~scene).any():
                    s_out[i] = min(self.activation, float(dist[~scene].min()))
        return s_out.reshape(q.shape[:-1]), c_out.reshape(q.shape[:-1])


class CriticFeatures:
    """``features(q, qd, q_cmd, v) -> [..., 4 n + 4]`` float32 (module docstring).

    Args:
        clearance: a :class:`Clearance` of the robot and scene; lower, upper: joint ranges;
        velocity: rad/s per joint (the safety node's command rate limit); lookahead_s: seconds
        the command is projected ahead at its velocity.
    """

    def __init__(self, clearance: Clearance, lower, upper, velocity, lookahead_s: float = 0.1):
        self.clearance = clearance
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.velocity = np.broadcast_to(np.asarray(velocity, dtype=np.float64), self.lower.shape).copy()
        if (self.velocity <= 0).any() or not (self.lower < self.upper).all():
            raise ValueError("CriticFeatures: velocity must be > 0 and lower < upper for every joint")
        self.lookahead_s = float(lookahead_s)
        self.n = len(self.lower)

    def margin(self, q: np.ndarray) -> np.ndarray:
        return np.minimum(q - self.lower, self.upper - q) / (0.5 * (self.upper - self.lower))

    def __call__(self, q, qd, q_cmd, v, clear_now: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        q, qd, q_cmd, v = (np.asarray(a, dtype=np.float64) for a in (q, qd, q_cmd, v))
        for name, a in (("q", q), ("qd", qd), ("q_cmd", q_cmd), ("v", v)):
            if a.shape[-1:] != (self.n,):
                raise ValueError(f"{name} must have shape [..., {self.n}], got {a.shape}")
        s0, c0 = self.clearance(q) if clear_now is None else clear_now
        pts = [q_cmd + v * (self.lookahead_s * k) for k in AHEAD_POINTS]
        s1, c1 = self.clearance(np.stack(pts))
        s1, c1 = s1.min(axis=0), c1.min(axis=0)
        m1 = np.min([self.margin(p) for p in pts], axis=0)
        a = self.clearance.activation
        cl = np.stack([s0, s1, c0, c1], axis=-1) / a
        return np.concatenate([self.margin(q), m1, np.clip(cl, -1.0, 1.0),
                               qd / self.velocity, v / self.velocity], axis=-1).astype(np.float32)
