"""The main job's deployment step: launch file on the twin, targets, measured report."""

import json

import pytest

from robot_rl.deploy_check import DeployConfig, deploy_on_twin
from tests.nodes._nodes_helpers import next_domain_id


def test_deploy_on_twin_reaches_and_reports(reach_artifact, tmp_path):
    log = tmp_path / "deploy.log"
    cfg = DeployConfig(targets=2, seconds_per_target=2.5, domain_id=next_domain_id(), namespace="/check")
    r = deploy_on_twin(reach_artifact, cfg, log_path=log)
    json.dumps(r)  # the report is JSON
    assert r["namespace"] == "/check"  # the whole graph and the check's own node ran under /check
    assert r["targets"] == 2 and len(r["per_target"]) == 2
    assert r["mean_distance_m"] < 0.05, r["per_target"]
    assert r["safety_loop_rate_hz"] == 1000.0
    assert r["safety_loop_period"]["count"] > 1000
    assert r["command_latency"]["count"] > 10, r["command_latency"]
    assert r["policy_inference"]["count"] > 10
    text = log.read_text()
    assert "process has finished cleanly" in text, text[-2000:]


def test_a_stress_twin_runs_through_the_launch_file(reach_artifact, tmp_path):
    log = tmp_path / "deploy.log"
    cfg = DeployConfig(targets=1, seconds_per_target=2.0, domain_id=next_domain_id(), twin_stress="all")
    r = deploy_on_twin(reach_artifact, cfg, log_path=log)
    assert r["targets"] == 1 and len(r["per_target"]) == 1 and r["safety_loop_period"]["count"] > 1000
    text = log.read_text()
    # the twin applied the stress set: its log names it, the tool, the delays and the encoder bias
    assert "dr=all" in text and '"payload_kg":3.0' in text and "command latency 40.0 ms" in text, text[-3000:]
    assert "latency 40.0 ms" in text and "0.005" in text, text[-3000:]
    assert "process has finished cleanly" in text, text[-2000:]


def _tiny_artifact(root, task: str, **ppo):
    from robot_rl.config import EnvConfig, PPOConfig, TrainConfig
    from robot_rl.export import export
    from robot_rl.train import train

    cfg = TrainConfig(env=EnvConfig(task=task, num_envs=16, nthread=1), ppo=PPOConfig(num_steps_per_env=8, **ppo),
                      max_iterations=1, log_root=str(root), run_name=task, progress=False, eval_interval=0)
    return export(train(cfg).checkpoint, root / "artifact")


@pytest.mark.parametrize("task, ppo", [("iiwa-reach", {"policy": "recurrent", "rnn_hidden": 16}),
                                       ("panda-reach", {})], ids=["recurrent-iiwa", "mlp-panda"])
def test_every_policy_kind_and_robot_runs_through_the_same_launch_file(task, ppo, tmp_path):
    """The recurrent kind and the Panda (which reports its finger joints too) deploy with the same
    launch file and nodes as the MLP iiwa policy; untrained, so only the data path is checked."""
    art = _tiny_artifact(tmp_path, task, **ppo)
    log = tmp_path / "deploy.log"
    r = deploy_on_twin(art, DeployConfig(targets=1, seconds_per_target=2.0, domain_id=next_domain_id()), log_path=log)
    assert r["policy_kind"] == ppo.get("policy", "mlp")
    assert r["policy_inference"]["count"] > 20 and r["commands_accepted"] > 20, r
    assert not any(r["commands_rejected"].values()), r["commands_rejected"]
    text = log.read_text()
    assert "process has finished cleanly" in text and "Traceback" not in text, text[-2000:]


def test_a_task_without_reach_targets_runs_twin_episodes(tmp_path):
    """panda-peg-insert (an untrained policy: the plumbing, not the behaviour): the check requests
    twin episodes, the twin sets the task's reset and publishes the believed hole position, the
    policy runs on it, and the report has per-episode results and the safety figures; the resets
    cost no brake."""
    art = _tiny_artifact(tmp_path, "panda-peg-insert")
    log = tmp_path / "deploy.log"
    cfg = DeployConfig(episodes=2, seconds_per_episode=2.0, seed=3, domain_id=next_domain_id())
    r = deploy_on_twin(art, cfg, log_path=log)
    json.dumps(r)
    assert r["mode"] == "episodes" and r["episodes"] == 2 and r["episode_limit_s"] == 2.0
    eps = r["per_episode"]
    assert [e["seed"] for e in eps] == [3, 4] and [e["episode"] for e in eps] == [1, 2]
    for e in eps:
        assert isinstance(e["success"], bool) and e["distance"] > 0.0
        assert e["success"] or e["time_s"] >= 2.0
    assert eps[0]["commands"]["hole_pos"] != eps[1]["commands"]["hole_pos"]
    assert r["success_rate"] == sum(e["success"] for e in eps) / 2
    # the policy got the hole position and commanded through the safety node
    assert r["commands_accepted"] > 20 and r["policy_inference"]["count"] > 20, r
    assert not any(r["commands_rejected"].values()), r["commands_rejected"]
    assert r["safety_loop_rate_hz"] == 1000.0 and r["safety_loop_period"]["count"] > 1000
    assert r["command_latency"]["count"] > 10
    # each reset: the joint states pause (state_stale), then the safety node waits for the
    # re-anchored policy; no brake
    assert r["reset_interventions_by_reason"].get("state_stale", 0) >= 2, r["reset_interventions_by_reason"]
    assert set(r["reset_interventions_by_reason"]) <= {"no_state", "no_command", "state_stale", "cmd_stale",
                                                       "awaiting_command"}, r["reset_interventions_by_reason"]
    text = log.read_text()
    assert "episode 2 (seed 4) starts" in text and "Traceback" not in text, text[-2000:]
    assert "process has finished cleanly" in text, text[-2000:]
