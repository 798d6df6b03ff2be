"""Actor-critic networks and empirical observation normalization (as in rsl_rl)."""

from __future__ import annotations

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
    """Gaussian policy on the `policy` group, value function on the privileged `critic` group."""

    def __init__(
        self,
        num_actor_obs: int,
        num_critic_obs: int,
        num_actions: int,
        actor_hidden: tuple[int, ...] = (128, 128),
        critic_hidden: tuple[int, ...] = (128, 128),
        activation: str = "elu",
        init_noise_std: float = 1.0,
        normalize_obs: bool = True,
    ):
        super().__init__()
        self.actor = mlp(num_actor_obs, actor_hidden, num_actions, activation)
        self.critic = mlp(num_critic_obs, critic_hidden, 1, activation)
        self.log_std = nn.Parameter(torch.full((num_actions,), float(torch.log(torch.tensor(init_noise_std)))))
        self.actor_norm = EmpiricalNormalization(num_actor_obs) if normalize_obs else nn.Identity()
        self.critic_norm = EmpiricalNormalization(num_critic_obs) if normalize_obs else nn.Identity()
        with torch.no_grad():  # small last layer: actions start near the default pose
            self.actor[-1].weight.mul_(0.01)
            self.actor[-1].bias.zero_()

    def update_normalization(self, actor_obs: torch.Tensor, critic_obs: torch.Tensor) -> None:
        if isinstance(self.actor_norm, EmpiricalNormalization):
            self.actor_norm.update(actor_obs)
            self.critic_norm.update(critic_obs)

    def action_mean(self, actor_obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.actor_norm(actor_obs))

    def distribution(self, actor_obs: torch.Tensor) -> torch.distributions.Normal:
        mean = self.action_mean(actor_obs)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def value(self, critic_obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.critic_norm(critic_obs)).squeeze(-1)


class ExportedPolicy(nn.Module):
    """What goes into the artifact: normalization + actor mean, `obs [B, D] -> actions [B, A]`."""

    def __init__(self, ac: ActorCritic):
        super().__init__()
        self.norm = ac.actor_norm
        self.actor = ac.actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.norm(obs))


def build_policy(cfg, num_obs: dict, num_actions: int) -> ActorCritic:
    """The actor-critic a `TrainConfig` describes, for these observation and action sizes."""
    p = cfg.ppo
    return ActorCritic(num_obs["policy"], num_obs["critic"], num_actions, tuple(p.actor_hidden),
                       tuple(p.critic_hidden), p.activation, p.init_noise_std, p.normalize_obs)
