"""The safety filter re-anchors its output at the measured position after a fault in which it sent
nothing (a twin episode reset, a person moving the arm): it never pulls the robot back."""

import numpy as np

from robot_rl.safety import SafetyConfig, SafetyFilter

JOINTS = ["j1", "j2", "j3"]


def make_filter(**kw) -> SafetyFilter:
    return SafetyFilter(SafetyConfig(joint_names=JOINTS, position_lower=[-1.0] * 3, position_upper=[1.0] * 3,
                                     velocity_limit=[1.0] * 3, cmd_timeout_s=0.1, brake_timeout_s=0.5,
                                     state_timeout_s=0.05, max_tick_dt_s=0.01, **kw))


def _run_to_fault(f):
    """Commanding at 0.2 rad from t = 0 to 0.1, then the joint states stop (silence until 0.4)."""
    for k in range(101):
        t = k * 0.001
        f.on_state(t, JOINTS, np.array([0.2, 0.0, 0.0]), [0.0] * 3)
        if k % 20 == 0:
            f.on_command(t, JOINTS, [0.2, 0.0, 0.0])
        out, st = f.tick(t)
    assert st["mode"] == "ok"
    np.testing.assert_allclose(out, [0.2, 0.0, 0.0])
    for k in range(101, 400):
        out, st = f.tick(k * 0.001)
    return out, st


def test_after_a_silent_fault_the_output_restarts_at_the_measured_pose():
    f = make_filter()
    out, st = _run_to_fault(f)
    assert out is None and st["mode"] == "fault" and st["reason"] == "state_stale"
    # a command checked from the old output arrives during the silence: it must not be used
    f.on_command(0.399, JOINTS, [0.25, 0.0, 0.0])
    # the arm was teleported meanwhile: the state comes back 0.5 rad away, at rest
    f.on_state(0.4, JOINTS, np.array([-0.3, 0.4, 0.0]), [0.0] * 3)
    out, st = f.tick(0.4)
    assert st["mode"] == "hold", st["reason"]
    np.testing.assert_allclose(out, [-0.3, 0.4, 0.0])  # from where the arm is, not from 0.2
    outs, modes = [], []
    for k in range(401, 700):
        t = k * 0.001
        f.on_state(t, JOINTS, np.array([-0.3, 0.4, 0.0]), [0.0] * 3)
        if k % 20 == 0:
            f.on_command(t, JOINTS, [-0.29, 0.4, 0.0])  # the re-anchored policy's small step
        out, st = f.tick(t)
        outs.append(out)
        modes.append(st["mode"])
    outs = np.array(outs)
    assert "brake" not in modes and modes[-1] == "ok"
    assert np.abs(outs - [-0.3, 0.4, 0.0]).max() <= 0.01 + 1e-12  # never toward the old pose
    np.testing.assert_allclose(outs[-1], [-0.29, 0.4, 0.0])


def test_fault_hold_keeps_commanding_and_does_not_re_anchor():
    """With fault_action hold the filter kept sending its hold: the driver tracks the output, which
    stays the output's (the re-anchoring is for silent faults only)."""
    f = make_filter(fault_action="hold")
    out, st = _run_to_fault(f)
    assert st["mode"] == "fault" and out is not None
    held = out.copy()
    f.on_state(0.4, JOINTS, np.array([-0.3, 0.4, 0.0]), [0.0] * 3)
    out, st = f.tick(0.4)
    np.testing.assert_allclose(out, held)


def test_re_anchoring_forgets_the_path_and_velocity_across_the_jump():
    """After the teleport the recent path (what `retreat_path` replays) and the command velocity
    the critic scores start afresh: no retreat toward, and no velocity across, the old pose."""
    f = make_filter()
    _run_to_fault(f)
    f.on_state(0.4, JOINTS, np.array([-0.3, 0.4, 0.0]), [0.0] * 3)
    f.tick(0.4)
    for k in range(401, 430):
        t = k * 0.001
        f.on_state(t, JOINTS, np.array([-0.3, 0.4, 0.0]), [0.0] * 3)
        f.tick(t)
    assert np.abs(f.command_velocity).max() < 1e-9  # at rest since the jump
    path = f.recent_path
    assert len(path) == 0 or np.abs(np.asarray(path) - [-0.3, 0.4, 0.0]).max() < 1e-9
