"""ROS 2 name resolution, remapping, QoS presets and the --ros-args parser."""

import pytest

from robot_rl.transport import QoSProfile, resolve_qos
from robot_rl.transport.names import (
    NameError_, RemapRule, dds_topic_name, expand_topic_name, normalize_namespace, resolve_topic_name,
    validate_node_name,
)
from robot_rl.transport.ros_args import RosArgsError, parse_param_value, parse_ros_args


@pytest.mark.parametrize("topic,ns,expected", [
    ("chatter", "", "/chatter"),
    ("chatter", "/", "/chatter"),
    ("chatter", "/robot", "/robot/chatter"),
    ("chatter", "robot/arm", "/robot/arm/chatter"),
    ("a/b", "/ns", "/ns/a/b"),
    ("/abs", "/ns", "/abs"),
    ("~", "/ns", "/ns/node"),
    ("~/priv", "/ns", "/ns/node/priv"),
    ("~/priv", "", "/node/priv"),
    ("{node}/x", "/ns", "/ns/node/x"),
    ("{ns}/x", "/ns", "/ns/x"),
    ("{namespace}/x", "", "/x"),
])
def test_expand_topic_name(topic, ns, expected):
    assert expand_topic_name(topic, "node", ns) == expected


@pytest.mark.parametrize("bad", ["", "a//b", "a/", "1abc", "a-b", "~x", "{foo}/x", "a b", "/", "{node"])
def test_invalid_topic_names(bad):
    with pytest.raises(NameError_):
        expand_topic_name(bad, "node", "/ns")


def test_node_and_namespace_validation():
    assert validate_node_name("arm_1") == "arm_1"
    for bad in ("1arm", "arm-1", "", "a/b"):
        with pytest.raises(NameError_, match="node name"):
            validate_node_name(bad)
    assert normalize_namespace("") == "/" and normalize_namespace("a/b") == "/a/b"
    assert normalize_namespace("/a/") == "/a"
    with pytest.raises(NameError_, match="namespace"):
        normalize_namespace("/a//b")
    assert dds_topic_name("/ns/foo") == "rt/ns/foo"


def test_remapping_rules():
    rules = [RemapRule.parse("joint_states:=/arm/joint_states"), RemapRule.parse("other:x:=/nope"),
             RemapRule.parse("x:=y"), RemapRule.parse("y:=z"), RemapRule.parse("/abs:=~/mine")]
    r = lambda t: resolve_topic_name(t, "node", "/ns", rules)  # noqa: E731
    assert r("joint_states") == "/arm/joint_states"
    assert r("/ns/joint_states") == "/arm/joint_states"       # matched after expansion
    assert r("x") == "/ns/y"                                   # node-specific rule for another node skipped; no chaining
    assert r("y") == "/ns/z"
    assert r("/abs") == "/ns/node/mine"
    assert r("unmapped") == "/ns/unmapped"
    assert resolve_topic_name("x", "other", "/ns", rules) == "/nope"   # first match wins
    assert resolve_topic_name("joint_states", "node", "/ns", rules, only_expand=True) == "/ns/joint_states"
    assert resolve_topic_name("a", "n", "/", {"a": "b"}) == "/b"
    with pytest.raises(NameError_, match="from:=to"):
        RemapRule.parse("nothing")


def test_parse_ros_args_full():
    argv = ["--my-flag", "3", "--ros-args", "-r", "__node:=arm", "-r", "__ns:=/robot",
            "-r", "joint_states:=/hw/joint_states", "--remap", "arm:cmd:=/arm_cmd",
            "-p", "rate:=500.0", "-p", "use_sim_time:=true", "--param", "gains:=[1.0, 2.5]",
            "-p", "arm:name:='007'", "-p", "label:=hello", "--log-level", "debug",
            "--log-level", "rcl:=warn", "--disable-rosout-logs", "-e", "/enc", "--", "positional"]
    a = parse_ros_args(argv)
    assert a.remaining == ["--my-flag", "3", "positional"]
    assert a.node_name == "arm" and a.namespace == "/robot"
    assert a.name_for("whatever") == "arm" and a.namespace_for("arm", "/") == "/robot"
    assert [(r.node, r.src, r.dst) for r in a.remaps] == [(None, "joint_states", "/hw/joint_states"),
                                                          ("arm", "cmd", "/arm_cmd")]
    assert len(a.remaps_for("arm")) == 2 and len(a.remaps_for("other")) == 1
    assert a.params == {"rate": 500.0, "use_sim_time": True, "gains": [1.0, 2.5], "label": "hello"}
    assert a.params_for("arm") == {**a.params, "name": "007"}
    assert a.log_levels == {"": "debug", "rcl": "warn"}
    assert a.log_flags == {"rosout-logs": False} and a.enclave == "/enc"


