"""Learned safety critic: risk features (numpy + MuJoCo kinematics) and an ONNX risk model
(onnxruntime).

The critic maps a feature vector of the robot's current situation to a risk in [0, 1] (trained in
simulation from constraint violations); :meth:`robot_rl.safety.SafetyFilter.set_risk` turns a
high risk into a hand-over to the backup behaviour. Training and deployment must compute the
*same* features, so both call :func:`risk_features` (batched over leading axes) with a
:class:`robot_rl.kinematics.RobotKinematics` of the same robot model (an artifact's ``robot.xml``).

Feature layout (``RISK_FEATURE_GROUPS``; ``n`` = number of joints, total ``3 n + 7``), in order:

1. ``joint_limit_margin`` (n): ``min(q - lower, upper - q) / (0.5 (upper - lower))`` per joint:
   1 at mid-range, 0 at a limit, negative beyond it.
2. ``self_collision`` (1): smallest signed distance between geoms of non-adjacent links
   (:meth:`RobotKinematics.self_collision_distance`, MuJoCo ``mj_geomDistance``) divided by
   ``collision_scale`` and clipped to [-1, 1]; 1 when the model has no such pair.
3. ``workspace_margin`` (6): end-effector distance to the box faces divided by the box half extent
   on that axis: ``(ee - lo) / h`` for x, y, z then ``(hi - ee) / h`` for x, y, z (1 at the centre,
   0 on a face, negative outside); all 1 when no workspace box is configured.
4. ``joint_speed`` (n): ``qd / velocity_limit``.
5. ``command_offset`` (n): ``(q_cmd - q) / (velocity_limit * command_horizon_s)`` clipped to
   [-10, 10]: how many horizons at full speed the command lies ahead.

An exported critic carries the full list (:func:`risk_feature_names`) as JSON in the ONNX metadata
key ``RISK_METADATA_KEY``; :class:`SafetyCritic` refuses a model whose list differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

RISK_FEATURE_GROUPS: tuple[tuple[str, str], ...] = (
    ("joint_limit_margin", "per_joint"),
    ("self_collision", "1"),
    ("workspace_margin", "6"),
    ("joint_speed", "per_joint"),
    ("command_offset", "per_joint"),
)
RISK_METADATA_KEY = "robot_rl.risk_features"
_WS_AXES = ("lo_x", "lo_y", "lo_z", "hi_x", "hi_y", "hi_z")


def risk_feature_names(joint_names: Sequence[str]) -> list[str]:
    """Names of the features in order, e.g. ``joint_limit_margin/<joint>``, ``self_collision``,
    ``workspace_margin/lo_x`` ..."""
    names: list[str] = []
    for group, count in RISK_FEATURE_GROUPS:
        if count == "per_joint":
            names += [f"{group}/{j}" for j in joint_names]
        elif group == "workspace_margin":
            names += [f"{group}/{a}" for a in _WS_AXES]
        else:
            names.append(group)
    return names


@dataclass
class RiskLimits:
    """Normalisation constants for :func:`risk_features` (per joint in the kinematics' order)."""

    lower: Any
    upper: Any
    velocity: Any
    workspace_lower: Any = None
    workspace_upper: Any = None
    ee_site: str = "ee"
    collision_scale: float = 0.1  # m: self-collision distance that maps to feature value 1
    command_horizon_s: float = 0.1

    def __post_init__(self) -> None:
        self.lower = np.asarray(self.lower, dtype=np.float64)
        self.upper = np.asarray(self.upper, dtype=np.float64)
        self.velocity = np.asarray(self.velocity, dtype=np.float64)
        n = self.lower.shape[-1] if self.lower.ndim else 0
        if self.lower.shape != (n,) or self.upper.shape != (n,) or n == 0:
            raise ValueError("RiskLimits.lower/upper must be 1-D arrays with one value per joint")
        if self.velocity.ndim == 0:
            self.velocity = np.full(n, float(self.velocity))
        if self.velocity.shape != (n,) or (self.velocity <= 0).any():
            raise ValueError("RiskLimits.velocity must be positive, one value per joint")
        if not (np.isfinite(self.lower).all() and np.isfinite(self.upper).all()) or (self.lower >= self.upper).any():
            raise ValueError("RiskLimits: finite lower < upper required for every joint")
        if (self.workspace_lower is None) != (self.workspace_upper is None):
            raise ValueError("RiskLimits: give both workspace_lower and workspace_upper, or neither")
        if self.workspace_lower is not None:
            self.workspace_lower = np.asarray(self.workspace_lower, dtype=np.float64).reshape(3)
            self.workspace_upper = np.asarray(self.workspace_upper, dtype=np.float64).reshape(3)
            if (self.workspace_lower >= self.workspace_upper).any():
                raise ValueError("RiskLimits: workspace_lower must be < workspace_upper")
        if not (self.collision_scale > 0 and self.command_horizon_s > 0):
            raise ValueError("RiskLimits.collision_scale and command_horizon_s must be > 0")

    @classmethod
    def from_config(cls, config: Any, **kwargs) -> "RiskLimits":
        """Limits from a :class:`robot_rl.safety.SafetyConfig` (hard position limits, velocity
        limits, workspace box, ee site)."""
        return cls(
            lower=np.array(config.lower),
            upper=np.array(config.upper),
            velocity=np.array(config.velocity),
            workspace_lower=None if config.ws_lower is None else np.array(config.ws_lower),
            workspace_upper=None if config.ws_upper is None else np.array(config.ws_upper),
            ee_site=config.ee_site,
            **kwargs,
        )


def risk_features(kin: Any, q, qd, q_cmd, limits: RiskLimits, self_collision=None) -> np.ndarray:
    """Risk features [..., 3 n + 7] (float32) for joint positions ``q``, velocities ``qd`` and
    commanded positions ``q_cmd`` (each [..., n], joint order = ``kin.joint_names``).

    ``kin`` is a :class:`robot_rl.kinematics.RobotKinematics` (not thread-safe: one per thread);
    layout in the module docstring. ``self_collision``: optional, ``kin.self_collision_distance(q)``
    when the caller already has it (training computes it for its labels; MuJoCo evaluates one
    configuration at a time, so this halves its cost).
    """
    q = np.asarray(q, dtype=np.float64)
    qd = np.asarray(qd, dtype=np.float64)
    q_cmd = np.asarray(q_cmd, dtype=np.float64)
    n = limits.lower.shape[0]
    if kin.nq != n:
        raise ValueError(f"kinematics has {kin.nq} joints but the limits describe {n}")
    for name, a in (("q", q), ("qd", qd), ("q_cmd", q_cmd)):
        if a.ndim == 0 or a.shape[-1] != n:
            raise ValueError(f"{name} must have shape [..., {n}], got {a.shape}")
    batch = np.broadcast_shapes(q.shape[:-1], qd.shape[:-1], q_cmd.shape[:-1])
    q = np.broadcast_to(q, (*batch, n))
    half = 0.5 * (limits.upper - limits.lower)
    margin = np.minimum(q - limits.lower, limits.upper - q) / half

    q_flat = q.reshape(-1, n)
    if self_collision is None:
        self_collision = kin.self_collision_distance(q_flat)
    else:
        self_collision = np.broadcast_to(np.asarray(self_collision, dtype=np.float64), batch).reshape(-1)
    selfc = self_collision / limits.collision_scale
    selfc = np.clip(np.where(np.isfinite(selfc), selfc, 1.0), -1.0, 1.0).reshape(*batch, 1)

    if limits.workspace_lower is None:
        ws = np.ones((*batch, 6))
    else:
        ee = kin.fk(q_flat)["sites"][limits.ee_site].reshape(*batch, 3)
        h = 0.5 * (limits.workspace_upper - limits.workspace_lower)
        ws = np.concatenate([(ee - limits.workspace_lower) / h, (limits.workspace_upper - ee) / h], axis=-1)

    speed = np.broadcast_to(qd / limits.velocity, (*batch, n))
    offset = np.clip((q_cmd - q) / (limits.velocity * limits.command_horizon_s), -10.0, 10.0)
    offset = np.broadcast_to(offset, (*batch, n))
    return np.concatenate([margin, selfc, ws, speed, offset], axis=-1).astype(np.float32)


class SafetyCritic:
    """ONNX risk model run with onnxruntime (no torch).

    The model takes one float32 input [batch, F] (F = ``3 n + 7`` =
    ``len(risk_feature_names(joint_names))``) and returns the risk [batch] or [batch, 1] in [0, 1]
    as its first output. Outputs are clipped to [0, 1] and NaN/Inf become 1 (fail closed).

    Args:
        path: the ``.onnx`` file (or its bytes).
        kin, limits: optional; needed for :meth:`__call__` (features from q, qd, q_cmd) and to
            check the model's input width and feature names against this robot. ``kin`` is a
            :class:`robot_rl.kinematics.RobotKinematics` of the robot model in the joint order
            of ``limits``.
        threads: onnxruntime intra-op threads (1 keeps latency low and steady).
    """

    def __init__(self, path: Any, kin: Any = None, limits: RiskLimits | None = None, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            path if isinstance(path, (bytes, bytearray)) else str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"risk model must have exactly one input (features), has {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        self.output_name = self.session.get_outputs()[0].name
        width = inputs[0].shape[-1] if inputs[0].shape else None
        self.num_features = width if isinstance(width, int) else None
        self.kin = kin
        self.limits = limits
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        self.feature_names: list[str] | None = json.loads(meta[RISK_METADATA_KEY]) if RISK_METADATA_KEY in meta else None
        if kin is not None:
            expected = risk_feature_names(kin.joint_names)
            if self.num_features is not None and self.num_features != len(expected):
                raise ValueError(
                    f"risk model expects {self.num_features} features but this robot gives {len(expected)} "
                    f"({RISK_FEATURE_GROUPS}); retrain or export the critic for these joints"
                )
            if self.feature_names is not None and self.feature_names != expected:
                raise ValueError(
                    "risk model was trained on different features; model: "
                    f"{self.feature_names}, this robot: {expected}"
                )
            if self.num_features is None:
                self.num_features = len(expected)

    def predict(self, features) -> np.ndarray:
        """Risk [...] for features [..., F]."""
        x = np.asarray(features, dtype=np.float32)
        batch = x.shape[:-1]
        x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        if self.num_features is not None and x2.shape[-1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features, got {x2.shape[-1]}")
        y = np.asarray(self.session.run([self.output_name], {self.input_name: x2})[0], dtype=np.float64)
        y = y.reshape(x2.shape[0], -1)[:, 0]
        y = np.where(np.isfinite(y), np.clip(y, 0.0, 1.0), 1.0)
        return y.reshape(batch)

    def __call__(self, q, qd, q_cmd) -> float:
        """Risk (float) of one situation, from joint positions, velocities and the command."""
        if self.kin is None or self.limits is None:
            raise ValueError("SafetyCritic(path, kin=..., limits=...) is needed to compute features")
        return float(self.predict(risk_features(self.kin, q, qd, q_cmd, self.limits)))
