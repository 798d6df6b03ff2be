"""Time per safety tick with the CBF-QP beside the tick without it, and the QP solvers compared.

    python benchmarks/safety_tick.py [--robots iiwa14 panda] [--seconds 10] [--rounds 2] [--compare-rev REV]

For each robot, the same 1 kHz loop runs the safety filter as the safety node builds it (limits,
rate limits, position margin 0.02 rad, velocity limit 2 rad/s) without and with the CBF stage (the
robot's default scene): a joint state every tick from a lagging arm (a first-order servo, time
constant 50 ms, so the tracking rows have work), a command every 20 ticks (50 Hz), then ``tick``.
Two scenarios: ``nominal`` (smooth targets around the home pose, the CBF rarely binds) and
``rogue`` (`robot_rl.safety.rogue.RogueCommander`, goals in the table, the obstacles, the other
links and past the joint limits: the CBF binds often). The runs alternate ``rounds`` times in one
process. Printed: microseconds per ``tick`` (p50, p99, max) as wall time and as the thread's CPU
time (the tick's work, without the time the OS gave other processes), the ratio with / without,
the share of ticks where the QP changed the command, and the share where the CBF's reach bound
proved the nominal safe without building a row. Target: p99 tick work <= 200 us.

With ``--compare-rev REV`` (a git revision, e.g. the commit before a change to the CBF) the CBF
module of that revision (``robot_rl/safety/cbf.py``, with today's collision model) runs as a third
variant in the same rounds, interleaved: its tick times, and ours / its as a ratio.

With ``--critic ARTIFACT`` the artifact's safety critic runs every 10th tick (100 Hz) of the nominal
loop with the CBF: first in simulated time, evaluated inside the timed tick (the reference: the
safety node before the critic thread) and on the node's critic thread
(:class:`robot_rl.safety.critic_worker.RiskFeed` in the timed tick); then paced in real time at
1 kHz (sleep to each deadline) without a critic, with it in the tick and on the thread (switch
interval 5 ms and 100 us): tick work (cpu), tick wall p99, period error p99, periods over 2 ms,
ticks with a stale risk (backup) and the risk's age when applied.

Then the QPs the CBF solved in the rogue runs are solved again by DAQP (the filter's solver),
OSQP and proxsuite (dense), each on the same problems: solve time (p50, p99) and the largest
difference from DAQP's solution.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_filter(robot_name: str, cbf: bool, risk_timeout_s: float | None = None):
    from robot_rl.kinematics import kinematic_model_xml
    from robot_rl.robots import get_robot
    from robot_rl.safety import SafetyConfig, SafetyFilter
    from robot_rl.safety.cbf import CBFConfig
    from robot_rl.scenes import scene_for_robot

    r = get_robot(robot_name)
    xml = kinematic_model_xml(r)
    cfg = SafetyConfig.from_model(xml, list(r.joint_names), velocity_limit=2.0, position_margin=0.02,
                                  risk_timeout_s=risk_timeout_s,
                                  cbf=CBFConfig(scene=scene_for_robot(r), check_pose=r.default_pose) if cbf else None)
    return SafetyFilter(cfg), xml, r


def run(robot_name: str, cbf: bool, scenario: str, seconds: float, seed: int = 0, record=None, critic=None,
        critic_every: int = 10, threaded: bool = False) -> dict:
    """The loop of the module docstring in simulated time (ticks back to back). ``critic``: evaluated
    every ``critic_every`` ticks inside the timed tick, or with ``threaded`` on the safety node's
    critic thread (:class:`robot_rl.safety.critic_worker.RiskFeed` in the timed tick)."""
    from robot_rl.safety.critic_worker import CriticWorker, RiskFeed
    from robot_rl.safety.rogue import RogueCommander

    f, xml, r = make_filter(robot_name, cbf, risk_timeout_s=0.03 if threaded else None)
    worker = CriticWorker(critic).start() if threaded else None
    feed = RiskFeed(worker, f, critic_every, np.arange(len(r.joint_names))) if threaded else None
    if record is not None and cbf:
        solve = f.cbf.solve_qp

        def recording(*args):
            record.append([np.array(a, copy=True) for a in args])
            return solve(*args)

        f.cbf.solve_qp = recording
    names = list(r.joint_names)
    home = np.array(r.default_pose)
    rogue = RogueCommander(xml, names, f.cbf.scene if cbf else _scene(r), home, strategy="mixed", seed=seed,
                           samples=2000) if scenario == "rogue" else None
    q = home.copy()
    q_prev = q.copy()
    out = None
    ns: list[int] = []
    cpu: list[int] = []
    proved = 0
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    alpha = 1.0 - np.exp(-1e-3 / 0.05)  # first-order servo, 50 ms
    for k in range(int(seconds * 1000)):
        t = k * 1e-3
        if out is not None:
            q += alpha * (out - q)
        f.on_state(t, names, q)
        if k % 20 == 0:
            cmd = rogue(t) if rogue is not None else home + 0.3 * np.sin(0.5 * t + np.arange(len(names)))
            f.on_command(t, names, cmd)
        c0, t0 = cpu_clock(), clock()
        if feed is not None:  # as the safety node: the critic on its thread
            feed.apply(t)
        elif critic is not None and k % critic_every == 0:  # as the safety node did: the critic in the tick
            f.set_risk(t, critic(q, (q - q_prev) / 1e-3, f.output, f.command_velocity))
        dq = (q - q_prev) / 1e-3
        q_prev = q.copy()
        out, st = f.tick(t)
        if feed is not None:
            feed.submit(t, k, (q, dq))
        ns.append(clock() - t0)
        cpu.append(cpu_clock() - c0)
        if cbf and st["mode"] == "ok" and f.cbf.last["rows"] == 0 and not f.cbf.last["intervened"]:
            proved += 1  # the reach bound proved the nominal safe: no rows built
        if critic is None and st["mode"] != "ok" and st["reason"] not in ("awaiting_command", "cbf_infeasible"):
            raise RuntimeError(f"unexpected safety mode {st['mode']} ({st['reason']}): {st['last_error']}")
    if worker is not None:
        worker.stop()
    return {"ns": ns, "cpu": cpu, "cbf_ticks": f.counters["cbf_active_ticks"], "ticks": len(ns), "proved": proved}


class _Reference:
    """Runs the safety filter with the CBF module of git revision ``rev`` while in a ``with`` block."""

    def __init__(self, rev: str):
        import importlib.util
        import pathlib
        import subprocess
        import sys

        root = pathlib.Path(__file__).resolve().parents[1]
        src = subprocess.run(["git", "show", f"{rev}:robot_rl/safety/cbf.py"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
        name = "robot_rl.safety._cbf_reference"
        self.mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
        self.mod.__package__ = "robot_rl.safety"
        sys.modules[name] = self.mod
        exec(compile(src, f"{rev}:robot_rl/safety/cbf.py", "exec"), self.mod.__dict__)

    def __enter__(self):
        import robot_rl.safety.cbf as cbf

        self.saved = cbf.CBF, cbf.CBFError
        cbf.CBF, cbf.CBFError = self.mod.CBF, self.mod.CBFError

    def __exit__(self, *exc):
        import robot_rl.safety.cbf as cbf

        cbf.CBF, cbf.CBFError = self.saved


def _scene(r):
    from robot_rl.scenes import scene_for_robot

    return scene_for_robot(r)


def _pct(ns) -> tuple[float, float, float]:
    a = np.asarray(ns, dtype=np.float64) / 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def paced_run(robot_name: str, seconds: float, critic=None, where: str = "thread", switch_s: float = 0.005,
              critic_every: int = 10, stale_s: float = 0.03) -> dict:
    """The nominal loop with the CBF, paced in real time at 1 kHz (sleep to each deadline), the
    critic evaluated as ``where`` says: "tick" (inside the tick, the old node) or "thread" (the
    safety node's :class:`robot_rl.safety.critic_worker.CriticWorker`: submit / poll / set_risk in
    the tick, the critic on its own thread, ``sys.setswitchinterval(switch_s)``). Returns the tick
    work (wall and thread cpu ns), the periods (ns), the ticks whose risk was stale and the
    critic's latency (s, from snapshot to the tick that applied it)."""
    import sys

    from robot_rl.safety.critic_worker import CriticWorker, RiskFeed

    f, xml, r = make_filter(robot_name, True, risk_timeout_s=stale_s if critic is not None else None)
    names = list(r.joint_names)
    home = np.array(r.default_pose)
    q, q_prev, out = home.copy(), home.copy(), None
    alpha = 1.0 - np.exp(-1e-3 / 0.05)
    worker = CriticWorker(critic).start() if critic is not None and where == "thread" else None
    feed = RiskFeed(worker, f, critic_every, np.arange(len(names))) if worker is not None else None
    saved = sys.getswitchinterval()
    sys.setswitchinterval(switch_s)
    wall, cpu, period, lag = [], [], [], []
    stale = 0
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    t0 = time.monotonic()
    last = None
    try:
        for k in range(int(seconds * 1000)):
            deadline = t0 + k * 1e-3
            dt = deadline - time.monotonic()
            if dt > 0:
                time.sleep(dt)
            wake = clock()
            if last is not None:
                period.append(wake - last)
            last = wake
            t = time.monotonic() - t0
            if out is not None:
                q += alpha * (out - q)
            f.on_state(t, names, q)
            if k % 20 == 0:
                f.on_command(t, names, home + 0.3 * np.sin(0.5 * t + np.arange(len(names))))
            dq = (q - q_prev) / 1e-3
            q_prev = q.copy()
            a, c0 = clock(), cpu_clock()  # the tick's work: critic (or its feed) + filter tick
            if worker is not None:  # as the safety node's on_tick
                res = feed.apply(t)
                if res is not None:
                    lag.append(t - res.t)
            elif critic is not None and k % critic_every == 0:
                f.set_risk(t, critic(q, dq, f.output, f.command_velocity))
            out, st = f.tick(t)
            if worker is not None:
                feed.submit(t, k, (q, dq))
            stale += st["reason"] == "risk_stale"
            wall.append(clock() - a)
            cpu.append(cpu_clock() - c0)
    finally:
        sys.setswitchinterval(saved)
        if worker is not None:
            worker.stop()
    return {"wall": wall, "cpu": cpu, "period": period, "stale": stale, "lag": lag,
            "evaluated": worker.stats["evaluated"] if worker else None}


