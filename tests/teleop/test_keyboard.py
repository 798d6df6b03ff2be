"""The terminal keyboard device, fed through a pipe and through a pseudo-terminal."""

import os
import pty
import termios

import numpy as np
import pytest

from robot_rl.teleop.axes import DeviceUnavailable
from robot_rl.teleop.device import DeviceScale, TeleopError, check_sample
from robot_rl.teleop.keyboard import Keyboard, KeyboardConfig

SCALE = DeviceScale(linear_m_s=0.2, angular_rad_s=0.8)


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def kb(fd, **kw):
    return Keyboard(KeyboardConfig(fd=fd, scale=SCALE, **kw))


def test_keys_map_to_scaled_twist_and_hold_times(pipe):
    r, w = pipe
    k = kb(r, key_hold_s=0.1, first_hold_s=0.5)
    assert not k.is_tty
    s = k.poll(0.0)
    np.testing.assert_array_equal(s.values, np.zeros(6))
    assert s.mode == "ee_twist" and not s.clutch and s.events == frozenset()
    os.write(w, b"w")
    s = k.poll(1.0)
    np.testing.assert_allclose(s.values, [0.2, 0, 0, 0, 0, 0])
    check_sample(s, SCALE, 7)
    # no repeat: the first press lasts first_hold_s
    np.testing.assert_allclose(k.poll(1.45).values[0], 0.2)
    assert k.poll(1.51).values[0] == 0.0
    # held key: first press, then repeats every 30 ms; released -> stops key_hold_s after the last one
    os.write(w, b"a")
    k.poll(2.0)
    for t in np.arange(2.5, 3.0, 0.03):
        os.write(w, b"a")
        np.testing.assert_allclose(k.poll(t).values, [0, 0.2, 0, 0, 0, 0])
    last = t
    assert k.poll(last + 0.09).values[1] == pytest.approx(0.2)
    assert k.poll(last + 0.11).values[1] == 0.0


def test_each_axis_sign_opposites_cancel_and_diagonals_stay_in_scale(pipe):
    r, w = pipe
    k = kb(r)
    for i, (plus, minus) in enumerate(["ws", "ad", "qe", "ik", "jl", "uo"]):
        full = SCALE.linear_m_s if i < 3 else SCALE.angular_rad_s
        os.write(w, plus.encode())
        assert k.poll(10.0 * i).values[i] == pytest.approx(full)
        os.write(w, minus.encode())  # both held: they cancel
        assert k.poll(10.0 * i + 0.01).values[i] == 0.0
        assert k.poll(10.0 * i + 5).values[i] == 0.0
    os.write(w, b"WAQ")  # caps lock counts as lower case; three axes at once stay within the speed
    v = k.poll(100.0).values
    assert np.all(v[:3] > 0) and np.linalg.norm(v[:3]) == pytest.approx(SCALE.linear_m_s)
    check_sample(k.poll(100.01), SCALE, 7)


def test_clutch_toggles_and_events_fire_once(pipe):
    r, w = pipe
    k = kb(r)
    os.write(w, b" ")
    assert k.poll(0.0).clutch is True
    assert k.poll(0.1).clutch is True  # a toggle, not a hold
    os.write(w, b"\ny")
    s = k.poll(0.2)
    assert s.events == {"success"} and s.clutch
    assert k.poll(0.3).events == frozenset()
    os.write(w, b"nr ")
    s = k.poll(0.4)
    assert s.events == {"failure", "reset"} and s.clutch is False
    assert k.poll(0.5).gripper is None
    os.write(w, b"g")
    assert k.poll(0.6).gripper == 1.0
    os.write(w, b"g")
    assert k.poll(0.7).gripper == 0.0


def test_garbage_escape_sequences_and_non_ascii_are_ignored(pipe):
    r, w = pipe
    k = kb(r)
    os.write(w, b"\x1b[A\x1b[1;5C\x1bOP\xff\xfe\x00\x07zx\x1b")  # arrows, F1, bytes that are not keys
    s = k.poll(0.0)
    np.testing.assert_array_equal(s.values, np.zeros(6))
    assert not s.clutch and s.events == frozenset()
    assert k.ignored >= 10
    os.write(w, b"[Bw")  # the rest of the split sequence ESC [ B is dropped; w still works
    assert k.poll(0.1).values[0] == pytest.approx(0.2)


def test_end_of_input_is_one_clear_error(pipe):
    r, w = pipe
    k = kb(r)
    os.write(w, b" w")
    os.close(w)
    s = k.poll(0.0)  # what came before the end of file still counts
    assert s.clutch and s.values[0] > 0
    with pytest.raises(DeviceUnavailable, match="end of file"):
        k.poll(0.1)


def test_bad_config_and_missing_input_path():
    with pytest.raises(TeleopError, match="key_hold_s"):
        Keyboard(KeyboardConfig(fd=0, key_hold_s=0.0))
    with pytest.raises(DeviceUnavailable, match="cannot be opened"):
        Keyboard(KeyboardConfig(input="/nonexistent/tty"))


def test_pty_cbreak_mode_and_restore():
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        k = kb(slave)
        assert k.is_tty
        mode = termios.tcgetattr(slave)
        assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO and mode[3] & termios.ISIG
        os.write(master, b"q ")  # no Enter needed: cbreak delivers each key
        s = k.poll(0.0)
        assert s.clutch and s.values[2] == pytest.approx(0.2)
        k.close()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
