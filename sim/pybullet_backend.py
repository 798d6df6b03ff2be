"""PyBullet: the same robot, from the same URDF, with the same actuator model, in another simulator.

For cross-simulator evaluation (`robot_rl.cross_sim`): a policy trained in MuJoCo runs unchanged in
a second physics engine, so what it learnt about MuJoCo's quirks (integrator, constraint solver,
joint-limit model) shows up as a gap. Everything else is kept identical: the URDF the robot's MJCF
was built from (`robot.urdf_path()`; a robot without one gets a URDF written from the compiled
MuJoCo model, the same bodies, inertias and joints), the nominal masses and inertias of the
MuJoCo model, its actuators, joint damping, armature, friction loss and gravity compensation.

World. One pybullet client in DIRECT mode holds `num_envs` copies of the robot (fixed base, no
self-collision), 4 m apart on a grid with collisions filtered out, so they never interact. When
the task model has no contacts (contacts disabled, or no pair of geoms that can collide) the
copies are loaded without their visual and collision geometry (loading the meshes costs ~40 ms
per copy; rendering goes through MuJoCo, `render_data`). A world plane the robot can touch
(a collidable floor) becomes a pybullet plane; any other contact is an `UnsupportedFeature`.

Mapping. Joints and bodies are matched by NAME: MuJoCo's URDF importer names them after the
URDF's joints and links. `qpos`/`qvel` are laid out exactly like MuJoCo's (`nq`, `nv`), with joint
positions relative to MuJoCo's `qpos` (pybullet's zero is MuJoCo's `jnt_ref`). The construction
checks the kinematics: every mapped body's frame must agree with MuJoCo's at a random
configuration, or it raises. MuJoCo joints that pybullet lacks (a task scene's free object) are an
`UnsupportedFeature` unless visual-only (no collidable geom in their subtree; they then stay where
`set_joint_state` puts them); pybullet joints that MuJoCo lacks are an `UnsupportedFeature`.

Actuators (as MuJoCo computes them). pybullet's default velocity motors are disabled, the joints
are TORQUE controlled: `force = gain * ctrl + bias` with MuJoCo's affine gain/bias
(`gain[0] + gain[1] L + gain[2] Ldot`, `bias[0] + bias[1] L + bias[2] Ldot`, `L` the transmission
length: `gear * q` for a joint, `sum(coef * q)` for a fixed tendon), `ctrl` clamped to
`ctrlrange`, the force to `forcerange`, the joint torque to the joint's `actuatorfrcrange`, all
from the per-env `actuator_gainprm/biasprm`. Passive terms: `-damping * qdot` and the joint
stiffness spring are added to the torque.

Approximations (documented, measured in tests/test_pybullet_backend.py):

* **Gravity compensation** is exact in MuJoCo's sense: MuJoCo applies `gravcomp_b * m_b * (-g)` at
  each body's centre of mass; the torque `J^T F` of those forces is the gravity torque of the same
  robot with masses `gravcomp_b * m_b`. The backend keeps, per env, a *shadow* copy of the robot in
  a second (never stepped) pybullet client whose link masses are `gravcomp_b * m_b` (updated by
  `set_physics` of `body_mass` and `body_gravcomp`) and adds `calculateInverseDynamics(q, 0, 0)` of
  the shadow at every internal step. With DR, `gravcomp * mass` stays the nominal mass (the
  controller knows the nominal model only), so a payload sags the arm as in MuJoCo.
* **Armature** (reflected rotor inertia): PyBullet has none. It is added to the child link's
  inertia about the joint axis (`I += a axis axis^T`, re-expressed in the link's principal frame;
  a joint axis that is not a principal axis of the link raises). The joint sees `+a` on its own
  mass-matrix diagonal as in MuJoCo, but the rotor also appears in the other joints' dynamics
  (`a (u . axis)^2` for a joint of axis `u`, plus Coriolis terms), where MuJoCo adds it to the
  diagonal only. Armature on a slide joint is unsupported (it would be a mass).
* **Friction loss** (dry joint friction) is pybullet's joint-friction idiom: a velocity motor
  with target 0 and maximum force `frictionloss` (a constraint, like MuJoCo's soft one).
* **Integration**: MuJoCo steps the PD law implicitly (implicitfast) at `model.opt.timestep`;
  explicit PD torques (kd = 40 N m s/rad) on a link of ~0.1 kg m^2 are unstable at 10 ms. pybullet
  steps at `physics_dt / substeps`, the torque recomputed every internal step, so `step(ctrl, n)`
  advances exactly `n * model.opt.timestep` seconds. `substeps` (default: `auto`) is chosen from
  the model: the fastest mode of the PD + damping law at the default pose,
  `lambda = max eig(M^-1 Kd)` and `omega = sqrt(max eig(M^-1 Kp))`, must satisfy
  `h * lambda <= 0.25` and `h * omega <= 0.25` (`SUBSTEP_MARGIN`); for the iiwa (armature 0.1,
  kd 40) this gives 10 substeps (1 ms); measurements in the tests file and the report.
  The internal step only ever shrinks: a variant whose gains need a finer step (DR) refines it for
  every env.

Snapshot timing mirrors the MuJoCo backend: MuJoCo's sensors are computed at the start of the
last physics step, so `qpos`, `qvel`, `frame_pos` and `joint_effort` after `step(ctrl, n)` are the
state at the start of the last of the `n` physics steps (one physics step old); a policy sees the
same observation delay in both simulators.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import torch

from robot_rl.sim.backend import PHYSICS_FIELDS, SimBackend, UnsupportedFeature
from robot_rl.sim.mujoco_backend import effort_sensors, frame_sensors

try:
    import pybullet as pb
except ImportError as e:  # the registry turns this into an install hint
    raise ImportError("pybullet is not installed", name="pybullet") from e

SPACING = 4.0
"""Metres between two robot copies (collisions are filtered out as well)."""
SUBSTEP_MARGIN = 0.4
"""`h * lambda` and `h * omega` bound for the internal step chosen from the nominal model."""
STABILITY_LIMIT = 0.7
"""A variant (DR) whose `h * lambda` exceeds this refines the internal step (measured: 0.8 is still
stable and accurate for the iiwa, 1.0 is not)."""
MAX_INTERNAL_DT = 0.002
"""The internal step is at most this (s), for accuracy (pybullet's own default is 1/240 s)."""
MAX_SUBSTEPS = 50
KINEMATICS_TOL = 1e-5
"""How far (m, and rotation-matrix entries) a URDF link frame may be from MuJoCo's body frame."""

_HINGE, _SLIDE = int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)
_FREE, _BALL = int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL)
_GAIN_FIXED, _GAIN_AFFINE = int(mujoco.mjtGain.mjGAIN_FIXED), int(mujoco.mjtGain.mjGAIN_AFFINE)
_BIAS_NONE, _BIAS_AFFINE = int(mujoco.mjtBias.mjBIAS_NONE), int(mujoco.mjtBias.mjBIAS_AFFINE)
_TRN_JOINT, _TRN_TENDON = int(mujoco.mjtTrn.mjTRN_JOINT), int(mujoco.mjtTrn.mjTRN_TENDON)
_WRAP_JOINT, _DYN_NONE = int(mujoco.mjtWrap.mjWRAP_JOINT), int(mujoco.mjtDyn.mjDYN_NONE)
_PLANE = int(mujoco.mjtGeom.mjGEOM_PLANE)