def critic_table(artifact: str, seconds: float, rounds: int) -> None:
    """The artifact's critic at 100 Hz with the CBF: the reference (evaluated inside the tick, as the
    safety node did before the critic thread), then the real-time 1 kHz loop without a critic, with
    it in the tick, and with it on the node's critic thread (switch interval 5 ms and 100 us)."""
    import json
    from pathlib import Path

    from robot_rl.safety.critic_artifact import load_critic

    spec = json.loads((Path(artifact) / "spec.json").read_text())
    critic = load_critic(artifact, spec)
    robot = {"iiwa14": "iiwa14", "panda": "panda"}.get(spec["robot"]["name"], spec["robot"]["name"])
    data = {"CBF": [], "CBF + critic": [], "thread": []}
    for rnd in range(rounds):
        data["CBF"] += run(robot, True, "nominal", seconds, seed=rnd)["cpu"]
        data["CBF + critic"] += run(robot, True, "nominal", seconds, seed=rnd, critic=critic)["cpu"]
        data["thread"] += run(robot, True, "nominal", seconds, seed=rnd, critic=critic, threaded=True)["cpu"]
    every10 = np.asarray(data["CBF + critic"])[::10]
    a, b, c, d = _pct(data["CBF"]), _pct(data["CBF + critic"]), _pct(every10), _pct(data["thread"])
    print(f"\nthe artifact's critic every 10th tick: in the tick (reference) and on the critic thread ({robot}, nominal, simulated time, "
          "tick work = thread cpu us, p50 / p99 / max)")
    print(f"  CBF                 {a[0]:7.1f} / {a[1]:6.1f} / {a[2]:7.1f}")
    print(f"  CBF + critic        {b[0]:7.1f} / {b[1]:6.1f} / {b[2]:7.1f}   ratio p99 {b[1] / a[1]:.1f}")
    print(f"  ticks with critic   {c[0]:7.1f} / {c[1]:6.1f} / {c[2]:7.1f}")
    print(f"  CBF + critic thread {d[0]:7.1f} / {d[1]:6.1f} / {d[2]:7.1f}   ratio p99 {d[1] / a[1]:.1f}, "
          f"vs in the tick {d[1] / b[1]:.2f} (the thread busy all along: a snapshot every 10 ticks, back to back)")

    variants = {"CBF, no critic": dict(critic=None), "critic in the tick (old)": dict(critic=critic, where="tick"),
                "critic thread, switch 5 ms": dict(critic=critic, switch_s=0.005),
                "critic thread, switch 100 us": dict(critic=critic, switch_s=1e-4)}
    res = {v: {"wall": [], "cpu": [], "period": [], "stale": 0, "lag": [], "evaluated": 0} for v in variants}
    for _ in range(rounds):
        for v, kw in variants.items():  # interleaved, so load from other processes hits all alike
            r = paced_run(robot, seconds, **kw)
            for key in ("wall", "cpu", "period", "lag"):
                res[v][key] += r[key]
            res[v]["stale"] += r["stale"]
            res[v]["evaluated"] += r["evaluated"] or 0
    print(f"\nthe critic as the safety node runs it: real-time 1 kHz loop ({robot}, nominal, CBF on; us, "
          "p50 / p99 / max; period error = |period - 1 ms|)")
    print(f"  {'variant':30s} {'tick work (cpu)':>24s} {'tick wall p99':>13s} {'period err p99':>14s} "
          f"{'> 2 ms':>6s} {'stale':>5s} {'risk age p99 ms':>15s}")
    ref = None
    for v, d in res.items():
        w, wall = _pct(d["cpu"]), _pct(d["wall"])
        per = np.asarray(d["period"], dtype=np.float64)
        err = float(np.percentile(np.abs(per - 1e6), 99)) / 1e3
        late = int((per > 2e6).sum())
        age = f"{1e3 * float(np.percentile(d['lag'], 99)):15.1f}" if d["lag"] else f"{'-':>15s}"
        ref = w[1] if v.startswith("critic in") else ref
        ratio = f"   p99 work / in-tick {w[1] / ref:.2f}" if ref and v.startswith("critic thread") else ""
        print(f"  {v:30s} {w[0]:7.1f} / {w[1]:6.1f} / {w[2]:7.1f} {wall[1]:13.1f} {err:14.1f} {late:6d} "
              f"{d['stale']:5d} {age}{ratio}")
    print("  target: p99 tick work with critic + QP <= 200 us, 1 kHz period error p99 <= 200 us; "
          "stale: ticks in backup because the risk was older than 30 ms (must be 0)")


