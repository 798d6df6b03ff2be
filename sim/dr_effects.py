"""Refuse DR ranges that cannot change what they claim to change on a task's model.

`check_effects(dr, model, robot, where)` raises ValueError (one line naming the term, why it has no
effect and the fix) for a randomized term whose target is absent from the model: friction without
contacts or joint friction loss, damping or armature that the model does not have, a payload
offset without a payload mass, a gravity-model error on a robot without gravity compensation,
gain scales on a robot that is not position controlled, a part size tolerance on a task that names
no toleranced geoms. `tests/test_dr_effects.py` checks the
converse for every task: each declared term, driven to its range ends, changes the trajectories
or observations measurably.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from robot_rl.sim.randomization import NOMINAL, DomainRandomization


def randomized(dr: DomainRandomization) -> list[str]:
    """Names of the terms `dr` sets away from the nominal model."""
    return [f.name for f in dataclasses.fields(dr) if getattr(dr, f.name) != getattr(NOMINAL, f.name)]


def moves_payload(dr: DomainRandomization) -> bool:
    """True when `dr` can place a payload away from the payload body's origin."""
    pos = (dr.payload_pos_x_m, dr.payload_pos_y_m, dr.payload_pos_z_m)
    return dr.payload_kg[1] > 0 and any(r != (0.0, 0.0) for r in pos)


def without_payload_offset(dr: DomainRandomization) -> DomainRandomization:
    """`dr` with the payload at the payload body's origin (for a backend that cannot move a centre
    of mass: compare simulators on this, all of them)."""
    return dataclasses.replace(dr, payload_pos_x_m=(0.0, 0.0), payload_pos_y_m=(0.0, 0.0),
                               payload_pos_z_m=(0.0, 0.0))


def contacts_possible(model: mujoco.MjModel) -> bool:
    """Whether any two geoms of different, non-welded bodies can collide (contype/conaffinity,
    parent-child filtering, explicit pairs and excludes; a conservative static check)."""
    if model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT:
        return False
    if model.npair:
        return True
    excluded = {(int(s >> 16), int(s & 0xFFFF)) for s in np.asarray(model.exclude_signature)}
    weld, parent = np.asarray(model.body_weldid), np.asarray(model.body_parentid)
    ct, ca, gb = np.asarray(model.geom_contype), np.asarray(model.geom_conaffinity), np.asarray(model.geom_bodyid)
    filterparent = not (model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_FILTERPARENT)
    for i in range(model.ngeom):
        for j in range(i + 1, model.ngeom):
            if not ((ct[i] & ca[j]) or (ct[j] & ca[i])):
                continue
            b1, b2 = int(weld[gb[i]]), int(weld[gb[j]])
            if b1 == b2 or (min(b1, b2), max(b1, b2)) in excluded:
                continue
            if filterparent and b1 and b2 and (weld[parent[b1]] == b2 or weld[parent[b2]] == b1):
                continue
            return True
    return False


def check_effects(dr: DomainRandomization, model: mujoco.MjModel, robot, where: str,
                  toleranced: bool = False) -> None:
    """`toleranced`: the task names toleranced geoms (`Task.toleranced_geoms`)."""
    dofs = [int(model.jnt_dofadr[model.joint(j).id]) for j in robot.joint_names]
    has_payload = bool(robot.payload_body)
    reasons = {
        "friction_scale": (lambda: np.any(model.dof_frictionloss > 0) or contacts_possible(model),
                           "the model has no contacts and no joint friction loss"),
        "damping_scale": (lambda: np.any(model.dof_damping[dofs] > 0), "the robot's joints have no damping"),
        "armature_scale": (lambda: np.any(model.dof_armature[dofs] > 0), "the robot's joints have no armature"),
        "payload_kg": (lambda: has_payload, f"robot {robot.name!r} declares no payload body"),
        "gravcomp_error": (lambda: np.any(model.body_gravcomp > 0),
                           f"robot {robot.name!r} has no gravity compensation"),
        "kp_scale": (lambda: robot.actuator.kind == "position", f"robot {robot.name!r} is not position controlled"),
        "kd_scale": (lambda: robot.actuator.kind == "position" and np.any(np.asarray(robot.actuator.kd) > 0),
                     f"robot {robot.name!r} has no velocity gain"),
        "encoder_bias_rad": (lambda: robot.actuator.kind == "position",
                             "encoder bias is modelled for position-controlled robots only"),
        "part_size_delta_m": (lambda: toleranced, "the task names no toleranced geoms (Task.toleranced_geoms)"),
    }
    for axis in "xyz":
        reasons[f"payload_pos_{axis}_m"] = (lambda: has_payload and dr.payload_kg[1] > 0,
                                             "there is no payload mass to place (payload_kg is 0)")
    for name in randomized(dr):
        if name in reasons and not reasons[name][0]():
            raise ValueError(f"{where}.{name} = {getattr(dr, name)!r} has no effect: {reasons[name][1]}; "
                             f"remove it from the task's DR ranges")
    if (dr.push_joint_velocity > 0) != (dr.push_interval_s[1] > 0):
        raise ValueError(f"{where}: pushes need both push_interval_s and push_joint_velocity "
                         f"(got {dr.push_interval_s!r} and {dr.push_joint_velocity}); set both or neither")
