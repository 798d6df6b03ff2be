"""Runtime of the `diffusion` kind (numpy + onnxruntime; no torch, no diffusers).

`denoiser.onnx`: `(sample [B, Tp, A], timestep [B] float32, cond [B, To * D]) -> model_output`
(epsilon for `objective="ddpm"`, velocity for `"flow"`). The runtime

* keeps the last `obs_horizon` (To) observations: `reset()` clears them, and the first observation
  after a reset fills the whole history (repeated);
* normalizes the history (min-max to [-1, 1], `spec["policy"]["normalization"]`) into `cond`;
* runs the sampler written in `spec["policy"]["sampler"]` from noise [1, Tp, A]: DDIM (eta 0,
  x0 clipped to `clip_sample`) with the exported `timesteps` / `alphas_cumprod` /
  `alphas_cumprod_prev`, or flow matching's Euler steps `x += (sigma_next - sigma) * v` with the
  exported `timesteps` / `sigmas`: the same float32 arithmetic as diffusers' `DDIMScheduler.step`
  and `FlowMatchEulerDiscreteScheduler.step`;
* unnormalizes the actions and clips them to `spec["action"]["clip"]`.

`act(obs)` returns the whole predicted future as the chunk: actions `To - 1 .. Tp - 1` of the
horizon (Tp - To + 1 actions, 15 with the defaults), index `To - 1` being the action for the
current observation (offset 0), action k due `k * period_s` later. The node decides how many to
execute: `spec["policy"]["execution_horizon"]` (8 by default, Chi et al.'s receding step) or
temporal ensembling over overlapping chunks.

Noise comes from a `numpy.random.Generator` seeded with the `seed` argument (else
`spec["policy"]["seed"]`); pass `noise=` to `act` / `act_batch` / `sample` to supply it (parity).
"""

from __future__ import annotations

import numpy as np

from robot_rl.artifact import ArtifactError
from robot_rl.runtimes import ActionChunk, PolicyRuntime, onnx_session