def solver_table(problems: list) -> None:
    import daqp
    import osqp
    import proxsuite
    import scipy.sparse as sp

    def s_daqp(H, f, A, bu, bl, sense):
        return np.asarray(daqp.solve(H, f, A, bu, bl, sense)[0])

    def s_osqp(H, f, A, bu, bl, sense):
        n = len(f)
        C = sp.csc_matrix(np.vstack([np.eye(n), A]))
        m = osqp.OSQP()
        m.setup(P=sp.csc_matrix(H), q=f, A=C, l=bl, u=np.minimum(bu, 1e20), verbose=False, eps_abs=1e-8,
                eps_rel=1e-8, polishing=True)
        return m.solve().x

    def s_prox(H, f, A, bu, bl, sense):
        n = len(f)
        res = proxsuite.proxqp.dense.solve(H=H, g=f, A=None, b=None, C=A, l=bl[n:], u=np.minimum(bu[n:], 1e20),
                                           l_box=bl[:n], u_box=bu[:n], eps_abs=1e-9)
        return res.x

    ref = [s_daqp(*p) for p in problems]
    print(f"\nQP solvers on the {len(problems)} QPs of the rogue runs "
          f"({problems[0][0].shape[0]} variables, {np.mean([len(p[2]) for p in problems]):.0f} rows on average)")
    print(f"  {'solver':10s} {'p50 us':>8s} {'p99 us':>8s} {'vs DAQP p50':>12s} {'max |x - x_daqp|':>17s}")
    base = None
    for name, fn in (("DAQP", s_daqp), ("OSQP", s_osqp), ("proxsuite", s_prox)):
        ns, err = [], 0.0
        for p, x0 in zip(problems, ref):
            t0 = time.perf_counter_ns()
            x = fn(*p)
            ns.append(time.perf_counter_ns() - t0)
            err = max(err, float(np.abs(np.asarray(x) - x0).max()))
        p50, p99, _ = _pct(ns)
        base = base or p50
        print(f"  {name:10s} {p50:8.1f} {p99:8.1f} {p50 / base:11.1f}x {err:17.2e}")


