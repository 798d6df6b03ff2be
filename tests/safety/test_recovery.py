"""Recovery behaviours of SafetyFilter's backup mode: hysteresis with a dwell time, retreat along
the recent path (within rate limits), a bumpless return to the policy, and the command velocity
the critic reads. Times are passed in explicitly: deterministic."""

from __future__ import annotations

import numpy as np

from tests.safety.test_safety_filter import JOINTS, make_filter, state

DT = 0.001


def drive(f, t0: float, cmds, per_cmd: int = 20):
    """Send each command in turn (every ``per_cmd`` ticks), feeding back the output as the
    measured state. Returns (t, outputs list, last output)."""
    out, t, outs = None, t0, []
    for c in cmds:
        f.on_command(t, JOINTS, c)
        for _ in range(per_cmd):
            state(f, t, out if out is not None else np.zeros(3))
            out, st = f.tick(t)
            outs.append((st["mode"], out.copy()))
            t += DT
    return t, outs, out


def test_backup_ends_only_after_risk_stayed_low_for_the_dwell_time():
    f = make_filter(risk_threshold=0.5, risk_hysteresis=0.2, risk_dwell_s=0.1)
    state(f, 0.0, [0, 0, 0])
    f.set_risk(0.0, 0.6)
    assert f._backup_active  # entered above the threshold
    f.set_risk(0.01, 0.4)   # below the threshold but not below threshold - hysteresis
    f.set_risk(0.2, 0.4)
    assert f._backup_active
    f.set_risk(0.21, 0.2)   # below 0.3: the dwell starts
    f.set_risk(0.30, 0.2)
    assert f._backup_active
    f.set_risk(0.305, 0.35)  # back above 0.3: the dwell restarts
    f.set_risk(0.31, 0.1)
    f.set_risk(0.40, 0.1)
    assert f._backup_active
    f.set_risk(0.411, 0.1)
    assert not f._backup_active


def test_retreat_replays_the_recent_path_backwards_within_the_rate_limit():
    f = make_filter(backup="retreat_path", risk_threshold=0.5, path_spacing=0.01, acceleration_limit=20.0,
                    retreat_rate=1.0)
    # move along an L-shaped path: +j1, then +j2 (rate 1 rad/s per joint, 20 ms per command)
    cmds = [[0.02 * k, 0.0, 0.0] for k in range(1, 16)] + [[0.3, 0.02 * k, 0.0] for k in range(1, 16)]
    t, outs, out = drive(f, 0.0, cmds)
    assert np.allclose(out, [0.3, 0.3, 0.0])
    path = f.recent_path
    assert len(path) > 40 and np.allclose(path[0], [0.0, 0.0, 0.0], atol=0.011)
    f.set_risk(t, 0.9)
    trace = []
    for _ in range(1500):
        state(f, t, out)
        new, st = f.tick(t)
        assert st["mode"] == "backup"
        assert np.abs(new - out).max() <= 1.0 * DT + 1e-12  # rate limit per tick
        trace.append(new.copy())
        out, t = new, t + DT
    trace = np.array(trace)
    # it went back along the L: first down j2 to (0.3, 0, 0) with j1 fixed, then down j1
    corner = np.argmin(np.abs(trace[:, 1]) + (trace[:, 0] < 0.299) * 10)
    assert np.all(np.abs(trace[:corner, 0] - 0.3) < 0.011)
    assert np.allclose(trace[-1], [0.0, 0.0, 0.0], atol=0.011)  # the oldest waypoint, then holds
    assert np.allclose(trace[-1], trace[-100])


def test_return_to_the_policy_is_bumpless():
    f = make_filter(backup="retreat_path", risk_threshold=0.5, risk_hysteresis=0.1, risk_dwell_s=0.05)
    t, _, out = drive(f, 0.0, [[0.02 * k, 0.0, 0.0] for k in range(1, 11)])
    f.set_risk(t, 0.9)
    for _ in range(100):
        state(f, t, out)
        out, st = f.tick(t)
        t += DT
    assert st["mode"] == "backup"
    f.set_risk(t, 0.1)
    f.set_risk(t + 0.06, 0.1)  # low for longer than the dwell: the backup ends
    last = out.copy()
    f.on_command(t, JOINTS, [0.5, 0.5, 0.5])
    modes = []
    for _ in range(50):
        state(f, t, out)
        new, st = f.tick(t)
        modes.append(st["mode"])
        assert np.abs(new - out).max() <= 1.0 * DT + 1e-12  # no jump: continues from the backup's output
        out, t = new, t + DT
    assert modes[-1] == "ok"
    assert np.abs(out - last).max() > 0.02  # and it moves toward the policy's command again


def test_command_velocity_is_the_output_velocity_over_the_window():
    f = make_filter(command_velocity_window=20)
    t, _, _ = drive(f, 0.0, [[0.02 * k, -0.01 * k, 0.0] for k in range(1, 11)])
    v = f.command_velocity
    assert np.allclose(v, [1.0, -0.5, 0.0], atol=0.06)
    for _ in range(60):  # holding: the velocity goes to zero
        state(f, t, [0.2, -0.1, 0.0])
        f.tick(t)
        t += DT
    assert np.allclose(f.command_velocity, 0.0, atol=1e-9)
