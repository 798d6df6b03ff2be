"""The env's robot state (`RobotState`, `robot_rl.terms`), kept in float32 buffers on the env's
device and refreshed in place from the backend after every physics change.

Refreshing costs a few copies: joint positions and velocities of the state joints are views into
the refreshed `qpos`/`qvel` buffers when their columns are consecutive, frames the task uses are
copied eagerly, and what is rarely needed (joint efforts, Jacobians, other frames) is converted on
first use after each refresh. Tensors handed out by the state change at the next refresh: a caller
that keeps one across steps must clone it.
"""

from __future__ import annotations

import torch

from robot_rl.terms import RobotState


class _OnDemand(dict):
    """name -> tensor, computed by `fn(name)` on first access after each refresh."""

    def __init__(self, fn, eager: dict[str, torch.Tensor] | None = None):
        super().__init__(eager or {})
        self._fn, self._eager = fn, dict(eager or {})

    def __missing__(self, name: str) -> torch.Tensor:
        v = self[name] = self._fn(name)
        return v

    def invalidate(self) -> None:
        self.clear()
        self.update(self._eager)


class _Effort:
    """The backend's joint effort as float32, converted on first indexing after each refresh."""

    def __init__(self, sim, device):
        self._sim, self._device, self._v = sim, device, None

    def __getitem__(self, idx):
        if self._v is None:
            self._v = self._sim.joint_effort.to(self._device, torch.float32)
        return self._v[idx]


class EnvState:
    def __init__(self, env, eager_frames: list[str]):
        sim, dev = env.sim, env.device
        self.sim, self.env = sim, env
        n = env.num_envs
        self.qpos = torch.zeros(n, sim.nq, device=dev)
        self.qvel = torch.zeros(n, sim.nv, device=dev)
        self._qpos_idx, self._qvel_idx = env.qpos_idx, env.qvel_idx
        self._sites = env.frame_sites
        self._frame_buf = {f: torch.zeros(n, 3, device=dev) for f in eager_frames if f in self._sites}
        self.frames = _OnDemand(self._frame, self._frame_buf)
        self.jacobians = _OnDemand(self._jacobian)
        self.state = RobotState(joint_pos=self.qpos[:, self._qpos_idx], joint_vel=self.qvel[:, self._qvel_idx],
                                joint_effort=_Effort(sim, dev), frames=self.frames, commands=env.commands,
                                last_action=env.actions, joint_target=None, jacobians=self.jacobians)

    def _frame(self, name: str) -> torch.Tensor:
        if name not in self._sites:
            raise KeyError(f"frame {name!r} is not a frame of the robot or the task ({list(self._sites)})")
        return self.sim.frame_pos(self._sites[name]).to(self.env.device, torch.float32)

    def _jacobian(self, name: str) -> torch.Tensor:
        full = self.sim.frame_jacobian(self._sites[name]).to(self.env.device, torch.float32)
        return full[:, :, self.env._actuated_dof]

    def refresh(self) -> RobotState:
        sim, s = self.sim, self.state
        self.qpos.copy_(sim.qpos)
        self.qvel.copy_(sim.qvel)
        if self.env._biased:  # what the robot's encoders report
            self.qpos[:, self.env._actuated_qpos] += self.env.encoder_bias
        if not isinstance(self._qpos_idx, slice):  # gathered columns: not a view
            s.joint_pos = self.qpos[:, self._qpos_idx]
        if not isinstance(self._qvel_idx, slice):
            s.joint_vel = self.qvel[:, self._qvel_idx]
        for f, buf in self._frame_buf.items():
            buf.copy_(sim.frame_pos(self._sites[f]))
        self.frames.invalidate()
        self.jacobians.invalidate()
        s.joint_effort = _Effort(sim, self.env.device)
        s.last_action = self.env.actions
        s.joint_target = self.env.action_terms.joint_target
        return s
