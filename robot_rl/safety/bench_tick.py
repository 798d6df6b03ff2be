"""Micro-benchmark of the safety filter's per-call cost (not a test).

    python -m robot_rl.safety.bench_tick [--ticks 20000] [--model models/iiwa14/iiwa14.xml] [--no-workspace]

Simulates a 1 kHz safety loop on the arm of ``--model`` (an MJCF file; default the default task's robot; its
hinge and slide joints, their ranges as position limits, the home pose of the robot registered
with that model): a joint state every tick, a policy command every 20 ticks (50 Hz), a risk value
every 20 ticks, then ``tick``. Prints microseconds per call (p50, p99, max) for ``tick`` in each
scenario, and for ``on_state`` / ``on_command``. The target for ``tick`` is < 50 us on the
development CPU.

The workspace box (``ee`` site, 0.5 m around its home position; ``--no-workspace`` turns it off)
costs time in ``on_command`` (MuJoCo FK along the commanded path), never in ``tick``. The last
lines time ``on_command`` alone for a typical command (one joint 0.05 rad away) and for a jump
across a whole joint range (the longest path the box check evaluates).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from robot_rl.safety import SafetyConfig, SafetyFilter


def default_model_path() -> Path:
    """The model of the default task's robot (`robot_rl.config.EnvConfig().task`)."""
    from robot_rl.config import EnvConfig
    from robot_rl.sim import make_task

    return make_task(EnvConfig().task).robot.model_path


def model_xml(path: str | Path | None = None) -> str:
    """The MJCF at ``path`` (default: the default task's robot) as self-contained text without meshes, as an
    artifact's robot.xml (:func:`robot_rl.kinematics.kinematic_model_xml`)."""
    import mujoco

    from robot_rl.kinematics import kinematic_model_xml

    path = Path(path) if path else default_model_path()
    return kinematic_model_xml(SimpleNamespace(load_spec=lambda: mujoco.MjSpec.from_file(str(path))))


def home_pose(path: str | Path | None, names: list[str]) -> dict[str, float]:
    """Default pose of the robot registered with this model file (default: the default task's robot), by joint."""
    from robot_rl.robots import get_robot, robot_names

    path = Path(path) if path else default_model_path()
    for r in robot_names():
        robot = get_robot(r)
        if robot.model_path.resolve() == path.resolve():
            return {j: v for j, v in zip(robot.joint_names, robot.default_pose) if j in names}
    return {}


def make_filter(xml: str, home: dict[str, float] | None = None, workspace: bool = True, **overrides) -> SafetyFilter:
    """A filter for the model (its joints and ranges), retreating to ``home`` (by joint name;
    mid-range for the others), with a box 0.5 m around the ``ee`` site at home."""
    probe = SafetyConfig.from_model(xml, velocity_limit=1.5)
    names = list(probe.joint_names)
    margin = np.minimum(0.05, 0.1 * (probe.upper - probe.lower))  # gripper fingers: a few cm of travel
    lo, hi = probe.lower + margin, probe.upper - margin
    q_home = np.clip([(home or {}).get(j, 0.5 * (a + b)) for j, a, b in zip(names, lo, hi)], lo, hi)
    kw = dict(position_margin=margin, velocity_limit=1.5, max_command_rate=1.0, effort_limit=300.0, home=q_home,
              backup="retreat")
    if workspace:
        from robot_rl.kinematics import RobotKinematics

        ee = RobotKinematics(xml, names).site_pos(q_home, "ee")
        kw.update(workspace_lower=(ee - 0.5).tolist(), workspace_upper=(ee + 0.5).tolist())
    kw.update(overrides)
    return SafetyFilter(SafetyConfig.from_model(xml, names, **kw))


def _stats(ns: list[int]) -> str:
    a = np.asarray(ns, dtype=np.float64) / 1e3
    return f"p50 {np.percentile(a, 50):7.2f}  p99 {np.percentile(a, 99):7.2f}  max {a.max():8.2f}  (n={a.size})"


