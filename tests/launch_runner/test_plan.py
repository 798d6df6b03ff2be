"""Launch files -> exact node argv: XML/YAML equivalence, arguments, conditions, namespaces,
groups, includes, parameters and remaps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from launch_helpers import DATA, fake_resolver

from robot_rl.launch_runner import build_plan
from robot_rl.launch_runner.evaluate import render_param_value

D = str(DATA)


def plan(path, args=None, env=None):
    return build_plan(str(path), args or {}, env=env, resolver=fake_resolver)


def summary(p):
    return [(n.label, n.argv, n.output, n.on_exit_shutdown) for n in p.nodes]


POLICY_PARAMS = [
    "-p", "rate_hz:=50", "-p", "gains:=[100.0, 50.0]", "-p", "joints:=[shoulder, elbow]",
    "-p", "enabled:=true", "-p", "label:=arm one",
]


def expected_graph(robot="ur5", twin=False, mode="sim"):
    nodes = [
        ("policy", [
            "/fake/robot_rl/policy", "--artifact", f"{D}/policy", "--verbose", "two words",
            "--ros-args", "-r", "__node:=policy", "-r", f"__ns:=/{robot}", *POLICY_PARAMS,
            "-p", f"robot_name:={robot}", "-p", "version:='1'",
            "-p", "limits.velocity:=1.5", "-p", "limits.effort:=10",
            "--params-file", f"{D}/params.yaml",
            "-r", f"joint_states:=/{robot}/joint_states", "-r", "cmd:=safe_cmd",
        ], "screen", False),
        ("safety_filter", ["/fake/robot_rl/safety", "--ros-args", "-r", "__node:=filter",
                           "-r", "__ns:=/safety", "-p", "rate_hz:=1000"], "log", True),
    ]
    if not twin:
        nodes.append(("watchdog", ["/fake/robot_rl/watchdog", "--ros-args", "-r", "__node:=watchdog",
                                   "-r", "__ns:=/abs"], "log", False))
    else:
        nodes.append((f"{robot}_twin", ["/fake/robot_rl/twin", "--ros-args", "-r", f"__node:={robot}_twin",
                                        "-r", "__ns:=/twin", "-p", "seed:=7"], "log", False))
    if mode == "real":
        nodes.append(("monitor", ["/fake/robot_rl/monitor", "--ros-args", "--log-level", "debug",
                                  "--ros-args"], "log", False))
    nodes.append(("teleop", ["/fake/robot_rl/teleop", "50", "--ros-args", "-r", "__node:=teleop"],
                  "log", False))
    return nodes


@pytest.mark.parametrize("args,kw", [
    ({}, {}),
    ({"robot": "panda", "use_twin": "true", "mode": "real"}, {"robot": "panda", "twin": True, "mode": "real"}),
    ({"use_twin": "True"}, {"twin": True}),
    ({"use_twin": "0"}, {}),
])
@pytest.mark.parametrize("ext", ["xml", "yaml"])
def test_graph_exact_argv(ext, args, kw):
    p = plan(DATA / f"graph.launch.{ext}", args)
    assert summary(p) == expected_graph(**kw)


def test_xml_and_yaml_give_the_same_nodes():
    for args in ({}, {"use_twin": "true", "robot": "kuka", "mode": "real"}):
        x = plan(DATA / "graph.launch.xml", args)
        y = plan(DATA / "graph.launch.yaml", args)
        assert summary(x) == summary(y)
        assert [n.env.get("ROBOT_RL_TEST_ENV") for n in x.nodes] == [n.env.get("ROBOT_RL_TEST_ENV") for n in y.nodes]


def test_environment_of_nodes():
    p = plan(DATA / "graph.launch.xml", {"robot": "panda"}, env={"PATH": "/usr/bin", "HOME": "/tmp"})
    policy, safety = p.nodes[0], p.nodes[1]
    assert policy.env["ROBOT_RL_TEST_ENV"] == "panda"  # <set_env> before the node
    assert policy.env["NODE_ONLY"] == "1"  # <env> of this node only
    assert "NODE_ONLY" not in safety.env
    assert policy.env["PYTHONUNBUFFERED"] == "1"
    assert policy.env["PATH"] == "/usr/bin"


def test_declared_args_and_configurations():
    p = plan(DATA / "graph.launch.xml", {"use_twin": "true"})
    assert set(p.declared_args) == {"robot", "use_twin", "mode", "twin_name", "seed"}
    assert p.declared_args["robot"].description == "robot model"
    assert p.declared_args["twin_name"].default is None
    # include arguments land in the include's scope; the group ended it
    assert "twin_name" not in p.launch_configurations
    assert p.launch_configurations["rate"] == "50"  # the group's <let> did not leak out


def write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def test_arg_default_override_and_let(tmp_path):
    f = write(tmp_path, "a.launch.xml", """<launch>
      <arg name="a" default="1"/>
      <arg name="b" default="$(var a)0"/>
      <let name="c" value="$(var b)-$(var a)"/>
      <node pkg="p" exec="e" args="$(var a) $(var b) $(var c)"/>
    </launch>""")
    assert plan(f).nodes[0].arguments == ["1", "10", "10-1", "--ros-args"]
    assert plan(f, {"a": "7"}).nodes[0].arguments == ["7", "70", "70-7", "--ros-args"]
    assert plan(f, {"b": "x"}).nodes[0].arguments == ["1", "x", "x-1", "--ros-args"]


def test_if_unless_truth_values(tmp_path):
    f = write(tmp_path, "c.launch.xml", """<launch>
      <arg name="on" default="true"/>
      <node pkg="p" exec="yes" if="$(var on)"/>
      <node pkg="p" exec="no" unless="$(var on)"/>
      <node pkg="p" exec="not" if="$(not $(var on))"/>
      <node pkg="p" exec="eval" if="$(eval '\\'$(var on)\\'.lower() == \\'true\\'')"/>
    </launch>""")
    for value, expect in [("true", ["yes", "eval"]), ("TRUE", ["yes", "eval"]), ("1", ["yes"]),
                          ("false", ["no", "not"]), ("0", ["no", "not"]), (" False ", ["no", "not"])]:
        got = [n.executable for n in plan(f, {"on": value}).nodes]
        assert got == expect, value


def test_namespaces_and_groups(tmp_path):
    f = write(tmp_path, "n.launch.xml", """<launch>
      <node pkg="p" exec="root" name="root"/>
      <node pkg="p" exec="rel" name="rel" namespace="arm"/>
      <group>
        <push-ros-namespace namespace="robot"/>
        <node pkg="p" exec="a" name="a"/>
        <node pkg="p" exec="b" name="b" namespace="arm/"/>
        <node pkg="p" exec="c" name="c" namespace="/abs"/>
        <group>
          <push_ros_namespace namespace="inner"/>
          <node pkg="p" exec="d" name="d"/>
        </group>
        <node pkg="p" exec="e" name="e"/>
      </group>
      <group scoped="false">
        <push-ros-namespace namespace="leak"/>
      </group>
      <node pkg="p" exec="f" name="f"/>
    </launch>""")
    ns = {n.name: n.namespace for n in plan(f).nodes}
    assert ns == {"root": None, "rel": "/arm", "a": "/robot", "b": "/robot/arm", "c": "/abs",
                  "d": "/robot/inner", "e": "/robot", "f": "/leak"}
    argv = {n.name: n.arguments for n in plan(f).nodes}
    assert argv["root"] == ["--ros-args", "-r", "__node:=root"]
    assert argv["d"] == ["--ros-args", "-r", "__node:=d", "-r", "__ns:=/robot/inner"]


def test_root_namespace_argument(tmp_path):
    """`__ns:=/NS` on the command line pushes a namespace around the whole file (robot-rl only)."""
    from robot_rl.launch_runner import LaunchError

    f = write(tmp_path, "r.launch.xml", """<launch>
      <arg name="namespace" default=""/>
      <node pkg="p" exec="root" name="root"/>
      <node pkg="p" exec="abs" name="abs" namespace="/abs"/>
      <group>
        <push-ros-namespace namespace="$(var namespace)"/>
        <node pkg="p" exec="a" name="a"/>
        <node pkg="p" exec="b" name="b" namespace="sub"/>
      </group>
    </launch>""")
    ns = lambda args: {n.name: n.namespace for n in plan(f, args).nodes}  # noqa: E731
    assert ns({}) == {"root": None, "abs": "/abs", "a": "/", "b": "/sub"}
    assert ns({"namespace": "arm1"}) == {"root": None, "abs": "/abs", "a": "/arm1", "b": "/arm1/sub"}
    assert ns({"__ns": "/arm2"}) == {"root": "/arm2", "abs": "/abs", "a": "/arm2", "b": "/arm2/sub"}
    assert ns({"__ns": "arm2", "namespace": "left"})["b"] == "/arm2/left/sub"
    assert plan(f, ["__ns:=/arm2"]).nodes[0].arguments == ["--ros-args", "-r", "__node:=root", "-r", "__ns:=/arm2"]
    with pytest.raises(LaunchError, match="invalid namespace '/9bad'"):
        plan(f, {"__ns": "/9bad"})


def test_group_forwarding_and_keep(tmp_path):
    f = write(tmp_path, "g.launch.xml", """<launch>
      <let name="x" value="outer"/>
      <let name="y" value="why"/>
      <set_env name="LT_SET" value="1"/>
      <group forwarding="false">
        <keep name="x" value="$(var x)-kept"/>
        <node pkg="p" exec="e" args="$(var x) $(var y default)"/>
      </group>
      <node pkg="p" exec="after" args="$(var x) $(var y)"/>
    </launch>""")
    nodes = plan(f, env={"LT_BASE": "b"}).nodes
    assert nodes[0].arguments[:2] == ["outer-kept", "default"]
    assert nodes[0].env.get("LT_BASE") == "b" and "LT_SET" not in nodes[0].env  # environment reset
    assert nodes[1].arguments[:2] == ["outer", "why"] and nodes[1].env["LT_SET"] == "1"


def test_include_passes_args_and_checks_required(tmp_path):
    write(tmp_path, "child.launch.xml", """<launch>
      <arg name="who"/>
      <arg name="opt" default="d"/>
      <node pkg="p" exec="child" name="$(var who)" args="$(var opt) $(dirname)"/>
    </launch>""")
    f = write(tmp_path, "parent.launch.xml", """<launch>
      <arg name="who" default="w"/>
      <include file="$(dirname)/child.launch.xml">
        <arg name="who" value="$(var who)_child"/>
        <arg name="opt" value="o"/>
      </include>
    </launch>""")
    n = plan(f, {"who": "z"}).nodes[0]
    assert n.arguments == ["o", str(tmp_path), "--ros-args", "-r", "__node:=z_child"]
    bad = write(tmp_path, "bad.launch.xml", """<launch>
      <include file="$(dirname)/child.launch.xml"/>
    </launch>""")
    from robot_rl.launch_runner import LaunchError

    with pytest.raises(LaunchError, match="requires argument 'who'"):
        plan(bad)


def test_yaml_include_of_xml_and_choices(tmp_path):
    write(tmp_path, "child.launch.xml", """<launch><node pkg="p" exec="x" name="n"/></launch>""")
    f = write(tmp_path, "top.launch.yaml", """
