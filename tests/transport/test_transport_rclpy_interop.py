"""Interop with REAL rclpy (ROS 2 Kilted, Fast DDS) running in the separate ROS environment.

The ROS environment is made by scripts/setup_ros.sh (default <repo>/.ros-venv, or $ROS_VENV);
these tests fail, rather than skip, when it is missing. Everything stays on loopback
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) on a test-unique ROS_DOMAIN_ID.
"""

import json
import time

import numpy as np
import pytest

from _transport_helpers import HERE, MAIN_PYTHON, LineProcess, next_domain_id, ros_python, subprocess_env
from robot_rl.transport import create_node, msgs

TIMEOUT = 20.0


def _events(proc: LineProcess, wanted: set, timeout: float) -> dict:
    """Read JSON lines until every event in ``wanted`` has been seen; return them by name."""
    seen = {}
    deadline = time.monotonic() + timeout
    while not wanted <= set(seen):
        line = proc.read_line(max(0.1, deadline - time.monotonic()))
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        seen[event.get("event")] = event
    return seen


@pytest.fixture(scope="module")
def rclpy_exchange():
    """One run of a plain rclpy node against one of our DDS nodes; returns what each side saw."""
    python = ros_python()
    domain = next_domain_id()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.delenv("CYCLONEDDS_URI", raising=False)
        mp.setenv("ROS_DOMAIN_ID", str(domain))
        node = create_node("dds_peer", "/interop_ns", backend="dds", domain_id=domain)
        received = []
        node.create_subscription(msgs.JointState, "/interop/joint_states", received.append)
        cmd = node.create_publisher(msgs.Float64MultiArray, "/interop/commands")
        node.create_timer(0.02, lambda: cmd.publish(msgs.float64_multi_array([1.5, -2.5, 3.5])))
        node.start()
        peer = LineProcess([python, str(HERE / "_rclpy_peer.py"), "dds_peer", "/interop_ns", str(TIMEOUT)],
                           env=subprocess_env(ROS_DOMAIN_ID=domain))
        try:
            assert peer.read_line(TIMEOUT) == "ready", peer.stderr()
            _events(peer, {"seen", "command"}, TIMEOUT)
            deadline = time.monotonic() + TIMEOUT
            our_graph = []
            while time.monotonic() < deadline:
                our_graph = node.get_node_names_and_namespaces()
                if received and ("rclpy_peer", "/") in our_graph:
                    break
                time.sleep(0.02)
            peer.send("stop\n")
            report = _events(peer, {"report"}, TIMEOUT)["report"]
        finally:
            peer.close()
            node.shutdown()
    return {"received": received, "our_graph": our_graph, "report": report, "exception": node.exception}


