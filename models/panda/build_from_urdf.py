"""Build `panda.xml` (MJCF) from the Franka Emika Panda URDF that ships in `pybullet_data`.

Run `python -m robot_rl.models.panda.build_from_urdf` to regenerate. What it does:

* loads `franka_panda/panda.urdf` with MuJoCo's own URDF importer (kinematics, masses, inertias and
  joint limits unchanged; the URDF's inertias are pybullet's simplified 0.1 kg m^2 per link, kept so
  that the MuJoCo and PyBullet backends simulate the same arm);
* replaces each link mesh by a capsule that MuJoCo fits to that mesh, so the physics model carries
  no mesh data (one model copy per env stays small for domain randomization);
* drops the URDF's massless helper links (`panda_link8`, the flange frame, and
  `panda_grasptarget`): the hand hangs from link 7 directly and the frames become sites;
* runs physics at 100 Hz (`timestep 0.01`, implicitfast): the PD gains of `robot.py` are stable at
  this step (see its docstring), so a 50 Hz policy is `decimation = 2`;
* contacts are on, but only the finger pads collide: arm, hand and finger capsules and the floor
  have `contype = conaffinity = 0`, the two pads `contype = conaffinity = 1` (with a contact
  exclusion between the two fingers, whose pads touch when the hand is closed), so a task that adds
  an object can grasp it; without objects nothing collides;
* adds what a position-controlled arm needs, with the values declared in `robot.py` (`PANDA`):
  joint damping and armature, effort limits, gravity compensation on every moving body (Franka's
  controller compensates the gravity of arm and hand), one PD position actuator per arm joint;
* actuates the gripper: a fixed tendon averaging the two finger joints, driven by one position
  actuator (`PANDA.gripper.actuator`, ctrl = opening of each finger in m, 0..0.04, gains
  `GRIPPER_KP`/`GRIPPER_KD`, tendon force within +-2 max_force so that the squeeze stays within
  `max_force`), and an equality constraint finger joint 2 = finger joint 1 (the hand's mechanical
  coupling);
* adds the sites `ee` (grasp centre), `flange` and `tool` (fingertip end), a visual floor, a light
  and a camera `front`. Task objects (a target marker, a table) are added by the tasks, not here.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco

from robot_rl.models.mjcf_build import add_scene, add_site, apply_actuator_model, capsule_xml, write

from robot_rl.models.panda.robot import GRIPPER_KD, GRIPPER_KP, PANDA

HERE = Path(__file__).resolve().parent
OUT = HERE / "panda.xml"

FLANGE_OFFSET = 0.107  # m past link 7's origin along its z axis (the URDF's panda_joint8)
FINGER_ORIGIN = 0.0584  # m past the flange, where the finger joints sit (the URDF's finger joints)
GRASP_CENTRE = 0.105  # m past the flange: the URDF's panda_grasptarget, mid-height of the finger pads
FINGERTIP = FINGER_ORIGIN + 0.0538  # m past the flange: end of the fingers (finger mesh height)
# finger pad: the flat fingertip inner face, in the finger's frame (inner face at y = 0, which is
# where the two faces meet when the hand is closed)
PAD_HALF = (0.0085, 0.004, 0.009)
PAD_CENTRE_Z = 0.045
TENDON = "panda_fingers"


def urdf_dir() -> str:
    import pybullet_data

    return os.path.join(pybullet_data.getDataPath(), "franka_panda")


def _urdf_spec() -> mujoco.MjSpec:
    """The URDF as MuJoCo imports it, mesh paths resolved (the URDF writes them `package://...`)."""
    d = urdf_dir()
    text = Path(d, "panda.urdf").read_text().replace("package://", d + "/")
    spec = mujoco.MjSpec.from_string(text)
    spec.compiler.fusestatic = False  # keep panda_hand a body of its own (the payload body)
    return spec


def _capsules_xml() -> str:
    """The imported URDF with every mesh geom replaced by its fitted capsule and the massless
    helper links removed."""
    urdf = _urdf_spec()
    root = capsule_xml(urdf, ("0.95 0.95 0.95 1", "0.25 0.25 0.27 1"))
    for equality in root.findall("equality"):  # the importer's <mimic> coupling: `build` adds it, named
        root.remove(equality)
    parents = {child: parent for parent in root.iter() for child in parent}
    link8 = next(b for b in root.iter("body") if b.get("name") == "panda_link8")
    assert link8.get("pos", "0 0 0").split() == ["0", "0", str(FLANGE_OFFSET)] and "quat" not in link8.attrib
    link7 = parents[link8]
    hand = link8.find("body")
    assert hand.get("name") == "panda_hand" and hand.get("pos") is None
    hand.set("pos", f"0 0 {FLANGE_OFFSET}")  # link 8's frame is link 7's, moved along z
    link7.remove(link8)
    link7.append(hand)
    target = next(b for b in hand.iter("body") if b.get("name") == "panda_grasptarget")
    assert target.get("pos").split() == ["0", "0", str(GRASP_CENTRE)]
    hand.remove(target)
    return ET.tostring(root, encoding="unicode")


def build() -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_string(_capsules_xml())
    spec.modelname = "panda"
    spec.option.timestep = 0.01  # 100 Hz physics; implicit damping keeps the PD joints stable
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.compiler.autolimits = True

    robot = PANDA
    apply_actuator_model(spec, robot)
    grip = robot.gripper

    # -- gripper: fingers coupled (equality) and driven through their mean (tendon) -------------
    lo, hi = sorted((grip.closed_position, grip.open_position))
    for name in grip.joint_names:
        j = spec.joint(name)
        assert tuple(j.range) == (lo, hi), (name, j.range)
        j.actfrcrange = [-grip.max_force, grip.max_force]
        j.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
    tendon = spec.add_tendon()
    tendon.name = TENDON
    for name in grip.joint_names:
        tendon.wrap_joint(name, 1.0 / len(grip.joint_names))
    eq = spec.add_equality()
    eq.type = mujoco.mjtEq.mjEQ_JOINT
    eq.name = "panda_finger_coupling"
    eq.name1, eq.name2 = grip.joint_names[1], grip.joint_names[0]  # joint2 = 0 + 1 * joint1
    eq.data[:5] = [0.0, 1.0, 0.0, 0.0, 0.0]
    act = spec.add_actuator()
    act.name = grip.actuator
    act.target = TENDON
    act.trntype = mujoco.mjtTrn.mjTRN_TENDON
    act.set_to_position(kp=GRIPPER_KP, kv=GRIPPER_KD)
    act.ctrlrange = [lo, hi]
    act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    act.forcerange = [-2.0 * grip.max_force, 2.0 * grip.max_force]
    act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE

    # -- finger pads: the only geoms that collide ------------------------------------------------
    fingers = [spec.joint(n).parent for n in grip.joint_names]  # the finger bodies
    for finger, side in zip(fingers, (1.0, -1.0)):  # right finger: its mesh is turned by pi about z
        pad = finger.add_geom()
        pad.name = finger.name.replace("finger", "finger_pad")
        pad.type = mujoco.mjtGeom.mjGEOM_BOX
        pad.size = list(PAD_HALF)
        pad.pos = [0.0, side * PAD_HALF[1], PAD_CENTRE_Z]
        pad.contype = 1
        pad.conaffinity = 1
        pad.condim = 4  # torsional friction: a grasped object does not spin about the grip axis
        pad.friction = [1.0, 0.01, 0.0001]
        pad.rgba = [0.15, 0.15, 0.15, 1.0]  # (no mass: the URDF's finger inertial stands)
    exclude = spec.add_exclude()
    exclude.bodyname1, exclude.bodyname2 = fingers[0].name, fingers[1].name

    # -- frames ------------------------------------------------------------------------------------
    link7 = spec.body("panda_link7")
    hand = spec.body(robot.payload_body)
    add_site(link7, "flange", (0.0, 0.0, FLANGE_OFFSET), (0.1, 0.1, 0.8, 1.0))
    add_site(hand, "ee", (0.0, 0.0, GRASP_CENTRE), (0.1, 0.8, 0.1, 1.0))
    add_site(hand, "tool", (0.0, 0.0, FINGERTIP), (0.8, 0.8, 0.1, 1.0))
    assert set(robot.frames.values()) == {"ee", "flange", "tool"}

    add_scene(spec, camera_pos=[1.25, -0.85, 0.85], camera_target="panda_link3")
    return spec


def main() -> None:
    write(build(), OUT)


if __name__ == "__main__":
    main()
