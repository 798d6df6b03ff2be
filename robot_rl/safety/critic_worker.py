"""The safety critic on its own thread, so the 1 kHz safety tick never waits for it.

The critic's features run four MuJoCo collision passes and an onnxruntime call (0.4-0.7 ms on
an iiwa): evaluated inside the tick, the ticks that carry it miss the 200 us tick-work target.
:class:`CriticWorker` moves that work to a daemon thread; :class:`robot_rl.safety.SafetyFilter`
stays single-threaded and pure. The contract with the tick (all three calls are cheap):

``submit(t, q, qd, q_cmd, v)``
    the tick copies the critic's inputs (the measured state, the filter's last output and its
    command velocity) with their time ``t`` under a lock; the newest snapshot wins (one the
    worker had not started on is replaced, never queued), and the worker is woken.
``poll()``
    the newest result not yet returned, a :class:`CriticResult` ``(t, risk, non_finite,
    error)`` whose ``t`` is the *snapshot's* time, or None. The tick hands it to
    ``filt.set_risk(result.t, risk)`` (``nan`` when ``error`` is set: maximal risk).
``waiting_since(t)``
    for the fail-closed check before the first result: the time of the first snapshot when no
    result has arrived yet, else None.

:class:`RiskFeed` is that tick side in one call, as the safety node and the benchmark run it.

Fail closed: the node sets ``SafetyConfig.risk_timeout_s`` to a staleness bound (default three
critic periods); the filter measures the age of a risk from its snapshot time, so a critic that
stalls, dies or falls behind hands control to the backup behaviour (reason ``risk_stale``), and
:class:`RiskFeed` does the same when no first result arrives within the bound
(:meth:`CriticWorker.waiting_since`).

The GIL: onnxruntime's ``run`` releases it; MuJoCo's ``mj_collision`` / ``mj_kinematics`` hold it
(short C calls, 5-20 us each, measured with a Python thread beside them), and the features' numpy
glue (about 60% of the critic's ~200 us) is Python. The tick submits its snapshot *after*
``filt.tick``, so the critic runs in the idle rest of the 1 ms period; if it overruns into the
next tick, the tick waits for the GIL at most ``sys.getswitchinterval()`` plus one MuJoCo call.
The safety node lowers the switch interval from 5 ms to 100 us (``switch_interval_s``).
``benchmarks/safety_tick.py --critic ARTIFACT`` measures the tick work, wall time and period with
the critic in the tick (the old node) and on this thread.
"""

from __future__ import annotations

import threading
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["CriticResult", "CriticWorker", "RiskFeed"]


class CriticResult(NamedTuple):
    t: float  # the time of the snapshot the risk was computed on
    risk: float  # in [0, 1]; nan when the critic raised (error)
    non_finite: bool  # the critic met a non-finite feature or output (it returned 1: maximal)
    error: str | None  # the critic raised: its message


