"""The SpaceMouse device: HID reports of both formats through an injected device object."""

import struct
import sys

import numpy as np
import pytest

from robot_rl.teleop.axes import DeviceUnavailable
from robot_rl.teleop.device import DeviceScale, TeleopError, check_sample
from robot_rl.teleop.spacemouse import SpaceMouse, SpaceMouseConfig

SCALE = DeviceScale(linear_m_s=0.1, angular_rad_s=0.5)


def trans(x, y, z):
    return bytes([1]) + struct.pack("<hhh", x, y, z)


def rot(rx, ry, rz):
    return bytes([2]) + struct.pack("<hhh", rx, ry, rz)


def both(x, y, z, rx, ry, rz):  # newer firmware: one 13-byte report
    return bytes([1]) + struct.pack("<hhhhhh", x, y, z, rx, ry, rz)


def buttons(bits):
    return bytes([3, bits, 0])


class FakeHid:
    """What hidapi's device object does: read() returns a queued report or [] (non-blocking)."""

    def __init__(self):
        self.queue, self.closed, self.fail = [], False, False

    def read(self, n):
        if self.fail:
            raise OSError("read error")
        return list(self.queue.pop(0)) if self.queue else []

    def close(self):
        self.closed = True


@pytest.fixture
def sm():
    dev = FakeHid()
    return SpaceMouse(SpaceMouseConfig(scale=SCALE, deadzone=0.1, full_scale=350), hid_device=dev), dev


def test_separate_reports_map_axes_and_hold_between_reports(sm):
    m, dev = sm
    dev.queue += [trans(0, -350, 0)]  # push the cap away from you: device -y -> robot +x
    s = m.poll(0.0)
    assert s.mode == "ee_twist" and s.device == "spacemouse"
    np.testing.assert_allclose(s.values, [0.1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(m.poll(0.01).values[0], 0.1)  # no new report: the cap is still pushed
    dev.queue += [trans(-350, 0, -350), rot(0, 0, 350)]  # left and up; twist the cap
    v = m.poll(0.02).values
    assert v[0] == 0 and v[1] > 0 and v[2] > 0 and v[5] == pytest.approx(-0.5)
    assert np.linalg.norm(v[:3]) == pytest.approx(0.1)
    check_sample(m.poll(0.03), SCALE, 6)
    dev.queue += [rot(350, -350, 0)]  # rx -> -wy, ry -> +wx (after the sign flips)
    v = m.poll(0.04).values
    assert v[3] > 0 and v[4] < 0
    dev.queue += [trans(0, 0, 0), rot(0, 0, 0)]
    np.testing.assert_array_equal(m.poll(0.05).values, np.zeros(6))


def test_single_report_format_deadzone_and_clipping(sm):
    m, dev = sm
    dev.queue += [both(20, -30, 10, 0, 0, -25)]  # all within the 10 % deadzone (35 counts)
    np.testing.assert_array_equal(m.poll(0.0).values, np.zeros(6))
    dev.queue += [both(0, -700, 0, 0, 0, 0)]  # beyond full scale: clipped to the declared speed
    assert m.poll(0.1).values[0] == pytest.approx(0.1)
    dev.queue += [both(0, -(35 + 315 // 2), 0, 0, 0, 0)]  # halfway through the live range
    assert m.poll(0.2).values[0] == pytest.approx(0.05, rel=0.01)


def test_buttons_left_held_is_clutch_right_is_success_once(sm):
    m, dev = sm
    dev.queue += [buttons(1)]
    assert m.poll(0.0).clutch is True
    assert m.poll(0.1).clutch is True  # held
    dev.queue += [buttons(3)]
    s = m.poll(0.2)
    assert s.clutch and s.events == {"success"}
    assert m.poll(0.3).events == frozenset()
    dev.queue += [buttons(0)]
    s = m.poll(0.4)
    assert not s.clutch and s.events == frozenset()


def test_garbage_reports_are_dropped_and_counted(sm):
    m, dev = sm
    dev.queue += [trans(0, -350, 0), b"\x07\x01\x02", b"\x01\x05", b"", b"\x02", bytes(range(200, 213))]
    s = m.poll(0.0)
    assert s.values[0] == pytest.approx(0.1)  # the good report before the garbage still counts
    assert m.bad_reports == 2  # id 7, a short report 1; the empty read (nothing new) ends the poll
    s = m.poll(0.1)  # a short report 2, id 200
    assert m.bad_reports == 4 and s.values[0] == pytest.approx(0.1)


def test_unplugged_is_one_clear_error_and_close(sm):
    m, dev = sm
    dev.fail = True
    with pytest.raises(DeviceUnavailable, match="stopped answering"):
        m.poll(0.0)
    m.close()
    assert dev.closed


def test_bad_config():
    with pytest.raises(TeleopError, match="axis_signs 6 values"):
        SpaceMouse(SpaceMouseConfig(axis_signs=[1, 1]), hid_device=FakeHid())


def test_missing_hidapi_and_missing_device_are_one_line(monkeypatch):
    from robot_rl.teleop import spacemouse

    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(TeleopError, match=r"needs hidapi: pip install 'robot-rl\[teleop\]'"):
        SpaceMouse(SpaceMouseConfig())
    monkeypatch.delitem(sys.modules, "hid")
    pytest.importorskip("hid")
    with pytest.raises(DeviceUnavailable, match="no 3Dconnexion SpaceMouse found"):  # the real hidapi: none here
        SpaceMouse(SpaceMouseConfig())
    with pytest.raises(DeviceUnavailable, match="cannot be opened"):
        SpaceMouse(SpaceMouseConfig(path="/dev/hidraw_missing"))

    class NoDevices:
        @staticmethod
        def enumerate():
            return [{"vendor_id": 0x046D, "product_id": 0xC52B, "path": b"/dev/hidraw9"}]  # a Logitech receiver

        device = object

    monkeypatch.setattr(spacemouse, "import_hid", lambda: NoDevices)
    with pytest.raises(DeviceUnavailable, match="no 3Dconnexion SpaceMouse found"):
        SpaceMouse(SpaceMouseConfig())
