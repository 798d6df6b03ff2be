"""Parameter text -> typed value: the one parser of parameter values in robot_rl.

Two consumers read the same kind of text with *different* typing rules, so the parser has one
flag, ``rules``:

``rules="rcl"`` (default): what a ROS 2 node does with ``-p name:=value`` and with a
    ``--params-file`` (``rcl_yaml_param_parser``): the value is a YAML document; a plain scalar
    is a bool if it is one of ``y Y yes Yes YES true True TRUE on On ON`` (or the matching
    false words), else an integer if C ``strtol(text, base 0)`` reads all of it without overflow
    (so ``0x1F`` is 31 and ``010`` is 8), else a double if ``strtod`` does (``1e3``, ``inf``,
    ``nan``, ``.5``, ``0x1p3``; plus YAML's ``.inf`` / ``.nan`` spellings), else a string
    (``~``, ``null``, ``1_000``, ``0b11`` stay text). Quoted scalars and ``!!str`` are strings.
    A sequence must hold one type: ``[1, 2.5]`` is an error, as in rcl. A mapping is an error.
``rules="launch"``: what ``ros2 launch`` (launch / launch_ros) does with a ``<param value>``
    text: PyYAML ``safe_load``, i.e. YAML 1.1 typing: ``1e3`` is the *string* "1e3" (YAML 1.1
    floats need a dot and a signed exponent), ``1_000`` and ``0b11`` are integers, ``1:30`` is 90,
    ``y`` / ``n`` are strings, ``~`` / ``null`` are None; lists and mappings come back as they
    are (launch_ros checks them itself). The launch runner must reproduce ``ros2 launch``, so
    its rules cannot be rcl's; it renders the typed value back as ``-p name:=<text>`` that reads
    the same under both rules (:func:`robot_rl.launch_runner.params.render`).

Both go through the same YAML syntax layer (PyYAML's composer: quoting, escapes, flow and block
sequences, tags) and differ only in how a *plain* scalar gets its type. Checked against real rcl
(``tests/transport/test_transport_names_args.py``) and against PyYAML.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

__all__ = ["ParamValueError", "RULES", "parse_param_value", "rcl_scalar", "parse_params_yaml"]

RULES = ("rcl", "launch")

_STR_TAG = "tag:yaml.org,2002:str"
_RCL_TRUE = frozenset("y Y yes Yes YES true True TRUE on On ON".split())
_RCL_FALSE = frozenset("n N no No NO false False FALSE off Off OFF".split())
_RCL_SPECIAL = {".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
                **{f"{s}{w}": (-math.inf if s == "-" else math.inf)
                   for s in ("", "+", "-") for w in (".inf", ".Inf", ".INF")}}
_STRTOL_RE = re.compile(r"[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_STRTOD_DEC_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_STRTOD_HEX_RE = re.compile(r"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)([pP][+-]?[0-9]+)?")
_STRTOD_WORD_RE = re.compile(r"[+-]?(inf|infinity|nan)", re.IGNORECASE)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_MIN_NORMAL = 2.2250738585072014e-308


class ParamValueError(ValueError):
    """Parameter text that the rules cannot turn into a parameter value."""


def rcl_scalar(text: str) -> Any:
    """Type one plain (unquoted, untagged) YAML scalar the way rcl does (module docstring)."""
    s = text.strip()
    if s in _RCL_TRUE:
        return True
    if s in _RCL_FALSE:
        return False
    if _STRTOL_RE.fullmatch(s):
        v = _strtol(s)
        if _INT64[0] <= v <= _INT64[1]:
            return v
    if s in _RCL_SPECIAL:
        return _RCL_SPECIAL[s]
    v = _strtod(s)
    if v is not None:
        return v
    return text


def _strtol(s: str) -> int:
    sign = -1 if s.startswith("-") else 1
    body = s.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        return sign * int(body[2:], 16)
    if len(body) > 1 and body[0] == "0":
        return sign * int(body, 8)
    return sign * int(body)


def _strtod(s: str) -> float | None:
    """strtod reading all of ``s``; None when it does not, or on overflow/underflow (ERANGE)."""
    if _STRTOD_WORD_RE.fullmatch(s):
        return float(s)
    m = _STRTOD_DEC_RE.fullmatch(s)
    if m:
        v, mantissa = float(s), m.group(1)
    else:
        m = _STRTOD_HEX_RE.fullmatch(s)
        if not m:
            return None
        mantissa = m.group(1)
        try:
            v = float.fromhex(("-" if s.startswith("-") else "") + "0x" + mantissa + (m.group(2) or "p0"))
        except OverflowError:
            return None
    nonzero = any(c not in "0." for c in mantissa)
    if math.isinf(v) or (nonzero and abs(v) < _MIN_NORMAL):
        return None  # ERANGE (overflow or underflow): rcl then keeps the text as a string
    return v


def _plain_untagged(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return node.style is None and node.tag == loader.resolve(yaml.ScalarNode, node.value, (True, False))


def _rcl_value(loader: yaml.SafeLoader, node: yaml.Node, text: str, *, top: bool) -> Any:
    if isinstance(node, yaml.ScalarNode):
        if node.style is None and not _plain_untagged(loader, node) and node.tag == _STR_TAG:
            return node.value  # explicit !!str
        if node.style is not None:
            return node.value  # quoted or block scalar: a string
        return rcl_scalar(node.value)
    if isinstance(node, yaml.SequenceNode) and top:
        items = [_rcl_value(loader, child, text, top=False) for child in node.value]
        kinds = {bool if isinstance(x, bool) else type(x) for x in items}
        if len(kinds) > 1:
            names = sorted(k.__name__ for k in kinds)
            fix = (" (write every number with a decimal point, e.g. [1.0, 2.5])"
                   if set(names) == {"float", "int"} else "")
            raise ParamValueError(f"parameter list {text.strip()!r} mixes types {names}: rcl requires one type "
                                  f"per list{fix}")
        return items
    what = "nested list" if isinstance(node, yaml.SequenceNode) else "mapping"
    raise ParamValueError(f"parameter value {text.strip()!r} is a {what}; a parameter is a bool, int, float, "
                          "string or a list of one of them")


def parse_param_value(text: str, *, rules: str = "rcl") -> Any:
    """Type parameter ``text`` by ``rules`` ("rcl" or "launch"; see the module docstring).

    Raises :class:`ParamValueError` for text that is not YAML, or (rcl) for a mapping, a nested
    list, a list mixing types or empty text (launch: None)."""
    if rules not in RULES:
        raise ValueError(f"rules={rules!r} must be one of {RULES}")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise ParamValueError(f"parameter value {text!r} is not valid YAML: {' '.join(str(e).split())}") from None
    loader = yaml.SafeLoader("")
    if rules == "launch":
        return None if node is None else loader.construct_document(node)
    if node is None:
        raise ParamValueError("empty parameter value: write '' for an empty string (rcl rejects name:= with "
                              "nothing after it)")
    return _rcl_value(loader, node, text, top=True)


def parse_params_yaml(text: str) -> Any:
    """A ROS 2 parameters file (YAML) as nested dicts whose leaf values are typed by rcl's rules
    (as ``rcl_yaml_param_parser`` reads ``--params-file``). Raises :class:`ParamValueError`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise ParamValueError(f"not valid YAML: {' '.join(str(e).split())}") from None
    loader = yaml.SafeLoader("")

    def walk(n: yaml.Node, path: str) -> Any:
        if isinstance(n, yaml.MappingNode):
            out = {}
            for k, v in n.value:
                key = loader.construct_object(k, deep=True)
                out[key] = walk(v, f"{path}.{key}" if path else str(key))
            return out
        try:
            return _rcl_value(loader, n, repr(loader.construct_object(n, deep=True)), top=True)
        except ParamValueError as e:
            raise ParamValueError(f"parameter {path!r}: {e}") from None

    return None if node is None else walk(node, "")