def main(argv=None) -> None:
    import contextlib

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--robots", nargs="+", default=["iiwa14", "panda"])
    ap.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per run (1000 ticks each)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compare-rev", default=None, help="also run the CBF of this git revision (a before/after table)")
    ap.add_argument("--critic", default=None, metavar="ARTIFACT",
                    help="also time the nominal loop with this artifact's safety critic at 100 Hz: in the tick "
                         "(reference) and on the safety node's critic thread, in a real-time 1 kHz loop")
    args = ap.parse_args(argv)
    ref = _Reference(args.compare_rev) if args.compare_rev else None
    variants = ("off", "on") + (("rev",) if ref else ())
    problems: list = []
    print("safety tick, microseconds (p50 / p99 / max); the same loop without and with the CBF-QP")
    print(f"  {'robot':8s} {'scenario':8s} {'clock':5s} {'without CBF':>24s} {'with CBF':>24s} {'ratio p50/p99':>14s} "
          f"{'QP active':>9s} {'no rows':>8s}")
    table: list[str] = []
    for robot in args.robots:
        for scenario in ("nominal", "rogue"):
            runs = {v: [] for v in variants}
            cpus = {v: [] for v in variants}
            active = ticks = proved = 0
            for rnd in range(args.rounds):
                for v in variants:
                    first = v == "on" and scenario == "rogue" and rnd == 0
                    rec = problems if (first and len(problems) < 3000) else None
                    with ref if v == "rev" else contextlib.nullcontext():
                        r = run(robot, v != "off", scenario, args.seconds, seed=rnd, record=rec)
                    runs[v] += r["ns"]
                    cpus[v] += r["cpu"]
                    if v == "on":
                        active += r["cbf_ticks"]
                        ticks += r["ticks"]
                        proved += r["proved"]
            for clock, data in (("wall", runs), ("cpu", cpus)):
                a, b = _pct(data["off"]), _pct(data["on"])
                print(f"  {robot:8s} {scenario:8s} {clock:5s} {a[0]:7.1f} / {a[1]:6.1f} / {a[2]:7.1f} {b[0]:7.1f} / "
                      f"{b[1]:6.1f} / {b[2]:7.1f} {b[0] / a[0]:6.1f} / {b[1] / a[1]:5.1f} {100 * active / ticks:8.1f}% "
                      f"{100 * proved / ticks:7.1f}%")
                if ref:
                    c = _pct(data["rev"])
                    table.append(f"  {robot:8s} {scenario:8s} {clock:5s} {c[0]:7.1f} / {c[1]:6.1f} / {c[2]:7.1f} "
                                 f"{b[0]:7.1f} / {b[1]:6.1f} / {b[2]:7.1f} {b[0] / c[0]:6.2f} / {b[1] / c[1]:5.2f}")
    print("  target: p99 of the tick work (cpu) with the CBF-QP <= 200 us")
    if ref:
        print(f"\nthe CBF at {args.compare_rev} beside ours, same loop, interleaved (microseconds, p50 / p99 / max)")
        print(f"  {'robot':8s} {'scenario':8s} {'clock':5s} {'CBF at ' + args.compare_rev:>24s} {'ours':>24s} "
              f"{'ours/rev p50/p99':>17s}")
        print("\n".join(table))
    if args.critic:
        critic_table(args.critic, args.seconds, args.rounds)
    if problems:
        solver_table(problems[:3000])


if __name__ == "__main__":
    main()
