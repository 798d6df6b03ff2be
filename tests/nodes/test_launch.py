"""launch/deploy.launch.xml: valid for both robots, and brings up a working graph on the twin."""

import signal
import subprocess
import sys
import time

import numpy as np

from _nodes_helpers import REPO, Recorder, StatePublisher, diag, node_env

LAUNCH = REPO / "launch" / "deploy.launch.xml"


def test_plan_twin_and_ros2_control(reach_artifact):
    from robot_rl.launch_runner import build_plan

    twin = build_plan(str(LAUNCH), {"artifact": str(reach_artifact)})
    assert [n.label for n in twin.nodes] == ["twin", "safety", "policy"]
    real = build_plan(str(LAUNCH), {"artifact": str(reach_artifact), "robot": "ros2_control",
                                    "controller": "arm_controller", "interface": "trajectory"})
    assert [n.label for n in real.nodes] == ["safety", "policy"]
    safety = " ".join(real.nodes[0].argv)
    assert ("robot_rl.nodes.safety" in safety or "robot-rl-safety" in safety) and "controller:=arm_controller" in safety
    assert "interface:=trajectory" in safety
    for extra in (["namespace:=arm1"], ["__ns:=/arm1"]):
        ns = build_plan(str(LAUNCH), [f"artifact:={reach_artifact}", *extra])
        assert [n.namespace for n in ns.nodes] == ["/arm1"] * 3


def test_launch_runs_the_graph_on_the_twin(graph, reach_artifact):
    from robot_rl.transport import msgs

    node = graph.node
    dg = Recorder(node, msgs.String, "/safety/diagnostics")
    ee = Recorder(node, msgs.PoseStamped, "/twin/ee_pose")
    target_pub = node.create_publisher(msgs.PoseStamped, "/target_pose")
    node.start()
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.launch_runner", str(LAUNCH),
                             f"artifact:={reach_artifact}", "twin_seed:=5", "--log-dir", str(graph.tmp)],
                            env=node_env(graph.domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=str(REPO))
    try:
        ee.wait_for(lambda m: True, 40, "the twin")
        p = ee.last().pose.position
        msg = msgs.PoseStamped(pose=msgs.Pose(position=msgs.Point(x=p.x - 0.05, y=p.y + 0.05, z=p.z)))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (dg.last() and diag(dg.last())["mode"] == "ok"):
            target_pub.publish(msg)
            time.sleep(0.1)
        d = diag(dg.last())
        assert d["mode"] == "ok" and d["driver_topic"] == "/forward_position_controller/commands"
        assert np.isfinite(d["command"]).all()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            log = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[0]
    assert proc.returncode == 0, log


JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
FINGERS = ["gripper_finger_joint_1", "gripper_finger_joint_2"]
Q0 = np.array([0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0])


def test_launch_on_a_robot_with_gripper_joints(graph, reach_artifact):
    """A real robot (robot:=ros2_control) whose joint_states also carry two finger joints the arm
    policy does not use: the policy starts and commands, the safety node takes every state."""
    from robot_rl.transport import msgs

    node = graph.node
    dg = Recorder(node, msgs.String, "/left/safety/diagnostics")
    cmds = Recorder(node, msgs.JointState, "/left/policy/joint_command")
    drive = Recorder(node, msgs.Float64MultiArray, "/left/forward_position_controller/commands")
    target_pub = node.create_publisher(msgs.PoseStamped, "/left/target_pose")
    node.start()
    # fingers first: the order of joint_states is the driver's, not the artifact's
    robot = StatePublisher(node, FINGERS + JOINTS[::-1], np.r_[0.04, 0.04, Q0[::-1]], rate_hz=250,
                           topic="/left/joint_states")
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.launch_runner", str(LAUNCH), f"artifact:={reach_artifact}",
                             "robot:=ros2_control", "namespace:=left", "safety_rate_hz:=250.0", "--log-dir", str(graph.tmp)],
                            env=node_env(graph.domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=str(REPO))
    try:
        dg.wait_for(lambda m: True, 40, "the safety node")
        msg = msgs.PoseStamped(pose=msgs.Pose(position=msgs.Point(x=0.5, y=0.1, z=0.6)))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (dg.last() and diag(dg.last())["mode"] == "ok"):
            target_pub.publish(msg)
            time.sleep(0.1)
        d = diag(dg.last())
        assert d["mode"] == "ok" and d["driver_topic"] == "/left/forward_position_controller/commands"
        assert d["counters"]["commands_accepted"] > 0
        assert not any(d["counters"]["states_rejected"].values()), d["counters"]["states_rejected"]
        assert list(cmds.last().name) == JOINTS  # the policy commands the arm's joints only
        assert np.asarray(drive.last().data).shape == (7,)
    finally:
        robot.stop()
        proc.send_signal(signal.SIGINT)
        try:
            log = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[0]
    assert proc.returncode == 0, log
    assert "ignoring joints the policy does not use: ['gripper_finger_joint_1', 'gripper_finger_joint_2']" in log
