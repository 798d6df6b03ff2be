"""The batched-environment contract: shapes, groups, auto-reset, time-outs vs terminations."""

import numpy as np
import pytest
import torch

from robot_rl.sim import make_env
from robot_rl.sim import randomization as R


@pytest.mark.parametrize("task", ["iiwa-reach", "cartpole-swingup"])
def test_shapes_and_groups(task):
    env = make_env(task, 8, dr="train", seed=0, nthread=2)
    obs = env.reset()
    assert set(obs) == {"policy", "critic"}
    assert obs["policy"].shape == (8, env.num_obs["policy"])
    assert obs["critic"].shape == (8, env.num_obs["critic"])
    assert obs["critic"].shape[1] >= obs["policy"].shape[1] + len(R.PARAM_NAMES)
    obs, rew, term, trunc, info = env.step(torch.zeros(8, env.num_actions))
    for t in (rew, term, trunc):
        assert t.shape == (8,)
    assert term.dtype == torch.bool and trunc.dtype == torch.bool
    assert info["time_outs"] is trunc
    assert set(info["dr"]) == set(R.PARAM_NAMES)
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(rew).all()
    # the critic group carries the sampled DR parameters
    dr = torch.stack([info["dr"][k] for k in R.PARAM_NAMES], 1)
    assert torch.allclose(obs["critic"][:, -len(R.PARAM_NAMES):], dr)


def test_time_out_is_truncation_not_termination_and_auto_resets():
    env = make_env("iiwa-reach", 4, dr="off", seed=0, nthread=1)
    env.reset()
    a = torch.zeros(4, env.num_actions)
    for step in range(env.max_episode_length):
        obs, rew, term, trunc, info = env.step(a)
        if step < env.max_episode_length - 1:
            assert not trunc.any() and not term.any()
    assert trunc.all() and not term.any()
    assert info["episode"]["length"].tolist() == [env.max_episode_length] * 4
    assert (env.episode_length == 0).all(), "finished envs must be reset inside step"
    # the returned observation is the first one of the new episode: near the default pose
    joint_pos = obs["policy"][:, :7]
    assert joint_pos.abs().max() <= env.task.reset_joint_noise + 1e-4


def test_termination_is_not_truncation():
    from dataclasses import dataclass

    from tests.toy_task import ToyReach

    @dataclass
    class ToyWithFailure(ToyReach):
        """Toy reach where passing x = 0.3 is a failure that ends the episode."""

        def terminated(self, env):
            return env.joint_pos[:, 0] > 0.3

    env = make_env(ToyWithFailure(), 4, dr="off", seed=0, nthread=1)
    env.reset()
    push_right = torch.ones(4, 1)
    seen = False
    for _ in range(env.max_episode_length):
        _, _, term, trunc, info = env.step(push_right)
        assert not (term & trunc).any()
        if term.any():
            seen = True
            assert not trunc[term].any()
            assert (info["episode"]["length"] < env.max_episode_length).all()
            assert (env.episode_length[term] == 0).all(), "terminated envs reset inside step"
            break
    assert seen, "crossing the failure line must terminate the episode"


def test_decimation_and_control_period():
    env = make_env("iiwa-reach", 2, dr="off", nthread=1)
    env.reset()
    t0 = env.sim.state[0, env.sim.offsets["time"]].copy()
    env.step(torch.zeros(2, 7))
    t1 = env.sim.state[0, env.sim.offsets["time"]]
    assert np.allclose(t1 - t0, env.task.decimation * env.physics_dt)
    assert env.control_dt == pytest.approx(0.02)


def test_same_seed_same_rollout():
    def rollout(seed):
        env = make_env("iiwa-reach", 6, dr="train", seed=seed, nthread=2)
        obs = [env.reset()["policy"]]
        g = torch.Generator().manual_seed(3)
        for _ in range(30):
            o, r, *_ = env.step(torch.rand(6, 7, generator=g) * 2 - 1)
            obs.append(o["policy"])
        return torch.stack(obs)

    a, b, c = rollout(5), rollout(5), rollout(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_action_moves_joint_targets():
    env = make_env("iiwa-reach", 2, dr="off", nthread=1)
    env.reset()
    q0 = env.joint_pos.clone()
    a = torch.zeros(2, 7)
    a[0, 3] = 1.0
    for _ in range(10):
        env.step(a)
    dq = env.joint_pos - q0
    assert dq[0, 3] > 0.25 and dq[1].abs().max() < 0.02


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        make_env("iiwa-reach", 0)
    with pytest.raises(ValueError, match="unknown task"):
        make_env("no-such-task", 2)
    with pytest.raises(ValueError, match="unknown backend"):
        make_env("iiwa-reach", 2, backend="gazebo")
    with pytest.raises(ValueError, match="unknown DR mode"):
        make_env("iiwa-reach", 2, dr="wide")
    env = make_env("iiwa-reach", 2, dr="off", nthread=1)
    env.reset()
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2, 3))


def test_observed_joint_state_and_sensors_are_one_snapshot():
    """The ee frame (a sensor) must be the forward kinematics of the observed joint positions, as a
    deployed node computes it; MuJoCo's sensors lag the post-step state by one physics step."""
    import mujoco

    env = make_env("iiwa-reach", 3, dr="train", seed=2, nthread=1)
    env.reset()
    d = mujoco.MjData(env.model)
    for _ in range(7):
        env.step(torch.full((3, 7), 0.7))
        for i in range(3):
            d.qpos[:] = env.sim.qpos[i].numpy()
            mujoco.mj_kinematics(env.model, d)
            assert np.allclose(d.site("ee").xpos, env.sim.frame_pos("ee")[i].numpy(), atol=1e-6)


def test_nan_state_resets_that_env_counts_it_and_stepping_goes_on():
    env = make_env("iiwa-reach", 4, dr="off", seed=0, nthread=1)
    env.reset()
    a = torch.zeros(4, env.num_actions)
    env.step(a)
    env.sim.state[2, env.sim.offsets["qvel"]] = np.nan  # a physics blow-up in env 2
    obs, rew, term, trunc, info = env.step(a)
    assert info["nan_resets"] == 1 and env.nan_resets == 1
    assert term[2] and not term[[0, 1, 3]].any(), "the blown-up transition ends as terminated"
    assert rew[2] == 0.0 and torch.isfinite(rew).all()
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(obs["critic"]).all()
    assert env.episode_length[2] == 0, "that env starts a new episode"
    for _ in range(5):
        obs, rew, term, trunc, info = env.step(a)
    assert info["nan_resets"] == 0 and torch.isfinite(env.sim.qvel).all()


def test_unknown_robot_backend_or_device_are_one_clear_line():
    from robot_rl.robots import get_robot
    from robot_rl.sim.env import check_device

    with pytest.raises(ValueError, match="unknown robot 'ur5'; registered robots: cartpole, iiwa14, panda"):
        get_robot("ur5")
    with pytest.raises(ValueError, match="unknown backend 'gazebo'; available backends: mujoco, warp, pybullet"):
        make_env("iiwa-reach", 2, backend="gazebo")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            check_device("cuda")
    with pytest.raises(ValueError, match="use cpu or cuda"):
        check_device("tpu")
