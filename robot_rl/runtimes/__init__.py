"""Policy runtimes: what runs an exported policy on the robot (numpy + onnxruntime, no torch).

The artifact loader picks the runtime by the kind named in `spec.json` (`robot_rl.policy_kinds`).
Every runtime has the same contract:

* `reset()`: forget internal state (recurrent memory, observation history, queued actions);
  called at start-up and whenever the node re-anchors (state outage, a new episode);
* `act(obs [D]) -> ActionChunk`: one or more actions with their time offsets in seconds from the
  observation's time (a memoryless MLP gives one action at offset 0; a chunked policy gives
  several, which the node executes on schedule);
* `act_batch(obs [B, D]) -> [B, A]`: the first action of each row for a batch of independent
  observations, with no state carried (export parity checks, tests);
* `observe(obs [D])`: the observation of a control step at which no new chunk is asked for (the
  node and the simulator evaluation call it on those steps when a kind overrides it), so a kind
  conditioned on an observation history (diffusion) sees consecutive observations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ActionChunk:
    actions: np.ndarray
    """[k, A] actions in [-1, 1]."""
    offsets_s: np.ndarray
    """[k] when each action is due, in seconds after the observation it was computed from."""


def onnx_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class PolicyRuntime(ABC):
    def __init__(self, path: Path, spec: dict):
        self.path = Path(path)
        self.spec = spec
        self.obs_dim = int(spec["observation"]["dim"])
        self.action_dim = int(spec["action"]["dim"])
        self.period_s = float(spec["control"]["period_s"])

    def _check(self, obs) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        if x.shape[-1] != self.obs_dim:
            raise ValueError(f"observation has {x.shape[-1]} values, the policy expects {self.obs_dim}")
        return x

    @abstractmethod
    def reset(self) -> None: ...

    def observe(self, obs: np.ndarray) -> None:
        """An observation between chunks (no action asked for); memoryless kinds ignore it."""

    @property
    def wants_observations(self) -> bool:
        """Whether `observe` does anything (the node skips building observations otherwise)."""
        return type(self).observe is not PolicyRuntime.observe

    @abstractmethod
    def act(self, obs: np.ndarray) -> ActionChunk: ...

    @abstractmethod
    def act_batch(self, obs: np.ndarray) -> np.ndarray: ...
