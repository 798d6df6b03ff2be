"""The safety critic off the tick thread (robot_rl.safety.critic_worker), as the safety node runs it:
fresh risk reaches the filter at its snapshot's time, a stalled, missing or failing critic fails
closed (backup), snapshots are copies and the newest wins, and the thread starts and stops."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from robot_rl.safety import SafetyConfig, SafetyFilter
from robot_rl.safety.critic_worker import CriticWorker, RiskFeed

JOINTS = ["j1", "j2", "j3"]
STALE = 0.03  # s: three periods of a 100 Hz critic
EVERY = 10  # ticks per critic snapshot at 1 kHz


class FakeCritic:
    """Returns ``risk`` (set by the test); records its inputs."""

    def __init__(self):
        self.risk = 0.1
        self.calls: list[tuple] = []
        self.non_finite = 0
        self.fail = False
        self.delay_s = 0.0

    def __call__(self, q, qd, q_cmd, v):
        self.calls.append((q.copy(), qd.copy(), q_cmd.copy(), v.copy()))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("onnxruntime exploded")
        return self.risk


def make(**kw):
    cfg = SafetyConfig(joint_names=JOINTS, position_lower=[-1.0, -2.0, -3.0], position_upper=[1.0, 2.0, 3.0],
                       velocity_limit=[1.0, 2.0, 3.0], cmd_timeout_s=0.1, brake_timeout_s=0.5, state_timeout_s=0.05,
                       risk_threshold=0.8, risk_hysteresis=0.1, risk_timeout_s=STALE, **kw)
    filt = SafetyFilter(cfg)
    critic = FakeCritic()
    worker = CriticWorker(critic)
    return filt, critic, worker, RiskFeed(worker, filt, EVERY, [0, 1, 2])


def tick(filt, feed, k, q, step=None):
    """One 1 kHz tick as the node runs it: state, command, risk in, filter tick, snapshot out."""
    t = k * 1e-3
    q = np.asarray(q, dtype=np.float64)
    filt.on_state(t, JOINTS, q)
    filt.on_command(t, JOINTS, [0.0, 0.0, 0.0])
    res = feed.apply(t)
    _, st = filt.tick(t)
    feed.submit(t, k, (q, np.zeros(3)))
    if step is not None:
        step()
    return res, st


def test_fresh_risk_is_applied_at_its_snapshot_time_and_ends_the_backup():
    filt, critic, worker, feed = make()
    res, st = tick(filt, feed, 0, [0.0, 0, 0], step=worker.step)  # snapshot at t=0 evaluated after the tick
    assert res is None and st["mode"] == "ok" and len(critic.calls) == 1
    res, st = tick(filt, feed, 1, [0.0, 0, 0])
    assert res.t == 0.0 and res.risk == 0.1 and st["mode"] == "ok" and st["risk"] == 0.1
    critic.risk = 0.9  # the next snapshot (k = 10) is risky: backup from the tick after its evaluation
    for k in range(2, 30):
        res, st = tick(filt, feed, k, [0.0, 0, 0], step=worker.step)
        assert st["mode"] == ("ok" if k <= 10 else "backup"), k
    assert st["reason"] == "risk" and st["risk"] == 0.9
    critic.risk = 0.1
    for k in range(30, 60):
        res, st = tick(filt, feed, k, [0.0, 0, 0], step=worker.step)
    assert st["mode"] == "ok" and st["risk"] == 0.1
    assert [len(critic.calls), worker.stats["evaluated"]] == [6, 6]  # every 10th tick only
    # the critic scored the filter's own output and command velocity, in the critic's joint order
    q, qd, q_cmd, v = critic.calls[-1]
    np.testing.assert_array_equal(q_cmd, filt.output)
    assert v.shape == (3,) and np.isfinite(v).all()


def test_a_stalled_critic_fails_closed_then_recovers():
    filt, critic, worker, feed = make()
    for k in range(12):
        _, st = tick(filt, feed, k, [0.0, 0, 0], step=worker.step)
    assert st["mode"] == "ok" and worker.stats["evaluated"] == 2  # snapshots at t = 0 and 10 ms
    modes = {}
    for k in range(12, 60):  # the critic stalls: nothing is evaluated any more
        _, st = tick(filt, feed, k, [0.0, 0, 0])
        modes[k] = (st["mode"], st["reason"])
    # the newest risk is from the snapshot at 10 ms: fresh up to 10 + 30 ms, maximal (backup) after
    assert modes[39][0] == "ok" and modes[42] == ("backup", "risk_stale") and modes[59] == modes[42]
    assert worker.stats["replaced"] > 0  # the newest snapshot replaced the ones never started on
    res, st = tick(filt, feed, 60, [0.0, 0, 0], step=worker.step)
    res, st = tick(filt, feed, 61, [0.0, 0, 0])
    assert res.t == 0.06 and st["mode"] == "ok"  # fresh low risk: the backup ends (dwell 0)


def test_no_first_risk_within_the_bound_is_maximal():
    filt, _, worker, feed = make()
    states = [dict(tick(filt, feed, k, [0.0, 0, 0])[1]) for k in range(40)]  # the critic never answers
    assert all(s["mode"] == "ok" for s in states[:30]), [s["reason"] for s in states[:30]]
    assert all((s["mode"], s["reason"]) == ("backup", "risk_stale") for s in states[32:])
    assert worker.waiting_since() == 0.0


def test_a_failing_critic_is_maximal_risk_and_reported():
    filt, critic, worker, feed = make()
    critic.fail = True
    tick(filt, feed, 0, [0.0, 0, 0], step=worker.step)
    res, st = tick(filt, feed, 1, [0.0, 0, 0])
    assert "onnxruntime exploded" in res.error and np.isnan(res.risk)
    assert st["mode"] == "backup" and st["risk"] == 1.0 and filt.counters["risk_non_finite"] == 1
    assert worker.stats["errors"] == 1


def test_snapshots_are_copies_and_the_newest_wins():
    critic = FakeCritic()
    worker = CriticWorker(critic)
    q = np.zeros(3)
    worker.submit(0.0, q, q, q, q)
    q[0] = 0.5  # the tick changes its arrays after submitting: the snapshot keeps its values
    worker.submit(0.001, q, q, q, q)
    q[0] = 0.7
    assert worker.step() and not worker.step()  # one evaluation: the newest snapshot
    assert critic.calls[0][0][0] == 0.5 and worker.poll().t == 0.001 and worker.poll() is None
    assert worker.stats == {**worker.stats, "submitted": 2, "replaced": 1, "evaluated": 1}


def test_the_worker_thread_evaluates_off_the_caller_and_stops():
    critic = FakeCritic()
    critic.delay_s = 0.002
    seen = []
    orig = critic.__call__

    class Spy:
        non_finite = 0

        def __call__(self, *a):
            seen.append(threading.current_thread().name)
            return orig(*a)

    worker = CriticWorker(Spy(), name="critic-test").start()
    try:
        assert worker.alive
        critic.risk = 0.9
        worker.submit(1.0, [0.1, 0, 0], np.zeros(3), np.zeros(3), np.zeros(3))
        deadline = time.monotonic() + 5.0
        res = None
        while res is None and time.monotonic() < deadline:
            res = worker.poll()
            time.sleep(0.001)
        assert res is not None and res.t == 1.0 and res.risk == 0.9 and res.error is None
        assert seen == ["critic-test"]
    finally:
        worker.stop()
    assert not worker.alive


def test_risk_feed_needs_a_staleness_bound():
    filt = SafetyFilter(SafetyConfig(joint_names=JOINTS, position_lower=[-1.0] * 3, position_upper=[1.0] * 3,
                                     velocity_limit=1.0))
    with pytest.raises(ValueError, match="risk_timeout_s"):
        RiskFeed(CriticWorker(FakeCritic()), filt, EVERY, [0, 1, 2])
