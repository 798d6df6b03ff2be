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

from robot_rl.models.mjcf_build import add_scene, add_site, apply_actuator_model, capsule_xml, write

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
    root = capsule_xml(urdf, ("0.85 0.85 0.85 1", "1 0.45 0 1"))
    spec = mujoco.MjSpec.from_string(ET.tostring(root, encoding="unicode"))
    spec.modelname = "iiwa14"
    spec.option.timestep = 0.01  # 100 Hz physics; implicit damping keeps the PD joints stable
    spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT  # the arm has no contacts
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.compiler.autolimits = True

    robot = IIWA14
    apply_actuator_model(spec, robot)

    link7 = spec.body("lbr_iiwa_link_7")
    # the tool centre point `ee` is the flange: no tool is mounted
    add_site(link7, "flange", (0.0, 0.0, FLANGE_OFFSET), (0.1, 0.1, 0.8, 1.0))
    add_site(link7, "ee", (0.0, 0.0, FLANGE_OFFSET), (0.1, 0.8, 0.1, 1.0))
    assert set(robot.frames.values()) == {"ee", "flange"}

    add_scene(spec, camera_pos=[1.9, -1.3, 1.3], camera_target="lbr_iiwa_link_3")
    return spec


def main() -> None:
    write(build(), OUT)


if __name__ == "__main__":
    main()
