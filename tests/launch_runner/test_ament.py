"""The ament install layout is what ament_index_python, ros2 run and ros2 launch look for."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import pytest
from launch_helpers import REPO

from robot_rl.launch_runner import build_plan, main
from robot_rl.launch_runner.ament import (
    install_ament_index,
    package_xml_text,
    share_dir,
    source_root,
)

PKG_XML = REPO / "packaging" / "ament" / "package.xml"


# --- the lookups of ament_index_python / ros2pkg / ros2run / ros2launch, as their sources do them ---

def ament_get_package_prefix(package: str, env: dict) -> str:
    # ament_index_python.packages.get_package_prefix -> resources.get_resource('packages', name)
    for path in [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p and os.path.exists(p)]:
        if os.path.isfile(os.path.join(path, "share", "ament_index", "resource_index", "packages", package)):
            return path
    raise LookupError(package)


def ros2pkg_get_executable_paths(package: str, env: dict) -> list[str]:
    base = os.path.join(ament_get_package_prefix(package, env), "lib", package)
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d[0] != ".")
        for filename in sorted(filenames):
            path = os.path.join(dirpath, filename)
            if os.access(path, os.X_OK):
                out.append(path)
    return out


def ros2launch_share_file(package: str, file_name: str, env: dict) -> str:
    share = os.path.join(ament_get_package_prefix(package, env), "share", package)
    matches = [os.path.join(d, file_name) for d, _, files in os.walk(share) if file_name in files]
    assert len(matches) == 1, matches
    return matches[0]


@pytest.fixture
def installed(tmp_path):
    launch_src = tmp_path / "launch_src"
    (launch_src / "sub").mkdir(parents=True)
    (launch_src / "demo.launch.xml").write_text(
        '<launch><arg name="who" default="w"/>'
        '<node pkg="robot_rl" exec="launch_test_only_node" name="$(var who)" '
        'args="$(find-pkg-share robot_rl)"/></launch>')
    (launch_src / "sub" / "other.launch.yaml").write_text("launch: []\n")
    fake_python = tmp_path / "fake_python"
    fake_python.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake_python.chmod(0o755)
    prefix = tmp_path / "install"
    info = install_ament_index(prefix, ["launch_test_only_node", "teleop"], python=str(fake_python),
                               launch_dir=launch_src)
    return prefix, info


def test_layout(installed):
    prefix, info = installed
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "robot_rl"
    assert marker.is_file()
    share = prefix / "share" / "robot_rl"
    assert (share / "package.xml").read_text() == PKG_XML.read_text()
    assert (share / "launch" / "demo.launch.xml").is_file()
    assert (share / "launch" / "sub" / "other.launch.yaml").is_file()
    assert sorted(info["launch_files"]) == ["demo.launch.xml", "sub/other.launch.yaml"]
    env = {"AMENT_PREFIX_PATH": f"/nonexistent{os.pathsep}{prefix}"}
    assert ament_get_package_prefix("robot_rl", env) == str(prefix)
    lib = prefix / "lib" / "robot_rl"
    assert ros2pkg_get_executable_paths("robot_rl", env) == [
        str(lib / "launch_test_only_node"), str(lib / "teleop")]
    other = share / "launch" / "sub" / "other.launch.yaml"
    assert ros2launch_share_file("robot_rl", "other.launch.yaml", env) == str(other)


def test_wrapper_runs_the_node_module(installed):
    prefix, _ = installed
    r = subprocess.run([str(prefix / "lib" / "robot_rl" / "teleop"), "--ros-args", "-r", "__node:=x y"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["-m", "robot_rl.nodes.teleop", "--ros-args", "-r", "__node:=x y"]


def test_reinstall_replaces_previous_files(installed, tmp_path):
    prefix, _ = installed
    install_ament_index(prefix, ["teleop"], python=sys.executable, launch_dir=tmp_path / "launch_src" / "sub")
    assert not (prefix / "lib" / "robot_rl" / "launch_test_only_node").exists()
    assert (prefix / "lib" / "robot_rl" / "teleop").exists()
    assert not (prefix / "share" / "robot_rl" / "launch" / "demo.launch.xml").exists()


def test_share_dir_and_find_pkg_share(installed, tmp_path):
    prefix, _ = installed
    assert share_dir({}) == source_root() == REPO
    assert share_dir({"AMENT_PREFIX_PATH": str(prefix)}) == prefix / "share" / "robot_rl"
    f = prefix / "share" / "robot_rl" / "launch" / "demo.launch.xml"
    env = {"AMENT_PREFIX_PATH": str(prefix), "PATH": os.environ.get("PATH", "")}
    p = build_plan(str(f), env=env)
    # no robot_rl.nodes.launch_test_only_node module: resolved through lib/robot_rl like launch_ros
    assert p.nodes[0].command == [str(prefix / "lib" / "robot_rl" / "launch_test_only_node")]
    assert p.nodes[0].arguments[0] == str(prefix / "share" / "robot_rl")


def test_cli_package_and_file_name(installed, monkeypatch, capsys):
    prefix, _ = installed
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert main(["--dry-run", "robot_rl", "demo.launch.xml", "who:=me"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"[me] {prefix}/lib/robot_rl/launch_test_only_node {prefix}/share/robot_rl --ros-args")


def test_package_xml():
    root = ET.parse(PKG_XML).getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "robot_rl"
    assert root.findtext("version") == version("robot-rl")
    assert root.find("maintainer").get("email")
    for required in ("description", "license"):
        assert root.findtext(required)
    assert root.find("export").findtext("build_type") == "ament_python"
    assert package_xml_text() == PKG_XML.read_text()
    marker = REPO / "packaging" / "ament" / "resource_index" / "packages" / "robot_rl"
    assert marker.is_file()


def test_install_cli(tmp_path):
    r = subprocess.run([sys.executable, "-m", "robot_rl.launch_runner.ament", "install", "--prefix",
                        str(tmp_path / "p"), "--exec", "teleop"], capture_output=True, text=True,
                       cwd=str(REPO), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert os.access(tmp_path / "p" / "lib" / "robot_rl" / "teleop", os.X_OK)
    assert (tmp_path / "p" / "share" / "robot_rl" / "local_setup.sh").is_file()


def _ros_python() -> Path | None:
    venv = Path(os.environ.get("ROS_VENV", REPO / ".ros-venv"))
    py = venv / "bin" / "python"
    return py if py.exists() else None


def test_real_ament_index_python_finds_the_install(installed):
    """With the real ament_index_python (from the rclpy environment of scripts/setup_ros.sh)."""
    py = _ros_python()
    if py is None:
        pytest.fail("no ROS 2 Python environment: run scripts/setup_ros.sh (scripts/test.sh does)")
    prefix, _ = installed
    code = ("from ament_index_python.packages import get_package_share_directory, get_package_prefix\n"
            "print(get_package_prefix('robot_rl')); print(get_package_share_directory('robot_rl'))")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "AMENT_PREFIX_PATH": str(prefix)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2:] == [str(prefix), str(prefix / "share" / "robot_rl")]
