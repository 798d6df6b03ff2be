"""Policy node: observation built exactly as in training; refuses a robot with other joints."""

import json

import numpy as np
import pytest
import torch

from _nodes_helpers import StatePublisher, renamed_artifact

JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
DEFAULT = np.array([0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0])


def test_observation_matches_the_training_environment(trained_artifact):
    from robot_rl.nodes.policy import ObservationBuilder
    from robot_rl.sim import make_env

    spec = json.loads((trained_artifact / "spec.json").read_text())
    builder = ObservationBuilder(spec)
    env = make_env("iiwa-reach", 1, dr="off", seed=5)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        obs, *_ = env.step(torch.rand((1, 7), generator=gen) * 2 - 1)
        expected = obs["policy"][0].numpy()  # DR off: no noise, bias or delay
        got = builder.build(env.joint_pos[0].double().numpy(), env.joint_vel[0].double().numpy(),
                            env.task.target[0].double().numpy(), env.task.q_cmd[0].double().numpy(),
                            env.actions[0].double().numpy())
        np.testing.assert_allclose(got, expected, atol=2e-5)


def test_unknown_observation_term_is_a_clear_error(trained_artifact):
    from robot_rl.nodes._common import NodeStartError
    from robot_rl.nodes.policy import ObservationBuilder

    spec = json.loads((trained_artifact / "spec.json").read_text())
    spec["observation"]["terms"][2]["name"] = "ee_quat"
    with pytest.raises(NodeStartError, match=r"\['ee_quat'\] are not supported"):
        ObservationBuilder(spec)


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
