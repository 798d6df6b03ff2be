"""Workspace box of the safety filter, on the iiwa14 model (MuJoCo FK of its robot.xml)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.kinematics import RobotKinematics
from robot_rl.safety import SafetyConfig, SafetyFilter

Q0 = np.array([0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0])  # EE at x = 0.673, z = 0.576


def _filter(xml, lo, hi, **kw) -> SafetyFilter:
    cfg = SafetyConfig.from_model(
        xml,
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


def test_command_leaving_the_box_is_scaled_back_along_its_path(iiwa_model_xml, iiwa_joints):
    kin = RobotKinematics(iiwa_model_xml, iiwa_joints)
    lo, hi = np.array([-0.75, -0.75, 0.1]), np.array([0.75, 0.75, 1.3])
    q1 = Q0 + np.array([0, 0.6, 0, 0.5, 0, 0, 0])
    assert _ee(kin, Q0)[0] < 0.75 < _ee(kin, q1)[0]  # precondition: the target is outside
    f = _filter(iiwa_model_xml, lo, hi)
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


def test_path_that_leaves_and_re_enters_the_box_is_stopped_at_the_face(iiwa_model_xml, iiwa_joints):
    """Both end points inside, the middle of the path outside: the check is on the path."""
    kin = RobotKinematics(iiwa_model_xml, iiwa_joints)
    lo, hi = np.array([-0.75, -0.75, 0.1]), np.array([0.6, 0.75, 1.3])
    start = Q0.copy()
    start[0] = -1.0
    goal = Q0.copy()
    goal[0] = 1.0
    assert _ee(kin, start)[0] < 0.6 and _ee(kin, goal)[0] < 0.6 and _ee(kin, Q0)[0] > 0.6
    f = _filter(iiwa_model_xml, lo, hi)
    accepted, outs = _drive(f, start, goal)
    assert accepted and f.counters["commands_clipped"]["workspace"] == 1
    ee = _ee(kin, outs[-1])
    assert ee[1] < 0 and 0.6 - 2e-4 < ee[0] <= 0.6  # stopped at the face, before the bulge
    assert (_ee(kin, outs)[:, 0] <= 0.6 + 1e-12).all()


def test_starting_outside_the_box_only_allows_coming_back(iiwa_model_xml, iiwa_joints):
    kin = RobotKinematics(iiwa_model_xml, iiwa_joints)
    lo, hi = np.array([-0.75, -0.75, 0.1]), np.array([0.6, 0.75, 1.3])
    assert _ee(kin, Q0)[0] > 0.6  # the robot starts outside
    farther = Q0 + np.array([0, 0.2, 0, 0.2, 0, 0, 0])
    back = Q0 + np.array([0, -0.3, 0, -0.2, 0, 0, 0])
    assert _ee(kin, farther)[0] > _ee(kin, Q0)[0] and _ee(kin, back)[0] < 0.6
    f = _filter(iiwa_model_xml, lo, hi)
    accepted, outs = _drive(f, Q0, farther, seconds=0.3)
    assert accepted and f.counters["commands_clipped"]["workspace"] == 1
    np.testing.assert_allclose(outs[-1], Q0, atol=1e-12)  # no step farther out
    f = _filter(iiwa_model_xml, lo, hi)
    accepted, outs = _drive(f, Q0, back, seconds=0.5)
    assert accepted and f.counters["commands_clipped"]["workspace"] == 0
    np.testing.assert_allclose(outs[-1], back, atol=1e-12)


def test_command_inside_the_box_is_untouched(iiwa_model_xml, iiwa_joints):
    f = _filter(iiwa_model_xml, [-0.9, -0.9, 0.0], [0.9, 0.9, 1.4])
    goal = Q0 + np.array([0.2, -0.1, 0.1, 0.1, -0.1, 0.1, 0.2])
    accepted, outs = _drive(f, Q0, goal, seconds=0.3)
    assert accepted and f.counters["commands_clipped"]["workspace"] == 0
    np.testing.assert_allclose(outs[-1], goal, atol=1e-12)


def test_workspace_config_errors(iiwa_model_xml, iiwa_joints):
    with pytest.raises(ValueError, match="outside the workspace box"):
        _filter(iiwa_model_xml, [-0.5, -0.5, 0.1], [0.5, 0.5, 1.3], home=Q0, backup="retreat")
    with pytest.raises(ValueError, match="not a site"):
        _filter(iiwa_model_xml, [-0.5, -0.5, 0.1], [0.5, 0.5, 1.3], ee_site="tool0")
    with pytest.raises(ValueError, match="workspace_lower must be <"):
        _filter(iiwa_model_xml, [0.5, -0.5, 0.1], [0.5, 0.5, 1.3])
    kin = RobotKinematics(iiwa_model_xml, list(reversed(iiwa_joints)))
    cfg = SafetyConfig.from_model(iiwa_model_xml, velocity_limit=1.0, workspace_lower=[-1, -1, 0], workspace_upper=[1, 1, 2])
    with pytest.raises(ValueError, match="joint order"):
        SafetyFilter(cfg, kinematics=kin)
    with pytest.raises(ValueError, match=r"\['elbow'\] are not in the robot model"):
        SafetyConfig.from_model(iiwa_model_xml, joint_names=["elbow"], velocity_limit=1.0)


def _first_target(f, start, cmd):
    """The target one command gets (no tick moves the output in between)."""
    names = list(f.config.joint_names)
    f._reset_state()  # noqa: SLF001 - the same filter, from a new start
    f.on_state(0.0, names, start)
    f.tick(0.0)
    assert f.on_command(0.0, names, cmd)
    return f._target.copy()  # noqa: SLF001


def test_scaled_back_targets_agree_with_a_dense_check_of_the_path(iiwa_model_xml, iiwa_joints):
    """Random paths, starting inside and outside a small box: every sample of the accepted part
    (at the configured resolution) passes, and the stop lies between the last passing and the
    first failing sample of a dense evaluation of the whole path."""
    kin = RobotKinematics(iiwa_model_xml, iiwa_joints)
    lo, hi = np.array([0.2, -0.4, 0.3]), np.array([0.7, 0.4, 0.9])
    f = _filter(iiwa_model_xml, lo, hi)
    res = f.config.workspace_resolution
    rng = np.random.default_rng(0)

    def viol(q):
        ee = _ee(kin, q)
        return np.linalg.norm(np.maximum(lo - ee, 0) + np.maximum(ee - hi, 0), axis=-1)

    clipped = 0
    for _ in range(40):
        start = np.clip(Q0 + rng.normal(0, 0.3, 7), f.config.cmd_lower, f.config.cmd_upper)
        goal = np.clip(start + rng.normal(0, 0.8, 7), f.config.cmd_lower, f.config.cmd_upper)
        target = _first_target(f, start, goal)
        delta = goal - start
        steps = int(np.ceil(np.abs(delta).max() / res))
        alpha = (target - start)[np.argmax(np.abs(delta))] / delta[np.argmax(np.abs(delta))]
        np.testing.assert_allclose(target, start + alpha * delta, atol=1e-12)  # on the path
        grid = np.arange(steps + 1) / steps
        v = viol(start + grid[:, None] * delta)
        tol = v[0] + 1e-12
        bad = np.flatnonzero(v > tol)
        if bad.size == 0:
            assert alpha == 1.0
            continue
        clipped += 1
        j = bad[0]
        assert grid[j - 1] <= alpha < grid[j]
        assert viol(start + alpha * delta) <= tol
    assert clipped >= 10  # the sample covers clipped paths


def test_a_path_longer_than_the_sample_cap_is_cut_after_the_last_sample(iiwa_model_xml, iiwa_joints):
    from robot_rl.safety.filter import WORKSPACE_MAX_SAMPLES

    f = _filter(iiwa_model_xml, [-2, -2, -2], [2, 2, 3])  # a box the arm cannot leave
    start, goal = Q0.copy(), Q0.copy()
    start[0], goal[0] = f.config.cmd_lower[0], f.config.cmd_upper[0]  # 5.9 rad: 297 samples
    steps = int(np.ceil((goal[0] - start[0]) / f.config.workspace_resolution))
    assert steps > WORKSPACE_MAX_SAMPLES
    target = _first_target(f, start, goal)
    np.testing.assert_allclose(target, start + WORKSPACE_MAX_SAMPLES / steps * (goal - start), atol=1e-12)
    assert f.counters["commands_clipped"]["workspace"] == 1
    # within the cap, the whole path is taken
    goal[0] = start[0] + 0.9 * WORKSPACE_MAX_SAMPLES * f.config.workspace_resolution
    np.testing.assert_allclose(_first_target(f, start, goal), goal, atol=1e-12)


def test_filter_evaluates_a_shared_kinematics_on_its_own_data(iiwa_model_xml, iiwa_joints):
    """The node may hand the critic's RobotKinematics to the filter too (other threads): the
    filter only reads its model."""
    kin = RobotKinematics(iiwa_model_xml, iiwa_joints)
    cfg = SafetyConfig.from_model(iiwa_model_xml, velocity_limit=1.0, workspace_lower=[-1, -1, 0],
                                  workspace_upper=[1, 1, 2])
    f = SafetyFilter(cfg, kinematics=kin)
    kin.site_pos(Q0, "ee")
    before = kin.data.qpos.copy()
    f.on_state(0.0, None, Q0)
    f.tick(0.0)
    assert f.on_command(0.0, None, Q0 + 0.3)
    np.testing.assert_array_equal(kin.data.qpos, before)


def test_config_from_model(iiwa_model_xml, iiwa_joints, tmp_path):
    import mujoco

    from robot_rl.robots import get_robot

    path = tmp_path / "robot.xml"
    path.write_text(iiwa_model_xml)
    cfg = SafetyConfig.from_model(path, velocity_limit=1.0)  # a path is read; its text is kept
    assert cfg.robot_model == iiwa_model_xml and "robot_model" not in repr(cfg)
    assert list(cfg.joint_names) == iiwa_joints  # default: the model's hinge and slide joints
    lim = get_robot("iiwa14").position_limits()
    np.testing.assert_array_equal(cfg.lower, lim[:, 0])
    np.testing.assert_array_equal(cfg.upper, lim[:, 1])
    sub = SafetyConfig.from_model(iiwa_model_xml, ["lbr_iiwa_joint_4", "lbr_iiwa_joint_2"], velocity_limit=1.0)
    np.testing.assert_array_equal(sub.upper, lim[[3, 1], 1])
    # a joint without a range needs explicit limits
    spec = mujoco.MjSpec.from_string(iiwa_model_xml)
    spec.joint("lbr_iiwa_joint_7").limited = mujoco.mjtLimited.mjLIMITED_FALSE
    unlimited = spec.to_xml()
    with pytest.raises(ValueError, match=r"joints \['lbr_iiwa_joint_7'\] have no range .* position_lower/upper"):
        SafetyConfig.from_model(unlimited, velocity_limit=1.0)
    cfg = SafetyConfig.from_model(unlimited, velocity_limit=1.0, position_lower=-3.0, position_upper=3.0)
    assert cfg.upper.tolist() == [3.0] * 7
    with pytest.raises(ValueError, match="not a valid MJCF"):
        SafetyConfig.from_model("<mujoco><worldbody><body></mujoco>", velocity_limit=1.0)
    with pytest.raises(ValueError, match="robot_model must be the robot's MJCF as text"):
        SafetyConfig(joint_names=iiwa_joints, position_lower=-1, position_upper=1, velocity_limit=1.0,
                     robot_model=path)
