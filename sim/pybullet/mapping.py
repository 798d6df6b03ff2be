"""MuJoCo's joints, bodies and sites on the pybullet robot copies.

Joints and bodies are matched by NAME: MuJoCo's URDF importer names them after the URDF's joints
and links (a massless URDF link on a fixed joint, e.g. a flange frame, is fused into its parent
body by the importer and so here). `qpos`/`qvel` are laid out exactly like MuJoCo's (`nq`, `nv`);
pybullet's joint zero is MuJoCo's `qpos0`/`ref`. The construction checks the kinematics: every
mapped body's frame must agree with MuJoCo's at a random configuration, or it raises. A URDF
centre of mass or inertial frame that differs from the model's raises too (pybullet cannot move
them; the link masses and inertias themselves are set to the model's, `physics`). MuJoCo joints
that pybullet lacks (a task scene's free object) are an `UnsupportedFeature` unless visual-only
(no collidable geom in their subtree and weightless: gravity off or fully compensated; the
backend holds them where `set_joint_state` puts them); pybullet joints that MuJoCo lacks are an
`UnsupportedFeature`.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pybullet as pb

from robot_rl.sim.backend import UnsupportedFeature
from robot_rl.sim.pybullet.contacts import collidable
from robot_rl.sim.pybullet.mjmodel import BALL, FREE, HINGE, body_id, moves, quat_to_mat
from robot_rl.sim.pybullet.world import World

KINEMATICS_TOL = 1e-5
"""How far (m, and rotation-matrix entries) a URDF link frame may be from MuJoCo's body frame."""


