"""MuJoCo on CPU (the default backend): a batch of worlds stepped in native threads by `mujoco.rollout`.

The backend holds `num_variants` copies of the `MjModel` (domain randomization writes physical
parameters into them; each env simulates one of them, as `PhysicsBank` assigns), the full physics
state of every env as one `[num_envs, nstate]` array, and the sensor readings of the last physics
step. `step(ctrl, nsubsteps)` runs `nsubsteps` physics steps for all envs in one `rollout` call:
the GIL is released and the worlds are spread over the thread pool.

The snapshot (`qpos`, `qvel`, `frame_pos`) is consistent: MuJoCo computes sensors at the start of
`mj_step`, before integrating, so the sensor readings of the last substep belong to the state
*before* it. The snapshot's joint state is taken from that same moment (one physics step old),
never a mix of joint positions after the step and sensors from before it. Site positions and joint
efforts come from the `frame/<site>` and `effort/<joint>` sensors that
`robot_rl.sim.model.build_model` adds for every frame and joint of the robot (and the task's frames).
"""

from __future__ import annotations

import copy
import os

import mujoco
import numpy as np
import torch
from mujoco import rollout

from robot_rl.sim.backend import PHYSICS_FIELDS, SimBackend, UnsupportedFeature
from robot_rl.sim.model import effort_sensors, frame_sensors

_STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


def _state_offsets(model: mujoco.MjModel) -> dict[str, slice]:
    """Where each component sits in a FULLPHYSICS state vector (components in bit order)."""
    offsets, start = {}, 0
    for name, comp in mujoco.mjtState.__members__.items():
        bit = int(comp)
        if bit == 0 or bit & (bit - 1) or not (int(_STATE_SPEC) & bit):
            continue
        size = mujoco.mj_stateSize(model, bit)
        offsets[name.removeprefix("mjSTATE_").lower()] = slice(start, start + size)
        start += size
    return offsets


def default_nthread() -> int:
    return max(1, len(os.sched_getaffinity(0)))


