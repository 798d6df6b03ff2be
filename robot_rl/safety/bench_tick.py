"""Micro-benchmark of the safety filter's per-call cost (not a test).

    python -m robot_rl.safety.bench_tick [--ticks 20000] [--model models/iiwa14/iiwa14.xml | --chain chain.json]

Simulates a 1 kHz safety loop on a 7-joint arm: a joint state every tick, a policy command every
20 ticks (50 Hz), a risk value every 20 ticks, then ``tick``. Prints microseconds per call (p50,
p99, max) for ``tick`` in each scenario, and for ``on_state`` / ``on_command``. The target for
``tick`` is < 50 us on the development CPU.

With ``--model`` (needs MuJoCo, imported only then) or ``--chain`` the workspace box is active,
which costs time in ``on_command`` (FK along the commanded path), never in ``tick``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from robot_rl.safety import SafetyConfig, SafetyFilter

IIWA_JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
IIWA_LIMIT = np.array([2.96706, 2.0944, 2.96706, 2.0944, 2.96706, 2.0944, 3.05433])
HOME = np.array([0.0, 0.4, 0.0, -1.2, 0.0, 0.9, 0.0])


def _chain(args) -> dict | None:
    if args.chain:
        with open(args.chain) as f:
            return json.load(f)
    if args.model:
        import mujoco  # only for extracting the chain from an MJCF file

        from robot_rl.kinematics import chain_from_mjmodel

        return chain_from_mjmodel(mujoco.MjModel.from_xml_path(args.model), ["ee"])
    return None


def make_filter(chain: dict | None, **overrides) -> SafetyFilter:
    kw = dict(
        joint_names=IIWA_JOINTS,
        position_lower=-IIWA_LIMIT,
        position_upper=IIWA_LIMIT,
        position_margin=0.05,
        velocity_limit=1.5,
        max_command_rate=1.0,
        effort_limit=300.0,
        home=HOME,
        backup="retreat",
    )
    if chain is not None:
        kw.update(chain=chain, workspace_lower=[-1.0, -1.0, 0.05], workspace_upper=[1.0, 1.0, 1.4])
    kw.update(overrides)
    return SafetyFilter(SafetyConfig(**kw))


def _stats(ns: list[int]) -> str:
    a = np.asarray(ns, dtype=np.float64) / 1e3
    return f"p50 {np.percentile(a, 50):7.2f}  p99 {np.percentile(a, 99):7.2f}  max {a.max():8.2f}  (n={a.size})"


def run(ticks: int, chain: dict | None) -> dict[str, list[int]]:
    f = make_filter(chain)
    rng = np.random.default_rng(0)
    names = list(reversed(IIWA_JOINTS))  # driver order differs from the config: exercise remapping
    q = HOME.copy()
    out = None
    times: dict[str, list[int]] = {k: [] for k in ("tick ok", "tick hold", "tick backup", "on_state", "on_command")}
    clock = time.perf_counter_ns
    for i in range(ticks):
        t = i * 1e-3
        if out is not None:
            q += 0.2 * (out - q)
        qd = rng.normal(0.0, 0.01, 7)
        t0 = clock()
        f.on_state(t, names, q[::-1], qd[::-1], np.zeros(7))
        times["on_state"].append(clock() - t0)
        phase = (i // 2000) % 3  # 2 s of normal commands, 2 s without (hold), 2 s of high risk
        if i % 20 == 0:
            f.set_risk(t, 0.95 if phase == 2 else 0.1)
            if phase != 1:
                cmd = HOME + 0.4 * np.sin(t + np.arange(7))
                t0 = clock()
                f.on_command(t, IIWA_JOINTS, cmd)
                times["on_command"].append(clock() - t0)
        t0 = clock()
        out, st = f.tick(t)
        dt = clock() - t0
        key = {"ok": "tick ok", "hold": "tick hold", "brake": "tick hold", "backup": "tick backup"}.get(st["mode"])
        if key:
            times[key].append(dt)
    return times


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ticks", type=int, default=20000)
    p.add_argument("--model", default=None, help="MJCF file (needs mujoco) to enable the workspace box")
    p.add_argument("--chain", default=None, help="chain JSON (robot_rl.kinematics.chain_from_mjmodel)")
    args = p.parse_args(argv)
    chain = _chain(args)
    run(2000, chain)  # warm-up
    times = run(args.ticks, chain)
    print(f"safety filter, 7 joints, workspace box {'on' if chain else 'off'}; microseconds per call")
    for k, v in times.items():
        if v:
            print(f"  {k:12s} {_stats(v)}")
    all_ticks = times["tick ok"] + times["tick hold"] + times["tick backup"]
    print(f"  {'tick (all)':12s} {_stats(all_ticks)}   target: < 50 us")


if __name__ == "__main__":
    main()