def test_parse_ros_args_multiple_sections_and_node_specific_name():
    a = parse_ros_args(["--ros-args", "-r", "talker:__node:=speaker", "--", "x", "--ros-args", "-p", "a:=1"])
    assert a.remaining == ["x"] and a.params == {"a": 1}
    assert a.name_for("talker") == "speaker" and a.name_for("other") == "other"
    assert parse_ros_args(None).remaining == [] and parse_ros_args(["plain"]).remaining == ["plain"]


@pytest.mark.parametrize("argv,match", [
    (["--ros-args", "--bogus"], "unknown ROS arguments"),
    (["--ros-args", "-r"], "needs a value"),
    (["--ros-args", "-r", "noassign"], "from:=to"),
    (["--ros-args", "-p", "novalue"], "name:=value"),
    (["--ros-args", "-r", "__node:=9bad"], "node name"),
    (["--ros-args", "-r", "__weird:=x"], "special remap"),
    (["--ros-args", "--log-level", "loud"], "log level"),
    (["--ros-args", "-p", "x:=[1, a]"], "mixes types"),
    (["--ros-args", "-p", "x:=[1, 2.5]"], "decimal point"),  # rcl rejects an int/float mix too
    (["--ros-args", "-p", "x:={a: 1}"], "mapping"),
    (["--ros-args", "-p", "x:=[1, [2]]"], "nested list"),
    (["--ros-args", "-p", "x:="], "empty parameter value"),
])
def test_parse_ros_args_errors(argv, match):
    with pytest.raises(RosArgsError, match=match):
        parse_ros_args(argv)


@pytest.mark.parametrize("text,value", [
    ("true", True), ("False", False), ("42", 42), ("-3", -3), ("1.5", 1.5), ("1e-3", 1e-3),
    ("'1'", "1"), ('"true"', "true"), ("abc", "abc"), ("[a, b]", ["a", "b"]), ("[]", []),
    ("[true, false]", [True, False]), ("/topic", "/topic"),
])
def test_parse_param_value(text, value):
    assert parse_param_value(text) == value


# text -> what real rcl (ROS 2 Kilted, rcl_yaml_param_parser) makes of `-p x:=<text>`; the rcl
# column is checked against rcl itself by test_param_typing_matches_real_rcl.
RCL_TYPING = [
    ("1", 1), ("-1", -1), ("+1", 1), ("0x1F", 31), ("010", 8), ("08", 8.0), ("-0", 0),
    ("9223372036854775808", 9.223372036854776e18), ("1_000", "1_000"), ("0b11", "0b11"), ("0o17", "0o17"),
    ("1e3", 1000.0), ("1.0e+3", 1000.0), (".5", 0.5), ("5.", 5.0), ("-.5", -0.5), ("0x1p3", 8.0),
    ("1e999", "1e999"), ("4.9e-324", "4.9e-324"), (".inf", float("inf")), ("-.inf", float("-inf")),
    ("inf", float("inf")), ("Infinity", float("inf")), ("y", True), ("N", False), ("on", True), ("OFF", False),
    ("~", "~"), ("null", "null"), ("'1'", "1"), ('"true"', "true"), ("!!str 5", "5"), ("1:30", "1:30"),
    ("12abc", "12abc"), (" 3 ", 3), ("[1, 2]", [1, 2]), ("[y, n]", [True, False]), ("- a\n- b", ["a", "b"]),
    ("['a', 'b']", ["a", "b"]), ("/a/b", "/a/b"), ("a b", "a b"),
]


@pytest.mark.parametrize("text,value", RCL_TYPING)
def test_param_typing_follows_rcl(text, value):
    got = parse_param_value(text)
    assert type(got) is type(value) and got == value