class CriticWorker:
    """Evaluates ``critic(q, qd, q_cmd, v) -> risk`` on snapshots, on a thread (module docstring).

    ``critic`` may count non-finite inputs/outputs in an attribute ``non_finite`` (as
    :class:`robot_rl.safety.critic_artifact.ArtifactCritic` does); an increase is reported in the
    result. :meth:`step` evaluates the pending snapshot on the caller's thread (the thread's loop
    body; tests call it directly). ``stats``: evaluations, errors and the worker's busy time.
    """

    def __init__(self, critic: Callable[..., float], name: str = "safety-critic"):
        self.critic = critic
        self.name = name
        self._cond = threading.Condition()
        self._snap: tuple | None = None
        self._result: CriticResult | None = None
        self._first_submit: float | None = None
        self._have_result = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self.stats = {"submitted": 0, "evaluated": 0, "replaced": 0, "errors": 0, "busy_s": 0.0}

    # ---- tick side --------------------------------------------------------------------------
    def submit(self, t: float, q, qd, q_cmd, v) -> None:
        """Hand the worker a snapshot (copied); the newest one wins."""
        snap = (float(t), np.array(q, dtype=np.float64), np.array(qd, dtype=np.float64),
                np.array(q_cmd, dtype=np.float64), np.array(v, dtype=np.float64))
        with self._cond:
            if self._snap is not None:
                self.stats["replaced"] += 1
            self._snap = snap
            self.stats["submitted"] += 1
            if self._first_submit is None:
                self._first_submit = snap[0]
            self._cond.notify()

    def poll(self) -> CriticResult | None:
        """The newest result not returned before, or None."""
        if self._result is None:  # the common case without taking the lock
            return None
        with self._cond:
            r, self._result = self._result, None
            return r

    def waiting_since(self) -> float | None:
        """The first snapshot's time while no result has arrived yet; else None."""
        return None if self._have_result else self._first_submit

    # ---- worker side ------------------------------------------------------------------------
    def step(self, timeout: float | None = 0.0) -> bool:
        """Evaluate the pending snapshot (waiting up to ``timeout`` s for one; None: forever).
        Returns whether one was evaluated."""
        import time

        with self._cond:
            if self._snap is None and timeout != 0.0:
                self._cond.wait_for(lambda: self._snap is not None or self._stop, timeout)
            snap, self._snap = self._snap, None
        if snap is None:
            return False
        t, q, qd, q_cmd, v = snap
        c0 = time.perf_counter()
        bad = getattr(self.critic, "non_finite", 0)
        try:
            risk, err = float(self.critic(q, qd, q_cmd, v)), None
        except Exception as e:  # noqa: BLE001 - a failing critic is maximal risk, reported to the tick
            risk, err = float("nan"), f"{type(e).__name__}: {e}"
        res = CriticResult(t, risk, getattr(self.critic, "non_finite", 0) != bad, err)
        with self._cond:
            self._result = res
            self._have_result = True
            self.stats["evaluated"] += 1
            self.stats["errors"] += err is not None
            self.stats["busy_s"] += time.perf_counter() - c0
        return True

    def _loop(self) -> None:
        while not self._stop:
            self.step(timeout=None)

    def start(self) -> "CriticWorker":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


class RiskFeed:
    """The tick side of the critic thread (the safety node's ``on_tick``), two calls per tick:

    ``apply(t)`` before ``filt.tick(t)``: (1) applies the worker's newest result with
    ``filt.set_risk(result.t, risk)`` (``nan``, i.e. maximal, when the critic raised) and returns
    it (else None); (2) if no result ever arrived and the first snapshot is older than
    ``filt.config.risk_timeout_s``, sets a maximal risk at that snapshot's time, so the filter
    reports the risk stale (backup) until a result arrives.

    ``submit(t, k, qqd)`` after ``filt.tick(t)``: every ``every`` ticks, when ``qqd = (q, qd)``
    (the measured state in the filter's joint order; None before a valid one) is given, hands the
    worker ``(t, q[cj], qd[cj], filt.output[cj], filt.command_velocity[cj])``: the command this
    tick just sent. After the tick, so the critic runs in the idle rest of the period instead of
    contending with this tick for the GIL. ``cj``: the critic's joints as indices into the
    filter's joints. The filter must have ``risk_timeout_s`` (the staleness bound).
    """

    def __init__(self, worker: CriticWorker, filt, every: int, cj):
        if filt.config.risk_timeout_s is None:
            raise ValueError("RiskFeed: the filter needs SafetyConfig.risk_timeout_s (the critic's staleness bound)")
        self.worker, self.filt, self.every = worker, filt, max(1, int(every))
        self.cj = np.asarray(cj, dtype=np.intp)
        self.first_late = False

    def apply(self, t: float) -> CriticResult | None:
        filt, w = self.filt, self.worker
        res = w.poll()
        if res is not None:
            filt.set_risk(res.t, float("nan") if res.error is not None else res.risk)
        elif not self.first_late:
            since = w.waiting_since()
            if since is not None and t - since > filt.config.risk_timeout_s:
                self.first_late = True  # no first risk within the bound: maximal, and stale from now on
                filt.set_risk(since, 1.0)
        return res

    def submit(self, t: float, k: int, qqd=None) -> None:
        if qqd is not None and k % self.every == 0:
            filt, cj = self.filt, self.cj
            self.worker.submit(t, qqd[0][cj], qqd[1][cj], filt.output[cj], filt.command_velocity[cj])