def test_rclpy_joint_state_reaches_dds_subscriber(rclpy_exchange):
    received = rclpy_exchange["received"]
    assert received, "no JointState from the rclpy publisher arrived"
    m = received[0]
    assert m.name == ["shoulder", "elbow", "wrist"]
    np.testing.assert_array_equal(m.position, [0.1, -0.2, 0.3])
    np.testing.assert_array_equal(m.velocity, [1.0, 2.0, 3.0])
    assert m.effort.shape == (0,)
    assert (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (1234, 5678, "base_link")
    assert rclpy_exchange["exception"] is None


def test_dds_float64_multi_array_reaches_rclpy_subscriber(rclpy_exchange):
    report = rclpy_exchange["report"]
    assert report["n_commands"] > 0 and report["commands"][0] == [1.5, -2.5, 3.5]


def test_dds_node_in_rclpy_graph_and_back(rclpy_exchange):
    report = rclpy_exchange["report"]
    assert report["seen_after_s"] is not None
    assert ["dds_peer", "/interop_ns"] in report["names"]
    assert ("rclpy_peer", "/") in rclpy_exchange["our_graph"]


@pytest.mark.parametrize("backend", ["dds", "rclpy"])
def test_same_node_code_on_both_backends(backend):
    """tests/transport/_backend_peer.py, written once against robot_rl.transport, runs on our DDS
    backend (project environment) and on our rclpy backend (ROS environment) and talks to a DDS node."""
    python = ros_python() if backend == "rclpy" else MAIN_PYTHON
    domain = next_domain_id()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.delenv("CYCLONEDDS_URI", raising=False)
        peer = LineProcess([python, str(HERE / "_backend_peer.py"), backend, "--ros-args",
                            "-r", "ping:=/interop/ping", "-p", "gain:=2.0"],
                           env=subprocess_env(ROS_DOMAIN_ID=domain))
        node = create_node("pinger", backend="dds", domain_id=domain)
        try:
            pongs = []
            node.create_subscription(msgs.Float64MultiArray, "/interop/pong", pongs.append)
            ping = node.create_publisher(msgs.JointState, "/interop/ping")
            assert peer.read_line(TIMEOUT) == "ready", peer.stderr()
            assert ping.wait_for_subscribers(1, TIMEOUT), peer.stderr()
            deadline = time.monotonic() + TIMEOUT
            k = 0
            while len(pongs) < 3 and time.monotonic() < deadline:
                k += 1
                ping.publish(msgs.joint_state_from_numpy(["a", "b"], [k, -k], frame_id="f"))
                node.spin_once(0.05)
            peer.send("stop\n")
            report = json.loads(peer.read_line(TIMEOUT))
        finally:
            peer.close()
            node.shutdown()
    assert len(pongs) >= 3, peer.stderr()
    for pong in pongs:
        assert pong.data.shape == (2,) and pong.data[0] == -pong.data[1] and pong.data[0] % 2 == 0
    assert report["backend"] == backend and report["exception"] is None
    assert report["gain"] == 2.0 and report["ping_topic"] == "/interop/ping"
    assert report["pings"] >= 3 and report["ticks"] > 0
    assert report["first_ping"]["name"] == ["a", "b"] and report["first_ping"]["frame_id"] == "f"
    assert report["ping_subscriptions"] == [["backend_peer", "/peer_ns", "sensor_msgs/msg/JointState"]]
    assert report["ping_publishers"] == [["pinger", "/"]]
    if backend == "rclpy":
        for topic, ours, theirs in report["resolution"]:
            assert ours == theirs, f"{topic!r}: we resolve {ours!r}, rclpy resolves {theirs!r}"


SECOND_DDS_PROCESS = r"""
import sys
from robot_rl.transport import create_node, msgs
node = create_node("graph_b", "/arm2", backend="dds")
node.create_publisher(msgs.JointState, "joint_command")
node.create_subscription(msgs.JointState, "joint_states", lambda m: None)
node.start()
print("ready", flush=True)
sys.stdin.readline()
node.shutdown()
print("done", flush=True)
"""


def test_rclpy_graph_names_our_nodes_and_namespaces():
    """rclpy (Fast DDS) names the node and namespace of our publishers and subscriptions, with two
    of our processes in the domain (each node listed once), and forgets a process that leaves; our
    backend names rclpy's endpoints the same way."""
    python = ros_python()
    domain = next_domain_id()
    topics = ["/arm1/joint_command", "/arm1/joint_states", "/arm2/joint_command", "/arm2/joint_states"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.delenv("CYCLONEDDS_URI", raising=False)
        mp.setenv("ROS_DOMAIN_ID", str(domain))
        node = create_node("graph_a", "/arm1", backend="dds", domain_id=domain)
        node.create_publisher(msgs.JointState, "joint_command")
        node.create_subscription(msgs.JointState, "joint_states", lambda m: None)
        other = LineProcess([MAIN_PYTHON, "-c", SECOND_DDS_PROCESS], env=subprocess_env(ROS_DOMAIN_ID=domain))
        probe = LineProcess([python, str(HERE / "_rclpy_graph_peer.py"), *topics],
                            env=subprocess_env(ROS_DOMAIN_ID=domain))
        try:
            assert other.read_line(TIMEOUT) == "ready", other.stderr()
            assert probe.read_line(TIMEOUT) == "ready", probe.stderr()

            def report():
                probe.send("report\n")
                return json.loads(probe.read_line(TIMEOUT))

            want = {("publishers", "/arm1/joint_command"): ("graph_a", "/arm1"),
                    ("subscriptions", "/arm1/joint_states"): ("graph_a", "/arm1"),
                    ("publishers", "/arm2/joint_command"): ("graph_b", "/arm2"),
                    ("subscriptions", "/arm2/joint_states"): ("graph_b", "/arm2")}
            deadline = time.monotonic() + TIMEOUT
            while True:
                r = report()
                got = {k: [(e["node"], e["ns"]) for e in r[k[0]][k[1]]] for k in want}
                if all(got[k] == [v] for k, v in want.items()) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert all(got[k] == [v] for k, v in want.items()), got
            assert r["publishers"]["/arm1/joint_command"][0]["type"] == "sensor_msgs/msg/JointState"
            nodes = [tuple(n) for n in r["nodes"]]
            for ours in (("graph_a", "/arm1"), ("graph_b", "/arm2")):
                assert nodes.count(ours) == 1, nodes

            # and the other way round: our graph API names rclpy's publisher
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                pubs = node.get_publishers_info_by_topic("joint_states")
                if pubs and pubs[0].node_name == "graph_probe":  # (its ros_discovery_info may come later)
                    break
                time.sleep(0.05)
            assert [(p.node_name, p.node_namespace, p.topic_type, p.qos.durability) for p in pubs] == [
                ("graph_probe", "/", "sensor_msgs/msg/JointState", "volatile")]
            subs = node.get_subscriptions_info_by_topic("/arm2/joint_states")
            assert [(s.node_name, s.node_namespace) for s in subs] == [("graph_b", "/arm2")]

            other.send("stop\n")
            assert other.read_line(TIMEOUT) == "done", other.stderr()
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                r = report()
                if ["graph_b", "/arm2"] not in r["nodes"]:
                    break
                time.sleep(0.1)
            assert ["graph_b", "/arm2"] not in r["nodes"] and ["graph_a", "/arm1"] in r["nodes"], r["nodes"]
            assert [(e["node"], e["ns"]) for e in r["publishers"]["/arm1/joint_command"]] == [("graph_a", "/arm1")]
            probe.send("stop\n")
        finally:
            probe.close()
            other.close()
            node.shutdown()
