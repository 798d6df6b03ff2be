"""Sampled DR physics parameters -> simulator model fields (backend-neutral).

`model_fields(nominal, params, payload_body)` turns the per-variant DR values (`mass_scale`,
`payload_kg`, `friction_scale`, `damping_scale`, `armature_scale`, `kp_scale`, `kd_scale`,
`motor_strength`; see `randomization.py`) into values of the `PHYSICS_FIELDS` of the backend
contract, from the nominal model. The robot's own gravity compensation knows the nominal masses
only: a heavier link or a payload is not compensated (the arm sags as a real one would).
"""

from __future__ import annotations

import numpy as np

from robot_rl.sim.randomization import PHYSICS_PARAMS

FIELDS = ("body_mass", "body_inertia", "body_gravcomp", "geom_friction", "dof_frictionloss", "dof_damping",
          "dof_armature", "actuator_gainprm", "actuator_biasprm")
"""The fields `model_fields` writes."""


def model_fields(nominal: dict[str, np.ndarray], values: np.ndarray, payload_body: int) -> dict[str, np.ndarray]:
    """`values` [k, len(PHYSICS_PARAMS)] -> {field: [k, *field shape]} for k variants."""
    p = {name: values[:, i : i + 1] for i, name in enumerate(PHYSICS_PARAMS)}
    k = values.shape[0]
    mass = nominal["body_mass"][None] * p["mass_scale"]
    inertia = nominal["body_inertia"][None] * p["mass_scale"][:, :, None]
    if payload_body >= 0:
        mass[:, payload_body] += p["payload_kg"][:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mass > 0, nominal["body_mass"][None] / mass, 0.0)
    gravcomp = nominal["body_gravcomp"][None] * ratio
    gain = np.repeat(nominal["actuator_gainprm"][None], k, 0)
    bias = np.repeat(nominal["actuator_biasprm"][None], k, 0)
    strength = p["motor_strength"]
    gain[:, :, 0] *= p["kp_scale"] * strength
    bias[:, :, 1] *= p["kp_scale"] * strength
    bias[:, :, 2] *= p["kd_scale"] * strength
    friction = np.repeat(nominal["geom_friction"][None], k, 0)
    friction[:, :, 0] *= p["friction_scale"]
    return {
        "body_mass": mass,
        "body_inertia": inertia,
        "body_gravcomp": gravcomp,
        "geom_friction": friction,
        "dof_frictionloss": nominal["dof_frictionloss"][None] * p["friction_scale"],
        "dof_damping": nominal["dof_damping"][None] * p["damping_scale"],
        "dof_armature": nominal["dof_armature"][None] * p["armature_scale"],
        "actuator_gainprm": gain,
        "actuator_biasprm": bias,
    }
