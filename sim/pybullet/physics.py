"""Per-env physics parameters (`set_physics`): MuJoCo's `PHYSICS_FIELDS`, one variant per env,
written to that env's pybullet copy: link masses (and the shadow's `gravcomp * mass`, for the
gravity compensation), link inertias (with the armature, `actuators.link_inertia`), the
friction-loss motors and the links' contact friction; the actuator and damping fields are read
by the torques at every step (`actuators.Actuators.torques`), and checked against the internal
step by the backend (`internal_step`). They start at the MuJoCo model's
nominal values; a change is written only where a value changed (pybullet calls are slow).
pybullet cannot move a link's centre of mass nor resize a collision shape: `body_ipos` and the geometry
fields (`geom_size`, `geom_rbound`, `geom_aabb`) must stay nominal."""

from __future__ import annotations

import mujoco
import numpy as np
import pybullet as pb

from robot_rl.sim.backend import PHYSICS_FIELDS, UnsupportedFeature
from robot_rl.sim.pybullet.actuators import Actuators, link_inertia
from robot_rl.sim.pybullet.mapping import RobotMap
from robot_rl.sim.pybullet.world import World


class Physics:
    """`params[field]` [num_envs, *shape]: the parameters every env simulates;
    `gravcomp_on` [num_envs]: the envs with a gravity-compensated link."""

    def __init__(self, model: mujoco.MjModel, world: World, rmap: RobotMap, act: Actuators):
        self._model, self._world, self._map, self._act = model, world, rmap, act
        n = len(world.bodies)
        self.params = {f: np.repeat(np.array(getattr(model, f))[None], n, 0) for f in PHYSICS_FIELDS}
        nb = len(rmap.link_of_body)
        self._applied_inertia = np.full((n, nb, 3), np.nan)
        self._applied_mass = np.full((n, nb), np.nan)
        self._applied_gc = np.full((n, nb), np.nan)
        self._applied_friction: dict[tuple[int, int], tuple] = {}
        self._applied_frictionloss = np.full((n, rmap.ndof), np.nan)
        ids = np.arange(n)
        self._apply_masses(ids)
        self.apply_frictionloss(ids)
        self._apply_geom_friction(ids)

    def set(self, field: str, variant_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
        """`SimBackend.set_physics`; returns the env ids written."""
        if field not in PHYSICS_FIELDS:
            raise ValueError(f"unknown physics field {field!r}; known: {', '.join(PHYSICS_FIELDS)}")
        ids = np.asarray(variant_ids, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.float64)
        nominal = np.asarray(getattr(self._model, field))
        values = values.reshape((len(ids), *nominal.shape))
        if field in ("geom_size", "geom_rbound", "geom_aabb"):
            bad = np.abs(values - nominal[None]).reshape(len(ids), len(nominal), -1).max(axis=(0, 2)) > 1e-12
            if bad.any():
                names = [self._model.geom(g).name for g in np.flatnonzero(bad)]
                raise UnsupportedFeature(f"{field} of geoms {names}: the pybullet backend cannot resize a collision "
                                         "shape (part_size_delta_m); use --env.backend mujoco or warp")
            return ids
        if field == "body_ipos":
            bad = np.abs(values - nominal[None]).max(axis=(0, 2)) > 1e-12
            if bad.any():
                names = [self._model.body(b).name for b in np.flatnonzero(bad)]
                raise UnsupportedFeature(f"body_ipos of {names}: pybullet cannot move a link's centre of mass; "
                                         "keep body_ipos nominal with the pybullet backend")
            return ids
        self.params[field][ids] = values
        if field in ("body_mass", "body_gravcomp"):
            self._apply_masses(ids)
        if field in ("body_inertia", "dof_armature"):
            self._apply_inertias(ids)
        if field == "dof_frictionloss":
            self.apply_frictionloss(ids)
        if field == "geom_friction":
            self._apply_geom_friction(ids)
        return ids

    def _apply_masses(self, ids) -> None:
        w, rmap = self._world, self._map
        c, s = w.client, w.shadow_client
        mass, gravcomp = self.params["body_mass"], self.params["body_gravcomp"]
        nominal = self._model.body_mass
        for i in ids:
            for k, b in enumerate(rmap.link_of_body):
                v, g = float(mass[i, b]), float(gravcomp[i, b])
                if self._applied_mass[i, k] == v and self._applied_gc[i, k] == g:
                    continue
                links = rmap.groups[b]
                if b in rmap.dyn_link:
                    per_link = {rmap.dyn_link[b]: v}
                else:
                    ratio = v / nominal[b] if nominal[b] > 0 else 0.0
                    per_link = {l: rmap.pb_nominal_mass[l] * ratio for l in links}
                for l, ml in per_link.items():
                    pb.changeDynamics(w.bodies[i], l, mass=ml, physicsClientId=c)
                    pb.changeDynamics(w.shadows[i], l, mass=g * ml, physicsClientId=s)
                self._applied_mass[i, k] = v
                self._applied_gc[i, k] = g
                self._applied_inertia[i, k] = np.nan  # pybullet resets a link's inertia when its mass changes
        self.gravcomp_on = (gravcomp[:, rmap.link_of_body] != 0).any(1) if rmap.link_of_body \
            else np.zeros(len(w.bodies), bool)
        self._apply_inertias(ids)

    def _apply_inertias(self, ids) -> None:
        w, rmap, p = self._world, self._map, self.params
        nominal = self._model.body_inertia
        for i in ids:
            for k, b in enumerate(rmap.link_of_body):
                links = rmap.groups[b]
                if b in rmap.dyn_link:
                    rotors = [(p["dof_armature"][i, rmap.mj_dof[kk]], axis) for kk, axis in rmap.link_axes[b]]
                    diag = link_inertia(self._model.body(b).name, p["body_inertia"][i, b], rmap.rot_mj[b],
                                        rmap.rot_pb[b], rotors)
                    if np.array_equal(self._applied_inertia[i, k], diag):
                        continue
                    pb.changeDynamics(w.bodies[i], rmap.dyn_link[b], localInertiaDiagonal=diag.tolist(),
                                      physicsClientId=w.client)
                    self._applied_inertia[i, k] = diag
                    continue
                v = p["body_inertia"][i, b]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(nominal[b] > 0, v / nominal[b], 1.0)
                if np.ptp(ratio) > 1e-9:
                    raise UnsupportedFeature(f"body {self._model.body(b).name!r} is fused from URDF links {links}: "
                                             "its inertia can only be scaled uniformly")
                if any(p["dof_armature"][i, rmap.mj_dof[kk]] > 0
                       for kk in range(rmap.ndof) if rmap.dof_link[kk] in links):
                    raise UnsupportedFeature(f"armature on a joint of body {self._model.body(b).name!r} (fused from "
                                             f"URDF links {links}) is not supported")
                r = float(ratio[0])
                if self._applied_inertia[i, k, 0] == r:
                    continue
                for l in links:
                    diag = (rmap.pb_nominal_inertia[l] * r).tolist()
                    pb.changeDynamics(w.bodies[i], l, localInertiaDiagonal=diag, physicsClientId=w.client)
                self._applied_inertia[i, k] = r

    def apply_frictionloss(self, ids, force: bool = False) -> None:
        """The friction-loss motors of envs `ids` where their values changed (all with `force`:
        after a change of pybullet's time step)."""
        fl = self.params["dof_frictionloss"][:, self._map.mj_dof_a]
        for i in ids:
            if not force and np.array_equal(self._applied_frictionloss[i], fl[i]):
                continue
            self._act.set_friction_loss(i, fl[i])
            self._applied_frictionloss[i] = fl[i]

    def _apply_geom_friction(self, ids) -> None:
        m, w = self._model, self._world
        fr = self.params["geom_friction"]
        for i in ids:
            for b in self._map.link_of_body:
                geoms = np.flatnonzero(m.geom_bodyid == b)
                if not len(geoms):
                    continue
                v = tuple(float(x) for x in fr[i, geoms[0]])
                if self._applied_friction.get((i, b)) == v:
                    continue
                for l in self._map.groups[b]:
                    pb.changeDynamics(w.bodies[i], l, lateralFriction=v[0], spinningFriction=v[1],
                                      rollingFriction=v[2], physicsClientId=w.client)
                self._applied_friction[(i, b)] = v
