"""Substitution syntax of the ROS 2 launch front ends (``$(var x)``, ``$(env X default)``, ...).

This follows ``launch/frontend/grammar.lark`` of ros2/launch:

* outside a substitution, text is literal; a backslash escapes the next character
  (``\\$`` is a literal ``$``) and a ``$`` must either start a substitution ``$(`` or be escaped;
* ``$(name arg1 arg2)``: the name is ``[A-Za-z][A-Za-z0-9_-]*`` and arguments are separated by
  exactly one space; an argument is either a run of unquoted text and nested substitutions (no
  spaces, quotes or parentheses unless escaped) or a single- or double-quoted template, which may
  contain spaces and nested substitutions (``$(eval '$(var a) + 1')``).

Parsing happens when the file is loaded (unknown substitutions and malformed text are reported
before anything runs); evaluation happens when the action that uses the value is visited.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Protocol, Union

import yaml

from .errors import LaunchError

__all__ = [
    "Text",
    "Sub",
    "Part",
    "Parts",
    "SubstitutionContext",
    "parse_substitution",
    "evaluate",
    "to_bool",
    "SUPPORTED_SUBSTITUTIONS",
]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Sub:
    name: str
    args: tuple[tuple["Part", ...], ...]


Part = Union[Text, Sub]
Parts = tuple[Part, ...]


class SubstitutionContext(Protocol):
    configs: dict[str, str]
    env: dict[str, str]
    current_file: str

    def find_pkg_share(self, package: str) -> str: ...

    def find_pkg_prefix(self, package: str) -> str: ...


# name -> (min args, max args or None for unlimited)
SUPPORTED_SUBSTITUTIONS: dict[str, tuple[int, int | None]] = {
    "var": (1, 2),
    "env": (1, 2),
    "optenv": (1, 2),
    "find-pkg-share": (1, 1),
    "find-pkg-prefix": (1, 1),
    "dirname": (0, 0),
    "filename": (0, 0),
    "eval": (1, 2),
    "not": (1, 1),
    "and": (2, 2),
    "or": (2, 2),
    "any": (0, None),
    "all": (0, None),
    "equals": (2, 2),
    "notequals": (2, 2),
}

# Substitutions ros2 launch has but this runner does not (better message than "unknown").
_KNOWN_UNSUPPORTED = {
    "command", "find-exec", "anon", "file-content", "exec-in-pkg", "find-launchfile",
    "path-join", "if", "launch-log-dir", "log-dir", "is-empty", "not-empty", "strip",
    "for-var", "index", "param", "registered-global-launch-configuration",
}


class _SyntaxError(Exception):
    pass


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.n = len(text)

    def _err(self, msg: str) -> _SyntaxError:
        return _SyntaxError(f"{msg} at column {self.i + 1} of {self.s!r}")

    def template(self) -> Parts:
        parts: list[Part] = []
        buf: list[str] = []
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\\":
                if self.i + 1 < self.n:
                    buf.append(self.s[self.i + 1])
                    self.i += 2
                else:
                    buf.append(c)
                    self.i += 1
            elif c == "$":
                if self.s.startswith("$(", self.i):
                    if buf:
                        parts.append(Text("".join(buf)))
                        buf = []
                    parts.append(self.substitution())
                else:
                    raise self._err("'$' must start a substitution '$(...)' or be escaped as '\\$'")
            else:
                buf.append(c)
                self.i += 1
        if buf:
            parts.append(Text("".join(buf)))
        return tuple(parts)

    def substitution(self, quote: str | None = None) -> Sub:
        assert self.s.startswith("$(", self.i)
        self.i += 2
        start = self.i
        if self.i >= self.n or not self.s[self.i].isascii() or not self.s[self.i].isalpha():
            raise self._err("expected a substitution name after '$('")
        while self.i < self.n and (
            (self.s[self.i].isascii() and self.s[self.i].isalnum()) or self.s[self.i] in "_-"
        ):
            self.i += 1
        name = self.s[start:self.i]
        args: list[Parts] = []
        while True:
            if self.i >= self.n:
                raise self._err(f"unterminated substitution '$({name}'")
            c = self.s[self.i]
            if c == ")":
                self.i += 1
                break
            if c != " ":
                raise self._err(f"unexpected character {c!r} in substitution '$({name} ...)'")
            self.i += 1
            args.append(self.value(quote))
        return Sub(name, tuple(args))

    def value(self, quote: str | None) -> Parts:
        if self.i >= self.n:
            raise self._err("unterminated substitution")
        c = self.s[self.i]
        if quote is None and c in "'\"":
            return self.quoted(c)
        parts: list[Part] = []
        buf: list[str] = []
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < self.n:
                buf.append(self.s[self.i + 1])
                self.i += 2
            elif c == "$":
                if not self.s.startswith("$(", self.i):
                    raise self._err("'$' must start a substitution '$(...)' or be escaped as '\\$'")
                if buf:
                    parts.append(Text("".join(buf)))
                    buf = []
                parts.append(self.substitution(quote))
            elif c in " )":
                break
            elif c == "(":
                raise self._err("unescaped '(' in a substitution argument (escape it as '\\(')")
            elif c in "'\"" and (quote is None or c == quote):
                raise self._err(f"unexpected quote {c!r} inside a substitution argument")
            else:
                buf.append(c)
                self.i += 1
        if buf:
            parts.append(Text("".join(buf)))
        if not parts:
            raise self._err("empty substitution argument (arguments are separated by exactly one space)")
        return tuple(parts)

    def quoted(self, q: str) -> Parts:
        self.i += 1
        parts: list[Part] = []
        buf: list[str] = []
        while True:
            if self.i >= self.n:
                raise self._err(f"unterminated quoted string (missing closing {q})")
            c = self.s[self.i]
            if c == q:
                self.i += 1
                break
            if c == "\\" and self.i + 1 < self.n:
                buf.append(self.s[self.i + 1])
                self.i += 2
            elif c == "$":
                if not self.s.startswith("$(", self.i):
                    raise self._err("'$' must start a substitution '$(...)' or be escaped as '\\$'")
                if buf:
                    parts.append(Text("".join(buf)))
                    buf = []
                parts.append(self.substitution(q))
            else:
                buf.append(c)
                self.i += 1
        if buf:
            parts.append(Text("".join(buf)))
        return tuple(parts)


def _check(parts: Parts, where: str | None) -> None:
    for p in parts:
        if isinstance(p, Sub):
            if p.name not in SUPPORTED_SUBSTITUTIONS:
                supported = ", ".join(sorted(SUPPORTED_SUBSTITUTIONS))
                if p.name in _KNOWN_UNSUPPORTED:
                    raise LaunchError(
                        f"substitution '$({p.name} ...)' is not supported by robot-rl launch",
                        fix=f"use one of: {supported}, or run the file with ros2 launch",
                        where=where,
                    )
                raise LaunchError(
                    f"unknown substitution '$({p.name} ...)'",
                    fix=f"use one of: {supported}",
                    where=where,
                )
            lo, hi = SUPPORTED_SUBSTITUTIONS[p.name]
            if len(p.args) < lo or (hi is not None and len(p.args) > hi):
                want = str(lo) if lo == hi else (f"{lo} to {hi}" if hi is not None else f"at least {lo}")
                raise LaunchError(
                    f"substitution '$({p.name} ...)' takes {want} argument(s), got {len(p.args)}",
                    fix="arguments are separated by single spaces; quote an argument that contains spaces",
                    where=where,
                )
            for a in p.args:
                _check(a, where)


def parse_substitution(text: str, where: str | None = None) -> Parts:
    """Parse an attribute value into literal text and substitutions."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    if text == "":
        return (Text(""),)
    try:
        parts = _Parser(text).template()
    except _SyntaxError as e:
        raise LaunchError(f"malformed substitution: {e}", fix="see the ROS 2 launch substitution syntax",
                          where=where) from None
    _check(parts, where)
    return parts


