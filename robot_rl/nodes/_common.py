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

__all__ = ["NodeStartError", "make_node", "param", "run_node", "LatencyStats", "json_safe", "fail"]


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


def param(node, name: str, default: Any, kind: Callable | None = None, *, check: Callable[[Any], bool] | None = None,
          expect: str = "") -> Any:
    """Declare a parameter and convert it (``kind``: float, int, bool, str, list)."""
    value = node.declare_parameter(name, default)
    if value is None:
        return None
    try:
        if kind is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                value = low in ("true", "1", "yes")
            else:
                value = bool(value)
        elif kind is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
            value = list(value)
        elif kind is not None:
            value = kind(value)
    except (TypeError, ValueError):
        raise NodeStartError(f"parameter {name}={value!r} is not a valid {getattr(kind, '__name__', kind)}"
                             + (f" ({expect})" if expect else "")) from None
    if check is not None and not check(value):
        raise NodeStartError(f"parameter {name}={value!r} is invalid" + (f": expected {expect}" if expect else ""))
    return value


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


def run_node(node, on_stop: Callable[[], None] | None = None) -> int:
    """Spin ``node`` until SIGINT/SIGTERM; returns the exit code (0 clean, 1 callback error)."""
    def _term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
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