launch:
- arg:
    name: mode
    default: a
    choice: [{value: a}, {value: b}]
- include: {file: $(dirname)/child.launch.xml}
""")
    assert [n.name for n in plan(f, {"mode": "b"}).nodes] == ["n"]
    from robot_rl.launch_runner import LaunchError

    with pytest.raises(LaunchError, match="not one of"):
        plan(f, {"mode": "c"})


@pytest.mark.parametrize("xml_value,yaml_value,expected", [
    ("50", "50", "50"),
    ("50.0", "50.0", "50.0"),
    ("0.001", "1.0e-3", "0.001"),
    ("true", "true", "true"),
    ("False", "false", "false"),
    ("hello", "hello", "hello"),
    ("'42'", "\"42\"", "'42'"),
    ("[1, 2, 3]", "[1, 2, 3]", "[1, 2, 3]"),
    ("[1.5, 2.5]", "[1.5, 2.5]", "[1.5, 2.5]"),
    ("[a, 'true']", "[a, 'true']", "[a, 'true']"),
    ("", "''", "''"),
])
def test_parameter_values_xml_yaml(tmp_path, xml_value, yaml_value, expected):
    fx = write(tmp_path, "p.launch.xml", f"""<launch><node pkg="p" exec="e">
      <param name="v" value="{xml_value}"/></node></launch>""")
    fy = write(tmp_path, "p.launch.yaml", f"""launch:
- node:
    pkg: p
    exec: e
    param:
    - name: v
      value: {yaml_value}
""")
    assert plan(fx).nodes[0].arguments == ["--ros-args", "-p", f"v:={expected}"]
    assert plan(fy).nodes[0].arguments == ["--ros-args", "-p", f"v:={expected}"]


def test_rendered_parameter_values_parse_back():
    """-p text the node (rcl rules) and ros2 launch (PyYAML) both read back as the value."""
    from robot_rl.transport.param_values import parse_param_value

    for v in [0, -3, 2.5, 1e20, 1e-7, 1.0, True, False, "x", "true", "1", "a: b", "it's", "", "1e3", "y", "N",
              "inf", "nan", "0x1F", "010", "1_000", "~", "null", "/a/b", [1, 2], [0.5, 1.0], ["a", "b c"],
              ["1e3", "y"], [True, False], float("inf"), float("-inf")]:
        text = render_param_value(v)
        assert yaml.safe_load(text) == v, (v, text)
        got = parse_param_value(text)
        assert got == v and type(got) is type(v), (v, text, got)


def test_typed_parameters(tmp_path):
    f = write(tmp_path, "t.launch.xml", """<launch><node pkg="p" exec="e">
      <param name="s" value="true" type="str"/>
      <param name="i" value="7" type="int"/>
      <param name="f" value="7" type="float"/>
      <param name="b" value="1" type="bool"/>
      <param name="ls" value="[a, b]" type="list[str]"/>
      <param name="lf" value="[1, 2]" type="list[float]"/>
    </node></launch>""")
    assert plan(f).nodes[0].arguments == [
        "--ros-args", "-p", "s:='true'", "-p", "i:=7", "-p", "f:=7.0", "-p", "b:=true",
        "-p", "ls:=[a, b]", "-p", "lf:=[1.0, 2.0]"]


def test_find_pkg_share_source_tree_and_env(tmp_path):
    f = write(tmp_path, "s.launch.xml", """<launch>
      <node pkg="p" exec="e" args="$(find-pkg-share robot_rl) $(env LAUNCH_TEST_X fallback) $(optenv NOPE_X)"/>
    </launch>""")
    from robot_rl.launch_runner.ament import source_root

    root = source_root()
    assert root is not None and (root / "launch").is_dir()
    n = plan(f, env={"LAUNCH_TEST_X": "set"}).nodes[0]
    assert n.arguments[:2] == [str(root), "set"]
    n = plan(f, env={}).nodes[0]
    assert n.arguments[:2] == [str(root), "fallback"]


def test_remaps_and_exec_name_labels(tmp_path):
    f = write(tmp_path, "r.launch.xml", """<launch>
      <node pkg="p" exec="e" name="one"><remap from="a" to="b"/><remap from="~/x" to="/y"/></node>
      <node pkg="p" exec="e"/>
      <node pkg="p" exec="e"/>
      <node pkg="p" exec="e" name="one" exec_name="other"/>
    </launch>""")
    p = plan(f)
    assert p.nodes[0].arguments == ["--ros-args", "-r", "__node:=one", "-r", "a:=b", "-r", "~/x:=/y"]
    assert [n.label for n in p.nodes] == ["one", "e", "e-2", "other"]
    assert any("two nodes named /one" in w for w in p.warnings)


def test_executable_resolution_order(tmp_path, fake_bin, monkeypatch):
    from robot_rl.launch_runner import resolve_executable

    env = {"ROBOT_RL_LAUNCH_EXEC_PATH": str(fake_bin), "PATH": os.environ.get("PATH", "")}
    assert resolve_executable("robot_rl", "talker", env) == [str(fake_bin / "talker")]
    # robot_rl falls back to `python -m robot_rl.nodes.<exec>` when such a module exists
    import importlib.util

    import robot_rl.launch_runner.resolve as res

    monkeypatch.setattr(res, "_module_exists", lambda m: m == "robot_rl.nodes.demo")
    import sys

    assert resolve_executable("robot_rl", "demo", {}) == [sys.executable, "-m", "robot_rl.nodes.demo"]
    assert importlib.util.find_spec("robot_rl.launch_runner") is not None
    # no package: PATH lookup
    assert resolve_executable(None, "sh", {"PATH": "/bin:/usr/bin"})[0].endswith("/sh")


def test_yaml_keeps_yaml_types_xml_converts_text(tmp_path):
    """launch_ros semantics: a quoted YAML string stays a string; XML text is typed by YAML rules;
    a substitution's result is typed by YAML rules in both."""
    fx = write(tmp_path, "q.launch.xml", """<launch><arg name="n" default="50"/><node pkg="p" exec="e">
      <param name="a" value="50"/><param name="b" value="$(var n)"/><param name="c" value="yes"/>
    </node></launch>""")
    fy = write(tmp_path, "q.launch.yaml", """launch:
- arg: {name: n, default: "50"}
- node:
    pkg: p
    exec: e
    param:
    - {name: a, value: "50"}
    - {name: b, value: $(var n)}
    - {name: c, value: "yes"}
""")
    assert plan(fx).nodes[0].arguments == ["--ros-args", "-p", "a:=50", "-p", "b:=50", "-p", "c:=true"]
    assert plan(fy).nodes[0].arguments == ["--ros-args", "-p", "a:='50'", "-p", "b:=50", "-p", "c:='yes'"]
