"""Policy node: refuses unknown terms and a robot with other joints; reports a missing robot."""

import json

import numpy as np
import pytest

from _nodes_helpers import StatePublisher, renamed_artifact

JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
DEFAULT = np.array([0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0])


def test_unknown_observation_term_is_a_clear_error(trained_artifact):
    """(That the node builds the same observation as the env, term by term, is tests/test_terms.py.)"""
    from robot_rl.observer import RobotObserver, SpecError

    spec = json.loads((trained_artifact / "spec.json").read_text())
    spec["observation"]["terms"][2]["func"] = "ee_quat"
    with pytest.raises(SpecError, match="unknown function 'ee_quat'"):
        RobotObserver(spec, trained_artifact)


def test_policy_node_refuses_a_robot_with_other_joint_names(graph, trained_artifact, tmp_path):
    other = renamed_artifact(trained_artifact, tmp_path / "ur5", [f"ur5_joint_{i}" for i in range(1, 8)])
    graph.node.start()
    robot = StatePublisher(graph.node, JOINTS, DEFAULT, rate_hz=100)
    try:
        policy = graph.start("policy", artifact=other, state_wait_s=20.0)
        assert policy.wait(30) == 2
    finally:
        robot.stop()
    errors = [line for line in policy.log().splitlines() if "error" in line]
    assert len(errors) == 1 and "disagree with the artifact's" in errors[0] and "ur5_joint_1" in errors[0], policy.log()
    assert "Traceback" not in policy.log()


def test_policy_node_reports_a_missing_robot(graph, trained_artifact):
    policy = graph.start("policy", artifact=trained_artifact, state_wait_s=1.0)
    assert policy.wait(30) == 2
    assert "no joint state on /joint_states within 1.0 s" in policy.log()
