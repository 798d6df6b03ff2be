"""Runtime of the `mlp` kind: `policy.onnx` maps an observation to one action, no state."""

from __future__ import annotations

import numpy as np

from robot_rl.runtimes import ActionChunk, PolicyRuntime, onnx_session


class MlpRuntime(PolicyRuntime):
    def __init__(self, path, spec):
        super().__init__(path, spec)
        self.session = onnx_session(self.path / spec["policy"]["onnx"])
        self._zero = np.zeros(1)

    def reset(self) -> None:
        pass

    def act_batch(self, obs):
        return self.session.run(None, {"obs": self._check(obs)})[0]

    def act(self, obs):
        return ActionChunk(self.act_batch(self._check(obs)[None])[:1], self._zero)
