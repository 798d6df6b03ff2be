"""The robot's URDF for pybullet: the robot's own (`robot.urdf_path()`, the URDF its MJCF was
built from) stripped of its meshes, or, for a robot that declares none, one written from the
compiled MuJoCo model (the same bodies, inertias and joints); with the model's own collision
geoms added where the robot can touch a floor."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

from robot_rl.sim.backend import UnsupportedFeature
from robot_rl.sim.pybullet.mjmodel import HINGE, SLIDE, quat_to_mat


def _mat_to_rpy(r: np.ndarray) -> tuple[float, float, float]:
    """URDF roll-pitch-yaw (R = Rz(yaw) Ry(pitch) Rx(roll)) of a rotation matrix."""
    pitch = math.atan2(-r[2, 0], math.hypot(r[0, 0], r[1, 0]))
    if abs(math.cos(pitch)) < 1e-9:  # gimbal lock: put the rotation into roll
        return math.atan2(-r[1, 2], r[1, 1]), pitch, 0.0
    return math.atan2(r[2, 1], r[2, 2]), pitch, math.atan2(r[1, 0], r[0, 0])


def _fmt(v) -> str:
    return " ".join(f"{float(x):.17g}" for x in v)


def urdf_from_model(model: mujoco.MjModel) -> str:
    """A URDF of the model's kinematic tree (bodies, inertials, hinge/slide joints; no geometry),
    for robots that declare no URDF. Link frames are MuJoCo's body frames, pybullet's joint zero
    is MuJoCo's `jnt_ref`."""
    root = ET.Element("robot", name=model.names[: model.names.index(b"\0")].decode() or "model")
    names = [model.body(b).name or f"body{b}" for b in range(model.nbody)]
    names[0] = "world"
    for b in range(model.nbody):
        link = ET.SubElement(root, "link", name=names[b])
        if b == 0 or model.body_mass[b] <= 0:
            continue
        inertial = ET.SubElement(link, "inertial")
        ET.SubElement(inertial, "origin", xyz=_fmt(model.body_ipos[b]),
                      rpy=_fmt(_mat_to_rpy(quat_to_mat(model.body_iquat[b]))))
        ET.SubElement(inertial, "mass", value=f"{model.body_mass[b]:.17g}")
        ix, iy, iz = model.body_inertia[b]
        ET.SubElement(inertial, "inertia", ixx=f"{ix:.17g}", iyy=f"{iy:.17g}", izz=f"{iz:.17g}",
                      ixy="0", ixz="0", iyz="0")
    for b in range(1, model.nbody):
        nj = int(model.body_jntnum[b])
        parent = int(model.body_parentid[b])
        origin = {"xyz": _fmt(model.body_pos[b]), "rpy": _fmt(_mat_to_rpy(quat_to_mat(model.body_quat[b])))}
        if nj == 0:
            joint = ET.SubElement(root, "joint", name=f"{names[b]}_weld", type="fixed")
        elif nj == 1:
            j = int(model.body_jntadr[b])
            jtype = int(model.jnt_type[j])
            if jtype not in (HINGE, SLIDE):
                raise UnsupportedFeature(f"joint {model.joint(j).name!r} is a {('free', 'ball')[jtype]} joint; "
                                         "the pybullet backend simulates hinge and slide joints")
            if np.any(np.abs(model.jnt_pos[j]) > 1e-12):
                raise UnsupportedFeature(f"joint {model.joint(j).name!r} is not at its body's origin; "
                                         "give the robot a URDF (Robot.urdf) for the pybullet backend")
            limited = bool(model.jnt_limited[j])
            kind = "revolute" if jtype == HINGE else "prismatic"
            if jtype == HINGE and not limited:
                kind = "continuous"
            joint = ET.SubElement(root, "joint", name=model.joint(j).name, type=kind)
            ET.SubElement(joint, "axis", xyz=_fmt(model.jnt_axis[j]))
            ref = float(model.qpos0[model.jnt_qposadr[j]])
            lo, hi = (model.jnt_range[j] - ref) if limited else (-1e6, 1e6)
            if kind != "continuous":
                ET.SubElement(joint, "limit", lower=f"{lo:.17g}", upper=f"{hi:.17g}", effort="1e9", velocity="1e9")
        else:
            raise UnsupportedFeature(f"body {names[b]!r} has {nj} joints; the pybullet backend needs one joint "
                                     "per body (give the robot a URDF)")
        ET.SubElement(joint, "parent", link=names[parent])
        ET.SubElement(joint, "child", link=names[b])
        ET.SubElement(joint, "origin", **origin)
    return ET.tostring(root, encoding="unicode")


def prepared_urdf(path: Path) -> str:
    """The URDF's text without its visual and collision geometry (the kinematics and inertials
    only): rendering goes through MuJoCo, and contacts use the model's own geoms
    (`add_collision_geoms`)."""
    tree = ET.parse(path)
    for link in tree.getroot().iter("link"):
        for child in list(link):
            if child.tag in ("visual", "collision"):
                link.remove(child)
    return ET.tostring(tree.getroot(), encoding="unicode")


def urdf_links(urdf: str, m: mujoco.MjModel) -> dict[int, str]:
    """MuJoCo body -> the URDF link whose frame is its frame (by name; the world: the root)."""
    root = ET.fromstring(urdf)
    names = {link.get("name") for link in root.iter("link")}
    children = {j.find("child").get("link") for j in root.iter("joint")}
    out = {0: next(iter(names - children))}
    for b in range(1, m.nbody):
        if m.body(b).name in names:
            out[b] = m.body(b).name
    return out


_URDF_SHAPES = {int(mujoco.mjtGeom.mjGEOM_SPHERE): "sphere", int(mujoco.mjtGeom.mjGEOM_CAPSULE): "capsule",
                int(mujoco.mjtGeom.mjGEOM_CYLINDER): "cylinder", int(mujoco.mjtGeom.mjGEOM_BOX): "box"}


def add_collision_geoms(urdf: str, model: mujoco.MjModel, geoms, link_of_body: dict[int, str]) -> str:
    """`urdf` with the model's collision geoms `geoms` (spheres, capsules, cylinders, boxes) added
    to the links of their bodies (`link_of_body`: `urdf_links`), at their poses in the body frame
    (= the URDF link frame)."""
    root = ET.fromstring(urdf)
    links = {link.get("name"): link for link in root.iter("link")}
    for g in geoms:
        kind = _URDF_SHAPES.get(int(model.geom_type[g]))
        if kind is None:
            raise UnsupportedFeature(f"geom {model.geom(g).name or g!r} can touch the floor but is a "
                                     f"{mujoco.mjtGeom(int(model.geom_type[g])).name}; the pybullet backend "
                                     "collides spheres, capsules, cylinders and boxes")
        link = links[link_of_body[int(model.geom_bodyid[g])]]
        col = ET.SubElement(link, "collision")
        ET.SubElement(col, "origin", xyz=_fmt(model.geom_pos[g]),
                      rpy=_fmt(_mat_to_rpy(quat_to_mat(model.geom_quat[g]))))
        geo = ET.SubElement(col, "geometry")
        size = model.geom_size[g]
        if kind == "sphere":
            ET.SubElement(geo, kind, radius=f"{size[0]:.17g}")
        elif kind == "box":
            ET.SubElement(geo, kind, size=_fmt(2.0 * size))
        else:
            ET.SubElement(geo, kind, radius=f"{size[0]:.17g}", length=f"{2.0 * size[1]:.17g}")
    return ET.tostring(root, encoding="unicode")
