"""launch/deploy.launch.xml: valid for both robots, and brings up a working graph on the twin."""

import signal
import subprocess
import sys
import time

import numpy as np

from _nodes_helpers import REPO, Recorder, diag, node_env

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