# -- URDF preparation ----------------------------------------------------------------------------
def _quat_to_mat(q) -> np.ndarray:
    m = np.empty(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=np.float64))
    return m.reshape(3, 3)


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
                      rpy=_fmt(_mat_to_rpy(_quat_to_mat(model.body_iquat[b]))))
        ET.SubElement(inertial, "mass", value=f"{model.body_mass[b]:.17g}")
        ix, iy, iz = model.body_inertia[b]
        ET.SubElement(inertial, "inertia", ixx=f"{ix:.17g}", iyy=f"{iy:.17g}", izz=f"{iz:.17g}",
                      ixy="0", ixz="0", iyz="0")
    for b in range(1, model.nbody):
        nj = int(model.body_jntnum[b])
        parent = int(model.body_parentid[b])
        origin = {"xyz": _fmt(model.body_pos[b]), "rpy": _fmt(_mat_to_rpy(_quat_to_mat(model.body_quat[b])))}
        if nj == 0:
            joint = ET.SubElement(root, "joint", name=f"{names[b]}_weld", type="fixed")
        elif nj == 1:
            j = int(model.body_jntadr[b])
            jtype = int(model.jnt_type[j])
            if jtype not in (_HINGE, _SLIDE):
                raise UnsupportedFeature(f"joint {model.joint(j).name!r} is a {('free', 'ball')[jtype]} joint; "
                                         "the pybullet backend simulates hinge and slide joints")
            if np.any(np.abs(model.jnt_pos[j]) > 1e-12):
                raise UnsupportedFeature(f"joint {model.joint(j).name!r} is not at its body's origin; "
                                         "give the robot a URDF (Robot.urdf) for the pybullet backend")
            limited = bool(model.jnt_limited[j])
            kind = "revolute" if jtype == _HINGE else "prismatic"
            if jtype == _HINGE and not limited:
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


def prepared_urdf(path: Path, keep_collision: bool) -> str:
    """The URDF's text without visual geometry (and without collision geometry unless kept), with
    mesh paths made absolute so that it loads from anywhere."""
    tree = ET.parse(path)
    base = Path(path).parent
    for link in tree.getroot().iter("link"):
        for child in list(link):
            if child.tag == "visual" or (child.tag == "collision" and not keep_collision):
                link.remove(child)
    for mesh in tree.getroot().iter("mesh"):
        f = mesh.get("filename", "")
        if f and "://" not in f and not os.path.isabs(f):
            mesh.set("filename", str(base / f))
    return ET.tostring(tree.getroot(), encoding="unicode")


