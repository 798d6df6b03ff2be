"""Workspace box of the safety filter, on the iiwa14 model (numpy FK from the shipped MJCF)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.kinematics import Kinematics
from robot_rl.safety import SafetyConfig, SafetyFilter

Q0 = np.array([0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0])  # EE at x = 0.673, z = 0.576


def _filter(chain, lo, hi, **kw) -> SafetyFilter:
    cfg = SafetyConfig.from_chain(
        chain,
        velocity_limit=1.5,
        max_command_rate=1.0,
        workspace_lower=lo,
        workspace_upper=hi,
        state_timeout_s=10.0,  # the tests below feed one state and one command, then tick
        cmd_timeout_s=10.0,
        brake_timeout_s=10.0,
        **kw,
    )
    return SafetyFilter(cfg)


def _ee(kin, q):
    return kin.fk(np.asarray(q))["sites"]["ee"]


def _drive(f, q_start, cmd, seconds=2.0, dt=0.001):
    """Send one command, tick until it has been reached; return all outputs."""
    names = list(f.config.joint_names)
    f.on_state(0.0, names, q_start)
    f.tick(0.0)
    accepted = f.on_command(0.0, names, cmd)
    outs = [f.tick(k * dt)[0] for k in range(1, int(seconds / dt))]
    return accepted, np.array(outs)


def test_command_leaving_the_box_is_scaled_back_along_its_path(iiwa_chain):
    kin = Kinematics(iiwa_chain)
    lo, hi = np.array([-0.75, -0.75, 0.1]), np.array([0.75, 0.75, 1.3])
    q1 = Q0 + np.array([0, 0.6, 0, 0.5, 0, 0, 0])
    assert _ee(kin, Q0)[0] < 0.75 < _ee(kin, q1)[0]  # precondition: the target is outside
    f = _filter(iiwa_chain, lo, hi)
    accepted, outs = _drive(f, Q0, q1)
    assert accepted
    assert f.counters["commands_clipped"]["workspace"] == 1
    assert f.status["active_limits"] == ("workspace",)
    final = outs[-1]
    # the target was moved back along the straight joint-space line from Q0 toward q1
    alpha = (final - Q0)[1] / (q1 - Q0)[1]
    assert 0.2 < alpha < 0.8
    np.testing.assert_allclose(final, Q0 + alpha * (q1 - Q0), atol=1e-12)
    # ... to just inside the face it would have crossed
    ee = _ee(kin, final)
    assert ee[0] <= 0.75 and 0.75 - ee[0] < 2e-4
    # and no output on the way got out
    ees = _ee(kin, outs)
    assert (ees <= hi + 1e-12).all() and (ees >= lo - 1e-12).all()


def test_path_that_leaves_and_re_enters_the_box_is_stopped_at_the_face(iiwa_chain):
    """Both end points inside, the middle of the path outside: the check is on the path."""
    kin = Kinematics(iiwa_chain)
    lo, hi = np.array([-0.75, -0.75, 0.1]), np.array([0.6, 0.75, 1.3])
    start = Q0.copy()
    start[0] = -1.0
    goal = Q0.copy()
    goal[0] = 1.0
    assert _ee(kin, start)[0] < 0.6 and _ee(kin, goal)[0] < 0.6 and _ee(kin, Q0)[0] > 0.6
    f = _filter(iiwa_chain, lo, hi)
    accepted, outs = _drive(f, start, goal)
    assert accepted and f.counters["commands_clipped"]["workspace"] == 1
    ee = _ee(kin, outs[-1])
    assert ee[1] < 0 and 0.6 - 2e-4 < ee[0] <= 0.6  # stopped at the face, before the bulge
    assert (_ee(kin, outs)[:, 0] <= 0.6 + 1e-12).all()


def test_starting_outside_the_box_only_allows_coming_back(iiwa_chain):
    kin = Kinematics(iiwa_chain)
    lo, hi = np.array([-0.75, -0.75, 0.1]), np.array([0.6, 0.75, 1.3])
    assert _ee(kin, Q0)[0] > 0.6  # the robot starts outside
    farther = Q0 + np.array([0, 0.2, 0, 0.2, 0, 0, 0])
    back = Q0 + np.array([0, -0.3, 0, -0.2, 0, 0, 0])
    assert _ee(kin, farther)[0] > _ee(kin, Q0)[0] and _ee(kin, back)[0] < 0.6
    f = _filter(iiwa_chain, lo, hi)
    accepted, outs = _drive(f, Q0, farther, seconds=0.3)
    assert accepted and f.counters["commands_clipped"]["workspace"] == 1
    np.testing.assert_allclose(outs[-1], Q0, atol=1e-12)  # no step farther out
    f = _filter(iiwa_chain, lo, hi)
    accepted, outs = _drive(f, Q0, back, seconds=0.5)
    assert accepted and f.counters["commands_clipped"]["workspace"] == 0
    np.testing.assert_allclose(outs[-1], back, atol=1e-12)


def test_command_inside_the_box_is_untouched(iiwa_chain):
    f = _filter(iiwa_chain, [-0.9, -0.9, 0.0], [0.9, 0.9, 1.4])
    goal = Q0 + np.array([0.2, -0.1, 0.1, 0.1, -0.1, 0.1, 0.2])
    accepted, outs = _drive(f, Q0, goal, seconds=0.3)
    assert accepted and f.counters["commands_clipped"]["workspace"] == 0
    np.testing.assert_allclose(outs[-1], goal, atol=1e-12)


def test_workspace_config_errors(iiwa_chain):
    with pytest.raises(ValueError, match="outside the workspace box"):
        _filter(iiwa_chain, [-0.5, -0.5, 0.1], [0.5, 0.5, 1.3], home=Q0, backup="retreat")
    with pytest.raises(ValueError, match="not a site"):
        _filter(iiwa_chain, [-0.5, -0.5, 0.1], [0.5, 0.5, 1.3], ee_site="flange")
    with pytest.raises(ValueError, match="workspace_lower must be <"):
        _filter(iiwa_chain, [0.5, -0.5, 0.1], [0.5, 0.5, 1.3])
    kin = Kinematics(iiwa_chain, joint_names=list(reversed(iiwa_chain["joint_names"])))
    cfg = SafetyConfig.from_chain(iiwa_chain, velocity_limit=1.0, workspace_lower=[-1, -1, 0], workspace_upper=[1, 1, 2])
    with pytest.raises(ValueError, match="joint order"):
        SafetyFilter(cfg, kinematics=kin)
    with pytest.raises(ValueError, match="not in the chain"):
        SafetyConfig.from_chain(iiwa_chain, joint_names=["elbow"], velocity_limit=1.0)
