"""The batched-environment contract, shared by every backend and task.

```
env = make_env("iiwa-reach", num_envs=1024, dr="train", seed=0)
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
  actor-critic).
* Physics DR parameters come from a bank of at most `physics_variants` simulator models that the
  envs draw from at reset and that is continually re-sampled (`physics_bank.py`); 0, or a bank at
  least as large as `num_envs`, samples every env's physics exactly at each of its resets.
* `info["dr"]` holds the DR parameters of every env's current episode (after auto-reset, like `obs`);
  `info["episode"]` holds return,
  length and success of the episodes that ended this step (empty tensors when none did).
* Control decimation: each `step` holds the actuator controls for `task.decimation` physics steps.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from robot_rl.sim import randomization as R
from robot_rl.sim.physics_bank import PhysicsBank
from robot_rl.sim.task import ObsTerm, Task

BACKENDS = ("mujoco",)


def _make_backend(name: str, model, num_envs: int, nthread: int | None, num_variants: int):
    if name == "mujoco":
        from robot_rl.sim.mujoco_backend import MujocoBatch

        return MujocoBatch(model, num_envs, nthread, num_variants)
    raise ValueError(f"unknown backend {name!r}; available backends: {', '.join(BACKENDS)}")


def _index(idx: list[int], device) -> slice | torch.Tensor:
    """Column selector: a slice (a view, no copy) when the indices are consecutive."""
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return slice(idx[0], idx[0] + len(idx))
    return torch.tensor(idx, device=device)


def _shift_in(history: list[torch.Tensor], new: torch.Tensor) -> list[torch.Tensor]:
    """History `[newest, ..., oldest]` (`D + 1` tensors `[N, ...]`) with `new` pushed in front.
    A list of tensors, not one stacked tensor: shifting moves references, never data."""
    return [new, *history[:-1]]


def _delayed(history: list[torch.Tensor], delay: torch.Tensor) -> torch.Tensor:
    """`history[delay[i]][i]` for every env i (`history` newest first, see `_shift_in`)."""
    out = history[0]
    for d in range(1, len(history)):
        out = torch.where((delay == d).view(-1, *([1] * (out.dim() - 1))), history[d], out)
    return out


class BatchedEnv:
    def __init__(
        self,
        task: Task,
        num_envs: int,
        dr: str = "train",
        seed: int = 0,
        backend: str = "mujoco",
        device: str = "cpu",
        nthread: int | None = None,
        physics_variants: int = 256,
        autoreset: bool = True,
    ):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.task = task
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dr_mode = dr
        self.autoreset = autoreset
        self.dr = task.dr.get(dr)
        self.dr.validate(f"{task.name} dr[{dr}]")
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)
        model = task.build_model()
        self.model = model
        self.bank = PhysicsBank(num_envs, physics_variants, self.gen, self.device)
        self.sim = _make_backend(backend, model, num_envs, nthread, self.bank.num_variants)
        self.backend = backend
        self.physics_dt = float(model.opt.timestep)
        self.control_dt = self.physics_dt * task.decimation
        self.max_episode_length = int(math.ceil(task.episode_length_s / self.control_dt))

        # joints the task actuates, in action order, and where they live in qpos/qvel
        jids = [model.joint(n).id for n in task.joint_names]
        self.qpos_idx = _index([int(model.jnt_qposadr[j]) for j in jids], self.device)
        self.qvel_idx = _index([int(model.jnt_dofadr[j]) for j in jids], self.device)
        self.num_actions = len(task.joint_names)
        self.default_pose = torch.tensor(task.default_pose, dtype=torch.float32, device=self.device)
        self._sensor = {
            model.sensor(i).name: (int(model.sensor_adr[i]), int(model.sensor_dim[i]))
            for i in range(model.nsensor)
        }
        self._nominal = {
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "geom_friction": model.geom_friction.copy(),
            "dof_frictionloss": model.dof_frictionloss.copy(),
            "dof_damping": model.dof_damping.copy(),
            "dof_armature": model.dof_armature.copy(),
            "actuator_gainprm": model.actuator_gainprm.copy(),
            "actuator_biasprm": model.actuator_biasprm.copy(),
            "body_gravcomp": model.body_gravcomp.copy(),
        }
        self._payload_body = model.body(task.payload_body).id if task.payload_body else -1

        n, a = num_envs, self.num_actions
        self.actions = torch.zeros(n, a, device=self.device)
        self.last_actions = torch.zeros(n, a, device=self.device)
        self.episode_length = torch.zeros(n, dtype=torch.long, device=self.device)
        self.episode_return = torch.zeros(n, device=self.device)
        # sampled DR parameters, one column per name (the critic group reads the matrix directly)
        self.dr_values = torch.zeros(n, len(R.PARAM_NAMES), device=self.device)
        self.dr_params = {k: self.dr_values[:, i] for i, k in enumerate(R.PARAM_NAMES)}
        self._variant_params = torch.zeros(self.bank.num_variants, len(R.PHYSICS_PARAMS), device=self.device)
        self._action_buf = [torch.zeros(n, a, device=self.device) for _ in range(self.dr.max_action_delay + 1)]
        self._next_push = torch.full((n,), math.inf, device=self.device)
        self._refresh_state()
        task.setup(self)
        self._policy_terms = task.policy_terms()
        self._critic_terms = task.critic_terms()
        self._critic_is_policy = [t.name for t in self._critic_terms] == [t.name for t in self._policy_terms]
        self.num_obs = {
            "policy": sum(self._term_dim(t) for t in self._policy_terms),
            "critic": sum(self._term_dim(t) for t in self._critic_terms) + len(R.PARAM_NAMES),
        }
        self._obs_bias = torch.zeros(n, self.num_obs["policy"], device=self.device)
        self._policy_scale, self._critic_scale = (
            torch.cat([torch.full((self._term_dim(t),), float(t.scale), device=self.device) for t in terms])
            for terms in (self._policy_terms, self._critic_terms)
        )
        self._noise_std = torch.cat([
            torch.full((self._term_dim(t),), t.noise * t.scale, device=self.device) for t in self._policy_terms
        ])
        self._obs_buf = [
            torch.zeros(n, self.num_obs["policy"], device=self.device) for _ in range(self.dr.max_obs_delay + 1)
        ]

    # -- state the task reads ------------------------------------------------------------------
    def _refresh_state(self) -> None:
        qpos = self.sim.qpos.to(self.device, torch.float32)
        qvel = self.sim.qvel.to(self.device, torch.float32)
        self.qpos_all, self.qvel_all = qpos, qvel
        self.joint_pos = qpos[:, self.qpos_idx]
        self.joint_vel = qvel[:, self.qvel_idx]
        self.sensordata = torch.from_numpy(self.sim.sensordata).to(self.device, torch.float32)

    def sensor(self, name: str) -> torch.Tensor:
        adr, dim = self._sensor[name]
        return self.sensordata[:, adr : adr + dim]

    @property
    def episode_time(self) -> torch.Tensor:
        return self.episode_length.float() * self.control_dt

    def _term_dim(self, term: ObsTerm) -> int:
        return int(term.fn(self).shape[1])

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
        # action delay: env i applies the action from `delay_i` control steps ago
        self._action_buf = _shift_in(self._action_buf, actions)
        applied = _delayed(self._action_buf, self.dr_params["action_delay_steps"])
        ctrl = self.task.action_to_ctrl(self, applied)
        self.sim.step(ctrl.detach().to("cpu", torch.float64).numpy(), self.task.decimation)
        self.episode_length += 1
        self._apply_pushes()
        self._refresh_state()
        if self.dr.resample_interval_s > 0:
            every = max(1, int(round(self.dr.resample_interval_s / self.control_dt)))
            due = (self.episode_length % every == 0).nonzero().flatten()
            if len(due):
                self._assign_physics(due)

        reward = self.task.reward(self) * 1.0
        terminated = self.task.terminated(self)
        truncated = (self.episode_length >= self.max_episode_length) & ~terminated
        self.episode_return += reward
        done = terminated | truncated
        done_ids = done.nonzero().flatten()
        info = {
            "time_outs": truncated,
            "dr": None,  # filled below, after resets: the parameters of the episodes the obs belong to
            "episode": {
                "return": self.episode_return[done_ids].clone(),
                "length": self.episode_length[done_ids].float(),
                "success": self.task.success(self)[done_ids].float(),
                "env_ids": done_ids,
            },
        }
        self.task.after_step(self, ~done)
        if not self.autoreset:  # the caller resets finished envs (`reset(env_ids)`)
            done_ids = done_ids[:0]
        if len(done_ids):
            self._reset_idx(done_ids)
        obs = self._observe(fresh=done_ids)
        dr = self.dr_values.clone()
        info["dr"] = {k: dr[:, i] for i, k in enumerate(R.PARAM_NAMES)}
        return obs, reward, terminated, truncated, info

    @torch.inference_mode()
    def randomize_episode_start(self) -> None:
        """Spread episode clocks uniformly so that envs do not all reset on the same step
        (training only; as rsl_rl's `init_at_random_ep_len`)."""
        self.episode_length = torch.randint(
            0, self.max_episode_length, (self.num_envs,), generator=self.gen, device=self.device
        )

    # -- resets and randomization --------------------------------------------------------------
    def _reset_idx(self, ids: torch.Tensor) -> None:
        self.dr_values[ids, len(R.PHYSICS_PARAMS):] = R.sample_matrix(
            self.dr, len(ids), self.gen, self.device, R.EPISODE_PARAMS)
        self._assign_physics(ids)
        qpos, qvel = self.task.reset(self, ids)
        ids_np = ids.cpu().numpy()
        self.sim.set_joint_state(ids_np, qpos.cpu().double().numpy(), qvel.cpu().double().numpy())
        self._refresh_state()
        self.episode_length[ids] = 0
        self.episode_return[ids] = 0.0
        self.actions[ids] = 0.0
        self.last_actions[ids] = 0.0
        for past in self._action_buf:
            past[ids] = 0.0
        if self.dr.push_interval_s[1] > 0:
            self._schedule_push(ids)

    def _assign_physics(self, ids: torch.Tensor) -> None:
        """Give envs `ids` a physics variant from the bank (re-sampling released variants)."""
        variants, refresh = self.bank.assign(ids)
        if len(refresh):
            self._variant_params[refresh] = R.sample_matrix(
                self.dr, len(refresh), self.gen, self.device, R.PHYSICS_PARAMS)
            self._write_physics(refresh)
        self.sim.use_variants(ids.cpu().numpy(), variants.cpu().numpy())
        self.dr_values[ids, : len(R.PHYSICS_PARAMS)] = self._variant_params[variants]

    def _write_physics(self, variants: torch.Tensor) -> None:
        """Write masses, friction, damping, armature and actuator gains of `variants` into the sim."""
        vals = self._variant_params[variants].cpu().double().numpy()
        p = {k: vals[:, i : i + 1] for i, k in enumerate(R.PHYSICS_PARAMS)}
        nom = self._nominal
        vids = variants.cpu().numpy()
        mass = nom["body_mass"][None] * p["mass_scale"]
        inertia = nom["body_inertia"][None] * p["mass_scale"][:, :, None]
        gravcomp = np.broadcast_to(nom["body_gravcomp"][None], mass.shape).copy()
        if self._payload_body >= 0:
            b = self._payload_body
            mass[:, b] += p["payload_kg"][:, 0]
        # the robot's own gravity compensation knows the nominal masses only
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(mass > 0, nom["body_mass"][None] / mass, 0.0)
        gravcomp = gravcomp * ratio
        gain = np.repeat(nom["actuator_gainprm"][None], len(vids), 0)
        bias = np.repeat(nom["actuator_biasprm"][None], len(vids), 0)
        strength = p["motor_strength"]
        gain[:, :, 0] *= p["kp_scale"] * strength
        bias[:, :, 1] *= p["kp_scale"] * strength
        bias[:, :, 2] *= p["kd_scale"] * strength
        friction = nom["geom_friction"][None].repeat(len(vids), 0)
        friction[:, :, 0] *= p["friction_scale"]
        sim = self.sim
        sim.set_model_field("body_mass", vids, mass)
        sim.set_model_field("body_inertia", vids, inertia)
        sim.set_model_field("body_gravcomp", vids, gravcomp)
        sim.set_model_field("geom_friction", vids, friction)
        sim.set_model_field("dof_frictionloss", vids, nom["dof_frictionloss"][None] * p["friction_scale"])
        sim.set_model_field("dof_damping", vids, nom["dof_damping"][None] * p["damping_scale"])
        sim.set_model_field("dof_armature", vids, nom["dof_armature"][None] * p["armature_scale"])
        sim.set_model_field("actuator_gainprm", vids, gain)
        sim.set_model_field("actuator_biasprm", vids, bias)

    def _apply_pushes(self) -> None:
        if self.dr.push_joint_velocity <= 0 or self.dr.push_interval_s[1] <= 0:
            return
        due = (self.episode_length >= self._next_push).nonzero().flatten()
        if not len(due):
            return
        v = self.dr.push_joint_velocity
        kick = R.uniform(self.gen, -v, v, (len(due), self.model.nv), self.device)
        self.sim.add_joint_velocity(due.cpu().numpy(), kick.cpu().double().numpy())
        self._schedule_push(due)

    def _schedule_push(self, ids: torch.Tensor) -> None:
        """Next push of envs `ids`: a uniform interval from now, kept in control steps."""
        lo, hi = self.dr.push_interval_s
        interval = R.uniform(self.gen, lo, hi, (len(ids),), self.device) / self.control_dt
        self._next_push[ids] = self.episode_length[ids] + interval

    # -- observations --------------------------------------------------------------------------
    def _concat(self, terms: list[ObsTerm], scale: torch.Tensor) -> torch.Tensor:
        return torch.cat([t.fn(self) for t in terms], dim=1).mul_(scale)

    def _observe(self, fresh: torch.Tensor, advance: bool = True) -> dict[str, torch.Tensor]:
        """Observations of all envs; `fresh` envs start a new episode (new bias, delay history
        filled with their first observation). `advance`: a control step passed (push this
        observation into every env's delay history); False for resets outside `step`."""
        if len(fresh) and self.dr.obs_bias_scale > 0:
            std = self._noise_std * self.dr.obs_bias_scale
            self._obs_bias[fresh] = torch.randn(
                (len(fresh), std.shape[0]), generator=self.gen, device=self.device
            ) * std
        clean = self._concat(self._policy_terms, self._policy_scale)
        policy = clean + self._obs_bias
        if self.dr.obs_noise_scale > 0:
            noise = torch.randn(clean.shape, generator=self.gen, device=self.device)
            policy.addcmul_(noise, self._noise_std * self.dr.obs_noise_scale)
        # observation delay: env i sees the observation from `delay_i` control steps ago
        if advance:
            self._obs_buf = _shift_in(self._obs_buf, policy)
        else:  # never write into a history tensor that was returned to the caller
            self._obs_buf = [past.clone() for past in self._obs_buf]
        if len(fresh):  # a new episode's history holds its first observation only
            first = policy[fresh]
            for past in self._obs_buf[1 if advance else 0:]:  # (after a shift, [0] is `policy`)
                past[fresh] = first
        policy = _delayed(self._obs_buf, self.dr_params["obs_delay_steps"])
        dr = self.dr_values
        privileged = clean if self._critic_is_policy else self._concat(self._critic_terms, self._critic_scale)
        critic = torch.cat([privileged, dr], dim=1)
        return {"policy": policy, "critic": critic}

    # -- description for export ----------------------------------------------------------------
    def observation_spec(self) -> list[dict]:
        out = []
        for t in self._policy_terms:
            out.append(
                {"name": t.name, "dim": self._term_dim(t), "unit": t.unit, "scale": t.scale,
                 "noise_std": t.noise, "source": t.source}
            )
        return out


def make_env(
    task: str | Task,
    num_envs: int,
    dr: str = "train",
    seed: int = 0,
    backend: str = "mujoco",
    device: str = "cpu",
    nthread: int | None = None,
    physics_variants: int = 256,
    autoreset: bool = True,
) -> BatchedEnv:
    from robot_rl.sim.tasks import make_task

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available backends: {', '.join(BACKENDS)}")
    t = make_task(task) if isinstance(task, str) else task
    return BatchedEnv(t, num_envs, dr=dr, seed=seed, backend=backend, device=device, nthread=nthread,
                      physics_variants=physics_variants, autoreset=autoreset)
