"""SAC with RLPD sampling (Ball et al. 2023), the learner of HIL-SERL and RLIF. CPU, small MLPs.

* twin Q critics with LayerNorm (RLPD), Polyak-averaged targets, clipped double-Q target;
* a tanh-Gaussian actor; the temperature alpha is tuned to a target entropy of -|A|;
* **RLPD batches**: every batch is half from the offline buffer (demonstrations and every
  intervention transition) and half from the online buffer (the policy's own transitions);
  while one of them is empty the other fills the batch;
* `utd` critic updates per actor update (the high update-to-data ratio of RLPD / HIL-SERL);
* **residual mode** (`residual_scale > 0`): the actor's input is [obs, base action] and its output
  a correction, the executed action being clip(base + scale * tanh(u), -1, 1); the actor's last
  layers are zero-initialised, so the deterministic start is exactly the base. The critic always
  sees (input, executed action).

```
agent = SAC(SACConfig(), obs_dim, act_dim)
buf = RLPDBuffers(obs_dim, act_dim, capacity)
buf.add(obs, act, rew, next_obs, done, offline=mask)      # batched tensors
for _ in range(n): info = agent.update(buf)
a = agent.act(obs, deterministic=False)                    # executed action in [-1, 1]
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class SACConfig:
    hidden: int = 256
    layers: int = 2
    gamma: float = 0.97
    tau: float = 0.005
    lr: float = 3e-4
    batch_size: int = 256
    utd: int = 4
    """Critic updates per actor update (and per call of `update`)."""
    init_alpha: float = 0.05
    target_entropy_scale: float = 1.0
    """Target entropy = -scale * |A|."""
    residual_scale: float = 0.0
    """> 0: residual actor over a base action (the last |A| inputs), this fraction of the range."""
    init_std: float = 1.0
    """Residual mode: the actor's starting standard deviation (before tanh; its log-std head's bias,
    the weights zero). The executed action's exploration noise starts near `residual_scale * init_std`."""
    offline_ratio: float = 0.5
    """Share of each batch drawn from the offline buffer (RLPD: 0.5)."""
    bc_weight: float = 0.0
    """> 0: the actor's loss adds this weight times the squared distance between its deterministic
    action and the offline action (demonstrations, the person's corrections), on the offline rows of
    each batch where the critic rates that action above the actor's own (a Q filter, Nair et al.
    2018; ConRFT adds a BC term on interventions likewise). 0: plain RLPD."""
    seed: int = 0


def mlp(i: int, o: int, hidden: int, layers: int, norm: bool) -> nn.Sequential:
    mods: list[nn.Module] = []
    for k in range(layers):
        mods += [nn.Linear(i if k == 0 else hidden, hidden)] + ([nn.LayerNorm(hidden)] if norm else []) + [nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(hidden, o))


class Actor(nn.Module):
    """tanh-Gaussian policy; in residual mode its mean and log-std heads start with zero weights, the
    mean's bias at zero (the base) and the log-std's at log(`init_std`)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int, residual_scale: float = 0.0,
                 init_std: float = 1.0):
        super().__init__()
        self.act_dim, self.scale = act_dim, float(residual_scale)
        self.trunk = mlp(obs_dim, hidden, hidden, layers - 1, norm=False)
        self.mu, self.log_std = nn.Linear(hidden, act_dim), nn.Linear(hidden, act_dim)
        if self.scale > 0:
            for m in (self.mu, self.log_std):
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)
            nn.init.constant_(self.log_std.bias, math.log(init_std))

    def _compose(self, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if self.scale <= 0:
            return u
        return (obs[:, -self.act_dim:] + self.scale * u).clamp(-1.0, 1.0)

    def forward(self, obs: torch.Tensor, deterministic: bool = False):
        """(executed action, log-prob of the tanh sample) for each row of `obs`."""
        h = F.relu(self.trunk(obs))
        mu, log_std = self.mu(h), self.log_std(h).clamp(-5.0, 2.0)
        if deterministic:
            return self._compose(obs, torch.tanh(mu)), torch.zeros(len(obs), device=obs.device)
        x = mu + log_std.exp() * torch.randn_like(mu)
        u = torch.tanh(x)
        logp = (-0.5 * ((x - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2 * (math.log(2) - x - F.softplus(-2 * x))).sum(-1)
        return self._compose(obs, u), logp


class Critic(nn.Module):
    """Two LayerNorm Q networks Q(s, a) -> [2, N]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int):
        super().__init__()
        self.q = nn.ModuleList([mlp(obs_dim + act_dim, 1, hidden, layers, norm=True) for _ in range(2)])

    def forward(self, obs, act):
        x = torch.cat([obs, act], -1)
        return torch.stack([q(x).squeeze(-1) for q in self.q])


