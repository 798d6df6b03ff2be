"""Collision geometry of a robot and its scene for distance barriers: MuJoCo's own collision
detection on a private model (used by :mod:`robot_rl.safety.cbf`; reusable by the safety critic's
labels and features).

:class:`SceneCollisionModel` compiles the robot's MJCF with the scene's shapes
(:func:`robot_rl.scenes.add_scene_to_spec`) into a model where every robot geom (capsules,
spheres, boxes; not the floor plane) collides with the scene and with the robot's non-adjacent
links, with a detection margin ``activation`` (m). Robot geoms are its capsules and spheres. After ``mj_kinematics``, ``mj_collision``
returns every pair closer than that margin with its signed distance, normal and midpoint: the
closest points are ``pos -/+ dist/2 * normal``. Parent-child pairs and the model's ``<exclude>``
pairs are left out by MuJoCo; :meth:`exclude_within` adds pairs already within a clearance at a
pose (as MoveIt's setup assistant disables pairs in collision at the default pose).

With ``workspace=(site, lower, upper)`` the model also holds the site's box as six half-space
planes (world) and a tiny sphere at the site (``ws_geoms``, ``ee_geom``) that collide only with
each other: their contacts are the box's distance barriers, detected like every other pair.
:meth:`SceneCollisionModel.jacobian` turns the current contacts into MuJoCo's frictionless contact
constraints (``mj_makeConstraint``): each row is ``n . (J_b - J_a)`` at the contact point, the
gradient of that pair's distance w.r.t. the configured joints, computed in C for all rows at once.

For a per-tick caller (the CBF at 1 kHz) the model keeps views of the MuJoCo arrays it reads and
writes (``qpos``, ``xaxis``, ``xanchor``, ``site_xpos``, ``geom_margin``: their memory lives as long
as the model and data) and the configured joints as slices where they are contiguous, so a tick
indexes no Python lists.
"""

from __future__ import annotations

from typing import Sequence

import mujoco
import numpy as np

from robot_rl.scenes import Scene, add_scene_to_spec

__all__ = ["SceneCollisionModel", "moving_joints"]


def moving_joints(m: mujoco.MjModel, joint_ids: Sequence[int], body: int) -> np.ndarray:
    """[n] float mask: 1 where the joint moves ``body`` (sits on it or on one of its ancestors)."""
    chain = set()
    while body > 0:
        chain.add(body)
        body = int(m.body_parentid[body])
    return np.array([float(int(m.jnt_bodyid[j]) in chain) for j in joint_ids])


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    """``idx`` as a slice if it is a contiguous ascending run (a view instead of a copy), else as is."""
    if len(idx) and (np.diff(idx) == 1).all():
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


