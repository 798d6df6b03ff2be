"""The main job's deployment step: launch file on the twin, targets, measured report."""

import json

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