def minmax_scale(lo: np.ndarray, hi: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset): `x * scale + offset` maps [lo, hi] to [-1, 1]; flat dims centred at 0."""
    rng = hi - lo
    flat = rng < eps
    scale = np.where(flat, np.float32(1), np.float32(2) / np.where(flat, np.float32(1), rng)).astype(np.float32)
    offset = np.where(flat, -lo, np.float32(-1) - scale * lo).astype(np.float32)
    return scale, offset


class DiffusionRuntime(PolicyRuntime):
    def __init__(self, path, spec, seed: int | None = None):
        super().__init__(path, spec)
        p = spec["policy"]
        missing = [k for k in ("onnx", "obs_horizon", "pred_horizon", "execution_horizon", "normalization", "sampler")
                   if k not in p] + [f"normalization.{k}" for k in ("obs_min", "obs_max", "action_min", "action_max")
                                     if k not in p.get("normalization", {})]
        if missing:
            raise ArtifactError(f"{self.path}: the diffusion policy spec lacks {', '.join(missing)}; export the "
                                "artifact again with robot_rl.diffusion_export")
        self.obs_horizon, self.pred_horizon = int(p["obs_horizon"]), int(p["pred_horizon"])
        self.execution_horizon = int(p["execution_horizon"])
        norm = {k: np.asarray(p["normalization"][k], dtype=np.float32)
                for k in ("obs_min", "obs_max", "action_min", "action_max")}
        for k, want in (("obs_min", self.obs_dim), ("obs_max", self.obs_dim),
                        ("action_min", self.action_dim), ("action_max", self.action_dim)):
            if norm[k].shape != (want,):
                what = "observation" if k.startswith("obs") else "action"
                raise ArtifactError(f"{self.path}: normalization {k} has {norm[k].size} values but the {what} has "
                                    f"{want}; the stats belong to another policy, export the artifact again")
        eps = float(p["normalization"].get("range_eps", 1e-4))
        self.obs_scale, self.obs_offset = minmax_scale(norm["obs_min"], norm["obs_max"], eps)
        self.act_scale, self.act_offset = minmax_scale(norm["action_min"], norm["action_max"], eps)
        self.clip = [float(v) for v in spec["action"].get("clip", [-1.0, 1.0])]

        s = p["sampler"]
        self.kind = s["scheduler"]
        if self.kind not in ("DDIMScheduler", "FlowMatchEulerDiscreteScheduler"):
            raise ArtifactError(f"{self.path}: unknown sampler {self.kind!r}; this robot-rl runs DDIMScheduler and "
                                "FlowMatchEulerDiscreteScheduler (update robot-rl)")
        self.timesteps = np.asarray(s["timesteps"], dtype=np.float32)
        if self.kind == "DDIMScheduler":
            self.alphas = np.asarray(s["alphas_cumprod"], dtype=np.float32)
            self.alphas_prev = np.asarray(s["alphas_cumprod_prev"], dtype=np.float32)
            self.clip_sample = None if s.get("clip_sample") is None else np.float32(s["clip_sample"])
        else:
            self.sigmas = np.asarray(s["sigmas"], dtype=np.float32)

        self.session = onnx_session(self.path / p["onnx"])
        cond_dim = self.session.get_inputs()[2].shape[-1]
        if cond_dim != self.obs_horizon * self.obs_dim:
            raise ArtifactError(f"{self.path}: the denoiser takes a condition of {cond_dim} values, not obs_horizon "
                                f"{self.obs_horizon} x observation {self.obs_dim}; export the artifact again")
        self.rng = np.random.default_rng(int(p.get("seed", 0)) if seed is None else seed)
        self.history: np.ndarray | None = None
        self.chunk_offsets = np.arange(self.pred_horizon - self.obs_horizon + 1) * self.period_s
        self.reset()

    def reset(self) -> None:
        self.history = None

    # -- sampling --------------------------------------------------------------------------------
    def _noise(self, batch: int, noise) -> np.ndarray:
        shape = (batch, self.pred_horizon, self.action_dim)
        if noise is None:
            return self.rng.standard_normal(shape, dtype=np.float32)
        noise = np.asarray(noise, dtype=np.float32)
        if noise.shape != shape:
            raise ValueError(f"noise must have shape {list(shape)}, got {list(noise.shape)}")
        return noise

    def sample_normalized(self, obs_hist: np.ndarray, noise=None) -> np.ndarray:
        """obs_hist [B, To, D] (raw) -> normalized actions [B, Tp, A] (the sampler's output)."""
        h = self._check(obs_hist)
        if h.ndim != 3 or h.shape[1] != self.obs_horizon:
            raise ValueError(f"obs_hist must be [B, {self.obs_horizon}, {self.obs_dim}], got {list(h.shape)}")
        b = h.shape[0]
        cond = (h * self.obs_scale + self.obs_offset).reshape(b, -1).astype(np.float32)
        x = self._noise(b, noise)
        one = np.float32(1)
        for i, t in enumerate(self.timesteps):
            out = self.session.run(None, {"sample": x, "timestep": np.full(b, t, np.float32), "cond": cond})[0]
            if self.kind == "DDIMScheduler":  # diffusers DDIMScheduler.step, epsilon, eta 0
                a, a_prev = self.alphas[i], self.alphas_prev[i]
                x0 = (x - (one - a) ** np.float32(0.5) * out) / a ** np.float32(0.5)
                if self.clip_sample is not None:
                    x0 = np.clip(x0, -self.clip_sample, self.clip_sample)
                x = a_prev ** np.float32(0.5) * x0 + (one - a_prev) ** np.float32(0.5) * out
            else:  # FlowMatchEulerDiscreteScheduler.step
                x = x + (self.sigmas[i + 1] - self.sigmas[i]) * out
        return x.astype(np.float32, copy=False)

    def sample(self, obs_hist: np.ndarray, noise=None) -> np.ndarray:
        """obs_hist [B, To, D] -> actions [B, Tp, A], unnormalized and clipped."""
        x = (self.sample_normalized(obs_hist, noise) - self.act_offset) / self.act_scale
        return np.clip(x, *self.clip)

    # -- the runtime contract --------------------------------------------------------------------
    def observe(self, obs) -> np.ndarray:
        """Push one observation [D] into the history (the first one after `reset` fills it)."""
        x = self._check(obs).reshape(self.obs_dim)
        if self.history is None:
            self.history = np.repeat(x[None], self.obs_horizon, 0)
        else:
            self.history = np.concatenate([self.history[1:], x[None]], 0)
        return x

    def act(self, obs, noise=None) -> ActionChunk:
        """One observation [D]: push it into the history, sample, return the predicted future."""
        self.observe(obs)
        actions = self.sample(self.history[None], noise)[0]
        return ActionChunk(actions[self.obs_horizon - 1:], self.chunk_offsets.copy())

    def act_batch(self, obs, noise=None) -> np.ndarray:
        """obs [B, D], each row its own fresh history (repeated) -> the current action [B, A]."""
        x = self._check(obs)
        hist = np.repeat(x[:, None], self.obs_horizon, 1)
        return self.sample(hist, noise)[:, self.obs_horizon - 1]
