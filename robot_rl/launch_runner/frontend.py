"""XML and YAML launch front ends, parsed into :mod:`robot_rl.launch_runner.model` actions.

The formats are those of ros2/launch ``launch_xml`` and ``launch_yaml`` (with launch_ros' ``node``
and ``push-ros-namespace``), so a file accepted here runs unchanged with ``ros2 launch``. Anything
outside the supported subset is rejected with an error instead of being silently ignored.

XML::

    <launch>
      <arg name="robot" default="ur5" description="robot model"/>
      <group>
        <push-ros-namespace namespace="$(var robot)"/>
        <node pkg="robot_rl" exec="policy" name="policy" output="screen">
          <param name="rate_hz" value="50.0"/>
          <remap from="joint_states" to="/joint_states"/>
        </node>
      </group>
    </launch>

YAML (each action is a one-key mapping; ``param``/``remap``/``arg`` are lists of mappings)::

    launch:
    - arg: {name: robot, default: ur5, description: robot model}
    - group:
        children:
        - push-ros-namespace: {namespace: $(var robot)}
        - node:
            pkg: robot_rl
            exec: policy
            name: policy
            param: [{name: rate_hz, value: 50.0}]
            remap: [{from: joint_states, to: /joint_states}]
"""

from __future__ import annotations

import difflib
import os
import shlex
import xml.etree.ElementTree as ET
import xml.parsers.expat
from abc import ABC, abstractmethod
from typing import Any

import yaml

from .errors import LaunchError
from .model import (
    Action,
    ArgDecl,
    Condition,
    Group,
    Include,
    LaunchFile,
    Let,
    NodeDecl,
    ParamFile,
    ParamValue,
    PushNamespace,
    SetEnv,
    UnsetEnv,
)
from .params import TYPE_IDENTIFIERS, from_literal
from .substitutions import Parts, Sub, Text, parse_substitution

__all__ = ["load_launch_file", "SUPPORTED_TAGS", "NODE_ATTRIBUTES"]

_COND = ("if", "unless")

# tag -> (attributes, list sub-entities)
SUPPORTED_TAGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "arg": (("name", "default", "description", *_COND), ("choice",)),
    "let": (("name", "value", *_COND), ()),
    "set_env": (("name", "value", *_COND), ()),
    "unset_env": (("name", *_COND), ()),
    "push-ros-namespace": (("namespace", *_COND), ()),
    "push_ros_namespace": (("namespace", *_COND), ()),
    "group": (("scoped", "forwarding", *_COND), ("keep",)),
    "include": (("file", *_COND), ("arg",)),
    "node": (
        ("pkg", "exec", "name", "namespace", "exec_name", "output", "args", "ros_args", "cwd",
         "on_exit", "sigterm_timeout", "sigkill_timeout", *_COND),
        ("param", "remap", "env"),
    ),
}
NODE_ATTRIBUTES = SUPPORTED_TAGS["node"][0]

_SUB_ATTRS: dict[str, tuple[str, ...]] = {
    "choice": ("value",),
    "keep": ("name", "value"),
    "arg": ("name", "value"),  # include's <arg>
    "remap": ("from", "to"),
    "env": ("name", "value"),
    "param": ("name", "value", "type", "from"),  # plus nested <param>
}

# Valid in ros2 launch, outside the subset this runner implements.
_KNOWN_UNSUPPORTED_TAGS = {
    "executable", "set_parameter", "set_parameters_from_file", "set_remap", "node_container",
    "composable_node", "load_composable_node", "timer", "log", "set_ros_log_dir",
    "set_use_sim_time", "append_env", "prepend_env", "push_env", "pop_env", "reset_env",
    "for", "for_each", "lifecycle_node", "ros_timer", "register_event_handler", "shutdown",
    "set-remap", "set-parameter",
}
_KNOWN_UNSUPPORTED_NODE_ATTRS = {
    "respawn", "respawn_delay", "respawn_max_retries", "launch-prefix", "emulate_tty",
    "shell", "node-name", "cached_output", "log_cmd", "output_format",
}



