"""MuJoCo on CPU: a batch of worlds stepped in native threads by `mujoco.rollout`.

The backend owns the physics only. It holds `num_variants` copies of the `MjModel` (domain
randomization writes physical parameters into them; each env simulates one of them, as
`PhysicsBank` assigns), the full physics state of every env as one
`[num_envs, nstate]` array, and the sensor readings of the last physics step. Everything above it
(observations, rewards, resets, randomization sampling) is batched torch code in `env.py` and the
task files, shared with every other backend.

`step(ctrl, nsubsteps)` runs `nsubsteps` physics steps for all envs in one `rollout` call: the
GIL is released and the worlds are spread over the thread pool.

What the env observes (`qpos`, `qvel`, `sensordata`) is one consistent snapshot: MuJoCo computes
sensors at the start of `mj_step`, before integrating, so the sensor readings of the last substep
belong to the state *before* it. The observed joint state is taken from that same moment (one
physics step old), never a mix of joint positions after the step and sensors from before it.
"""

from __future__ import annotations

import copy
import os

import mujoco
import numpy as np
import torch
from mujoco import rollout

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


class MujocoBatch:
    """`num_envs` worlds of one MuJoCo model (in `num_variants` physics variants), stepped together."""

    name = "mujoco"

    def __init__(self, model: mujoco.MjModel, num_envs: int, nthread: int | None = None,
                 num_variants: int | None = None):
        self.base = model
        self.num_envs = num_envs
        self.nthread = nthread or default_nthread()
        self.variants = [copy.copy(model) for _ in range(num_variants or num_envs)]
        # the model each env steps with (what `rollout` receives): a reference into `variants`
        self.models = [self.variants[i % len(self.variants)] for i in range(num_envs)]
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
        # torch views that always alias the numpy buffers above (zero-copy on CPU)
        self.qpos = torch.from_numpy(self.observed[:, self.offsets["qpos"]])
        self.qvel = torch.from_numpy(self.observed[:, self.offsets["qvel"]])

    # -- physics -------------------------------------------------------------------------------
    def step(self, ctrl: np.ndarray, nsubsteps: int) -> None:
        """Hold `ctrl` [num_envs, nu] for `nsubsteps` physics steps in every env."""
        if self._out_steps != nsubsteps:
            self._out_state = np.empty((self.num_envs, nsubsteps, self.state.shape[1]))
            self._out_sensor = np.empty((self.num_envs, nsubsteps, self.base.nsensordata))
            self._out_steps = nsubsteps
        self._ctrl[:, 0, :] = ctrl
        if nsubsteps == 1:
            self.observed[:] = self.state
        self._pool.rollout(
            self.models,
            self.datas,
            self.state,
            np.broadcast_to(self._ctrl, (self.num_envs, nsubsteps, self.base.nu)),
            nstep=nsubsteps,
            state=self._out_state,
            sensordata=self._out_sensor,
            skip_checks=True,
        )
        self.state[:] = self._out_state[:, -1]
        self.sensordata[:] = self._out_sensor[:, -1]
        if nsubsteps > 1:
            self.observed[:] = self._out_state[:, -2]

    def set_joint_state(self, env_ids: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.state[env_ids, self.offsets["qpos"]] = qpos
        self.state[env_ids, self.offsets["qvel"]] = qvel
        if "act" in self.offsets:
            self.state[env_ids, self.offsets["act"]] = 0.0
        self.forward(env_ids)

    def add_joint_velocity(self, env_ids: np.ndarray, dqvel: np.ndarray) -> None:
        self.state[env_ids, self.offsets["qvel"]] += dqvel
        self.observed[env_ids, self.offsets["qvel"]] += dqvel

    def forward(self, env_ids: np.ndarray) -> None:
        """Recompute sensor readings of `env_ids` from their current state (after a reset)."""
        d = self._scratch
        for i in env_ids.tolist():
            m = self.models[i]
            mujoco.mj_setState(m, d, self.state[i], _STATE_SPEC)
            mujoco.mj_forward(m, d)
            self.sensordata[i] = d.sensordata
            self.observed[i] = self.state[i]

    # -- physics variants (domain randomization) -----------------------------------------------
    def set_model_field(self, field: str, variant_ids: np.ndarray, values: np.ndarray) -> None:
        """Write `values[k]` into `getattr(model, field)` of variant `variant_ids[k]`."""
        for k, i in enumerate(variant_ids.tolist()):
            getattr(self.variants[i], field)[...] = values[k]

    def use_variants(self, env_ids: np.ndarray, variant_ids: np.ndarray) -> None:
        """Env `env_ids[k]` simulates variant `variant_ids[k]` from its next step on."""
        for i, v in zip(env_ids.tolist(), variant_ids.tolist()):
            self.models[i] = self.variants[v]

    # -- rendering -----------------------------------------------------------------------------
    def load_render_data(self, env_id: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
        m = self.models[env_id]
        d = self._scratch
        mujoco.mj_setState(m, d, self.state[env_id], _STATE_SPEC)
        mujoco.mj_forward(m, d)
        return m, d
