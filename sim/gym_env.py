"""Any robot-rl task as a single `gymnasium.Env`, for Gymnasium-based libraries (SB3, CleanRL...).

```
import gymnasium, robot_rl.sim.gym_env  # registers robot_rl/<task>-v0 for every task
env = gymnasium.make("robot_rl/iiwa-reach-v0", dr="train")
obs, info = env.reset(seed=0)
obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
```

The same task code, DR and physics as `BatchedEnv` (it *is* a `BatchedEnv` with one env and
automatic reset off), seen through Gymnasium's API:

* observation: the `policy` group, float32 `[Dp]`; action: float32 `[A]` in `Box(-1, 1)`;
* `terminated` / `truncated` as the batched env reports them (time-outs are truncations); after
  either, `step` returned the terminal observation and the caller calls `reset()`;
* `info["critic"]` holds the privileged observation (for asymmetric actor-critic), `info["dr"]` the
  episode's DR parameters, and at the end of an episode `info["is_success"]` (SB3's Monitor key).

Needs the `gymnasium` package (`pip install robot-rl[gym]`; the dev extra has it).
"""

from __future__ import annotations

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from robot_rl.sim.env import BatchedEnv
from robot_rl.sim.tasks import make_task, task_names


class GymEnv(gymnasium.Env):
    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(self, task: str, dr: str = "train", seed: int = 0, backend: str = "mujoco"):
        self.env = BatchedEnv(make_task(task), 1, dr=dr, seed=seed, backend=backend, nthread=1, autoreset=False)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.env.num_obs["policy"],), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.env.num_actions,), np.float32)

    def _info(self, obs: dict) -> dict:
        dr = self.env.dr_values[0].tolist()
        return {"critic": obs["critic"][0].numpy().copy(), "dr": dict(zip(self.env.param_names, dr))}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.env.gen.manual_seed(seed)
        obs = self.env.reset()
        return obs["policy"][0].numpy().copy(), self._info(obs)

    def step(self, action):
        a = torch.as_tensor(np.asarray(action, dtype=np.float32)).view(1, -1)
        obs, reward, terminated, truncated, info = self.env.step(a)
        out = self._info(obs)
        if len(info["episode"]["env_ids"]):
            out["is_success"] = bool(info["episode"]["success"][0] > 0.5)
        return (obs["policy"][0].numpy().copy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), out)


def register() -> None:
    """Register `robot_rl/<task>-v0` for every task (`gymnasium.make` kwargs go to `GymEnv`)."""
    for name in task_names():
        env_id = f"robot_rl/{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=GymEnv, kwargs={"task": name})


register()
