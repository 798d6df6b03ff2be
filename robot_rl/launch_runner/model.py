"""Parsed launch-file actions (front-end independent) and the resolved node list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .substitutions import Parts


@dataclass
class Condition:
    kind: str  # "if" or "unless"
    expr: Parts


@dataclass
class Action:
    where: str
    cond: Condition | None


@dataclass
class ArgDecl(Action):
    name: str
    default: Parts | None
    description: str | None
    choices: list[str] | None


@dataclass
class Let(Action):
    name: Parts
    value: Parts


@dataclass
class SetEnv(Action):
    name: Parts
    value: Parts


@dataclass
class UnsetEnv(Action):
    name: Parts


@dataclass
class PushNamespace(Action):
    namespace: Parts


@dataclass
class Group(Action):
    actions: list[Action]
    scoped: bool
    forwarding: bool
    keeps: list[tuple[Parts, Parts]]


@dataclass
class Include(Action):
    file: Parts
    args: list[tuple[Parts, Parts]]


# A parameter value: parsed text (XML values, YAML strings), a typed YAML scalar, or a YAML list whose
# items are typed scalars or parsed text.
ParamValueType = Union[Parts, bool, int, float, list]


@dataclass
class ParamValue:
    where: str
    name: Parts
    value: ParamValueType | None  # None when ``nested`` is used
    type: str | None
    nested: list["ParamValue"] | None = None


@dataclass
class ParamFile:
    where: str
    path: Parts


@dataclass
class NodeDecl(Action):
    package: Parts | None
    executable: Parts
    name: Parts | None
    namespace: Parts | None
    exec_name: Parts | None
    output: Parts | None
    args: list[Parts]
    ros_args: list[Parts] | None
    cwd: Parts | None
    on_exit: str | None
    sigterm_timeout: float | None
    sigkill_timeout: float | None
    params: list[ParamValue | ParamFile]
    remaps: list[tuple[Parts, Parts]]
    env: list[tuple[Parts, Parts]]


@dataclass
class LaunchFile:
    path: str
    actions: list[Action]


@dataclass
class ArgInfo:
    """A declared launch argument (for ``--show-args`` and the unknown-argument check)."""

    name: str
    description: str | None
    default: str | None  # source text of the default, None when the argument is required
    choices: list[str] | None
    conditional: bool
    file: str


@dataclass
class NodeSpec:
    """One node process, fully resolved: what will be executed and how it is supervised."""

    label: str  # output prefix, ``[label]``
    package: str | None
    executable: str
    name: str | None  # ROS node name given in the launch file (``__node``), if any
    namespace: str | None  # absolute ROS namespace passed as ``__ns``, if any
    command: list[str]  # how the executable is run, e.g. ``[python, -m, robot_rl.nodes.x]``
    arguments: list[str]  # everything after the executable: args, then ``--ros-args ...``
    env: dict[str, str]
    cwd: str | None
    output: str  # screen | log | both
    on_exit_shutdown: bool
    sigterm_timeout: float | None
    sigkill_timeout: float | None
    where: str

    @property
    def argv(self) -> list[str]:
        return [*self.command, *self.arguments]


@dataclass
class LaunchPlan:
    """Result of loading and evaluating a launch file; nothing has been started."""

    file: str
    nodes: list[NodeSpec]
    declared_args: dict[str, ArgInfo]
    launch_configurations: dict[str, str]
    warnings: list[str] = field(default_factory=list)
