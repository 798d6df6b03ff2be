"""End-effector twist -> joint displacement for teleoperation (damped least squares, MuJoCo)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class EeTwistIK:
    """Damped least-squares IK of a base-frame twist at a site (MuJoCo, 6-D Jacobian).

    ``step(q, twist, dt)``: dq = J^T (J J^T + damping^2 I)^-1 [R v; R w] dt, J the [6, n] Jacobian
    (position; rotation) of ``site`` at ``q`` (``joints`` order), R the world <- ``base_body``
    rotation at the model's reference pose (identity without a base body), as the ``ee_delta``
    action term does for a displacement (`robot_rl.terms.actions`)."""

    def __init__(self, xml: str, joints: Sequence[str], site: str, base_body: str | None, damping: float):
        import mujoco

        self._mj = mujoco
        self.m = m = mujoco.MjModel.from_xml_string(xml)
        self.d = mujoco.MjData(m)
        try:
            self.sid = m.site(site).id
        except KeyError:
            raise ValueError(f"ee site {site!r} is not in the robot model") from None
        ids = [m.joint(j).id for j in joints]
        self.qadr = np.array([m.jnt_qposadr[i] for i in ids])
        self.dofadr = np.array([m.jnt_dofadr[i] for i in ids])
        self.damp2 = damping ** 2
        self._jp, self._jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_kinematics(m, self.d)
        self.R = np.eye(3)  # world <- base
        if base_body and mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, base_body) >= 0:
            self.R = self.d.xmat[m.body(base_body).id].reshape(3, 3).copy()

    def ee_pos(self, q: np.ndarray) -> np.ndarray:
        self.d.qpos[self.qadr] = q
        self._mj.mj_kinematics(self.m, self.d)
        return self.d.site_xpos[self.sid].copy()

    def step(self, q: np.ndarray, twist: np.ndarray, dt: float) -> np.ndarray:
        """Joint displacement for ``twist`` [6] (base frame) held for ``dt`` from ``q``."""
        mj, m, d = self._mj, self.m, self.d
        d.qpos[self.qadr] = q
        mj.mj_kinematics(m, d)
        mj.mj_comPos(m, d)
        mj.mj_jacSite(m, d, self._jp, self._jr, self.sid)
        J = np.vstack([self._jp[:, self.dofadr], self._jr[:, self.dofadr]])  # [6, n]
        dx = np.concatenate([self.R @ twist[:3], self.R @ twist[3:]]) * dt
        return J.T @ np.linalg.solve(J @ J.T + self.damp2 * np.eye(6), dx)