# -- the backend -----------------------------------------------------------------------------------
class PybulletBackend(SimBackend):
    """`num_envs` copies of the robot's URDF in one pybullet world, MuJoCo's actuator model."""

    name = "pybullet"
    exact_variants = True

    def __init__(self, model: mujoco.MjModel, robot, num_envs: int, device="cpu", nthread: int | None = None,
                 num_variants: int = 0, substeps: int | str = "auto"):
        super().__init__(model, robot, num_envs, device)
        if self.device.type != "cpu":
            raise UnsupportedFeature(f"the pybullet backend runs on the CPU only, not on {self.device}")
        self.num_variants = self.num_envs
        m = model
        self._tmp = Path(tempfile.mkdtemp(prefix="robot_rl_pybullet_"))
        self._client = self._shadow_client = -1
        try:
            self._build(m, robot, substeps)
        except BaseException:
            self.close()
            raise

    # -- construction ------------------------------------------------------------------------------
    def _build(self, m: mujoco.MjModel, robot, substeps) -> None:
        n = self.num_envs
        self._scratch = mujoco.MjData(m)
        plane = self._contact_plane(m)
        if robot.urdf:
            text = prepared_urdf(robot.urdf_path(), keep_collision=plane is not None)
        else:
            text = urdf_from_model(m)
        urdf = self._tmp / "robot.urdf"
        urdf.write_text(text)

        self._client = pb.connect(pb.DIRECT)
        self._shadow_client = pb.connect(pb.DIRECT)
        c, s = self._client, self._shadow_client
        gravity = [0.0, 0.0, 0.0] if m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_GRAVITY else list(m.opt.gravity)
        for cid in (c, s):
            pb.setGravity(*gravity, physicsClientId=cid)
        self._gravity = np.asarray(gravity)

        # the base: the URDF's root link is MuJoCo's world (fused by the URDF importer) or a body
        flags = pb.URDF_USE_INERTIA_FROM_FILE
        probe = pb.loadURDF(str(urdf), useFixedBase=True, flags=flags, physicsClientId=s)
        root_name = pb.getBodyInfo(probe, physicsClientId=s)[0].decode()
        pb.removeBody(probe, physicsClientId=s)
        mujoco.mj_resetData(m, self._scratch)
        mujoco.mj_kinematics(m, self._scratch)
        root_body = self._body_id(root_name)
        if root_body is None or root_body == 0:
            root_body = 0
            base_pos, base_quat = np.zeros(3), np.array([1.0, 0, 0, 0])
        else:
            if self._moves(root_body):
                raise UnsupportedFeature(f"the URDF's root link {root_name!r} moves in the model (a floating base); "
                                         "the pybullet backend loads robots with a fixed base")
            base_pos = self._scratch.xpos[root_body].copy()
            base_quat = self._scratch.xquat[root_body].copy()
        self._root_body = root_body
        cols = max(1, math.ceil(math.sqrt(n)))
        self._offsets = np.array([[SPACING * (i % cols), SPACING * (i // cols), 0.0] for i in range(n)])
        orn = [base_quat[1], base_quat[2], base_quat[3], base_quat[0]]
        self._bodies = [pb.loadURDF(str(urdf), (self._offsets[i] + base_pos).tolist(), orn, useFixedBase=True,
                                    flags=flags, physicsClientId=c) for i in range(n)]
        self._shadows = [pb.loadURDF(str(urdf), base_pos.tolist(), orn, useFixedBase=True, flags=flags,
                                     physicsClientId=s) for _ in range(n)]
        self._base_pos, self._base_rot = base_pos, _quat_to_mat(base_quat)
        b0 = self._bodies[0]

        # pybullet joints and links by name
        njoint = pb.getNumJoints(b0, physicsClientId=c)
        info = [pb.getJointInfo(b0, j, physicsClientId=c) for j in range(njoint)]
        self._pb_link = {root_name: -1, **{i[12].decode(): i[0] for i in info}}
        link_parent = {i[0]: i[16] for i in info}
        movable = [i for i in info if i[2] in (pb.JOINT_REVOLUTE, pb.JOINT_PRISMATIC)]
        self._map_joints(m, movable, info)
        self._map_bodies(m, link_parent, info)

        for cid, bodies in ((c, self._bodies), (s, self._shadows)):
            for b in bodies:
                for link in range(-1, njoint):
                    pb.changeDynamics(b, link, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
                                      physicsClientId=cid)
                    pb.setCollisionFilterGroupMask(b, link, 0, 0, physicsClientId=cid)
        if plane is not None:
            self._add_plane(*plane)
        self._check_kinematics(m)
        self._setup_actuators(m)

        # per-env physics parameters, nominal to start with
        nom = {f: np.array(getattr(m, f)) for f in PHYSICS_FIELDS}
        self._params = {f: np.repeat(v[None], n, 0) for f, v in nom.items()}
        nb = len(self._link_of_body)
        self._applied_inertia = np.full((n, nb, 3), np.nan)
        self._applied_mass = np.full((n, nb), np.nan)
        self._applied_gc = np.full((n, nb), np.nan)
        self._applied_friction: dict[tuple[int, int], tuple] = {}
        self._applied_frictionloss = np.full((n, self._ndof), np.nan)
        self._check_inertia_frames(m)
        ids = np.arange(n)
        self._substeps = 1
        self._substeps = self._choose_substeps(substeps)
        self._apply_masses(ids)
        self._apply_inertias(ids)
        self._apply_frictionloss(ids, force=True)
        self._apply_geom_friction(ids)

        # state: MuJoCo's layout; `_q`/`_qd` the current state, `observed` the snapshot
        self.state_qpos = np.tile(m.qpos0, (n, 1))
        self.state_qvel = np.zeros((n, m.nv))
        self.observed_qpos = self.state_qpos.copy()
        self.observed_qvel = self.state_qvel.copy()
        self.qpos = torch.from_numpy(self.observed_qpos)
        self.qvel = torch.from_numpy(self.observed_qvel)
        self._frames = frame_sensors(m)
        self._frame_links = sorted({self._site_link(site)[0] for site in self._frames} - {-1})
        self._frame_pos = np.zeros((n, len(self._frame_links), 3))
        self._frame_rot = np.zeros((n, len(self._frame_links), 3, 3))
        self._frame_cache: dict[str, torch.Tensor] = {}
        mujoco.mj_resetData(m, self._scratch)
        mujoco.mj_kinematics(m, self._scratch)
        self._site_buf = {site: np.tile(self._scratch.site_xpos[m.site(site).id], (n, 1)) for site in self._frames}
        self._site_links = {site: self._site_link(site) for site in self._frames}
        self._effort_all = np.zeros((n, self._ndof))
        self._effort = None
        self._ctrl = np.zeros((n, m.nu))
        self.set_joint_state(torch.arange(n), torch.from_numpy(self.state_qpos.copy()),
                             torch.zeros(n, m.nv, dtype=torch.float64))

    def _body_id(self, name: str) -> int | None:
        try:
            return int(self.model.body(name).id)
        except KeyError:
            return None

    def _moves(self, body: int) -> bool:
        """Whether a body has a joint on its path to the world."""
        m = self.model
        while body > 0:
            if m.body_jntnum[body] > 0:
                return True
            body = int(m.body_parentid[body])
        return False

    def _collidable(self, m: mujoco.MjModel) -> np.ndarray:
        """[ngeom] geoms that can collide with some other geom."""
        aff = m.geom_contype[:, None] & m.geom_conaffinity[None, :]
        pair = (aff | aff.T) != 0
        np.fill_diagonal(pair, False)
        return pair.any(1)

    def _contact_plane(self, m: mujoco.MjModel):
        """None when the model has no contacts the robot can make; (pos, normal) of a collidable
        world plane; otherwise UnsupportedFeature naming the colliding geoms."""
        if m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT:
            return None
        world = m.geom_bodyid == 0
        aff = (m.geom_contype[:, None] & m.geom_conaffinity[None, :]) != 0
        can = aff | aff.T
        np.fill_diagonal(can, False)
        can &= m.geom_bodyid[:, None] != m.geom_bodyid[None, :]
        can &= ~(world[:, None] & world[None, :])
        parent = m.body_parentid[m.geom_bodyid]
        adjacent = (parent[:, None] == m.geom_bodyid[None, :]) | (parent[None, :] == m.geom_bodyid[:, None])
        if not (m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_FILTERPARENT):
            can &= ~(adjacent & (m.geom_bodyid[:, None] != 0) & (m.geom_bodyid[None, :] != 0))
        for sig in m.exclude_signature:
            b1, b2 = int(sig) >> 16, int(sig) & 0xFFFF
            both = (m.geom_bodyid[:, None] == b1) & (m.geom_bodyid[None, :] == b2)
            can &= ~(both | both.T)
        pairs = np.argwhere(np.triu(can))
        if not len(pairs):
            return None
        plane = None
        for g1, g2 in pairs:
            w = g1 if world[g1] else g2 if world[g2] else None
            if w is None or int(m.geom_type[w]) != _PLANE:
                raise UnsupportedFeature(
                    f"geoms {m.geom(g1).name or g1!r} and {m.geom(g2).name or g2!r} can collide in the model; the "
                    "pybullet backend simulates contacts with a world plane only (disable the contact, or use mujoco)")
            if plane is not None and plane != int(w):
                raise UnsupportedFeature("the robot can touch two world planes; the pybullet backend adds one")
            plane = int(w)
        rot = _quat_to_mat(m.geom_quat[plane])
        return m.geom_pos[plane].copy(), rot[:, 2].copy(), int(plane)

    def _add_plane(self, pos, normal, geom) -> None:
        c = self._client
        shape = pb.createCollisionShape(pb.GEOM_PLANE, planeNormal=normal.tolist(), physicsClientId=c)
        self._plane = pb.createMultiBody(0, shape, basePosition=pos.tolist(), physicsClientId=c)
        pb.changeDynamics(self._plane, -1, lateralFriction=float(self.model.geom_friction[geom, 0]), physicsClientId=c)
        pb.setCollisionFilterGroupMask(self._plane, -1, 2, 1, physicsClientId=c)
        for b in self._bodies:
            for link in self._pb_link.values():
                pb.setCollisionFilterGroupMask(b, link, 1, 2, physicsClientId=c)

    def _map_joints(self, m: mujoco.MjModel, movable, info) -> None:
        pb_joint = {i[1].decode(): i for i in movable}
        used = set()
        self._pb_dofs: list[int] = []  # pybullet joint index per mapped dof
        self._mj_qpos: list[int] = []
        self._mj_dof: list[int] = []
        self._ref: list[float] = []
        self._dof_type: list[int] = []
        self._dof_link: list[int] = []
        self._dof_axis: list[np.ndarray] = []
        self._static_qpos: list[int] = []  # qpos entries of visual-only joints (held as set)
        collidable = self._collidable(m)
        if m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT:
            collidable[:] = False
        for j in range(m.njnt):
            name = m.joint(j).name
            jtype = int(m.jnt_type[j])
            hit = pb_joint.get(name)
            if hit is None or jtype in (_FREE, _BALL):
                if self._visual_only(m, int(m.jnt_bodyid[j]), collidable):
                    adr, size = int(m.jnt_qposadr[j]), {_FREE: 7, _BALL: 4}.get(jtype, 1)
                    self._static_qpos += list(range(adr, adr + size))
                    continue
                what = "not a joint of the URDF" if hit is None else f"a {('free', 'ball')[jtype]} joint"
                raise UnsupportedFeature(f"joint {name!r} of the model is {what}; the pybullet backend simulates "
                                         "the robot's URDF joints (and holds visual-only objects still)")
            want = pb.JOINT_REVOLUTE if jtype == _HINGE else pb.JOINT_PRISMATIC
            if hit[2] != want:
                raise UnsupportedFeature(f"joint {name!r} is a {'hinge' if jtype == _HINGE else 'slide'} joint in the "
                                         "model but not in the URDF")
            used.add(name)
            self._pb_dofs.append(hit[0])
            self._mj_qpos.append(int(m.jnt_qposadr[j]))
            self._mj_dof.append(int(m.jnt_dofadr[j]))
            self._ref.append(float(m.qpos0[m.jnt_qposadr[j]]))
            self._dof_type.append(jtype)
            self._dof_link.append(hit[0])
            self._dof_axis.append(np.asarray(hit[13], dtype=np.float64))
        extra = sorted(set(pb_joint) - used)
        if extra:
            raise UnsupportedFeature(f"URDF joints {extra} are not joints of the model; the pybullet backend needs "
                                     "the model's joints to be the URDF's")
        order = np.argsort(self._pb_dofs)  # pybullet's dof order (inverse dynamics takes all dofs in it)
        for attr in ("_pb_dofs", "_mj_qpos", "_mj_dof", "_ref", "_dof_type", "_dof_link", "_dof_axis"):
            setattr(self, attr, [getattr(self, attr)[k] for k in order])
        self._ndof = len(self._pb_dofs)
        self._mj_qpos_a = np.asarray(self._mj_qpos, dtype=np.int64)
        self._mj_dof_a = np.asarray(self._mj_dof, dtype=np.int64)
        self._ref_a = np.asarray(self._ref)

    def _visual_only(self, m: mujoco.MjModel, body: int, collidable: np.ndarray) -> bool:
        sub = {body}
        for b in range(body + 1, m.nbody):
            if int(m.body_parentid[b]) in sub:
                sub.add(b)
        if any(self._pb_link.get(m.body(b).name) is not None for b in sub):
            return False
        return not any(collidable[g] for g in range(m.ngeom) if int(m.geom_bodyid[g]) in sub)

    def _map_bodies(self, m: mujoco.MjModel, link_parent: dict, info) -> None:
        """MuJoCo body -> the pybullet links it is made of (a URDF link fused into its parent by
        MuJoCo's importer belongs to the parent's body)."""
        fixed = {i[0]: i[2] == pb.JOINT_FIXED for i in info}
        link_body: dict[int, int] = {}
        for name, link in sorted(self._pb_link.items(), key=lambda kv: kv[1]):
            b = self._body_id(name)
            if link == -1:
                b = self._root_body
            if b is None:
                if not fixed.get(link, False):
                    raise UnsupportedFeature(f"URDF link {name!r} is not a body of the model")
                b = link_body[link_parent[link]]  # fused into its parent's body
            link_body[link] = b
        self._link_body = link_body
        groups: dict[int, list[int]] = {}
        for link, b in link_body.items():
            if b != 0 and link != -1:
                groups.setdefault(b, []).append(link)
        self._link_of_body = sorted(groups)  # MuJoCo bodies simulated by pybullet links
        self._groups = groups
        self._body_link = {b: min(ls) for b, ls in groups.items()}  # the link whose frame is the body's
        c = self._client
        self._pb_nominal_mass = {l: pb.getDynamicsInfo(self._bodies[0], l, physicsClientId=c)[0]
                                 for l in link_body if l != -1}
        for b, links in groups.items():
            if len(links) > 1:
                total = sum(self._pb_nominal_mass[l] for l in links)
                if abs(total - m.body_mass[b]) > 1e-6 * max(1.0, m.body_mass[b]):
                    raise UnsupportedFeature(f"body {m.body(b).name!r} weighs {m.body_mass[b]:.6g} kg in the model "
                                             f"but its URDF links {links} weigh {total:.6g} kg")

    def _site_link(self, site: str) -> tuple[int, int]:
        """(pybullet link or -1 for the base/world, MuJoCo body) of a site."""
        m = self.model
        b = int(m.site_bodyid[m.site(site).id])
        if b == 0 or b == self._root_body:
            return -1, b
        if b not in self._body_link:
            if self._moves(b):
                raise UnsupportedFeature(f"site {site!r} is on body {m.body(b).name!r}, which the pybullet "
                                         "backend does not simulate")
            return -1, b
        return self._body_link[b], b

    def _check_kinematics(self, m: mujoco.MjModel) -> None:
        """Every mapped body's frame agrees with the URDF link frame at a random configuration."""
        rng = np.random.default_rng(0)
        c, body = self._client, self._bodies[0]
        d = self._scratch
        d.qpos[:] = m.qpos0
        for k in range(self._ndof):
            j = m.dof_jntid[self._mj_dof[k]]
            lo, hi = m.jnt_range[j] if m.jnt_limited[j] else (-1.0, 1.0)
            d.qpos[self._mj_qpos[k]] = rng.uniform(max(lo, -1.0), min(hi, 1.0))
            pb.resetJointState(body, self._pb_dofs[k], d.qpos[self._mj_qpos[k]] - self._ref[k], physicsClientId=c)
        mujoco.mj_kinematics(m, d)
        for b, link in self._body_link.items():
            st = pb.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=c)
            pos = np.asarray(st[4]) - self._offsets[0]
            rot = np.asarray(pb.getMatrixFromQuaternion(st[5])).reshape(3, 3)
            err = max(np.abs(pos - d.xpos[b]).max(), np.abs(rot - d.xmat[b].reshape(3, 3)).max())
            if err > KINEMATICS_TOL:
                raise UnsupportedFeature(f"the URDF's link {m.body(b).name!r} is {err:.2g} (m or rotation) away from "
                                         "the model's body: the URDF and the model describe different robots")
        for k in range(self._ndof):
            pb.resetJointState(body, self._pb_dofs[k], 0.0, physicsClientId=c)

    def _setup_actuators(self, m: mujoco.MjModel) -> None:
        """Moment arms [nu, ndof] and the actuators' kinds (MuJoCo semantics)."""
        col = {dof: k for k, dof in enumerate(self._mj_dof)}
        moment = np.zeros((m.nu, self._ndof))
        for a in range(m.nu):
            name = m.actuator(a).name or f"actuator {a}"
            if int(m.actuator_dyntype[a]) != _DYN_NONE:
                raise UnsupportedFeature(f"actuator {name!r} has activation dynamics; the pybullet backend "
                                         "simulates stateless actuators")
            if int(m.actuator_gaintype[a]) not in (_GAIN_FIXED, _GAIN_AFFINE):
                raise UnsupportedFeature(f"actuator {name!r}: gain type {m.actuator_gaintype[a]} is not supported")
            if int(m.actuator_biastype[a]) not in (_BIAS_NONE, _BIAS_AFFINE):
                raise UnsupportedFeature(f"actuator {name!r}: bias type {m.actuator_biastype[a]} is not supported")
            gear = float(m.actuator_gear[a, 0])
            trn, tid = int(m.actuator_trntype[a]), int(m.actuator_trnid[a, 0])
            if trn == _TRN_JOINT:
                dof = int(m.jnt_dofadr[tid])
                if dof not in col or m.jnt_type[tid] not in (_HINGE, _SLIDE):
                    raise UnsupportedFeature(f"actuator {name!r} drives joint {m.joint(tid).name!r}, which the "
                                             "pybullet backend does not simulate")
                moment[a, col[dof]] = gear
            elif trn == _TRN_TENDON:
                adr, num = int(m.tendon_adr[tid]), int(m.tendon_num[tid])
                for w in range(adr, adr + num):
                    if int(m.wrap_type[w]) != _WRAP_JOINT or int(m.jnt_dofadr[m.wrap_objid[w]]) not in col:
                        raise UnsupportedFeature(f"actuator {name!r} drives tendon {m.tendon(tid).name!r}, which "
                                                 "is not a fixed tendon of simulated joints")
                    moment[a, col[int(m.jnt_dofadr[m.wrap_objid[w]])]] += gear * float(m.wrap_prm[w])
            else:
                raise UnsupportedFeature(f"actuator {name!r}: transmission type {trn} is not supported "
                                         "(joint and fixed-tendon transmissions are)")
        self._moment = moment
        self._gain_affine = m.actuator_gaintype == _GAIN_AFFINE
        self._bias_affine = m.actuator_biastype == _BIAS_AFFINE
        clamp = not (m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CLAMPCTRL)
        self._ctrl_lo = np.where(m.actuator_ctrllimited & clamp, m.actuator_ctrlrange[:, 0], -np.inf)
        self._ctrl_hi = np.where(m.actuator_ctrllimited & clamp, m.actuator_ctrlrange[:, 1], np.inf)
        self._force_lo = np.where(m.actuator_forcelimited, m.actuator_forcerange[:, 0], -np.inf)
        self._force_hi = np.where(m.actuator_forcelimited, m.actuator_forcerange[:, 1], np.inf)
        jnt = m.dof_jntid[self._mj_dof_a]
        self._jfrc_lo = np.where(m.jnt_actfrclimited[jnt], m.jnt_actfrcrange[jnt, 0], -np.inf)
        self._jfrc_hi = np.where(m.jnt_actfrclimited[jnt], m.jnt_actfrcrange[jnt, 1], np.inf)
        self._actgravcomp = m.jnt_actgravcomp[jnt].astype(bool)
        self._stiffness = m.jnt_stiffness[jnt].copy()
        self._spring = m.qpos_spring[self._mj_qpos_a].copy()
        if m.neq:
            active = [m.equality(i).name or str(i) for i in range(m.neq) if m.eq_active0[i]]
            if active:
                raise UnsupportedFeature(f"equality constraints {active} are not supported by the pybullet backend")
        if any(m.dof_armature[self._mj_dof_a[k]] > 0 and self._dof_type[k] == _SLIDE for k in range(self._ndof)):
            raise UnsupportedFeature("armature on a slide joint is not supported by the pybullet backend")

    def _check_inertia_frames(self, m: mujoco.MjModel) -> None:
        """Principal frames: MuJoCo's (iquat, in the body frame) and pybullet's (inertial orn, in the
        link frame = the body frame), the joint axes of each link (for armature), and the COM."""
        c, b0 = self._client, self._bodies[0]
        self._rot_mj, self._rot_pb, self._link_axes = {}, {}, {}
        for b in self._link_of_body:
            links = self._groups[b]
            if len(links) > 1:
                continue  # fused bodies: scaled link by link (see _apply_inertias)
            link = links[0]
            di = pb.getDynamicsInfo(b0, link, physicsClientId=c)
            if np.abs(np.asarray(di[3]) - m.body_ipos[b]).max() > KINEMATICS_TOL:
                raise UnsupportedFeature(f"body {m.body(b).name!r}: the URDF's centre of mass {tuple(di[3])} is not "
                                         f"the model's {tuple(m.body_ipos[b])}; pybullet cannot move it")
            self._rot_mj[b] = _quat_to_mat(m.body_iquat[b])
            q = di[4]
            self._rot_pb[b] = np.asarray(pb.getMatrixFromQuaternion(q)).reshape(3, 3)
            self._link_axes[b] = [(k, self._dof_axis[k] / np.linalg.norm(self._dof_axis[k]))
                                  for k in range(self._ndof) if self._dof_link[k] == link and self._dof_type[k] == _HINGE]
        self._pb_nominal_inertia = {l: np.asarray(pb.getDynamicsInfo(b0, l, physicsClientId=c)[2])
                                    for ls in self._groups.values() for l in ls}

    # -- internal step -----------------------------------------------------------------------------
    def _mode_rates(self, gain_bias: tuple[np.ndarray, np.ndarray], damping: np.ndarray,
                    armature: np.ndarray) -> tuple[float, float]:
        """(lambda, omega): the fastest damping rate and natural frequency of the joint-space PD +
        damping law at the default pose (MuJoCo's mass matrix with the given armature)."""
        m = self.model
        if getattr(self, "_mass0", None) is None:  # MuJoCo's mass matrix at the default pose, no armature
            d = self._scratch
            d.qpos[:] = m.qpos0
            d.qpos[self.joint_qpos_index(self.robot.joint_names)] = self.robot.default_pose
            mujoco.mj_forward(m, d)
            full = np.zeros((m.nv, m.nv))
            mujoco.mj_fullM(m, d, full)
            idx = self._mj_dof_a
            self._mass0 = full[np.ix_(idx, idx)] - np.diag(m.dof_armature[idx])
        idx = self._mj_dof_a
        mass = self._mass0 + np.diag(np.asarray(armature)[idx])
        if not self._ndof:
            return 0.0, 0.0
        _, bias = gain_bias
        kd = np.diag(np.asarray(damping)[idx])
        kp = np.diag(self._stiffness)
        for a in range(m.nu):
            if self._bias_affine[a]:
                arm = np.outer(self._moment[a], self._moment[a])
                kp = kp + arm * max(0.0, -bias[a, 1])
                kd = kd + arm * max(0.0, -bias[a, 2])
        minv = np.linalg.inv(mass)
        lam = float(np.max(np.abs(np.linalg.eigvals(minv @ kd))))
        w2 = float(np.max(np.abs(np.linalg.eigvals(minv @ kp))))
        return lam, math.sqrt(w2)

    def _needed_substeps(self, ids, bound: float) -> int:
        """Substeps for which `h * max(lambda, omega) <= bound` in every env of `ids`."""
        need = 1
        p = self._params
        seen = set()
        for i in ids:
            key = (p["actuator_gainprm"][i].tobytes(), p["actuator_biasprm"][i].tobytes(), p["dof_damping"][i].tobytes(),
                   p["dof_armature"][i].tobytes())
            if key in seen:
                continue
            seen.add(key)
            lam, omega = self._mode_rates((p["actuator_gainprm"][i], p["actuator_biasprm"][i]), p["dof_damping"][i],
                                          p["dof_armature"][i])
            need = max(need, math.ceil(self.physics_dt * max(lam, omega) / bound - 1e-9))
        return min(need, MAX_SUBSTEPS)

    def _choose_substeps(self, substeps) -> int:
        if substeps == "auto":
            n = max(self._needed_substeps([0], SUBSTEP_MARGIN), math.ceil(self.physics_dt / MAX_INTERNAL_DT - 1e-9))
        else:
            n = int(substeps)
            if n < 1:
                raise ValueError(f"substeps must be >= 1 or 'auto', got {substeps!r}")
        self._set_substeps(n)
        return n

    def _set_substeps(self, n: int) -> None:
        self._substeps = n
        self.internal_dt = self.physics_dt / n
        for cid in (self._client, self._shadow_client):
            pb.setTimeStep(self.internal_dt, physicsClientId=cid)
        if hasattr(self, "_applied_frictionloss"):  # motor impulses scale with the step
            self._apply_frictionloss(np.arange(self.num_envs), force=True)

    @property
    def substeps(self) -> int:
        """pybullet steps per MuJoCo physics step."""
        return self._substeps

    # -- physics parameters ------------------------------------------------------------------------
    def set_physics(self, field: str, variant_ids: np.ndarray, values: np.ndarray) -> None:
        if field not in PHYSICS_FIELDS:
            raise ValueError(f"unknown physics field {field!r}; known: {', '.join(PHYSICS_FIELDS)}")
        ids = np.asarray(variant_ids, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.float64)
        nominal = np.asarray(getattr(self.model, field))
        values = values.reshape((len(ids), *nominal.shape))
        if field == "body_ipos":
            bad = np.abs(values - nominal[None]).max(axis=(0, 2)) > 1e-12
            if bad.any():
                names = [self.model.body(b).name for b in np.flatnonzero(bad)]
                raise UnsupportedFeature(f"body_ipos of {names}: pybullet cannot move a link's centre of mass; "
                                         "keep body_ipos nominal with the pybullet backend")
            return
        self._params[field][ids] = values
        if field in ("body_mass", "body_gravcomp"):
            self._apply_masses(ids)
        if field in ("body_inertia", "dof_armature"):
            self._apply_inertias(ids)
        if field == "dof_frictionloss":
            self._apply_frictionloss(ids)
        if field == "geom_friction":
            self._apply_geom_friction(ids)
        if field in ("actuator_gainprm", "actuator_biasprm", "dof_damping", "dof_armature"):
            need = self._needed_substeps(ids, STABILITY_LIMIT)
            if need > self._substeps:
                self._set_substeps(need)

    def _apply_masses(self, ids) -> None:
        c, s = self._client, self._shadow_client
        mass, gravcomp = self._params["body_mass"], self._params["body_gravcomp"]
        nominal = self.model.body_mass
        for i in ids:
            for k, b in enumerate(self._link_of_body):
                v, g = float(mass[i, b]), float(gravcomp[i, b])
                if self._applied_mass[i, k] == v and self._applied_gc[i, k] == g:
                    continue
                links = self._groups[b]
                if len(links) == 1:
                    per_link = {links[0]: v}
                else:
                    ratio = v / nominal[b] if nominal[b] > 0 else 0.0
                    per_link = {l: self._pb_nominal_mass[l] * ratio for l in links}
                for l, ml in per_link.items():
                    pb.changeDynamics(self._bodies[i], l, mass=ml, physicsClientId=c)
                    pb.changeDynamics(self._shadows[i], l, mass=g * ml, physicsClientId=s)
                self._applied_mass[i, k] = v
                self._applied_gc[i, k] = g
                self._applied_inertia[i, k] = np.nan  # pybullet resets a link's inertia when its mass changes
        self._gravcomp_on = (self._params["body_gravcomp"][:, self._link_of_body] != 0).any(1) if self._link_of_body \
            else np.zeros(self.num_envs, bool)
        if hasattr(self, "_rot_mj"):
            self._apply_inertias(ids)

    def _link_inertia(self, i: int, b: int) -> np.ndarray:
        """pybullet's principal inertia diagonal of body `b`'s link in env `i` (with armature)."""
        inertia = self._params["body_inertia"][i, b]
        full = self._rot_mj[b] @ np.diag(inertia) @ self._rot_mj[b].T
        for k, axis in self._link_axes[b]:
            full += self._params["dof_armature"][i, self._mj_dof[k]] * np.outer(axis, axis)
        local = self._rot_pb[b].T @ full @ self._rot_pb[b]
        off = np.abs(local - np.diag(np.diag(local))).max()
        if off > 1e-9 * max(1e-12, np.abs(local).max()):
            raise UnsupportedFeature(
                f"body {self.model.body(b).name!r}: its inertia (with the joint armature) has principal axes that "
                "differ from the URDF's inertial frame; pybullet cannot rotate a link's inertial frame")
        return np.diag(local).copy()

    def _apply_inertias(self, ids) -> None:
        c, s = self._client, self._shadow_client
        nominal = self.model.body_inertia
        for i in ids:
            for k, b in enumerate(self._link_of_body):
                links = self._groups[b]
                if len(links) == 1:
                    diag = self._link_inertia(i, b)
                    if np.array_equal(self._applied_inertia[i, k], diag):
                        continue
                    pb.changeDynamics(self._bodies[i], links[0], localInertiaDiagonal=diag.tolist(), physicsClientId=c)
                    self._applied_inertia[i, k] = diag
                    continue
                v = self._params["body_inertia"][i, b]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(nominal[b] > 0, v / nominal[b], 1.0)
                if np.ptp(ratio) > 1e-9:
                    raise UnsupportedFeature(f"body {self.model.body(b).name!r} is fused from URDF links {links}: "
                                             "its inertia can only be scaled uniformly")
                if any(self._params["dof_armature"][i, self._mj_dof[kk]] > 0
                       for kk in range(self._ndof) if self._dof_link[kk] in links):
                    raise UnsupportedFeature(f"armature on a joint of body {self.model.body(b).name!r} (fused from "
                                             f"URDF links {links}) is not supported")
                r = float(ratio[0])
                if self._applied_inertia[i, k, 0] == r:
                    continue
                for l in links:
                    pb.changeDynamics(self._bodies[i], l, localInertiaDiagonal=(self._pb_nominal_inertia[l] * r).tolist(),
                                      physicsClientId=c)
                self._applied_inertia[i, k] = r

    def _apply_frictionloss(self, ids, force: bool = False) -> None:
        c = self._client
        fl = self._params["dof_frictionloss"][:, self._mj_dof_a]
        for i in ids:
            if not force and np.array_equal(self._applied_frictionloss[i], fl[i]):
                continue
            pb.setJointMotorControlArray(self._bodies[i], self._pb_dofs, pb.VELOCITY_CONTROL,
                                         targetVelocities=[0.0] * self._ndof, forces=fl[i].tolist(),
                                         physicsClientId=c)
            self._applied_frictionloss[i] = fl[i]

    def _apply_geom_friction(self, ids) -> None:
        m, c = self.model, self._client
        fr = self._params["geom_friction"]
        for i in ids:
            for b in self._link_of_body:
                geoms = np.flatnonzero(m.geom_bodyid == b)
                if not len(geoms):
                    continue
                v = tuple(float(x) for x in fr[i, geoms[0]])
                if self._applied_friction.get((i, b)) == v:
                    continue
                for l in self._groups[b]:
                    pb.changeDynamics(self._bodies[i], l, lateralFriction=v[0], spinningFriction=v[1],
                                      rollingFriction=v[2], physicsClientId=c)
                self._applied_friction[(i, b)] = v

    # -- state -------------------------------------------------------------------------------------
    def frame_pos(self, site: str) -> torch.Tensor:
        if site not in self._frames:
            raise UnsupportedFeature(f"site {site!r} has no frame sensor; declare it in the robot's frames "
                                     "or the task's `frames` so that the model gets a `frame/<site>` sensor")
        t = self._frame_cache.get(site)
        if t is None:
            t = self._frame_cache[site] = torch.from_numpy(self._site_buf[site])
        return t

    @property
    def joint_effort(self) -> torch.Tensor:
        if self._effort is None:
            cols = effort_sensors(self.model, self.robot.joint_names)  # the same requirement as MuJoCo
            del cols
            col = {dof: k for k, dof in enumerate(self._mj_dof)}
            idx = [col[int(self.model.jnt_dofadr[self.model.joint(j).id])] for j in self.robot.joint_names]
            self._effort_idx = np.asarray(idx)
            self._effort_buf = np.zeros((self.num_envs, len(idx)))
            self._effort = torch.from_numpy(self._effort_buf)
        self._effort_buf[:] = self._effort_all[:, self._effort_idx]
        return self._effort

    def _read(self, i: int, q: np.ndarray, qd: np.ndarray) -> None:
        """pybullet joint positions (pybullet's zero) and velocities of env `i` into rows q, qd."""
        st = pb.getJointStates(self._bodies[i], self._pb_dofs, physicsClientId=self._client)
        q[:] = [s[0] for s in st]
        qd[:] = [s[1] for s in st]

    def _capture_frames(self, ids) -> None:
        """Site positions of envs `ids` from pybullet's link frames (the current pybullet state)."""
        c = self._client
        m = self.model
        for i in ids:
            if self._frame_links:
                sts = pb.getLinkStates(self._bodies[i], self._frame_links, computeForwardKinematics=True,
                                       physicsClientId=c)
                for k, st in enumerate(sts):
                    self._frame_pos[i, k] = np.asarray(st[4]) - self._offsets[i]
                    self._frame_rot[i, k] = np.asarray(pb.getMatrixFromQuaternion(st[5])).reshape(3, 3)
        for site in self._frames:
            link, _ = self._site_links[site]
            if link == -1:  # the world or a static body: a constant position
                continue
            sid = m.site(site).id
            k = self._frame_links.index(link)
            local = m.site_pos[sid]
            self._site_buf[site][ids] = (self._frame_pos[ids, k]
                                         + np.einsum("nij,j->ni", self._frame_rot[ids, k], local))

    def _torques(self, q: np.ndarray, qd: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Joint torques [k, ndof] of envs `ids` at state (q, qd) [k, ndof] under `self._ctrl`."""
        p = self._params
        gain, bias = p["actuator_gainprm"][ids], p["actuator_biasprm"][ids]
        length = q @ self._moment.T  # [k, nu]
        vel = qd @ self._moment.T
        g = np.where(self._gain_affine, gain[:, :, 0] + gain[:, :, 1] * length + gain[:, :, 2] * vel, gain[:, :, 0])
        bf = np.where(self._bias_affine, bias[:, :, 0] + bias[:, :, 1] * length + bias[:, :, 2] * vel, 0.0)
        force = np.clip(g * self._ctrl[ids] + bf, self._force_lo, self._force_hi)
        tau = force @ self._moment
        if self._actgravcomp.any():
            tau = tau + np.where(self._actgravcomp, self._gc, 0.0)
        tau = np.clip(tau, self._jfrc_lo, self._jfrc_hi)
        self._last_act = tau
        passive = -p["dof_damping"][ids][:, self._mj_dof_a] * qd - self._stiffness * (q - self._spring)
        if not self._actgravcomp.all():
            passive = passive + np.where(self._actgravcomp, 0.0, self._gc)
        return tau + passive

    def _gravcomp(self, q: np.ndarray) -> np.ndarray:
        """[N, ndof] MuJoCo's gravity compensation torques at joint positions q [N, ndof]."""
        out = np.zeros_like(q)
        zero = [0.0] * self._ndof
        s = self._shadow_client
        qpb = q - self._ref_a
        for i in np.flatnonzero(self._gravcomp_on):
            out[i] = pb.calculateInverseDynamics(self._shadows[i], qpb[i].tolist(), zero, zero, physicsClientId=s)
        return out

    def step(self, ctrl: torch.Tensor, nsubsteps: int) -> None:
        n, c = self.num_envs, self._client
        self._ctrl[:] = np.clip(ctrl.detach().cpu().double().numpy(), self._ctrl_lo, self._ctrl_hi)
        ids = np.arange(n)
        q = self.state_qpos[:, self._mj_qpos_a].copy()
        qd = self.state_qvel[:, self._mj_dof_a].copy()
        bodies, dofs = self._bodies, self._pb_dofs
        for step in range(nsubsteps):
            last = step == nsubsteps - 1
            if last:  # the snapshot: the state at the start of the last physics step (as MuJoCo's sensors)
                self.observed_qpos[:] = self.state_qpos
                self.observed_qvel[:] = self.state_qvel
                self._capture_frames(ids)
            for sub in range(self._substeps):
                self._gc = self._gravcomp(q)
                tau = self._torques(q, qd, ids)
                if last and sub == 0:
                    self._effort_all[:] = self._last_act
                for i in range(n):
                    pb.setJointMotorControlArray(bodies[i], dofs, pb.TORQUE_CONTROL, forces=tau[i].tolist(),
                                                 physicsClientId=c)
                pb.stepSimulation(physicsClientId=c)
                for i in range(n):
                    self._read(i, q[i], qd[i])
                q += self._ref_a
            self.state_qpos[:, self._mj_qpos_a] = q
            self.state_qvel[:, self._mj_dof_a] = qd

    def set_joint_state(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        ids = env_ids.cpu().numpy().reshape(-1)
        qp = qpos.detach().cpu().double().numpy().reshape(len(ids), -1)
        qv = qvel.detach().cpu().double().numpy().reshape(len(ids), -1)
        c = self._client
        for k, i in enumerate(ids.tolist()):
            self.state_qpos[i] = qp[k]
            self.state_qvel[i] = qv[k]
            q = qp[k, self._mj_qpos_a] - self._ref_a
            qd = qv[k, self._mj_dof_a]
            for j, dof in enumerate(self._pb_dofs):
                pb.resetJointState(self._bodies[i], dof, float(q[j]), float(qd[j]), physicsClientId=c)
        if self._static_qpos:  # visual-only objects: held where they are put, at rest
            self.state_qvel[ids] = np.where(np.isin(np.arange(self.model.nv), self._mj_dof_a), self.state_qvel[ids], 0.0)
        self.observed_qpos[ids] = self.state_qpos[ids]
        self.observed_qvel[ids] = self.state_qvel[ids]
        self._effort_all[ids] = 0.0
        self._capture_frames(ids)

    def add_joint_velocity(self, env_ids: torch.Tensor, dqvel: torch.Tensor) -> None:
        ids = env_ids.cpu().numpy().reshape(-1)
        dq = dqvel.detach().cpu().double().numpy().reshape(len(ids), -1)
        c = self._client
        for k, i in enumerate(ids.tolist()):
            self.state_qvel[i, self._mj_dof_a] += dq[k, self._mj_dof_a]
            self.observed_qvel[i, self._mj_dof_a] += dq[k, self._mj_dof_a]
            q = self.state_qpos[i, self._mj_qpos_a] - self._ref_a
            qd = self.state_qvel[i, self._mj_dof_a]
            for j, dof in enumerate(self._pb_dofs):
                pb.resetJointState(self._bodies[i], dof, float(q[j]), float(qd[j]), physicsClientId=c)

    # -- rendering ---------------------------------------------------------------------------------
    def render_data(self, env_id: int):
        import copy

        m = copy.copy(self.model)
        d = mujoco.MjData(m)
        d.qpos[:] = self.state_qpos[env_id]
        d.qvel[:] = self.state_qvel[env_id]
        return m, d

    def close(self) -> None:
        for attr in ("_client", "_shadow_client"):
            cid = getattr(self, attr, -1)
            if cid is not None and cid >= 0:
                try:
                    pb.disconnect(physicsClientId=cid)
                except pb.error:
                    pass
                setattr(self, attr, -1)
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            self._tmp = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
