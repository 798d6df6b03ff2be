"""robot_rl.teleop.arbiter.Arbiter: person over policy, bumpless handover both ways, IK of an
end-effector twist, the leader arm's approach, silent device and silent policy -> hold, bad samples
dropped, device events. Every time is passed in explicitly: deterministic."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from robot_rl.teleop.arbiter import Arbiter, ArbiterConfig
from robot_rl.teleop.device import DeviceScale, TeleopSample
from robot_rl.teleop.status_line import StatusLine, format_status

JOINTS = ["j1", "j2", "j3"]
RATE = np.array([1.0, 0.5, 2.0])
DT = 0.01


def make(**kw) -> Arbiter:
    cfg = dict(joint_names=JOINTS, lower=[-2.0] * 3, upper=[2.0] * 3, rate_limit=RATE, blend_s=0.5,
               scale=DeviceScale(joint_rad_s=1.0))
    cfg.update(kw)
    return Arbiter(ArbiterConfig(**cfg))


class Device:
    """A teleop device stand-in: samples with increasing stamps."""

    def __init__(self, mode="joint_velocity", name="test"):
        self.mode, self.name, self.seq = mode, name, 0

    def __call__(self, t, values, clutch=True, events=(), gripper=None) -> dict:
        self.seq += 1
        return TeleopSample(stamp=t, mode=self.mode, values=np.asarray(values, float), clutch=clutch,
                            events=frozenset(events), gripper=gripper, device=self.name, seq=self.seq).to_dict()


def run(arb, t0, t1, policy=None, sample=None, trace=None):
    """Tick every DT from t0 to t1, feeding policy(t) and sample(t) (None: nothing) before each tick."""
    trace = [] if trace is None else trace
    for k in range(int(round((t1 - t0) / DT))):
        t = t0 + k * DT
        if policy is not None and (p := policy(t)) is not None:
            assert arb.on_policy(t, JOINTS, p) is None
        if sample is not None and (s := sample(t)) is not None:
            assert arb.on_sample(t, s) is None
        out, st = arb.tick(t)
        trace.append((t, None if out is None else out.copy(), st["source"], st["reason"]))
    return trace


def steps(trace) -> np.ndarray:
    outs = np.array([o for _, o, _, _ in trace])
    return np.abs(np.diff(outs, axis=0))


def test_person_over_policy_and_bumpless_both_ways():
    arb = make()
    P = np.array([0.3, -0.2, 0.1])
    dev = Device("joint_position")
    leader = np.array([1.3, 0.6, -0.9])  # the leader arm far from where the policy has the robot
    tr = run(arb, 0.0, 0.3, policy=lambda t: P)
    assert [s for _, _, s, _ in tr] == ["policy"] * len(tr)
    np.testing.assert_array_equal(tr[-1][1], P)  # pass-through, exactly
    # takeover: the policy keeps publishing, the person wins; the output approaches the leader
    tr2 = run(arb, 0.3, 2.0, policy=lambda t: P, sample=lambda t: dev(t, leader))
    assert {s for _, _, s, _ in tr2} == {"person"}
    s = steps(tr[-1:] + tr2)
    assert (s <= RATE * DT + 1e-12).all(), s.max(axis=0)  # first step included: no jump at takeover
    assert s[0].max() > 0  # it did move
    np.testing.assert_allclose(tr2[-1][1], leader, atol=1e-12)  # reached (1.6 rad at 0.5 rad/s: 1.6 s)
    assert arb.status["interventions"] == 1 and arb.status["intervening"]
    # release: from the leader's pose back to the policy's, over blend_s, within the rate limit
    tr3 = run(arb, 2.0, 6.0, policy=lambda t: P, sample=lambda t: dev(t, leader, clutch=False))
    s = steps(tr2[-1:] + tr3)
    assert (s <= RATE * DT + 1e-12).all()
    assert tr3[0][2] == "policy" and tr3[0][3] == "blend"
    np.testing.assert_array_equal(tr3[-1][1], P)
    assert tr3[-1][3] == "policy" and not arb.status["blending"]
    assert arb.status["interventions"] == 1


def test_release_blend_spreads_a_small_gap_over_blend_s():
    """A gap the rate limit could close in one tick still takes blend_s: no step at release."""
    arb = make(blend_s=0.4)
    dev = Device("joint_velocity")
    run(arb, 0.0, 0.1, policy=lambda t: np.zeros(3))
    run(arb, 0.1, 0.2, policy=lambda t: np.zeros(3), sample=lambda t: dev(t, [0.5, 0.0, 0.0]))
    gap = arb.output[0]
    assert gap == pytest.approx(0.05, abs=0.011)
    tr = run(arb, 0.2, 0.8, policy=lambda t: np.zeros(3), sample=lambda t: dev(t, [0, 0, 0], clutch=False))
    outs = np.array([o[0] for _, o, _, _ in tr])
    k_done = int(np.argmax(outs == 0.0))
    assert k_done * DT == pytest.approx(0.4, abs=0.011)
    assert np.abs(np.diff(np.r_[gap, outs])).max() <= gap * DT / 0.4 + 1e-12


def test_blend_follows_a_moving_policy():
    arb = make(blend_s=0.3)
    dev = Device("joint_velocity")
    policy = lambda t: np.array([0.2 * np.sin(t), 0.1 * t, 0.0])  # noqa: E731
    run(arb, 0.0, 0.2, policy=policy)
    run(arb, 0.2, 0.6, policy=policy, sample=lambda t: dev(t, [-0.8, 0.4, 0.9]))
    tr = run(arb, 0.6, 1.5, policy=policy, sample=lambda t: dev(t, [0, 0, 0], clutch=False))
    assert (steps(tr) <= RATE * DT + 1e-12).all()
    np.testing.assert_array_equal(tr[-1][1], policy(tr[-1][0]))


def test_ee_twist_moves_the_end_effector_along_the_command(iiwa_model_xml, iiwa_joints):
    q0 = np.array([0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0])
    arb = Arbiter(ArbiterConfig(joint_names=iiwa_joints, lower=[-2.9] * 7, upper=[2.9] * 7, rate_limit=1.0,
                                robot_model=iiwa_model_xml, ee_site="ee", base_body=None))
    dev = Device("ee_twist")
    clock = [0.0]

    def run_for(seconds, sample):
        for _ in range(int(round(seconds / DT))):
            t = clock[0]
            arb.on_policy(t, iiwa_joints, q0)
            if sample is not None:
                assert arb.on_sample(t, sample(t)) is None
            arb.tick(t)
            clock[0] += DT

    run_for(0.05, None)
    for direction in (np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, 1.0])):
        start = arb.output
        e0 = arb.ee_position(start)
        v = 0.08 * direction
        run_for(0.5, lambda t, v=v: dev(t, np.r_[v, 0, 0, 0]))
        moved = arb.ee_position(arb.output) - e0
        assert moved @ direction == pytest.approx(0.08 * 0.5, rel=0.1), moved
        assert np.linalg.norm(moved - (moved @ direction) * direction) < 0.004, moved  # little off-axis drift
        assert np.abs(arb.output - start).max() > 0.01
        # release and come back to the policy (q0) before the next direction
        run_for(2.0, lambda t: dev(t, np.zeros(6), clutch=False))
        np.testing.assert_array_equal(arb.output, q0)
    assert arb.status["interventions"] == 3


def test_joint_velocity_integrates_from_the_last_command_and_respects_limits():
    arb = make(upper=[0.5, 2.0, 2.0])
    dev = Device("joint_velocity")
    run(arb, 0.0, 0.1, policy=lambda t: np.array([0.4, 0.0, 0.0]))
    tr = run(arb, 0.1, 0.6, policy=lambda t: np.zeros(3), sample=lambda t: dev(t, [1.0, -0.2, 0.0]))
    out = tr[-1][1]
    assert out[0] == pytest.approx(0.5 - 0.02)  # the joint limit less the margin, never beyond
    assert out[1] == pytest.approx(-0.2 * 0.5, abs=1e-9)  # 50 ticks of -0.2 rad/s from the policy's 0


def test_silent_device_mid_intervention_holds_until_released():
    arb = make()
    dev = Device("joint_velocity")
    P = np.zeros(3)
    run(arb, 0.0, 0.1, policy=lambda t: P)
    run(arb, 0.1, 0.5, policy=lambda t: P, sample=lambda t: dev(t, [0.5, 0.0, 0.0]))
    held = arb.output
    assert held[0] > 0.1
    # the device goes silent: person for device_timeout_s more (it keeps integrating the last sample), then hold
    tr = run(arb, 0.5, 1.5, policy=lambda t: P)
    src = [s for _, _, s, _ in tr]
    assert src[0] == "person" and src[-1] == "hold" and tr[-1][3] == "device_silent"
    k = src.index("hold")
    assert tr[k][0] == pytest.approx(0.5 + 0.2, abs=0.011)
    outs = np.array([o for _, o, _, _ in tr[k:]])
    assert (outs == outs[0]).all()  # held: not the policy's command
    assert arb.counters["device_timeouts"] == 1 and not arb.status["device_alive"]
    # the device comes back with the clutch still held: still hold (press again to resume)
    tr = run(arb, 1.5, 1.8, policy=lambda t: P, sample=lambda t: dev(t, [0.5, 0, 0]))
    assert {s for _, _, s, _ in tr} == {"hold"} and tr[-1][3] == "release_clutch"
    assert (np.array([o for _, o, _, _ in tr]) == outs[0]).all()
    # released: back to the policy, blended; pressed again: a new intervention from where it is
    tr = run(arb, 1.8, 2.0, policy=lambda t: P, sample=lambda t: dev(t, [0, 0, 0], clutch=False))
    assert tr[0][2] == "policy" and tr[0][3] == "blend"
    tr = run(arb, 2.0, 2.1, policy=lambda t: P, sample=lambda t: dev(t, [0, 0, 0.5]))
    assert tr[-1][2] == "person" and arb.status["interventions"] == 2


def test_policy_silent_holds_and_comes_back_blended():
    arb = make()
    P = np.array([0.1, 0.2, 0.3])
    run(arb, 0.0, 0.2, policy=lambda t: P)
    tr = run(arb, 0.2, 0.6)
    assert tr[-1][2] == "hold" and tr[-1][3] == "policy_silent"
    assert all((o == P).all() for _, o, _, _ in tr)
    P2 = np.array([0.5, 0.2, 0.3])
    tr = run(arb, 0.6, 1.5, policy=lambda t: P2)
    assert tr[0][3] == "blend" and (steps(tr) <= RATE * DT + 1e-12).all()
    np.testing.assert_array_equal(tr[-1][1], P2)
    # the person may move a robot whose policy is dead; releasing then holds
    dev = Device("joint_velocity")
    tr = run(arb, 1.5, 1.8, sample=lambda t: dev(t, [0, 0.3, 0]))
    assert tr[-1][2] == "person"
    tr = run(arb, 1.8, 2.0, sample=lambda t: dev(t, [0, 0, 0], clutch=False))
    assert tr[-1][2] == "hold"


def test_nothing_before_a_command_and_a_takeover_anchors_at_the_measured_state():
    arb = make()
    out, st = arb.tick(0.0)
    assert out is None and st["source"] == "hold" and st["reason"] == "no_command"
    dev = Device("joint_velocity")
    assert arb.on_sample(0.01, dev(0.01, [0.5, 0, 0])) is None
    out, st = arb.tick(0.01)
    assert out is None  # no executed command and no measured state: nothing to start from
    q = np.array([0.2, -0.1, 0.4])
    assert arb.on_state(0.02, JOINTS[::-1], q[::-1]) is None
    assert arb.on_sample(0.02, dev(0.02, [0.5, 0, 0])) is None
    out, st = arb.tick(0.02)
    assert st["source"] == "person"
    np.testing.assert_allclose(out, q + [0.005, 0, 0])


def test_bad_samples_are_dropped_with_a_reason():
    arb = make()
    run(arb, 0.0, 0.1, policy=lambda t: np.zeros(3))
    dev = Device("joint_velocity")
    good = dev(0.1, [0.1, 0, 0])
    cases = {
        "malformed": ["{not json", json.dumps([1, 2]), {"mode": "ee_twist"}, {**good, "values": "abc"}],
        "unknown_mode": [{**good, "mode": "telepathy"}],
        "wrong_length": [{**good, "values": [0.1, 0.0]}, {**good, "mode": "ee_twist", "values": [0.0] * 3}],
        "non_finite": [{**good, "values": [float("nan"), 0, 0]}, {**good, "stamp": float("inf")}],
        "rejected": [{**good, "values": [5.0, 0, 0]}, {**good, "events": ["explode"]}, {**good, "gripper": 3.0},
                     {**good, "mode": "ee_twist", "values": [0.01, 0, 0, 0, 0, 0]}],  # no robot model for IK
    }
    for reason, samples in cases.items():
        for s in samples:
            got = arb.on_sample(0.1, s)
            assert got is not None and got[0] == reason, (reason, s, got)
            assert "\n" not in got[1] and got[1]
    for _ in range(20):  # garbage only: the device counts as silent, the policy keeps the robot
        arb.on_sample(0.1, {**good, "values": [float("nan")] * 3})
    out, st = arb.tick(0.1)
    assert st["source"] == "policy" and not st["device_alive"] and st["device"] == ""
    assert arb.on_sample(0.11, good) is None
    old = arb.on_sample(0.12, good)  # the same stamp again
    assert old[0] == "old_stamp"
    dropped = arb.counters["samples_dropped"]
    assert dropped["malformed"] == 4 and dropped["non_finite"] == 22 and dropped["old_stamp"] == 1


def test_events_are_queued_once_and_count_episodes():
    arb = make()
    dev = Device("joint_velocity")
    assert arb.on_sample(0.0, dev(0.0, [0, 0, 0], clutch=False, events=["success"])) is None
    assert arb.on_sample(0.01, dev(0.01, [0, 0, 0], clutch=False, events=["reset"])) is None  # right after a label
    assert arb.on_sample(0.02, dev(0.02, [0, 0, 0], clutch=False, events=["failure"])) is None
    assert arb.on_sample(0.03, dev(0.03, [0, 0, 0], clutch=False, events=["reset"])) is None
    ev = arb.pop_events()
    assert [(e["event"], e["episode"]) for e in ev] == [("success", 0), ("reset", 1), ("failure", 1), ("reset", 2)]
    assert arb.pop_events() == []
    assert arb.status["episode"] == 2 and arb.status["last_event"] == "reset"
    assert arb.on_sample(0.04, dev(0.04, [0, 0, 0], clutch=False, events=["reset"])) is None  # not after a label
    assert [(e["event"], e["episode"]) for e in arb.pop_events()] == [("reset", 2)]
    assert arb.status["episode"] == 3
    assert arb.counters["successes"] == 1 and arb.counters["failures"] == 1


def test_config_from_an_artifact_spec_with_a_gripper():
    from robot_rl.kinematics import kinematic_model_xml
    from robot_rl.robots import get_robot

    panda = get_robot("panda")
    d = panda.describe()
    fingers = d["gripper"]["joint_names"]
    spec = {"robot": {**d, "model": "robot.xml"}, "control": {"period_s": 0.02},
            "action": {"terms": [
                {"func": "joint_position_delta", "joints": d["joint_names"], "params": {"scale": 0.04}},
                {"func": "gripper", "joints": fingers, "params": {}}]}}
    cfg = ArbiterConfig.from_spec(spec, kinematic_model_xml(panda), blend_s=0.2)
    assert cfg.joint_names == d["joint_names"] + fingers and cfg.robot_joints == d["joint_names"]
    np.testing.assert_allclose(cfg.rate_limit[:7], 0.5 * 0.04 / 0.02)
    arb = Arbiter(cfg)
    q0 = np.r_[d["default_pose"], [d["gripper"]["open_position"]] * 2]
    arb.on_policy(0.0, cfg.joint_names, q0)
    arb.tick(0.0)
    dev = Device("joint_velocity")
    for k in range(1, 200):
        t = k * DT
        arb.on_sample(t, dev(t, np.zeros(7), gripper=1.0))
        out, st = arb.tick(t)
    np.testing.assert_allclose(out[7:], d["gripper"]["closed_position"])  # closed by the person
    np.testing.assert_allclose(out[:7], q0[:7])


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="rate_limit"):
        make(rate_limit=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="lower"):
        make(lower=[0.0, 0.0])
    with pytest.raises(ValueError, match="device_timeout_s"):
        make(device_timeout_s=0.0)


def test_status_line_tty_and_plain():
    t = [0.0]
    buf = io.StringIO()
    line = StatusLine(buf, tty=True, clock=lambda: t[0])
    d = {"episode": 4, "successes": 3, "failures": 1, "interventions": 2, "intervention_rate": 0.125,
         "learner_lag_s": 0.5, "source": "person", "device": "gamepad", "device_alive": True}
    assert line.update(d)
    assert not line.update(d)  # too soon
    t[0] = 0.2
    assert line.update({**d, "source": "hold", "reason": "device_silent", "device_alive": False})
    line.close()
    out = buf.getvalue()
    assert out.startswith("\r") and out.count("\r") == 2 and out.endswith("\n") and out.count("\n") == 1
    assert "episode 4 | success 75% (3/4) | interventions 2, 12% of time | learner lag 0.50 s" in out
    assert "PERSON" in out and "HOLD (device_silent)" in out and "device gamepad SILENT" in out
    plain = io.StringIO()
    line = StatusLine(plain, tty=False, clock=lambda: t[0])
    assert line.update(d)
    t[0] = 5.0
    assert not line.update(d)  # unchanged: not repeated
    assert line.update({**d, "episode": 5})
    assert plain.getvalue().count("\n") == 2 and "\r" not in plain.getvalue()
    assert format_status({}) == "" and "success -" in format_status({"successes": 0, "failures": 0})
