"""The deployed graph (twin + safety + policy): reaches a target; a dead policy means hold then
brake; a dead robot means no more commands."""

import time

import numpy as np

from _nodes_helpers import Recorder, diag


def _p(msg):
    p = msg.pose.position
    return np.array([p.x, p.y, p.z])


def test_reach_then_policy_death_then_robot_death(graph, reach_artifact):
    from robot_rl.transport import msgs

    node = graph.node
    ee = Recorder(node, msgs.PoseStamped, "/twin/ee_pose")
    dg = Recorder(node, msgs.String, "/safety/diagnostics")
    out = Recorder(node, msgs.Float64MultiArray, "/forward_position_controller/commands")
    target_pub = node.create_publisher(msgs.PoseStamped, "/target_pose")
    node.start()
    twin = graph.start("twin", artifact=reach_artifact, seed=11)
    safety = graph.start("safety", artifact=reach_artifact)
    policy = graph.start("policy", artifact=reach_artifact, state_wait_s=30.0)

    # 1. reach: the arm moves toward a target published on /target_pose. The hand-made
    # resolved-rate policy settles where e = J (q_cmd - q): its error is the PD tracking offset,
    # which the twin's held-out payload (up to 2 kg) and kp (0.8-0.9x) make up to a few cm.
    ee.wait_for(lambda m: True, 30, "the twin")
    dg.wait_for(lambda m: True, 30, "the safety node")
    start = _p(ee.last())
    target = start + np.array([-0.10, 0.15, 0.10])
    d0 = np.linalg.norm(target - start)
    msg = msgs.PoseStamped(pose=msgs.Pose(position=msgs.Point(x=target[0], y=target[1], z=target[2])))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and np.linalg.norm(target - _p(ee.last())) > 0.01:
        target_pub.publish(msg)
        time.sleep(0.1)
    d1 = np.linalg.norm(target - _p(ee.last()))
    assert d1 < 0.03 and d1 < 0.15 * d0, f"end effector {d1:.3f} m from the target (started {d0:.3f} m away)\n{policy.log()[-2000:]}"
    assert diag(dg.last())["mode"] == "ok"
    target_pub.publish(msg)
    time.sleep(0.3)

    # 2. the policy dies: hold (cmd_stale), then brake (cmd_timeout_brake); never a bad command.
    # The brake moves the command, within the rate and acceleration limits, to the position
    # measured when it began (a few mrad of sag under the payload below the held command), then
    # holds it there: constant, not re-latched every tick.
    t_kill = time.monotonic()
    policy.kill()
    dg.wait_for(lambda m: diag(m)["reason"] == "cmd_timeout_brake", 5, "brake after the policy died")
    time.sleep(0.5)
    reasons = [diag(m)["reason"] for m in dg.since(t_kill)]
    assert "cmd_stale" in reasons and "cmd_timeout_brake" in reasons
    assert reasons.index("cmd_stale") < reasons.index("cmd_timeout_brake"), reasons
    after = np.array([np.asarray(m.data) for m in out.since(t_kill)])
    assert after.ndim == 2 and after.shape[1] == 7 and np.isfinite(after).all()
    # no jump: at most the rate limit x max_tick_dt_s (10 ms) between two driver commands
    assert np.abs(np.diff(after, axis=0)).max() <= 0.01 * max(diag(dg.last())["rate_limit"]) + 1e-9
    braking = [np.asarray(diag(m)["command"]) for m in dg.since(t_kill) if diag(m)["mode"] == "brake"]
    assert len(braking) >= 5
    assert all(np.array_equal(b, braking[-1]) for b in braking[-3:]), "the brake command did not settle"
    assert np.abs(braking[-1] - braking[0]).max() < 0.05  # the sag, not a motion
    np.testing.assert_allclose(after[-1], braking[-1], atol=1e-12)

    # 3. the robot dies: state stale -> fault, and the safety node stops commanding
    twin.kill()
    stale = dg.wait_for(lambda m: diag(m)["reason"] == "state_stale", 5, "state_stale after the twin died")
    assert diag(stale)["mode"] == "fault" and diag(stale)["command"] is None
    t_fault = time.monotonic()
    time.sleep(0.5)
    assert not out.since(t_fault + 0.05), "the safety node kept commanding a robot whose state is stale"
    assert safety.alive(), safety.log()
