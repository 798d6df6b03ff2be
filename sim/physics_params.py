"""Sampled DR physics parameters -> simulator model fields (backend-neutral).

`model_fields(nominal, params, payload_body)` turns the per-variant DR values (`PHYSICS_PARAMS` of
`randomization.py`) into values of the `PHYSICS_FIELDS` of the backend contract, from the nominal
model:

* links: masses x `mass_scale`, rotational inertias x `mass_scale` x `inertia_scale`;
* payload: a point mass `payload_kg` at `payload_pos_*_m` in the payload body's frame, merged into
  that body (new mass, centre of mass and inertia by the parallel-axis theorem; the inertia keeps
  the body's principal axes, i.e. the products of inertia the offset creates are dropped);
* gravity compensation: the robot's controller knows the nominal masses only, with a relative
  error `gravcomp_error`: a heavier link or a payload is not compensated (the arm sags as a real
  one would), and a wrong gravity model pushes the arm up or down;
* friction (contact and joint friction loss), damping, armature: scaled;
* actuators: position gain x `kp_scale`, velocity gain x `kd_scale`, both x `motor_strength`.

`part_size_fields(nominal, geoms, delta)` turns the geometry parameter `part_size_delta_m`
(`GEOMETRY_PARAMS`) into `GEOM_FIELDS`: the radius of each toleranced geom grows by `delta`, and
with it the bounding radius `geom_rbound` and the local box `geom_aabb` that MuJoCo's collision
broad phase tests before it calls a narrow-phase function (stale bounds would miss the contacts of
a larger part). The bodies' masses and inertias are left as they are (a fraction of a millimetre
of radius changes them by a few percent at most, and the task's bodies declare their inertia).
"""

from __future__ import annotations

import numpy as np

import mujoco

from robot_rl.sim.randomization import PHYSICS_PARAMS

FIELDS = ("body_mass", "body_inertia", "body_ipos", "body_gravcomp", "geom_friction", "dof_frictionloss",
          "dof_damping", "dof_armature", "actuator_gainprm", "actuator_biasprm")
"""The fields `model_fields` writes."""


def _add_point_mass(mass, ipos, inertia, body: int, m_add, pos) -> None:
    """Merge point masses `m_add` [k] at `pos` [k, 3] (body frame) into `body` of every variant, in
    place. The inertia is taken about the new centre of mass along the body's inertial axes (the
    body frame's axes when `body_iquat` is the identity, as for the robots here)."""
    m0, c0 = mass[:, body].copy(), ipos[:, body].copy()
    total = m0 + m_add
    safe = np.where(total > 0, total, 1.0)
    c = (m0[:, None] * c0 + m_add[:, None] * pos) / safe[:, None]
    d0, dp = c0 - c, pos - c
    # parallel-axis terms on the diagonal: m (|d|^2 - d_k^2)
    par = m0[:, None] * ((d0 ** 2).sum(1, keepdims=True) - d0 ** 2) + m_add[:, None] * (
        (dp ** 2).sum(1, keepdims=True) - dp ** 2)
    mass[:, body] = total
    ipos[:, body] = c
    inertia[:, body] = inertia[:, body] + par


def model_fields(nominal: dict[str, np.ndarray], values: np.ndarray, payload_body: int) -> dict[str, np.ndarray]:
    """`values` [k, len(PHYSICS_PARAMS)] -> {field: [k, *field shape]} for k variants."""
    p = {name: values[:, i : i + 1] for i, name in enumerate(PHYSICS_PARAMS)}
    k = values.shape[0]
    mass = nominal["body_mass"][None] * p["mass_scale"]
    inertia = nominal["body_inertia"][None] * (p["mass_scale"] * p["inertia_scale"])[:, :, None]
    ipos = np.repeat(nominal["body_ipos"][None], k, 0)
    if payload_body >= 0:
        pos = np.concatenate([p["payload_pos_x_m"], p["payload_pos_y_m"], p["payload_pos_z_m"]], axis=1)
        _add_point_mass(mass, ipos, inertia, payload_body, p["payload_kg"][:, 0], pos)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mass > 0, nominal["body_mass"][None] / mass, 0.0)
    # the compensation force of a link is gravcomp x its (new) weight: nominal weight x (1 + error)
    gravcomp = nominal["body_gravcomp"][None] * ratio * (1.0 + p["gravcomp_error"])
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
        "body_ipos": ipos,
        "body_gravcomp": gravcomp,
        "geom_friction": friction,
        "dof_frictionloss": nominal["dof_frictionloss"][None] * p["friction_scale"],
        "dof_damping": nominal["dof_damping"][None] * p["damping_scale"],
        "dof_armature": nominal["dof_armature"][None] * p["armature_scale"],
        "actuator_gainprm": gain,
        "actuator_biasprm": bias,
    }


GEOM_FIELDS = ("geom_size", "geom_rbound", "geom_aabb")
"""The fields `part_size_fields` writes (only for a task with toleranced geoms)."""
RADIAL_GEOMS = {int(mujoco.mjtGeom.mjGEOM_SPHERE): "sphere", int(mujoco.mjtGeom.mjGEOM_CAPSULE): "capsule",
                int(mujoco.mjtGeom.mjGEOM_CYLINDER): "cylinder"}
"""Geom types whose `size[0]` is a radius: the ones a size tolerance can change."""


def check_toleranced_geoms(model: mujoco.MjModel, names, where: str) -> list[int]:
    """Geom ids of `names`; ValueError (one line) for an unknown name or a geom without a radius."""
    ids = []
    for name in names:
        try:
            g = model.geom(name).id
        except KeyError:
            raise ValueError(f"{where}: toleranced geom {name!r} is not a geom of the model; name one of the "
                             "task scene's geoms") from None
        if int(model.geom_type[g]) not in RADIAL_GEOMS:
            raise ValueError(f"{where}: toleranced geom {name!r} is a {mujoco.mjtGeom(model.geom_type[g]).name}; "
                             f"a size tolerance changes the radius of a {', '.join(RADIAL_GEOMS.values())}")
        ids.append(g)
    return ids


def part_size_fields(nominal: dict[str, np.ndarray], geom_types: np.ndarray, geoms: list[int],
                     delta: np.ndarray) -> dict[str, np.ndarray]:
    """`delta` [k] (m) -> {field: [k, *field shape]} of `GEOM_FIELDS` for k variants: the geoms
    `geoms` (sphere, capsule or cylinder: `geom_types` the model's types) get radius nominal +
    delta, their bounding radius and local box follow as MuJoCo's compiler computes them (sphere:
    r; capsule: r + h; cylinder: sqrt(r^2 + h^2), h the half length)."""
    k = len(delta)
    size = np.repeat(nominal["geom_size"][None], k, 0)
    rbound = np.repeat(nominal["geom_rbound"][None], k, 0)
    aabb = np.repeat(nominal["geom_aabb"][None], k, 0)
    for g in geoms:
        r = nominal["geom_size"][g, 0] + delta
        h = nominal["geom_size"][g, 1]
        kind = RADIAL_GEOMS[int(geom_types[g])]
        size[:, g, 0] = r
        aabb[:, g, 3:5] = r[:, None]
        if kind == "sphere":
            rbound[:, g], aabb[:, g, 5] = r, r
        elif kind == "capsule":
            rbound[:, g], aabb[:, g, 5] = r + h, r + h
        else:
            rbound[:, g], aabb[:, g, 5] = np.sqrt(r * r + h * h), h
    return {"geom_size": size, "geom_rbound": rbound, "geom_aabb": aabb}
