"""Runtime of the `residual` kind: a diffusion base (`robot_rl.runtimes.diffusion`) executed with
receding horizon inside the runtime, plus a per-step residual MLP (`residual.onnx`):

    a_t = clip(base_t + scale * residual([obs_t, base_t]), -1, 1)

Every call gets the current observation (the residual is closed-loop at the control rate), so the
runtime returns one action at offset 0 and the policy node runs it like an MLP. The base plans a
new chunk of `pred_horizon` actions every `execution_horizon` calls (or after `reset`) from its
last `obs_horizon` observations, exactly as `robot_rl.residual.BaseChunker` does in training.
`spec["policy"]`: `kind` "residual", `onnx` (residual.onnx), `scale`, `base` (the diffusion
kind's policy section, whose `onnx` is the base's denoiser in the same directory).
"""

from __future__ import annotations

import numpy as np

from robot_rl.runtimes import ActionChunk, PolicyRuntime, onnx_session
from robot_rl.runtimes.diffusion import DiffusionRuntime


class ResidualRuntime(PolicyRuntime):
    def __init__(self, path, spec, seed: int | None = None):
        super().__init__(path, spec)
        p = spec["policy"]
        self.base = DiffusionRuntime(path, {**spec, "policy": p["base"]}, seed=seed)
        self.session = onnx_session(self.path / p["onnx"])
        self.scale = float(p["scale"])
        self.start = self.base.obs_horizon - 1
        self.horizon = self.base.execution_horizon
        self.clip = [float(v) for v in spec["action"].get("clip", [-1.0, 1.0])]
        self._zero = np.zeros(1)
        self.reset()

    def reset(self) -> None:
        self.base.reset()
        self.chunk: np.ndarray | None = None
        self.index = self.horizon

    def base_action(self, obs, noise=None) -> np.ndarray:
        """The base's action for this step (plans a chunk when the last one is used up)."""
        self.base.observe(obs)
        if self.index >= self.horizon:
            self.chunk = self.base.sample(self.base.history[None], noise)[0, self.start:self.start + self.horizon]
            self.index = 0
        a = self.chunk[self.index]
        self.index += 1
        return a

    def correct(self, obs: np.ndarray, base: np.ndarray) -> np.ndarray:
        """base [B, A] + scale * residual([obs, base]), clipped."""
        x = np.concatenate([obs, base], -1).astype(np.float32)
        res = self.session.run(None, {"obs": x})[0]
        return np.clip(base + self.scale * res, *self.clip)

    def act(self, obs, noise=None) -> ActionChunk:
        x = self._check(obs).reshape(self.obs_dim)
        base = self.base_action(x, noise)
        return ActionChunk(self.correct(x[None], base[None]), self._zero)

    def act_batch(self, obs, noise=None) -> np.ndarray:
        """Each row with a fresh history: the base's current action corrected by the residual."""
        x = self._check(obs)
        base = self.base.act_batch(x, noise)
        return self.correct(x, base)
