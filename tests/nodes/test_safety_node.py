"""Safety node: bad commands are rejected, counted, logged (rate-limited) and never forwarded; the
e-stop latches, from volatile publishers (no QoS warning) and from a latched one that started
first; the command latency ignores commands the filter never used."""

import time

import numpy as np

from _nodes_helpers import Recorder, StatePublisher, diag

JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
Q0 = np.array([0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0])
MARKER = 0.777  # offset carried by every bad command; must never reach the driver


def _cmd(msgs, names, q):
    return msgs.JointState(name=list(names), position=np.asarray(q, dtype=np.float64))


def test_bad_commands_rejected_and_estop_latches(graph, trained_artifact):
    from robot_rl.transport import msgs

    node = graph.node
    out = Recorder(node, msgs.Float64MultiArray, "/forward_position_controller/commands")
    dg = Recorder(node, msgs.String, "/safety/diagnostics")
    pol = node.create_publisher(msgs.JointState, "/policy/joint_command")
    estop = node.create_publisher(msgs.Bool, "/safety/estop", qos="latched")
    reset = node.create_publisher(msgs.Bool, "/safety/reset")
    node.start()
    robot = StatePublisher(node, JOINTS, Q0, rate_hz=500)
    try:
        safety = graph.start("safety", artifact=trained_artifact)
        dg.wait_for(lambda m: diag(m)["mode"] == "hold", 30, "safety running (hold, no command)")
        pol.wait_for_subscribers(1, 5)

        good = Q0 + np.array([0.05, 0, 0, 0, 0, 0, 0])
        for _ in range(10):
            pol.publish(_cmd(msgs, JOINTS, good))
            time.sleep(0.01)
        dg.wait_for(lambda m: diag(m)["mode"] == "ok", 5, "mode ok after valid commands")

        bad = Q0 + MARKER
        nan, inf = bad.copy(), bad.copy()
        nan[3], inf[5] = np.nan, np.inf
        renamed = list(JOINTS)
        renamed[2] = "wrist_99"
        for _ in range(5):
            pol.publish(_cmd(msgs, JOINTS, nan))
            pol.publish(_cmd(msgs, JOINTS, inf))
            pol.publish(_cmd(msgs, JOINTS[:6], bad[:6]))     # 6 joints: one missing
            pol.publish(_cmd(msgs, JOINTS, bad[:6]))          # 7 names, 6 values
            pol.publish(_cmd(msgs, renamed, bad))             # unknown joint name
            pol.publish(_cmd(msgs, [], bad))                  # no names at all
            pol.publish(_cmd(msgs, JOINTS, good))             # keeps the watchdog fed
            time.sleep(0.02)

        def counted(m):
            r = diag(m)["counters"]["commands_rejected"]
            return (r["non_finite"] >= 10 and r["wrong_length"] >= 10 and r["missing_joint"] >= 5
                    and r["unknown_joint"] >= 5)
        d = diag(dg.wait_for(counted, 5, "rejections counted by reason"))
        assert d["counters"]["commands_accepted"] >= 10
        # a flood of bad commands: counted one by one, logged at most once a second per reason
        t_flood = time.monotonic()
        for _ in range(300):  # ~1 kHz: the subscription (keep-last 10) keeps up
            pol.publish(_cmd(msgs, JOINTS, nan))
            pol.publish(_cmd(msgs, renamed, bad))
            time.sleep(0.002)
        dg.wait_for(lambda m: diag(m)["counters"]["commands_rejected"]["non_finite"] >= 200
                    and diag(m)["counters"]["commands_rejected"]["unknown_joint"] >= 200, 10, "the flood counted")
        flood_s = time.monotonic() - t_flood
        sent = np.array([np.asarray(m.data) for _, m in out.items])
        assert sent.ndim == 2 and sent.shape[1] == 7 and np.isfinite(sent).all()
        assert np.abs(sent - Q0).max() < 0.06, "a rejected command reached the driver"

        # e-stop: brake at the measured pose, latched through release and new commands
        estop.publish(msgs.Bool(data=True))
        dg.wait_for(lambda m: diag(m)["mode"] == "estop", 5, "estop mode")
        time.sleep(0.1)
        estop.publish(msgs.Bool(data=False))
        t_rel = time.monotonic()
        for _ in range(20):
            pol.publish(_cmd(msgs, JOINTS, good))
            time.sleep(0.01)
        time.sleep(0.1)
        after = [diag(m) for m in dg.since(t_rel)]
        assert after and all(d["mode"] == "estop" and d["estop_latched"] for d in after), \
            "e-stop did not stay latched after release + commands"
        braked = np.array([np.asarray(m.data) for m in out.since(t_rel)])
        np.testing.assert_allclose(braked, np.broadcast_to(Q0, braked.shape), atol=1e-12)

        reset.publish(msgs.Bool(data=True))
        dg.wait_for(lambda m: not diag(m)["estop_latched"], 5, "e-stop cleared by /safety/reset")
        for _ in range(10):
            pol.publish(_cmd(msgs, JOINTS, good))
            time.sleep(0.01)
        dg.wait_for(lambda m: diag(m)["mode"] == "ok", 5, "ok again after reset + new command")
        assert safety.alive(), safety.log()
        assert safety.stop() == 0
    finally:
        robot.stop()
    lines = [ln for ln in safety.log().splitlines() if "rejected a command" in ln]
    reasons = ("non_finite", "unknown_joint", "missing_joint", "wrong_length")
    assert all(any(f"[{r}]" in ln for r in reasons) for ln in lines), lines  # every line names its reason
    for r in ("non_finite", "unknown_joint"):
        n = sum(f"[{r}]" in ln for ln in lines)
        assert 1 <= n <= flood_s + 4, (r, n, lines)  # hundreds rejected, a handful of lines
    assert "wrist_99" in "\n".join(lines)  # the line says which joint is unknown
    assert "more not logged" in safety.log() or "not logged)" in "\n".join(lines)  # the suppressed ones are counted


