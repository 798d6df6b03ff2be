"""A toy task with a scripted expert for the human-in-the-loop tests (the one-joint slider of
tests/toy_task.py: 20 control steps per episode)."""

from dataclasses import dataclass

import torch

from robot_rl.sim.tasks import register
from tests.toy_task import ToyReach

TASK = "toy-reach-hil"


class ReachExpert:
    """Drives the slider to its target (position action: q = 0.5 * a), with seeded noise."""

    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(seed)

    def reset(self, env, ids):
        pass

    def act(self, env, obs):
        a = (env.task.target / 0.5).clamp(-1, 1)
        return (a + 0.02 * torch.randn(a.shape, generator=self.gen)).clamp(-1, 1)


@dataclass
class ToyReachHil(ToyReach):
    name: str = TASK

    def expert(self, env, seed):
        return ReachExpert(seed)


register(TASK, ToyReachHil)
