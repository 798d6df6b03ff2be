"""Arbiter node on loopback DDS: a fake policy and a fake teleop publisher; the person takes over,
goes silent (hold), lets go (back to the policy, blended); bad samples are dropped and logged;
events come out once. With the safety node reading arbiter/joint_command, the person's commands
are limited like the policy's. The launch file adds teleop + arbiter only with teleop != none."""

from __future__ import annotations

import importlib.util
import json
import threading
import time

import numpy as np
import pytest

from _nodes_helpers import REPO, Recorder, StatePublisher, diag

JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
Q0 = np.array([0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0])
LAUNCH = REPO / "launch" / "deploy.launch.xml"


class Periodic:
    """Calls ``fn()`` every ``period`` s on a thread until stopped; ``fn`` is swappable."""

    def __init__(self, fn, period: float):
        self.fn, self.period = fn, period
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            fn = self.fn
            if fn is not None:
                fn()
            time.sleep(self.period)

    def stop(self):
        self._stop.set()
        self.thread.join(2)


class FakeTeleop:
    """Publishes TeleopSample JSON on /teleop/command (stamps: this process's monotonic clock)."""

    def __init__(self, node, msgs):
        self.msgs, self.seq = msgs, 0
        self.pub = node.create_publisher(msgs.String, "/teleop/command")

    def send(self, values, clutch=True, mode="joint_velocity", events=(), **extra):
        self.seq += 1
        d = {"stamp": time.monotonic(), "mode": mode, "values": [float(v) for v in values], "clutch": clutch,
             "events": list(events), "gripper": None, "device": "fake", "seq": self.seq, **extra}
        self.pub.publish(self.msgs.String(data=json.dumps(d)))


def _status(m) -> dict:
    return json.loads(m.data)


def test_arbiter_node_takeover_silence_release(graph, trained_artifact):
    from robot_rl.transport import msgs

    node = graph.node
    out = Recorder(node, msgs.JointState, "/arbiter/joint_command")
    iv = Recorder(node, msgs.Bool, "/teleop/intervention")
    status = Recorder(node, msgs.String, "/teleop/status")
    events = Recorder(node, msgs.String, "/teleop/events")
    pol = node.create_publisher(msgs.JointState, "/policy/joint_command")
    tele = FakeTeleop(node, msgs)
    node.start()
    robot = StatePublisher(node, JOINTS, Q0, rate_hz=100)
    P = Q0 + np.array([0.05, 0, 0, 0, 0, 0, 0])
    policy = Periodic(lambda: pol.publish(msgs.JointState(name=JOINTS, position=P)), 0.02)
    teleop = Periodic(None, 0.01)
    arb = graph.start("arbiter", artifact=trained_artifact, rate_hz=100.0, blend_s=0.3, status_line=False)
    try:
        m = out.wait_for(lambda m: np.array_equal(m.position, P), 30, "the policy's command passed through")
        assert list(m.name) == JOINTS
        status.wait_for(lambda m: _status(m)["source"] == "policy", 5, "source policy")

        # takeover: the person drives joint 2 at -0.4 rad/s; garbage and NaN samples in between are dropped
        t_take = time.monotonic()
        teleop.fn = lambda: tele.send([0, -0.4, 0, 0, 0, 0, 0])
        for bad in ("{garbage", json.dumps({"stamp": 1.0})):
            tele.pub.publish(msgs.String(data=bad))
        tele.send([float("nan")] * 7)
        tele.send([0.1] * 3)
        status.wait_for(lambda m: _status(m)["source"] == "person" and _status(m)["intervening"], 5, "source person")
        iv.wait_for(lambda m: m.data, 2, "intervention true")
        out.wait_for(lambda m: m.position[1] < P[1] - 0.1, 5, "the person's command moving joint 2")
        took = np.array([m.position for m in out.since(t_take - 0.05)])
        from robot_rl.artifact import command_limits

        rate = 0.5 * max(command_limits(json.loads((trained_artifact / "spec.json").read_text()))["velocity"])
        assert np.abs(np.diff(took, axis=0)).max() <= rate * 0.05 + 1e-9  # no jump (max_tick_dt_s 0.05)
        assert np.abs(took[:, [0, 2, 3, 4, 5, 6]] - P[[0, 2, 3, 4, 5, 6]]).max() < 1e-9  # only joint 2 moves

        # events: once each
        tele.send([0, -0.4, 0, 0, 0, 0, 0], events=["success"])
        ev = _status(events.wait_for(lambda m: True, 5, "an event"))
        assert ev["event"] == "success" and ev["episode"] == 0

        # the device goes silent mid-intervention: hold the last command
        teleop.fn = None
        t_silent = time.monotonic()
        st = _status(status.wait_for(lambda m: _status(m)["source"] == "hold", 5, "hold after the device went silent",
                                     since=t_silent))
        assert st["reason"] == "device_silent" and not st["device_alive"] and st["interventions"] == 1
        time.sleep(0.3)
        held = np.array([m.position for m in out.since(time.monotonic() - 0.2)])
        assert len(held) > 5 and (held == held[0]).all() and held[0][1] < P[1] - 0.05
        assert not iv.last().data

        # released: back to the policy's command, blended, then exactly the policy's
        t_rel = time.monotonic()
        teleop.fn = lambda: tele.send([0] * 7, clutch=False)
        out.wait_for(lambda m: np.array_equal(m.position, P), 5, "back to the policy's command", since=t_rel)
        back = np.array([m.position for m in out.since(t_rel)])
        assert np.abs(np.diff(back, axis=0)).max() <= rate * 0.05 + 1e-9
        assert len(back) > 0.2 * 100 * 0.5  # spread over blend_s (0.3 s at 100 Hz), not one step
        st = _status(status.wait_for(lambda m: _status(m)["source"] == "policy" and not _status(m)["blending"], 5,
                                     "policy again", since=t_rel))
        assert st["interventions"] == 1 and st["episode"] == 1 and st["last_event"] == "success", json.dumps(st)
        assert st["device"] == "fake" and st["device_alive"]
        assert arb.alive()
    finally:
        teleop.stop()
        policy.stop()
        robot.stop()
    assert arb.stop() == 0
    log = arb.log()
    assert "[malformed]" in log and "[non_finite]" in log and "[wrong_length]" in log, log[-3000:]
    assert "source person (clutch), intervention 1" in log and "source hold (device_silent)" in log