class SceneCollisionModel:
    """The robot (MJCF text) plus ``scene``, for distance queries (module docstring).

    Attributes: ``model``, ``data``, ``scene_geoms`` (ids of the scene's shapes, in scene order),
    ``robot_geoms`` (ids of the robot's colliding geoms), ``mask`` [ngeom, n] (joints moving each
    geom), ``joint_ids``, ``qadr``, ``slide``; ``jnt_idx`` / ``qpos_idx`` (``joint_ids`` / ``qadr``
    as slices where contiguous) and the cached views ``qpos``, ``xaxis``, ``xanchor``,
    ``site_xpos``, ``geom_margin``, ``pair_margin`` (module docstring); ``pair_geoms`` [npair, 2]
    after :meth:`use_pairs`.
    """

    def __init__(self, xml: str, joint_names: Sequence[str], scene: Scene | None, activation: float,
                 self_collision: bool = True, workspace: tuple[str, Sequence[float], Sequence[float]] | None = None):
        spec = mujoco.MjSpec.from_string(xml)
        names = add_scene_to_spec(spec, scene, robot_contacts=False) if scene is not None else []
        spec.option.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
        # constraints: contacts only (frictionless, one row each), dense Jacobians
        spec.option.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_LIMIT | mujoco.mjtDisableBit.mjDSBL_EQUALITY
                                        | mujoco.mjtDisableBit.mjDSBL_FRICTIONLOSS)
        spec.option.jacobian = mujoco.mjtJacobian.mjJAC_DENSE
        # robot side: capsules and spheres (their distances to boxes, spheres and capsules are exact
        # in MuJoCo; its box-box distance with a margin is not, so e.g. finger pads are left to the
        # finger capsules around them)
        kinds = (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_SPHERE)
        for g in spec.geoms:
            if g.name in names:  # scene: collides with the robot only
                g.contype, g.conaffinity = 2, 1
            elif g.type in kinds:  # robot: with the scene (and itself)
                g.contype, g.conaffinity = 1, (3 if self_collision else 2)
            else:
                g.contype = g.conaffinity = 0
            g.margin, g.gap, g.condim = float(activation), 0.0, 1
        self._ws_names: list[str] = []
        self.explicit_pairs = False
        if workspace is not None:
            self._add_workspace(spec, *workspace, activation)
        self._spec = spec
        self._compile(names, joint_names)

    EE_RADIUS = 1e-4  # m: the site's sphere (its distances are the site's minus this)

    def _add_workspace(self, spec, site: str, lower, upper, activation: float) -> None:
        """Planes through the faces of the box [lower, upper] (normals inward: lower x, y, z, then
        upper x, y, z) and a sphere at ``site``; contype 4 / conaffinity 4 keeps them to themselves."""
        st = spec.site(site)
        if st is None:
            raise ValueError(f"the robot model has no site {site!r} for the workspace box")
        ee = st.parent.add_geom()
        ee.name, ee.type, ee.pos, ee.size = "cbf/ee", mujoco.mjtGeom.mjGEOM_SPHERE, list(st.pos), [self.EE_RADIUS, 0, 0]
        ee.contype, ee.conaffinity = 4, 0
        for i in range(6):
            axis, up = i % 3, i >= 3
            normal = np.zeros(3)
            normal[axis] = -1.0 if up else 1.0
            pos = np.zeros(3)
            pos[axis] = (upper if up else lower)[axis]
            quat = np.zeros(4)
            mujoco.mju_quatZ2Vec(quat, normal)
            g = spec.worldbody.add_geom()
            g.name = f"cbf/ws{i}"
            g.type, g.pos, g.quat, g.size = mujoco.mjtGeom.mjGEOM_PLANE, list(pos), list(quat), [0, 0, 1]
            g.contype, g.conaffinity = 0, 4
            self._ws_names.append(g.name)
        for g in (ee, *(spec.geom(n) for n in self._ws_names)):
            g.margin, g.gap, g.condim = float(activation), 0.0, 1

    def _compile(self, names, joint_names) -> None:
        m = self.model = self._spec.compile()
        self.data = mujoco.MjData(m)
        self.joint_ids = np.array([m.joint(j).id for j in joint_names])
        self.qadr = np.array([m.jnt_qposadr[j] for j in self.joint_ids])
        self.slide = np.array([int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_SLIDE) for j in self.joint_ids])
        self.scene_geoms = np.array([m.geom(nm).id for nm in names], dtype=np.int64)
        if not self.explicit_pairs:  # use_pairs zeroes every contype
            self.robot_geoms = np.array([g for g in range(m.ngeom) if m.geom_contype[g] == 1], dtype=np.int64)
        self.mask = np.array([moving_joints(m, self.joint_ids, int(m.geom_bodyid[g])) for g in range(m.ngeom)])
        self._names = names
        self.ws_geoms = np.array([m.geom(n).id for n in self._ws_names], dtype=np.int64)
        self.ee_geom = m.geom("cbf/ee").id if self._ws_names else -1
        self.jnt_idx, self.qpos_idx = _as_slice(self.joint_ids), _as_slice(self.qadr)
        self.dof_idx = _as_slice(m.jnt_dofadr[self.joint_ids])
        d = self.data
        self.qpos, self.xaxis, self.xanchor, self.site_xpos = d.qpos, d.xaxis, d.xanchor, d.site_xpos
        self.geom_margin, self.pair_margin = m.geom_margin, m.pair_margin
        self.pair_geoms = np.stack([m.pair_geom1, m.pair_geom2], 1) if m.npair else np.zeros((0, 2), np.int64)

    def use_pairs(self) -> None:
        """Detect only explicit pairs (MuJoCo ``<pair>``), each with its own margin
        (``pair_margin``, writable between ticks): every pair the dynamic detection considers
        now (after :meth:`exclude_within`, which must come first). A
        per-pair margin detects exactly the pairs a caller needs instead of the larger margin of
        each pair's two geoms. Recompiles; geom ids do not change."""
        m, d = self.model, self.data
        keep = m.geom_margin.copy()
        m.geom_margin[:] = 1e4  # every pair that passes MuJoCo's filters (by body and bits) reports
        mujoco.mj_kinematics(m, d)
        mujoco.mj_collision(m, d)
        pairs = list(dict.fromkeys((int(a), int(b)) for a, b in d.contact.geom))
        m.geom_margin[:] = keep
        named = {g.id: g for g in self._spec.geoms}
        for g in range(m.ngeom):
            if not named[g].name:
                named[g].name = f"cbf/geom{g}"
        for a, b in pairs:
            p = self._spec.add_pair()
            p.geomname1, p.geomname2 = named[a].name, named[b].name
            p.condim, p.margin, p.gap = 1, 0.0, 0.0
        for g in self._spec.geoms:
            g.contype = g.conaffinity = 0
        self.explicit_pairs = True
        self._compile(self._names, [self.model.joint(j).name for j in self.joint_ids])
        if sorted(map(sorted, self.pair_geoms.tolist())) != sorted(map(sorted, pairs)):
            raise RuntimeError("the explicit collision pairs differ from the detected ones")

    def set(self, q: np.ndarray) -> None:
        """Joint positions (configured order) -> kinematics."""
        self.qpos[self.qpos_idx] = q
        mujoco.mj_kinematics(self.model, self.data)

    def contacts(self):
        """After :meth:`set`: (dist [K], unit normal [K, 3] from geom a to geom b, the point on
        geom a [K, 3], geoms [K, 2]) of every pair closer than the detection margin."""
        mujoco.mj_collision(self.model, self.data)
        k = self.data.ncon
        c = self.data.contact
        dist = c.dist[:k]
        nrm = c.frame[:k, :3]
        return dist, nrm, c.pos[:k] - (0.5 * dist)[:, None] * nrm, c.geom[:k]

    def jacobian(self, skip: np.ndarray | None = None) -> np.ndarray:
        """After :meth:`contacts` (or ``mj_collision``): [R, n] the distance gradients (``n . (J_b -
        J_a)`` w.r.t. the configured joints) of the contacts (those where ``skip`` [ncon] is False),
        in contact order: MuJoCo's contact constraint Jacobian (a view, valid until the next call)."""
        m, d = self.model, self.data
        if skip is not None:
            d.contact.exclude[:] = skip
        mujoco.mj_comPos(m, d)
        mujoco.mj_makeConstraint(m, d)
        r = d.nefc
        return d.efc_J[: r * m.nv].reshape(r, m.nv)[:, self.dof_idx]

    def geom_name(self, g: int) -> str:
        m = self.model
        if g in self.scene_geoms:
            return repr(self._names[int(np.flatnonzero(self.scene_geoms == g)[0])].split("/", 1)[-1])
        body = m.body(m.geom_bodyid[g]).name or "base"
        return m.geom(g).name or body

    def exclude_within(self, q: np.ndarray, clearance: float) -> list[tuple[str, str]]:
        """Exclude robot body pairs closer than ``clearance`` at ``q`` from self-collision
        (recompiles); returns the excluded (body, body) names. Not after :meth:`use_pairs`."""
        if self.explicit_pairs:
            raise RuntimeError("exclude_within must come before use_pairs")
        self.set(q)
        dist, _, _, g = self.contacts()
        m, out = self.model, []
        robot = set(self.robot_geoms.tolist())
        for dd, (a, b) in zip(dist, g):
            if dd < clearance and a in robot and b in robot:
                ba, bb = m.body(m.geom_bodyid[a]).name, m.body(m.geom_bodyid[b]).name
                if ba and bb and (ba, bb) not in out and (bb, ba) not in out:
                    out.append((ba, bb))
        for ba, bb in out:
            e = self._spec.add_exclude()
            e.bodyname1, e.bodyname2 = ba, bb
        if out:
            self._compile(self._names, [self.model.joint(j).name for j in self.joint_ids])
        return out

    def scene_clearance(self, q: np.ndarray) -> tuple[float, int, int]:
        """Smallest distance between a scene shape and any robot geom (the base included) at q:
        (distance, scene geom, robot geom), exact (``mj_geomDistance``), +inf without a scene."""
        self.set(q)
        best = (np.inf, -1, -1)
        fromto = np.zeros(6)
        for s in self.scene_geoms:
            for g in self.robot_geoms:
                dd = mujoco.mj_geomDistance(self.model, self.data, int(s), int(g), 10.0, fromto)
                if dd < best[0]:
                    best = (dd, int(s), int(g))
        return best
