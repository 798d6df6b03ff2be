"""What every PPO-trained policy kind shares (as rsl_rl's actor-critics): empirical observation
normalization, an MLP builder, a Gaussian action distribution with a learned state-independent
std, and an MLP critic on the privileged `critic` observation group (asymmetric actor-critic).

A kind subclasses `ActorCritic` and implements its actor:

* `act_step(obs, memory) -> (mean, memory)`: one control step for a batch of envs (`memory` is
  the kind's internal state, None for a memoryless actor);
* `initial_memory(batch)` / `reset_memory(memory, done)`: the state at an episode start;
* `sequence_mean(obs [T, B, D], memory0, starts [T, B]) -> mean [T, B, A]`: the actor over a
  stored rollout, restarting memory where an episode starts (recurrent kinds; PPO then takes
  minibatches of whole env trajectories);
* `export_onnx(dir, example_obs) -> dict`: write the deployable ONNX file(s) and return the
  `spec["policy"]` section its runtime reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class EmpiricalNormalization(nn.Module):
    """Running mean/std of inputs (updated while training, frozen at export)."""

    def __init__(self, dim: int, eps: float = 1e-2, until: int | None = None):
        super().__init__()
        self.eps = eps
        self.until = until
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def std(self) -> torch.Tensor:
        return torch.sqrt(self.var)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / (self.std + self.eps)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        if self.until is not None and int(self.count) >= self.until:
            return
        n = x.shape[0]
        total = self.count + n
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        delta = batch_mean - self.mean
        new_mean = self.mean + delta * (n / total)
        m_a = self.var * self.count
        m_b = batch_var * n
        self.var.copy_((m_a + m_b + delta**2 * self.count * n / total) / total)
        self.mean.copy_(new_mean)
        self.count.copy_(total)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    act = {"elu": nn.ELU, "tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}
    if activation not in act:
        raise ValueError(f"unknown activation {activation!r}; use one of: {', '.join(act)}")
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), act[activation]()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    kind = ""
    is_recurrent = False

    def __init__(self, num_actor_obs: int, num_critic_obs: int, num_actions: int, cfg):
        super().__init__()
        self.num_actor_obs, self.num_critic_obs, self.num_actions = num_actor_obs, num_critic_obs, num_actions
        self.actor_obs = getattr(cfg, "actor_obs", "policy")
        """The observation group the actor reads: `policy`, or `critic` for a privileged teacher."""
        self.critic = mlp(num_critic_obs, tuple(cfg.critic_hidden), 1, cfg.activation)
        self.log_std = nn.Parameter(torch.full((num_actions,), float(torch.log(torch.tensor(cfg.init_noise_std)))))
        self.actor_norm = EmpiricalNormalization(num_actor_obs) if cfg.normalize_obs else nn.Identity()
        self.critic_norm = EmpiricalNormalization(num_critic_obs) if cfg.normalize_obs else nn.Identity()

    def update_normalization(self, actor_obs: torch.Tensor, critic_obs: torch.Tensor) -> None:
        if isinstance(self.actor_norm, EmpiricalNormalization):
            self.actor_norm.update(actor_obs)
            self.critic_norm.update(critic_obs)

    def value(self, critic_obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.critic_norm(critic_obs)).squeeze(-1)

    def distribution(self, mean: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    # -- the actor (per kind) ------------------------------------------------------------------
    def initial_memory(self, batch: int) -> Any:
        return None

    def reset_memory(self, memory: Any, done: torch.Tensor) -> Any:
        return memory

    def act_step(self, obs: torch.Tensor, memory: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def sequence_mean(self, obs: torch.Tensor, memory0: Any, starts: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def select_memory(self, memory: Any, env_ids: torch.Tensor) -> Any:
        return memory

    def export_onnx(self, out_dir: Path, example_obs: torch.Tensor) -> dict:
        raise NotImplementedError


class DeterministicActor:
    """The trained policy's mean action for a batch of envs, with its memory carried between calls
    and cleared for envs that start a new episode (evaluation, export parity)."""

    def __init__(self, ac: ActorCritic, batch: int):
        self.ac = ac
        self.obs_group = ac.actor_obs
        """The env observation group to call it with (`policy`; `critic` for a privileged teacher)."""
        self.memory = ac.initial_memory(batch)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        mean, self.memory = self.ac.act_step(obs, self.memory)
        return mean

    def reset(self, done: torch.Tensor) -> None:
        """Clear the memory of envs where `done` (bool [B]) is true."""
        self.memory = self.ac.reset_memory(self.memory, done)


def build_actor_critic(cfg, num_obs: dict, num_actions: int) -> ActorCritic:
    """The actor-critic a `TrainConfig` describes (its `ppo.policy` kind, its actor on the
    `ppo.actor_obs` group), for these sizes."""
    from robot_rl.policy_kinds import training_class

    return training_class(cfg.ppo.policy, trained_by="ppo")(num_obs[cfg.ppo.actor_obs], num_obs["critic"], num_actions, cfg.ppo)
