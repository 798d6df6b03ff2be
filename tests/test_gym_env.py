"""The Gymnasium adapter: passes Gymnasium's and SB3's env checkers, runs the same task as the
batched env step for step, and returns terminal observations instead of resetting itself."""

import gymnasium
import numpy as np
import pytest
import torch

from robot_rl.sim import make_env
from robot_rl.sim.gym_env import GymEnv


@pytest.mark.parametrize("task", ["iiwa-reach", "cartpole-swingup"])
def test_passes_gymnasium_and_sb3_env_checkers(task):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(GymEnv(task), skip_render_check=True)
    sb3_check_env(GymEnv(task), warn=True)
    env = gymnasium.make(f"robot_rl/{task}-v0", dr="eval")
    obs, info = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    assert set(info) == {"critic", "dr"}


def test_same_trajectory_as_the_batched_env_and_terminal_observation_at_time_out():
    gym = GymEnv("iiwa-reach", dr="train", seed=5)
    ref = make_env("iiwa-reach", 1, dr="train", seed=5, nthread=1)
    obs, _ = gym.reset()
    ref_obs = ref.reset()
    np.testing.assert_array_equal(obs, ref_obs["policy"][0].numpy())
    gen = torch.Generator().manual_seed(0)
    for t in range(ref.max_episode_length):
        a = torch.rand(1, 7, generator=gen) * 2 - 1
        obs, r, term, trunc, info = gym.step(a[0].numpy())
        ref_obs, ref_r, ref_term, ref_trunc, ref_info = ref.step(a)
        assert r == pytest.approx(float(ref_r[0]), abs=0.0)
        assert (term, trunc) == (bool(ref_term[0]), bool(ref_trunc[0]))
        if t < ref.max_episode_length - 1:
            np.testing.assert_array_equal(obs, ref_obs["policy"][0].numpy())
            assert "is_success" not in info
    # time-out: the batched env reset itself and returned the next episode's first observation;
    # the Gymnasium env returns the terminal observation and waits for reset()
    assert trunc and not term and "is_success" in info
    assert info["is_success"] == bool(ref_info["episode"]["success"][0] > 0.5)
    assert not np.array_equal(obs, ref_obs["policy"][0].numpy())
    assert int(gym.env.episode_length[0]) == ref.max_episode_length
    gym.reset()
    assert int(gym.env.episode_length[0]) == 0


def test_reset_seed_reproduces_the_episode():
    env = GymEnv("cartpole-swingup")
    a, _ = env.reset(seed=11)
    env.step(env.action_space.sample())
    b, _ = env.reset(seed=11)
    np.testing.assert_array_equal(a, b)
