"""The `recurrent` policy kind: an actor with memory, carried through a rollout and cleared at episode
ends (as rsl_rl's ActorCriticRecurrent), then an MLP head to the Gaussian mean. The memory is a GRU
or an LSTM, or (`rnn_type="history"`) the previous `history_length - 1` observations, so that the
MLP head sees a window of the last observations (the explicit history of legged_gym / RMA
students). Either way the memory infers what the robot does not measure (its payload, gains,
delays). The critic stays an MLP on the privileged group, which already holds that (the DR
parameters).

Memory is one tensor `[M, B, H]`: the GRU's `h` (M = layers), the LSTM's `h` and `c` stacked
(M = 2 x layers), or the previous observations (M = history_length - 1, H = observation size;
zeros before an episode's first observation). PPO trains it on whole env trajectories of a rollout (`sequence_mean`, starting
from the memory stored at the rollout's first step, restarting it where an episode starts).

Exported as `policy.onnx`: `(obs [B, D], memory [M, B, H]) -> (actions [B, A], memory_out)`; the
runtime (`robot_rl.runtimes.recurrent`) carries `memory` between calls and zeroes it at `reset()`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from robot_rl.policies.base import ActorCritic, mlp


class RecurrentActorCritic(ActorCritic):
    kind = "recurrent"
    is_recurrent = True

    def __init__(self, num_actor_obs: int, num_critic_obs: int, num_actions: int, cfg):
        super().__init__(num_actor_obs, num_critic_obs, num_actions, cfg)
        if cfg.rnn_type not in ("gru", "lstm", "history"):
            raise ValueError(f"ppo.rnn_type must be gru, lstm or history, got {cfg.rnn_type!r}")
        self.rnn_type = cfg.rnn_type
        if cfg.rnn_type == "history":
            self.layers, self.hidden = int(cfg.history_length) - 1, num_actor_obs
            self.rnn = None
            head_in = int(cfg.history_length) * num_actor_obs
        else:
            self.layers, self.hidden = int(cfg.rnn_layers), int(cfg.rnn_hidden)
            rnn = nn.GRU if cfg.rnn_type == "gru" else nn.LSTM
            self.rnn = rnn(num_actor_obs, self.hidden, self.layers)
            head_in = self.hidden
        self.actor = mlp(head_in, tuple(cfg.actor_hidden), num_actions, cfg.activation)
        with torch.no_grad():
            self.actor[-1].weight.mul_(0.01)
            self.actor[-1].bias.zero_()

    @property
    def memory_rows(self) -> int:
        return self.layers * (2 if self.rnn_type == "lstm" else 1)

    def initial_memory(self, batch: int) -> torch.Tensor:
        return torch.zeros(self.memory_rows, batch, self.hidden, device=self.log_std.device)

    def reset_memory(self, memory, done):
        return memory * (~done).to(memory.dtype).view(1, -1, 1)

    def select_memory(self, memory, env_ids):
        return memory[:, env_ids]

    def _rnn(self, x: torch.Tensor, memory: torch.Tensor):
        """x [T, B, D] -> (out [T, B, H], memory)."""
        if self.rnn_type == "history":  # out: the window [oldest .. current] flattened
            outs = []
            for t in range(x.shape[0]):
                window = torch.cat([memory, x[t : t + 1]], 0)  # [L, B, D]
                outs.append(window.permute(1, 0, 2).reshape(x.shape[1], -1))
                memory = window[1:]
            return torch.stack(outs), memory
        if self.rnn_type == "gru":
            return self.rnn(x, memory.contiguous())
        h, c = memory[: self.layers].contiguous(), memory[self.layers:].contiguous()
        out, (h, c) = self.rnn(x, (h, c))
        return out, torch.cat([h, c], 0)

    def act_step(self, obs, memory):
        out, memory = self._rnn(self.actor_norm(obs).unsqueeze(0), memory)
        return self.actor(out[0]), memory

    def sequence_mean(self, obs, memory0, starts):
        x = self.actor_norm(obs)
        memory, outs = memory0, []
        for t in range(x.shape[0]):
            memory = memory * (~starts[t]).to(memory.dtype).view(1, -1, 1)
            out, memory = self._rnn(x[t : t + 1], memory)
            outs.append(out[0])
        return self.actor(torch.stack(outs))

    def export_onnx(self, out_dir: Path, example_obs: torch.Tensor) -> dict:
        module = _Exported(self).eval()
        memory = self.initial_memory(1).cpu()
        torch.onnx.export(module, (example_obs[:1], memory), str(out_dir / "policy.onnx"),
                          input_names=["obs", "memory"], output_names=["actions", "memory_out"],
                          dynamic_axes={"obs": {0: "batch"}, "memory": {1: "batch"}, "actions": {0: "batch"},
                                        "memory_out": {1: "batch"}},
                          opset_version=17, dynamo=False)
        return {"kind": self.kind, "onnx": "policy.onnx", "inputs": ["obs", "memory"],
                "outputs": ["actions", "memory_out"], "rnn_type": self.rnn_type,
                "memory_shape": [self.memory_rows, self.hidden]}


class _Exported(nn.Module):
    def __init__(self, ac: RecurrentActorCritic):
        super().__init__()
        self.ac = ac

    def forward(self, obs: torch.Tensor, memory: torch.Tensor):
        return self.ac.act_step(obs, memory)
