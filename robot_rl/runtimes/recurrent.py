"""Runtime of the `recurrent` kind: `policy.onnx` maps (observation, memory) to (action, memory);
the runtime carries the memory between calls and zeroes it at `reset()` (an episode start)."""

from __future__ import annotations

import numpy as np

from robot_rl.runtimes import ActionChunk, PolicyRuntime, onnx_session


class RecurrentRuntime(PolicyRuntime):
    def __init__(self, path, spec):
        super().__init__(path, spec)
        self.session = onnx_session(self.path / spec["policy"]["onnx"])
        self.memory_shape = tuple(int(v) for v in spec["policy"]["memory_shape"])
        self._zero = np.zeros(1)
        self.reset()

    def reset(self) -> None:
        rows, hidden = self.memory_shape
        self.memory = np.zeros((rows, 1, hidden), dtype=np.float32)

    def act(self, obs):
        actions, self.memory = self.session.run(None, {"obs": self._check(obs)[None], "memory": self.memory})
        return ActionChunk(actions[:1], self._zero)

    def act_batch(self, obs):
        x = self._check(obs)
        rows, hidden = self.memory_shape
        zeros = np.zeros((rows, x.shape[0], hidden), dtype=np.float32)
        return self.session.run(None, {"obs": x, "memory": zeros})[0]
