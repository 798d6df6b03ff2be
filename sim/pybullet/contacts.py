"""Which contacts the model lets the robot make. When it can make none (contacts disabled, or no
pair of geoms that can collide) the pybullet copies carry no collision geometry at all; a world
plane the robot can touch (a collidable floor) becomes a pybullet plane (`world.World`), the
robot's geoms that can touch it being added to its URDF (`urdf.add_collision_geoms`); any other
contact is an `UnsupportedFeature`."""

from __future__ import annotations

from typing import NamedTuple

import mujoco
import numpy as np

from robot_rl.sim.backend import UnsupportedFeature
from robot_rl.sim.pybullet.mjmodel import quat_to_mat

_PLANE = int(mujoco.mjtGeom.mjGEOM_PLANE)


class Plane(NamedTuple):
    """A collidable horizontal world plane (a floor) and the geoms that can touch it."""

    pos: np.ndarray
    normal: np.ndarray
    geom: int
    touching: list[int]


def collidable(m: mujoco.MjModel) -> np.ndarray:
    """[ngeom] geoms that can collide with some other geom."""
    aff = m.geom_contype[:, None] & m.geom_conaffinity[None, :]
    pair = (aff | aff.T) != 0
    np.fill_diagonal(pair, False)
    return pair.any(1)


def geom_name(m: mujoco.MjModel, g: int) -> str:
    return f"geom {m.geom(g).name or g!r} (body {m.body(int(m.geom_bodyid[g])).name or 'world'!r})"


def contact_plane(m: mujoco.MjModel) -> Plane | None:
    """None when the model has no contacts the robot can make; the collidable world plane when
    every contact the model can make is with it; otherwise UnsupportedFeature naming the
    colliding geoms."""
    if m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT:
        return None
    weld = m.body_weldid[m.geom_bodyid]  # MuJoCo filters by weld body (bodies without a joint between)
    world = weld == 0
    aff = (m.geom_contype[:, None] & m.geom_conaffinity[None, :]) != 0
    can = aff | aff.T
    can &= weld[:, None] != weld[None, :]
    parent = m.body_weldid[m.body_parentid[weld]]
    adjacent = (parent[:, None] == weld[None, :]) | (parent[None, :] == weld[:, None])
    if not (m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_FILTERPARENT):
        can &= ~(adjacent & ~world[:, None] & ~world[None, :])
    for sig in m.exclude_signature:
        b1, b2 = int(sig) >> 16, int(sig) & 0xFFFF
        both = (m.geom_bodyid[:, None] == b1) & (m.geom_bodyid[None, :] == b2)
        can &= ~(both | both.T)
    pairs = np.argwhere(np.triu(can))
    if not len(pairs):
        return None
    plane, touching = None, []
    for g1, g2 in pairs:
        w = g1 if world[g1] else g2 if world[g2] else None
        if w is None or int(m.geom_type[w]) != _PLANE:
            raise UnsupportedFeature(
                f"{geom_name(m, int(g1))} and {geom_name(m, int(g2))} can collide in the model; the pybullet "
                "backend simulates contacts with a world plane only (disable the contact, or use mujoco)")
        if plane is not None and plane != int(w):
            raise UnsupportedFeature("the robot can touch two world planes; the pybullet backend adds one")
        plane = int(w)
        touching.append(int(g2 if w == g1 else g1))
    normal = quat_to_mat(m.geom_quat[plane])[:, 2]
    if abs(normal[2]) < 1.0 - 1e-9:
        raise UnsupportedFeature(f"{geom_name(m, plane)} is a tilted plane; the pybullet backend adds a "
                                 "horizontal floor only")
    return Plane(m.geom_pos[plane].copy(), normal.copy(), int(plane), sorted(set(touching)))
