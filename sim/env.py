"""The batched-environment contract, shared by every backend and task.

```
env = make_env("iiwa-reach", num_envs=1024, dr="train", seed=0)            # backend="mujoco" (CPU)
obs = env.reset()                                   # {"policy": [N, Dp], "critic": [N, Dc]}
obs, reward, terminated, truncated, info = env.step(actions)   # actions [N, A] in [-1, 1]
```

* All values are torch tensors with a leading `num_envs` axis on `env.device`.
* Finished envs are reset automatically inside `step`; the returned `obs` of such an env is the
  first observation of its new episode. With `autoreset=False` (single-env wrappers such as the
  Gymnasium adapter) `step` returns the terminal observation instead and the caller resets
  finished envs with `reset(env_ids)`. `terminated` marks true terminations (failure states),
  `truncated` marks time-outs only (`info["time_outs"]` is the same tensor, as rsl_rl expects), so
  a learner can bootstrap the value of timed-out states.
* Observation groups: `policy` (what the deployed policy sees: noisy, delayed as DR says) and
  `critic` (privileged: noise-free terms plus the sampled DR parameters, for asymmetric
  actor-critic). Terms are functions of the robot state (`env.state`, a `RobotState`), shared with
  the deploy node (`robot_rl.terms`); actions go through the task's action terms.
* The simulator is a backend (`robot_rl.sim.backend`): `mujoco` (CPU, default), `warp` (MuJoCo
  Warp, GPU or Warp's CPU device), `pybullet`.
* Physics DR parameters come from a bank of at most `physics_variants` simulator models on the
  MuJoCo CPU backend (`physics_bank.py`); backends with per-world parameters sample every env
  exactly at each of its resets.
* `info["dr"]` holds the DR parameters of every env's current episode (after auto-reset, like
  `obs`); `info["episode"]` holds return, length and success of the episodes that ended this step
  (empty tensors when none did; `dr_boundary` is the ADR boundary pair each evaluated, -1 for
  none, see `set_dr`). `info["nan_resets"]` counts envs whose physics state became
  NaN/Inf this step: they are reset, their transition is marked terminated with reward 0, and
  `env.nan_resets` keeps the running total.
* Control decimation: each `step` holds the actuator controls for `task.decimation` physics steps.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch

from robot_rl.sim import randomization as R
from robot_rl.sim.backend import BACKENDS, UnsupportedFeature, make_backend
from robot_rl.sim.delay import DelayLine
from robot_rl.sim.dr_boundary import BoundaryPlan
from robot_rl.sim.dr_effects import check_effects, moves_payload
from robot_rl.sim.env_state import EnvState
from robot_rl.sim.model import build_model, used_frames
from robot_rl.sim.physics_bank import PhysicsBank
from robot_rl.sim.physics_params import FIELDS, GEOM_FIELDS, check_toleranced_geoms, model_fields, part_size_fields
from robot_rl.sim.task import Task
from robot_rl.sim.twins import resolve_dr
from robot_rl.terms import ActionGroup, ObservationGroup, make_context


def _index(idx: list[int], device) -> slice | torch.Tensor:
    """Column selector: a slice (a view, no copy) when the indices are consecutive."""
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return slice(idx[0], idx[0] + len(idx))
    return torch.tensor(idx, device=device)


def _runs(cols: list[int]) -> list[slice]:
    """Consecutive runs of column indices as slices: [0, 1, 2, 5, 6] -> [0:3, 5:7]."""
    out: list[slice] = []
    for c in cols:
        if out and out[-1].stop == c:
            out[-1] = slice(out[-1].start, c + 1)
        else:
            out.append(slice(c, c + 1))
    return out


class _Offset(dict):
    """Frames `base[name]` plus a per-env offset where `offsets` has one (read-only view)."""

    def __init__(self, base, offsets: dict[str, torch.Tensor]):
        super().__init__()
        self._base, self._offsets = base, offsets

    def __missing__(self, name: str) -> torch.Tensor:
        v = self._base[name]
        return v + self._offsets[name] if name in self._offsets else v


def check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--env.device {device}: use cpu or cuda[:index]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--env.device {device}: no CUDA GPU is available to torch on this machine; "
                         "use --env.device cpu (with --env.backend warp, Warp's CPU device)")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--env.device {device}: use cpu or cuda[:index]")
    return dev


class BatchedEnv:
    def __init__(
        self,
        task: Task,
        num_envs: int,
        dr: str | R.DomainRandomization = "train",
        seed: int = 0,
        backend: str = "mujoco",
        device: str = "cpu",
        nthread: int | None = None,
        physics_variants: int = 256,
        autoreset: bool = True,
    ):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available backends: {', '.join(BACKENDS)}")
        self.task = task
        self.robot = robot = task.robot
        self.num_envs = num_envs
        self.device = check_device(device)
        self.dr_mode = dr if isinstance(dr, str) else "custom"
        self.autoreset = autoreset
        self.dr = resolve_dr(task, dr)
        self.dr.validate(f"{task.name} dr[{self.dr_mode}]")
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)
        self.model = model = build_model(task)
        # toleranced geoms (`part_size_delta_m`): only such a task has the geometry DR column
        self._tol_geoms = check_toleranced_geoms(model, task.toleranced_geoms, task.name)
        self.param_names = R.param_names(bool(self._tol_geoms))
        """Names of the `dr_values` columns (the critic group's tail, `info["dr"]`)."""
        self._phys_names = R.PHYSICS_PARAMS + (R.GEOMETRY_PARAMS if self._tol_geoms else ())
        check_effects(self.dr, model, robot, f"{task.name} dr[{self.dr_mode}]", bool(self._tol_geoms))
        requested = PhysicsBank.requested_variants(num_envs, physics_variants)
        self.sim = make_backend(backend, model, robot, num_envs, device=str(self.device), nthread=nthread,
                                num_variants=requested)
        self.bank = PhysicsBank(num_envs, self.sim.num_variants, self.gen, self.device)
        self.backend = backend
        self.physics_dt = float(model.opt.timestep)
        self.control_dt = self.physics_dt * task.decimation
        self.max_episode_length = int(math.ceil(task.episode_length_s / self.control_dt))

        # robot state: the state joints (actuated, then passive) and where they live in qpos/qvel
        self.state_joints = robot.state_joints
        self.qpos_idx = _index(self.sim.joint_qpos_index(self.state_joints), self.device)
        self.qvel_idx = _index(self.sim.joint_dof_index(self.state_joints), self.device)
        self.num_joints = len(robot.joint_names)
        self._actuated_qpos = _index(self.sim.joint_qpos_index(robot.joint_names), self.device)
        self._actuated_dof = _index(self.sim.joint_dof_index(robot.joint_names), self.device)
        self.default_pose = torch.tensor(robot.default_pose, dtype=torch.float32, device=self.device)
        self.commands: dict[str, torch.Tensor] = {
            k: torch.zeros(num_envs, c.dim, device=self.device) for k, c in task.commands().items()}
        self.ctx = make_context(robot.describe(model), {k: c.dim for k, c in task.commands().items()}, task.frames,
                                torch_device=self.device)
        self.frame_sites = {**robot.frames, **{s: s for s in task.frames if s not in robot.frames}}
        self.action_terms = ActionGroup(task.actions(), self.ctx)
        self.num_actions = self.action_terms.dim
        self._ctrl_map = self._control_map()
        self._has_distance = callable(getattr(task, "distance", None))
        self._payload_body = model.body(robot.payload_body).id if robot.payload_body else -1
        self._nominal = {f: self.sim.nominal(f) for f in FIELDS + (GEOM_FIELDS if self._tol_geoms else ())}
        # a backend that cannot move a centre of mass (pybullet) is only asked to when DR moves one
        self._fields = [f for f in FIELDS if f != "body_ipos" or moves_payload(self.dr)]
        if moves_payload(self.dr) and not self.sim.moves_com:
            raise UnsupportedFeature(
                f"{task.name} dr[{self.dr_mode}] places the payload away from the link origin (payload_pos_*_m), "
                f"and the {backend} backend cannot move a link's centre of mass; use "
                "robot_rl.sim.dr_effects.without_payload_offset(dr) (as `robot-rl cross-sim` does for every "
                "simulator it compares) or --env.backend mujoco")

        n, a = num_envs, self.num_actions
        self.actions = torch.zeros(n, a, device=self.device)
        self.last_actions = torch.zeros(n, a, device=self.device)
        self.episode_length = torch.zeros(n, dtype=torch.long, device=self.device)
        self.episode_return = torch.zeros(n, device=self.device)
        self.nan_resets = 0
        self._empty = torch.zeros(0, device=self.device)
        # sampled DR parameters, one column per name (the critic group reads the matrix directly)
        self.dr_values = torch.zeros(n, len(self.param_names), device=self.device)
        self.dr_params = {k: self.dr_values[:, i] for i, k in enumerate(self.param_names)}
        self._variant_params = torch.zeros(self.bank.num_variants, len(self._phys_names), device=self.device)
        self.boundary = BoundaryPlan(n, self.device)  # ADR boundary episodes (`set_dr`); none by default
        self._action_line = DelayLine(n, a, self.dr.max_action_delay, self.device)
        self._next_push = torch.full((n,), math.inf, device=self.device)
        self._push_clock = 0
        self.ctrl = torch.zeros(n, model.nu, device=self.device)
        # encoder bias: the robot measures q + b and its position controller servos the measurement
        self.encoder_bias = torch.zeros(n, self.num_joints, device=self.device)
        self._biased = self.dr.encoder_bias_rad[1] > 0
        self._bias_ctrl = (_index(self.sim.joint_actuator_index(robot.joint_names), self.device)
                           if self._biased and robot.actuator.kind == "position" else None)
        # ... and the robot's frames it reports come from forward kinematics of the measured joints:
        # offset by FK(q + b) - FK(q), computed for each episode at its reset pose
        self._frame_bias: dict[str, torch.Tensor] = {}
        if self._biased:
            from robot_rl.kinematics import RobotKinematics, kinematic_model_xml

            self._kin = RobotKinematics(kinematic_model_xml(robot), robot.joint_names)
            self._frame_bias = {f: torch.zeros(n, 3, device=self.device) for f in robot.frames}
        self.action_terms.allocate(n, self.actions)
        self._state = EnvState(self, used_frames(task))
        self._refresh_state()
        task.setup(self)
        self.policy_group = ObservationGroup(task.observations(), self.ctx)
        self.critic_group = ObservationGroup(task.critic_observations(), self.ctx)
        self._critic_is_policy = [t.name for t in self.critic_group.terms] == [t.name for t in self.policy_group.terms]
        self.action_terms.reset(self.state)
        self.state.joint_target = self.action_terms.joint_target
        probe_p, probe_c = self.policy_group(self.state), self.critic_group(self.state)
        self.num_obs = {"policy": int(probe_p.shape[1]), "critic": int(probe_c.shape[1]) + len(self.param_names)}
        self._obs_bias = torch.zeros(n, self.num_obs["policy"], device=self.device)
        self._noise_std = torch.cat([
            torch.full((d,), t.noise * t.scale, device=self.device)
            for t, d in zip(self.policy_group.terms, self.policy_group.dims)
        ])
        # sensor noise is drawn for the noisy columns only, as runs of consecutive columns
        self._noisy = _runs((self._noise_std > 0).nonzero().flatten().tolist())
        self._noise_scale = [self._noise_std[sl] * self.dr.obs_noise_scale for sl in self._noisy]
        self._obs_line = DelayLine(n, self.num_obs["policy"], self.dr.max_obs_delay, self.device)

    def _control_map(self) -> list[tuple[slice | torch.Tensor, slice | None]]:
        """For each action term: the actuator columns it drives (a gripper drives its one actuator
        with its first finger target)."""
        out = []
        grip = self.robot.gripper
        for term in self.action_terms.terms:
            if grip is not None and tuple(term.joints) == tuple(grip.joint_names):
                out.append((_index([self.model.actuator(grip.actuator).id], self.device), slice(0, 1)))
            else:
                out.append((_index(self.sim.joint_actuator_index(term.joints), self.device), None))
        return out

    # -- state the task reads ------------------------------------------------------------------
    def _refresh_state(self) -> None:
        self.state = self._state.refresh()
        self.qpos_all, self.qvel_all = self._state.qpos, self._state.qvel

    @property
    def joint_pos(self) -> torch.Tensor:
        """[N, A] positions of the robot's actuated joints."""
        return self.state.joint_pos[:, : self.num_joints]

    @property
    def joint_vel(self) -> torch.Tensor:
        return self.state.joint_vel[:, : self.num_joints]

    def frame(self, name: str) -> torch.Tensor:
        """[N, 3] position of a robot frame (`ee`...) or a task site."""
        return self.state.frames[name]

    @property
    def episode_time(self) -> torch.Tensor:
        return self.episode_length.float() * self.control_dt

    # -- contract ------------------------------------------------------------------------------
    # Env state never needs gradients; running every mutation in inference mode keeps the env's
    # own tensors consistent whether the caller is in inference mode, no_grad, or neither.
    @torch.inference_mode()
    def reset(self, env_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Reset all envs, or only `env_ids`; returns the observation of every env."""
        ids = torch.arange(self.num_envs, device=self.device) if env_ids is None else env_ids.to(self.device)
        self._reset_idx(ids)
        return self._observe(fresh=ids, advance=False)

    @torch.inference_mode()
    def step(self, actions: torch.Tensor):
        actions = actions.to(self.device, torch.float32)
        if actions.shape != (self.num_envs, self.num_actions):
            raise ValueError(
                f"actions must have shape ({self.num_envs}, {self.num_actions}), got {tuple(actions.shape)}"
            )
        actions = torch.nan_to_num(actions, nan=0.0).clamp(-1.0, 1.0)
        self.last_actions = self.actions
        self.actions = actions
        applied = self._action_line.push(actions)  # env i applies the action from `delay_i` steps ago
        for out, (cols, sel) in zip(self.action_terms(applied, self.state), self._ctrl_map):
            self.ctrl[:, cols] = out if sel is None else out[:, sel]
        if self._bias_ctrl is not None:  # the controller compares the target with the biased measurement
            self.ctrl[:, self._bias_ctrl] -= self.encoder_bias
        self.sim.step(self.ctrl, self.task.decimation)
        self.episode_length += 1
        self._apply_pushes()
        self._refresh_state()
        if self.dr.resample_interval_s > 0:
            every = max(1, int(round(self.dr.resample_interval_s / self.control_dt)))
            due = (self.episode_length % every == 0).nonzero().flatten()
            if len(due):
                self._assign_physics(due)
        bad = self._non_finite()
        reward = self.task.reward(self)
        terminated = self.task.terminated(self)
        if bad is not None:
            reward = torch.where(bad, torch.zeros_like(reward), reward)
            terminated = terminated | bad
        truncated = (self.episode_length >= self.max_episode_length) & ~terminated
        self.episode_return += reward
        done = terminated | truncated
        done_ids = done.nonzero().flatten()
        if len(done_ids):
            episode = {"return": self.episode_return[done_ids], "length": self.episode_length[done_ids].float(),
                       "success": self.task.success(self)[done_ids].float(), "env_ids": done_ids,
                       "dr_boundary": self.boundary.env_pair[done_ids]}
            if self._has_distance:  # the task's final distance to its goal (reach tasks)
                episode["distance"] = self.task.distance(self)[done_ids]
        else:
            episode = {"return": self._empty, "length": self._empty, "success": self._empty, "env_ids": done_ids,
                       "dr_boundary": done_ids}
            if self._has_distance:
                episode["distance"] = self._empty
        info = {
            "time_outs": truncated,
            "dr": None,  # filled below, after resets: the parameters of the episodes the obs belong to
            "episode": episode,
            "nan_resets": 0 if bad is None else int(bad.sum()),
        }
        self.task.after_step(self, ~done)
        if not self.autoreset:  # the caller resets finished envs (`reset(env_ids)`)
            done_ids = done_ids[:0]
            if bad is not None:  # a NaN state is never handed out: reset those envs anyway
                done_ids = bad.nonzero().flatten()
        if len(done_ids):
            self._reset_idx(done_ids)
        obs = self._observe(fresh=done_ids)
        info["dr"] = dict(zip(self.param_names, self.dr_values.clone().unbind(1)))
        return obs, reward, terminated, truncated, info

    def _non_finite(self) -> torch.Tensor | None:
        """Envs whose physics diverged this step: a NaN/Inf state, or one the simulator had to reset
        itself (`sim.diverged`); None when there are none (one reduction per step)."""
        s = self.qpos_all.sum() + self.qvel_all.sum()
        diverged = self.sim.diverged
        if bool(torch.isfinite(s)) and diverged is None:
            return None
        bad = ~(torch.isfinite(self.qpos_all).all(1) & torch.isfinite(self.qvel_all).all(1))
        if diverged is not None:
            bad = bad | diverged.to(self.device)
        self.nan_resets += int(bad.sum())
        # NaN must not reach rewards or observations: park those envs at the model's initial state
        ids = bad.nonzero().flatten()
        q0 = torch.as_tensor(self.model.qpos0, dtype=torch.float32, device=self.device).expand(len(ids), -1)
        self.sim.set_joint_state(ids, q0, torch.zeros(len(ids), self.model.nv, device=self.device))
        self._refresh_state()
        return bad

    batch_steps = 10
    """Control steps between the batched events: spread episode starts (`randomize_episode_start`)
    are multiples of it, and DR pushes are applied on steps that are multiples of it (a push comes
    up to batch_steps - 1 control steps after its sampled time: 0.18 s at 50 Hz, against push
    intervals of about a second). Each batched event then costs its fixed overhead once per
    `batch_steps` steps instead of every step."""

    @torch.inference_mode()
    def randomize_episode_start(self, granularity: int | None = None) -> None:
        """Spread episode clocks uniformly so that envs do not all reset on the same step
        (training only; as rsl_rl's `init_at_random_ep_len`), in multiples of `granularity` control
        steps: time-outs then come in batches, one reset call every `granularity` steps instead of
        one per step. A reset call costs a fixed few hundred microseconds of small torch ops
        whatever its size, about half of the env's own work per step at 1024 envs when every step
        has one; batched, it is amortized. The phases stay spread over max_length / granularity
        values (30 for iiwa-reach), far more than a PPO rollout needs to decorrelate."""
        k = max(1, int(granularity or self.batch_steps))
        slots = max(1, self.max_episode_length // k)
        self.episode_length = torch.randint(0, slots, (self.num_envs,), generator=self.gen, device=self.device) * k

    # -- resets and randomization --------------------------------------------------------------
    def default_qpos(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` rows of the model's initial qpos (with the robot at its default pose) and zero qvel."""
        q = torch.as_tensor(self.model.qpos0, dtype=torch.float32, device=self.device).repeat(n, 1)
        q[:, self._actuated_qpos] = self.default_pose
        return q, torch.zeros(n, self.model.nv, device=self.device)

    def _reset_idx(self, ids: torch.Tensor) -> None:
        episode = R.sample_matrix(self.dr, len(ids), self.gen, self.device, R.EPISODE_PARAMS)
        if self.boundary.active:  # ADR: some envs evaluate one parameter at its range's boundary
            self.boundary.draw(ids, self.gen)
            self.boundary.pin(ids, episode, len(R.PHYSICS_PARAMS))
        self.dr_values[ids, len(R.PHYSICS_PARAMS):len(R.PARAM_NAMES)] = episode
        # encoder bias, each joint: the episode's magnitude with a random sign (drawn whether or not
        # the range is zero, so that a bias range changes no other random draw)
        sign = torch.randint(0, 2, (len(ids), self.num_joints), generator=self.gen, device=self.device) * 2 - 1
        if self._biased:
            self.encoder_bias[ids] = sign * self.dr_params["encoder_bias_rad"][ids, None]
        self._assign_physics(ids)
        qpos, qvel = self.task.reset(self, ids)
        self.sim.set_joint_state(ids, qpos, qvel)
        if self._frame_bias:
            q = qpos[:, self._actuated_qpos].double().cpu().numpy()
            qb = q + self.encoder_bias[ids].double().cpu().numpy()
            for f, buf in self._frame_bias.items():
                site = self.robot.frames[f]
                buf[ids] = torch.as_tensor(self._kin.site_pos(qb, site) - self._kin.site_pos(q, site),
                                           dtype=torch.float32, device=self.device)
        self._refresh_state()
        self.action_terms.reset(self.state, ids)
        self.state.joint_target = self.action_terms.joint_target
        self.episode_length[ids] = 0
        self.episode_return[ids] = 0.0
        self.actions[ids] = 0.0
        self.last_actions[ids] = 0.0
        self._action_line.fill(ids, 0.0)
        self._action_line.set_delays(ids, self.dr_params["action_delay_steps"][ids])
        self._obs_line.set_delays(ids, self.dr_params["obs_delay_steps"][ids])
        if self.dr.push_interval_s[1] > 0:
            self._schedule_push(ids)

    def _assign_physics(self, ids: torch.Tensor) -> None:
        """Give envs `ids` a physics variant from the bank (re-sampling released variants)."""
        if self.boundary.active:
            ids = self._assign_boundary_physics(ids)
            if not len(ids):
                return
        variants, refresh = self.bank.assign(ids)
        if len(refresh):
            self._write_variants(refresh, R.sample_matrix(self.dr, len(refresh), self.gen, self.device,
                                                          self._phys_names))
        self.sim.use_variants(ids, variants)
        self._set_dr_values(ids, self._variant_params[variants])

    def _set_dr_values(self, ids: torch.Tensor, params: torch.Tensor) -> None:
        """Envs `ids` simulate variants with values `params` [k, len(_phys_names)]: their DR values."""
        p = len(R.PHYSICS_PARAMS)
        self.dr_values[ids, :p] = params[:, :p]
        if self._tol_geoms:
            self.dr_values[ids, len(R.PARAM_NAMES):] = params[:, p:]

    def _write_variants(self, variants: torch.Tensor, params: torch.Tensor) -> None:
        """Write DR values `params` [k, len(_phys_names)] (physics, then geometry for a task with
        toleranced geoms) into the simulator's `variants`."""
        self._variant_params[variants] = params
        vals, vids = params.cpu().double().numpy(), variants.cpu().numpy()
        p = len(R.PHYSICS_PARAMS)
        values = model_fields(self._nominal, vals[:, :p], self._payload_body)
        for field in self._fields:
            self.sim.set_physics(field, vids, values[field])
        if self._tol_geoms:
            geom = part_size_fields(self._nominal, self.model.geom_type, self._tol_geoms, vals[:, p])
            for field in GEOM_FIELDS:
                self.sim.set_physics(field, vids, geom[field])

    # -- automatic domain randomization (`robot_rl.adr`) ----------------------------------------
    def set_dr(self, dr: R.DomainRandomization, boundary: Sequence[tuple[str, float]] = (),
               boundary_fraction: float = 0.0) -> None:
        """Sample from the ranges `dr` from now on (running episodes keep their values; shared
        physics variants are re-sampled from `dr` as the bank turns them over). `boundary`: the
        curriculum's `(parameter, value)` pairs; at each reset a `boundary_fraction` of the reset
        envs evaluates one pair, drawn uniformly: that parameter exactly at `value`, the others
        sampled (`sim/dr_boundary.py`). `self.boundary.env_pair[i]` is the pair index of env i's
        episode (-1: none), reported per ended episode as `info["episode"]["dr_boundary"]`. A
        boundary env with a physics parameter gets a physics variant of its own (on a shared bank,
        a reserved one; when none is free, it runs an ordinary episode)."""
        dr.validate(f"{self.task.name} dr (set_dr)")
        if dr.part_size_delta_m != (0.0, 0.0) and not self._tol_geoms:
            check_effects(dr, self.model, self.robot, f"{self.task.name} dr (set_dr)", False)
        self.boundary.set(boundary, boundary_fraction, dr)
        self.dr = dr
        self._action_line.grow(dr.max_action_delay)
        self._obs_line.grow(dr.max_obs_delay)
        self._noise_scale = [self._noise_std[sl] * dr.obs_noise_scale for sl in self._noisy]
        if self.boundary.active:
            self.bank.reserve(math.ceil(boundary_fraction * self.num_envs))

    def _assign_boundary_physics(self, ids: torch.Tensor) -> torch.Tensor:
        """Boundary envs among `ids` whose parameter is physical get a variant of their own, with
        that parameter pinned; returns the envs left for the shared bank."""
        sel = self.boundary.physics(ids)
        if not bool(sel.any()):
            return ids
        bids = ids[sel]
        variants, ok = self.bank.take_private(bids)
        self.boundary.env_pair[bids[~ok]] = -1  # no reserved variant free: an ordinary episode
        got, variants = bids[ok], variants[ok]
        if len(got):
            params = R.sample_matrix(self.dr, len(got), self.gen, self.device, self._phys_names)
            self.boundary.pin(got, params)
            self._write_variants(variants, params)
            self.sim.use_variants(got, variants)
            self._set_dr_values(got, params)
        return torch.cat([ids[~sel], bids[~ok]])

    def _apply_pushes(self) -> None:
        if self.dr.push_joint_velocity <= 0 or self.dr.push_interval_s[1] <= 0:
            return
        self._push_clock += 1
        if self._push_clock % self.batch_steps:
            return
        due = (self.episode_length >= self._next_push).nonzero().flatten()
        if not len(due):
            return
        # one draw for the kick ([-1, 1) x push velocity) and the time to the next push
        u = torch.rand((len(due), self.model.nv + 1), generator=self.gen, device=self.device)
        self.sim.add_joint_velocity(due, u[:, :-1].mul_(2.0 * self.dr.push_joint_velocity).sub_(
            self.dr.push_joint_velocity))
        self._schedule_push(due, u[:, -1])

    def _schedule_push(self, ids: torch.Tensor, u: torch.Tensor | None = None) -> None:
        """Next push of envs `ids`: a uniform interval from now (from `u` in [0, 1) when given),
        kept in control steps."""
        lo, hi = self.dr.push_interval_s
        if u is None:
            u = torch.rand(len(ids), generator=self.gen, device=self.device)
        self._next_push[ids] = u.mul_((hi - lo) / self.control_dt).add_(lo / self.control_dt) + self.episode_length[ids]

    # -- observations --------------------------------------------------------------------------
    def _observe(self, fresh: torch.Tensor, advance: bool = True) -> dict[str, torch.Tensor]:
        """Observations of all envs; `fresh` envs start a new episode (new bias, delay history
        filled with their first observation). `advance`: a control step passed (push this
        observation into every env's delay history); False for resets outside `step`."""
        if len(fresh) and self.dr.obs_bias_scale > 0:
            std = self._noise_std * self.dr.obs_bias_scale
            self._obs_bias[fresh] = torch.randn(
                (len(fresh), std.shape[0]), generator=self.gen, device=self.device
            ) * std
        self.state.last_action = self.actions
        with self.measured_state() as state:
            clean = self.policy_group(state)
        noisy = self.dr.obs_noise_scale > 0 and bool(self._noisy)
        policy = clean + self._obs_bias if self.dr.obs_bias_scale > 0 else (clean.clone() if noisy else clean)
        if noisy:
            noise = torch.randn((self.num_envs, sum(sl.stop - sl.start for sl in self._noisy)), generator=self.gen,
                                device=self.device)
            i = 0
            for sl, std in zip(self._noisy, self._noise_scale):
                k = sl.stop - sl.start
                policy[:, sl].addcmul_(noise[:, i : i + k], std)
                i += k
        # observation delay: env i sees the observation from `delay_i` control steps ago
        line = self._obs_line
        if advance:
            line.shift(policy)
        else:  # never write into a history tensor that was returned to the caller
            line.own()
        if len(fresh):  # a new episode's history holds its first observation only
            line.fill(fresh, policy[fresh])
        policy = line.output()
        privileged = clean if self._critic_is_policy else self.critic_group(self.state)
        critic = torch.cat([privileged, self.dr_values], dim=1)
        return {"policy": policy, "critic": critic}

    @contextlib.contextmanager
    def measured_state(self):
        """The robot state as the robot measures it, for the policy's observation: with encoder
        bias, the robot frames it computes from its joints are offset too (`_frame_bias`)."""
        if not self._frame_bias:
            yield self.state
            return
        true = self.state.frames
        self.state.frames = _Offset(true, self._frame_bias)
        try:
            yield self.state
        finally:
            self.state.frames = true

    # -- description for export ----------------------------------------------------------------
    def observation_spec(self) -> list[dict]:
        return self.policy_group.describe()

    def action_spec(self) -> list[dict]:
        return self.action_terms.describe()

    def render(self, env_id: int = 0, camera: str = "front", height: int = 480, width: int = 640):
        """RGB frame of env `env_id` (task markers such as the target drawn where they are)."""
        return self.sim.render(env_id, camera, height, width, self.task.markers(self, env_id))


def make_env(
    task: str | Task,
    num_envs: int,
    dr: str | R.DomainRandomization = "train",
    seed: int = 0,
    backend: str = "mujoco",
    device: str = "cpu",
    nthread: int | None = None,
    physics_variants: int = 256,
    autoreset: bool = True,
) -> BatchedEnv:
    """`dr`: `train`, `eval` (held out), `off`, a stress twin's name (`robot_rl.sim.twins`), or a
    `DomainRandomization`."""
    from robot_rl.sim.tasks import make_task

    t = make_task(task) if isinstance(task, str) else task
    return BatchedEnv(t, num_envs, dr=dr, seed=seed, backend=backend, device=device, nthread=nthread,
                      physics_variants=physics_variants, autoreset=autoreset)
