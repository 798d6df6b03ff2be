"""Behaviour of robot_rl.safety.SafetyFilter: limits, validation, watchdogs, e-stop, backup,
fail-closed. All times are passed in explicitly, so every test is deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_rl.safety import (
    COMMAND_REJECT_REASONS,
    INTERVENTION_REASONS,
    STATUS_KEYS,
    SafetyConfig,
    SafetyFilter,
)

JOINTS = ["j1", "j2", "j3"]


def make_filter(**overrides) -> SafetyFilter:
    kw = dict(
        joint_names=JOINTS,
        position_lower=[-1.0, -2.0, -3.0],
        position_upper=[1.0, 2.0, 3.0],
        velocity_limit=[1.0, 2.0, 3.0],
        max_command_rate=1.0,  # rad/s -> effective rate [1, 1, 1]
        effort_limit=10.0,
        cmd_timeout_s=0.1,
        brake_timeout_s=0.5,
        state_timeout_s=0.05,
        max_tick_dt_s=0.01,
    )
    kw.update(overrides)
    return SafetyFilter(SafetyConfig(**kw))


def state(f: SafetyFilter, t: float, q, qd=None, effort=None, names=JOINTS) -> bool:
    return f.on_state(t, names, np.asarray(q, dtype=float), qd, effort)


def run(f: SafetyFilter, t0: float, t1: float, q=None, dt: float = 0.001, cmd=None):
    """Tick from t0 to t1 (exclusive), feeding a joint state (``q``, or the last output) each
    tick and re-sending ``cmd`` every 20 ms if given. Returns the list of (t, out, mode)."""
    trace = []
    last = None if q is None else np.asarray(q, dtype=float)
    n = int(round((t1 - t0) / dt))
    for k in range(n):
        t = t0 + k * dt
        if cmd is not None and k % 20 == 0:
            f.on_command(t, JOINTS, cmd)
        if last is not None:
            state(f, t, last)
        out, st = f.tick(t)
        trace.append((t, None if out is None else out.copy(), st["mode"], st["reason"]))
        if out is not None and q is None:
            last = out
    return trace


def _start(f: SafetyFilter, q=(0.0, 0.0, 0.0), t: float = 0.0):
    assert state(f, t, q)
    return f.tick(t)


# ------------------------------------------------------------------------------------------
# start-up and status


def test_startup_faults_without_state_then_holds_measured_position():
    f = make_filter()
    out, st = f.tick(0.0)
    assert out is None and st["mode"] == "fault" and st["reason"] == "no_state"
    assert set(st) == set(STATUS_KEYS)
    assert not f.on_command(0.0, JOINTS, [0.1, 0.1, 0.1])  # nothing to check it against yet
    assert st["counters"]["commands_rejected"]["no_state"] == 1
    out, st = _start(f, (0.1, 0.2, 0.3), t=0.001)
    assert st["mode"] == "hold" and st["reason"] == "no_command"
    np.testing.assert_array_equal(out, [0.1, 0.2, 0.3])
    assert set(st["counters"]["commands_rejected"]) == set(COMMAND_REJECT_REASONS)
    assert set(st["counters"]["interventions"]) == set(INTERVENTION_REASONS)


def test_output_is_a_fresh_array_and_status_is_updated_in_place():
    f = make_filter()
    out1, st1 = _start(f)
    out1[:] = 99.0  # the caller may scribble on what it got
    out2, st2 = f.tick(0.001)
    assert st1 is st2
    np.testing.assert_array_equal(out2, [0.0, 0.0, 0.0])


# ------------------------------------------------------------------------------------------
# limits


def test_rate_limit_moves_along_a_straight_line():
    f = make_filter()
    _start(f)
    target = np.array([0.5, -0.5, 0.02])
    assert f.on_command(0.0, JOINTS, target)
    out, st = f.tick(0.001)
    assert st["mode"] == "ok" and "rate" in st["active_limits"]
    # the slowest joint (0.5 rad at 1 rad/s) sets the pace; all joints scale together
    np.testing.assert_allclose(out, target * (0.001 / 0.5), atol=1e-15)
    trace = run(f, 0.002, 0.7, cmd=target)
    outs = np.array([o for _, o, _, _ in trace])
    steps = np.abs(np.diff(outs, axis=0))
    assert steps.max() <= 0.001 + 1e-12
    # collinear with the target direction the whole way
    cross = outs[:, 0] * target[2] - outs[:, 2] * target[0]
    assert np.abs(cross).max() < 1e-12
    np.testing.assert_allclose(outs[-1], target)
    _, st = f.tick(0.7)
    assert st["mode"] == "ok" and st["active_limits"] == ()
    assert st["counters"]["rate_limited_ticks"] >= 490


def test_velocity_limit_caps_the_command_rate_per_joint():
    f = make_filter(max_command_rate=math.inf)  # velocity limits [1, 2, 3] govern
    np.testing.assert_array_equal(f.config.rate, [1.0, 2.0, 3.0])
    _start(f)
    target = np.array([0.5, 1.0, 1.5])  # each joint needs exactly 0.5 s
    trace = run(f, 0.0, 0.6, cmd=target)
    outs = np.array([o for _, o, _, _ in trace])
    steps = np.abs(np.diff(outs, axis=0)).max(axis=0)
    np.testing.assert_allclose(steps, [0.001, 0.002, 0.003], rtol=1e-9)
    np.testing.assert_allclose(outs[-1], target)


def test_late_tick_does_not_jump():
    f = make_filter()
    _start(f)
    f.on_command(0.0, JOINTS, [0.9, 0.0, 0.0])
    f.tick(0.0)
    state(f, 0.5, [0.0, 0.0, 0.0])
    f.on_command(0.5, JOINTS, [0.9, 0.0, 0.0])
    out, st = f.tick(0.5)  # 0.5 s since the last tick; max_tick_dt_s = 0.01 caps the step
    assert st["mode"] == "ok"
    np.testing.assert_allclose(out, [0.01, 0.0, 0.0])


def test_position_limits_with_margin_clip_commands():
    f = make_filter(position_margin=0.1)
    _start(f)
    assert f.on_command(0.0, JOINTS, [5.0, -5.0, 0.0])
    assert f.counters["commands_clipped"]["position_limit"] == 1
    trace = run(f, 0.001, 2.5, cmd=[5.0, -5.0, 0.0])
    outs = np.array([o for _, o, _, _ in trace])
    assert (outs[:, 0] <= 0.9 + 1e-12).all() and (outs[:, 1] >= -1.9 - 1e-12).all()
    np.testing.assert_allclose(outs[-1], [0.9, -1.9, 0.0])
    _, st = f.tick(2.5)
    assert st["active_limits"] == ("position_limit",)


def test_commands_are_mapped_by_name():
    f = make_filter()
    _start(f)
    assert f.on_command(0.0, ["j3", "j1", "j2"], [0.03, 0.01, 0.02])
    for t in (0.01, 0.02, 0.03):  # 0.03 rad at 1 rad/s, 10 ms per tick at most
        out, st = f.tick(t)
        assert st["mode"] == "ok"
    np.testing.assert_allclose(out, [0.01, 0.02, 0.03])
    # a second message with the same order uses the cached mapping
    assert f.on_command(0.03, ["j3", "j1", "j2"], [0.03, 0.01, 0.01])
    out, _ = f.tick(0.04)
    np.testing.assert_allclose(out, [0.01, 0.01, 0.03])


def test_states_are_mapped_by_name():
    f = make_filter()
    assert f.on_state(0.0, ["j2", "j3", "j1"], [0.2, 0.3, 0.1], [0.0, 0.0, 0.0], [])
    out, _ = f.tick(0.0)
    np.testing.assert_array_equal(out, [0.1, 0.2, 0.3])  # holds the measured position, reordered
    f.estop(0.001, True)
    for k in range(1, 200):  # brake: to the measured position (reordered), within the limits
        assert f.on_state(k * 0.001, ["j3", "j1", "j2"], [0.33, 0.11, 0.22])
        out, st = f.tick(k * 0.001)
        assert st["mode"] == "estop"
    np.testing.assert_array_equal(out, [0.11, 0.22, 0.33])


# ------------------------------------------------------------------------------------------
# malformed commands


BAD_COMMANDS = [
    (JOINTS, [0.1, 0.2], "wrong_length"),
    (None, [0.1, 0.2, 0.3, 0.4], "wrong_length"),
    (JOINTS, [[0.1], [0.2], [0.3]], "wrong_length"),
    ("j1j2j3", [0.1, 0.2, 0.3], "wrong_length"),
    (["j1", "j2", "jX"], [0.1, 0.2, 0.3], "unknown_joint"),
    (["j1", "j2"], [0.1, 0.2], "missing_joint"),
    (["j1", "j1", "j2"], [0.1, 0.2, 0.3], "duplicate_joint"),
    (JOINTS, [math.nan, 0.2, 0.3], "non_finite"),
    (JOINTS, [0.1, math.inf, 0.3], "non_finite"),
    (["j3", "j2", "j1"], [-math.inf, 0.2, 0.3], "non_finite"),
    (None, [0.1, 0.2, math.nan], "non_finite"),
    (JOINTS, ["a", "b", "c"], "bad_type"),
    (JOINTS, None, "bad_type"),
]


@pytest.mark.parametrize("bad_t", [math.nan, math.inf, None, "soon"])
def test_messages_with_unusable_times_are_rejected(bad_t):
    """A NaN time would make the message look forever fresh: it must not be accepted."""
    f = make_filter()
    _start(f)
    assert not f.on_state(bad_t, JOINTS, [0.0, 0.0, 0.0])
    assert f.counters["states_rejected"]["state_bad_time"] == 1
    assert state(f, 0.0, [0.0, 0.0, 0.0])
    assert not f.on_command(bad_t, JOINTS, [0.1, 0.0, 0.0])
    assert f.counters["commands_rejected"]["bad_time"] == 1
    _, st = f.tick(0.001)
    assert st["reason"] == "no_command"
    f.set_risk(bad_t, 0.0)
    _, st = f.tick(0.002)
    assert st["mode"] == "backup" and st["risk"] == 1.0
    out, st = f.tick(bad_t)
    assert st["mode"] == "brake" and st["reason"] == "internal_error"
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("names,values,reason", BAD_COMMANDS)
def test_malformed_commands_are_rejected_counted_and_never_forwarded(names, values, reason):
    f = make_filter()
    _start(f)
    good = np.array([0.05, 0.05, 0.05])
    assert f.on_command(0.0, JOINTS, good)
    assert not f.on_command(0.01, names, values)
    assert f.counters["commands_rejected"][reason] == 1
    assert sum(f.counters["commands_rejected"].values()) == 1
    assert f.status["last_reject_reason"] == reason
    trace = run(f, 0.001, 0.09, q=[0.0, 0.0, 0.0])
    outs = np.array([o for _, o, _, _ in trace])
    assert np.isfinite(outs).all()
    np.testing.assert_allclose(outs[-1], good)  # the last good command is still the target
    assert all(m == "ok" for _, _, m, _ in trace)


def test_rejected_commands_do_not_feed_the_watchdog():
    f = make_filter()
    _start(f)
    f.on_command(0.0, JOINTS, [0.05, 0.0, 0.0])
    modes = {}
    for k in range(1, 200):
        t = k * 0.001
        if k % 10 == 0:
            assert not f.on_command(t, JOINTS, [math.nan, 0.0, 0.0])
        state(f, t, [0.0, 0.0, 0.0])
        out, st = f.tick(t)
        assert np.isfinite(out).all()
        modes[k] = st["reason"]
    assert modes[99] is None and modes[101] == "cmd_stale"
    assert f.counters["commands_rejected"]["non_finite"] == 19


# ------------------------------------------------------------------------------------------
# watchdogs


def test_command_watchdog_holds_then_brakes_then_resumes_on_new_command():
    f = make_filter()
    meas = np.array([0.01, 0.0, 0.0])  # the robot lags behind the command
    state(f, 0.0, meas)
    f.on_command(0.0, JOINTS, [0.05, 0.0, 0.0])
    trace = {}
    for k in range(0, 801):
        t = k * 0.001
        state(f, t, meas if k < 600 else [0.02, 0.0, 0.0])
        out, st = f.tick(t)
        trace[k] = (out.copy(), st["mode"], st["reason"])
    assert trace[100][1] == "ok"
    last_ok = trace[100][0]
    assert trace[101][1:] == ("hold", "cmd_stale")
    for k in range(101, 501):
        np.testing.assert_array_equal(trace[k][0], last_ok)  # at rest: hold the last safe command
    assert trace[501][1:] == ("brake", "cmd_timeout_brake")
    # brake: back to the measured position when braking began, within the rate and acceleration
    # limits (0.04 rad at 10 rad/s^2: 2 sqrt(0.04 / 10) = 0.13 s), then latched there (not re-read
    # each tick: the measurement moves to 0.02 at k = 600)
    path = np.array([trace[k][0][0] for k in range(500, 801)])
    assert (np.diff(path) <= 1e-15).all() and path.min() >= 0.01 - 1e-15
    assert np.abs(np.diff(path)).max() <= 0.001 + 1e-12
    assert np.abs(np.diff(path, 2)).max() <= 10.0 * 1e-6 + 1e-12
    for k in range(640, 801):
        np.testing.assert_array_equal(trace[k][0], meas)
    assert f.counters["interventions"]["cmd_stale"] == 1
    assert f.counters["interventions"]["cmd_timeout_brake"] == 1
    # a new command resumes from the brake position, rate limited
    assert f.on_command(0.801, JOINTS, [0.5, 0.0, 0.0])
    state(f, 0.801, [0.02, 0.0, 0.0])
    out, st = f.tick(0.801)
    assert st["mode"] == "ok"
    np.testing.assert_allclose(out, [0.011, 0.0, 0.0])


def test_stale_state_faults_and_sends_nothing():
    f = make_filter()
    _start(f)
    f.on_command(0.0, JOINTS, [0.5, 0.0, 0.0])
    out, st = f.tick(0.05)
    assert st["mode"] == "ok" and out is not None
    f.on_command(0.06, JOINTS, [0.5, 0.0, 0.0])
    out, st = f.tick(0.06)
    assert out is None and st["mode"] == "fault" and st["reason"] == "state_stale"
    assert st["state_age"] == pytest.approx(0.06)
    # state comes back: hold until a command arrives after the fault, from the measured position
    # (nothing was sent during the fault: the robot may have been moved; never pull it back)
    state(f, 0.07, [0.0, 0.0, 0.0])
    out, st = f.tick(0.07)
    assert st["mode"] == "hold" and st["reason"] == "awaiting_command"
    np.testing.assert_allclose(out, [0.0, 0.0, 0.0])
    f.on_command(0.071, JOINTS, [0.5, 0.0, 0.0])
    out, st = f.tick(0.071)
    assert st["mode"] == "ok"


def test_stale_state_can_hold_instead():
    f = make_filter(fault_action="hold")
    _start(f)
    f.on_command(0.0, JOINTS, [0.5, 0.0, 0.0])
    outs, reasons = [], []
    for k in range(1, 300):  # no joint state after t = 0: stale after state_timeout_s = 0.05
        out, st = f.tick(k * 0.001)
        outs.append(out)
        reasons.append(st["reason"])
    outs = np.array(outs)
    assert reasons[48] is None and set(reasons[50:]) == {"state_stale"}
    ok_out = outs[49]  # moving at 1 rad/s when the state went stale
    # decelerates at 10 rad/s^2 (0.05 rad from 1 rad/s), then holds where it stopped
    assert np.abs(np.diff(outs[40:], 2, axis=0)).max() <= 10.0 * 1e-6 + 1e-12
    assert 0.04 < outs[-1][0] - ok_out[0] <= 0.05 + 0.001
    np.testing.assert_array_equal(outs[-50:], np.broadcast_to(outs[-1], (50, 3)))


@pytest.mark.parametrize(
    "names,pos,vel,eff,reason",
    [
        (["j1", "j2", "jX"], [0, 0, 0], None, None, "state_unknown_joint"),
        (["j1", "j2"], [0, 0], None, None, "state_missing_joint"),
        (["j1", "j2", "j2"], [0, 0, 0], None, None, "state_duplicate_joint"),
        (JOINTS, [0, 0], None, None, "state_wrong_length"),
        (JOINTS, [0, math.nan, 0], None, None, "state_non_finite"),
        (JOINTS, [0, 0, 0], [0, math.inf, 0], None, "state_non_finite"),
        (JOINTS, [0, 0, 0], None, [math.nan, 0, 0], "state_non_finite"),
        (JOINTS, [0, 0, 0], [0, 0], None, "state_wrong_length"),
        (JOINTS, ["x", 0, 0], None, None, "state_bad_type"),
        (JOINTS, [0, 0, 0], [0, None, "v"], None, "state_bad_type"),
    ],
)
def test_invalid_state_is_a_fault_until_a_valid_state_arrives(names, pos, vel, eff, reason):
    f = make_filter()
    _start(f, (0.1, 0.1, 0.1))
    assert not f.on_state(0.001, names, pos, vel, eff)
    out, st = f.tick(0.001)
    assert out is None and st["mode"] == "fault" and st["reason"] == reason
    assert st["counters"]["states_rejected"][reason] == 1
    assert st["last_state_fault"] == reason
    assert state(f, 0.002, [0.1, 0.1, 0.1])
    out, st = f.tick(0.002)
    assert st["mode"] == "hold"
    np.testing.assert_array_equal(out, [0.1, 0.1, 0.1])  # the bad message changed nothing


def test_extra_state_joints_allowed_when_not_strict():
    f = make_filter(strict_state_names=False)
    assert f.on_state(0.0, ["gripper", "j3", "j2", "j1"], [math.nan, 0.3, 0.2, 0.1], [0, 0, 0, 0])
    out, st = f.tick(0.0)
    np.testing.assert_array_equal(out, [0.1, 0.2, 0.3])
    assert not make_filter().on_state(0.0, ["gripper", "j3", "j2", "j1"], [0.0, 0.3, 0.2, 0.1])


# ------------------------------------------------------------------------------------------
# measured velocity / effort monitors


@pytest.mark.parametrize(
    "vel,eff,reason",
    [([0.0, 2.5, 0.0], None, "velocity_limit"), ([0.0, -1.5, 0.0], [0.0, 0.0, -11.0], "effort_limit")],
)
def test_measured_velocity_or_effort_over_limit_brakes(vel, eff, reason):
    f = make_filter(monitor_hold_s=0.5)
    _start(f)
    f.on_command(0.0, JOINTS, [0.5, 0.0, 0.0])
    run(f, 0.001, 0.02)  # moving at 1 rad/s
    assert f.on_state(0.02, JOINTS, [0.003, 0.0, 0.0], vel, eff)
    out, st = f.tick(0.02)
    assert st["mode"] == "brake" and st["reason"] == reason
    brake_start = out[0]
    outs = []
    for k in range(21, 520):  # back under the limit, but the brake lasts monitor_hold_s
        t = k * 0.001
        f.on_command(t, JOINTS, [0.5, 0.0, 0.0])
        state(f, t, [0.004, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        out, st = f.tick(t)
        assert st["mode"] == "brake"
        outs.append(out[0])
    # stops within v^2 / (2 a) = 0.05 rad, then goes back to the position measured at the trip
    assert max(outs) <= brake_start + 0.05 + 1e-9
    assert outs[-1] == 0.003 and outs[-100:] == [0.003] * 100
    state(f, 0.521, [0.004, 0.0, 0.0])
    out, st = f.tick(0.521)
    assert st["mode"] == "hold" and st["reason"] == "awaiting_command"
    f.on_command(0.522, JOINTS, [0.5, 0.0, 0.0])
    out, st = f.tick(0.522)
    assert st["mode"] == "ok"
    np.testing.assert_allclose(out, [0.004, 0.0, 0.0])  # rate limited from the brake position


# ------------------------------------------------------------------------------------------
# e-stop


def test_estop_latches_until_explicit_reset():
    f = make_filter()
    _start(f)
    f.on_command(0.0, JOINTS, [0.5, 0.0, 0.0])
    run(f, 0.001, 0.02)
    state(f, 0.02, [0.007, 0.0, 0.0])
    f.estop(0.02, True)
    out, st = f.tick(0.02)
    assert st["mode"] == "estop" and st["estop_latched"] and st["estop_engaged"]
    f.estop(0.03, False)  # releasing the button alone does not clear the stop
    for k in range(21, 400):
        t = k * 0.001
        f.on_command(t, JOINTS, [0.5, 0.0, 0.0])
        state(f, t, [0.008, 0.0, 0.0])
        out, st = f.tick(t)
        assert st["mode"] == "estop"
    # braked: stopped, then back to the position measured when the stop engaged, held there
    np.testing.assert_array_equal(out, [0.007, 0.0, 0.0])
    f.estop(0.4, True)
    assert not f.reset_estop()  # refused while the input is engaged
    assert f.tick(0.4)[1]["mode"] == "estop"
    f.estop(0.41, False)
    assert f.reset_estop()
    state(f, 0.41, [0.008, 0.0, 0.0])
    out, st = f.tick(0.41)
    assert st["mode"] == "hold" and st["reason"] == "awaiting_command" and not st["estop_latched"]
    f.on_command(0.411, JOINTS, [0.5, 0.0, 0.0])
    out, st = f.tick(0.411)
    assert st["mode"] == "ok"
    np.testing.assert_allclose(out, [0.008, 0.0, 0.0])
    assert f.counters["interventions"]["estop"] == 1


def test_unreadable_estop_message_counts_as_engaged():
    f = make_filter()
    _start(f)
    f.estop(0.001, np.array([True, False]))  # bool() of this raises
    _, st = f.tick(0.001)
    assert st["mode"] == "estop" and st["estop_engaged"]


def test_estop_outranks_stale_state_and_can_hold():
    f = make_filter(estop_action="hold")
    _start(f, (0.2, 0.0, 0.0))
    f.on_command(0.0, JOINTS, [0.5, 0.0, 0.0])
    ok_out = run(f, 0.001, 0.02, q=[0.2, 0.0, 0.0])[-1][1]
    f.estop(0.02, True)
    trace = run(f, 0.02, 1.0)  # state long stale: e-stop still sends its hold command
    assert {m for _, _, m, _ in trace} == {"estop"}
    outs = np.array([o for _, o, _, _ in trace])
    assert np.abs(np.diff(outs, 2, axis=0)).max() <= 10.0 * 1e-6 + 1e-12
    assert 0.0 < outs[-1][0] - ok_out[0] <= 0.05 + 0.001  # stopped, then held
    np.testing.assert_array_equal(outs[-1], outs[200])


# ------------------------------------------------------------------------------------------
# learned-critic backup


def test_high_risk_hands_over_to_hold_with_hysteresis():
    f = make_filter(risk_threshold=0.8, risk_hysteresis=0.1, backup="hold")
    _start(f)
    target = [0.5, 0.0, 0.0]
    f.on_command(0.0, JOINTS, target)
    f.set_risk(0.0, 0.8)  # not above the threshold
    trace = run(f, 0.001, 0.05, cmd=target)
    assert all(m == "ok" for _, _, m, _ in trace)
    f.set_risk(0.05, 0.85)
    outs = []
    for t0, risk in ((0.05, 0.85), (0.1, 0.75), (0.15, 0.71)):  # 0.71 is not below 0.8 - 0.1
        f.set_risk(t0, risk)
        for _, out, mode, reason in run(f, t0, t0 + 0.05, cmd=target):
            assert (mode, reason) == ("backup", "risk")
            outs.append(out)
    outs = np.array(outs)  # decelerates to a stop within the limits, then holds
    assert np.abs(np.diff(outs, 2, axis=0)).max() <= 10.0 * 1e-6 + 1e-12
    held = outs[-1]
    np.testing.assert_array_equal(outs[-30:], np.broadcast_to(held, (30, 3)))
    f.set_risk(0.2, 0.69)
    state(f, 0.2, held)
    _, st = f.tick(0.2)  # commands that arrived during the backup are not resumed
    assert (st["mode"], st["reason"]) == ("hold", "awaiting_command")
    trace = run(f, 0.201, 0.25, cmd=target)
    assert all(m == "ok" for _, _, m, _ in trace)
    assert f.counters["interventions"]["risk"] == 1


def test_high_risk_retreats_home_at_the_retreat_rate():
    f = make_filter(backup="retreat", home=[0.5, -0.25, 0.0], retreat_rate=0.5)
    _start(f)
    f.set_risk(0.0, 1.0)
    trace = run(f, 0.0, 1.2)
    outs = np.array([o for _, o, _, _ in trace])
    assert all(m == "backup" for _, _, m, _ in trace)
    assert np.abs(np.diff(outs, axis=0)).max() <= 0.0005 + 1e-12
    # a straight line (joint 2 moves half as much), accelerating at joint 1's 10 rad/s^2 to 0.5 rad/s
    np.testing.assert_allclose(outs[:, 1], -0.5 * outs[:, 0], atol=1e-12)
    np.testing.assert_allclose(outs[500], [0.2375, -0.11875, 0.0], atol=5e-4)  # t = 0.5 s (0.5 - 0.05 / 2) * 0.5 rad/s
    np.testing.assert_array_equal(outs[-1], [0.5, -0.25, 0.0])


def test_non_finite_or_stale_risk_fails_closed():
    f = make_filter(risk_timeout_s=0.05)
    _start(f)
    f.set_risk(0.0, math.nan)
    _, st = f.tick(0.001)
    assert st["mode"] == "backup" and st["risk"] == 1.0
    assert f.counters["risk_non_finite"] == 1
    f.set_risk(0.01, 0.1)
    f.on_command(0.01, JOINTS, [0.1, 0.0, 0.0])
    _, st = f.tick(0.01)
    assert st["mode"] == "ok"
    state(f, 0.07, [0.0, 0.0, 0.0])
    f.on_command(0.07, JOINTS, [0.1, 0.0, 0.0])
    _, st = f.tick(0.07)  # no risk for 60 ms > risk_timeout_s
    assert st["mode"] == "backup" and st["reason"] == "risk_stale" and st["risk"] == 1.0


# ------------------------------------------------------------------------------------------
# the filter's own motions: rate and acceleration limits (10 x velocity_limit by default)

ACCEL = np.array([10.0, 20.0, 30.0])  # 10 x velocity_limit of make_filter
DT = 0.001


@pytest.mark.parametrize("case", ["estop_brake", "estop_hold", "fault_hold", "backup_hold", "retreat",
                                  "cmd_timeout_brake", "velocity_trip", "internal_error"])
def test_filter_motions_respect_rate_and_acceleration_limits(case):
    """From full speed (1 rad/s on every joint, the robot lagging 0.02 rad behind the command),
    every intervention decelerates within the limits: no step above rate * dt, no change of
    step above accel * dt^2, stopped within v^2 / (2 a) + v dt (0.051 rad) in about v / a = 0.1 s,
    then holds (or goes on to its goal: the position measured when braking began, home)."""
    kw = dict(fault_action="hold", monitor_hold_s=5.0, brake_timeout_s=0.3)
    if case == "estop_hold":
        kw["estop_action"] = "hold"
    if case in ("backup_hold", "retreat"):
        kw.update(backup="retreat" if case == "retreat" else "hold", home=[-0.2, 0.1, -0.3], retreat_rate=1.0)
    f = make_filter(**kw)
    _start(f)
    target = [0.9, 0.9, 0.9]
    lag = 0.02
    outs, meas, modes, trig = [], [], [], 300
    for k in range(1, 2500):
        t = k * DT
        if (k < trig or case not in ("cmd_timeout_brake", "fault_hold")) and k % 20 == 0:
            f.on_command(t, JOINTS, target)
        q = (outs[-1] if outs else np.zeros(3)) - lag
        vel = None
        if k == trig:
            if case.startswith("estop"):
                f.estop(t, True)
            elif case in ("backup_hold", "retreat"):
                f.set_risk(t, 1.0)
            elif case == "velocity_trip":
                vel = [0.0, 2.5, 0.0]
            elif case == "internal_error":
                f._step_toward = lambda *a: 1 / 0
        if case != "fault_hold" or k < trig:
            state(f, t, q, vel)
        out, st = f.tick(t)
        if case == "internal_error" and k == trig:
            del f._step_toward
        outs.append(out.copy())
        meas.append(q)
        modes.append((st["mode"], st["reason"]))
    outs = np.array(outs)
    first = next(i for i in range(100, len(modes)) if modes[i][0] != "ok")  # the intervention (k = i + 1)
    assert first >= trig - 1
    steps = np.diff(outs[first - 3:], axis=0)  # steady motion, then the intervention
    assert np.allclose(steps[0], DT)  # it was moving at full speed
    assert np.abs(steps).max() <= 1.0 * DT + 1e-12
    assert (np.abs(np.diff(steps, axis=0)) <= ACCEL * DT * DT + 1e-12).all()
    at_first = outs[first - 1]  # the last output before the intervention
    stop_dist = 1.0 ** 2 / (2 * ACCEL.min()) + 1.0 * DT  # every joint brakes at the slowest joint's rate
    assert (outs[first:] - at_first).max() <= stop_dist + 1e-12
    assert (outs[first:first + 101] - at_first).max() >= 0.049  # not harder than the limit either
    if case in ("estop_hold", "fault_hold", "backup_hold", "cmd_timeout_brake"):
        np.testing.assert_array_equal(np.diff(outs[first + 101:first + 103], axis=0), 0.0)  # stopped
    final = outs[-1]
    np.testing.assert_array_equal(outs[-100:], np.broadcast_to(final, (100, 3)))  # then holds, exactly
    if case in ("estop_brake", "velocity_trip", "internal_error"):
        np.testing.assert_allclose(final, meas[first], atol=1e-12)  # the position measured at the brake
    elif case == "retreat":
        np.testing.assert_array_equal(final, [-0.2, 0.1, -0.3])
    elif case == "cmd_timeout_brake":  # held (stopped), then braked to where the robot was measured then
        brake = next(i for i in range(first, len(modes)) if modes[i][0] == "brake")
        assert modes[first] == ("hold", "cmd_stale") and brake == first + 200
        np.testing.assert_allclose(final, meas[brake], atol=1e-12)
    else:
        assert 0.049 <= (final - at_first).min() and (final - at_first).max() <= stop_dist


# ------------------------------------------------------------------------------------------
# fail closed


def test_exception_in_tick_brakes_and_latches_until_reset():
    f = make_filter()
    _start(f, (0.2, 0.1, 0.0))
    f.on_command(0.0, JOINTS, [0.9, 0.9, 0.9])

    def boom(*args, **kwargs):
        raise RuntimeError("injected")

    f._step_toward = boom
    out, st = f.tick(0.001)
    np.testing.assert_array_equal(out, [0.2, 0.1, 0.0])  # measured position, not the command
    assert st["mode"] == "brake" and st["reason"] == "internal_error"
    assert "injected" in st["last_error"]
    del f._step_toward  # the fault stays latched even once the code works again
    for k in range(2, 50):
        f.on_command(k * 0.001, JOINTS, [0.9, 0.9, 0.9])
        state(f, k * 0.001, [0.25, 0.1, 0.0])
        out, st = f.tick(k * 0.001)
        assert st["mode"] == "brake"
        np.testing.assert_array_equal(out, [0.2, 0.1, 0.0])
    f.reset_fault()
    out, st = f.tick(0.05)
    assert st["mode"] == "hold" and st["reason"] == "awaiting_command"
    assert f.counters["interventions"]["internal_error"] == 1


def test_exception_anywhere_in_tick_fails_closed():
    f = make_filter()
    _start(f, (0.3, 0.0, 0.0))
    f.on_command(0.0, JOINTS, [0.9, 0.9, 0.9])
    f._tick = lambda t: (_ for _ in ()).throw(ValueError("broken"))
    out, st = f.tick(0.001)
    np.testing.assert_array_equal(out, [0.3, 0.0, 0.0])
    assert st["mode"] == "brake"


def test_exception_without_any_state_sends_nothing():
    f = make_filter()
    f._tick = lambda t: 1 / 0
    out, st = f.tick(0.0)
    assert out is None and st["mode"] == "brake" and st["reason"] == "internal_error"


def test_time_going_backwards_fails_closed():
    f = make_filter()
    _start(f, (0.1, 0.0, 0.0), t=1.0)
    out, st = f.tick(0.5)
    assert st["reason"] == "internal_error" and "backwards" in st["last_error"]
    np.testing.assert_array_equal(out, [0.1, 0.0, 0.0])
    out, st = f.tick(math.nan)
    assert st["mode"] == "brake"


def test_exception_while_checking_a_command_rejects_it():
    f = make_filter()
    _start(f)
    assert f.on_command(0.0, JOINTS, [0.05, 0.0, 0.0])

    def boom(*a, **k):
        raise RuntimeError("mapping broke")

    f._perm = boom
    assert not f.on_command(0.01, ["j3", "j2", "j1"], [0.9, 0.9, 0.9])
    assert f.counters["commands_rejected"]["internal_error"] == 1
    assert "mapping broke" in f.status["last_error"]
    del f._perm
    trace = run(f, 0.001, 0.09, q=[0.0, 0.0, 0.0])
    np.testing.assert_allclose(trace[-1][1], [0.05, 0.0, 0.0])


def test_random_input_stream_never_breaks_invariants():
    """Fuzz: whatever arrives, every output is finite, within the hard limits, and moves at most
    rate * dt per joint from the previous output."""
    rng = np.random.default_rng(0)
    f = make_filter(position_margin=0.05, backup="retreat", home=[0.0, 0.5, -0.5], retreat_rate=0.5)
    lo, hi = np.array([-1.0, -2.0, -3.0]), np.array([1.0, 2.0, 3.0])
    prev = None
    q = np.zeros(3)
    garbage = [[math.nan, 0, 0], [1e300, -1e300, 0], [0, 0], [math.inf] * 3, "xyz"]
    for k in range(4000):
        t = k * 0.001
        r = rng.random()
        if r < 0.9:
            state(f, t, q, rng.normal(0, 0.3, 3), rng.normal(0, 3, 3))
        if k % 20 == 0:
            cmd = garbage[rng.integers(len(garbage))] if rng.random() < 0.3 else rng.normal(0, 2, 3)
            names = list(rng.permutation(JOINTS)) if rng.random() < 0.5 else None
            if isinstance(cmd, np.ndarray) and names is not None:
                cmd = cmd[[JOINTS.index(n) for n in names]]
            f.on_command(t, names, cmd)
        if k % 50 == 0:
            f.set_risk(t, rng.random())
        if k % 700 == 0:
            f.estop(t, rng.random() < 0.5)
            f.reset_estop()
        out, st = f.tick(t)
        if out is None:
            assert st["mode"] == "fault"
            continue
        assert np.isfinite(out).all()
        assert (out >= lo).all() and (out <= hi).all()
        if prev is not None:  # every mode, braking included, moves at most rate * dt
            assert np.abs(out - prev).max() <= 0.001 + 1e-12
        prev = out
        q = q + 0.3 * (out - q)
    modes = {m for m in f.counters["interventions"] if f.counters["interventions"][m]}
    assert {"risk", "estop", "velocity_limit", "effort_limit"} <= modes


# ------------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(position_lower=[0, 0]), "one per joint"),
        (dict(position_lower=[1.0, -2.0, -3.0]), "position_lower must be <"),
        (dict(position_margin=1.0), "position_margin"),
        (dict(velocity_limit=[1.0, 0.0, 1.0]), "velocity_limit"),
        (dict(position_upper=[1.0, math.nan, 3.0]), "finite"),
        (dict(brake_timeout_s=0.05), "brake_timeout_s must be >="),
        (dict(fault_action="ignore"), "fault_action"),
        (dict(estop_action="coast"), "estop_action"),
        (dict(backup="retreat"), "home"),
        (dict(home=[2.0, 0.0, 0.0]), "outside the command limits"),
        (dict(risk_hysteresis=0.9), "risk_hysteresis"),
        (dict(workspace_lower=[0, 0, 0], workspace_upper=[1, 1, 1]), "robot_model"),
        (dict(workspace_lower=[0, 0, 0]), "both"),
        (dict(joint_names=["j1", "j1", "j3"]), "distinct"),
        (dict(state_timeout_s=0.0), "state_timeout_s"),
    ],
)
def test_config_rejects_bad_values_with_a_clear_message(overrides, match):
    with pytest.raises(ValueError, match=match):
        make_filter(**overrides)


def test_bench_script_runs():
    from robot_rl.safety import bench_tick

    xml = bench_tick.model_xml()  # the iiwa's
    home = bench_tick.home_pose(None, [f"lbr_iiwa_joint_{i}" for i in range(1, 8)])
    assert len(home) == 7
    for workspace in (False, True):
        times = bench_tick.run(300, xml, home, workspace=workspace)
        assert len(times["tick ok"]) + len(times["tick hold"]) + len(times["tick backup"]) == 300
        assert times["on_command"]
    cost = bench_tick.command_cost(xml, home, repeats=3)
    assert [len(v) for v in cost.values()] == [3, 3]