def run(ticks: int, xml: str, home: dict[str, float] | None = None, workspace: bool = True) -> dict[str, list[int]]:
    f = make_filter(xml, home, workspace)
    cfg_names = list(f.config.joint_names)
    n = len(cfg_names)
    q_home = np.array(f.config.home_q)
    rng = np.random.default_rng(0)
    names = list(reversed(cfg_names))  # driver order differs from the config: exercise remapping
    q = q_home.copy()
    out = None
    times: dict[str, list[int]] = {k: [] for k in ("tick ok", "tick hold", "tick backup", "on_state", "on_command")}
    clock = time.perf_counter_ns
    for i in range(ticks):
        t = i * 1e-3
        if out is not None:
            q += 0.2 * (out - q)
        qd = rng.normal(0.0, 0.01, n)
        t0 = clock()
        f.on_state(t, names, q[::-1], qd[::-1], np.zeros(n))
        times["on_state"].append(clock() - t0)
        phase = (i // 2000) % 3  # 2 s of normal commands, 2 s without (hold), 2 s of high risk
        if i % 20 == 0:
            f.set_risk(t, 0.95 if phase == 2 else 0.1)
            if phase != 1:
                cmd = q_home + 0.4 * np.sin(t + np.arange(n))
                t0 = clock()
                f.on_command(t, cfg_names, cmd)
                times["on_command"].append(clock() - t0)
        t0 = clock()
        out, st = f.tick(t)
        dt = clock() - t0
        key = {"ok": "tick ok", "hold": "tick hold", "brake": "tick hold", "backup": "tick backup"}.get(st["mode"])
        if key:
            times[key].append(dt)
    return times


def command_cost(xml: str, home: dict[str, float] | None = None, repeats: int = 200) -> dict[str, list[int]]:
    """``on_command`` alone, with the workspace box: the widest joint 0.05 rad away (a typical
    50 Hz command), and that joint from one end of its command range to the other."""
    out = {}
    for label in ("on_command 0.05 rad", "on_command jump"):
        f = make_filter(xml, home, True, state_timeout_s=10.0, cmd_timeout_s=10.0, brake_timeout_s=10.0)
        cfg = f.config
        wide = int(np.argmax(cfg.cmd_upper - cfg.cmd_lower))
        q0, cmd = np.array(cfg.home_q), np.array(cfg.home_q)
        if label == "on_command jump":
            q0[wide], cmd[wide] = cfg.cmd_lower[wide], cfg.cmd_upper[wide]
        else:
            cmd[wide] += 0.05
        names = list(cfg.joint_names)
        f.on_state(0.0, names, q0)
        f.tick(0.0)
        ns = []
        for _ in range(repeats):  # no tick in between: the same path every time
            t0 = time.perf_counter_ns()
            f.on_command(0.0, names, cmd)
            ns.append(time.perf_counter_ns() - t0)
        out[label] = ns
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ticks", type=int, default=20000)
    p.add_argument("--model", default=None, help="MJCF file of the arm (default: the default task's robot)")
    p.add_argument("--no-workspace", action="store_true", help="no workspace box (no FK in on_command)")
    args = p.parse_args(argv)
    xml = model_xml(args.model)
    names = list(SafetyConfig.from_model(xml, velocity_limit=1.0).joint_names)
    home = home_pose(args.model, names)
    ws = not args.no_workspace
    run(2000, xml, home, ws)  # warm-up
    times = run(args.ticks, xml, home, ws)
    n = len(names)
    print(f"safety filter, {n} joints, workspace box {'on' if ws else 'off'}; microseconds per call")
    for k, v in times.items():
        if v:
            print(f"  {k:20s} {_stats(v)}")
    all_ticks = times["tick ok"] + times["tick hold"] + times["tick backup"]
    print(f"  {'tick (all)':20s} {_stats(all_ticks)}   target: < 50 us")
    if ws:
        for k, v in command_cost(xml, home).items():
            print(f"  {k:20s} {_stats(v)}")


if __name__ == "__main__":
    main()
