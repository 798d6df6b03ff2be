"""Parse ROS 2 command-line arguments (``--ros-args ... [--]``) the way rcl does.

A launch runner starts a node as ``python -m pkg.node --ros-args -r __node:=arm -r __ns:=/robot
-r joint_states:=/arm/joint_states -p rate:=500.0 --params-file cfg.yaml``. ``parse_ros_args``
turns such an argv into a :class:`RosArgs`::

    args = parse_ros_args(sys.argv[1:])
    args.remaps          # [RemapRule(joint_states:=/arm/joint_states)]   (node-prefixed rules kept)
    args.params          # {"rate": 500.0}                                  (YAML-typed values)
    args.node_name       # "arm"   (from __node:= / __name:=), or None
    args.namespace       # "/robot" (from __ns:=), or None
    args.remaining       # argv with every ROS section removed (for the node's own argparse)

Supported inside ``--ros-args`` (several sections may appear; each ends at ``--`` or the end):
``-r/--remap [node:]from:=to``, ``-p/--param [node:]name:=value``, ``--params-file FILE``,
``-e/--enclave NAME``, ``--log-level [logger:=]LEVEL``, ``--log-config-file FILE``,
``--log-file-name NAME``, and the ``--enable-/--disable-`` ``rosout-logs``/``stdout-logs``/
``external-lib-logs`` flags. Anything else inside a ROS section is an error, as in rcl.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from . import param_values as _param_values
from .names import NameError_, RemapRule, normalize_namespace, validate_node_name

__all__ = ["RosArgs", "RosArgsError", "parse_ros_args", "parse_param_value", "load_params_file"]


class RosArgsError(ValueError):
    """Malformed ROS arguments."""


@dataclass
class RosArgs:
    """The result of :func:`parse_ros_args`."""

    remaps: list[RemapRule] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    node_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # "node:name:=v" rules
    node_name: str | None = None
    namespace: str | None = None
    node_name_rules: dict[str, str] = field(default_factory=dict)  # old node name -> new (node:__node:=)
    namespace_rules: dict[str, str] = field(default_factory=dict)
    params_files: list[str] = field(default_factory=list)
    enclave: str | None = None
    log_levels: dict[str, str] = field(default_factory=dict)  # "" = default level
    log_config_file: str | None = None
    log_file_name: str | None = None
    log_flags: dict[str, bool] = field(default_factory=dict)
    remaining: list[str] = field(default_factory=list)

    def name_for(self, default_name: str) -> str:
        """Node name after ``__node:=`` rules (a node-specific rule beats a global one)."""
        return self.node_name_rules.get(default_name) or self.node_name or default_name

    def namespace_for(self, node_name: str, default_namespace: str) -> str:
        """Namespace after ``__ns:=`` rules."""
        return self.namespace_rules.get(node_name) or self.namespace or default_namespace

    def remaps_for(self, node_name: str) -> list[RemapRule]:
        """Topic remap rules that apply to ``node_name`` (in command-line order)."""
        return [r for r in self.remaps if r.node is None or r.node == node_name]

    def params_for(self, node_name: str, fully_qualified_name: str | None = None) -> dict[str, Any]:
        """Parameter overrides for a node: params files (``/**`` and this node's section), then
        global ``-p`` rules, then ``-p node:name:=value`` rules (later wins)."""
        out: dict[str, Any] = {}
        for path in self.params_files:
            out.update(load_params_file(path, node_name, fully_qualified_name))
        out.update(self.params)
        out.update(self.node_params.get(node_name, {}))
        return out


_LOG_FLAGS = {
    f"--{state}-{what}": (what, state == "enable")
    for state in ("enable", "disable") for what in ("rosout-logs", "stdout-logs", "external-lib-logs")
}
_VALUE_FLAGS = {"-r", "--remap", "-p", "--param", "--params-file", "-e", "--enclave", "--log-level",
                "--log-config-file", "--log-file-name"}


def parse_ros_args(argv: Sequence[str] | None) -> RosArgs:
    """Parse ROS arguments out of ``argv`` (typically ``sys.argv[1:]``); see the module docstring."""
    out = RosArgs()
    if not argv:
        return out
    argv = list(argv)
    i = 0
    in_ros = False
    unknown: list[str] = []
    while i < len(argv):
        arg = argv[i]
        if not in_ros:
            if arg == "--ros-args":
                in_ros = True
            else:
                out.remaining.append(arg)
            i += 1
            continue
        if arg == "--":
            in_ros = False
            i += 1
            continue
        if arg == "--ros-args":
            i += 1
            continue
        if arg in _LOG_FLAGS:
            what, on = _LOG_FLAGS[arg]
            out.log_flags[what] = on
            i += 1
            continue
        if arg in _VALUE_FLAGS:
            if i + 1 >= len(argv) or argv[i + 1] in ("--", "--ros-args"):
                raise RosArgsError(f"ROS argument {arg} needs a value")
            _apply(out, arg, argv[i + 1])
            i += 2
            continue
        unknown.append(arg)
        i += 1
    if unknown:
        raise RosArgsError(f"unknown ROS arguments {unknown}: inside --ros-args only -r, -p, --params-file, "
                           "-e, --log-level, --log-config-file, --log-file-name and the log flags are understood; "
                           "put your own arguments before --ros-args or after '--'")
    return out


def _apply(out: RosArgs, flag: str, value: str) -> None:
    if flag in ("-r", "--remap"):
        try:
            rule = RemapRule.parse(value)
        except NameError_ as e:
            raise RosArgsError(f"bad remap rule {value!r}: {e}") from None
        if rule.src in ("__node", "__name"):
            try:
                validate_node_name(rule.dst)
            except NameError_ as e:
                raise RosArgsError(str(e)) from None
            if rule.node:
                out.node_name_rules[rule.node] = rule.dst
            else:
                out.node_name = rule.dst
        elif rule.src == "__ns":
            try:
                ns = normalize_namespace(rule.dst)
            except NameError_ as e:
                raise RosArgsError(str(e)) from None
            if rule.node:
                out.namespace_rules[rule.node] = ns
            else:
                out.namespace = ns
        elif rule.src.startswith("__"):
            raise RosArgsError(f"unknown special remap {value!r} (known: __node, __name, __ns)")
        else:
            out.remaps.append(rule)
    elif flag in ("-p", "--param"):
        if ":=" not in value:
            raise RosArgsError(f"parameter rule {value!r} must look like 'name:=value'")
        lhs, raw = value.split(":=", 1)
        node = None
        if ":" in lhs:
            node, lhs = lhs.split(":", 1)
        if not lhs or not re.match(r"^[A-Za-z_][A-Za-z0-9_./]*$", lhs):
            raise RosArgsError(f"invalid parameter name {lhs!r} in {value!r}")
        try:
            parsed = parse_param_value(raw)
        except RosArgsError as e:
            raise RosArgsError(f"-p {value}: {e}") from None
        if node:
            out.node_params.setdefault(node, {})[lhs] = parsed
        else:
            out.params[lhs] = parsed
    elif flag == "--params-file":
        out.params_files.append(value)
    elif flag in ("-e", "--enclave"):
        out.enclave = value
    elif flag == "--log-level":
        if ":=" in value:
            logger, level = value.split(":=", 1)
        else:
            logger, level = "", value
        if level.lower() not in ("debug", "info", "warn", "warning", "error", "fatal", "unset"):
            raise RosArgsError(f"unknown log level {level!r}")
        out.log_levels[logger] = level.lower()
    elif flag == "--log-config-file":
        out.log_config_file = value
    elif flag == "--log-file-name":
        out.log_file_name = value


def parse_param_value(text: str) -> Any:
    """Type a ``-p name:=value`` value exactly as rcl does (bool, int, float, string or a list of
    one type; quotes force a string: ``'1'`` is the string ``"1"``). See
    :mod:`robot_rl.transport.param_values` for the rules; raises :class:`RosArgsError`."""
    try:
        return _param_values.parse_param_value(text, rules="rcl")
    except _param_values.ParamValueError as e:
        raise RosArgsError(str(e)) from None


def load_params_file(path: str, node_name: str, fully_qualified_name: str | None = None) -> dict[str, Any]:
    """Parameters for one node from a ROS 2 params YAML file (``/**``, ``node`` or ``/ns/node`` keys
    with a ``ros__parameters`` mapping; nested mappings become dotted names). Values are typed by
    rcl's rules (:func:`robot_rl.transport.param_values.parse_params_yaml`)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise RosArgsError(f"--params-file {path}: {e}") from None
    try:
        doc = _param_values.parse_params_yaml(text) or {}
    except _param_values.ParamValueError as e:
        raise RosArgsError(f"--params-file {path}: {e}") from None
    if not isinstance(doc, dict):
        raise RosArgsError(f"--params-file {path}: top level must be a mapping of node names")
    fqn = fully_qualified_name or "/" + node_name
    keys = ["/**", "**", node_name, fqn, fqn.lstrip("/")]
    out: dict[str, Any] = {}
    for key in keys:
        section = doc.get(key)
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            out.update(_flatten(section["ros__parameters"]))
    return out


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out