class RobotMap:
    """The mapping, in pybullet's dof order (inverse dynamics takes all dofs in it). Per mapped
    dof `k`: `pb_dofs[k]` (the pybullet joint index, whose child link is `dof_link[k]`, axis
    `dof_axis[k]`), `mj_qpos[k]`, `mj_dof[k]` (MuJoCo's qpos and dof addresses), `ref[k]` (MuJoCo's
    `qpos0`: pybullet's zero), `dof_type[k]` (hinge or slide); `static_qpos` are the qpos entries of
    the visual-only joints. Per MuJoCo body `b` in `link_of_body`: `groups[b]` the pybullet links
    it is made of, `body_link[b]` the one whose frame is the body's, `dyn_link[b]` the link that
    carries all of its mass and inertia where there is one (otherwise the links keep their URDF
    share, scaled); the inertial frames `rot_mj[b]`, `rot_pb[b]` and the hinge axes `link_axes[b]`
    of such a link (for the armature, `actuators.link_inertia`). Per pybullet link `l`:
    `pb_nominal_mass[l]` and `pb_nominal_inertia[l]`, the URDF's mass and inertia diagonal."""

    def __init__(self, model: mujoco.MjModel, world: World):
        self.model = model
        self.root_body = world.root_body
        c, b0 = world.client, world.bodies[0]
        info = [pb.getJointInfo(b0, j, physicsClientId=c) for j in range(pb.getNumJoints(b0, physicsClientId=c))]
        pb_link = {world.root_name: -1, **{i[12].decode(): i[0] for i in info}}
        movable = [i for i in info if i[2] in (pb.JOINT_REVOLUTE, pb.JOINT_PRISMATIC)]
        self._map_joints(model, movable, pb_link, world.gravity)
        self._map_bodies(model, pb_link, info, world)
        self._check_kinematics(model, world)
        self._inertial_frames(model, world)

    # -- joints ------------------------------------------------------------------------------------
    def _map_joints(self, m: mujoco.MjModel, movable, pb_link: dict[str, int], gravity: np.ndarray) -> None:
        pb_joint = {i[1].decode(): i for i in movable}
        used = set()
        self.pb_dofs: list[int] = []
        self.mj_qpos: list[int] = []
        self.mj_dof: list[int] = []
        self.ref: list[float] = []
        self.dof_type: list[int] = []
        self.dof_link: list[int] = []
        self.dof_axis: list[np.ndarray] = []
        self.static_qpos: list[int] = []
        can_collide = collidable(m)
        if m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT:
            can_collide[:] = False
        for j in range(m.njnt):
            name = m.joint(j).name
            jtype = int(m.jnt_type[j])
            hit = pb_joint.get(name)
            if hit is None or jtype in (FREE, BALL):
                if self._visual_only(m, int(m.jnt_bodyid[j]), can_collide, pb_link, gravity):
                    adr, size = int(m.jnt_qposadr[j]), {FREE: 7, BALL: 4}.get(jtype, 1)
                    self.static_qpos += list(range(adr, adr + size))
                    continue
                what = "not a joint of the URDF" if hit is None else f"a {('free', 'ball')[jtype]} joint"
                raise UnsupportedFeature(f"joint {name!r} of the model is {what}; the pybullet backend simulates "
                                         "the robot's URDF joints (and holds visual-only objects still)")
            want = pb.JOINT_REVOLUTE if jtype == HINGE else pb.JOINT_PRISMATIC
            if hit[2] != want:
                raise UnsupportedFeature(f"joint {name!r} is a {'hinge' if jtype == HINGE else 'slide'} joint in the "
                                         "model but not in the URDF")
            used.add(name)
            self.pb_dofs.append(hit[0])
            self.mj_qpos.append(int(m.jnt_qposadr[j]))
            self.mj_dof.append(int(m.jnt_dofadr[j]))
            self.ref.append(float(m.qpos0[m.jnt_qposadr[j]]))
            self.dof_type.append(jtype)
            self.dof_link.append(hit[0])
            self.dof_axis.append(np.asarray(hit[13], dtype=np.float64))
        extra = sorted(set(pb_joint) - used)
        if extra:
            raise UnsupportedFeature(f"URDF joints {extra} are not joints of the model; the pybullet backend needs "
                                     "the model's joints to be the URDF's")
        order = np.argsort(self.pb_dofs)  # pybullet's dof order
        for attr in ("pb_dofs", "mj_qpos", "mj_dof", "ref", "dof_type", "dof_link", "dof_axis"):
            setattr(self, attr, [getattr(self, attr)[k] for k in order])
        self.ndof = len(self.pb_dofs)
        self.mj_qpos_a = np.asarray(self.mj_qpos, dtype=np.int64)
        self.mj_dof_a = np.asarray(self.mj_dof, dtype=np.int64)
        self.ref_a = np.asarray(self.ref)

    @staticmethod
    def _visual_only(m: mujoco.MjModel, body: int, can_collide: np.ndarray, pb_link: dict[str, int],
                     gravity: np.ndarray) -> bool:
        """A subtree that is not the robot's, touches nothing and does not fall (gravity off or
        fully compensated): it only moves if given a velocity, and the backend holds it still."""
        sub = {body}
        for b in range(body + 1, m.nbody):
            if int(m.body_parentid[b]) in sub:
                sub.add(b)
        if any(pb_link.get(m.body(b).name) is not None for b in sub):
            return False
        if any(can_collide[g] for g in range(m.ngeom) if int(m.geom_bodyid[g]) in sub):
            return False
        weightless = not np.any(gravity) or all(m.body_gravcomp[b] == 1.0 for b in sub)
        return weightless

    # -- bodies and sites --------------------------------------------------------------------------
    def _map_bodies(self, m: mujoco.MjModel, pb_link: dict[str, int], info, world: World) -> None:
        """MuJoCo body -> the pybullet links it is made of (a URDF link fused into its parent by
        MuJoCo's importer belongs to the parent's body)."""
        fixed = {i[0]: i[2] == pb.JOINT_FIXED for i in info}
        link_parent = {i[0]: i[16] for i in info}
        link_body: dict[int, int] = {}
        for name, link in sorted(pb_link.items(), key=lambda kv: kv[1]):
            b = body_id(m, name)
            if link == -1:
                b = self.root_body
            if b is None:
                if not fixed.get(link, False):
                    raise UnsupportedFeature(f"URDF link {name!r} is not a body of the model")
                b = link_body[link_parent[link]]  # fused into its parent's body
            link_body[link] = b
        groups: dict[int, list[int]] = {}
        for link, b in link_body.items():
            if b != 0 and link != -1:
                groups.setdefault(b, []).append(link)
        self.link_of_body = sorted(groups)  # MuJoCo bodies simulated by pybullet links
        self.groups = groups
        self.body_link = {b: min(ls) for b, ls in groups.items()}
        c = world.client
        self.pb_nominal_mass = {l: pb.getDynamicsInfo(world.bodies[0], l, physicsClientId=c)[0]
                                for l in link_body if l != -1}
        # a body whose URDF links are one massive link (its own) plus massless fixed links (a flange
        # frame, a grasp target) is simulated by that link alone; the massless links lose any inertia
        # the URDF gives them (MuJoCo's importer drops it too)
        self.dyn_link: dict[int, int] = {}
        for b, links in groups.items():
            massive = [l for l in links if self.pb_nominal_mass[l] > 0]
            if massive in ([], [self.body_link[b]]):
                self.dyn_link[b] = self.body_link[b]
                for l in links:
                    if l != self.body_link[b]:
                        for cid, bodies in ((c, world.bodies), (world.shadow_client, world.shadows)):
                            for body in bodies:
                                pb.changeDynamics(body, l, mass=0.0, localInertiaDiagonal=[0.0, 0.0, 0.0],
                                                  physicsClientId=cid)
        for b, links in groups.items():
            if b not in self.dyn_link:
                total = sum(self.pb_nominal_mass[l] for l in links)
                if abs(total - m.body_mass[b]) > 1e-6 * max(1.0, m.body_mass[b]):
                    raise UnsupportedFeature(f"body {m.body(b).name!r} weighs {m.body_mass[b]:.6g} kg in the model "
                                             f"but its URDF links {links} weigh {total:.6g} kg")

    def site_link(self, site: str) -> int:
        """The pybullet link whose frame carries a site, or -1 for the world or a static body."""
        m = self.model
        b = int(m.site_bodyid[m.site(site).id])
        if b == 0 or b == self.root_body:
            return -1
        if b not in self.body_link:
            if moves(m, b):
                raise UnsupportedFeature(f"site {site!r} is on body {m.body(b).name!r}, which the pybullet "
                                         "backend does not simulate")
            return -1
        return self.body_link[b]

    # -- construction-time checks ------------------------------------------------------------------
    def _check_kinematics(self, m: mujoco.MjModel, world: World) -> None:
        """Every mapped body's frame agrees with the URDF link frame at a random configuration."""
        rng = np.random.default_rng(0)
        c, body = world.client, world.bodies[0]
        d = mujoco.MjData(m)
        for k in range(self.ndof):
            j = m.dof_jntid[self.mj_dof[k]]
            lo, hi = m.jnt_range[j] if m.jnt_limited[j] else (-1.0, 1.0)
            d.qpos[self.mj_qpos[k]] = rng.uniform(max(lo, -1.0), min(hi, 1.0))
            pb.resetJointState(body, self.pb_dofs[k], d.qpos[self.mj_qpos[k]] - self.ref[k], physicsClientId=c)
        mujoco.mj_kinematics(m, d)
        for b, link in self.body_link.items():
            st = pb.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=c)
            pos = np.asarray(st[4]) - world.offsets[0]
            rot = np.asarray(pb.getMatrixFromQuaternion(st[5])).reshape(3, 3)
            err = max(np.abs(pos - d.xpos[b]).max(), np.abs(rot - d.xmat[b].reshape(3, 3)).max())
            if err > KINEMATICS_TOL:
                raise UnsupportedFeature(f"the URDF's link {m.body(b).name!r} is {err:.2g} (m or rotation) away from "
                                         "the model's body: the URDF and the model describe different robots")
        for k in range(self.ndof):
            pb.resetJointState(body, self.pb_dofs[k], 0.0, physicsClientId=c)

    def _inertial_frames(self, m: mujoco.MjModel, world: World) -> None:
        """Principal frames: MuJoCo's (iquat, in the body frame) and pybullet's (inertial orn, in the
        link frame = the body frame), the joint axes of each link (for armature), and the COM
        (checked); the URDF's inertia diagonal of every link."""
        c, b0 = world.client, world.bodies[0]
        self.rot_mj, self.rot_pb, self.link_axes = {}, {}, {}
        for b in self.link_of_body:
            if b not in self.dyn_link:
                continue  # fused from several massive links: scaled link by link (`physics`)
            link = self.dyn_link[b]
            di = pb.getDynamicsInfo(b0, link, physicsClientId=c)
            if np.abs(np.asarray(di[3]) - m.body_ipos[b]).max() > KINEMATICS_TOL:
                raise UnsupportedFeature(f"body {m.body(b).name!r}: the URDF's centre of mass {tuple(di[3])} is not "
                                         f"the model's {tuple(m.body_ipos[b])}; pybullet cannot move it")
            self.rot_mj[b] = quat_to_mat(m.body_iquat[b])
            self.rot_pb[b] = np.asarray(pb.getMatrixFromQuaternion(di[4])).reshape(3, 3)
            self.link_axes[b] = [(k, self.dof_axis[k] / np.linalg.norm(self.dof_axis[k]))
                                 for k in range(self.ndof)
                                 if self.dof_link[k] == link and self.dof_type[k] == HINGE]
        self.pb_nominal_inertia = {l: np.asarray(pb.getDynamicsInfo(b0, l, physicsClientId=c)[2])
                                   for ls in self.groups.values() for l in ls}
