"""Robot-side kinematics with MuJoCo itself, on the robot model an artifact carries.

An exported artifact holds `robot.xml`: the robot's MJCF without meshes or task objects (bodies,
joints, sites and the collision capsules; `kinematic_model_xml`). On the robot, `RobotKinematics`
loads it and answers what the deploy nodes need, with `mj_kinematics` and friends:

```
kin = RobotKinematics.from_artifact(path, joint_names)     # or RobotKinematics(xml_text, joint_names)
kin.site_pos(q, "ee")               # [3] world position of a site (q: [n], joint_names order)
kin.fk(q)["sites"]["ee"]            # batched: q [..., n] -> [..., 3] for every site
kin.site_jacobian(q, "ee")          # [3, n] positional Jacobian
kin.self_collision_distance(q)      # [...] smallest distance between non-adjacent links' geoms
```

The simulator computes exactly the same quantities from the same model, so a deployed
observation equals the simulated one (tests check it term by term).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import mujoco
import numpy as np


def kinematic_model_xml(robot) -> str:
    """The robot's MJCF (a `robot_rl.robots.Robot`) reduced to what kinematics and distances need:
    no mesh geoms, meshes, textures or materials, so the file is self-contained."""
    spec = robot.load_spec()
    for g in list(spec.geoms):
        if g.type == mujoco.mjtGeom.mjGEOM_MESH:
            spec.delete(g)
    for kind in ("meshes", "textures", "materials"):
        for a in list(getattr(spec, kind)):
            spec.delete(a)
    for g in spec.geoms:
        g.material = ""
    spec.compile()
    return spec.to_xml()


class RobotKinematics:
    """Forward kinematics, Jacobians and link distances of a robot model (MuJoCo on the CPU).

    Args:
        xml: the robot's MJCF text (or a path to it).
        joint_names: order of the joints in every `q` given to the methods.
    """

    def __init__(self, xml: str | Path, joint_names: Sequence[str]):
        text = Path(xml).read_text() if isinstance(xml, Path) else xml
        self.model = m = mujoco.MjModel.from_xml_string(text)
        self.data = mujoco.MjData(m)
        self.joint_names = list(joint_names)
        missing = [j for j in self.joint_names if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) < 0]
        if missing:
            joints = [m.joint(i).name for i in range(m.njnt)]
            raise ValueError(f"joints {missing} are not in the robot model (it has {joints})")
        jids = [m.joint(j).id for j in self.joint_names]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jids])
        self._dofadr = np.array([m.jnt_dofadr[j] for j in jids])
        self.nq = len(jids)
        lim = np.where(m.jnt_limited[jids, None].astype(bool), m.jnt_range[jids], [-np.inf, np.inf])
        self.lower, self.upper = lim[:, 0].copy(), lim[:, 1].copy()
        self.site_names = [m.site(i).name for i in range(m.nsite) if m.site(i).name]
        self._jac = np.zeros((3, m.nv))
        self.self_collision_pairs = self._collision_pairs()

    @classmethod
    def from_artifact(cls, path: str | Path, joint_names: Sequence[str], spec: dict | None = None):
        import json

        path = Path(path)
        spec = spec or json.loads((path / "spec.json").read_text())
        return cls(path / spec["robot"]["model"], joint_names)

    # -- forward kinematics --------------------------------------------------------------------
    def _set(self, q) -> None:
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)

    def _check(self, q) -> tuple[np.ndarray, tuple[int, ...]]:
        q = np.asarray(q, dtype=np.float64)
        if q.shape[-1:] != (self.nq,):
            raise ValueError(f"q must have shape [..., {self.nq}] ({self.joint_names}), got {q.shape}")
        return q.reshape(-1, self.nq), q.shape[:-1]

    def site_pos(self, q, site: str) -> np.ndarray:
        """World position [..., 3] of `site` for joint positions `q` [..., n]."""
        sid = self.model.site(site).id
        q2, batch = self._check(q)
        out = np.empty((len(q2), 3))
        for i, qi in enumerate(q2):
            self._set(qi)
            out[i] = self.data.site_xpos[sid]
        return out.reshape(*batch, 3)

    def fk(self, q) -> dict:
        """`{"sites": {name: [..., 3]}}` for every named site of the model."""
        q2, batch = self._check(q)
        ids = [self.model.site(n).id for n in self.site_names]
        out = np.empty((len(q2), len(ids), 3))
        for i, qi in enumerate(q2):
            self._set(qi)
            out[i] = self.data.site_xpos[ids]
        return {"sites": {n: out[:, k].reshape(*batch, 3) for k, n in enumerate(self.site_names)}}

    def site_jacobian(self, q, site: str) -> np.ndarray:
        """[3, n] positional Jacobian of `site` w.r.t. the joints (`joint_names` order)."""
        q2, _ = self._check(q)
        if len(q2) != 1:
            raise ValueError("site_jacobian takes one configuration")
        self._set(q2[0])
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_jacSite(self.model, self.data, self._jac, None, self.model.site(site).id)
        return self._jac[:, self._dofadr].copy()

    # -- distances -----------------------------------------------------------------------------
    def _collision_pairs(self) -> np.ndarray:
        """Geom pairs on bodies that are neither the same, welded together, parent and child, nor
        excluded from contact in the model (`<contact><exclude>`); the world's geoms count."""
        m = self.model
        kinds = {int(t) for t in (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_SPHERE,
                                  mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_BOX)}
        geoms = [g for g in range(m.ngeom) if int(m.geom_type[g]) in kinds]
        excluded = {(int(sig) >> 16, int(sig) & 0xFFFF) for sig in m.exclude_signature}
        pairs = []
        for a_i, a in enumerate(geoms):
            for b in geoms[a_i + 1:]:
                ba, bb = int(m.geom_bodyid[a]), int(m.geom_bodyid[b])
                if ba == bb or m.body_parentid[ba] == bb or m.body_parentid[bb] == ba:
                    continue
                if m.body_weldid[ba] == m.body_weldid[bb] or (ba, bb) in excluded or (bb, ba) in excluded:
                    continue
                pairs.append((a, b))
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)

    def self_collision_distance(self, q) -> np.ndarray:
        """Smallest signed distance [...] between geoms of non-adjacent links (negative =
        penetration); +inf when the model has no such pair."""
        q2, batch = self._check(q)
        out = np.full(len(q2), np.inf)
        if not len(self.self_collision_pairs):
            return out.reshape(batch)
        fromto = np.zeros(6)
        m, d, dist = self.model, self.data, mujoco.mj_geomDistance
        pairs = [(int(a), int(b)) for a, b in self.self_collision_pairs]
        for i, qi in enumerate(q2):
            self._set(qi)
            out[i] = min(dist(m, d, a, b, 1.0, fromto) for a, b in pairs)
        return out.reshape(batch)
