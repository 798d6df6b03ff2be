"""PyBullet: the same robot, from the same URDF, with the same actuator model, in another simulator.

For cross-simulator evaluation (`robot_rl.cross_sim`): a policy trained in MuJoCo runs unchanged in
a second physics engine, so what it learnt about MuJoCo's quirks (integrator, constraint solver,
joint-limit model) shows up as a gap. Everything else is kept identical: the URDF the robot's MJCF
was built from (`robot.urdf_path()`; a robot without one gets a URDF written from the compiled
MuJoCo model, the same bodies, inertias and joints), the nominal masses and inertias of the
MuJoCo model, its actuators, joint damping, armature, friction loss and gravity compensation.

`PybulletBackend` ties together the parts in `robot_rl.sim.pybullet`: the URDF (`urdf`), the
contacts the robot can make (`contacts`: a floor plane at most), the pybullet world of robot
copies (`world`), the mapping of MuJoCo's joints, bodies and sites onto them, checked at
construction (`mapping`), MuJoCo's actuator model as joint torques and its approximations
(gravity compensation, armature, friction loss: `actuators`), the internal step that keeps
pybullet's explicit integration stable (`internal_step`) and the per-env physics parameters
(`physics`).

Snapshot timing mirrors the MuJoCo backend: MuJoCo's sensors are computed at the start of the
last physics step, so `qpos`, `qvel`, `frame_pos` and `joint_effort` after `step(ctrl, n)` are the
state at the start of the last of the `n` physics steps (one physics step old); a policy sees the
same observation delay in both simulators.

Cost: ~40 us per env per internal step on one core (pybullet's step ~15 us, the rest Python
calls), i.e. ~0.45 ms per env per 10 ms physics step for the iiwa, ~80x MuJoCo's; construction
~2 ms per env.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch

try:
    import pybullet as pb
except ImportError as e:  # the registry turns this into an install hint
    raise ImportError("pybullet is not installed", name="pybullet") from e

from robot_rl.sim.backend import SimBackend, UnsupportedFeature
from robot_rl.sim.model import effort_sensors, frame_sensors
from robot_rl.sim.pybullet.actuators import Actuators
from robot_rl.sim.pybullet.contacts import contact_plane
from robot_rl.sim.pybullet.internal_step import STABILITY_LIMIT, STEP_FIELDS, StepRule
from robot_rl.sim.pybullet.mapping import RobotMap
from robot_rl.sim.pybullet.physics import Physics
from robot_rl.sim.pybullet.urdf import add_collision_geoms, prepared_urdf, urdf_from_model, urdf_links
from robot_rl.sim.pybullet.world import World

DIVERGED_VELOCITY = 99.0
"""Joint speed (rad/s or m/s) that marks a world as diverged (pybullet clamps at 100)."""


class PybulletBackend(SimBackend):
    """`num_envs` copies of the robot's URDF in one pybullet world, MuJoCo's actuator model;
    `substeps` pybullet steps per physics step ("auto": `internal_step`)."""

    name = "pybullet"
    moves_com = False
    exact_variants = True

    def __init__(self, model: mujoco.MjModel, robot, num_envs: int, device="cpu", nthread: int | None = None,
                 num_variants: int = 0, substeps: int | str = "auto"):
        super().__init__(model, robot, num_envs, device)
        if self.device.type != "cpu":
            raise UnsupportedFeature(f"the pybullet backend runs on the CPU only, not on {self.device}")
        self._world = None
        try:
            self._build(model, robot, substeps)
        except BaseException:
            self.close()
            raise

    def _build(self, m: mujoco.MjModel, robot, substeps) -> None:
        n = self.num_envs
        plane = contact_plane(m)
        text = prepared_urdf(robot.urdf_path()) if robot.urdf else urdf_from_model(m)
        if plane is not None:
            text = add_collision_geoms(text, m, plane.touching, urdf_links(text, m))
        self._world = World(m, text, n, plane)
        self._map = RobotMap(m, self._world)
        self._act = Actuators(m, self._map, self._world)
        self._physics = Physics(m, self._world, self._map, self._act)
        self._rule = StepRule(m, robot, self.joint_qpos_index(robot.joint_names), self._map, self._act)
        self._set_substeps(self._rule.initial(substeps, self._physics.params))

        # state: MuJoCo's layout; `state_*` the current state, `observed_*` the snapshot
        self.state_qpos = np.tile(m.qpos0, (n, 1))
        self.state_qvel = np.zeros((n, m.nv))
        self.observed_qpos = self.state_qpos.copy()
        self.observed_qvel = self.state_qvel.copy()
        self.qpos = torch.from_numpy(self.observed_qpos)
        self.qvel = torch.from_numpy(self.observed_qvel)
        self._frames = frame_sensors(m)
        self._site_links = {site: self._map.site_link(site) for site in self._frames}
        self._frame_links = sorted(set(self._site_links.values()) - {-1})
        self._frame_pos = np.zeros((n, len(self._frame_links), 3))
        self._frame_rot = np.zeros((n, len(self._frame_links), 3, 3))
        self._frame_cache: dict[str, torch.Tensor] = {}
        d = mujoco.MjData(m)
        mujoco.mj_kinematics(m, d)
        self._site_buf = {site: np.tile(d.site_xpos[m.site(site).id], (n, 1)) for site in self._frames}
        self._effort_all = np.zeros((n, self._map.ndof))
        self._effort = None
        self._ctrl = np.zeros((n, m.nu))
        self.diverged = None
        self.set_joint_state(torch.arange(n), torch.from_numpy(self.state_qpos.copy()),
                             torch.zeros(n, m.nv, dtype=torch.float64))

    # -- internal step and physics parameters ------------------------------------------------------
    def _set_substeps(self, n: int) -> None:
        self._substeps = n
        self.internal_dt = self.physics_dt / n
        self._world.set_time_step(self.internal_dt)
        self._physics.apply_frictionloss(np.arange(self.num_envs), force=True)  # motor impulses scale with the step

    @property
    def substeps(self) -> int:
        """pybullet steps per MuJoCo physics step."""
        return self._substeps

    def set_physics(self, field: str, variant_ids: np.ndarray, values: np.ndarray) -> None:
        ids = self._physics.set(field, variant_ids, values)
        if field in STEP_FIELDS:
            need = self._rule.needed(self._physics.params, ids, STABILITY_LIMIT)
            if need > self._substeps:
                self._set_substeps(need)

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
            col = {dof: k for k, dof in enumerate(self._map.mj_dof)}
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
        st = pb.getJointStates(self._world.bodies[i], self._map.pb_dofs, physicsClientId=self._world.client)
        q[:] = [s[0] for s in st]
        qd[:] = [s[1] for s in st]

    def _capture_frames(self, ids) -> None:
        """Site positions of envs `ids` from pybullet's link frames (the current pybullet state)."""
        w, m = self._world, self.model
        for i in ids:
            if self._frame_links:
                sts = pb.getLinkStates(w.bodies[i], self._frame_links, computeForwardKinematics=True,
                                       physicsClientId=w.client)
                for k, st in enumerate(sts):
                    self._frame_pos[i, k] = np.asarray(st[4]) - w.offsets[i]
                    self._frame_rot[i, k] = np.asarray(pb.getMatrixFromQuaternion(st[5])).reshape(3, 3)
        for site in self._frames:
            link = self._site_links[site]
            if link == -1:  # the world or a static body: a constant position
                continue
            sid = m.site(site).id
            k = self._frame_links.index(link)
            local = m.site_pos[sid]
            self._site_buf[site][ids] = (self._frame_pos[ids, k]
                                         + np.einsum("nij,j->ni", self._frame_rot[ids, k], local))

    def step(self, ctrl: torch.Tensor, nsubsteps: int) -> None:
        n, w, rmap = self.num_envs, self._world, self._map
        self._ctrl[:] = np.clip(ctrl.detach().cpu().double().numpy(), self._act.ctrl_lo, self._act.ctrl_hi)
        ids = np.arange(n)
        q = self.state_qpos[:, rmap.mj_qpos_a].copy()
        qd = self.state_qvel[:, rmap.mj_dof_a].copy()
        for step in range(nsubsteps):
            last = step == nsubsteps - 1
            if last:  # the snapshot: the state at the start of the last physics step (as MuJoCo's sensors)
                self.observed_qpos[:] = self.state_qpos
                self.observed_qvel[:] = self.state_qvel
                self._capture_frames(ids)
            for sub in range(self._substeps):
                gc = self._act.gravcomp(q, self._physics.gravcomp_on)
                tau, act = self._act.torques(q, qd, self._ctrl, self._physics.params, gc)
                if last and sub == 0:
                    self._effort_all[:] = act
                    self._store_effort()
                for i in range(n):
                    pb.setJointMotorControlArray(w.bodies[i], rmap.pb_dofs, pb.TORQUE_CONTROL, forces=tau[i].tolist(),
                                                 physicsClientId=w.client)
                pb.stepSimulation(physicsClientId=w.client)
                for i in range(n):
                    self._read(i, q[i], qd[i])
                q += rmap.ref_a
            self.state_qpos[:, rmap.mj_qpos_a] = q
            self.state_qvel[:, rmap.mj_dof_a] = qd
        # pybullet clamps joint speeds at maxJointVelocity instead of producing NaN: a world that
        # reaches the clamp has blown up (no robot joint moves at 100 rad/s or m/s)
        bad = ~np.isfinite(qd).all(1) | (np.abs(qd) >= DIVERGED_VELOCITY).any(1)
        self.diverged = torch.from_numpy(bad) if bad.any() else None

    def _reset_joints(self, i: int) -> None:
        """pybullet's joint state of env `i` from its MuJoCo state."""
        rmap, w = self._map, self._world
        q = self.state_qpos[i, rmap.mj_qpos_a] - rmap.ref_a
        qd = self.state_qvel[i, rmap.mj_dof_a]
        for j, dof in enumerate(rmap.pb_dofs):
            pb.resetJointState(w.bodies[i], dof, float(q[j]), float(qd[j]), physicsClientId=w.client)

    def set_joint_state(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        ids = env_ids.cpu().numpy().reshape(-1)
        qp = qpos.detach().cpu().double().numpy().reshape(len(ids), -1)
        qv = qvel.detach().cpu().double().numpy().reshape(len(ids), -1)
        for k, i in enumerate(ids.tolist()):
            self.state_qpos[i] = qp[k]
            self.state_qvel[i] = qv[k]
            self._reset_joints(i)
        if self._map.static_qpos:  # visual-only objects: held where they are put, at rest
            simulated = np.isin(np.arange(self.model.nv), self._map.mj_dof_a)
            self.state_qvel[ids] = np.where(simulated, self.state_qvel[ids], 0.0)
        self.observed_qpos[ids] = self.state_qpos[ids]
        self.observed_qvel[ids] = self.state_qvel[ids]
        self._effort_all[ids] = 0.0
        self._store_effort()
        self._capture_frames(ids)

    def add_joint_velocity(self, env_ids: torch.Tensor, dqvel: torch.Tensor) -> None:
        ids = env_ids.cpu().numpy().reshape(-1)
        dq = dqvel.detach().cpu().double().numpy().reshape(len(ids), -1)
        dofs = self._map.mj_dof_a
        for k, i in enumerate(ids.tolist()):
            self.state_qvel[i, dofs] += dq[k, dofs]
            self.observed_qvel[i, dofs] += dq[k, dofs]
            self._reset_joints(i)

    # -- rendering ---------------------------------------------------------------------------------
    def render_data(self, env_id: int):
        import copy

        m = copy.copy(self.model)
        d = mujoco.MjData(m)
        d.qpos[:] = self.state_qpos[env_id]
        d.qvel[:] = self.state_qvel[env_id]
        return m, d

    def close(self) -> None:
        world = getattr(self, "_world", None)
        if world is not None:
            world.close()
            self._world = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
