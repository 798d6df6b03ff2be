"""Build `iiwa14.xml` (MJCF) from the KUKA LBR iiwa URDF that ships in `pybullet_data`.

Run `python -m robot_rl.models.iiwa14.build_from_urdf` to regenerate. What it does:

* loads the URDF with MuJoCo's own URDF importer (kinematics, inertias and joint limits unchanged);
* replaces each link mesh by a capsule that MuJoCo fits to that mesh, so the physics model carries
  no mesh data (one model copy per env stays small for domain randomization);
* runs physics at 100 Hz with contacts off (the reach task has none; proximity to obstacles and self
  collision are computed from the capsules);
* adds what a position-controlled arm needs, with the values declared in `robot.py` (`IIWA14`):
  joint damping and armature, gravity compensation (the iiwa's own controller compensates
  gravity), a position actuator per joint with PD gains, end-effector and flange sites, a floor, a light
  and a camera. Task objects (a target marker, a table) are added by the tasks, not here.
"""

from __future__ import annotations

import os
from pathlib import Path

import xml.etree.ElementTree as ET

import mujoco

from robot_rl.models.iiwa14.robot import IIWA14

HERE = Path(__file__).resolve().parent
OUT = HERE / "iiwa14.xml"

FLANGE_OFFSET = 0.045  # m past link 7's origin along its z axis


def urdf_path() -> str:
    import pybullet_data

    return os.path.join(pybullet_data.getDataPath(), "kuka_iiwa", "model.urdf")


def build() -> mujoco.MjSpec:
    urdf = mujoco.MjSpec.from_file(urdf_path())
    # 1. fit a capsule to every link mesh, then rewrite the geoms as plain capsules without meshes.
    for g in urdf.geoms:
        g.type = mujoco.mjtGeom.mjGEOM_CAPSULE
    fitted = urdf.compile()
    root = ET.fromstring(urdf.to_xml())
    for asset in root.findall("asset"):
        root.remove(asset)
    geoms = root.iter("geom")
    for i, g in enumerate(geoms):
        g.attrib.pop("mesh", None)
        g.set("type", "capsule")
        g.set("size", " ".join(f"{v:.5g}" for v in fitted.geom_size[i][:2]))
        g.set("pos", " ".join(f"{v:.5g}" for v in fitted.geom_pos[i]))
        g.set("quat", " ".join(f"{v:.5g}" for v in fitted.geom_quat[i]))
        g.set("contype", "0")
        g.set("conaffinity", "0")
        g.set("rgba", "1 0.45 0 1" if i % 2 else "0.85 0.85 0.85 1")
    for compiler in root.findall("compiler"):
        compiler.attrib.pop("meshdir", None)
    spec = mujoco.MjSpec.from_string(ET.tostring(root, encoding="unicode"))
    spec.modelname = "iiwa14"
    spec.option.timestep = 0.01  # 100 Hz physics; implicit damping keeps the PD joints stable
    spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT  # the arm has no contacts
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.compiler.autolimits = True

    robot = IIWA14
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

    link7 = spec.body("lbr_iiwa_link_7")
    for name, rgba in (("flange", [0.1, 0.1, 0.8, 1.0]), ("ee", [0.1, 0.8, 0.1, 1.0])):
        site = link7.add_site()  # the tool centre point `ee` is the flange: no tool is mounted
        site.name = name
        site.pos = [0.0, 0.0, FLANGE_OFFSET]
        site.size = [0.01, 0.01, 0.01]
        site.rgba = rgba
    assert set(robot.frames.values()) == {"ee", "flange"}

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
    cam.pos = [1.9, -1.3, 1.3]
    cam.mode = mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY
    cam.targetbody = "lbr_iiwa_link_3"
    return spec


def main() -> None:
    spec = build()
    spec.compile()
    OUT.write_text(spec.to_xml())
    m = mujoco.MjModel.from_xml_path(str(OUT))
    print(f"wrote {OUT}: {m.nbody} bodies, {m.njnt} joints, {m.nu} actuators, {m.nmesh} meshes")


if __name__ == "__main__":
    main()