class ReplayBuffer:
    """A ring buffer of transitions (obs, act, rew, next_obs, done) as tensors."""

    KEYS = ("obs", "act", "rew", "next_obs", "done")

    def __init__(self, obs_dim: int, act_dim: int, capacity: int):
        self.capacity, self.size, self.ptr = int(capacity), 0, 0
        shapes = {"obs": (obs_dim,), "act": (act_dim,), "rew": (), "next_obs": (obs_dim,), "done": ()}
        self.data = {k: torch.zeros((self.capacity, *s)) for k, s in shapes.items()}

    def add(self, **batch: torch.Tensor) -> None:
        n = len(batch["obs"])
        idx = (self.ptr + torch.arange(n)) % self.capacity
        for k in self.KEYS:
            self.data[k][idx] = batch[k].detach().float().cpu().reshape(self.data[k][idx].shape)
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (n,), generator=gen)
        return {k: v[idx] for k, v in self.data.items()}

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.{k}": v[:self.size].contiguous() for k, v in self.data.items()} | {
            f"{prefix}.meta": torch.tensor([self.size, self.ptr])}

    def load(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        self.size, self.ptr = (int(x) for x in tensors[f"{prefix}.meta"])
        for k in self.KEYS:
            self.data[k][:self.size] = tensors[f"{prefix}.{k}"]


class RLPDBuffers:
    """The offline buffer (demonstrations + interventions) and the online buffer."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int = 200_000):
        self.offline = ReplayBuffer(obs_dim, act_dim, capacity)
        self.online = ReplayBuffer(obs_dim, act_dim, capacity)

    def add(self, obs, act, rew, next_obs, done, offline: torch.Tensor | bool = False) -> None:
        off = torch.as_tensor(offline, dtype=torch.bool).expand(len(obs))
        for buf, m in ((self.offline, off), (self.online, ~off)):
            if bool(m.any()):
                buf.add(obs=obs[m], act=act[m], rew=rew[m], next_obs=next_obs[m], done=done[m])

    def sample(self, n: int, gen: torch.Generator, offline_ratio: float = 0.5) -> dict[str, torch.Tensor]:
        """`n` transitions: round(offline_ratio * n) offline, the rest online (all from one buffer
        while the other is empty). Rows carry `offline` (bool) for the 50/50 check."""
        if self.offline.size + self.online.size == 0:
            raise ValueError("RLPD sampling from empty buffers: add demonstrations or transitions first")
        n_off = round(offline_ratio * n) if self.online.size else n
        n_off = n_off if self.offline.size else 0
        parts = [b.sample(k, gen) for b, k in ((self.offline, n_off), (self.online, n - n_off)) if k]
        out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        out["offline"] = torch.arange(n) < n_off
        return out


class SAC:
    def __init__(self, cfg: SACConfig, obs_dim: int, act_dim: int):
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.actor = Actor(obs_dim, act_dim, cfg.hidden, cfg.layers, cfg.residual_scale, cfg.init_std)
        self.critic = Critic(obs_dim, act_dim, cfg.hidden, cfg.layers)
        self.critic_target = Critic(obs_dim, act_dim, cfg.hidden, cfg.layers)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), requires_grad=True)
        self.target_entropy = -cfg.target_entropy_scale * act_dim
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.actor(obs, deterministic)[0]

    def update(self, buffers: RLPDBuffers) -> dict[str, float]:
        """`utd` critic updates, then one actor and temperature update."""
        cfg = self.cfg
        for _ in range(cfg.utd):
            b = buffers.sample(cfg.batch_size, self.gen, cfg.offline_ratio)
            with torch.no_grad():
                a2, logp2 = self.actor(b["next_obs"])
                q2 = self.critic_target(b["next_obs"], a2).min(0).values - self.log_alpha.exp() * logp2
                y = b["rew"] + cfg.gamma * (1.0 - b["done"]) * q2
            q_loss = F.mse_loss(self.critic(b["obs"], b["act"]), y.expand(2, -1))
            self.critic_opt.zero_grad()
            q_loss.backward()
            self.critic_opt.step()
            with torch.no_grad():
                for p, pt in zip(self.critic.parameters(), self.critic_target.parameters()):
                    pt.lerp_(p, cfg.tau)
        a, logp = self.actor(b["obs"])
        q_pi = self.critic(b["obs"], a).mean(0)
        pi_loss = (self.log_alpha.exp().detach() * logp - q_pi).mean()
        if cfg.bc_weight > 0 and bool(b["offline"].any()):
            pi_loss = pi_loss + cfg.bc_weight * self._bc(b, q_pi)
        self.actor_opt.zero_grad()
        pi_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        self.updates += 1
        return {"q_loss": float(q_loss.detach()), "pi_loss": float(pi_loss.detach()), "alpha": float(self.log_alpha.detach().exp()),
                "entropy": float(-logp.detach().mean())}

    def _bc(self, b: dict[str, torch.Tensor], q_pi: torch.Tensor) -> torch.Tensor:
        """Mean squared distance from the deterministic action to the offline action, over the batch's
        offline rows where Q(s, offline action) > Q(s, actor's action) (0 where none is)."""
        off = b["offline"]
        with torch.no_grad():
            better = self.critic(b["obs"][off], b["act"][off]).mean(0) > q_pi.detach()[off]
        if not bool(better.any()):
            return q_pi.new_zeros(())
        mean_act = self.actor(b["obs"][off][better], deterministic=True)[0]
        return ((mean_act - b["act"][off][better]) ** 2).sum(-1).mean()

    # -- state as flat tensor dicts (safetensors) ------------------------------------------------
    def actor_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.actor.state_dict().items()}

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"actor.{k}": v for k, v in self.actor.state_dict().items()}
        out |= {f"critic.{k}": v for k, v in self.critic.state_dict().items()}
        out |= {f"critic_target.{k}": v for k, v in self.critic_target.state_dict().items()}
        out["log_alpha"] = self.log_alpha.detach().reshape(1)
        out["updates"] = torch.tensor([self.updates])
        return {k: v.detach().contiguous() for k, v in out.items()}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, mod in (("actor", self.actor), ("critic", self.critic), ("critic_target", self.critic_target)):
            mod.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")})
        with torch.no_grad():
            self.log_alpha.copy_(tensors["log_alpha"][0])
        self.updates = int(tensors["updates"][0])
