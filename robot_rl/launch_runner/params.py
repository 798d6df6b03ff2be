"""Parameter values of ``<param name value [type]>``, typed exactly like launch_ros does it.

At parse time (front-end specific, as ``Entity.get_attr(..., data_type=...)``):

* XML values are text: without ``type`` they are converted with YAML rules (``"50"`` is an int,
  ``"[1.0, 2.0]"`` a float list, ``"'42'"`` the string ``42``; text YAML cannot parse stays text;
  ``null`` or a mapping is an error); with ``type`` they are converted to that type.
* YAML values keep the type YAML gave them (a quoted ``"50"`` stays the string ``50``).
* Strings containing substitutions are kept as substitutions (list items one by one).

At evaluation time (``ParameterValue.evaluate``): a substitution's result is converted with YAML
rules (or to ``type``); lists must be uniform (ints and floats mix into floats).

:func:`render` then writes the value as the YAML text of a ``-p name:=<text>`` rule.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from robot_rl.transport.param_values import ParamValueError, parse_param_value, rcl_scalar

from .errors import LaunchError
from .substitutions import Text, evaluate, parse_substitution

TYPE_IDENTIFIERS = ("str", "int", "float", "bool", "list[str]", "list[int]", "list[float]", "list[bool]")
_SCALARS = {"str": str, "int": int, "float": float, "bool": bool}

__all__ = ["TYPE_IDENTIFIERS", "from_literal", "evaluate_value", "render"]


def _split_type(type_id: str | None) -> tuple[type | None, bool]:
    if type_id is None:
        return None, False
    if type_id.startswith("list["):
        return _SCALARS[type_id[5:-1]], True
    return _SCALARS[type_id], False


def _is(value: Any, t: type) -> bool:
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is float:
        return isinstance(value, float)
    return isinstance(value, t)


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _yaml(text: str) -> Any:
    """launch's YAML typing of parameter text: the shared parameter parser with launch_ros's rules
    (PyYAML, YAML 1.1; e.g. ``1e3`` stays a string, unlike rcl: see
    :mod:`robot_rl.transport.param_values`)."""
    return parse_param_value(text, rules="launch")


def _err(msg: str, where: str, fix: str = "fix the value or the type attribute") -> LaunchError:
    return LaunchError(msg, fix=fix, where=where)


def _coerce_text(text: str, type_id: str | None, *, can_be_str: bool, name: str, where: str) -> Any:
    """launch.utilities.type_utils.coerce_to_type."""
    scalar, is_list = _split_type(type_id)

    def as_yaml() -> Any:
        if not text:
            return text
        try:
            out = _yaml(text)
        except ParamValueError:
            if can_be_str:
                return text
            raise _err(f"value {text!r} of parameter '{name}' cannot be parsed as YAML", where,
                       fix="quote it, or set type=\"str\"") from None
        if isinstance(out, list):
            member = next((type(x) for x in out if type(x) is not str), str)
            ok = member in (str, int, float, bool) and all(
                isinstance(x, (member, str)) if can_be_str else type(x) is member for x in out)
        else:
            ok = _scalar(out)
        if not ok:
            raise _err(f"value {text!r} of parameter '{name}' must be a bool, int, float, string or "
                       f"a list of one of them, got {type(out).__name__}", where,
                       fix="quote the value, or set type=\"str\" for a string")
        return out

    if type_id is None:
        return as_yaml()
    if is_list:
        out = as_yaml()
        allowed = (str, scalar) if can_be_str else (scalar,)
        if not isinstance(out, list) or not all(
                any(_is(x, t) for t in allowed) or (scalar is float and _is(x, int)) for x in out):
            raise _err(f"value {text!r} of parameter '{name}' is not a valid {type_id}", where)
        return [float(x) if scalar is float and _is(x, int) else x for x in out]
    if scalar is str:
        return text
    if scalar in (int, float):
        try:
            return scalar(text)
        except ValueError:
            if can_be_str:
                return text
            raise _err(f"value {text!r} of parameter '{name}' is not a valid {type_id}", where) from None
    t = {"1": "true", "0": "false"}.get(text, text)
    try:
        out = _yaml(t) if t else t
    except ParamValueError:
        out = t
    if isinstance(out, bool) or (can_be_str and isinstance(out, str)):
        return out
    raise _err(f"value {text!r} of parameter '{name}' is not a valid bool", where)


def _parse_if_substitutions(value: Any, name: str, where: str) -> Any:
    """launch.frontend.parse_substitution.parse_if_substitutions: strings -> str or Parts."""
    kinds: set[type] = set()

    def one(v: Any) -> Any:
        if isinstance(v, str):
            parts = parse_substitution(v, where=where)
            if len(parts) == 1 and isinstance(parts[0], Text):
                kinds.add(str)
                return parts[0].text
            return parts
        kinds.add(type(v))
        return v

    if isinstance(value, list):
        out = [one(v) for v in value]
        if len(kinds) > 1:
            raise _err(f"parameter '{name}' mixes item types in {value!r}", where,
                       fix="make all list items the same type")
        return out
    return one(value)


def from_literal(raw: Any, type_id: str | None, *, is_yaml: bool, name: str, where: str) -> Any:
    """The value a front end hands to ``ParameterValue``, normalized like launch_ros.

    Returns a scalar, a ``Parts`` tuple (substitutions), or a list of scalars/``Parts``.
    """
    if not is_yaml:
        assert isinstance(raw, str)
        value = _coerce_text(raw, type_id, can_be_str=True, name=name, where=where)
    else:
        scalar, is_list = _split_type(type_id)
        if isinstance(raw, list):
            ok = all(_scalar(x) for x in raw) and (
                type_id is None or (is_list and all(isinstance(x, str) or _is(x, scalar) for x in raw)))
            if type_id is None and ok and raw:
                member = next((type(x) for x in raw if type(x) is not str), str)
                ok = all(isinstance(x, (member, str)) for x in raw)
        elif _scalar(raw):
            ok = type_id is None or (not is_list and (isinstance(raw, str) or _is(raw, scalar)))
        else:
            ok = False
        if not ok:
            raise _err(f"value {raw!r} of parameter '{name}' is not a valid "
                       f"{type_id or 'bool, int, float, string or uniform list'}", where,
                       fix="nest parameters with `param: [...]` instead of a mapping"
                       if isinstance(raw, dict) else "fix the value or the type")
        value = raw
    value = _parse_if_substitutions(value, name, where)
    return _normalize(value, type_id, name, where)


def _normalize(value: Any, type_id: str | None, name: str, where: str) -> Any:
    """launch.utilities.type_utils.normalize_typed_substitution."""
    scalar, is_list = _split_type(type_id)
    if isinstance(value, tuple):  # Parts
        return value
    if not isinstance(value, list):
        if type_id is not None and (is_list or not _is(value, scalar)):
            raise _err(f"value {value!r} of parameter '{name}' is not a {type_id}", where,
                       fix=("write it without quotes" if isinstance(value, str) else
                            "write floats with a decimal point, e.g. 7.0" if scalar is float else
                            "fix the value or the type"))
        return value
    if type_id is not None and not is_list:
        raise _err(f"parameter '{name}' is a list but its type is {type_id}", where)
    kinds = {("sub" if isinstance(v, tuple) else type(v)) for v in value}
    plain = kinds - {"sub"}
    if not plain:
        return value
    for group, allowed in (({str}, str), ({bool}, bool), ({int}, int), ({int, float}, float)):
        if plain <= group:
            if scalar is not None and scalar is not allowed:
                raise _err(f"parameter '{name}': got a list of {allowed.__name__}, expected {type_id}",
                           where)
            if allowed is float:
                return [v if isinstance(v, tuple) else float(v) for v in value]
            return value
    raise _err(f"parameter '{name}' mixes item types in {value!r}", where,
               fix="make all list items the same type")


def evaluate_value(value: Any, type_id: str | None, ctx: Any, name: str, where: str) -> Any:
    """ParameterValue.evaluate: perform substitutions and convert (strict)."""
    scalar, is_list = _split_type(type_id)
    if isinstance(value, tuple):
        return _coerce_text(evaluate(value, ctx), type_id, can_be_str=False, name=name, where=where)
    if isinstance(value, list):
        out = [_coerce_text(evaluate(v, ctx), type_id and type_id[5:-1], can_be_str=False, name=name,
                            where=where) if isinstance(v, tuple) else v for v in value]
        if scalar is not None:
            if not all(_is(x, scalar) for x in out):
                raise _err(f"parameter '{name}' evaluated to {out!r}, which is not a {type_id}", where)
        elif not out or len({type(x) for x in out}) != 1:
            raise _err(f"parameter '{name}' must be a non-empty list of one type, got {out!r}", where,
                       fix="make all list items the same type")
        return out
    return value


def render(value: Any) -> str:
    """YAML text for ``-p name:=<text>`` that reads back as ``value`` under both rule sets: rcl's
    (what the node does with it) and PyYAML's (what ``ros2 launch`` would write to its parameter
    file). Strings that rcl would type differently from PyYAML (``1e3``, ``y``, ``inf``, ``0x1F``)
    are quoted."""
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    out = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    if out.endswith("\n...\n"):
        out = out[: -len("\n...\n")]
    out = out.strip()
    if isinstance(value, str) and not out.startswith(("'", '"')):
        try:
            same = rcl_scalar(out) == value and type(rcl_scalar(out)) is str
        except ValueError:
            same = False
        if not same:  # rcl would read it as a number or a bool: quote it
            out = "'" + value.replace("'", "''") + "'"
    return out
