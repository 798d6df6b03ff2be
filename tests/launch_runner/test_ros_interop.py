"""The argv the runner gives a node means the same to real rcl and to robot_rl's own parser."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from launch_helpers import DATA, REPO, fake_resolver

from robot_rl.launch_runner import build_plan

EXPECTED_PARAMS = {
    "rate_hz": 50, "gains": [100.0, 50.0], "joints": ["shoulder", "elbow"], "enabled": True,
    "label": "arm one", "robot_name": "ur5", "version": "1", "limits.velocity": 1.5,
    "limits.effort": 10, "action_scale": 0.25,
}


def policy_argv():
    p = build_plan(str(DATA / "graph.launch.xml"), resolver=fake_resolver)
    return p.nodes[0].arguments


def test_robot_rl_transport_parser_reads_the_argv():
    ros_args = pytest.importorskip("robot_rl.transport.ros_args")
    args = ros_args.parse_ros_args(policy_argv())
    assert args.node_name == "policy"
    assert args.namespace == "/ur5"
    assert args.remaining == ["--artifact", f"{DATA}/policy", "--verbose", "two words"]
    assert args.params_for("policy", "/ur5/policy") == EXPECTED_PARAMS
    assert [(r.src, r.dst) for r in args.remaps_for("policy")] == [
        ("joint_states", "/ur5/joint_states"), ("cmd", "safe_cmd")]


RCL_PROBE = r"""
import json, sys
import rclpy
from rclpy.node import Node
rclpy.init(args=["node", *json.loads(sys.argv[1])])
node = Node("default_name", automatically_declare_parameters_from_overrides=True)
params = {}
for name in node._parameters:
    if name in ("use_sim_time", "start_type_description_service"):
        continue
    v = node.get_parameter(name).value
    params[name] = list(v) if isinstance(v, (list, tuple)) or type(v).__name__ == "array" else v
print(json.dumps({"name": node.get_name(), "ns": node.get_namespace(), "params": params,
                  "joint_states": node.resolve_topic_name("joint_states"),
                  "cmd": node.resolve_topic_name("cmd")}))
node.destroy_node()
rclpy.shutdown()
"""


def test_real_rcl_reads_the_argv(tmp_path):
    """Node name, namespace, typed parameters and remaps as real rclpy/rcl resolves them."""
    py = Path(os.environ.get("ROS_VENV", REPO / ".ros-venv")) / "bin" / "python"
    if not py.exists():
        pytest.fail("no ROS 2 Python environment with rclpy: run scripts/setup_ros.sh (scripts/test.sh does)")
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1",
           "ROS_DOMAIN_ID": str(100 + os.getpid() % 100)}
    argv = [a for a in policy_argv()]
    r = subprocess.run([str(py), "-c", RCL_PROBE, json.dumps(argv)], capture_output=True, text=True,
                       timeout=120, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["name"] == "policy"
    assert got["ns"] == "/ur5"
    assert got["params"] == EXPECTED_PARAMS
    assert got["joint_states"] == "/ur5/joint_states"
    assert got["cmd"] == "/ur5/safe_cmd"


def test_transport_parser_reads_ros2_launch_style_params_files(tmp_path):
    """Real ros2 launch passes each <param> as a temporary file keyed by the node's full name."""
    import yaml

    ros_args = pytest.importorskip("robot_rl.transport.ros_args")
    files = []
    for i, (k, v) in enumerate([("rate_hz", 50), ("gains", [100.0, 50.0]), ("limits.effort", 10)]):
        f = tmp_path / f"launch_params_{i}"
        f.write_text(yaml.dump({"/ur5/policy": {"ros__parameters": {k: v}}}, default_flow_style=False))
        files += ["--params-file", str(f)]
    argv = ["--ros-args", "-r", "__node:=policy", "-r", "__ns:=/ur5", *files,
            "--params-file", str(DATA / "params.yaml"), "-r", "cmd:=safe_cmd"]
    args = ros_args.parse_ros_args(argv)
    assert args.params_for("policy", "/ur5/policy") == {
        "rate_hz": 50, "gains": [100.0, 50.0], "limits.effort": 10, "action_scale": 0.25}
