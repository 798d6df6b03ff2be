"""Joint names -> an expected joint order: the one mapping every deploy component uses.

A ROS message names its joints (``sensor_msgs/JointState.name``, ``JointTrajectory.joint_names``)
in whatever order its sender likes, and a robot may report more joints than a consumer uses (a
gripper's fingers next to an arm). :class:`JointMap` turns a message's names into the index
array that reorders its values into the consumer's ``expected`` order, with one set of rules:

* every expected joint must be named exactly once (``missing_joint`` / ``duplicate_joint``);
* a name that is not expected is ignored (``extra="ignore"``, the default: a gripper next to an
  arm) or refused (``extra="refuse"``: ``unknown_joint``);
* a name given twice is refused even if it is an ignored extra (the message is ambiguous);
* as many values as names (``wrong_length``, checked by :meth:`JointMap.take`).

Errors are :class:`JointMapError` (a ``ValueError`` and a ``KeyError``) with a machine-readable
``reason`` (one of :data:`REASONS`) and a message naming every offending joint. The permutation
of the last few name lists is cached, so mapping a 1 kHz stream whose order never changes costs a
dict lookup::

    jm = JointMap(["j1", "j2", "j3"])                     # extra joints ignored
    q = jm.take(msg.name, msg.position)                   # float64 array in j1, j2, j3 order
    perm = jm.permutation(msg.name)                       # msg values[perm] -> expected order

Used by the safety filter (commands strict, joint states by ``strict_state_names``),
:func:`robot_rl.transport.msgs.joint_state_to_numpy`, the robot twin's ``set_command``, the
ros2_control driver (controller joint order and the robot's ``joint_states`` check) and the
policy node (the artifact's state joints in the robot's ``joint_states``).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["JointMap", "JointMapError", "REASONS", "EXTRA_POLICIES"]

REASONS = ("wrong_length", "unknown_joint", "missing_joint", "duplicate_joint")
EXTRA_POLICIES = ("ignore", "refuse")
_CACHE_SIZE = 8


class JointMapError(ValueError, KeyError):
    """A message's joint names (or value count) do not fit the expected joints.

    ``reason``: one of :data:`REASONS`; ``missing`` / ``unknown`` / ``duplicate``: the joints
    concerned (lists, possibly empty)."""

    def __init__(self, reason: str, message: str, *, missing: Sequence[str] = (),
                 unknown: Sequence[str] = (), duplicate: Sequence[str] = ()):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.missing = list(missing)
        self.unknown = list(unknown)
        self.duplicate = list(duplicate)

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return self.message


class JointMap:
    """Maps joint-name lists onto ``expected`` (see the module docstring).

    Args:
        expected: the joint order values are wanted in (distinct, non-empty names).
        extra: ``"ignore"`` (default) or ``"refuse"`` names that are not in ``expected``.
        what: what the names belong to, for error messages (e.g. ``"joint state"``).
    """

    def __init__(self, expected: Iterable[str], *, extra: str = "ignore", what: str = "message"):
        names = tuple(str(n) for n in expected)
        if not names:
            raise ValueError("JointMap needs at least one expected joint name")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"expected joint names must be distinct, {dup} appear more than once")
        if extra not in EXTRA_POLICIES:
            raise ValueError(f"extra={extra!r} must be one of {EXTRA_POLICIES}")
        self.expected = names
        self.extra = extra
        self.what = what
        self.index = {n: i for i, n in enumerate(names)}
        self._cache: dict[tuple, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.expected)

    def __repr__(self) -> str:
        return f"JointMap({list(self.expected)}, extra={self.extra!r})"

    # ------------------------------------------------------------------------------------------

    def permutation(self, names: Sequence[str]) -> np.ndarray:
        """Index array ``perm`` (read-only) with ``values[perm]`` in the expected order, for a
        message naming its values ``names``. Raises :class:`JointMapError`."""
        key = names if isinstance(names, tuple) else tuple(names)
        perm = self._cache.get(key)
        if perm is not None:
            return perm
        if isinstance(names, (str, bytes)):
            raise JointMapError("wrong_length", f"{self.what} joint names must be a list of names, got {names!r}")
        perm = self._build(key)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = perm
        return perm

    def _build(self, key: tuple) -> np.ndarray:
        index = self.index
        perm = np.full(len(self.expected), -1, dtype=np.intp)
        seen: set = set()
        duplicate, unknown = [], []
        for k, name in enumerate(key):
            if name in seen:
                if name not in duplicate:
                    duplicate.append(name)
                continue
            seen.add(name)
            i = index.get(name)
            if i is None:
                unknown.append(name)
            else:
                perm[i] = k
        missing = [self.expected[i] for i in np.flatnonzero(perm < 0)]
        if duplicate:
            raise self._error("duplicate_joint", key, f"names {duplicate} more than once", missing, unknown, duplicate)
        if unknown and self.extra == "refuse":
            raise self._error("unknown_joint", key, f"names unknown joints {unknown}", missing, unknown, duplicate)
        if missing:
            raise self._error("missing_joint", key, f"lacks joints {missing}", missing, unknown, duplicate)
        perm.setflags(write=False)
        return perm

    def _error(self, reason, key, head, missing, unknown, duplicate) -> JointMapError:
        parts = [f"{self.what} {head}"]
        if reason != "missing_joint" and missing:
            parts.append(f"lacks joints {missing}")
        if reason != "unknown_joint" and unknown and self.extra == "refuse":
            parts.append(f"names unknown joints {unknown}")
        msg = ", ".join(parts) + f" (it names {list(key)}; expected {list(self.expected)}"
        msg += ", other joints are ignored)" if self.extra == "ignore" else ")"
        return JointMapError(reason, msg, missing=missing, unknown=unknown, duplicate=duplicate)

    def check(self, names: Sequence[str]) -> None:
        """Raise :class:`JointMapError` unless ``names`` can be mapped."""
        self.permutation(names)

    def extras(self, names: Iterable[str]) -> list[str]:
        """Names in ``names`` that are not expected (the ones ``extra="ignore"`` skips)."""
        return [n for n in names if n not in self.index]

    def take(self, names: Sequence[str] | None, values, out: np.ndarray | None = None) -> np.ndarray:
        """``values`` (one per name) as float64 in the expected order (``names=None``: already
        in that order). Raises :class:`JointMapError` for a length mismatch or bad names."""
        vals = np.asarray(values, dtype=np.float64)
        if vals.ndim != 1:
            raise JointMapError("wrong_length", f"{self.what} values must be a flat sequence, got shape {vals.shape}")
        if names is None:
            if vals.shape[0] != len(self.expected):
                raise JointMapError("wrong_length", f"{self.what} has {vals.shape[0]} values for "
                                    f"{len(self.expected)} joints {list(self.expected)}")
            if out is None:
                return vals.copy()
            np.copyto(out, vals)
            return out
        if isinstance(names, (str, bytes)) or len(names) != vals.shape[0]:
            n = "a string" if isinstance(names, (str, bytes)) else f"{len(names)} names"
            raise JointMapError("wrong_length", f"{self.what} has {n} but {vals.shape[0]} values")
        perm = self.permutation(names)
        if out is None:
            return vals[perm]
        np.take(vals, perm, out=out)
        return out
