"""What every robot's MJCF build script shares (`models/<robot>/build_from_urdf.py`): the joint and
actuator model taken from the robot's declaration, a neutral scene (visual floor, light, a `front`
camera), sites, and writing the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco


def capsule_xml(urdf: mujoco.MjSpec, rgba: tuple[str, str]) -> ET.Element:
    """The URDF's MJCF with every link mesh replaced by the capsule MuJoCo fits to it (no mesh data
    left, geoms not colliding), as an XML tree to edit further; `rgba` alternates between links."""
    for g in urdf.geoms:
        g.type = mujoco.mjtGeom.mjGEOM_CAPSULE
    fitted = urdf.compile()
    root = ET.fromstring(urdf.to_xml())
    for asset in root.findall("asset"):
        root.remove(asset)
    for i, g in enumerate(root.iter("geom")):
        g.attrib.pop("mesh", None)
        g.set("type", "capsule")
        g.set("size", " ".join(f"{v:.5g}" for v in fitted.geom_size[i][:2]))
        g.set("pos", " ".join(f"{v:.5g}" for v in fitted.geom_pos[i]))
        g.set("quat", " ".join(f"{v:.5g}" for v in fitted.geom_quat[i]))
        g.set("contype", "0")
        g.set("conaffinity", "0")
        g.set("rgba", rgba[i % 2])
    for compiler in root.findall("compiler"):
        compiler.attrib.pop("meshdir", None)
    return root


def apply_actuator_model(spec: mujoco.MjSpec, robot) -> None:
    """Gravity compensation on every moving body, joint damping, armature, friction loss and effort
    limits, and one PD position actuator per actuated joint (`<joint>` -> `<act>` name), all from
    `robot.actuator` and `robot.effort_limits`."""
    a = robot.actuator
    for body in spec.bodies[1:]:
        body.gravcomp = 1.0 if a.gravity_compensation else 0.0
    for i, name in enumerate(robot.joint_names):
        j = spec.joint(name)
        j.damping = [a.damping[i], 0.0, 0.0]
        j.armature = a.armature[i]
        j.frictionloss = a.frictionloss[i]
        j.actfrcrange = [-robot.effort_limits[i], robot.effort_limits[i]]
        j.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
    for i, name in enumerate(robot.joint_names):
        j = spec.joint(name)
        act = spec.add_actuator()
        act.name = j.name.replace("joint", "act")
        act.target = j.name
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.set_to_position(kp=a.kp[i], kv=a.kd[i])
        act.ctrlrange = j.range
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE


def add_site(body, name: str, pos, rgba) -> None:
    site = body.add_site()
    site.name = name
    site.pos = list(pos)
    site.size = [0.01, 0.01, 0.01]
    site.rgba = list(rgba)


def add_scene(spec: mujoco.MjSpec, camera_pos, camera_target: str) -> None:
    """A visual-only floor, a light, and a `front` camera looking at body `camera_target`."""
    world = spec.worldbody
    floor = world.add_geom()
    floor.name = "floor"
    floor.type = mujoco.mjtGeom.mjGEOM_PLANE
    floor.size = [2.0, 2.0, 0.05]
    floor.rgba = [0.3, 0.35, 0.4, 1.0]
    floor.contype = 0
    floor.conaffinity = 0
    light = world.add_light()
    light.pos = [0.0, 0.0, 3.0]
    light.dir = [0.0, 0.0, -1.0]
    cam = world.add_camera()
    cam.name = "front"
    cam.pos = list(camera_pos)
    cam.mode = mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY
    cam.targetbody = camera_target


def write(spec: mujoco.MjSpec, out: Path) -> None:
    spec.compile()
    out.write_text(spec.to_xml())
    m = mujoco.MjModel.from_xml_path(str(out))
    print(f"wrote {out}: {m.nbody} bodies, {m.njnt} joints, {m.nu} actuators, {m.nmesh} meshes")