class MujocoBackend(SimBackend):
    """`num_envs` worlds of one MuJoCo model (in `num_variants` physics variants), stepped together."""

    name = "mujoco"

    def __init__(self, model: mujoco.MjModel, robot, num_envs: int, device="cpu", nthread: int | None = None,
                 num_variants: int = 0):
        super().__init__(model, robot, num_envs, device)
        if self.device.type != "cpu":
            raise UnsupportedFeature(f"the mujoco backend runs on the CPU only, not on {self.device}; "
                                     "use --env.backend warp for a GPU")
        self.nthread = nthread or default_nthread()
        self.num_variants = num_variants or num_envs
        self.exact_variants = self.num_variants == num_envs
        self.variants = [copy.copy(model) for _ in range(self.num_variants)]
        # the model each env steps with (what `rollout` receives): a reference into `variants`
        self.models = [self.variants[i % self.num_variants] for i in range(num_envs)]
        self.datas = [mujoco.MjData(model) for _ in range(self.nthread)]
        self._scratch = mujoco.MjData(model)
        self.offsets = _state_offsets(model)
        nstate = mujoco.mj_stateSize(model, _STATE_SPEC)
        init = np.empty(nstate)
        mujoco.mj_resetData(model, self._scratch)
        mujoco.mj_forward(model, self._scratch)
        mujoco.mj_getState(model, self._scratch, init, _STATE_SPEC)
        self.state = np.tile(init, (num_envs, 1))
        self.observed = self.state.copy()  # the state the sensor readings belong to
        self.sensordata = np.tile(self._scratch.sensordata, (num_envs, 1))
        self._pool = rollout.Rollout(nthread=self.nthread if self.nthread > 1 else 0)
        self._ctrl = np.zeros((num_envs, 1, model.nu))
        self._out_state = None
        self._out_sensor = None
        self._out_steps = 0
        self._frames = frame_sensors(model)
        self._time = self.offsets["time"].start
        self.diverged = None
        # torch views that always alias the numpy buffers above (zero-copy on CPU)
        self.qpos = torch.from_numpy(self.observed[:, self.offsets["qpos"]])
        self.qvel = torch.from_numpy(self.observed[:, self.offsets["qvel"]])
        self._sensors = torch.from_numpy(self.sensordata)
        self._effort = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def joint_effort(self) -> torch.Tensor:
        if self._effort is None:
            self._effort = effort_sensors(self.model, self.robot.joint_names)
        return self._sensors[:, self._effort]  # a view for a slice; list indexing copies (fresh each call)

    def frame_jacobian(self, site: str) -> torch.Tensor:
        sid = self.model.site(site).id
        d, jac = self._scratch, np.zeros((self.num_envs, 3, self.model.nv))
        for i in range(self.num_envs):
            m = self.models[i]
            mujoco.mj_setState(m, d, self.observed[i], _STATE_SPEC)
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, jac[i], None, sid)
        return torch.from_numpy(jac)

    # -- physics -------------------------------------------------------------------------------
    def step(self, ctrl: torch.Tensor, nsubsteps: int) -> None:
        if self._out_steps != nsubsteps:
            self._out_state = np.empty((self.num_envs, nsubsteps, self.state.shape[1]))
            self._out_sensor = np.empty((self.num_envs, nsubsteps, self.model.nsensordata))
            self._out_steps = nsubsteps
        self._ctrl[:, 0, :] = ctrl.detach().numpy() if ctrl.dtype == torch.float64 else ctrl.detach().double().numpy()
        t_before = self.state[:, self._time].copy()
        if nsubsteps == 1:
            self.observed[:] = self.state
        self._pool.rollout(
            self.models,
            self.datas,
            self.state,
            np.broadcast_to(self._ctrl, (self.num_envs, nsubsteps, self.model.nu)),
            nstep=nsubsteps,
            state=self._out_state,
            sensordata=self._out_sensor,
            skip_checks=True,
        )
        self.state[:] = self._out_state[:, -1]
        self.sensordata[:] = self._out_sensor[:, -1]
        if nsubsteps > 1:
            self.observed[:] = self._out_state[:, -2]
        # MuJoCo resets a world whose velocities or accelerations blow up (mj_checkVel/Acc): its
        # clock jumps back. Report those worlds instead of silently continuing from qpos0.
        reset = self.state[:, self._time] < t_before + (nsubsteps - 0.5) * self.model.opt.timestep
        self.diverged = torch.from_numpy(reset) if reset.any() else None

    def set_joint_state(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        ids = env_ids.cpu().numpy()
        self.state[ids, self.offsets["qpos"]] = qpos.detach().cpu().double().numpy()
        self.state[ids, self.offsets["qvel"]] = qvel.detach().cpu().double().numpy()
        if "act" in self.offsets:
            self.state[ids, self.offsets["act"]] = 0.0
        self._forward(ids)

    def add_joint_velocity(self, env_ids: torch.Tensor, dqvel: torch.Tensor) -> None:
        ids = env_ids.cpu().numpy()
        dq = dqvel.detach().cpu().double().numpy()
        self.state[ids, self.offsets["qvel"]] += dq
        self.observed[ids, self.offsets["qvel"]] += dq

    def _forward(self, env_ids: np.ndarray) -> None:
        """Recompute sensor readings of `env_ids` from their current state (after a reset)."""
        d = self._scratch
        for i in env_ids.tolist():
            m = self.models[i]
            mujoco.mj_setState(m, d, self.state[i], _STATE_SPEC)
            mujoco.mj_forward(m, d)
            self.sensordata[i] = d.sensordata
            self.observed[i] = self.state[i]

    # -- physics variants (domain randomization) -----------------------------------------------
    def set_physics(self, field: str, variant_ids: np.ndarray, values: np.ndarray) -> None:
        if field not in PHYSICS_FIELDS:
            raise ValueError(f"unknown physics field {field!r}; known: {', '.join(PHYSICS_FIELDS)}")
        for k, i in enumerate(np.asarray(variant_ids).tolist()):
            getattr(self.variants[i], field)[...] = values[k]

    def use_variants(self, env_ids: torch.Tensor, variant_ids: torch.Tensor) -> None:
        for i, v in zip(env_ids.tolist(), variant_ids.tolist()):
            self.models[i] = self.variants[v]

    # -- rendering -----------------------------------------------------------------------------
    def render_data(self, env_id: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
        m = copy.copy(self.models[env_id])
        d = mujoco.MjData(m)
        mujoco.mj_setState(m, d, self.state[env_id], _STATE_SPEC)
        return m, d

    def close(self) -> None:
        self._pool.close() if hasattr(self._pool, "close") else None
