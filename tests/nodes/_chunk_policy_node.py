"""The policy node with a fake chunked policy kind registered (for tests/nodes/test_chunk_node.py).

    python tests/nodes/_chunk_policy_node.py --ros-args -p artifact:=... (a `fake-chunk` artifact)

`SlowChunkRuntime` sleeps ``spec["policy"]["sleep_s"]`` per `act` (a slow diffusion sampler) and
returns ``length`` actions at offsets k * period_s whose values say which chunk and which index
they are: action[0] = 0.01 * chunk number, action[1] = 0.05 * index, the rest 0.
"""

import sys
import time

import numpy as np

from robot_rl.policy_kinds import PolicyKind, register_policy_kind
from robot_rl.runtimes import ActionChunk, PolicyRuntime


class SlowChunkRuntime(PolicyRuntime):
    def __init__(self, path, spec):
        super().__init__(path, spec)
        self.sleep_s = float(spec["policy"]["sleep_s"])
        self.length = int(spec["policy"]["length"])
        self.calls = 0

    def reset(self) -> None:
        pass

    def act(self, obs):
        self._check(obs)
        time.sleep(self.sleep_s)
        a = np.zeros((self.length, self.action_dim), dtype=np.float32)
        a[:, 0] = 0.01 * self.calls
        a[:, 1] = 0.05 * np.arange(self.length)
        self.calls += 1
        return ActionChunk(a, np.arange(self.length) * self.period_s)

    def act_batch(self, obs):
        return np.zeros((self._check(obs).shape[0], self.action_dim), dtype=np.float32)


register_policy_kind(PolicyKind("fake-chunk", "unused:Unused", "__main__:SlowChunkRuntime",
                                "test stand-in for a slow chunked policy"))

if __name__ == "__main__":
    from robot_rl.nodes.policy import main

    sys.exit(main(sys.argv[1:]))
