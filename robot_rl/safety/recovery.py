"""Recovery behaviours of the safety filter's ``backup`` mode, and the risk hysteresis.

Pure numpy, no clock: the filter passes ``t`` and ``dt`` in (see :mod:`robot_rl.safety.filter`).

* :class:`PathMemory`: a ring buffer of recent *safe* joint positions (the filter's outputs in
  ``ok`` mode), one waypoint each time the output has moved ``spacing`` rad (max over joints)
  from the last one, at most ``capacity`` waypoints (the oldest dropped). It also keeps the
  outputs of the last ``window`` ticks, so the command velocity over a control period (what the
  safety critic reads as the action) is ``(out[k] - out[k - w]) / (w dt)``.
* :class:`PathRetreat`: replays the memory backwards. Each tick moves the output toward the newest
  waypoint not yet reached, by at most ``rate * dt * s`` per joint along the straight line (all
  joints scaled together), where the speed fraction ``s`` ramps from 0 to 1 within the
  acceleration limit; a reached waypoint is popped, so the retreat continues to older ones.
  When the memory is empty the output stays where it is (hold). Before the replay starts, the
  filter stops its current motion (:class:`robot_rl.safety.braking.FilterMotion` STOP).
* :class:`RiskGate`: hysteresis with a dwell time: enter when risk > ``threshold``, leave only
  once risk stayed below ``threshold - hysteresis`` for ``dwell_s`` seconds.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PathMemory", "PathRetreat", "RiskGate"]


class PathMemory:
    """Recent safe joint positions (module docstring)."""

    def __init__(self, n: int, spacing: float = 0.02, capacity: int = 200, window: int = 20):
        if not (spacing > 0 and capacity >= 1 and window >= 1):
            raise ValueError("PathMemory: spacing > 0, capacity >= 1 and window >= 1 are required")
        self.n, self.spacing, self.capacity = n, float(spacing), int(capacity)
        self._pts = np.zeros((self.capacity, n))
        self._len = 0
        self._head = 0  # next write index
        self._win = np.zeros((int(window) + 1, n))
        self._win_t = np.full(int(window) + 1, -math.inf)
        self._wk = 0
        self._wcount = 0

    def __len__(self) -> int:
        return self._len

    def clear(self) -> None:
        self._len = 0
        self._wcount = 0

    def record_waypoint(self, q: np.ndarray) -> None:
        """Add ``q`` as a waypoint if it is ``spacing`` away from the newest one (or none)."""
        if self._len:
            last = self._pts[(self._head - 1) % self.capacity]
            if float(np.abs(q - last).max()) < self.spacing:
                return
        self._pts[self._head] = q
        self._head = (self._head + 1) % self.capacity
        self._len = min(self._len + 1, self.capacity)

    def newest(self) -> np.ndarray | None:
        return None if not self._len else self._pts[(self._head - 1) % self.capacity]

    def pop(self) -> None:
        if self._len:
            self._head = (self._head - 1) % self.capacity
            self._len -= 1

    def waypoints(self) -> np.ndarray:
        """[k, n] waypoints, oldest first (a copy)."""
        idx = (self._head - self._len + np.arange(self._len)) % self.capacity
        return self._pts[idx].copy()

    def record_output(self, t: float, q: np.ndarray) -> None:
        """Every tick's output, for :meth:`command_velocity`."""
        self._win[self._wk] = q
        self._win_t[self._wk] = t
        self._wk = (self._wk + 1) % len(self._win)
        self._wcount = min(self._wcount + 1, len(self._win))

    def command_velocity(self) -> np.ndarray:
        """Mean output velocity (rad/s) over the window (zeros until two outputs are known)."""
        if self._wcount < 2:
            return np.zeros(self.n)
        newest = (self._wk - 1) % len(self._win)
        oldest = (self._wk - self._wcount) % len(self._win)
        span = self._win_t[newest] - self._win_t[oldest]
        if not span > 0:
            return np.zeros(self.n)
        return (self._win[newest] - self._win[oldest]) / span


class PathRetreat:
    """Replay a :class:`PathMemory` backwards within rate and acceleration limits."""

    def __init__(self, rate: np.ndarray, accel: np.ndarray):
        self.rate = np.asarray(rate, dtype=np.float64)
        self.accel = np.asarray(accel, dtype=np.float64)
        self._frac = 0.0

    def reset(self) -> None:
        self._frac = 0.0

    def step(self, out: np.ndarray, memory: PathMemory, dt: float) -> bool:
        """Move ``out`` (in place) one tick back along the path; False when nothing is left."""
        if dt <= 0.0:
            return len(memory) > 0
        # speed fraction ramps up within the acceleration limit (from rest after the stop phase)
        self._frac = min(1.0, self._frac + float(np.min(self.accel / self.rate)) * dt)
        budget = self._frac * dt  # seconds of travel at the full retreat rate left this tick
        while budget > 0.0:
            goal = memory.newest()
            if goal is None:
                self._frac = 0.0
                return False
            d = goal - out
            need = float((np.abs(d) / self.rate).max())
            if need <= budget:
                np.copyto(out, goal)
                memory.pop()
                budget -= need
            else:
                out += d * (budget / need)
                budget = 0.0
        return True


class RiskGate:
    """Backup on/off from risk values: hysteresis plus a dwell time (module docstring)."""

    def __init__(self, threshold: float, hysteresis: float, dwell_s: float = 0.0):
        self.threshold, self.hysteresis, self.dwell_s = float(threshold), float(hysteresis), float(dwell_s)
        self.active = False
        self._below_since: float | None = None

    def reset(self) -> None:
        self.active = False
        self._below_since = None

    def update(self, t: float | None, risk: float) -> bool:
        """Feed one risk value (already finite, in [0, 1]) at time ``t`` (None: unknown time, which
        never counts toward the dwell). Returns whether the backup is active."""
        if not self.active:
            if risk > self.threshold:
                self.active = True
                self._below_since = None
            return self.active
        if risk < self.threshold - self.hysteresis and t is not None:
            if self._below_since is None:
                self._below_since = t
            if t - self._below_since >= self.dwell_s:
                self.active = False
                self._below_since = None
        else:
            self._below_since = None
        return self.active
