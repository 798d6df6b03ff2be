"""The `diffusion` policy kind (Chi et al., "Diffusion Policy"), trained from demonstrations
(`robot_rl.diffusion_train`), not by PPO.

`DiffusionPolicy` conditions a denoiser (`robot_rl.policies.diffusion_net.ConditionalUnet1D`) on
the last `obs_horizon` observations and generates `pred_horizon` actions:

* observations and actions are min-max normalized to [-1, 1] per dimension with stats from the
  training data (`set_normalization`; buffers, so they are saved with the weights and exported);
  a dimension that does not vary maps to 0;
* `objective="ddpm"`: epsilon prediction trained with `diffusers.DDPMScheduler`
  (squaredcos_cap_v2, `num_train_timesteps`), sampled with `diffusers.DDIMScheduler` (eta 0,
  `num_inference_steps`, predicted x0 clipped to [-1, 1] as Chi et al.);
  `objective="flow"`: flow matching (x_s = s * noise + (1 - s) * x0, the model predicts the
  velocity noise - x0 at timestep `s * num_train_timesteps`), sampled with
  `diffusers.FlowMatchEulerDiscreteScheduler`'s Euler steps;
* `sample(obs_hist [B, To, D], noise [B, Tp, A]) -> actions [B, Tp, A]` (unnormalized) runs the
  whole sampling loop batched (many envs at once) under `torch.inference_mode`. The action
  executed with the current observation (the last of the history) is index `obs_horizon - 1`
  (Chi et al.'s obs/action step convention); the chunk a robot runs is `[obs_horizon - 1 :]`.

`EMA` keeps the exponential moving average of the weights as diffusion_policy's `EMAModel`
(decay `1 - (1 + step) ** -power`, clipped to [0, max_value]).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from robot_rl.policies.diffusion_net import ConditionalUnet1D


@dataclass
class DiffusionConfig:
    """A diffusion policy and its training (flat, so every field is a `--flag` with tyro)."""

    obs_horizon: int = 2
    """To: observations the policy is conditioned on (the current one and To - 1 before it)."""
    pred_horizon: int = 16
    """Tp: actions predicted per chunk (divisible by 2 ** (len(down_dims) - 1))."""
    execution_horizon: int = 8
    """Ta: actions executed before the next inference (receding horizon), stored in the artifact."""
    objective: Literal["ddpm", "flow"] = "ddpm"
    """ddpm: epsilon prediction, DDIM sampling; flow: velocity prediction, Euler flow sampling."""
    num_train_timesteps: int = 100
    num_inference_steps: int = 10
    down_dims: tuple[int, ...] = (32, 64)
    """U-Net channels per level (Chi et al.: (256, 512, 1024)), scaled for a CPU robot: 10 denoiser
    calls at batch 1 must fit in 10 ms (benchmarks/diffusion_inference.py). With D=30, A=7 this
    net has 0.36M parameters (~0.4 ms a call on our 2-core machine); (32, 64, 128) has 1.2M
    (~0.9 ms), (64, 128, 256) 4.6M (~2-3 ms)."""
    kernel_size: int = 5
    n_groups: int = 8
    step_embed_dim: int = 64
    # training
    steps: int = 10000
    """On 40 panda-peg-insert demonstrations (seed 0) the base reached 50% after 10,000 steps at 3e-4,
    24% after 3,000 at 1e-4 (Chi et al. train for thousands of epochs; this is ~300)."""
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-6
    warmup_steps: int = 100
    ema_power: float = 0.75
    ema_max: float = 0.9999
    seed: int = 0
    log_interval: int = 100

    def validate(self) -> None:
        if self.obs_horizon < 1:
            raise ValueError(f"obs_horizon must be >= 1, got {self.obs_horizon}")
        if not 1 <= self.execution_horizon <= self.pred_horizon - self.obs_horizon + 1:
            raise ValueError(f"execution_horizon must be in [1, pred_horizon - obs_horizon + 1 = "
                             f"{self.pred_horizon - self.obs_horizon + 1}], got {self.execution_horizon}")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.pred_horizon % factor:
            raise ValueError(f"pred_horizon {self.pred_horizon} must be divisible by {factor} "
                             f"(the U-Net halves it {len(self.down_dims) - 1} times); use e.g. 16")
        if self.objective not in ("ddpm", "flow"):
            raise ValueError(f"objective must be ddpm or flow, got {self.objective!r}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, num_train_timesteps={self.num_train_timesteps}], "
                             f"got {self.num_inference_steps}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["down_dims"] = list(self.down_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DiffusionConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "down_dims" in known:
            known["down_dims"] = tuple(known["down_dims"])
        return cls(**known)


def make_schedulers(cfg: DiffusionConfig):
    """(training noise scheduler, sampling scheduler) from diffusers for `cfg.objective`."""
    from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler

    if cfg.objective == "ddpm":
        common = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                      clip_sample=True, prediction_type="epsilon")
        return DDPMScheduler(**common), DDIMScheduler(**common, set_alpha_to_one=True, steps_offset=0)
    return None, FlowMatchEulerDiscreteScheduler(num_train_timesteps=cfg.num_train_timesteps, shift=1.0)


def minmax_scale(lo: torch.Tensor, hi: torch.Tensor, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset) with `x * scale + offset` mapping [lo, hi] to [-1, 1]; a dimension whose range
    is below `eps` is centred at 0 (diffusion_policy's `LinearNormalizer`, mode 'limits')."""
    rng = hi - lo
    flat = rng < eps
    scale = torch.where(flat, torch.ones_like(rng), 2.0 / torch.where(flat, torch.ones_like(rng), rng))
    offset = torch.where(flat, -lo, -1.0 - scale * lo)
    return scale, offset


