"""3Dconnexion SpaceMouse teleop (`spacemouse`) over HID (the `hidapi` package), in ee_twist mode.

HID reports (little-endian int16 per axis, about +-350 counts at full deflection):

* older devices (SpaceNavigator, SpaceMouse Pro, Wireless before 2020): report 1 = translation
  x, y, z (6 bytes), report 2 = rotation rx, ry, rz (6 bytes), report 3 = button bits;
* newer firmware (SpaceMouse Compact, Wireless / Enterprise since 2020): report 1 carries all
  six axes (12 bytes); report 3 the buttons.

The device frame: x right, y toward you, z down (push the cap to get +z). Mapped for an operator
who faces the robot's +x axis: push away -> +x, left -> +y, lift -> +z, and rotations likewise
(`axis_signs` flips any of the six). Each axis is divided by `full_scale`, goes through a per-axis
`deadzone`, then `scale_twist`. The cap's state holds between reports (the device only reports
changes). Left button **held** = clutch (hold to intervene); right button = `success` (once per
press); a 2-button cap has no failure/reset: use the keyboard or the web page for those.

`poll` returns a sample on every call while the device answers; a read error (unplugged) raises
`DeviceUnavailable`. Reports it cannot parse (unknown id, short) are dropped and counted in `bad_reports`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_rl.teleop.axes import DeviceUnavailable, Edges, deadzone, scale_twist
from robot_rl.teleop.device import DeviceConfig, TeleopError, TeleopSample, register_device

VENDORS = (0x256F, 0x046D)  # 3Dconnexion, Logitech (older 3Dconnexion devices)
PRODUCTS = {0x046D: {0xC603, 0xC605, 0xC606, 0xC621, 0xC623, 0xC625, 0xC626, 0xC627, 0xC628, 0xC629,
                     0xC62B, 0xC631, 0xC632, 0xC633, 0xC635, 0xC636, 0xC640, 0xC652}}  # Logitech: its 3D mice only


@dataclass
class SpaceMouseConfig(DeviceConfig):
    vendor_id: int = 0
    """0: the first 3Dconnexion device found."""
    product_id: int = 0
    path: str = ""
    """A hidraw path (e.g. /dev/hidraw3) instead of the ids."""
    full_scale: float = 350.0
    """Counts at full deflection."""
    deadzone: float = 0.05
    axis_signs: list = field(default_factory=lambda: [1.0] * 6)
    """Extra sign per output axis [x, y, z, wx, wy, wz]."""


def import_hid():
    try:
        import hid
    except ImportError:
        raise TeleopError("the spacemouse device needs hidapi: pip install 'robot-rl[teleop]' (or pip install "
                          "hidapi)") from None
    if not hasattr(hid, "device"):
        raise TeleopError("the installed `hid` module is not the hidapi package (pip uninstall hid; pip install "
                          "hidapi)")
    return hid


def open_hid(cfg: SpaceMouseConfig):
    """Open the SpaceMouse (hidapi device object, non-blocking) or raise one clear line."""
    hid = import_hid()
    def wanted(d: dict) -> bool:
        if cfg.vendor_id:
            return d["vendor_id"] == cfg.vendor_id and (not cfg.product_id or d["product_id"] == cfg.product_id)
        return d["vendor_id"] in VENDORS and d["product_id"] in PRODUCTS.get(d["vendor_id"], {d["product_id"]})

    found = [d for d in hid.enumerate() if wanted(d)]
    dev = hid.device()
    try:
        if cfg.path:
            dev.open_path(cfg.path.encode())
        elif found:
            dev.open_path(found[0]["path"])
        else:
            raise DeviceUnavailable("no 3Dconnexion SpaceMouse found over HID; plug it in and make /dev/hidraw* "
                                    "readable (udev rule: KERNEL==\"hidraw*\", ATTRS{idVendor}==\"256f\", "
                                    "MODE=\"0666\"), or set the path parameter (/dev/hidrawN)")
    except OSError as e:
        raise DeviceUnavailable(f"the SpaceMouse cannot be opened ({e}); check /dev/hidraw* permissions "
                                "(a udev rule) and that no other program (spacenavd) holds it") from None
    dev.set_nonblocking(1)
    return dev


def _i16(b: bytes, k: int) -> float:
    return float(int.from_bytes(b[k:k + 2], "little", signed=True))


class SpaceMouse:
    mode = "ee_twist"

    def __init__(self, cfg: SpaceMouseConfig, hid_device=None):
        """`hid_device`: an object with `read(n) -> bytes | list[int]` (empty: nothing new) and
        `close()`; default: the first SpaceMouse found through hidapi."""
        if cfg.full_scale <= 0 or not 0 <= cfg.deadzone < 1 or len(cfg.axis_signs) != 6:
            raise TeleopError(f"spacemouse full_scale={cfg.full_scale} must be > 0, deadzone={cfg.deadzone} in [0, 1)"
                              f" and axis_signs 6 values, got {len(cfg.axis_signs)}")
        self.cfg, self.scale, self.name = cfg, cfg.scale, "spacemouse"
        self.dev = hid_device if hid_device is not None else open_hid(cfg)
        self.counts = np.zeros(6)  # device axes x, y, z, rx, ry, rz (counts)
        self.buttons = 0
        self.bad_reports = 0
        self._edges = Edges()
        self._seq = 0
        self._signs = np.asarray(cfg.axis_signs, dtype=np.float64)

    def feed(self, report) -> bool:
        """Apply one HID report (bytes or a list of ints, report id first); False if it was dropped."""
        r = bytes(report)
        if len(r) >= 13 and r[0] == 1:  # one report for all six axes
            self.counts[:] = [_i16(r, 1 + 2 * k) for k in range(6)]
        elif len(r) >= 7 and r[0] in (1, 2):
            off = 0 if r[0] == 1 else 3
            self.counts[off:off + 3] = [_i16(r, 1 + 2 * k) for k in range(3)]
        elif len(r) >= 2 and r[0] == 3:
            self.buttons = int.from_bytes(r[1:5], "little")
        else:
            self.bad_reports += 1
            return False
        return True

    def poll(self, now: float | None = None) -> TeleopSample:
        now = time.monotonic() if now is None else now
        for _ in range(64):  # everything queued since the last poll, bounded
            try:
                report = self.dev.read(64)
            except (OSError, ValueError) as e:
                raise DeviceUnavailable(f"the SpaceMouse stopped answering ({e}); plug it back in") from None
            if not report:
                break
            self.feed(report)
        x, y, z, rx, ry, rz = deadzone(self.counts / self.cfg.full_scale, self.cfg.deadzone)
        raw = np.array([-y, -x, -z, -ry, -rx, -rz]) * self._signs
        held = {"clutch"} if self.buttons & 1 else set()
        if self.buttons & 2:
            held.add("success")
        events = self._edges.rising(held - {"clutch"})
        self._seq += 1
        return TeleopSample(stamp=now, mode=self.mode, values=scale_twist(raw, self.scale), clutch="clutch" in held,
                            events=events, device=self.name, seq=self._seq)

    def show_state(self, state: dict[str, Any]) -> None:
        """A SpaceMouse has no display: nothing to show."""

    def close(self) -> None:
        try:
            self.dev.close()
        except (OSError, ValueError):
            pass


register_device("spacemouse", SpaceMouseConfig, SpaceMouse)
