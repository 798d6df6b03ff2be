"""The safety filter's own motions (stop, brake, retreat) within rate and acceleration limits.

Whenever the filter, rather than the policy, decides where the output goes (hold, brake, e-stop,
fault hold, backup), the output must not jump: :class:`FilterMotion` moves it so that every tick

* changes each joint by at most ``rate * dt`` (the velocity limit), and
* changes each joint's step by at most ``accel * dt**2`` from the previous tick's step (the
  acceleration limit; the previous step is the command velocity tracked from the last outputs).

A motion has two phases:

1. **stop**: the command velocity decreases to zero, by at most ``accel * dt`` per joint and tick,
   along the direction it had (all joints scaled by one factor, so the output stays on the line it
   was moving along, the line the workspace check covered). The stopping distance from speed v is
   about ``v**2 / (2 * accel)`` per joint: 0.05 rad from 1 rad/s at the default 10 rad/s^2.
2. **goal** (``brake``: the measured position latched when braking began; ``retreat``: home):
   from rest, along the straight joint-space line to the goal with a trapezoidal speed profile
   (the slowest joint sets the pace, so all joints arrive together), braking in time to arrive at
   rest, then holding the goal exactly. A ``stop`` motion has no goal: it holds where it stopped.

Holding never re-reads the measured position (an arm under gravity would sag step by step). The
profile is computed in discrete time (exact for a fixed ``dt``): it never overshoots the goal and
reaches it in finite time. Pure numpy, no clock: the caller passes ``dt``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FilterMotion", "STOP", "BRAKE", "RETREAT"]

STOP, BRAKE, RETREAT = "stop", "brake", "retreat"


def track_speed(r: float, u: float, vmax: float, amax: float, dt: float) -> float:
    """Next speed toward a goal ``r >= 0`` away, from speed ``u``, within ``vmax`` and ``amax``,
    such that decelerating by ``amax * dt`` per tick afterwards stops exactly at the goal at the
    latest (discrete-time time-optimal profile)."""
    a = amax * dt * dt
    # the largest m with a * m (m + 1) / 2 <= r: the number of full braking ticks still possible
    m = int((math.sqrt(1.0 + 8.0 * r / a) - 1.0) * 0.5) if a > 0 else 0
    while m > 0 and a * m * (m + 1) * 0.5 > r:
        m -= 1
    while a * (m + 1) * (m + 2) * 0.5 <= r:
        m += 1
    u_stop = min((r / dt + amax * dt * m * (m + 1) * 0.5) / (m + 1), (m + 1) * amax * dt)
    return max(min(u_stop, vmax, u + amax * dt), u - amax * dt)


class FilterMotion:
    """Stop / brake / retreat motions of the output (module docstring).

    Args:
        rate: per-joint velocity limit (rad/s) of stop and brake motions.
        accel: per-joint acceleration limit (rad/s^2).
        retreat_rate: per-joint velocity limit of the retreat (at most ``rate``).
    """

    def __init__(self, rate: np.ndarray, accel: np.ndarray, retreat_rate: np.ndarray):
        self.rate = np.array(rate, dtype=np.float64)
        self.accel = np.array(accel, dtype=np.float64)
        self.retreat_rate = np.minimum(np.array(retreat_rate, dtype=np.float64), self.rate)
        self.goal = np.zeros_like(self.rate)
        self._p0 = np.zeros_like(self.rate)
        self._d = np.zeros_like(self.rate)
        self.reset()

    def reset(self) -> None:
        """Forget the current motion (the next :meth:`step` starts a new one)."""
        self.kind: str | None = None
        self._line = False  # phase 2 (goal) under way
        self._s = self._u = 0.0

    def start(self, kind: str, goal: np.ndarray | None = None) -> None:
        """Begin a ``kind`` motion (STOP, BRAKE with ``goal``, RETREAT with ``goal``) unless one
        of that kind is already under way (a brake keeps the goal latched when it began)."""
        if kind == self.kind:
            return
        self.reset()
        self.kind = kind
        if kind != STOP:
            np.copyto(self.goal, goal)

    def step(self, out: np.ndarray, vel: np.ndarray, dt: float) -> None:
        """Advance ``out`` (in place) by one tick of ``dt`` seconds; ``vel`` is the command velocity
        of the last tick (rad/s, from the last two outputs)."""
        if self.kind is None or dt <= 0.0:
            return
        if not self._line:
            speed = np.abs(vel)
            if speed.any():  # phase 1: decelerate along the direction of motion
                with np.errstate(divide="ignore"):
                    f = max(0.0, 1.0 - float(np.min(self.accel * dt / speed)))
                out += vel * (f * dt)
                return
            if self.kind == STOP:
                return
            np.copyto(self._p0, out)
            np.subtract(self.goal, out, out=self._d)
            dist = np.abs(self._d)
            if not dist.any():
                return
            moving = dist > 0
            lim = self.retreat_rate if self.kind == RETREAT else self.rate
            self._vmax = float(np.min(lim[moving] / dist[moving]))  # path parameter s in [0, 1]
            self._amax = float(np.min(self.accel[moving] / dist[moving]))
            self._line, self._s, self._u = True, 0.0, 0.0
        if self._s >= 1.0:
            self._u = 0.0
            np.copyto(out, self.goal)
            return
        u = track_speed(1.0 - self._s, self._u, self._vmax, self._amax, dt)
        s = self._s + u * dt
        if s >= 1.0 - 1e-12:  # arrived (the profile lands on the goal; this removes rounding)
            s, u = 1.0, (1.0 - self._s) / dt
        self._s, self._u = s, u
        if s >= 1.0:
            np.copyto(out, self.goal)
        else:
            np.copyto(out, self._p0)
            out += s * self._d