def literal(text: str) -> Parts:
    return (Text(text),)


def has_substitutions(parts: Parts) -> bool:
    return any(isinstance(p, Sub) for p in parts)


def to_bool(value: str, what: str) -> bool:
    """Coerce like launch's ``perform_typed_substitution(..., bool)``: '1'/'0' or a YAML boolean."""
    v = value.strip()
    if v == "1":
        return True
    if v == "0":
        return False
    try:
        out = yaml.safe_load(v) if v else None
    except yaml.YAMLError:
        out = None
    if isinstance(out, bool):
        return out
    raise LaunchError(f"{what} must be a boolean, got {value!r}",
                      fix="use true/false (or 1/0)")


def _str_is_bool(s: str) -> bool:
    return s.lower() in ("true", "false", "1", "0")


def _str_is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _equals(left: str, right: str) -> bool:
    if _str_is_bool(left) and _str_is_bool(right):
        return (left.lower() in ("true", "1")) == (right.lower() in ("true", "1"))
    if _str_is_float(left) and _str_is_float(right):
        return math.isclose(float(left), float(right))
    return left == right


def evaluate(parts: Parts, ctx: SubstitutionContext) -> str:
    """Evaluate parsed parts to a string in ``ctx``; raises :class:`LaunchError` on failure."""
    return "".join(_perform(p, ctx) for p in parts)


