"""What the pybullet backend's modules read alike from a compiled MuJoCo model."""

from __future__ import annotations

import mujoco
import numpy as np

HINGE, SLIDE = int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)
FREE, BALL = int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL)


def quat_to_mat(q) -> np.ndarray:
    """The rotation matrix [3, 3] of a MuJoCo quaternion (w, x, y, z)."""
    m = np.empty(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=np.float64))
    return m.reshape(3, 3)


def body_id(m: mujoco.MjModel, name: str) -> int | None:
    """The id of the model's body `name`, or None when it has none of that name."""
    try:
        return int(m.body(name).id)
    except KeyError:
        return None


def moves(m: mujoco.MjModel, body: int) -> bool:
    """Whether a body has a joint on its path to the world."""
    while body > 0:
        if m.body_jntnum[body] > 0:
            return True
        body = int(m.body_parentid[body])
    return False
