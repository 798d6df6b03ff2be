"""PPO as in rsl_rl: GAE with time-out bootstrapping, clipped surrogate, clipped value loss,
entropy bonus, KL-adaptive learning rate, gradient clipping, asymmetric actor-critic.

Memoryless kinds (`mlp`) are updated on minibatches of single transitions. Recurrent kinds are
updated on minibatches of whole env trajectories: the actor is re-run over the rollout from the
memory stored at its first step, restarting the memory where an episode starts (the done flag of
the previous step), as CleanRL's recurrent PPO and rsl_rl's padded trajectories do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robot_rl.config import PPOConfig
from robot_rl.policies.base import ActorCritic


class RolloutStorage:
    """Transitions of `num_steps` control steps for all envs, `[T, N, ...]`."""

    def __init__(self, T: int, N: int, actor_dim: int, critic_dim: int, num_actions: int, device):
        z = lambda *s: torch.zeros(*s, device=device)  # noqa: E731
        self.actor_obs = z(T, N, actor_dim)
        self.critic_obs = z(T, N, critic_dim)
        self.actions = z(T, N, num_actions)
        self.log_prob = z(T, N)
        self.mu = z(T, N, num_actions)
        self.sigma = z(T, N, num_actions)
        self.rewards = z(T, N)
        self.dones = z(T, N)
        self.values = z(T, N)
        self.returns = z(T, N)
        self.advantages = z(T, N)
        self.memory0 = None
        """The actor's memory at the rollout's first step (recurrent kinds)."""
        self.T, self.N = T, N
        self.step = 0

    def add(self, actor_obs, critic_obs, actions, log_prob, mu, sigma, values, rewards, dones):
        t = self.step
        self.actor_obs[t] = actor_obs
        self.critic_obs[t] = critic_obs
        self.actions[t] = actions
        self.log_prob[t] = log_prob
        self.mu[t] = mu
        self.sigma[t] = sigma
        self.values[t] = values
        self.rewards[t] = rewards
        self.dones[t] = dones
        self.step += 1

    def compute_returns(self, last_values: torch.Tensor, gamma: float, lam: float) -> None:
        adv = torch.zeros_like(last_values)
        for t in reversed(range(self.T)):
            next_values = last_values if t == self.T - 1 else self.values[t + 1]
            not_done = 1.0 - self.dones[t]
            delta = self.rewards[t] + gamma * next_values * not_done - self.values[t]
            adv = delta + gamma * lam * not_done * adv
            self.returns[t] = adv + self.values[t]
        self.advantages = self.returns - self.values
        self.advantages = (self.advantages - self.advantages.mean()) / (self.advantages.std() + 1e-8)
        self.step = 0

    def _fields(self):
        return (self.actor_obs, self.critic_obs, self.actions, self.log_prob, self.mu, self.sigma, self.values,
                self.returns, self.advantages)

    def minibatches(self, num_mini_batches: int, epochs: int, gen: torch.Generator):
        """Flat minibatches of transitions: `[obs, critic_obs, actions, ..., advantages]`."""
        B = self.T * self.N
        mb = B // num_mini_batches
        data = [x.reshape(B, *x.shape[2:]) for x in self._fields()]
        for _ in range(epochs):
            perm = torch.randperm(B, generator=gen, device="cpu").to(self.actions.device)
            for i in range(num_mini_batches):
                idx = perm[i * mb : (i + 1) * mb]
                yield [x[idx] for x in data], None

    def trajectory_batches(self, num_mini_batches: int, epochs: int, gen: torch.Generator):
        """Minibatches of whole env trajectories `[T, n, ...]`, with the env ids and the episode
        starts (`starts[t]`: env's episode began at step t, i.e. it was done at t - 1)."""
        starts = torch.zeros_like(self.dones, dtype=torch.bool)
        starts[1:] = self.dones[:-1] > 0.5
        n = max(1, self.N // num_mini_batches)
        for _ in range(epochs):
            perm = torch.randperm(self.N, generator=gen, device="cpu").to(self.actions.device)
            for i in range(max(1, self.N // n)):
                envs = perm[i * n : (i + 1) * n]
                yield [x[:, envs] for x in self._fields()], (envs, starts[:, envs])


@dataclass
class UpdateStats:
    value_loss: float
    surrogate_loss: float
    entropy: float
    kl: float
    learning_rate: float
    action_std: float


class PPO:
    def __init__(self, ac: ActorCritic, cfg: PPOConfig, num_envs: int, actor_dim: int,
                 critic_dim: int, num_actions: int, device, seed: int = 0):
        self.ac = ac
        self.cfg = cfg
        self.lr = cfg.learning_rate
        self.optimizer = torch.optim.Adam(ac.parameters(), lr=self.lr)
        self.storage = RolloutStorage(cfg.num_steps_per_env, num_envs, actor_dim, critic_dim,
                                      num_actions, device)
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(seed)
        self.device = device
        self.memory = ac.initial_memory(num_envs)
        """The actor's memory for the envs being stepped (None for memoryless kinds)."""

    @torch.no_grad()
    def act(self, actor_obs, critic_obs):
        if self.storage.step == 0 and self.ac.is_recurrent:
            self.storage.memory0 = self.memory.clone()
        mean, self.memory = self.ac.act_step(actor_obs, self.memory)
        dist = self.ac.distribution(mean)
        actions = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=self.gen).to(self.device)
        log_prob = dist.log_prob(actions).sum(-1)
        values = self.ac.value(critic_obs)
        return actions, log_prob, dist.mean, dist.stddev, values

    def episode_ended(self, done: torch.Tensor) -> None:
        """Clear the memory of envs whose episode ended (their next observation starts a new one)."""
        self.memory = self.ac.reset_memory(self.memory, done)

    def update(self) -> UpdateStats:
        c = self.cfg
        s = self.storage
        tot_v = tot_s = tot_e = tot_kl = 0.0
        n = 0
        batches = (s.trajectory_batches if self.ac.is_recurrent else s.minibatches)(
            c.num_mini_batches, c.num_learning_epochs, self.gen)
        for (aobs, cobs, actions, old_logp, old_mu, old_sigma, old_values, returns, adv), seq in batches:
            if seq is None:
                mean = self.ac.act_step(aobs, None)[0]
            else:
                envs, starts = seq
                mean = self.ac.sequence_mean(aobs, self.ac.select_memory(s.memory0, envs), starts)
            dist = self.ac.distribution(mean)
            logp = dist.log_prob(actions).sum(-1)
            values = self.ac.value(cobs)
            entropy = dist.entropy().sum(-1)
            mu, sigma = dist.mean, dist.stddev
            with torch.no_grad():
                kl = torch.sum(
                    torch.log(sigma / old_sigma + 1e-5)
                    + (old_sigma.pow(2) + (old_mu - mu).pow(2)) / (2.0 * sigma.pow(2))
                    - 0.5,
                    dim=-1,
                ).mean()
            if c.schedule == "adaptive" and c.desired_kl > 0:
                if kl > c.desired_kl * 2.0:
                    self.lr = max(1e-5, self.lr / 1.5)
                elif 0.0 < kl < c.desired_kl / 2.0:
                    self.lr = min(1e-2, self.lr * 1.5)
                for g in self.optimizer.param_groups:
                    g["lr"] = self.lr
            ratio = torch.exp(logp - old_logp)
            surrogate = -torch.min(adv * ratio, adv * ratio.clamp(1 - c.clip_param, 1 + c.clip_param)).mean()
            if c.use_clipped_value_loss:
                v_clipped = old_values + (values - old_values).clamp(-c.clip_param, c.clip_param)
                value_loss = torch.max((values - returns).pow(2), (v_clipped - returns).pow(2)).mean()
            else:
                value_loss = (returns - values).pow(2).mean()
            loss = surrogate + c.value_loss_coef * value_loss - c.entropy_coef * entropy.mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.ac.parameters(), c.max_grad_norm)
            self.optimizer.step()
            tot_v += value_loss.item()
            tot_s += surrogate.item()
            tot_e += entropy.mean().item()
            tot_kl += kl.item()
            n += 1
        return UpdateStats(tot_v / n, tot_s / n, tot_e / n, tot_kl / n, self.lr,
                           float(self.ac.log_std.detach().exp().mean()))
