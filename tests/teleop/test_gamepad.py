"""The gamepad device through SDL's virtual joystick (pygame headless, no hardware)."""

import sys

import numpy as np
import pytest

pytest.importorskip("pygame")

from _virtual_pad import VirtualPad  # noqa: E402

from robot_rl.teleop.axes import DeviceUnavailable  # noqa: E402
from robot_rl.teleop.device import DeviceScale, TeleopError, check_sample  # noqa: E402
from robot_rl.teleop.gamepad import Gamepad, GamepadConfig  # noqa: E402

SCALE = DeviceScale(linear_m_s=0.1, angular_rad_s=0.5)


@pytest.fixture
def pad():
    p = VirtualPad()
    yield p
    p.detach()


def opened(pad, **kw):
    g = Gamepad(GamepadConfig(scale=SCALE, **kw))
    pad.bind(g.instance_id)
    pad.axis(5, -1.0)  # right trigger released
    return g


def test_sticks_deadzone_and_scale(pad):
    g = opened(pad, deadzone=0.1)
    s = g.poll(0.0)
    assert s.mode == "ee_twist" and s.device == "gamepad"
    np.testing.assert_allclose(s.values, np.zeros(6), atol=1e-9)
    pad.axis(1, -1.0)  # left stick fully up -> +x at full speed
    np.testing.assert_allclose(g.poll(0.1).values, [0.1, 0, 0, 0, 0, 0], atol=1e-4)
    pad.axis(1, -0.08)  # inside the deadzone -> 0
    assert g.poll(0.2).values[0] == 0.0
    pad.axis(1, -0.55)  # halfway through the live range -> half speed (rescaled, no jump at the edge)
    assert g.poll(0.3).values[0] == pytest.approx(0.05, abs=1e-3)
    pad.axis(1, 0.0)
    pad.axis(0, 1.0)  # right -> -y
    pad.axis(4, -1.0)  # right stick up -> +z
    pad.axis(3, 1.0)  # right stick right -> -yaw
    v = g.poll(0.4).values
    assert v[1] < 0 and v[2] > 0 and v[5] == pytest.approx(-0.5, abs=1e-4)
    assert np.linalg.norm(v[:3]) == pytest.approx(0.1, abs=1e-6)  # two full axes stay within the scale
    check_sample(g.poll(0.5), SCALE, 7)
    pad.axis(3, 0.0)
    pad.hat(1, 0)  # d-pad right -> -roll; up -> +pitch
    assert g.poll(0.6).values[3] == pytest.approx(-0.5)
    pad.hat(0, 1)
    assert g.poll(0.7).values[4] == pytest.approx(0.5)


def test_clutch_is_held_events_fire_once_and_gripper_follows_the_trigger(pad):
    g = opened(pad)
    assert g.poll(0.0).clutch is False
    pad.button(5, True)  # RB held
    assert g.poll(0.1).clutch and g.poll(0.2).clutch
    pad.button(5, False)
    assert g.poll(0.3).clutch is False
    pad.button(3, True)  # Y
    assert g.poll(0.4).events == {"success"}
    assert g.poll(0.5).events == frozenset()  # still held: no second event
    pad.button(3, False)
    pad.button(0, True)
    pad.button(2, True)
    assert g.poll(0.6).events == {"failure", "reset"}
    assert g.poll(0.7).gripper == pytest.approx(0.0)
    pad.axis(5, 1.0)
    assert g.poll(0.8).gripper == pytest.approx(1.0, abs=1e-4)
    assert Gamepad(GamepadConfig(gripper_axis=-1)).poll(0.9).gripper is None


def test_button_held_at_open_is_not_a_press(pad):
    first = Gamepad(GamepadConfig())
    pad.bind(first.instance_id)
    pad.button(3, True)
    g = Gamepad(GamepadConfig())
    assert g.poll(0.0).events == frozenset()
    pad.button(3, False)
    g.poll(0.1)
    pad.button(3, True)
    assert g.poll(0.2).events == {"success"}


def test_unplugged_pad_is_one_clear_error_and_reopening_finds_none():
    p = VirtualPad()
    g = opened(p)
    g.poll(0.0)
    p.detach()
    with pytest.raises(DeviceUnavailable, match="unplugged"):
        g.poll(0.1)
    with pytest.raises(DeviceUnavailable, match="no gamepad at index 0"):
        Gamepad(GamepadConfig())
    again = VirtualPad()  # plugged back in: a new device opens it
    try:
        g = opened(again)
        again.button(5, True)
        assert g.poll(0.2).clutch
    finally:
        again.detach()


def test_layout_that_does_not_fit_the_pad():
    p = VirtualPad(naxes=2, nbuttons=4, nhats=0)
    try:
        with pytest.raises(TeleopError, match="has 2 axes, 4 buttons, 0 hats"):
            Gamepad(GamepadConfig())
    finally:
        p.detach()
    with pytest.raises(TeleopError, match="deadzone"):
        Gamepad(GamepadConfig(deadzone=1.5))


def test_missing_pygame_is_one_line(monkeypatch):
    from robot_rl.teleop import gamepad

    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(TeleopError, match=r"needs pygame: pip install 'robot-rl\[teleop\]'"):
        gamepad.import_pygame()
