"""Our `BatchedEnv` exposed as a Stable-Baselines3 `VecEnv` (for the time-to-solve benchmark).

* Same task, same DR mode, same seed, same `num_envs`, same physics threads as our trainer uses.
* Observations: the `policy` group only, as a float32 numpy array `[num_envs, Dp]` (SB3's
  MlpPolicy feeds the same observation to actor and critic; our trainer's critic also sees the
  privileged `critic` group).
* Actions: float32 `[num_envs, A]` in [-1, 1] (`Box(-1, 1)`; SB3 clips Gaussian samples to it).
* Auto-reset: our env resets finished envs inside `step` and returns the new episode's first
  observation, which is also what SB3 expects from a VecEnv. SB3 additionally wants
  `infos[i]["terminal_observation"]` (the observation of the state the episode ended in, used to
  bootstrap time-outs) and `infos[i]["TimeLimit.truncated"]`. `TerminalObsEnv` below captures it
  exactly: just before the reset of the envs that finished, it builds their policy observation
  the same way `BatchedEnv._observe` would have (same terms, scale, per-episode bias and the same
  observation-delay buffer) -- the one difference is that its sensor-noise sample is drawn from a
  separate generator, so the env's own random stream (DR, targets, pushes) is identical to what
  our trainer sees with the same seed. It relies on `BatchedEnv` internals (`_reset_idx`,
  `policy_group`, `state`, `_obs_bias`, `_obs_line`); `check_terminal_obs()` verifies it against a twin env
  that does not reset.
* `infos[i]["episode"] = {"r", "l", "t"}` and `infos[i]["is_success"]` are set for finished envs, so
  SB3's logger shows episode return/length/success as with its Monitor wrapper.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from gymnasium import spaces
from robot_rl.sim.env import BatchedEnv
from robot_rl.sim.tasks import make_task
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class TerminalObsEnv(BatchedEnv):
    """`BatchedEnv` that also records the policy observation of every env that finished in `step`
    (before its automatic reset): `terminal_ids` [k] and `terminal_policy_obs` [k, Dp]."""

    def __init__(self, *args, terminal_noise_seed: int = 0x5EED, **kwargs):
        super().__init__(*args, **kwargs)
        self._in_step = False
        self._terminal_gen = torch.Generator(device=self.device)
        self._terminal_gen.manual_seed(terminal_noise_seed)
        self.terminal_ids = torch.zeros(0, dtype=torch.long, device=self.device)
        self.terminal_policy_obs = torch.zeros(0, self.num_obs["policy"], device=self.device)

    @torch.inference_mode()
    def step(self, actions):
        self._in_step = True
        self.terminal_ids = self.terminal_ids[:0]
        self.terminal_policy_obs = self.terminal_policy_obs[:0]
        try:
            return super().step(actions)
        finally:
            self._in_step = False

    def _reset_idx(self, ids: torch.Tensor) -> None:
        if self._in_step and len(ids):
            self.terminal_ids = ids.clone()
            self.terminal_policy_obs = self._policy_obs_of(ids)
        super()._reset_idx(ids)

    def _policy_obs_of(self, ids: torch.Tensor) -> torch.Tensor:
        parts = []
        with self.measured_state() as state:
            values = [fn(state)[ids] for fn in self.policy_group.fns]
        for t, x in zip(self.policy_group.terms, values):
            if t.noise > 0 and self.dr.obs_noise_scale > 0:
                x = x + torch.randn(x.shape, generator=self._terminal_gen, device=self.device) * (
                    t.noise * self.dr.obs_noise_scale)
            parts.append(x * t.scale)
        now = torch.cat(parts, dim=1) + self._obs_bias[ids]
        # `_observe` has not shifted the delay history for this step yet: after the shift, entry d
        # would hold what entry d-1 holds now, and entry 0 the observation computed above.
        delay = self.dr_params["obs_delay_steps"][ids].long()
        history = torch.stack([past[ids] for past in self._obs_line.history])  # [D + 1, len(ids), dim]
        delayed = history[(delay - 1).clamp(min=0), torch.arange(len(ids), device=self.device)]
        return torch.where((delay > 0)[:, None], delayed, now)


class SB3VecEnv(VecEnv):
    """SB3 `VecEnv` over a `TerminalObsEnv` (see the module docstring)."""

    def __init__(self, task: str, num_envs: int, dr: str = "train", seed: int = 0, nthread: int = 0,
                 randomize_episode_start: bool = True):
        self.env = TerminalObsEnv(make_task(task), num_envs, dr=dr, seed=seed, nthread=nthread or None)
        self.randomize_episode_start = randomize_episode_start
        obs_space = spaces.Box(-np.inf, np.inf, (self.env.num_obs["policy"],), np.float32)
        act_space = spaces.Box(-1.0, 1.0, (self.env.num_actions,), np.float32)
        super().__init__(num_envs, obs_space, act_space)
        self._actions = None
        self._t0 = time.perf_counter()

    def reset(self) -> np.ndarray:
        obs = self.env.reset()
        if self.randomize_episode_start:  # as our trainer does (rsl_rl's init_at_random_ep_len)
            self.env.randomize_episode_start()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs["policy"].cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = torch.as_tensor(np.asarray(actions, dtype=np.float32))

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        done = (terminated | truncated).cpu().numpy()
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        ep = info["episode"]
        ids = ep["env_ids"].cpu().tolist()
        if ids:
            if self.env.terminal_ids.cpu().tolist() != ids:
                raise RuntimeError("terminal observations out of step with the finished envs")
            term_obs = self.env.terminal_policy_obs.cpu().numpy()
            trunc = truncated.cpu().numpy()
            ret, length, succ = (ep[k].cpu().numpy() for k in ("return", "length", "success"))
            t = round(time.perf_counter() - self._t0, 6)
            for k, i in enumerate(ids):
                infos[i] = {
                    "terminal_observation": term_obs[k],
                    "TimeLimit.truncated": bool(trunc[i]),
                    "episode": {"r": float(ret[k]), "l": int(length[k]), "t": t},
                    "is_success": bool(succ[k] > 0.5),
                }
        return obs["policy"].cpu().numpy(), reward.cpu().numpy().astype(np.float32), done, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name, indices=None):
        if attr_name == "render_mode":  # no rendering through SB3
            value = None
        else:
            value = getattr(self.env, attr_name)
        return [value] * len(self._get_indices(indices))

    def set_attr(self, attr_name, value, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
        out = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [out] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * len(self._get_indices(indices))


def check_terminal_obs(task: str = "iiwa-reach", num_envs: int = 8, steps: int = 400, seed: int = 0) -> int:
    """Compare captured terminal observations with a twin env that never ends an episode.

    Both use the task's training DR with sensor noise switched off (so observation delay, bias,
    pushes and physics randomization are exercised but the observation is deterministic), the
    same seed and the same actions; the twin has no time limit and no termination, so at the step
    where an env of the first one finishes, the twin's observation of that env is the terminal
    observation it should report. Returns the number of terminal observations checked."""
    import dataclasses

    from robot_rl.sim.randomization import DRPresets

    def quiet_task():
        t = make_task(task)
        t.dr = DRPresets(train=dataclasses.replace(t.dr.train, obs_noise_scale=0.0), eval=t.dr.eval)
        if hasattr(t, "target_period_s"):  # no mid-episode targets: the twin would draw one at the end
            t.target_period_s = 1e9
        return t

    a = TerminalObsEnv(quiet_task(), num_envs, dr="train", seed=seed, nthread=1)
    b = BatchedEnv(quiet_task(), num_envs, dr="train", seed=seed, nthread=1)
    b.max_episode_length = 10**9
    b.task.terminated = lambda env: torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    a.reset()
    b.reset()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        act = torch.rand(num_envs, a.num_actions, generator=gen) * 2 - 1
        a.step(act)
        ob, *_ = b.step(act)
        if len(a.terminal_ids):
            want = ob["policy"][a.terminal_ids]
            torch.testing.assert_close(a.terminal_policy_obs, want, rtol=1e-5, atol=1e-5)
            return len(a.terminal_ids)  # the twin diverges after the first reset
    raise AssertionError(f"no episode ended within {steps} steps; raise `steps`")


if __name__ == "__main__":
    for name in ("iiwa-reach", "cartpole-swingup"):
        n = check_terminal_obs(name)
        print(f"{name}: {n} terminal observations match a non-resetting twin env")
