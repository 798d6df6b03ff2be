"""The denoiser of the `diffusion` kind: a conditional 1-D temporal U-Net with FiLM conditioning
(Chi et al., "Diffusion Policy", `ConditionalUnet1D` with `cond_predict_scale=True`; our own
implementation, diffusers has no FiLM-conditioned 1-D U-Net).

`ConditionalUnet1D(sample [B, T, A], timestep [B], cond [B, C]) -> [B, T, A]`:

* the diffusion step (a float: a DDPM step index, or `sigma * num_train_timesteps` for flow
  matching) goes through a sinusoidal embedding and an MLP; concatenated with the global condition
  (the flattened, normalized observation history) it is the FiLM input of every residual block;
* each residual block is Conv1d -> GroupNorm -> Mish twice, the first block's output modulated
  per channel as `scale * h + bias` (FiLM, both predicted from the condition), plus a 1x1
  residual projection;
* down path: per level two residual blocks and a stride-2 conv (none at the last level), two mid
  blocks, up path with skip connections (concatenated) and transposed-conv upsampling, a final
  Conv1dBlock and a 1x1 conv back to the action size. `T` must be divisible by
  `2 ** (len(down_dims) - 1)`.

Everything here exports to standard ONNX (opset 17) without custom ops.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    """`t [B] -> [B, dim]`: sin/cos of `t` at geometrically spaced frequencies (transformer style)."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        x = t.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat([x.sin(), x.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish, length preserved."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int):
        super().__init__(nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(n_groups, c_out), nn.Mish())


class ConditionalResidualBlock1D(nn.Module):
    """Two Conv1dBlocks; FiLM (per-channel scale and bias, a Linear of `Mish(cond)`) between them;
    residual. `cond` arrives already through Mish (computed once per forward for every block,
    the same as Chi et al.'s per-block `Sequential(Mish, Linear)`)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel_size, n_groups)
        self.block2 = Conv1dBlock(c_out, c_out, kernel_size, n_groups)
        self.film = nn.Linear(cond_dim, 2 * c_out)
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.c_out = c_out

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, T], cond [B, cond_dim] (after Mish) -> [B, C_out, T]."""
        h = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).split(self.c_out, dim=1)
        h = self.block2(scale * h + bias)
        return h + self.residual(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, action_dim: int, cond_dim: int, down_dims: tuple[int, ...] = (32, 64),
                 kernel_size: int = 5, n_groups: int = 8, step_embed_dim: int = 64):
        super().__init__()
        if any(d % n_groups for d in down_dims):
            raise ValueError(f"every down_dims entry must be divisible by n_groups={n_groups}, got {tuple(down_dims)}")
        self.action_dim, self.cond_dim = action_dim, cond_dim
        self.levels = len(down_dims)
        self.step_encoder = nn.Sequential(SinusoidalPosEmb(step_embed_dim), nn.Linear(step_embed_dim, 4 * step_embed_dim),
                                          nn.Mish(), nn.Linear(4 * step_embed_dim, step_embed_dim))
        film_dim = step_embed_dim + cond_dim
        dims = [action_dim, *down_dims]
        pairs = list(zip(dims[:-1], dims[1:]))

        def block(i, o):
            return ConditionalResidualBlock1D(i, o, film_dim, kernel_size, n_groups)

        self.down = nn.ModuleList()
        for k, (i, o) in enumerate(pairs):
            last = k == len(pairs) - 1
            self.down.append(nn.ModuleList([block(i, o), block(o, o),
                                            nn.Identity() if last else nn.Conv1d(o, o, 3, 2, 1)]))
        self.mid = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.up = nn.ModuleList()
        for i, o in reversed(pairs[1:]):  # skip channels concatenated: 2 * o in
            self.up.append(nn.ModuleList([block(2 * o, i), block(i, i), nn.ConvTranspose1d(i, i, 4, 2, 1)]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                                   nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """sample [B, T, A], timestep [B] (float or int), cond [B, cond_dim] -> [B, T, A]."""
        film = nn.functional.mish(torch.cat([self.step_encoder(timestep.expand(sample.shape[0])), cond], dim=-1))
        x = sample.transpose(1, 2)
        skips = []
        for res1, res2, downsample in self.down:
            x = res2(res1(x, film), film)
            skips.append(x)
            x = downsample(x)
        for res in self.mid:
            x = res(x, film)
        for res1, res2, upsample in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = upsample(res2(res1(x, film), film))
        return self.final(x).transpose(1, 2)
