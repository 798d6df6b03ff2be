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
URDF's joints and links (a massless URDF link on a fixed joint, e.g. a flange frame, is fused
into its parent body by the importer and so here). `qpos`/`qvel` are laid out exactly like
MuJoCo's (`nq`, `nv`); pybullet's joint zero is MuJoCo's `qpos0`/`ref`. The construction checks the
kinematics: every mapped body's frame must agree with MuJoCo's at a random configuration, or it
raises. The link masses and inertias are set to the MuJoCo model's nominal values; a URDF centre
of mass or inertial frame that differs from the model's raises (pybullet cannot move them).
MuJoCo joints that pybullet lacks (a task scene's free object) are an `UnsupportedFeature` unless
visual-only (no collidable geom in their subtree and weightless: gravity off or fully
compensated; they are held where `set_joint_state` puts them); pybullet joints that MuJoCo lacks
are an `UnsupportedFeature`.

Actuators (as MuJoCo computes them). pybullet's default velocity motors are disabled and the
joints are TORQUE controlled: `force = gain * ctrl + bias` with MuJoCo's affine gain/bias
(`gain[0] + gain[1] L + gain[2] Ldot`, `bias[0] + bias[1] L + bias[2] Ldot`, `L` the transmission
length: `gear * q` for a joint, `sum(coef * q)` for a fixed tendon such as the Panda's gripper),
`ctrl` clamped to `ctrlrange`, the force to `forcerange`, the joint torque to the joint's
`actuatorfrcrange`, all from the per-env `actuator_gainprm/biasprm`; `joint_effort` is that
actuator torque (MuJoCo's `jointactuatorfrc`). Passive terms: `-damping * qdot` and the joint
stiffness spring are added to the torque (pybullet's own URDF joint damping and its default
link damping are switched off). A linear joint equality (the Panda's finger coupling) is a
pybullet gear constraint (nearly rigid, where MuJoCo's is soft).

Approximations (measured in tests/test_pybullet_backend.py):

* **Gravity compensation** is exact in MuJoCo's sense: MuJoCo applies `gravcomp_b * m_b * (-g)` at
  each body's centre of mass; the torque `J^T F` of those forces is the gravity torque of the same
  robot with masses `gravcomp_b * m_b`. The backend keeps, per env, a *shadow* copy of the robot in
  a second (never stepped) pybullet client whose link masses are `gravcomp_b * m_b` (updated by
  `set_physics` of `body_mass` and `body_gravcomp`) and adds `calculateInverseDynamics(q, 0, 0)` of
  the shadow at every internal step (on the real robot pybullet's inverse dynamics refuses the
  armature-augmented inertias). With DR, `gravcomp * mass` stays the nominal mass (the controller
  knows the nominal model only), so a payload sags the arm as in MuJoCo (to 5e-4 rad).
* **Armature** (reflected rotor inertia): pybullet has none. It is added to the child link's
  inertia about the joint axis (`I += a axis axis^T`, re-expressed in the URDF's principal frame;
  a joint axis that is not a principal axis there raises). The joint sees `+a` on its own
  mass-matrix diagonal as in MuJoCo, but the rotor turns with the link's absolute rotation, not
  with the joint, so it also enters every joint whose axis is not perpendicular to it
  (`a (u . axis)` couplings), where MuJoCo adds `a` to the diagonal only. Modes in which aligned
  joints counter-rotate keep only the links' own inertia: the stiffest mode of the PD law is
  faster than in MuJoCo (iiwa: 1095 vs 401 1/s), which sets the internal step (below). Trajectories
  stay within 0.008 rad of MuJoCo's. Armature on a slide joint is unsupported (it would be a mass).
* **Friction loss** (dry joint friction) is pybullet's joint-friction idiom: a velocity motor
  with target 0 and maximum force `frictionloss` (a hard constraint, where MuJoCo's is soft and
  creeps): a joint stops anywhere within `frictionloss / kp` of its target, as in MuJoCo, but not
  at the same place.
* **Integration**: MuJoCo steps the PD law implicitly (implicitfast) at `model.opt.timestep`;
  pybullet integrates explicit torques (semi-implicit Euler), stable only while
  `h * lambda < 2` for `lambda = max eig(M^-1 Kd)` (measured: damping-only iiwa at
  `h * lambda` = 1.83 decays, 2.29 oscillates at the torque limits). pybullet therefore steps
  at `physics_dt / substeps`, the torque (and the gravity compensation) recomputed every internal
  step, so that `step(ctrl, n)` advances exactly `n * model.opt.timestep` seconds. `substeps="auto"`
  takes `lambda` and `omega = sqrt(max eig(M^-1 Kp))` with pybullet's own mass matrix (the armature
  on the links), the largest over the default pose and 24 poses within 1 rad of it, and asks
  `h * max(lambda, omega) <= 1` (`SUBSTEP_MARGIN`), with `h <= 2 ms` (`MAX_INTERNAL_DT`) for
  accuracy: iiwa 11 substeps (0.91 ms), Panda 32 (0.31 ms: kd 450 on links of 0.1 kg m^2),
  cartpole 5 (2 ms). At 11 substeps the iiwa tracks a random walk of joint targets within
  0.008 rad of MuJoCo (mean 0.001); 5 substeps give the same agreement, 4 or fewer diverge. The
  internal step only ever shrinks: a DR variant whose `h * lambda` exceeds 1.5
  (`STABILITY_LIMIT`) refines it for every env. A world that still blows up (pybullet clamps joint
  speeds at 100 instead of producing NaN) is reported in `diverged`.

Snapshot timing mirrors the MuJoCo backend: MuJoCo's sensors are computed at the start of the
last physics step, so `qpos`, `qvel`, `frame_pos` and `joint_effort` after `step(ctrl, n)` are the
state at the start of the last of the `n` physics steps (one physics step old); a policy sees the
same observation delay in both simulators.

Cost: ~40 us per env per internal step on one core (pybullet's step ~15 us, the rest Python
calls), i.e. ~0.45 ms per env per 10 ms physics step for the iiwa, ~80x MuJoCo's; construction
~2 ms per env.
"""

from __future__ import annotations

import math
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
SUBSTEP_MARGIN = 1.0
"""`h * lambda` and `h * omega` bound for the internal step chosen from the nominal model
(semi-implicit Euler on explicit damping is stable for `h * lambda < 2`)."""
STABILITY_LIMIT = 1.5
"""A variant (DR) whose `h * lambda` exceeds this refines the internal step (measured on the iiwa,
damping only: 1.83 still decays, 2.29 oscillates at the torque limits)."""
MAX_INTERNAL_DT = 0.002
"""The internal step is at most this (s), for accuracy (pybullet's own default is 1/240 s)."""
MAX_SUBSTEPS = 100
POSE_SAMPLES = 24
"""Random poses (besides the default one) where the stiffest mode is looked for."""
DIVERGED_VELOCITY = 99.0
"""Joint speed (rad/s or m/s) that marks a world as diverged (pybullet clamps at 100)."""
COUPLING_ERP = 0.2
"""Position-error correction per internal step of a joint coupling (gear constraint)."""
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


_URDF_SHAPES = {int(mujoco.mjtGeom.mjGEOM_SPHERE): "sphere", int(mujoco.mjtGeom.mjGEOM_CAPSULE): "capsule",
                int(mujoco.mjtGeom.mjGEOM_CYLINDER): "cylinder", int(mujoco.mjtGeom.mjGEOM_BOX): "box"}


def add_collision_geoms(urdf: str, model: mujoco.MjModel, geoms, link_of_body: dict[int, str]) -> str:
    """`urdf` with the model's collision geoms `geoms` (spheres, capsules, cylinders, boxes) added
    to the links of their bodies, at their poses in the body frame (= the URDF link frame)."""
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
                      rpy=_fmt(_mat_to_rpy(_quat_to_mat(model.geom_quat[g]))))
        geo = ET.SubElement(col, "geometry")
        size = model.geom_size[g]
        if kind == "sphere":
            ET.SubElement(geo, kind, radius=f"{size[0]:.17g}")
        elif kind == "box":
            ET.SubElement(geo, kind, size=_fmt(2.0 * size))
        else:
            ET.SubElement(geo, kind, radius=f"{size[0]:.17g}", length=f"{2.0 * size[1]:.17g}")
    return ET.tostring(root, encoding="unicode")


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
        text = prepared_urdf(robot.urdf_path()) if robot.urdf else urdf_from_model(m)
        if plane is not None:
            text = add_collision_geoms(text, m, plane[3], self._urdf_links(text, m))
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
        self.diverged = None
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
                    f"{self._geom_name(int(g1))} and {self._geom_name(int(g2))} can collide in the model; the pybullet "
                    "backend simulates contacts with a world plane only (disable the contact, or use mujoco)")
            if plane is not None and plane != int(w):
                raise UnsupportedFeature("the robot can touch two world planes; the pybullet backend adds one")
            plane = int(w)
            touching.append(int(g2 if w == g1 else g1))
        normal = _quat_to_mat(m.geom_quat[plane])[:, 2]
        if abs(normal[2]) < 1.0 - 1e-9:
            raise UnsupportedFeature(f"{self._geom_name(plane)} is a tilted plane; the pybullet backend adds a "
                                     "horizontal floor only")
        return m.geom_pos[plane].copy(), normal.copy(), int(plane), sorted(set(touching))

    def _geom_name(self, g: int) -> str:
        m = self.model
        return f"geom {m.geom(g).name or g!r} (body {m.body(int(m.geom_bodyid[g])).name or 'world'!r})"

    def _urdf_links(self, urdf: str, m: mujoco.MjModel) -> dict[int, str]:
        """MuJoCo body -> the URDF link whose frame is its frame (by name; the world: the root)."""
        root = ET.fromstring(urdf)
        names = {link.get("name") for link in root.iter("link")}
        children = {j.find("child").get("link") for j in root.iter("joint")}
        out = {0: next(iter(names - children))}
        for b in range(1, m.nbody):
            if m.body(b).name in names:
                out[b] = m.body(b).name
        return out

    def _add_plane(self, pos, normal, geom, touching) -> None:
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
        """A subtree that is not the robot's, touches nothing and does not fall (gravity off or
        fully compensated): it only moves if given a velocity, and the backend holds it still."""
        sub = {body}
        for b in range(body + 1, m.nbody):
            if int(m.body_parentid[b]) in sub:
                sub.add(b)
        if any(self._pb_link.get(m.body(b).name) is not None for b in sub):
            return False
        if any(collidable[g] for g in range(m.ngeom) if int(m.geom_bodyid[g]) in sub):
            return False
        weightless = not np.any(self._gravity) or all(m.body_gravcomp[b] == 1.0 for b in sub)
        return weightless

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
        # a body whose URDF links are one massive link (its own) plus massless fixed links (a flange
        # frame, a grasp target) is simulated by that link alone; the massless links lose any inertia
        # the URDF gives them (MuJoCo's importer drops it too)
        self._dyn_link: dict[int, int] = {}
        for b, links in groups.items():
            massive = [l for l in links if self._pb_nominal_mass[l] > 0]
            if massive in ([], [self._body_link[b]]):
                self._dyn_link[b] = self._body_link[b]
                for l in links:
                    if l != self._body_link[b]:
                        for cid, bodies in ((c, self._bodies), (self._shadow_client, self._shadows)):
                            for body in bodies:
                                pb.changeDynamics(body, l, mass=0.0, localInertiaDiagonal=[0.0, 0.0, 0.0],
                                                  physicsClientId=cid)
        for b, links in groups.items():
            if b not in self._dyn_link:
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
        self._couplings = [self._joint_coupling(m, e) for e in range(m.neq) if m.eq_active0[e]]
        if any(m.dof_armature[self._mj_dof_a[k]] > 0 and self._dof_type[k] == _SLIDE for k in range(self._ndof)):
            raise UnsupportedFeature("armature on a slide joint is not supported by the pybullet backend")

    def _joint_coupling(self, m: mujoco.MjModel, e: int) -> list[int]:
        """A linear joint equality `q1 - q1_0 = a0 + a1 (q2 - q2_0)` (a gripper's mechanical
        coupling) as a pybullet gear constraint in every env: `qd1 - a1 qd2 = 0`, with its position
        error corrected (`erp`) toward the same offset. MuJoCo's constraint is soft (solref), this
        one nearly rigid: the coupled joints agree to ~1e-4 where MuJoCo lets them differ by its
        constraint softness."""
        name = m.equality(e).name or f"equality {e}"
        col = {dof: k for k, dof in enumerate(self._mj_dof)}
        j1, j2 = int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
        poly = m.eq_data[e, :5]
        if (int(m.eq_type[e]) != int(mujoco.mjtEq.mjEQ_JOINT) or j2 < 0 or np.any(poly[2:] != 0)
                or int(m.jnt_dofadr[j1]) not in col or int(m.jnt_dofadr[j2]) not in col):
            raise UnsupportedFeature(f"equality constraint {name!r}: the pybullet backend supports linear couplings "
                                     "of two simulated joints only")
        k1, k2 = col[int(m.jnt_dofadr[j1])], col[int(m.jnt_dofadr[j2])]
        ratio = -float(poly[1])
        # the constraint drives q1 + ratio q2 (pybullet's zero: qpos - ref) to its target
        target = (float(m.qpos0[m.jnt_qposadr[j1]]) - self._ref[k1] + float(poly[0])
                  + ratio * (float(m.qpos0[m.jnt_qposadr[j2]]) - self._ref[k2]))
        ids = []
        for b in self._bodies:
            cid = pb.createConstraint(b, self._pb_dofs[k1], b, self._pb_dofs[k2], pb.JOINT_GEAR, [0.0, 0.0, 1.0],
                                      [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], physicsClientId=self._client)
            pb.changeConstraint(cid, gearRatio=ratio, erp=COUPLING_ERP, relativePositionTarget=target,
                                maxForce=1e6, physicsClientId=self._client)
            ids.append(cid)
        return ids

    def _check_inertia_frames(self, m: mujoco.MjModel) -> None:
        """Principal frames: MuJoCo's (iquat, in the body frame) and pybullet's (inertial orn, in the
        link frame = the body frame), the joint axes of each link (for armature), and the COM."""
        c, b0 = self._client, self._bodies[0]
        self._rot_mj, self._rot_pb, self._link_axes = {}, {}, {}
        for b in self._link_of_body:
            if b not in self._dyn_link:
                continue  # fused from several massive links: scaled link by link (see _apply_inertias)
            link = self._dyn_link[b]
            di = pb.getDynamicsInfo(b0, link, physicsClientId=c)
            if np.abs(np.asarray(di[3]) - m.body_ipos[b]).max() > KINEMATICS_TOL:
                raise UnsupportedFeature(f"body {m.body(b).name!r}: the URDF's centre of mass {tuple(di[3])} is not "
                                         f"the model's {tuple(m.body_ipos[b])}; pybullet cannot move it")
            self._rot_mj[b] = _quat_to_mat(m.body_iquat[b])
            q = di[4]
            self._rot_pb[b] = np.asarray(pb.getMatrixFromQuaternion(q)).reshape(3, 3)
            self._link_axes[b] = [(k, self._dof_axis[k] / np.linalg.norm(self._dof_axis[k]))
                                  for k in range(self._ndof)
                                  if self._dof_link[k] == link and self._dof_type[k] == _HINGE]
        self._pb_nominal_inertia = {l: np.asarray(pb.getDynamicsInfo(b0, l, physicsClientId=c)[2])
                                    for ls in self._groups.values() for l in ls}

    # -- internal step -----------------------------------------------------------------------------
    def _poses(self) -> np.ndarray:
        """[P, nq] configurations where the stiffest mode is looked for: the default pose and
        `POSE_SAMPLES` poses within +-1 rad (or m) of it, inside the joint limits (fixed seed)."""
        m = self.model
        rng = np.random.default_rng(0)
        qidx = self.joint_qpos_index(self.robot.joint_names)
        lim = self.robot.position_limits(m)
        base = np.asarray(self.robot.default_pose)
        out = np.tile(m.qpos0, (POSE_SAMPLES + 1, 1))
        out[:, qidx] = base
        out[1:, qidx] = np.clip(base + rng.uniform(-1.0, 1.0, (POSE_SAMPLES, len(qidx))), lim[:, 0], lim[:, 1])
        return out

    def _mass_model(self) -> None:
        """Per pose: MuJoCo's joint-space mass matrix without armature (`_mass0` [P, n, n]) and
        what a unit armature on each hinge adds in pybullet, where the rotor inertia sits on the
        child link (`_rotor` [P, n, n, n]: J_w^T axis axis^T J_w, reaching every joint whose axis
        is not perpendicular to it, where MuJoCo adds `a` to the diagonal only)."""
        m, d = self.model, self._scratch
        idx = self._mj_dof_a
        poses = self._poses()
        n = self._ndof
        self._mass0 = np.zeros((len(poses), n, n))
        self._rotor = np.zeros((len(poses), n, n, n))
        full = np.zeros((m.nv, m.nv))
        jacr = np.zeros((3, m.nv))
        for p, q in enumerate(poses):
            d.qpos[:] = q
            mujoco.mj_forward(m, d)
            mujoco.mj_fullM(m, d, full)
            self._mass0[p] = full[np.ix_(idx, idx)] - np.diag(m.dof_armature[idx])
            for k in range(n):
                if self._dof_type[k] != _HINGE:
                    continue
                j = int(m.dof_jntid[idx[k]])
                mujoco.mj_jacBody(m, d, None, jacr, int(m.jnt_bodyid[j]))
                row = d.xaxis[j] @ jacr[:, idx]
                self._rotor[p, k] = np.outer(row, row)

    def _mode_rates(self, gain_bias: tuple[np.ndarray, np.ndarray], damping: np.ndarray,
                    armature: np.ndarray) -> tuple[float, float]:
        """(lambda, omega): the fastest damping rate `max eig(M^-1 Kd)` and natural frequency
        `sqrt(max eig(M^-1 Kp))` of the joint-space PD + damping law, with pybullet's mass matrix
        (nominal masses, the given armature on the links), the largest over `_poses()`."""
        m = self.model
        if not self._ndof:
            return 0.0, 0.0
        if getattr(self, "_mass0", None) is None:
            self._mass_model()
        idx = self._mj_dof_a
        mass = self._mass0 + np.einsum("k,pkij->pij", np.asarray(armature)[idx], self._rotor)
        _, bias = gain_bias
        kd = np.diag(np.asarray(damping)[idx])
        kp = np.diag(self._stiffness)
        for a in range(m.nu):
            if self._bias_affine[a]:
                arm = np.outer(self._moment[a], self._moment[a])
                kp = kp + arm * max(0.0, -bias[a, 1])
                kd = kd + arm * max(0.0, -bias[a, 2])
        lam = float(np.abs(np.linalg.eigvals(np.linalg.solve(mass, np.broadcast_to(kd, mass.shape)))).max())
        w2 = float(np.abs(np.linalg.eigvals(np.linalg.solve(mass, np.broadcast_to(kp, mass.shape)))).max())
        return lam, math.sqrt(w2)

    def _needed_substeps(self, ids, bound: float) -> int:
        """Substeps for which `h * max(lambda, omega) <= bound` in every env of `ids`."""
        need = 1
        p = self._params
        seen = set()
        for i in ids:
            key = b"".join(p[f][i].tobytes() for f in ("actuator_gainprm", "actuator_biasprm", "dof_damping",
                                                       "dof_armature"))
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
                if b in self._dyn_link:
                    per_link = {self._dyn_link[b]: v}
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
                if b in self._dyn_link:
                    diag = self._link_inertia(i, b)
                    if np.array_equal(self._applied_inertia[i, k], diag):
                        continue
                    pb.changeDynamics(self._bodies[i], self._dyn_link[b], localInertiaDiagonal=diag.tolist(),
                                      physicsClientId=c)
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
                    diag = (self._pb_nominal_inertia[l] * r).tolist()
                    pb.changeDynamics(self._bodies[i], l, localInertiaDiagonal=diag, physicsClientId=c)
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
            effort_sensors(self.model, self.robot.joint_names)  # the same requirement (and error) as MuJoCo's
            col = {dof: k for k, dof in enumerate(self._mj_dof)}
            self._effort_idx = np.asarray([col[int(self.model.jnt_dofadr[self.model.joint(j).id])]
                                           for j in self.robot.joint_names])
            self._effort_buf = self._effort_all[:, self._effort_idx]
            self._effort = torch.from_numpy(self._effort_buf)  # refreshed in place by step/set_joint_state
        return self._effort

    def _store_effort(self) -> None:
        if self._effort is not None:
            self._effort_buf[:] = self._effort_all[:, self._effort_idx]

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
                    self._store_effort()
                for i in range(n):
                    pb.setJointMotorControlArray(bodies[i], dofs, pb.TORQUE_CONTROL, forces=tau[i].tolist(),
                                                 physicsClientId=c)
                pb.stepSimulation(physicsClientId=c)
                for i in range(n):
                    self._read(i, q[i], qd[i])
                q += self._ref_a
            self.state_qpos[:, self._mj_qpos_a] = q
            self.state_qvel[:, self._mj_dof_a] = qd
        # pybullet clamps joint speeds at maxJointVelocity instead of producing NaN: a world that
        # reaches the clamp has blown up (no robot joint moves at 100 rad/s or m/s)
        bad = ~np.isfinite(qd).all(1) | (np.abs(qd) >= DIVERGED_VELOCITY).any(1)
        self.diverged = torch.from_numpy(bad) if bad.any() else None

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
            simulated = np.isin(np.arange(self.model.nv), self._mj_dof_a)
            self.state_qvel[ids] = np.where(simulated, self.state_qvel[ids], 0.0)
        self.observed_qpos[ids] = self.state_qpos[ids]
        self.observed_qvel[ids] = self.state_qvel[ids]
        self._effort_all[ids] = 0.0
        self._store_effort()
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