def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Entity(ABC):
    """Common view of an XML element / a YAML mapping."""

    tag: str
    file: str
    line: int | None
    is_yaml: bool

    @property
    def where(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        return f"{loc} <{self.tag}>"

    @abstractmethod
    def keys(self) -> list[str]:
        ...

    @abstractmethod
    def raw(self, name: str) -> Any:
        ...

    @abstractmethod
    def has(self, name: str) -> bool:
        ...

    @abstractmethod
    def sub_entities(self, name: str) -> list["_Entity"]:
        ...

    @abstractmethod
    def sub_entity_tags(self) -> set[str]:
        ...

    @abstractmethod
    def action_children(self) -> list["_Entity"]:
        ...

    # --- validation ------------------------------------------------------------------------
    def check(self, attrs: tuple[str, ...], subs: tuple[str, ...], *, children: bool = False,
              extra_unsupported: set[str] | None = None) -> None:
        allowed = set(attrs) | set(subs) | ({"children"} if children and self.is_yaml else set())
        for k in self.keys():
            if k in allowed:
                continue
            if extra_unsupported and k in extra_unsupported:
                raise LaunchError(
                    f"attribute '{k}' of <{self.tag}> is valid in ros2 launch but not supported by "
                    "robot-rl launch",
                    fix=f"remove it, or run this file with ros2 launch; supported: {', '.join(sorted(attrs))}",
                    where=self.where,
                )
            raise LaunchError(
                f"unknown attribute '{k}' in <{self.tag}>{_suggest(k, allowed)}",
                fix=f"allowed attributes: {', '.join(sorted(allowed))}",
                where=self.where,
            )
        if not self.is_yaml and not children:
            for t in self.sub_entity_tags():
                if t not in subs:
                    raise LaunchError(
                        f"unexpected element <{t}> inside <{self.tag}>{_suggest(t, subs)}",
                        fix=(f"allowed children: {', '.join('<' + s + '>' for s in subs)}" if subs
                             else f"<{self.tag}> takes no child elements"),
                        where=self.where,
                    )

    # --- typed attribute access ----------------------------------------------------------
    def string(self, name: str, *, required: bool = False) -> str | None:
        if not self.has(name):
            if required:
                raise LaunchError(f"<{self.tag}> is missing the required attribute '{name}'",
                                  fix=f"add {name}=\"...\"", where=self.where)
            return None
        v = self.raw(name)
        if not isinstance(v, str):
            raise LaunchError(
                f"attribute '{name}' of <{self.tag}> must be a string, got {type(v).__name__} {v!r} "
                "(ros2 launch rejects it too)",
                fix=f"quote it: {name}: '{_yaml_scalar(v)}'",
                where=self.where,
            )
        return v

    def subst(self, name: str, *, required: bool = False) -> Parts | None:
        v = self.string(name, required=required)
        if v is None:
            return None
        return parse_substitution(v, where=self.where)

    def boolean(self, name: str) -> bool | None:
        if not self.has(name):
            return None
        v = self.raw(name)
        if isinstance(v, bool):
            return v
        if isinstance(v, str):
            s = v.strip()
            if s == "1":
                return True
            if s == "0":
                return False
            try:
                out = yaml.safe_load(s) if s else None
            except yaml.YAMLError:
                out = None
            if isinstance(out, bool):
                return out
        raise LaunchError(f"attribute '{name}' of <{self.tag}> must be true or false, got {v!r}",
                          fix=f"write {name}=\"true\" or {name}=\"false\"", where=self.where)

    def number(self, name: str) -> float | None:
        if not self.has(name):
            return None
        v = self.raw(name)
        if isinstance(v, bool) or (self.is_yaml and not isinstance(v, float)):
            raise LaunchError(
                f"attribute '{name}' of <{self.tag}> must be a float, got {v!r}",
                fix=f"write it with a decimal point, e.g. {name}: 5.0", where=self.where)
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise LaunchError(f"attribute '{name}' of <{self.tag}> must be a number, got {v!r}",
                              fix=f"e.g. {name}=\"5.0\"", where=self.where) from None
        if f < 0:
            raise LaunchError(f"attribute '{name}' of <{self.tag}> must be non-negative, got {v!r}",
                              fix=f"e.g. {name}=\"5.0\"", where=self.where)
        return f


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class _XmlEntity(_Entity):
    is_yaml = False

    def __init__(self, el: ET.Element, file: str):
        self.el = el
        self.tag = el.tag
        self.file = file
        self.line = getattr(el, "line", None)

    def keys(self) -> list[str]:
        return list(self.el.attrib)

    def has(self, name: str) -> bool:
        return name in self.el.attrib

    def raw(self, name: str) -> Any:
        return self.el.attrib[name]

    def sub_entities(self, name: str) -> list[_Entity]:
        return [_XmlEntity(c, self.file) for c in self.el if c.tag == name]

    def sub_entity_tags(self) -> set[str]:
        return {c.tag for c in self.el}

    def action_children(self) -> list[_Entity]:
        return [_XmlEntity(c, self.file) for c in self.el]


class _LineDict(dict):
    line: int | None = None


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _LineDict:
    d = _LineDict(loader.construct_mapping(node, deep=True))
    d.line = node.start_mark.line + 1
    return d


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _YamlEntity(_Entity):
    is_yaml = True

    def __init__(self, element: Any, tag: str, file: str, line: int | None):
        self.element = element
        self.tag = tag
        self.file = file
        self.line = getattr(element, "line", None) or line

    def _mapping(self) -> dict:
        if isinstance(self.element, dict):
            return self.element
        if self.element is None or isinstance(self.element, list):
            return {}
        raise LaunchError(f"<{self.tag}> must be a mapping of attributes, got {self.element!r}",
                          fix="write it as `- " + self.tag + ": {attribute: value, ...}`",
                          where=self.where)

    def keys(self) -> list[str]:
        return [str(k) for k in self._mapping()]

    def has(self, name: str) -> bool:
        return name in self._mapping()

    def raw(self, name: str) -> Any:
        return self._mapping()[name]

    def sub_entities(self, name: str) -> list[_Entity]:
        m = self._mapping()
        if name not in m:
            return []
        data = m[name]
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise LaunchError(f"'{name}' of <{self.tag}> must be a list of mappings",
                              fix=f"write `{name}: [{{...}}, ...]`", where=self.where)
        return [_YamlEntity(x, name, self.file, self.line) for x in data]

    def sub_entity_tags(self) -> set[str]:
        return set()

    def action_children(self) -> list[_Entity]:
        if isinstance(self.element, list):
            children = self.element
        elif isinstance(self.element, dict):
            if "children" not in self.element:
                return []
            children = self.element["children"]
        else:
            children = None
        if not isinstance(children, list):
            raise LaunchError(f"the children of <{self.tag}> must be a list of actions",
                              fix="write `children: [- node: {...}, ...]`", where=self.where)
        out = []
        for child in children:
            if not isinstance(child, dict) or len(child) != 1:
                raise LaunchError(
                    f"each child of <{self.tag}> must be a mapping with exactly one key (the action "
                    f"type), got {child!r}",
                    fix="write `- node: {pkg: ..., exec: ...}`",
                    where=self.where,
                )
            (tag, body), = child.items()
            out.append(_YamlEntity(body, str(tag), self.file, getattr(child, "line", None)))
        return out


# ---------------------------------------------------------------------------------------------
# Loading


class _Element(ET.Element):
    line: int | None = None


def _xml_root(path: str, text: str) -> ET.Element:
    """Parse XML keeping each element's line number (``element.line``)."""
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_Element] = []
    roots: list[_Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        el = _Element(tag, attrs)
        el.line = parser.CurrentLineNumber
        (stack[-1].append(el) if stack else roots.append(el))
        stack.append(el)

    def end(_tag: str) -> None:
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as e:
        raise LaunchError(f"malformed XML: {e}", fix="fix the XML syntax", where=path) from None
    return roots[0]


def _detect_format(path: str, text: str) -> str:
    lower = path.lower()
    if lower.endswith(".xml"):
        return "xml"
    if lower.endswith((".yaml", ".yml")):
        return "yaml"
    if lower.endswith(".py"):
        raise LaunchError(
            "Python launch files are not supported by robot-rl launch",
            fix="write the launch file in XML or YAML, or run it with ros2 launch",
            where=path,
        )
    return "xml" if text.lstrip().startswith("<") else "yaml"


def load_launch_file(path: str) -> LaunchFile:
    """Read and parse an XML or YAML launch file. Raises :class:`LaunchError`."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise LaunchError(f"launch file not found: {path}", fix="check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LaunchError(f"cannot read launch file {path}: {e}", fix="check the file") from None
    fmt = _detect_format(path, text)
    if fmt == "xml":
        root: _Entity = _XmlEntity(_xml_root(path, text), path)
    else:
        try:
            tree = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as e:
            raise LaunchError(f"malformed YAML: {' '.join(str(e).split())}", fix="fix the YAML syntax",
                              where=path) from None
        if not isinstance(tree, dict) or len(tree) != 1:
            raise LaunchError("a YAML launch file must have exactly one root key, `launch:`",
                              fix="start the file with `launch:` followed by a list of actions",
                              where=path)
        (tag, body), = tree.items()
        root = _YamlEntity(body, str(tag), path, getattr(tree, "line", 1))
    if root.tag != "launch":
        raise LaunchError(f"the root element must be <launch>, got <{root.tag}>",
                          fix="wrap the actions in <launch>...</launch> (YAML: `launch:`)",
                          where=root.where)
    # ros2 launch ignores attributes of the root; accept the ones in use (and XML namespaces)
    extra = tuple(k for k in root.keys() if ":" in k or k.startswith("xmlns"))
    root.check(("deprecated", "version", *extra), (), children=True)
    return LaunchFile(path=path, actions=[_parse_action(c) for c in root.action_children()])


# ---------------------------------------------------------------------------------------------
# Actions


def _condition(e: _Entity) -> Condition | None:
    i, u = e.subst("if"), e.subst("unless")
    if i is not None and u is not None:
        raise LaunchError("'if' and 'unless' can't be used on the same action",
                          fix="combine them into one condition, e.g. with $(and ...) / $(not ...)",
                          where=e.where)
    if i is not None:
        return Condition("if", i)
    if u is not None:
        return Condition("unless", u)
    return None


def _parse_action(e: _Entity) -> Action:
    tag = e.tag
    if tag not in SUPPORTED_TAGS:
        supported = ", ".join(f"<{t}>" for t in SUPPORTED_TAGS)
        if tag in _KNOWN_UNSUPPORTED_TAGS:
            raise LaunchError(f"<{tag}> is valid in ros2 launch but not supported by robot-rl launch",
                              fix=f"run this file with ros2 launch, or use only {supported}",
                              where=e.where)
        raise LaunchError(f"unknown tag <{tag}>{_suggest(tag, SUPPORTED_TAGS)}",
                          fix=f"supported tags: {supported}", where=e.where)
    attrs, subs = SUPPORTED_TAGS[tag]
    e.check(attrs, subs, children=(tag == "group"),
            extra_unsupported=_KNOWN_UNSUPPORTED_NODE_ATTRS if tag == "node" else None)
    cond = _condition(e)
    w = e.where
    if tag == "arg":
        name = e.string("name", required=True)
        if not name:
            raise LaunchError("<arg> name must not be empty", fix="give the argument a name", where=w)
        choices = None
        choice_entities = e.sub_entities("choice")
        if choice_entities:
            choices = []
            for c in choice_entities:
                c.check(_SUB_ATTRS["choice"], ())
                choices.append(_unescape(c.string("value", required=True)))
        default = e.subst("default")
        desc = e.string("description")
        return ArgDecl(w, cond, name=_unescape(name), default=default,
                       description=_unescape(desc) if desc is not None else None, choices=choices)
    if tag == "let":
        return Let(w, cond, name=e.subst("name", required=True), value=e.subst("value", required=True))
    if tag == "set_env":
        return SetEnv(w, cond, name=e.subst("name", required=True), value=e.subst("value", required=True))
    if tag == "unset_env":
        return UnsetEnv(w, cond, name=e.subst("name", required=True))
    if tag in ("push-ros-namespace", "push_ros_namespace"):
        return PushNamespace(w, cond, namespace=e.subst("namespace", required=True))
    if tag == "group":
        keeps = []
        for k in e.sub_entities("keep"):
            k.check(_SUB_ATTRS["keep"], ())
            keeps.append((k.subst("name", required=True), k.subst("value", required=True)))
        scoped = e.boolean("scoped")
        forwarding = e.boolean("forwarding")
        children = [c for c in e.action_children() if c.tag != "keep"]
        return Group(w, cond, actions=[_parse_action(c) for c in children],
                     scoped=True if scoped is None else scoped,
                     forwarding=True if forwarding is None else forwarding, keeps=keeps)
    if tag == "include":
        args = []
        for a in e.sub_entities("arg"):
            a.check(_SUB_ATTRS["arg"], ())
            args.append((a.subst("name", required=True), a.subst("value", required=True)))
        return Include(w, cond, file=e.subst("file", required=True), args=args)
    assert tag == "node"
    return _parse_node(e, cond)


def _unescape(s: str) -> str:
    # launch's Parser.escape_characters: backslash escapes the next character.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _parse_cmdline(text: str, where: str) -> list[Parts]:
    """Split a command line like launch's ``ExecuteProcess._parse_cmdline``.

    Literal text is split with shlex; a substitution's result is never split.
    """
    result: list[list] = []
    arg: list = []
    for sub in parse_substitution(text, where=where):
        if isinstance(sub, Text):
            try:
                tokens = shlex.split(sub.text)
            except ValueError as err:
                raise LaunchError(f"cannot split command line {text!r}: {err}",
                                  fix="balance the quotes", where=where) from None
            if not tokens:
                if arg or sub.text:
                    result.append(arg)
                    arg = []
                continue
            if sub.text[0].isspace() and arg:
                result.append(arg)
                arg = []
            arg.append(Text(tokens[0]))
            if len(tokens) > 1:
                result.append(arg)
                arg = [Text(tokens[-1])]
            if len(tokens) > 2:
                result.extend([[Text(t)] for t in tokens[1:-1]])
            if sub.text[-1].isspace():
                result.append(arg)
                arg = []
        else:
            arg.append(sub)
    if arg:
        result.append(arg)
    return [tuple(a) for a in result if a]


def _parse_node(e: _Entity, cond: Condition | None) -> NodeDecl:
    w = e.where
    on_exit = e.string("on_exit")
    if on_exit is not None and on_exit != "shutdown":
        raise LaunchError(f"on_exit of <node> must be 'shutdown', got {on_exit!r}",
                          fix="use on_exit=\"shutdown\" or remove it (other actions are not supported "
                              "by ros2 launch front ends either)", where=w)
    args_text = e.string("args")
    ros_args_text = e.string("ros_args")
    params: list[ParamValue | ParamFile] = []
    for p in e.sub_entities("param"):
        params.append(_parse_param(p, top_level=True))
    remaps = []
    for r in e.sub_entities("remap"):
        r.check(_SUB_ATTRS["remap"], ())
        remaps.append((r.subst("from", required=True), r.subst("to", required=True)))
    env = []
    for v in e.sub_entities("env"):
        v.check(_SUB_ATTRS["env"], ())
        env.append((v.subst("name", required=True), v.subst("value", required=True)))
    return NodeDecl(
        w, cond,
        package=e.subst("pkg"),
        executable=e.subst("exec", required=True),
        name=e.subst("name"),
        namespace=e.subst("namespace"),
        exec_name=e.subst("exec_name"),
        output=e.subst("output"),
        args=_parse_cmdline(args_text, w) if args_text is not None else [],
        ros_args=_parse_cmdline(ros_args_text, w) if ros_args_text is not None else None,
        cwd=e.subst("cwd"),
        on_exit=on_exit,
        sigterm_timeout=e.number("sigterm_timeout"),
        sigkill_timeout=e.number("sigkill_timeout"),
        params=params,
        remaps=remaps,
        env=env,
    )


def _parse_param(p: _Entity, *, top_level: bool) -> ParamValue | ParamFile:
    w = p.where
    p.check(_SUB_ATTRS["param"] if top_level else ("name", "value", "type"), ("param",),
            extra_unsupported={"allow_substs"})
    has_from = p.has("from")
    has_name = p.has("name")
    if has_from:
        if has_name:
            raise LaunchError("<param> 'name' and 'from' are mutually exclusive",
                              fix="use <param name=... value=.../> or <param from=\"file.yaml\"/>",
                              where=w)
        extra = [k for k in ("value", "type") if p.has(k)]
        if extra or p.sub_entities("param"):
            raise LaunchError(f"<param from=...> takes no {', '.join(extra) or 'nested <param>'}",
                              fix="put the values in the YAML parameter file", where=w)
        return ParamFile(w, path=p.subst("from", required=True))
    if not has_name:
        raise LaunchError("<param> needs a 'name' (with 'value') or a 'from' attribute",
                          fix="e.g. <param name=\"rate_hz\" value=\"50.0\"/>", where=w)
    name = p.subst("name", required=True)
    type_id = p.string("type")
    if type_id is not None and type_id not in TYPE_IDENTIFIERS:
        raise LaunchError(f"unknown parameter type {type_id!r}",
                          fix=f"use one of: {', '.join(TYPE_IDENTIFIERS)}", where=w)
    nested_entities = p.sub_entities("param")
    has_value = p.has("value")
    if has_value and nested_entities:
        raise LaunchError("nested parameters and the 'value' attribute are mutually exclusive",
                          fix="remove one of them", where=w)
    if type_id is not None and nested_entities:
        raise LaunchError("nested parameters and the 'type' attribute are mutually exclusive",
                          fix="put 'type' on the nested <param> elements", where=w)
    if nested_entities:
        nested = [_parse_param(c, top_level=False) for c in nested_entities]
        return ParamValue(w, name=name, value=None, type=None, nested=nested)  # type: ignore[arg-type]
    if not has_value:
        raise LaunchError("<param> needs a 'value' attribute or nested <param> elements",
                          fix="e.g. <param name=\"rate_hz\" value=\"50.0\"/>", where=w)
    value = from_literal(p.raw("value"), type_id, is_yaml=p.is_yaml,
                         name=parts_source(name) or "", where=w)
    return ParamValue(w, name=name, value=value, type=type_id)


def static_args(lf: LaunchFile) -> list[tuple[ArgDecl, bool]]:
    """All ``<arg>`` declarations of a file (not following includes), with a 'conditional' flag."""
    out: list[tuple[ArgDecl, bool]] = []

    def walk(actions: list[Action], conditional: bool) -> None:
        for a in actions:
            c = conditional or a.cond is not None
            if isinstance(a, ArgDecl):
                out.append((a, c))
            elif isinstance(a, Group):
                walk(a.actions, c)

    walk(lf.actions, False)
    return out


def parts_source(parts: Parts | None) -> str | None:
    """Render parsed parts back to launch syntax (for messages and ``--show-args``)."""
    if parts is None:
        return None
    out = []
    for p in parts:
        if isinstance(p, Text):
            out.append(p.text)
        else:
            assert isinstance(p, Sub)
            args = " ".join(_arg_source(a) for a in p.args)
            out.append(f"$({p.name}{' ' + args if args else ''})")
    return "".join(out)


def _arg_source(parts: Parts) -> str:
    s = parts_source(parts) or ""
    return f"'{s}'" if (" " in s or not s) else s


def abspath(path: str) -> str:
    return os.path.abspath(path)
