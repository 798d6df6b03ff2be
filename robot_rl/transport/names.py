"""ROS 2 name rules: validation, topic name expansion and remapping (as rcl does them).

* Node names: ``[A-Za-z_][A-Za-z0-9_]*``.
* Namespaces: absolute (``/`` or ``/a/b``); a relative namespace ``a/b`` is made absolute.
* Topic expansion (``expand_topic_name``): ``/abs`` stays; ``rel`` becomes ``<ns>/rel``;
  ``~`` is the node's fully qualified name and ``~/x`` is ``<ns>/<node>/x``; ``{node}``,
  ``{ns}`` and ``{namespace}`` are substituted.
* Remapping (``remap_topic_name``): rules ``from:=to`` (optionally ``node:from:=to``); both sides
  are expanded with the node's name and namespace and compared with the expanded topic name; the
  first matching rule wins (rules do not chain).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

__all__ = [
    "NameError_", "validate_node_name", "normalize_namespace", "expand_topic_name",
    "validate_full_topic_name", "RemapRule", "remap_topic_name", "resolve_topic_name", "dds_topic_name",
]


class NameError_(ValueError):
    """An invalid node name, namespace or topic name."""


_NODE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_NAME = 255


def validate_node_name(name: str) -> str:
    """Return ``name`` if it is a valid ROS 2 node name, else raise NameError_."""
    if not isinstance(name, str) or not _NODE_RE.match(name):
        raise NameError_(
            f"invalid node name {name!r}: use letters, digits and underscores, not starting with a digit"
        )
    if len(name) > _MAX_NAME:
        raise NameError_(f"node name {name!r} is longer than {_MAX_NAME} characters")
    return name


def _check_tokens(full: str, what: str) -> None:
    if full == "/":
        return
    if not full.startswith("/"):
        raise NameError_(f"{what} {full!r} must be absolute (start with '/')")
    if full.endswith("/"):
        raise NameError_(f"{what} {full!r} must not end with '/'")
    for tok in full[1:].split("/"):
        if not tok:
            raise NameError_(f"{what} {full!r} must not contain '//'")
        if not _TOKEN_RE.match(tok):
            raise NameError_(
                f"{what} {full!r}: token {tok!r} must use letters, digits and underscores and not start "
                "with a digit"
            )


def normalize_namespace(namespace: str | None) -> str:
    """Absolute namespace: ``""``/None -> ``/``, ``"a/b"`` -> ``/a/b``; validated."""
    ns = (namespace or "").strip()
    if not ns:
        return "/"
    if not ns.startswith("/"):
        ns = "/" + ns
    if len(ns) > 1 and ns.endswith("/"):
        ns = ns.rstrip("/") or "/"
    _check_tokens(ns, "namespace")
    return ns


def validate_full_topic_name(name: str) -> str:
    """Return ``name`` if it is a valid fully qualified topic name, else raise NameError_."""
    if name == "/":
        raise NameError_("topic name '/' is not valid")
    _check_tokens(name, "topic name")
    return name


def expand_topic_name(topic: str, node_name: str, namespace: str) -> str:
    """Fully qualified topic name of ``topic`` for a node ``node_name`` in ``namespace``."""
    if not isinstance(topic, str) or not topic:
        raise NameError_("topic name must be a non-empty string")
    ns = normalize_namespace(namespace)
    name = topic
    if "{" in name or "}" in name:
        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key == "node":
                return node_name
            if key in ("ns", "namespace"):
                return ns
            raise NameError_(f"topic name {topic!r}: unknown substitution {{{key}}}")

        name = re.sub(r"\{([^{}]*)\}", sub, name)
        if "{" in name or "}" in name:
            raise NameError_(f"topic name {topic!r} has unbalanced braces")
        if name.startswith("//"):  # "{ns}/x" in the root namespace
            name = name[1:]
    if name.startswith("~"):
        if name != "~" and not name.startswith("~/"):
            raise NameError_(f"topic name {topic!r}: '~' must be followed by '/' or nothing")
        fqn = (ns.rstrip("/") + "/" + node_name)
        name = fqn + name[1:]
    elif not name.startswith("/"):
        name = ns.rstrip("/") + "/" + name
    return validate_full_topic_name(name)


class RemapRule:
    """One remapping rule ``[node:]from:=to``."""

    __slots__ = ("node", "src", "dst")

    def __init__(self, src: str, dst: str, node: str | None = None) -> None:
        if not src or not dst:
            raise NameError_(f"remap rule {src!r}:={dst!r} needs both sides")
        self.node, self.src, self.dst = node, src, dst

    @classmethod
    def parse(cls, rule: str) -> "RemapRule":
        """Parse ``from:=to`` or ``node:from:=to``."""
        if ":=" not in rule:
            raise NameError_(f"remap rule {rule!r} must look like 'from:=to'")
        lhs, dst = rule.split(":=", 1)
        node = None
        if ":" in lhs:
            node, lhs = lhs.split(":", 1)
            validate_node_name(node)
        return cls(lhs, dst, node)

    def __repr__(self) -> str:
        return f"RemapRule({(self.node + ':') if self.node else ''}{self.src}:={self.dst})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemapRule) and (self.node, self.src, self.dst) == (other.node, other.src, other.dst)


def _as_rules(remaps: Iterable | dict | None) -> list[RemapRule]:
    if remaps is None:
        return []
    if isinstance(remaps, dict):
        return [RemapRule(k, v) for k, v in remaps.items()]
    out = []
    for r in remaps:
        if isinstance(r, RemapRule):
            out.append(r)
        elif isinstance(r, str):
            out.append(RemapRule.parse(r))
        else:
            src, dst = r
            out.append(RemapRule(src, dst))
    return out


def remap_topic_name(full_topic: str, node_name: str, namespace: str, rules: Sequence[RemapRule]) -> str:
    """Apply the first matching topic remap rule to an already expanded topic name."""
    for rule in rules:
        if rule.src.startswith("__"):  # __node, __ns, __name: not topic rules
            continue
        if rule.node is not None and rule.node != node_name:
            continue
        if expand_topic_name(rule.src, node_name, namespace) == full_topic:
            return expand_topic_name(rule.dst, node_name, namespace)
    return full_topic


def resolve_topic_name(topic: str, node_name: str, namespace: str, remaps: Iterable | dict | None = None,
                       only_expand: bool = False) -> str:
    """Expand ``topic`` for the node, then apply remaps (unless only_expand)."""
    full = expand_topic_name(topic, node_name, namespace)
    if only_expand:
        return full
    return remap_topic_name(full, node_name, namespace, _as_rules(remaps))


def dds_topic_name(full_topic: str) -> str:
    """DDS topic of a fully qualified ROS topic: ``/ns/foo`` -> ``rt/ns/foo``."""
    validate_full_topic_name(full_topic)
    return "rt" + full_topic
