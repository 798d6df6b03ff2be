"""The benchmarks' SB3 adapter reads `BatchedEnv` internals (delay history, observation bias) to
capture terminal observations; a change to those internals must fail here, not mid-benchmark."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.parametrize("task", ["iiwa-reach", "cartpole-swingup"])
def test_sb3_adapter_terminal_observations_match_a_twin(task):
    from sb3_vecenv import check_terminal_obs

    assert check_terminal_obs(task) > 0
