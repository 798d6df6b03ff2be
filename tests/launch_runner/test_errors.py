"""Invalid launch files and arguments: one clear line, exit code 2, and no process started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from launch_helpers import REPO, children_of, fake_resolver, runner_env

import robot_rl.launch_runner.supervisor as supervisor_mod
from robot_rl.launch_runner import LaunchError, build_plan, main

GOOD = """<launch>
  <arg name="robot" default="ur5"/>
  <arg name="rate" description="control rate in Hz"/>
  <node pkg="robot_rl" exec="talker" name="talker" args="--state-dir {state}"/>
</launch>"""


@pytest.fixture
def no_popen(monkeypatch):
    """Fail the test if anything tries to start a process."""
    calls = []

    def popen(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(supervisor_mod.subprocess, "Popen", popen)
    return calls


def run_main(capsys, args):
    before = set(children_of(os.getpid()))
    rc = main(args)
    out, err = capsys.readouterr()
    assert set(children_of(os.getpid())) <= before, "a child process was left running"
    return rc, out, err


CASES = {
    "unknown argument": (
        GOOD, ["rate:=50", "robto:=ur10"],
        ["unknown launch argument 'robto'", "did you mean 'robot:=ur10'"]),
    "missing required argument": (
        GOOD, [], ["missing required launch argument 'rate' (control rate in Hz)", "pass rate:=VALUE"]),
    "unknown tag": (
        GOOD.replace("<node", "<nod").replace("args=", "exec_=").replace("/>\n</launch>", "/>\n</launch>"),
        ["rate:=1"], ["unknown tag <nod>", "did you mean 'node'"]),
    "unknown attribute": (
        GOOD.replace('name="talker"', 'nmae="talker"'), ["rate:=1"],
        ["unknown attribute 'nmae' in <node>", "did you mean 'name'"]),
    "unsupported attribute": (
        GOOD.replace('name="talker"', 'name="talker" respawn="true"'), ["rate:=1"],
        ["attribute 'respawn' of <node> is valid in ros2 launch but not supported"]),
    "unsupported tag": (
        GOOD.replace("</launch>", '<executable cmd="ls"/></launch>'), ["rate:=1"],
        ["<executable> is valid in ros2 launch but not supported by robot-rl launch"]),
    "unknown executable": (
        GOOD.replace('exec="talker"', 'exec="no_such_node"'), ["rate:=1"],
        ["unknown executable 'no_such_node' in package 'robot_rl'"]),
    "malformed xml": (
        GOOD.replace("</launch>", ""), ["rate:=1"], ["malformed XML"]),
    "undefined variable": (
        GOOD.replace('name="talker"', 'name="$(var nope)"'), ["rate:=1"],
        ["launch configuration 'nope' does not exist"]),
    "bad condition": (
        GOOD.replace('name="talker"', 'name="talker" if="$(var robot)"'), ["rate:=1"],
        ["'if' condition '$(var robot)' evaluated to 'ur5', which is not a boolean"]),
    "unknown substitution": (
        GOOD.replace('name="talker"', 'name="$(variable robot)"'), ["rate:=1"],
        ["unknown substitution '$(variable ...)'"]),
    "unescaped dollar": (
        GOOD.replace('name="talker"', 'name="talker$5"'), ["rate:=1"],
        ["'$' must start a substitution"]),
    "invalid node name": (
        GOOD.replace('name="talker"', 'name="my-node"'), ["rate:=1"], ["invalid node name 'my-node'"]),
    "bad argument syntax": (GOOD, ["rate=50"], ["invalid launch argument 'rate=50'", "NAME:=VALUE"]),
    "bad parameter value": (
        GOOD.replace("/>\n</launch>", '><param name="p" value="{a: 1}"/></node>\n</launch>'),
        ["rate:=1"], ["parameter 'p' must be a bool, int, float, string or a list"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_errors_are_one_line_exit_2_and_start_nothing(case, tmp_path, fake_bin, state_dir, capsys,
                                                      monkeypatch, no_popen):
    text, args, needles = CASES[case]
    f = tmp_path / "bad.launch.xml"
    f.write_text(text.replace("{state}", str(state_dir)))
    monkeypatch.setenv("ROBOT_RL_LAUNCH_EXEC_PATH", str(fake_bin))
    rc, out, err = run_main(capsys, [str(f), *args])
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("robot-rl launch: error: ")
    for needle in needles:
        assert needle in lines[0]
    assert not no_popen
    assert list(state_dir.iterdir()) == []


YAML_CASES = {
    "yaml unknown key": ("launch:\n- node: {pkg: p, exec: e, nmae: x}\n", ["unknown attribute 'nmae' in <node>"]),
    "yaml unquoted number": ("launch:\n- arg: {name: rate, default: 50}\n",
                             ["attribute 'default' of <arg> must be a string", "quote it"]),
    "yaml two keys": ("launch:\n- node: {pkg: p, exec: e}\n  arg: {name: x}\n", ["exactly one key"]),
    "yaml malformed": ("launch:\n- node: {pkg: p\n", ["malformed YAML"]),
    "yaml root": ("nodes:\n- node: {pkg: p, exec: e}\n", ["root element must be <launch>"]),
    "yaml timeout int": ("launch:\n- node: {pkg: p, exec: e, sigterm_timeout: 5}\n", ["must be a float"]),
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_yaml_errors(case, tmp_path, capsys, no_popen):
    text, needles = YAML_CASES[case]
    f = tmp_path / "bad.launch.yaml"
    f.write_text(text)
    rc, out, err = run_main(capsys, [str(f)])
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err


def test_error_names_file_and_line(tmp_path):
    f = tmp_path / "l.launch.xml"
    f.write_text("<launch>\n\n  <node pkg='p' exec='e'/>\n  <node pkg='p' exec='e' bogus='1'/>\n</launch>\n")
    with pytest.raises(LaunchError) as e:
        build_plan(str(f), resolver=fake_resolver)
    assert str(e.value).startswith(f"{f}:4 <node>: unknown attribute 'bogus'")


def test_missing_file_and_python_launch_files(tmp_path, capsys, no_popen):
    rc, _, err = run_main(capsys, [str(tmp_path / "nope.launch.xml")])
    assert rc == 2 and "launch file not found" in err
    py = tmp_path / "x.launch.py"
    py.write_text("def generate_launch_description(): pass\n")
    rc, _, err = run_main(capsys, [str(py)])
    assert rc == 2 and "Python launch files are not supported" in err


def test_include_errors(tmp_path):
    f = tmp_path / "i.launch.xml"
    f.write_text('<launch><include file="$(dirname)/missing.launch.xml"/></launch>')
    with pytest.raises(LaunchError, match="included launch file not found"):
        build_plan(str(f), resolver=fake_resolver)
    f.write_text('<launch><include file="$(dirname)/i.launch.xml"/></launch>')
    with pytest.raises(LaunchError, match="include cycle"):
        build_plan(str(f), resolver=fake_resolver)


def test_cli_subprocess_error_starts_nothing(tmp_path, fake_bin, state_dir):
    """End to end: the real CLI process exits 2 with one line and no node ever ran."""
    f = tmp_path / "bad.launch.xml"
    # the first node is valid; the second has an unknown executable: nothing may start
    f.write_text(f"""<launch>
      <node pkg="robot_rl" exec="talker" name="talker" args="--state-dir {state_dir}"/>
      <node pkg="robot_rl" exec="missing_node" name="other"/>
    </launch>""")
    r = subprocess.run([sys.executable, "-m", "robot_rl.launch_runner", str(f)], capture_output=True,
                       text=True, env=runner_env(fake_bin, tmp_path), cwd=str(REPO), timeout=60)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert "unknown executable 'missing_node'" in r.stderr
    assert list(state_dir.iterdir()) == []


def test_show_args(tmp_path, capsys):
    f = Path(__file__).parent / "data" / "graph.launch.xml"
    rc, out, _ = run_main(capsys, ["--show-args", str(f)])
    assert rc == 0
    assert "'robot':" in out and "robot model" in out and "(default: 'ur5')" in out
    assert "Valid choices are: ['sim', 'real']" in out
