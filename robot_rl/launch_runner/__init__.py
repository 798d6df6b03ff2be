"""Run ROS 2 launch files (XML and YAML front ends) without a ROS 2 installation.

``robot-rl launch FILE [NAME:=VALUE ...]`` (:func:`main`) loads a launch file, validates all of it
(arguments, tags, attributes, substitutions, executables, parameter values) before starting
anything, then starts the nodes in order and supervises them (see
:mod:`robot_rl.launch_runner.supervisor`). The files follow the real ``launch_xml`` /
``launch_yaml`` formats, so the same file runs unchanged with ``ros2 launch`` once robot_rl is in
the ament index (:mod:`robot_rl.launch_runner.ament`).

Supported subset (anything else is an error naming the problem):

* tags: ``launch``, ``arg`` (``name default description``, ``<choice value>``), ``let``,
  ``set_env``, ``unset_env``, ``group`` (``scoped forwarding``, ``<keep name value>``),
  ``push-ros-namespace`` / ``push_ros_namespace``, ``include`` (``file``, ``<arg name value>``),
  ``node`` (``pkg exec name namespace exec_name output args ros_args cwd on_exit
  sigterm_timeout sigkill_timeout`` with ``<param name value [type]>``, nested ``<param>``,
  ``<param from="file.yaml">``, ``<remap from to>``, ``<env name value>``); ``if``/``unless`` on
  every action;
* substitutions: ``var env optenv find-pkg-share find-pkg-prefix dirname filename eval not and or
  any all equals notequals``.

Launch arguments are ``NAME:=VALUE``; ``__ns:=/NS`` additionally pushes a ROS namespace around the
whole file (a robot-rl extension; with ``ros2 launch`` use the file's own namespace argument, e.g.
``deploy.launch.xml namespace:=arm1``). ``<param value>`` text is typed with launch_ros's rules
(PyYAML, YAML 1.1) through :func:`robot_rl.transport.param_values.parse_param_value`.

Node processes get the argv ros2 launch gives them:
``<exe> [args] --ros-args -r __node:=NAME -r __ns:=/NS -p name:=value ... -r from:=to ...``
(parameters as ``-p`` rules; parameter files as ``--params-file``). Inside a node,
:func:`robot_rl.transport.ros_args.parse_ros_args` parses that argv (real ``ros2 launch`` passes
``<param>`` elements as a temporary ``--params-file`` instead of ``-p`` rules; nodes must accept
both).

Python API::

    from robot_rl.launch_runner import build_plan, Supervisor
    plan = build_plan("launch/deploy.launch.xml", {"robot": "ur5"})   # validates, starts nothing
    for node in plan.nodes:
        print(node.label, node.argv)
    exit_code = Supervisor(plan.nodes).run()
"""

from __future__ import annotations

import importlib
from typing import Any

# Exports are imported lazily, so `python -m robot_rl.launch_runner.ament` runs without importing
# the rest of the package first.
_EXPORTS = {
    "build_plan": "evaluate",
    "parse_cli_arguments": "evaluate",
    "render_param_value": "evaluate",
    "load_launch_file": "frontend",
    "resolve_executable": "resolve",
    "EXEC_PATH_ENV": "resolve",
    "Supervisor": "supervisor",
    "LaunchError": "errors",
    "LaunchPlan": "model",
    "NodeSpec": "model",
    "ArgInfo": "model",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str]) -> int:
    """``robot-rl launch`` entry point: ``argv`` is what follows ``launch``; returns the exit code."""
    from .cli import main as _main

    return _main(list(argv))


__all__ = ["main", *_EXPORTS]