def test_estop_publishers_of_both_kinds_and_latency_after_an_outage(graph, trained_artifact):
    from robot_rl.transport import msgs

    node = graph.node
    dg = Recorder(node, msgs.String, "/safety/diagnostics")
    pol = node.create_publisher(msgs.JointState, "/policy/joint_command")
    latched = node.create_publisher(msgs.Bool, "/safety/estop", qos="latched")
    reset = node.create_publisher(msgs.Bool, "/safety/reset")
    node.start()
    latched.publish(msgs.Bool(data=True))  # before the safety node exists
    robot = StatePublisher(node, JOINTS, Q0, rate_hz=500)

    def release_and_reset(pub):
        pub.publish(msgs.Bool(data=False))
        t = time.monotonic()
        dg.wait_for(lambda m: not diag(m)["estop_engaged"], 5, "the e-stop released", since=t)
        t = time.monotonic()
        reset.publish(msgs.Bool(data=True))
        dg.wait_for(lambda m: not diag(m)["estop_latched"], 5, "the e-stop reset", since=t)

    try:
        safety = graph.start("safety", artifact=trained_artifact)
        # 1. a latched e-stop published before the safety node started still reaches it
        dg.wait_for(lambda m: diag(m)["estop_latched"], 30, "the latched e-stop at start-up")
        reset.wait_for_subscribers(1, 5)
        release_and_reset(latched)
        time.sleep(1.2)  # the transient-local reader is gone once the latched value was delivered

        # 2. a volatile e-stop publisher (what `ros2 topic pub safety/estop` makes) works, no QoS warning
        volatile = node.create_publisher(msgs.Bool, "/safety/estop")
        assert volatile.wait_for_subscribers(1, 5)
        time.sleep(0.3)
        t = time.monotonic()
        volatile.publish(msgs.Bool(data=True))
        dg.wait_for(lambda m: diag(m)["estop_latched"], 5, "the volatile e-stop", since=t)
        assert volatile.incompatible_qos_count == 0 and latched.incompatible_qos_count == 0
        release_and_reset(volatile)

        # 3. latency: commands at 50 Hz, then a joint-state outage; the policy goes on for a while
        # (its own state timeout, 0.1 s, is longer than the safety node's 0.05 s), then stops until
        # the state comes back 0.6 s later
        def commands(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pol.publish(msgs.JointState(header=msgs.Header(stamp=node.now()), name=JOINTS, position=Q0 + 0.01))
                time.sleep(0.02)

        commands(0.5)
        robot.paused.set()
        commands(0.15)
        dg.wait_for(lambda m: diag(m)["reason"] == "state_stale", 5, "the outage")
        time.sleep(0.6)
        robot.paused.clear()
        time.sleep(0.05)  # the policy commands again once it has a fresh state itself
        commands(1.0)
        t = time.monotonic()
        lat = diag(dg.wait_for(lambda m: True, 5, "diagnostics", since=t))["loop"]["command_latency"]
        assert lat["count"] > 30, lat
        assert lat["max_ms"] < 100, f"a stale command stamp was measured across the outage: {lat}"
        assert safety.alive(), safety.log()
        assert safety.stop() == 0
    finally:
        robot.stop()
    assert "incompatible QoS" not in safety.log()
    assert safety.log().count("e-stop ENGAGED") == 2
