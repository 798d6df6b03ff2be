"""`robot-rl record`: a task's scripted expert and an exported policy as experts, frames aligned
(observation, action, joint positions of the same step), only successful episodes kept, resume,
and the bad inputs (no expert, NaN or out-of-range expert actions, an expert of another task)."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tests.toy_task import ToyReach
from robot_rl.cli import main as cli_main
from robot_rl.datasets import DatasetError, Expect, load_dataset, load_training_arrays
from robot_rl.record import RecordConfig, record
from robot_rl.sim.tasks import register


class ReachExpert:
    """Drives the slider to the target (position action: q = 0.5 * a), with seeded noise; optionally
    emits `bad` as its action from episode `bad_after` on."""

    def __init__(self, seed: int, bad=None, bad_after: int = 0):
        self.gen = torch.Generator().manual_seed(seed)
        self.bad, self.bad_after, self.episodes = bad, bad_after, 0

    def reset(self, env, ids):
        self.episodes += len(ids)

    def act(self, env, obs):
        a = (env.task.target / 0.5).clamp(-1, 1)
        a = (a + 0.02 * torch.randn(a.shape, generator=self.gen)).clamp(-1, 1)
        if self.bad is not None and self.episodes > self.bad_after:
            a[:] = self.bad
        return a


@dataclass
class ToyReachExpert(ToyReach):
    name: str = "toy-reach-expert"

    def expert(self, env, seed):
        return ReachExpert(seed)


@dataclass
class ToyReachNaNExpert(ToyReach):
    name: str = "toy-reach-nan-expert"
    bad: float = float("nan")

    def expert(self, env, seed):
        return ReachExpert(seed, bad=self.bad, bad_after=6)


@dataclass
class ToyReachWildExpert(ToyReachNaNExpert):
    name: str = "toy-reach-wild-expert"
    bad: float = 1.5


register("toy-reach-expert", ToyReachExpert)
register("toy-reach-nan-expert", ToyReachNaNExpert)
register("toy-reach-wild-expert", ToyReachWildExpert)


def cfg(tmp_path, **kw):
    base = dict(task="toy-reach-expert", demos=5, out=str(tmp_path / "demos"), num_envs=3, seed=0, dr="off")
    return RecordConfig(**{**base, **kw})


def test_scripted_expert_records_aligned_successful_demos(tmp_path):
    r = record(cfg(tmp_path), log=lambda s: None)
    assert r.saved == 5 and r.attempts >= 5
    ds = load_dataset(r.root, expect=Expect(features=["observation.state", "action", "observation.joint_pos"],
                                            robot="toy-slider", joint_names=["x"], task="toy-reach-expert"))
    assert ds.num_episodes == 5 and ds.info["fps"] == 50 and ds.success().tolist() == [1] * 5
    info = ds.info["robot_rl"]
    assert [t["name"] for t in info["observation_terms"]] == ["error", "vel"]
    assert ds.features["observation.state"]["names"] == ["error", "vel"]
    assert ds.features["observation.joint_pos"]["names"] == ["x"] and ds.tasks == ["toy-reach-expert"]
    for i in range(5):
        ep = ds.episode(i)
        assert len(ep["index"]) == 20  # 0.4 s at 50 Hz: every step of the episode, one frame each
        # same step: the observed error is target - joint_pos, the expert aimed at the target
        target = ep["observation.state"][:, 0] + ep["observation.joint_pos"]  # shape (1,): a scalar column, [T]
        np.testing.assert_allclose(target, target[0], atol=1e-5)  # one target per episode
        np.testing.assert_allclose(ep["action"], np.clip(target / 0.5, -1, 1), atol=0.1)
        assert abs(ep["observation.state"][-1, 0]) < 0.1  # the saved episode did succeed
    ds.verify_stats()
    # resume: 3 more continue the indices
    r2 = record(cfg(tmp_path, demos=3, seed=1), log=lambda s: None)
    arr = load_training_arrays(r2.root)
    assert r2.first_episode == 5 and arr["episode_index"].max() == 7
    np.testing.assert_array_equal(np.diff(arr["index"]), 1)


def test_artifact_expert_and_cli(tmp_path, capsys):
    from robot_rl.artifact import PolicyArtifact
    from robot_rl.config import EnvConfig, PPOConfig, TrainConfig
    from robot_rl.export import export
    from robot_rl.train import train

    t = train(TrainConfig(env=EnvConfig(task="toy-reach", num_envs=8, nthread=1), ppo=PPOConfig(num_steps_per_env=8),
                          max_iterations=1, log_root=str(tmp_path / "runs"), run_name="toy", progress=False,
                          eval_interval=0))
    art = export(t.checkpoint, tmp_path / "artifact")
    out = tmp_path / "from_policy"
    rc = cli_main(["record", "--expert", str(art), "--demos", "4", "--out", str(out), "--num-envs", "2",
                   "--no-only-successful"])
    assert rc == 0 and "recorded 4 episodes" in capsys.readouterr().out
    arr = load_training_arrays(out, expect=Expect(task="toy-reach"))
    assert arr["observation.state"].shape == (80, 2) and np.abs(arr["action"]).max() <= 1.0
    runtime = PolicyArtifact.load(art)
    np.testing.assert_allclose(arr["action"], np.clip(runtime.act_batch(arr["observation.state"]), -1, 1), atol=1e-5)
    # an expert trained on another task than the one named
    rc = cli_main(["record", "toy-reach-expert", "--expert", str(art), "--out", str(tmp_path / "x")])
    assert rc == 2 and "was trained on task toy-reach, not toy-reach-expert" in capsys.readouterr().err


def test_bad_experts_stop_with_one_line_and_keep_saved_episodes(tmp_path, capsys):
    with pytest.raises(ValueError, match="task toy-reach has no scripted expert; record with --expert ARTIFACT_DIR"):
        record(cfg(tmp_path, task="toy-reach"))
    for task, msg in (("toy-reach-nan-expert", "NaN or Inf"), ("toy-reach-wild-expert", r"outside \[-1, 1\]")):
        out = tmp_path / task
        with pytest.raises(DatasetError, match=msg):
            record(cfg(tmp_path, task=task, out=str(out), demos=20, only_successful=False), log=lambda s: None)
        ds = load_dataset(out)
        assert ds.num_episodes == 6  # the episodes finished before the expert went bad are all there
        assert np.isfinite(load_training_arrays(out)["action"]).all()
    rc = cli_main(["record", "toy-reach-nan-expert", "--out", str(tmp_path / "cli"), "--demos", "20",
                   "--num-envs", "3", "--dr", "off", "--no-only-successful"])
    err = capsys.readouterr().err
    assert rc == 2 and "NaN or Inf" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["record", "no-such-task"]) == 2
