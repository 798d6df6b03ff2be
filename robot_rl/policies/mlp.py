"""The `mlp` policy kind: a Gaussian MLP actor on the `policy` group (as rsl_rl's ActorCritic).

Exported as `policy.onnx`: `obs [B, D] -> actions [B, A]`, observation normalization inside.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from robot_rl.policies.base import ActorCritic, mlp


class MlpActorCritic(ActorCritic):
    kind = "mlp"

    def __init__(self, num_actor_obs: int, num_critic_obs: int, num_actions: int, cfg):
        super().__init__(num_actor_obs, num_critic_obs, num_actions, cfg)
        self.actor = mlp(num_actor_obs, tuple(cfg.actor_hidden), num_actions, cfg.activation)
        with torch.no_grad():  # small last layer: actions start near the default pose
            self.actor[-1].weight.mul_(0.01)
            self.actor[-1].bias.zero_()

    def action_mean(self, actor_obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.actor_norm(actor_obs))

    def act_step(self, obs, memory):
        return self.action_mean(obs), None

    def export_onnx(self, out_dir: Path, example_obs: torch.Tensor) -> dict:
        module = _Exported(self).eval()
        torch.onnx.export(module, (example_obs[:1],), str(out_dir / "policy.onnx"), input_names=["obs"],
                          output_names=["actions"], dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}},
                          opset_version=17, dynamo=False)
        return {"kind": self.kind, "onnx": "policy.onnx", "inputs": ["obs"], "outputs": ["actions"]}


class _Exported(nn.Module):
    """normalization + actor mean, `obs [B, D] -> actions [B, A]`."""

    def __init__(self, ac: MlpActorCritic):
        super().__init__()
        self.norm = ac.actor_norm
        self.actor = ac.actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.norm(obs))