def _perform(p: Part, ctx: SubstitutionContext) -> str:
    if isinstance(p, Text):
        return p.text
    args = [evaluate(a, ctx) for a in p.args] if p.name != "eval" else None
    n = p.name
    if n == "var":
        name = args[0]
        if name in ctx.configs:
            return ctx.configs[name]
        if len(args) == 2:
            return args[1]
        raise LaunchError(
            f"launch configuration '{name}' does not exist ($(var {name}))",
            fix=f"declare it with <arg name=\"{name}\" .../> or <let name=\"{name}\" value=\"...\"/> "
                f"before it is used, or pass {name}:=VALUE",
        )
    if n == "env":
        name = args[0]
        if name in ctx.env:
            return ctx.env[name]
        if len(args) == 2:
            return args[1]
        raise LaunchError(
            f"environment variable '{name}' does not exist ($(env {name}))",
            fix=f"export {name}, or give a default: $(env {name} DEFAULT), or use $(optenv {name})",
        )
    if n == "optenv":
        return ctx.env.get(args[0], args[1] if len(args) == 2 else "")
    if n == "find-pkg-share":
        return ctx.find_pkg_share(args[0])
    if n == "find-pkg-prefix":
        return ctx.find_pkg_prefix(args[0])
    if n == "dirname":
        return os.path.dirname(os.path.abspath(ctx.current_file))
    if n == "filename":
        return os.path.abspath(ctx.current_file)
    if n == "eval":
        return _eval(p, ctx)
    if n == "not":
        return str(not to_bool(args[0], "$(not ...) argument")).lower()
    if n == "and":
        return str(to_bool(args[0], "$(and ...) argument") and to_bool(args[1], "$(and ...) argument")).lower()
    if n == "or":
        return str(to_bool(args[0], "$(or ...) argument") or to_bool(args[1], "$(or ...) argument")).lower()
    if n == "any":
        return str(any([to_bool(a, "$(any ...) argument") for a in args])).lower()
    if n == "all":
        return str(all([to_bool(a, "$(all ...) argument") for a in args])).lower()
    if n == "equals":
        return str(_equals(args[0], args[1])).lower()
    if n == "notequals":
        return str(not _equals(args[0], args[1])).lower()
    raise LaunchError(f"unknown substitution '$({n} ...)'")  # pragma: no cover - checked at parse time


def _eval(p: Sub, ctx: SubstitutionContext) -> str:
    # Mirrors launch.substitutions.PythonExpression: modules default to ['math'], and the names of
    # math are also available unqualified.
    import importlib

    expression = evaluate(p.args[0], ctx)
    modules = ["math"]
    if len(p.args) == 2:
        modules = [m.strip() for m in evaluate(p.args[1], ctx).split(",") if m.strip()]
    local_vars: dict[str, object] = {}
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            raise LaunchError(f"$(eval ...) cannot import module '{name}': {e}",
                              fix="list importable modules, comma-separated, as the second argument") from None
        if mod.__name__ == "math":
            local_vars.update(vars(mod))
        local_vars[mod.__name__] = mod
    try:
        return str(eval(expression, {}, local_vars))  # noqa: S307 - same semantics as ros2 launch
    except Exception as e:  # noqa: BLE001
        raise LaunchError(f"$(eval {expression!r}) failed: {type(e).__name__}: {e}",
                          fix="fix the Python expression (strings must be quoted inside it)") from None
