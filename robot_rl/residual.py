"""Residual RL on a frozen diffusion base (ResiP: "From Imitation to Refinement", Ankile et al.).

The base, a `DiffusionPolicy` trained from demonstrations, runs batched over all envs with
receding-horizon execution, exactly as the policy node runs it on a robot: it keeps the last
`obs_horizon` observations of each env, samples a chunk of `pred_horizon` actions every
`execution_horizon` steps (or when an episode starts) and executes the `execution_horizon`
actions that start at the current step. A small per-step residual policy, trained with PPO,
sees the observation and the base's action and adds a correction:

    action = clip(base_action + scale * residual, -1, 1)       (scale 0.1 of the [-1, 1] range)

`ResidualEnv` wraps a `BatchedEnv` so that the unchanged PPO loop (`robot_rl.train`) trains the
residual: its `policy` group is [observation, base action], its privileged `critic` group
[critic observation, base action], and `step(residual)` executes the sum. With the residual's
last layer zero-initialised (`robot_rl.policies.residual`), training starts from the base.

A base is a directory written by `robot-rl train-diffusion` (`policy.safetensors` +
`config.json` naming the task); `load_base(path, task)` refuses a base of another task or of
other observation/action sizes with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


class ResidualError(ValueError):
    pass


def load_diffusion_dir(path: str | Path, task: str | None = None, obs_dim: int | None = None,
                       action_dim: int | None = None):
    """The diffusion policy of a training directory (`robot-rl train-diffusion --out DIR`), trainable,
    checked against the task: its name and its observation and action sizes."""
    from robot_rl.diffusion_train import load_policy

    path = Path(path)
    if (path / "spec.json").is_file() and not (path / "policy.safetensors").is_file():
        raise ResidualError(f"{path} is an exported artifact; a diffusion base must be the training directory "
                            "(policy.safetensors + config.json) that `robot-rl train-diffusion --out DIR` writes")
    try:
        base = load_policy(path)
    except FileNotFoundError as e:
        raise ResidualError(str(e)) from None
    meta = json.loads((path / "config.json").read_text())
    if task is not None and meta.get("task") not in (None, task):
        raise ResidualError(f"the diffusion base {path} was trained on task {meta.get('task')!r}, not {task!r}; "
                            f"train a base on {task} (robot-rl train-diffusion) or use a task of "
                            f"{meta.get('task')}")
    if (obs_dim, action_dim) != (None, None) and (base.obs_dim, base.action_dim) != (obs_dim, action_dim):
        raise ResidualError(f"the diffusion base {path} takes {base.obs_dim} observations and gives "
                            f"{base.action_dim} actions; task {task!r} has {obs_dim} and {action_dim}")
    return base


def load_base(path: str | Path, task: str | None = None, obs_dim: int | None = None, action_dim: int | None = None):
    """The frozen diffusion base at `path` (eval mode, no gradients), checked against the task."""
    return load_diffusion_dir(path, task, obs_dim, action_dim).requires_grad_(False).eval()


class BaseChunker:
    """Receding-horizon execution of a diffusion base for a batch of envs (torch, batched):
    `reset(obs)` at the start, `action()` for the current step, `observe(obs, done)` after each
    env step (envs whose episode ended restart their history with the new episode's first
    observation and plan a new chunk)."""

    def __init__(self, base, num_envs: int, device: str | torch.device = "cpu", seed: int = 0):
        cfg = base.cfg
        self.base = base.to(device)
        self.To, self.Tp, self.H = cfg.obs_horizon, cfg.pred_horizon, cfg.execution_horizon
        self.start = self.To - 1
        with torch.inference_mode():
            self.hist = torch.zeros(num_envs, self.To, base.obs_dim, device=device)
            self.chunk = torch.zeros(num_envs, self.H, base.action_dim, device=device)
            self.idx = torch.full((num_envs,), self.H, dtype=torch.long, device=device)
        self.rows = torch.arange(num_envs, device=device)
        self.gen = torch.Generator(device=device).manual_seed(int(seed))

    @torch.inference_mode()  # its state is updated in place, inside and outside of the callers' inference mode
    def reset(self, obs: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        ids = self.rows if ids is None else ids
        self.hist[ids] = obs[ids].unsqueeze(1).expand(-1, self.To, -1)
        self.idx[ids] = self.H

    @torch.inference_mode()
    def observe(self, obs: torch.Tensor, done: torch.Tensor) -> None:
        self.hist[:, :-1] = self.hist[:, 1:].clone()  # in place: no new [N, To, D] tensor per env step
        self.hist[:, -1] = obs
        if done.any():
            self.reset(obs, done.nonzero().squeeze(1))

    @torch.inference_mode()
    def action(self, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The base action of every env for the current step ([N, A]); plans new chunks where
        the previous one is used up. `noise` ([N, Tp, A]) replaces the drawn initial noise of the
        envs that plan now (parity checks)."""
        plan = (self.idx >= self.H).nonzero().squeeze(1)
        if len(plan):
            if noise is None:
                noise = torch.randn((len(plan), self.Tp, self.base.action_dim), generator=self.gen,
                                    device=self.hist.device)
            else:
                noise = noise[plan]
            acts = self.base.sample(self.hist[plan], noise)
            self.chunk[plan] = acts[:, self.start:self.start + self.H].clamp(-1.0, 1.0)
            self.idx[plan] = 0
        a = self.chunk[self.rows, self.idx]
        self.idx += 1
        return a


class ResidualEnv:
    """A `BatchedEnv` seen through a frozen base: observations gain the base action, actions are
    residuals. Every other attribute is the wrapped env's."""

    def __init__(self, env, base, scale: float = 0.1, seed: int = 0):
        if not 0 < scale <= 1:
            raise ResidualError(f"residual scale must be in (0, 1], got {scale}")
        self.env, self.scale = env, float(scale)
        self.chunker = BaseChunker(base, env.num_envs, env.device, seed)
        a = env.num_actions
        self.num_obs = {k: v + a if k in ("policy", "critic") else v for k, v in env.num_obs.items()}
        self.base_action = torch.zeros(env.num_envs, a, device=env.device)

    def __getattr__(self, name):
        return getattr(self.env, name)

    def _augment(self, obs: dict) -> dict:
        self.base_action = self.chunker.action()
        return {k: torch.cat([v, self.base_action], -1) if k in ("policy", "critic") else v for k, v in obs.items()}

    def reset(self):
        obs = self.env.reset()
        self.chunker.reset(obs["policy"])
        return self._augment(obs)

    def step(self, residual: torch.Tensor):
        action = (self.base_action + self.scale * residual).clamp(-1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.chunker.observe(obs["policy"], terminated | truncated)
        return self._augment(obs), reward, terminated, truncated, info


def residual_env(cfg, env):
    """`env` wrapped for a residual run (`cfg.ppo.policy == "residual"`), else `env` itself."""
    if cfg.ppo.policy != "residual":
        return env
    if not cfg.residual.base:
        raise ResidualError("--ppo.policy residual needs --residual.base DIR: a diffusion base trained with "
                            "robot-rl train-diffusion")
    base = load_base(cfg.residual.base, cfg.env.task, env.num_obs["policy"], env.num_actions)
    return ResidualEnv(env, base, cfg.residual.scale, seed=cfg.env.seed)
