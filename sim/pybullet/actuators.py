"""MuJoCo's actuator model as pybullet joint torques.

pybullet's default velocity motors are disabled (replaced by the friction-loss motors, below)
and the joints are TORQUE controlled: `force = gain * ctrl + bias` with MuJoCo's affine gain/bias
(`gain[0] + gain[1] L + gain[2] Ldot`, `bias[0] + bias[1] L + bias[2] Ldot`, `L` the
transmission length: `gear * q` for a joint, `sum(coef * q)` for a fixed tendon such as the
Panda's gripper), `ctrl` clamped to `ctrlrange`, the force to `forcerange`, the joint torque to
the joint's `actuatorfrcrange`, all from the per-env `actuator_gainprm/biasprm`; `joint_effort`
is that actuator torque (MuJoCo's `jointactuatorfrc`).
Passive terms: `-damping * qdot` and the joint stiffness spring are added to the torque
(pybullet's own URDF joint damping and its default link damping are switched off, `world`). A
linear joint equality (the Panda's finger coupling) is a pybullet gear constraint (nearly rigid,
where MuJoCo's is soft).

Approximations (measured in tests/test_pybullet_backend.py):

* **Gravity compensation** is exact in MuJoCo's sense: MuJoCo applies `gravcomp_b * m_b * (-g)` at
  each body's centre of mass; the torque `J^T F` of those forces is the gravity torque of the same
  robot with masses `gravcomp_b * m_b`. The backend keeps, per env, a *shadow* copy of the robot in
  a second (never stepped) pybullet client whose link masses are `gravcomp_b * m_b` (updated by
  `set_physics` of `body_mass` and `body_gravcomp`, `physics`) and adds
  `calculateInverseDynamics(q, 0, 0)` of the shadow at every internal step (on the real robot
  pybullet's inverse dynamics refuses the armature-augmented inertias). With DR,
  `gravcomp * mass` stays the nominal mass (the controller knows the nominal model only), so a
  payload sags the arm as in MuJoCo (to 5e-4 rad).
* **Armature** (reflected rotor inertia): pybullet has none. It is added to the child link's
  inertia about the joint axis (`link_inertia`: `I += a axis axis^T`, re-expressed in the URDF's
  principal frame; a joint axis that is not a principal axis there raises). The joint sees `+a`
  on its own mass-matrix diagonal as in MuJoCo, but the rotor turns with the link's absolute
  rotation, not with the joint, so it also enters every joint whose axis is not perpendicular to
  it (`a (u . axis)` couplings), where MuJoCo adds `a` to the diagonal only. Modes in which
  aligned joints counter-rotate keep only the links' own inertia: the stiffest mode of the PD law
  is faster than in MuJoCo (iiwa: 1095 vs 401 1/s), which sets the internal step
  (`internal_step`). Trajectories stay within 0.008 rad of MuJoCo's. Armature on a slide joint is
  unsupported (it would be a mass).
* **Friction loss** (dry joint friction) is pybullet's joint-friction idiom: a velocity motor
  with target 0 and maximum force `frictionloss` (a hard constraint, where MuJoCo's is soft and
  creeps): a joint stops anywhere within `frictionloss / kp` of its target, as in MuJoCo, but not
  at the same place.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pybullet as pb

from robot_rl.sim.backend import UnsupportedFeature
from robot_rl.sim.pybullet.mapping import RobotMap
from robot_rl.sim.pybullet.mjmodel import HINGE, SLIDE
from robot_rl.sim.pybullet.world import World

COUPLING_ERP = 0.2
"""Position-error correction per internal step of a joint coupling (gear constraint)."""

_GAIN_FIXED, _GAIN_AFFINE = int(mujoco.mjtGain.mjGAIN_FIXED), int(mujoco.mjtGain.mjGAIN_AFFINE)
_BIAS_NONE, _BIAS_AFFINE = int(mujoco.mjtBias.mjBIAS_NONE), int(mujoco.mjtBias.mjBIAS_AFFINE)
_TRN_JOINT, _TRN_TENDON = int(mujoco.mjtTrn.mjTRN_JOINT), int(mujoco.mjtTrn.mjTRN_TENDON)
_WRAP_JOINT, _DYN_NONE = int(mujoco.mjtWrap.mjWRAP_JOINT), int(mujoco.mjtDyn.mjDYN_NONE)


class Actuators:
    """The model's actuators on the mapped dofs: moment arms `moment` [nu, ndof] (MuJoCo
    semantics), their kinds and limits, the passive joint terms; the joint couplings are created
    in every env's copy."""

    def __init__(self, m: mujoco.MjModel, rmap: RobotMap, world: World):
        self._map, self._world = rmap, world
        col = {dof: k for k, dof in enumerate(rmap.mj_dof)}
        moment = np.zeros((m.nu, rmap.ndof))
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
                if dof not in col or m.jnt_type[tid] not in (HINGE, SLIDE):
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
        self.moment = moment
        self._gain_affine = m.actuator_gaintype == _GAIN_AFFINE
        self.bias_affine = m.actuator_biastype == _BIAS_AFFINE
        clamp = not (m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CLAMPCTRL)
        self.ctrl_lo = np.where(m.actuator_ctrllimited & clamp, m.actuator_ctrlrange[:, 0], -np.inf)
        self.ctrl_hi = np.where(m.actuator_ctrllimited & clamp, m.actuator_ctrlrange[:, 1], np.inf)
        self._force_lo = np.where(m.actuator_forcelimited, m.actuator_forcerange[:, 0], -np.inf)
        self._force_hi = np.where(m.actuator_forcelimited, m.actuator_forcerange[:, 1], np.inf)
        jnt = m.dof_jntid[rmap.mj_dof_a]
        self._jfrc_lo = np.where(m.jnt_actfrclimited[jnt], m.jnt_actfrcrange[jnt, 0], -np.inf)
        self._jfrc_hi = np.where(m.jnt_actfrclimited[jnt], m.jnt_actfrcrange[jnt, 1], np.inf)
        self._actgravcomp = m.jnt_actgravcomp[jnt].astype(bool)
        self.stiffness = m.jnt_stiffness[jnt].copy()
        self._spring = m.qpos_spring[rmap.mj_qpos_a].copy()
        for e in range(m.neq):
            if m.eq_active0[e]:
                self._couple(m, e)
        if any(m.dof_armature[rmap.mj_dof_a[k]] > 0 and rmap.dof_type[k] == SLIDE for k in range(rmap.ndof)):
            raise UnsupportedFeature("armature on a slide joint is not supported by the pybullet backend")

    def _couple(self, m: mujoco.MjModel, e: int) -> None:
        """A linear joint equality `q1 - q1_0 = a0 + a1 (q2 - q2_0)` (a gripper's mechanical
        coupling) as a pybullet gear constraint in every env: `qd1 - a1 qd2 = 0`, with its position
        error corrected (`erp`) toward the same offset. MuJoCo's constraint is soft (solref), this
        one nearly rigid: the coupled joints agree to ~1e-4 where MuJoCo lets them differ by its
        constraint softness."""
        rmap, c = self._map, self._world.client
        name = m.equality(e).name or f"equality {e}"
        col = {dof: k for k, dof in enumerate(rmap.mj_dof)}
        j1, j2 = int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
        poly = m.eq_data[e, :5]
        if (int(m.eq_type[e]) != int(mujoco.mjtEq.mjEQ_JOINT) or j2 < 0 or np.any(poly[2:] != 0)
                or int(m.jnt_dofadr[j1]) not in col or int(m.jnt_dofadr[j2]) not in col):
            raise UnsupportedFeature(f"equality constraint {name!r}: the pybullet backend supports linear couplings "
                                     "of two simulated joints only")
        k1, k2 = col[int(m.jnt_dofadr[j1])], col[int(m.jnt_dofadr[j2])]
        ratio = -float(poly[1])
        # the constraint drives q1 + ratio q2 (pybullet's zero: qpos - ref) to its target
        target = (float(m.qpos0[m.jnt_qposadr[j1]]) - rmap.ref[k1] + float(poly[0])
                  + ratio * (float(m.qpos0[m.jnt_qposadr[j2]]) - rmap.ref[k2]))
        for b in self._world.bodies:
            cid = pb.createConstraint(b, rmap.pb_dofs[k1], b, rmap.pb_dofs[k2], pb.JOINT_GEAR, [0.0, 0.0, 1.0],
                                      [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], physicsClientId=c)
            pb.changeConstraint(cid, gearRatio=ratio, erp=COUPLING_ERP, relativePositionTarget=target,
                                maxForce=1e6, physicsClientId=c)

    def torques(self, q: np.ndarray, qd: np.ndarray, ctrl: np.ndarray, params: dict[str, np.ndarray],
                gc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(joint torques, actuator torques) [N, ndof] at state (q, qd) [N, ndof] under the clamped
        `ctrl` [N, nu], with the per-env `params` and the gravity compensation `gc` [N, ndof]."""
        gain, bias = params["actuator_gainprm"], params["actuator_biasprm"]
        length = q @ self.moment.T  # [N, nu]
        vel = qd @ self.moment.T
        g = np.where(self._gain_affine, gain[:, :, 0] + gain[:, :, 1] * length + gain[:, :, 2] * vel, gain[:, :, 0])
        bf = np.where(self.bias_affine, bias[:, :, 0] + bias[:, :, 1] * length + bias[:, :, 2] * vel, 0.0)
        force = np.clip(g * ctrl + bf, self._force_lo, self._force_hi)
        tau = force @ self.moment
        if self._actgravcomp.any():
            tau = tau + np.where(self._actgravcomp, gc, 0.0)
        tau = np.clip(tau, self._jfrc_lo, self._jfrc_hi)
        passive = -params["dof_damping"][:, self._map.mj_dof_a] * qd - self.stiffness * (q - self._spring)
        if not self._actgravcomp.all():
            passive = passive + np.where(self._actgravcomp, 0.0, gc)
        return tau + passive, tau

    def gravcomp(self, q: np.ndarray, on: np.ndarray) -> np.ndarray:
        """[N, ndof] MuJoCo's gravity compensation torques at joint positions q [N, ndof], from the
        shadows of the envs `on` (bool [N]; zero elsewhere)."""
        out = np.zeros_like(q)
        zero = [0.0] * self._map.ndof
        s, shadows = self._world.shadow_client, self._world.shadows
        qpb = q - self._map.ref_a
        for i in np.flatnonzero(on):
            out[i] = pb.calculateInverseDynamics(shadows[i], qpb[i].tolist(), zero, zero, physicsClientId=s)
        return out

    def set_friction_loss(self, i: int, frictionloss: np.ndarray) -> None:
        """The friction-loss motors of env `i` (`frictionloss` [ndof]); their impulse scales with
        pybullet's time step at this call, so they are set again when it changes."""
        pb.setJointMotorControlArray(self._world.bodies[i], self._map.pb_dofs, pb.VELOCITY_CONTROL,
                                     targetVelocities=[0.0] * self._map.ndof, forces=frictionloss.tolist(),
                                     physicsClientId=self._world.client)


def link_inertia(name: str, inertia: np.ndarray, rot_mj: np.ndarray, rot_pb: np.ndarray, rotors) -> np.ndarray:
    """pybullet's principal inertia diagonal of a link: the body's principal `inertia` (in MuJoCo's
    inertial frame `rot_mj`) plus the armature `a` of each of its hinges `(a, unit axis)` in
    `rotors`, in the URDF's inertial frame `rot_pb` (whose axes must stay principal)."""
    full = rot_mj @ np.diag(inertia) @ rot_mj.T
    for a, axis in rotors:
        full += a * np.outer(axis, axis)
    local = rot_pb.T @ full @ rot_pb
    off = np.abs(local - np.diag(np.diag(local))).max()
    if off > 1e-9 * max(1e-12, np.abs(local).max()):
        raise UnsupportedFeature(
            f"body {name!r}: its inertia (with the joint armature) has principal axes that "
            "differ from the URDF's inertial frame; pybullet cannot rotate a link's inertial frame")
    return np.diag(local).copy()
