"""Exported artifacts evaluated zero-shot on any simulator (`robot_rl.evaluate_artifact`), the
cross-simulator report (`robot_rl.cross_sim`) and their command lines."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from robot_rl import cli
from robot_rl.artifact import PolicyArtifact
from robot_rl.config import EnvConfig, PPOConfig, TrainConfig
from robot_rl.cross_sim import cross_sim_report
from robot_rl.evaluate_artifact import ArtifactPolicy, evaluate_artifact
from robot_rl.export import export
from robot_rl.train import train

pytest.importorskip("pybullet")

EPISODES = 3


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    root = tmp_path_factory.mktemp("xsim")
    cfg = TrainConfig(env=EnvConfig(task="iiwa-reach", num_envs=32, nthread=1),
                      ppo=PPOConfig(num_steps_per_env=8), max_iterations=2, log_root=str(root),
                      run_name="iiwa", progress=False, eval_interval=0)
    r = train(cfg)
    return export(r.checkpoint, root / "artifact")


def test_artifact_evaluation_reports_like_evaluate(artifact):
    r = evaluate_artifact(artifact, EPISODES, dr="eval", seed=3, backend="pybullet")
    for key in ("task", "dr", "episodes", "seed", "mean_return", "std_return", "success_rate",
                "mean_episode_length", "episode_length_s", "per_episode"):
        assert key in r
    assert r["backend"] == "pybullet" and r["task"] == "iiwa-reach" and r["kind"] == "mlp"
    assert "cannot move a centre of mass" in r["dr_note"]  # the eval range places the payload; pybullet cannot
    assert len(r["per_episode"]["return"]) == EPISODES
    assert r["mean_episode_length"] == 300  # 6 s at 50 Hz, every episode runs to its time-out
    assert np.isfinite(r["per_episode"]["return"]).all()


def test_cross_sim_report_writes_json_and_png(artifact, tmp_path):
    r = cross_sim_report(artifact, ("mujoco", "pybullet"), episodes=EPISODES, dr="off", seed=0, out_dir=tmp_path)
    data = json.loads((tmp_path / "cross_sim.json").read_text())
    assert list(data["simulators"]) == ["mujoco", "pybullet"] and data["reference"] == "mujoco"
    for s in data["simulators"].values():
        assert 0.0 <= s["success_rate"] <= 1.0 and np.isfinite(s["mean_return"])
    returns = [s["mean_return"] for s in data["simulators"].values()]
    assert data["spread"]["mean_return"] == pytest.approx(max(returns) - min(returns))
    assert data["gap_to_reference"]["mujoco"] == {"success_rate": 0.0, "mean_return": 0.0}
    assert len(data["per_episode"]["pybullet"]["return"]) == EPISODES
    png = (tmp_path / "cross_sim.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert r["png"] == str(tmp_path / "cross_sim.png")
    # the same seed gives both simulators the same episodes: the first observations agree
    # (mujoco and pybullet start from the same state), so returns differ by the physics only
    assert abs(returns[0] - returns[1]) < 0.5 * max(1.0, abs(returns[0]))


class _Chunked:
    """A stand-in runtime with memory and two-action chunks (offsets 0 and one period)."""

    def __init__(self, period):
        self.period, self.calls, self.resets = period, 0, 0

    def reset(self):
        self.resets += 1

    def act(self, obs):
        from robot_rl.runtimes import ActionChunk

        self.calls += 1
        return ActionChunk(np.stack([np.full(2, self.calls), np.full(2, -self.calls)]).astype(np.float32),
                           np.array([0.0, self.period]))


def test_stateful_kinds_get_one_runtime_per_env_and_run_chunks_on_schedule(artifact):
    art = PolicyArtifact.load(artifact)
    policy = ArtifactPolicy.__new__(ArtifactPolicy)
    policy.artifact, policy.num_envs, policy.stateless, policy.period_s = art, 2, False, 0.02
    policy.runtimes = [_Chunked(0.02), _Chunked(0.02)]
    policy.queues, policy.step_count, policy.horizon, policy.observes = [[], []], 0, None, False
    obs = torch.zeros(2, art.obs_dim)
    first, second = policy(obs), policy(obs)
    assert first[:, 0].tolist() == [1.0, 1.0] and second[:, 0].tolist() == [-1.0, -1.0]  # the chunk's 2nd action
    policy.reset(torch.tensor([False, True]))  # env 1 starts a new episode
    assert policy.runtimes[1].resets == 1 and policy.runtimes[0].resets == 0
    third = policy(obs)
    assert third[:, 0].tolist() == [2.0, 2.0] and policy.runtimes[0].calls == 2


def test_eval_artifact_on_pybullet_prints_one_line(artifact, tmp_path, capsys):
    report = tmp_path / "r.json"
    rc = cli.main(["eval", "--artifact", str(artifact), "--env.backend", "pybullet", "--episodes", "2",
                   "--dr", "off", "--report", str(report)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    lines = [ln for ln in out.out.splitlines() if ln.strip()]
    assert len(lines) == 1 and "iiwa-reach on pybullet dr=off: success" in lines[0]
    assert json.loads(report.read_text())["backend"] == "pybullet"


def test_cross_sim_command_prints_one_line_per_simulator(artifact, tmp_path, capsys):
    rc = cli.main(["cross-sim", "--artifact", str(artifact), "--backends", "mujoco", "pybullet",
                   "--episodes", "2", "--out", str(tmp_path / "x")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    lines = [ln for ln in out.out.splitlines() if ln.strip()]
    assert [ln.split()[2] for ln in lines[:2]] == ["mujoco", "pybullet"] and lines[2].startswith("report:")
    assert (tmp_path / "x" / "cross_sim.json").is_file() and (tmp_path / "x" / "cross_sim.png").is_file()


def test_a_missing_simulator_package_is_one_clear_line(artifact, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pybullet", None)  # as if pybullet were not installed
    monkeypatch.delitem(sys.modules, "robot_rl.sim.pybullet_backend", raising=False)
    for args in (["eval", "--artifact", str(artifact), "--env.backend", "pybullet"],
                 ["cross-sim", "--artifact", str(artifact)]):
        rc = cli.main(args)
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert rc == 2 and len(err) == 1, err
        assert "the pybullet backend needs pybullet: pip install pybullet" in err[0]


@pytest.mark.parametrize("args, message", [
    (["eval"], "give either --checkpoint RUN_OR_FILE or --artifact DIR"),
    (["eval", "--artifact", "nowhere", "--env.backend", "gazebo"], "unknown backend 'gazebo'"),
    (["eval", "--artifact", "nowhere"], "is not a policy artifact"),
    (["eval", "--checkpoint", "runs/x", "--env.backend", "gazebo"], "unknown backend 'gazebo'"),
    (["eval", "--checkpoint", "runs/x", "--env.backend", "pybullet"], "no run directory or checkpoint at runs/x"),
])
def test_bad_eval_input_is_one_clear_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = cli.main(args)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and message in err[0], err
