"""The scripted expert of `panda-peg-insert`: demonstrations with human-like imperfection.

```
expert = env.task.expert(env, seed=0)
obs = env.reset(); expert.reset(env, torch.arange(env.num_envs))
for _ in range(steps):
    obs, reward, terminated, truncated, info = env.step(expert.act(env, obs))
    done = (terminated | truncated).nonzero().flatten()
    if len(done): expert.reset(env, done)           # the env reset those envs already
```

It reads the true peg tip and hole (privileged simulator state, `env.frame`), not the policy's
observation, and plays like a person would with a noisy estimate of them, batched over all envs:

* approach: move the tip above an aim point, the hole's centre plus an aiming error (first attempt
  N(0, `aim_std`) per axis: often off by more than the 1 mm clearance), `hover` above the top;
* descend slowly; once the tip is inside the hole push on to the success depth;
* stuck (the tip has not entered the hole after `patience` steps of descent): lift, take a new,
  better aim (N(0, `retry_std`)) and try again;
* hesitation: with probability `pause_prob` per step the expert stops for 2-6 steps; every action
  carries Gaussian noise (`action_noise`).

`observed=True` plays the same strategy from what the policy observes instead (the believed hole
`hole_pos`, the peg tip where the nominal grasp puts it): the same search without the privileged
state, a yardstick for a policy that imitates the expert's moves but cannot see the hole error.

Measured (128 envs, 600 control steps, seed 0, every episode that ended;
`benchmarks/peg_expert_success.py`): 99.5% of 1,418 episodes under the training DR, 97.4% of 977
under the held-out `eval` DR; `observed=True`: 74.4% of 845 (training DR), 54.8% of 644 (`eval`).
`tests/test_panda_peg_insert.py` checks >= 70% of 16 first episodes, and that the observed-state
variant does worse.
"""

from __future__ import annotations

import torch

from robot_rl.sim.tasks.panda_peg_insert import PEG_TIP

APPROACH, DESCEND, LIFT = 0, 1, 2


class PegInsertExpert:
    def __init__(self, env, seed: int, aim_std: float = 0.002, retry_std: float = 0.0015,
                 hover: float = 0.008, patience: int = 8, pause_prob: float = 0.08, action_noise: float = 0.03,
                 gain: float = 0.5, descend_speed: float = 0.2, observed: bool = False):
        n, dev = env.num_envs, env.device
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(int(seed))
        self.aim_std, self.retry_std, self.hover = aim_std, retry_std, hover
        self.patience, self.pause_prob, self.action_noise = patience, pause_prob, action_noise
        self.gain, self.descend_speed = gain, descend_speed
        self.observed = observed
        self.scale = float(env.action_terms.terms[0].scale)
        self.phase = torch.zeros(n, dtype=torch.long, device=dev)
        self.aim = torch.zeros(n, 2, device=dev)
        self.pause = torch.zeros(n, dtype=torch.long, device=dev)
        self.blocked = torch.zeros(n, dtype=torch.long, device=dev)
        self.retries = torch.zeros(n, dtype=torch.long, device=dev)

    def _randn(self, *shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen, device=self.phase.device)

    def reset(self, env, ids: torch.Tensor) -> None:
        ids = ids.to(self.phase.device)
        self.phase[ids] = APPROACH
        self.aim[ids] = self._randn(len(ids), 2) * self.aim_std
        self.pause[ids] = 0
        self.blocked[ids] = 0
        self.retries[ids] = 0

    def act(self, env, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.observed:  # what the policy knows: the believed hole, the peg where it should sit
            tip = env.frame("ee").clone()
            tip[:, 2] -= PEG_TIP
            hole = env.commands["hole_pos"]
        else:
            tip, hole = env.frame("peg_tip"), env.frame("hole_top")
        n = tip.shape[0]
        aim_xy = hole[:, :2] + self.aim
        height = tip[:, 2] - hole[:, 2]  # of the tip above the hole's top surface
        lateral = torch.linalg.norm(tip[:, :2] - aim_xy, dim=1)
        inside = (height < -0.0005) & (torch.linalg.norm(tip[:, :2] - hole[:, :2], dim=1) < 0.002)

        # phase transitions
        ready = (self.phase == APPROACH) & (lateral < 0.0008) & (height.sub(self.hover).abs() < 0.004)
        self.phase[ready] = DESCEND
        self.blocked[ready] = 0
        descending = self.phase == DESCEND
        self.blocked = torch.where(descending & ~inside & (height < 0.003), self.blocked + 1, self.blocked)
        stuck = descending & (self.blocked > self.patience)
        self.phase[stuck] = LIFT
        lifted = (self.phase == LIFT) & (height > self.hover - 0.002)
        if bool(lifted.any()):
            k = int(lifted.sum())
            self.aim[lifted] = self._randn(k, 2) * self.retry_std
            self.retries[lifted] += 1
            self.phase[lifted] = APPROACH

        # targets: xy over the aim (inside the hole: its axis), z by phase
        target = torch.empty(n, 3, device=tip.device)
        target[:, :2] = torch.where(inside[:, None], hole[:, :2], aim_xy)
        z_hover = hole[:, 2] + self.hover
        target[:, 2] = torch.where(self.phase == LIFT, z_hover + 0.004, z_hover)
        a = (self.gain / self.scale) * (target - tip)
        down = self.phase == DESCEND
        a[:, 2] = torch.where(down, torch.full_like(a[:, 2], -self.descend_speed), a[:, 2])
        a[:, 2] = torch.where(down & inside, torch.full_like(a[:, 2], -2.0 * self.descend_speed), a[:, 2])

        # hesitation and noise
        start = (self.pause == 0) & (torch.rand(n, generator=self.gen, device=tip.device) < self.pause_prob)
        self.pause[start] = torch.randint(2, 7, (int(start.sum()),), generator=self.gen, device=tip.device)
        paused = self.pause > 0
        a[paused] = 0.0
        self.pause = (self.pause - 1).clamp(min=0)
        a += self._randn(n, 3) * self.action_noise
        return a.clamp(-1.0, 1.0)