def test_safety_node_limits_the_persons_command(graph, trained_artifact):
    """safety command_topic:=arbiter/joint_command: a leader arm asks for joint 1 near its limit,
    fast; the arbiter passes it (its own rate limit set high), the safety node clips it to its
    position margin and moves it no faster than its velocity limit."""
    from robot_rl.transport import msgs

    spec = json.loads((trained_artifact / "spec.json").read_text())
    upper = spec["robot"]["position_limits"][0][1]
    node = graph.node
    arb_out = Recorder(node, msgs.JointState, "/arbiter/joint_command")
    drive = Recorder(node, msgs.Float64MultiArray, "/forward_position_controller/commands")
    dg = Recorder(node, msgs.String, "/safety/diagnostics")
    pol = node.create_publisher(msgs.JointState, "/policy/joint_command")
    tele = FakeTeleop(node, msgs)
    node.start()
    robot = StatePublisher(node, JOINTS, Q0, rate_hz=250)
    policy = Periodic(lambda: pol.publish(msgs.JointState(name=JOINTS, position=Q0)), 0.02)
    teleop = Periodic(None, 0.01)
    graph.start("safety", artifact=trained_artifact, rate_hz=250.0, command_topic="arbiter/joint_command",
                velocity_limit=1.0, position_margin=0.5, cbf=False)
    graph.start("arbiter", artifact=trained_artifact, rate_hz=100.0, rate_limit=8.0, status_line=False)
    try:
        dg.wait_for(lambda m: diag(m)["mode"] == "ok", 30, "the safety node passing the arbiter's commands")
        leader = Q0.copy()
        leader[0] = upper
        t0 = time.monotonic()
        teleop.fn = lambda: tele.send(leader, mode="joint_position")
        arb_out.wait_for(lambda m: m.position[0] > upper - 0.03, 5, "the arbiter at the leader's pose", since=t0)
        dg.wait_for(lambda m: diag(m)["command"] is not None and diag(m)["command"][0] > upper - 0.5 - 1e-6, 10,
                    "the safety output at its clipped target")
        d = diag(dg.last())
        assert d["mode"] == "ok" and "position_limit" in d["active_limits"]
        sent = np.array([np.asarray(m.data) for m in drive.since(t0)])
        assert sent[:, 0].max() <= upper - 0.5 + 1e-9  # never beyond the safety node's margin
        assert np.abs(np.diff(sent, axis=0)).max() <= 1.0 * 0.01 + 1e-9  # its rate limit x max_tick_dt_s
        # the arbiter got there much faster than the safety node let the robot go
        t_arb = min(t for t, m in arb_out.items if t >= t0 and m.position[0] > upper - 0.03)
        t_safe = min(t for t, m in drive.items if t >= t0 and m.data[0] > upper - 0.5 - 1e-6)
        assert t_safe - t_arb > 1.0, (t_arb - t0, t_safe - t0)
    finally:
        teleop.stop()
        policy.stop()
        robot.stop()


def test_arbiter_node_refuses_bad_parameters(graph, tmp_path):
    for params, want in (({}, "parameter 'artifact' is required"),
                         ({"artifact": tmp_path / "nope"}, "nope"),
                         ({"artifact": tmp_path, "rate_hz": 5.0}, "rate_hz=5.0 is invalid: expected 10..1000 Hz")):
        p = graph.start("arbiter", **params)
        assert p.wait(30) == 2
        err = [ln for ln in p.log().splitlines() if "error" in ln]
        assert len(err) == 1 and want in err[0], p.log()


def test_launch_plan_without_teleop_is_unchanged(reach_artifact):
    from robot_rl.launch_runner import build_plan

    plan = build_plan(str(LAUNCH), {"artifact": str(reach_artifact)})
    assert [n.label for n in plan.nodes] == ["twin", "safety", "policy"]
    assert "command_topic:=policy/joint_command" in " ".join(plan.nodes[1].argv)


@pytest.mark.skipif(importlib.util.find_spec("robot_rl.nodes.teleop") is None,
                    reason="the teleop node (robot_rl/nodes/teleop.py) is not merged yet")
def test_launch_plan_with_teleop(reach_artifact):
    from robot_rl.launch_runner import build_plan

    plan = build_plan(str(LAUNCH), {"artifact": str(reach_artifact), "teleop": "web", "teleop_host": "0.0.0.0",
                                    "robot": "ros2_control", "namespace": "arm1"})
    assert [n.label for n in plan.nodes] == ["safety", "policy", "teleop", "arbiter"]
    assert [n.namespace for n in plan.nodes] == ["/arm1"] * 4
    argv = {n.label: " ".join(n.argv) for n in plan.nodes}
    assert "command_topic:=arbiter/joint_command" in argv["safety"]
    assert "device:=web" in argv["teleop"] and "host:=0.0.0.0" in argv["teleop"]
    assert "robot_rl.nodes.arbiter" in argv["arbiter"] or "robot-rl-arbiter" in argv["arbiter"]
    assert "status_line:=true" in argv["arbiter"] and "blend_s:=0.5" in argv["arbiter"]