def test_param_typing_matches_real_rcl():
    """The table above, and the mixed/mapping errors, as real rcl types them (ROS environment)."""
    import json
    import math
    import subprocess

    from _transport_helpers import ros_python

    probe = r"""
import json, sys
import rclpy
from rclpy.node import Node
out = []
for i, text in enumerate(json.loads(sys.argv[1])):
    try:
        rclpy.init(args=["n", "--ros-args", "-p", f"x:={text}"])
    except Exception:
        out.append(["ERROR", None]); continue
    node = Node(f"probe{i}", automatically_declare_parameters_from_overrides=True)
    p = node.get_parameter("x")
    v = p.value
    v = list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v
    out.append([p.type_.name, repr(v) if isinstance(v, float) else v])
    node.destroy_node()
    rclpy.shutdown()
print(json.dumps(out))
"""
    texts = [t for t, _ in RCL_TYPING] + ["[1, 2.5]", "{a: 1}", "[1, a]"]
    r = subprocess.run([ros_python(), "-c", probe, json.dumps(texts)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    kinds = {bool: "BOOL", int: "INTEGER", float: "DOUBLE", str: "STRING"}
    for (text, value), (kind, v) in zip(RCL_TYPING, got):
        if isinstance(value, list):
            assert kind.endswith("_ARRAY") and v == value, (text, kind, v)
        else:
            v = float(v) if kind == "DOUBLE" else v
            assert kind == kinds[type(value)] and (v == value or (math.isnan(v) and math.isnan(value))), (text, kind, v)
    assert [k for k, _ in got[len(RCL_TYPING):]] == ["ERROR"] * 3


@pytest.mark.parametrize("text", ["1e3", "1_000", "0b11", "1:30", "y", "~", "010", "08", ".inf", "1.0e3",
                                  "[1, 2.5]", "{a: 1}", "'1'", "inf", "0x1F", "yes", "- 1"])
def test_launch_rules_are_pyyaml(text):
    """ros2 launch types <param value> text with PyYAML (YAML 1.1); rules="launch" is exactly that."""
    import math

    import yaml

    from robot_rl.transport.param_values import parse_param_value as ppv

    want, got = yaml.safe_load(text), ppv(text, rules="launch")
    assert type(got) is type(want) and (got == want or (isinstance(want, float) and math.isnan(want)))


def test_params_file_is_typed_by_rcl_rules(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("arm:\n  ros__parameters:\n    big: 1e3\n    flag: y\n    word: '1'\n    n: 1_000\n")
    assert parse_ros_args(["--ros-args", "--params-file", str(f)]).params_for("arm") == {
        "big": 1000.0, "flag": True, "word": "1", "n": "1_000"}
    f.write_text("arm:\n  ros__parameters:\n    gains: [1, 2.5]\n")
    with pytest.raises(RosArgsError, match="gains'.*mixes types"):
        parse_ros_args(["--ros-args", "--params-file", str(f)]).params_for("arm")


def test_params_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    common: 1\n"
                 "arm:\n  ros__parameters:\n    rate: 250.0\n    gains:\n      kp: 10.0\n"
                 "other:\n  ros__parameters:\n    rate: 1.0\n")
    a = parse_ros_args(["--ros-args", "--params-file", str(f), "-p", "common:=2"])
    assert a.params_for("arm") == {"common": 2, "rate": 250.0, "gains.kp": 10.0}
    assert parse_ros_args(["--ros-args", "--params-file", str(f)]).params_for("zzz") == {"common": 1}
    with pytest.raises(RosArgsError, match="missing.yaml"):
        parse_ros_args(["--ros-args", "--params-file", str(tmp_path / "missing.yaml")]).params_for("arm")


def test_qos_presets():
    assert resolve_qos("default") == QoSProfile("reliable", "volatile", "keep_last", 10)
    assert resolve_qos("sensor_data") == QoSProfile("best_effort", "volatile", "keep_last", 5)
    assert resolve_qos(3).depth == 3 and resolve_qos(None) == resolve_qos("default")
    assert resolve_qos("latched").durability == "transient_local"
    assert not resolve_qos("sensor_data").compatible_with_reader(resolve_qos("default"))
    assert resolve_qos("default").compatible_with_reader(resolve_qos("sensor_data"))
    with pytest.raises(ValueError, match="unknown QoS preset"):
        resolve_qos("fast")
    with pytest.raises(ValueError, match="depth"):
        QoSProfile(depth=0)
    with pytest.raises(ValueError, match="reliability"):
        QoSProfile(reliability="sometimes")
