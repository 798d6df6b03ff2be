"""Visit parsed launch actions like ros2 launch does and produce the resolved node list.

Semantics follow ros2/launch and launch_ros:

* command-line ``name:=value`` arguments become launch configurations before the file is visited;
  ``<arg>`` sets its default only when the configuration is not set yet; ``<let>`` always sets;
* ``<group>`` is scoped by default (configurations, the pushed ROS namespace and ``set_env`` are
  restored after it; ``forwarding="false"`` starts from an empty scope; ``<keep>`` carries values in);
* ``<include>`` sets its ``<arg>`` values as launch configurations in the *current* scope (like
  ros2 launch; wrap it in a ``<group>`` to scope them) and fails when an unconditional argument
  without default of the included file is not given;
* ``if``/``unless`` accept ``true``/``false``/``1``/``0`` (case-insensitive), anything else is an error;
* a node's namespace is prefixed by the pushed ROS namespace unless absolute; ``__ns:=/NS`` among
  the command-line arguments pushes ``/NS`` around the whole file (robot-rl only, see
  :data:`ROOT_NAMESPACE_ARG`);
* node argv: ``<exe> [args] [--ros-args <ros_args>] --ros-args [-r __node:=N] [-r __ns:=/NS]
  [-p name:=value | --params-file F]... [-r from:=to]...``.

Parameter values are typed exactly like launch_ros does it (see :mod:`.params`: in XML ``"50"`` is
an integer and ``"[1.0, 2.0]"`` a double array; in YAML the YAML type is kept) and passed
canonically as ``-p name:=value`` (ros2 launch writes ``<param>`` elements into a temporary
parameter file instead; the node sees the same typed parameters).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from . import ament
from . import params as param_values
from .errors import LaunchError
from .frontend import load_launch_file, parts_source, static_args
from .model import (
    Action,
    ArgDecl,
    ArgInfo,
    Group,
    Include,
    LaunchFile,
    LaunchPlan,
    Let,
    NodeDecl,
    NodeSpec,
    ParamFile,
    PushNamespace,
    SetEnv,
    UnsetEnv,
)
from .resolve import Resolver, resolve_executable
from .substitutions import evaluate

__all__ = ["build_plan", "parse_cli_arguments", "render_param_value", "ROOT_NAMESPACE_ARG"]

ROOT_NAMESPACE_ARG = "__ns"
"""``__ns:=/arm1`` among the launch arguments pushes that ROS namespace around the whole file (as if
it were included inside ``<group><push-ros-namespace namespace="/arm1"/>``). A robot-rl extension:
``ros2 launch`` would take it for an ordinary (unused) launch argument."""

_MAX_INCLUDE_DEPTH = 40
_OUTPUTS = ("screen", "log", "both")


class _Context:
    def __init__(self, configs: dict[str, str], env: dict[str, str], current_file: str):
        self.configs = configs
        self.env = env
        self.current_file = current_file
        self._initial_env = dict(env)
        self._stack: list[tuple[dict[str, str], dict[str, str]]] = []

    def find_pkg_share(self, package: str) -> str:
        return ament.find_package_share(package, self.env)

    def find_pkg_prefix(self, package: str) -> str:
        return ament.find_package_prefix_or_error(package, self.env)

    def push(self, *, forwarding: bool) -> None:
        self._stack.append((self.configs, self.env))
        # forwarding=False: launch configurations are cleared and the environment is reset to what
        # it was when the launch started (launch's ResetLaunchConfigurations / ResetEnvironment)
        self.configs = dict(self.configs) if forwarding else {}
        self.env = dict(self.env) if forwarding else dict(self._initial_env)

    def pop(self) -> None:
        self.configs, self.env = self._stack.pop()


def parse_cli_arguments(items: Sequence[str]) -> dict[str, str]:
    """``["robot:=ur5", ...]`` -> ``{"robot": "ur5"}`` (later values win, as in ros2 launch)."""
    out: dict[str, str] = {}
    for item in items:
        if ":=" not in item:
            raise LaunchError(f"invalid launch argument {item!r}",
                              fix="pass launch arguments as NAME:=VALUE after the launch file")
        name, value = item.split(":=", 1)
        if not name:
            raise LaunchError(f"invalid launch argument {item!r}: empty name",
                              fix="pass launch arguments as NAME:=VALUE")
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# names and namespaces (rmw rules, as validated by rclpy.validate_node_name / validate_namespace)

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _validate_node_name(name: str, where: str) -> None:
    if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise LaunchError(
            f"invalid node name {name!r}: it must be non-empty, contain only letters, digits and "
            "underscores, and not start with a digit",
            fix="rename the node", where=where)


def _validate_namespace(ns: str, where: str) -> None:
    ok = ns == "/" or (ns.startswith("/") and not ns.endswith("/")
                       and all(_TOKEN.fullmatch(t) for t in ns[1:].split("/")))
    if not ok:
        raise LaunchError(
            f"invalid namespace {ns!r}: tokens separated by single '/' may contain only letters, "
            "digits and underscores and must not start with a digit",
            fix="fix the namespace or the pushed namespace", where=where)


def _prefix_namespace(base: str | None, ns: str | None) -> str | None:
    # launch_ros.utilities.prefix_namespace
    if base is None and ns is None:
        return None
    if ns is None:
        combined = base
    elif not base or ns.startswith("/"):
        combined = ns
    else:
        combined = ("" if base == "/" else base) + "/" + ns
    assert combined is not None
    if combined != "/":
        combined = combined.rstrip("/")
    return combined


def _absolute(ns: str | None) -> str | None:
    if ns is None:
        return None
    return ns if ns.startswith("/") else "/" + ns


# ---------------------------------------------------------------------------------------------
# parameters


def render_param_value(value: Any) -> str:
    """YAML text for ``-p name:=<text>`` that parses back to ``value``."""
    return param_values.render(value)


def _expand_params(params: list, ctx: _Context, prefix: str = "") -> list[str]:
    out: list[str] = []
    for p in params:
        if isinstance(p, ParamFile):
            path = os.path.abspath(evaluate(p.path, ctx))
            if not os.path.isfile(path):
                raise LaunchError(f"parameter file not found: {path}",
                                  fix="fix the 'from' path (e.g. $(find-pkg-share robot_rl)/config/x.yaml)",
                                  where=p.where)
            out += ["--params-file", path]
            continue
        name = evaluate(p.name, ctx)
        if not name:
            raise LaunchError("empty parameter name", fix="give the <param> a name", where=p.where)
        full = f"{prefix}.{name}" if prefix else name
        if p.nested is not None:
            out += _expand_params(p.nested, ctx, full)
            continue
        value = param_values.evaluate_value(p.value, p.type, ctx, full, p.where)
        out += ["-p", f"{full}:={param_values.render(value)}"]
    return out


# ---------------------------------------------------------------------------------------------
# visiting


class _Builder:
    def __init__(self, resolver: Resolver, loader):
        self.resolver = resolver
        self.loader = loader
        self.nodes: list[NodeSpec] = []
        self.warnings: list[str] = []
        self.declared: dict[str, ArgInfo] = {}
        self.depth = 0
        self.files: dict[str, LaunchFile] = {}

    def load(self, path: str) -> LaunchFile:
        path = os.path.abspath(path)
        if path not in self.files:
            lf = self.loader(path)
            self.files[path] = lf
            for decl, conditional in static_args(lf):
                self.declared.setdefault(decl.name, ArgInfo(
                    name=decl.name, description=decl.description, default=parts_source(decl.default),
                    choices=decl.choices, conditional=conditional, file=path))
        return self.files[path]

    def condition(self, a: Action, ctx: _Context) -> bool:
        if a.cond is None:
            return True
        raw = evaluate(a.cond.expr, ctx)
        v = raw.strip().lower()
        if v in ("true", "1"):
            value = True
        elif v in ("false", "0"):
            value = False
        else:
            raise LaunchError(
                f"'{a.cond.kind}' condition {parts_source(a.cond.expr)!r} evaluated to {raw!r}, "
                "which is not a boolean",
                fix="conditions must evaluate to true, false, 1 or 0", where=a.where)
        return value if a.cond.kind == "if" else not value

    def visit(self, actions: list[Action], ctx: _Context) -> None:
        for a in actions:
            try:
                self.visit_one(a, ctx)
            except LaunchError as e:
                raise e.located(a.where) from None

    def visit_one(self, a: Action, ctx: _Context) -> None:
        if not self.condition(a, ctx):
            return
        if isinstance(a, ArgDecl):
            if a.name not in ctx.configs:
                if a.default is None:
                    desc = f" ({a.description})" if a.description else ""
                    raise LaunchError(f"required launch argument '{a.name}'{desc} was not provided",
                                      fix=f"pass {a.name}:=VALUE")
                ctx.configs[a.name] = evaluate(a.default, ctx)
            if a.choices is not None and ctx.configs[a.name] not in a.choices:
                raise LaunchError(
                    f"argument '{a.name}' has value {ctx.configs[a.name]!r}, which is not one of "
                    f"{a.choices}", fix=f"pass {a.name}:=<one of {', '.join(a.choices)}>")
        elif isinstance(a, Let):
            ctx.configs[evaluate(a.name, ctx)] = evaluate(a.value, ctx)
        elif isinstance(a, SetEnv):
            ctx.env[evaluate(a.name, ctx)] = evaluate(a.value, ctx)
        elif isinstance(a, UnsetEnv):
            ctx.env.pop(evaluate(a.name, ctx), None)
        elif isinstance(a, PushNamespace):
            pushed = evaluate(a.namespace, ctx)
            ns = _absolute(_prefix_namespace(ctx.configs.get("ros_namespace"), pushed))
            _validate_namespace(ns, a.where)
            ctx.configs["ros_namespace"] = ns
        elif isinstance(a, Group):
            if a.scoped:
                keeps = [(evaluate(k, ctx), evaluate(v, ctx)) for k, v in a.keeps]
                ctx.push(forwarding=a.forwarding)
                try:
                    for k, v in keeps:
                        ctx.configs[k] = v
                    self.visit(a.actions, ctx)
                finally:
                    ctx.pop()
            else:
                for k, v in a.keeps:
                    ctx.configs[evaluate(k, ctx)] = evaluate(v, ctx)
                self.visit(a.actions, ctx)
        elif isinstance(a, Include):
            self.include(a, ctx)
        elif isinstance(a, NodeDecl):
            self.node(a, ctx)
        else:  # pragma: no cover
            raise AssertionError(a)

    def include(self, a: Include, ctx: _Context) -> None:
        path = os.path.abspath(evaluate(a.file, ctx))
        if not os.path.isfile(path):
            raise LaunchError(
                f"included launch file not found: {path}",
                fix="use $(dirname)/<file> for a file next to this one, or "
                    "$(find-pkg-share <pkg>)/launch/<file>")
        if self.depth >= _MAX_INCLUDE_DEPTH:
            raise LaunchError(f"includes nested more than {_MAX_INCLUDE_DEPTH} deep (include cycle?)",
                              fix="remove the recursive <include>")
        lf = self.load(path)
        given = [evaluate(n, ctx) for n, _ in a.args]
        for decl, conditional in static_args(lf):
            if not conditional and decl.default is None and decl.name not in given:
                raise LaunchError(
                    f"included file {path} requires argument '{decl.name}', which the <include> "
                    f"does not pass (given: {', '.join(given) or 'none'})",
                    fix=f"add <arg name=\"{decl.name}\" value=\"...\"/> to the <include>")
        for n, v in a.args:
            ctx.configs[evaluate(n, ctx)] = evaluate(v, ctx)
        saved = ctx.current_file
        ctx.current_file = path
        self.depth += 1
        try:
            self.visit(lf.actions, ctx)
        finally:
            self.depth -= 1
            ctx.current_file = saved

    def node(self, a: NodeDecl, ctx: _Context) -> None:
        w = a.where
        package = evaluate(a.package, ctx) if a.package is not None else None
        executable = evaluate(a.executable, ctx)
        name = None
        if a.name is not None:
            name = evaluate(a.name, ctx)
            _validate_node_name(name, w)
        expanded_ns = evaluate(a.namespace, ctx) if a.namespace is not None else None
        ns = _absolute(_prefix_namespace(ctx.configs.get("ros_namespace"), expanded_ns))
        if ns is not None:
            _validate_namespace(ns, w)

        output = evaluate(a.output, ctx) if a.output is not None else "log"
        override = ctx.env.get("OVERRIDE_LAUNCH_PROCESS_OUTPUT")
        if override:
            output = override
        if output not in _OUTPUTS:
            raise LaunchError(f"unsupported output {output!r} for <node>",
                              fix=f"use one of: {', '.join(_OUTPUTS)}", where=w)

        args = [evaluate(x, ctx) for x in a.args]
        ros_args = [evaluate(x, ctx) for x in a.ros_args] if a.ros_args is not None else None
        params = _expand_params(a.params, ctx)
        remaps = []
        for src, dst in a.remaps:
            s, d = evaluate(src, ctx), evaluate(dst, ctx)
            if not s or not d:
                raise LaunchError(f"empty remapping {s!r} -> {d!r}", fix="give both 'from' and 'to'",
                                  where=w)
            remaps += ["-r", f"{s}:={d}"]
        env = dict(ctx.env)
        for k, v in a.env:
            env[evaluate(k, ctx)] = evaluate(v, ctx)
        env.setdefault("PYTHONUNBUFFERED", "1")
        cwd = evaluate(a.cwd, ctx) if a.cwd is not None else None
        if cwd is not None and not os.path.isdir(cwd):
            raise LaunchError(f"cwd {cwd!r} of <node> is not a directory", fix="fix the cwd attribute",
                              where=w)

        try:
            command = self.resolver(package, executable, env)
        except LaunchError as e:
            raise e.located(w) from None

        arguments = list(args)
        if ros_args is not None:
            arguments += ["--ros-args", *ros_args]
        arguments.append("--ros-args")
        if name is not None:
            arguments += ["-r", f"__node:={name}"]
        if ns is not None:
            arguments += ["-r", f"__ns:={ns}"]
        arguments += params
        arguments += remaps

        # exec_name is launch's explicit process label; else the node name; else the executable.
        label = ((evaluate(a.exec_name, ctx) if a.exec_name is not None else None) or name
                 or os.path.basename(executable))
        taken = {n.label for n in self.nodes}
        if label in taken:
            i = 2
            while f"{label}-{i}" in taken:
                i += 1
            label = f"{label}-{i}"
        if name is not None:
            full = (ns.rstrip("/") if ns else "") + "/" + name
            for other in self.nodes:
                if other.name == name and (other.namespace or "/") == (ns or "/"):
                    self.warnings.append(f"there are now at least two nodes named {full} ({w})")
                    break

        self.nodes.append(NodeSpec(
            label=label, package=package, executable=executable, name=name, namespace=ns,
            command=list(command), arguments=arguments, env=env, cwd=cwd, output=output,
            on_exit_shutdown=a.on_exit == "shutdown", sigterm_timeout=a.sigterm_timeout,
            sigkill_timeout=a.sigkill_timeout, where=w,
        ))


def build_plan(
    path: str,
    arguments: dict[str, str] | Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    resolver: Resolver | None = None,
) -> LaunchPlan:
    """Load ``path``, apply ``arguments`` (``{"name": "value"}`` or ``["name:=value"]``; ``__ns`` pushes
    a ROS namespace around the whole file), visit it.

    Everything is validated (unknown or missing arguments, unknown tags and attributes,
    substitutions, executables, parameter values) before this returns; nothing is started.
    Raises :class:`LaunchError`.
    """
    cli = dict(arguments) if isinstance(arguments, dict) else parse_cli_arguments(arguments)
    root_ns = cli.pop(ROOT_NAMESPACE_ARG, None)
    if root_ns is not None:  # robot-rl extension: the whole file in a pushed ROS namespace
        root_ns = _absolute(_prefix_namespace(None, root_ns.strip()))
        _validate_namespace(root_ns, f"{ROOT_NAMESPACE_ARG}:= on the command line")
    env = dict(os.environ if env is None else env)
    path = os.path.abspath(path)
    builder = _Builder(resolver or resolve_executable, load_launch_file)
    top = builder.load(path)

    def unknown_error() -> LaunchError | None:
        unknown = [n for n in cli if n not in builder.declared]
        if not unknown:
            return None
        import difflib

        name = unknown[0]
        close = difflib.get_close_matches(name, list(builder.declared), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}:={cli[name]}'? " if close else ""
        declared = ", ".join(sorted(builder.declared)) or "none"
        return LaunchError(f"unknown launch argument '{name}' (given as {name}:={cli[name]}); "
                           f"{os.path.basename(path)} declares: {declared}",
                           fix=f"{hint}remove it or declare it with <arg name=\"{name}\"/>")

    for decl, conditional in static_args(top):
        if not conditional and decl.default is None and decl.name not in cli:
            desc = f" ({decl.description})" if decl.description else ""
            err = unknown_error()
            if err is not None:
                raise err
            raise LaunchError(f"missing required launch argument '{decl.name}'{desc}",
                              fix=f"pass {decl.name}:=VALUE on the command line", where=path)

    ctx = _Context(dict(cli), env, path)
    if root_ns is not None:
        ctx.configs["ros_namespace"] = root_ns
    try:
        builder.visit(top.actions, ctx)
    except LaunchError:
        err = unknown_error()
        if err is not None:
            raise err from None
        raise
    err = unknown_error()
    if err is not None:
        raise err
    return LaunchPlan(file=path, nodes=builder.nodes, declared_args=builder.declared,
                      launch_configurations=dict(ctx.configs), warnings=builder.warnings)
