"""A simulated operator: a scripted person who watches a policy and takes over when it drifts.

Batched over the envs of a `BatchedEnv`, built on the task's scripted expert (`Task.expert`):

```
op = SimulatedOperator(env, seed=0)
obs = env.reset(); op.reset(env, torch.arange(env.num_envs))
for _ in range(steps):
    a_policy = policy(obs)
    step = op.step(env, obs, a_policy)          # step.action: what the robot executes
    obs, reward, terminated, truncated, info = env.step(step.action)
    done = (terminated | truncated).nonzero().flatten()
    if len(done): op.reset(env, done)
```

The person's model, per env:

* **watching** what the robot does. With a task that says how far each env is from done
  (`Task.distance`, e.g. `panda-peg-insert`: lateral error plus the depth still missing), the person
  judges progress, as one watching a robot does: they notice when the distance has not beaten its
  best of the episode by `min_progress` for `patience_s` (stuck, hovering, jammed) or has grown
  `backoff` above that best (going away). Otherwise the drift is an exponential moving average
  (`drift_smoothing`) of the distance between the policy's action and the expert's, per action
  dimension (RMS, in the normalized action range [-1, 1]), noticed above `drift_threshold`.
  Action drift is a poor judge where the expert's own moves are noisy and the task can be done
  several ways: on `panda-peg-insert` it noticed, within the first 7 steps (median), 100% of the
  episodes that the diffusion bases of seeds 0, 1 and 2 then completed alone, as well as 100% of
  those they failed; progress noticed 27 / 25 / 42% and 100%
  (`benchmarks/operator_judgement.py`, 64 episodes per base). A person would not grab a robot that
  is about to succeed;
* **reaction delay**: once noticed, the person needs `reaction_delay_s` (drawn per event, uniform
  in [0.5, 1.5] x the mean) before their hands act; meanwhile the policy keeps control;
* **takeover**: the expert's actions (which carry the expert's own noise and hesitation) plus
  `correction_noise` Gaussian noise for `takeover_s` (drawn per event, uniform in [0.5, 1.5] x the
  mean), then the person lets go and watches afresh (drift from zero; progress from where the
  robot is now);
* `max_takeovers` per episode (then the person stops intervening in that episode).

`step` returns the executed action, the intervention flag (the person commanded this step), and
the flag of the first step of each takeover (RLIF puts its penalty on the transition before it).
Operator time is the simulated time the person spent watching (every step of every supervised
episode), and the intervention time the part of it spent with hands on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class OperatorStep:
    action: torch.Tensor
    """[n, A] the action the robot executes."""
    intervening: torch.Tensor
    """[n] bool: the person commanded this step."""
    takeover_start: torch.Tensor
    """[n] bool: this step is the first of a takeover."""
    expert_action: torch.Tensor
    """[n, A] what the person would have done (for HG-DAgger labels)."""


class SimulatedOperator:
    def __init__(self, env, seed: int = 0, *, expert=None, drift_threshold: float = 0.35,
                 drift_smoothing: float = 0.3, reaction_delay_s: float = 0.3, takeover_s: float = 1.2,
                 correction_noise: float = 0.05, max_takeovers: int = 4, patience_s: float = 1.0,
                 min_progress: float = 0.002, backoff: float = 0.01, watch_progress: bool | None = None):
        if not 0.0 < drift_smoothing <= 1.0:
            raise ValueError(f"drift_smoothing must be in (0, 1], got {drift_smoothing}")
        if drift_threshold <= 0 or reaction_delay_s < 0 or takeover_s <= 0:
            raise ValueError("drift_threshold and takeover_s must be > 0 and reaction_delay_s >= 0")
        if patience_s <= 0 or min_progress < 0 or backoff <= 0:
            raise ValueError("patience_s and backoff must be > 0 and min_progress >= 0")
        n, dev = env.num_envs, env.device
        self.expert = expert if expert is not None else env.task.expert(env, seed)
        self.dt = float(env.control_dt)
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(int(seed) + 7919)
        self.threshold, self.alpha = float(drift_threshold), float(drift_smoothing)
        self.reaction_s, self.takeover_s = float(reaction_delay_s), float(takeover_s)
        self.noise, self.max_takeovers = float(correction_noise), int(max_takeovers)
        self.drift = torch.zeros(n, device=dev)
        has_distance = callable(getattr(getattr(env, "task", None), "distance", None))
        if watch_progress and not has_distance:
            raise ValueError("watch_progress needs a task with a distance to done (Task.distance)")
        self.watch_progress = has_distance if watch_progress is None else bool(watch_progress)
        """True: the person judges the task's progress (`Task.distance`); False: the action drift
        (default: progress where the task has a `distance`)."""
        self.patience = max(1, round(patience_s / self.dt))
        self.min_progress, self.backoff = float(min_progress), float(backoff)
        self.ref = torch.full((n,), float("nan"), device=dev)  # the distance the next progress is measured from
        self.best = torch.full((n,), float("nan"), device=dev)  # the best distance since the person last looked afresh
        self.stall = torch.zeros(n, dtype=torch.long, device=dev)  # steps since the last progress
        self.react = torch.full((n,), -1, dtype=torch.long, device=dev)  # steps until hands act; -1 idle
        self.hold = torch.zeros(n, dtype=torch.long, device=dev)  # takeover steps left
        self.count = torch.zeros(n, dtype=torch.long, device=dev)
        self.watched_steps = 0
        self.intervened_steps = 0
        self.takeovers = 0

    def _steps(self, mean_s: float, k: int) -> torch.Tensor:
        u = 0.5 + torch.rand(k, generator=self.gen, device=self.drift.device)
        return torch.clamp(torch.round(u * mean_s / self.dt), min=1).long()

    def reset(self, env, ids: torch.Tensor) -> None:
        ids = ids.to(self.drift.device)
        self.expert.reset(env, ids)
        self._watch_afresh(ids)
        self.react[ids] = -1
        self.hold[ids] = 0
        self.count[ids] = 0

    @torch.no_grad()
    def step(self, env, obs, policy_action: torch.Tensor) -> OperatorStep:
        expert = self.expert.act(env, obs)
        n, a_dim = expert.shape
        watching = (self.hold == 0) & (self.react < 0)
        if self.watch_progress:
            drifting = self._progress_drift(env, watching)
        else:
            gap = torch.linalg.norm(policy_action - expert, dim=1) / a_dim ** 0.5
            self.drift = torch.where(watching, (1 - self.alpha) * self.drift + self.alpha * gap, self.drift)
            drifting = self.drift > self.threshold
        notice = watching & drifting & (self.count < self.max_takeovers)
        if bool(notice.any()):
            self.react[notice] = self._steps(self.reaction_s, int(notice.sum())) if self.reaction_s > 0 else 0
        start = self.react == 0
        if bool(start.any()):
            self.hold[start] = self._steps(self.takeover_s, int(start.sum()))
            self.count[start] += 1
            self.takeovers += int(start.sum())
        self.react = torch.where(self.react >= 0, self.react - 1, self.react)
        acting = self.hold > 0
        noisy = (expert + self.noise * torch.randn(expert.shape, generator=self.gen, device=expert.device))
        action = torch.where(acting[:, None], noisy.clamp(-1.0, 1.0), policy_action)
        self.hold = (self.hold - 1).clamp(min=0)
        self._watch_afresh(acting & (self.hold == 0))  # released
        self.watched_steps += n
        self.intervened_steps += int(acting.sum())
        return OperatorStep(action, acting, start, expert)

    def _watch_afresh(self, which: torch.Tensor) -> None:
        """Envs `which` (ids or a mask): drift from zero, progress measured from the next look."""
        self.drift[which] = 0.0
        self.ref[which] = float("nan")
        self.best[which] = float("nan")
        self.stall[which] = 0

    def _progress_drift(self, env, watching: torch.Tensor) -> torch.Tensor:
        """[n] bool: no progress for `patience_s`, or `backoff` farther than the best (watching envs)."""
        d = env.task.distance(env).to(self.ref.device)
        fresh = torch.isnan(self.ref)
        progressed = fresh | (d < self.ref - self.min_progress)
        self.ref = torch.where(watching & progressed, d, self.ref)
        self.best = torch.where(watching & (fresh | (d < self.best)), d, self.best)
        self.stall = torch.where(watching, torch.where(progressed, 0, self.stall + 1), self.stall)
        return (self.stall >= self.patience) | (d > self.best + self.backoff)

    @property
    def operator_time_s(self) -> float:
        """Simulated seconds the person watched (summed over envs)."""
        return self.watched_steps * self.dt

    @property
    def intervention_time_s(self) -> float:
        return self.intervened_steps * self.dt
