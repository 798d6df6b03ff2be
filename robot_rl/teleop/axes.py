"""What every physical device does to its raw input: deadzone, scaling to physical units, edges.

    twist = scale_twist(raw6, cfg.scale)      # raw in [-1, 1] per axis -> m/s, rad/s within the scale
    x = deadzone(x, 0.1)                      # 0 inside, rescaled to [0, 1] outside (no jump at the edge)
    pressed = Edges(); pressed.rising({"success"})   # events fire once per press

`DeviceUnavailable` is what a device raises when it is missing, unplugged or its input closed: the
`teleop` node logs the line, stops publishing (the arbiter then sees a silent device and holds) and
retries opening it.
"""

from __future__ import annotations

import numpy as np

from robot_rl.teleop.device import DeviceScale, TeleopError


class DeviceUnavailable(TeleopError):
    """The device is missing, unplugged or its input closed (the message says which and the fix)."""


def deadzone(x, dz: float) -> np.ndarray:
    """Per-axis deadzone of values in [-1, 1]: |x| <= dz -> 0, else rescaled so that dz..1 -> 0..1."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    if dz <= 0:
        return x
    if dz >= 1:
        raise TeleopError(f"deadzone {dz} must be below 1 (a fraction of full scale, e.g. 0.1)")
    mag = np.clip((np.abs(x) - dz) / (1.0 - dz), 0.0, 1.0)
    return np.sign(x) * mag


def _unit_ball(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1.0 else v


def scale_twist(raw, scale: DeviceScale) -> np.ndarray:
    """Raw [x, y, z, rx, ry, rz] in [-1, 1] -> ee twist [m/s, rad/s]: each half limited to the unit
    ball (two axes at full deflection do not exceed the declared speed), then scaled."""
    r = np.clip(np.asarray(raw, dtype=np.float64).reshape(6), -1.0, 1.0)
    return np.concatenate([_unit_ball(r[:3]) * scale.linear_m_s, _unit_ball(r[3:]) * scale.angular_rad_s])


class Edges:
    """Rising edges of a set of held buttons: `rising(held)` returns the names pressed since the last call."""

    def __init__(self) -> None:
        self._held: frozenset = frozenset()

    def rising(self, held) -> frozenset:
        held = frozenset(held)
        new = held - self._held
        self._held = held
        return new
