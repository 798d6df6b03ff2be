"""Shared plumbing of the deployment nodes: argv -> node, typed parameters, clean shutdown,
latency statistics."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["NodeStartError", "make_node", "param", "floats", "run_node", "RateLimitedLog", "LatchableSubscription",
           "LatencyStats", "json_safe", "fail"]


class NodeStartError(RuntimeError):
    """A node cannot start (bad parameter, robot mismatch); the message is one line for the user."""


def fail(name: str, message: str) -> int:
    """Print a one-line error for ``name`` and return the exit code 2."""
    print(f"[{name}] error: {message}", file=sys.stderr, flush=True)
    return 2


def make_node(default_name: str, argv: Sequence[str] | None):
    """Create a transport node from the command line (``--ros-args ...``)."""
    from robot_rl.transport import create_node

    level = os.environ.get("ROBOT_RL_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format=f"[%(asctime)s] [{default_name}] %(levelname)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    return create_node(default_name, args=argv)


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ValueError("expected true or false")


def _to_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise ValueError("expected an integer")


def _to_float(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise ValueError("expected a number")


def _to_str(v: Any) -> str:
    if isinstance(v, (list, tuple, dict)):
        raise ValueError("expected a string, not a list")
    return v if isinstance(v, str) else str(v)


def _to_list(v: Any) -> list:
    if isinstance(v, (list, tuple)):
        return list(v)
    raise ValueError("expected a list, e.g. [a, b]")


def floats(v: Any) -> float | list[float]:
    """``param`` kind: a number, or a list of numbers (e.g. a per-joint limit), as float(s)."""
    if isinstance(v, (list, tuple)):
        return [_to_float(x) for x in v]
    return _to_float(v)


_KINDS: dict[Any, Callable[[Any], Any]] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str,
                                           list: _to_list}
_KIND_NAMES = {bool: "bool (true/false)", int: "integer", float: "number", str: "string", list: "list",
               floats: "number or list of numbers"}


def param(node, name: str, default: Any, kind: Callable | None = None, *, check: Callable[[Any], bool] | None = None,
          expect: str = "") -> Any:
    """Declare a parameter and return it as ``kind``: ``float``, ``int``, ``bool``, ``str``,
    ``list``, :func:`floats` (a number or a list of numbers), any other converter, or None (as
    given). A string value (a quoted ``-p`` value, or one given in ``parameters=``) is first typed
    by :func:`robot_rl.transport.ros_args.parse_param_value`, the rules rcl applies to
    ``-p name:=value``, so ``"[0.1, 0.2]"``, ``"true"`` and ``"1e3"`` mean what they mean on the
    command line. Ints are accepted where a float is expected. A value of the wrong type, or one
    ``check`` refuses, is a :class:`NodeStartError` naming the parameter and ``expect``."""
    value = node.declare_parameter(name, default)
    if value is None:
        return None
    return _convert(name, value, kind, check, expect)


def optional_param(node, name: str, kind: Callable | None = None, *, check: Callable[[Any], bool] | None = None,
                   expect: str = "") -> Any:
    """Like :func:`param`, for a value that may be left unset: None when it is empty (launch
    arguments default to "")."""
    value = node.declare_parameter(name, "")
    if value is None or value == "":
        return None
    return _convert(name, value, kind, check, expect)


def _convert(name: str, value: Any, kind, check, expect: str) -> Any:
    from robot_rl.transport.ros_args import RosArgsError, parse_param_value

    given = value
    try:
        if isinstance(value, str) and kind not in (None, str):
            value = parse_param_value(value)
        conv = _KINDS.get(kind, kind)
        if conv is not None:
            value = conv(value)
    except (TypeError, ValueError, RosArgsError) as e:
        what = _KIND_NAMES.get(kind, getattr(kind, "__name__", str(kind)))
        raise NodeStartError(f"parameter {name}={given!r} is not a valid {what}: {e}"
                             + (f" ({expect})" if expect else "")) from None
    if check is not None and not check(value):
        raise NodeStartError(f"parameter {name}={given!r} is invalid" + (f": expected {expect}" if expect else ""))
    return value


class RateLimitedLog:
    """Logs rejected inputs without flooding: at most one line per ``reason`` every ``period_s``
    seconds; lines suppressed in between are counted and the count is reported on the next line
    for that reason (and by :meth:`flush`, e.g. at shutdown). Every line names its reason.

        reject = RateLimitedLog(node.logger)
        reject("non_finite", "rejected a command on %s: NaN in %s", topic, names)

    ``counts``: every call per reason (logged or not). ``clock``: injectable for tests."""

    def __init__(self, logger: logging.Logger, period_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 level: int = logging.WARNING):
        self.logger, self.period_s, self.clock, self.level = logger, float(period_s), clock, level
        self.counts: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, reason: str, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` for ``reason`` unless one was logged less than ``period_s`` ago.
        Returns True if a line was written."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = self.clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.period_s:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return False
        self._last[reason] = now
        n = self._suppressed.pop(reason, 0)
        more = f" (+{n} more '{reason}' in the last {now - last:.1f} s, not logged)" if n and last is not None else ""
        self.logger.log(self.level, f"[{reason}] {msg}{more}", *args)
        return True

    def flush(self) -> None:
        """Report the counts still suppressed (one line per reason)."""
        for reason, n in sorted(self._suppressed.items()):
            if n:
                self.logger.log(self.level, "[%s] %d more not logged (%d in all)", reason, n, self.counts[reason])
        self._suppressed.clear()


class LatchableSubscription:
    """A subscription that hears volatile *and* transient-local (latched) publishers of a topic
    without the incompatible-QoS warning a transient-local reader causes on a volatile publisher.

    A volatile reader (reliable) always exists: it matches both kinds of publisher and gets every
    new message. A latched publisher's *last* message, published before this node started, only
    reaches a transient-local reader, so while the graph shows latched publishers of the topic
    and no volatile one, a transient-local reader is added for ``history_s`` seconds after each
    newly discovered latched publisher (its history arrives within milliseconds of matching), then
    removed; it is never created while a volatile publisher exists. The callback may see a live
    message twice while both readers exist: make it idempotent (an e-stop state is). The check
    runs on a ``check_period_s`` timer from the node's graph API (``get_publishers_info_by_topic``).
    """

    def __init__(self, node, msg_type, topic: str, callback: Callable[[Any], None], *, history_s: float = 1.0,
                 check_period_s: float = 0.1, clock: Callable[[], float] = time.monotonic):
        self.node, self.msg_type, self.callback, self.history_s, self.clock = node, msg_type, callback, history_s, clock
        self.volatile = node.create_subscription(msg_type, topic, callback)
        self.topic = self.volatile.topic
        self.latched = None
        self._known: set = set()
        self._until = 0.0
        self.check()
        self.timer = node.create_timer(check_period_s, self.check)

    def check(self) -> None:
        infos = self.node.get_publishers_info_by_topic(self.topic)
        latched = {i.gid for i in infos if i.qos.durability == "transient_local"}
        volatile = any(i.qos.durability != "transient_local" for i in infos)
        new = latched - self._known
        self._known = latched
        now = self.clock()
        if new and not volatile:
            self._until = now + self.history_s
            if self.latched is None:
                self.latched = self.node.create_subscription(self.msg_type, self.topic, self.callback, qos="latched")
        if self.latched is not None and (volatile or now > self._until):
            self.latched.destroy()
            self.latched = None


def set_realtime_priority(node, priority: int) -> bool:
    """Run the calling thread (the one that will spin the node's timers) under SCHED_FIFO at
    `priority` (1-99), as ros2_control's controller manager does for its loop; 0 leaves the
    scheduler alone. Without the permission it logs a warning and carries on at normal priority."""
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError, AttributeError) as e:
        node.logger.warning("real-time priority %d not available (%s); running at normal priority", priority, e)
        return False
    node.logger.info("running the control loop under SCHED_FIFO priority %d", priority)
    return True


def node_main(name: str, run: Callable[[Any], int], argv: Sequence[str] | None) -> int:
    """A node's console-script entry: build node `name` from ROS 2 arguments and `run(node)`; bad
    arguments or a `NodeStartError` exit with code 2 and one line."""
    from robot_rl.transport import RosArgsError

    try:
        node = make_node(name, argv)
    except (RosArgsError, ValueError) as e:
        return fail(name, str(e))
    try:
        return run(node)
    except NodeStartError as e:
        node.shutdown()
        return fail(node.name, str(e))


def run_node(node, on_stop: Callable[[], None] | None = None) -> int:
    """Spin ``node`` until SIGINT/SIGTERM; returns the exit code (0 clean, 1 callback error)."""
    def _term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    # SIGINT too, even when the node inherited it ignored (a shell starts background jobs with SIGINT
    # ignored, and Python then keeps it so): rclpy's nodes stop on SIGINT whatever started them
    signal.signal(signal.SIGINT, _term)
    code = 0
    try:
        node.spin()
    except KeyboardInterrupt:
        pass
    except Exception:  # noqa: BLE001 - logged, non-zero exit so the launcher notices
        node.logger.exception("node stopped by an error")
        code = 1
    finally:
        if on_stop is not None:
            try:
                on_stop()
            except Exception:  # noqa: BLE001
                node.logger.exception("error while stopping")
        node.shutdown()
    return code


class LatencyStats:
    """Rolling window of durations (seconds) with percentiles in milliseconds."""

    def __init__(self, size: int = 5000):
        self._buf = np.zeros(size)
        self._n = 0
        self.count = 0
        self.max = 0.0

    def add(self, dt: float) -> None:
        self._buf[self._n % self._buf.shape[0]] = dt
        self._n += 1
        self.count += 1
        if dt > self.max:
            self.max = dt

    def summary(self) -> dict:
        n = min(self._n, self._buf.shape[0])
        if n == 0:
            return {"count": 0}
        w = self._buf[:n]
        p50, p99 = np.percentile(w, [50, 99])
        return {"count": self.count, "p50_ms": round(float(p50) * 1e3, 4), "p99_ms": round(float(p99) * 1e3, 4),
                "max_ms": round(float(w.max()) * 1e3, 4), "mean_ms": round(float(w.mean()) * 1e3, 4)}


def json_safe(obj: Any) -> Any:
    """Status dicts -> JSON-serializable (inf/nan -> None, arrays/tuples -> lists)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(json_safe(obj), separators=(",", ":"))


def monotonic() -> float:
    return time.monotonic()
