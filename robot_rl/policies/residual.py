"""The `residual` policy kind: a per-step Gaussian MLP correction on top of a frozen diffusion base
(ResiP). It reads [observation, base action] (`robot_rl.residual.ResidualEnv`), its last layer is
zero-initialised so that base + residual == base when training starts, and PPO trains it with a
privileged critic ([critic observation, base action]).

Exported with its base as one artifact (`robot_rl.residual_export`): `denoiser.onnx` (the base)
and `residual.onnx` (`obs [B, D + A] -> residual [B, A]`, normalization inside).
"""

from __future__ import annotations

import torch

from robot_rl.policies.mlp import MlpActorCritic


class ResidualActorCritic(MlpActorCritic):
    kind = "residual"

    def __init__(self, num_actor_obs: int, num_critic_obs: int, num_actions: int, cfg):
        super().__init__(num_actor_obs, num_critic_obs, num_actions, cfg)
        with torch.no_grad():  # the residual starts at exactly zero
            self.actor[-1].weight.zero_()
            self.actor[-1].bias.zero_()