class DiffusionPolicy(nn.Module):
    kind = "diffusion"

    def __init__(self, obs_dim: int, action_dim: int, cfg: DiffusionConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DiffusionConfig()
        cfg.validate()
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.net = ConditionalUnet1D(action_dim, cfg.obs_horizon * obs_dim, tuple(cfg.down_dims), cfg.kernel_size,
                                     cfg.n_groups, cfg.step_embed_dim)
        for name, dim in (("obs", obs_dim), ("action", action_dim)):
            self.register_buffer(f"{name}_min", -torch.ones(dim))
            self.register_buffer(f"{name}_max", torch.ones(dim))
        self.train_scheduler, self.scheduler = make_schedulers(cfg)

    # -- normalization -------------------------------------------------------------------------
    @torch.no_grad()
    def set_normalization(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        """Min-max stats of the training data (obs [N, D], actions [N, A])."""
        if obs.shape[-1] != self.obs_dim or actions.shape[-1] != self.action_dim:
            raise ValueError(f"normalization data has obs {obs.shape[-1]} / action {actions.shape[-1]} dims, "
                             f"the policy has {self.obs_dim} / {self.action_dim}")
        self.obs_min.copy_(obs.amin(0))
        self.obs_max.copy_(obs.amax(0))
        self.action_min.copy_(actions.amin(0))
        self.action_max.copy_(actions.amax(0))

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        scale, offset = minmax_scale(self.obs_min, self.obs_max)
        return obs * scale + offset

    def normalize_action(self, a: torch.Tensor) -> torch.Tensor:
        scale, offset = minmax_scale(self.action_min, self.action_max)
        return a * scale + offset

    def unnormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        scale, offset = minmax_scale(self.action_min, self.action_max)
        return (a - offset) / scale

    def normalization_dict(self) -> dict:
        """The stats as lists (for `spec["policy"]["normalization"]`)."""
        return {k: getattr(self, k).tolist() for k in ("obs_min", "obs_max", "action_min", "action_max")}

    # -- training ------------------------------------------------------------------------------
    def loss(self, obs_hist: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None):
        """Denoising loss of a batch of windows: obs_hist [B, To, D], actions [B, Tp, A] (raw)."""
        x0 = self.normalize_action(actions)
        cond = self.normalize_obs(obs_hist).flatten(1)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        b = x0.shape[0]
        if self.cfg.objective == "ddpm":
            t = torch.randint(0, self.cfg.num_train_timesteps, (b,), generator=generator, device=x0.device)
            noisy = self.train_scheduler.add_noise(x0, noise, t)
            target = noise
        else:
            s = torch.rand(b, generator=generator, device=x0.device)
            noisy = s.view(b, 1, 1) * noise + (1 - s.view(b, 1, 1)) * x0
            t = s * self.cfg.num_train_timesteps
            target = noise - x0
        return nn.functional.mse_loss(self.net(noisy, t.to(torch.float32), cond), target)

    # -- sampling ------------------------------------------------------------------------------
    def sampler_timesteps(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(timesteps the scheduler visits, the flow scheduler's sigmas or None) for the chosen
        step count (`set_timesteps` also resets the flow scheduler's step index)."""
        self.scheduler.set_timesteps(self.cfg.num_inference_steps)
        return self.scheduler.timesteps, getattr(self.scheduler, "sigmas", None)

    @torch.inference_mode()
    def sample_normalized(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """cond [B, To * D] (normalized obs, flattened), noise [B, Tp, A] -> normalized actions."""
        timesteps, _ = self.sampler_timesteps()
        x = noise.to(torch.float32)
        b = x.shape[0]
        for t in timesteps:
            out = self.net(x, t.to(torch.float32).expand(b), cond)
            x = self.scheduler.step(out, t, x).prev_sample
        return x

    @torch.inference_mode()
    def sample(self, obs_hist: torch.Tensor, noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """obs_hist [B, To, D] (raw), noise [B, Tp, A] (drawn when None) -> actions [B, Tp, A] (raw)."""
        b, to, d = obs_hist.shape
        if to != self.cfg.obs_horizon or d != self.obs_dim:
            raise ValueError(f"obs_hist must be [B, {self.cfg.obs_horizon}, {self.obs_dim}], got {list(obs_hist.shape)}")
        if noise is None:
            noise = torch.randn((b, self.cfg.pred_horizon, self.action_dim), generator=generator,
                                device=obs_hist.device)
        cond = self.normalize_obs(obs_hist).flatten(1)
        return self.unnormalize_action(self.sample_normalized(cond, noise))

    def chunk(self, actions: torch.Tensor) -> torch.Tensor:
        """The part of a predicted horizon that lies ahead: [B, Tp, A] -> [B, Tp - To + 1, A]."""
        return actions[:, self.cfg.obs_horizon - 1:]


class EMA:
    """Exponential moving average of a model's weights (diffusion_policy's `EMAModel`, inv_gamma 1):
    decay(step) = clip(1 - (1 + step) ** -power, 0, max_value), 0 at the first update; buffers
    (normalization stats) are copied."""

    def __init__(self, model: nn.Module, power: float = 0.75, max_value: float = 0.9999):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power, self.max_value = power, max_value
        self.step_count = 0
        self.decay = 0.0

    def get_decay(self, step: int) -> float:
        step = max(0, step - 1)
        if step <= 0:
            return 0.0
        return max(0.0, min(1 - (1 + step) ** -self.power, self.max_value))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.decay = self.get_decay(self.step_count)
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.step_count += 1
