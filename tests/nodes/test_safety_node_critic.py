"""Safety node with the artifact's critic on its thread: fresh risk values reach the filter (never
stale), and a critic whose risk is older than ``critic_stale_s`` fails closed (backup, reason
risk_stale, one rate-limited log line)."""

import time

import numpy as np
import pytest

from _nodes_helpers import Recorder, StatePublisher, diag, linear_reach_artifact

JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def critic_artifact(trained_artifact, tmp_path_factory):
    from robot_rl.safety.train_artifact_critic import CriticConfig, train_artifact_critic

    lin = linear_reach_artifact(trained_artifact, tmp_path_factory.mktemp("critic_node") / "linear")
    train_artifact_critic(CriticConfig(artifact=str(lin), envs=16, steps=150, calib_envs=12, calib_steps=150,
                                       rounds=4), log=lambda *_: None)
    return lin


def _run(graph, artifact, **params):
    from robot_rl.artifact import PolicyArtifact
    from robot_rl.transport import msgs

    q0 = np.array(PolicyArtifact.load(artifact).spec["robot"]["default_pose"])
    node = graph.node
    dg = Recorder(node, msgs.String, "/safety/diagnostics")
    pol = node.create_publisher(msgs.JointState, "/policy/joint_command")
    node.start()
    robot = StatePublisher(node, JOINTS, q0, rate_hz=500)
    safety = graph.start("safety", artifact=artifact, **params)
    try:
        dg.wait_for(lambda m: diag(m)["mode"] != "fault", 30, "safety running")
        pol.wait_for_subscribers(1, 5)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:  # a command every 20 ms, at the home pose
            pol.publish(msgs.JointState(name=JOINTS, position=q0))
            time.sleep(0.02)
        seen = [diag(m) for t, m in dg.items if t >= t0 + 0.5]
    finally:
        robot.stop()
        safety.stop()
    return seen, safety.log()


def test_fresh_risk_is_applied_and_a_stale_critic_backs_up(graph, critic_artifact):
    seen, log = _run(graph, critic_artifact)
    assert len(seen) >= 10, log
    assert all(d["reason"] != "risk_stale" for d in seen), log
    risks = {d["risk"] for d in seen}
    assert all(0.0 <= r <= 1.0 for r in risks) and risks != {0.0}, risks  # the critic's values, not the initial 0
    assert "safety critic" in log


def test_a_critic_older_than_the_bound_fails_closed(graph, critic_artifact):
    # a bound shorter than one evaluation: every risk arrives stale, so the node must back up
    seen, log = _run(graph, critic_artifact, critic_stale_s=1e-6)
    assert len(seen) >= 10, log
    assert all(d["mode"] == "backup" and d["reason"] == "risk_stale" and d["risk"] == 1.0 for d in seen), \
        [(d["mode"], d["reason"]) for d in seen]
    assert log.count("older than critic_stale_s") <= 3, log  # rate-limited: one line a second
