"""The leader arm: another robot's joint states on loopback DDS mapped to the follower's joints."""

import time

import numpy as np
import pytest

from robot_rl.teleop.device import DeviceScale, TeleopError, check_sample
from robot_rl.teleop.leader_arm import LeaderArm, LeaderArmConfig
from robot_rl.transport import msgs

FOLLOWER = ["j1", "j2", "j3"]


def publish_until(pub, msg, dev, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.publish(msg)
        time.sleep(0.02)
        s = dev.poll()
        if s is not None and pred(s):
            return s
    raise AssertionError("no matching leader sample")


@pytest.fixture
def leader(nodes):
    talker = nodes("leader_driver")
    listener = nodes("teleop_test").start()
    pubs = {"js": talker.create_publisher(msgs.JointState, "leader/joint_states", qos="sensor_data"),
            "clutch": talker.create_publisher(msgs.Bool, "leader/clutch"),
            "events": talker.create_publisher(msgs.String, "leader/events")}
    return listener, pubs


def js(names, q):
    return msgs.joint_state_from_numpy(names, np.asarray(q, dtype=float))


def test_joint_map_sign_offset_and_follower_order(leader):
    node, pubs = leader
    dev = LeaderArm(LeaderArmConfig(node=node, joint_map={"l_a": "j2", "l_b": "j1", "l_c": "j3"},
                                    signs={"l_a": -1.0}, offsets={"l_c": 0.5}, follower_joints=FOLLOWER,
                                    gripper_joint="l_grip", gripper_range=[0.0, 0.04], scale=DeviceScale()))
    assert dev.poll() is None  # nothing heard yet
    assert pubs["js"].wait_for_subscribers(1)
    s = publish_until(pubs["js"], js(["l_a", "l_b", "l_c", "l_grip"], [0.1, 0.2, 0.3, 0.01]), dev, lambda s: True)
    assert s.mode == "joint_position" and s.clutch is True  # clutch="always"
    np.testing.assert_allclose(s.values, [0.2, -0.1, 0.8])  # j1 <- l_b, j2 <- -l_a, j3 <- l_c + 0.5
    assert s.gripper == pytest.approx(0.25)
    check_sample(s, dev.scale, 3)
    # the leader goes silent: after stale_s no sample (the arbiter holds)
    time.sleep(dev.cfg.stale_s + 0.05)
    assert dev.poll() is None
    dev.close()


def test_follower_order_from_show_state_and_clutch_topic_and_events(leader):
    node, pubs = leader
    dev = LeaderArm(LeaderArmConfig(node=node, clutch="topic"))
    assert pubs["js"].wait_for_subscribers(1) and pubs["clutch"].wait_for_subscribers(1)
    pubs["js"].publish(js(["j3", "j1", "j2"], [3.0, 1.0, 2.0]))
    time.sleep(0.1)
    assert dev.poll() is None  # the follower's joint order is not known yet
    dev.show_state({"joint_names": FOLLOWER})
    s = publish_until(pubs["js"], js(["j3", "j1", "j2"], [3.0, 1.0, 2.0]), dev, lambda s: True)
    np.testing.assert_allclose(s.values, [1.0, 2.0, 3.0])
    assert s.clutch is False  # topic clutch: released until the first true
    pubs["clutch"].publish(msgs.Bool(data=True))
    s = publish_until(pubs["js"], js(FOLLOWER, [0, 0, 0]), dev, lambda s: s.clutch)
    assert pubs["events"].wait_for_subscribers(1)
    pubs["events"].publish(msgs.String(data="success"))
    pubs["events"].publish(msgs.String(data='{"event": "reset"}'))
    pubs["events"].publish(msgs.String(data="explode"))
    got = set()
    deadline = time.monotonic() + 5
    while got != {"success", "reset"} and time.monotonic() < deadline:
        pubs["js"].publish(js(FOLLOWER, [0, 0, 0]))
        time.sleep(0.02)
        s = dev.poll()
        got |= set(s.events) if s is not None else set()
    assert got == {"success", "reset"}
    assert dev.bad_messages == 1  # "explode"
    dev.close()


def test_a_message_missing_a_joint_or_with_nan_is_refused(leader):
    node, pubs = leader
    dev = LeaderArm(LeaderArmConfig(node=node, follower_joints=FOLLOWER))
    assert pubs["js"].wait_for_subscribers(1)
    pubs["js"].publish(js(["j1", "j2"], [0.0, 0.0]))
    deadline = time.monotonic() + 5
    with pytest.raises(TeleopError, match=r"does not feed follower joints \['j3'\]"):
        while time.monotonic() < deadline:
            dev.poll()
            time.sleep(0.01)
    publish_until(pubs["js"], js(FOLLOWER, [0.0, 0.0, 0.0]), dev, lambda s: True)
    pubs["js"].publish(js(FOLLOWER, [0.0, float("nan"), 0.0]))
    with pytest.raises(TeleopError, match="NaN"):
        while time.monotonic() < deadline + 5:
            dev.poll()
            time.sleep(0.01)
    dev.close()


def test_own_node_and_bad_config(nodes, domain_id):
    talker = nodes("leader_driver")
    pub = talker.create_publisher(msgs.JointState, "leader/joint_states", qos="sensor_data")
    dev = LeaderArm(LeaderArmConfig(follower_joints=["j1"]))  # makes and spins its own node
    try:
        assert pub.wait_for_subscribers(1)
        s = publish_until(pub, js(["j1"], [0.7]), dev, lambda s: True)
        assert s.values[0] == pytest.approx(0.7)
    finally:
        dev.close()
    with pytest.raises(TeleopError, match="clutch='pedal'"):
        LeaderArm(LeaderArmConfig(clutch="pedal", node=talker))
