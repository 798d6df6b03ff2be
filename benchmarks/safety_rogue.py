"""Constraint violations of a rogue commander on the robot twin, with and without the CBF-QP.

    python benchmarks/safety_rogue.py [--tasks iiwa-reach panda-reach] [--seconds 60] [--seed 0]
                                      [--strategy mixed]

In-process, no DDS: the rogue commander (`robot_rl.safety.rogue.RogueCommander`, adversarial goals
at joint limits, in the table, in the obstacles and in self-collision; a new goal every 1.5 s)
sends a position command every 20 ms (50 Hz) to the safety filter, which ticks at 1 kHz on the twin's
noisy joint states and commands the twin (`robot_rl.hardware.twin.RobotTwin`: held-out dynamics,
the robot's scene with the table and obstacles colliding, physics at 1 kHz). The same run is made
with the filter as the safety node builds it without a scene (limits, rate limits; the reference)
and with the CBF stage on (the robot's default scene, default margins). Every tick counts, at the
twin's true joint positions: joint limits passed (> 1 mrad), contacts of a link with the table and
with an obstacle (the twin's MuJoCo contacts), and link-link contacts (MuJoCo distances < 0 between
non-adjacent links; `ViolationMonitor`). Printed per task: ticks in violation per kind, goals
(of those sent) that produced one, the deepest penetration, and the CBF's interventions.
Target: no violation with the CBF.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def safety_config(task, robot, cbf: bool, scene, margin: float | None = None):
    """The safety node's filter for ``robot`` (position margin 0.02 rad, the task's command rate
    as velocity limit), with or without the CBF stage."""
    from robot_rl.kinematics import kinematic_model_xml
    from robot_rl.safety import SafetyConfig
    from robot_rl.safety.cbf import CBFConfig

    xml = kinematic_model_xml(robot)
    rate = task.action_scale / (task.decimation * robot.load_model().opt.timestep)
    kw = dict(velocity_limit=rate, position_margin=0.02, velocity_trip_factor=1.5, strict_state_names=False,
              effort_limit=list(robot.effort_limits))
    if cbf:
        kw["cbf"] = CBFConfig(scene=scene, check_pose=robot.default_pose,
                              **({} if margin is None else {"margin": margin}))
    return SafetyConfig.from_model(xml, list(robot.joint_names), **kw), xml


def run(task_name: str, seconds: float, seed: int, strategy: str, cbf: bool, margin: float | None = None) -> dict:
    from robot_rl.hardware.twin import RobotTwin
    from robot_rl.safety import SafetyFilter
    from robot_rl.safety.rogue import RogueCommander, ViolationMonitor
    from robot_rl.sim import make_task

    task = make_task(task_name)
    robot = task.robot
    twin = RobotTwin(task_name, seed=seed, dr="eval", physics_rate_hz=1000.0)
    scene = twin.scene
    cfg, xml = safety_config(task, robot, cbf, scene, margin)
    filt = SafetyFilter(cfg)
    names = list(robot.joint_names)
    rogue = RogueCommander(xml, names, scene, robot.default_pose, strategy=strategy, seed=seed + 1000)
    mon = ViolationMonitor(xml, names, scene, robot.default_pose)
    qadr = twin._qadr[: len(names)]
    ticks = int(seconds * 1000)
    counts = {k: 0 for k in ("joint_limit", "table", "obstacle", "self")}
    goals_bad: set[int] = set()
    depth = 0.0
    goal_id, last_goal = 0, None
    t0 = time.perf_counter()
    for k in range(ticks):
        t = k * 1e-3
        q, dq, tau = twin.read(noisy=True)
        filt.on_state(t, twin.joint_names, q, dq, tau)
        if k % 20 == 0:
            cmd = rogue(t)
            if last_goal is None or not np.array_equal(cmd, last_goal):
                goal_id, last_goal = goal_id + 1, cmd
            filt.on_command(t, names, cmd)
        out, st = filt.tick(t)
        if out is not None:
            twin.set_command(out, names=names)
        twin.step(1)
        kinds = {"self", "joint_limit"} & mon(twin.data.qpos[qadr])
        for shape, _, d in twin.scene_contacts():
            kinds.add("table" if shape == "table" else "obstacle")
            depth = max(depth, d)
        for kind in kinds:
            counts[kind] += 1
        if kinds:
            goals_bad.add(goal_id)
    c = filt.counters
    return {"counts": counts, "goals": goal_id, "goals_bad": len(goals_bad), "depth": depth,
            "cbf_ticks": c["cbf_active_ticks"], "brakes": sum(v for r, v in c["interventions"].items()
                                                              if r.startswith("cbf_")),
            "wall_s": time.perf_counter() - t0}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["iiwa-reach", "panda-reach"])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", default="mixed")
    p.add_argument("--margin", type=float, default=None, help="CBF margin to the scene (m; default CBFConfig's)")
    args = p.parse_args(argv)
    print(f"rogue commander ({args.strategy}, seed {args.seed}), {args.seconds:.0f} s at 1 kHz on the twin; "
          "ticks in violation (goals with one)")
    print(f"{'task':12s} {'filter':18s} {'joint_limit':>12s} {'table':>12s} {'obstacle':>12s} {'self':>12s} "
          f"{'goals bad':>10s} {'depth mm':>9s} {'cbf ticks':>9s} {'wall s':>7s}")
    for task in args.tasks:
        res = {}
        for cbf in (False, True):
            r = res[cbf] = run(task, args.seconds, args.seed, args.strategy, cbf, args.margin)
            cells = " ".join(f"{v:12d}" for v in r["counts"].values())
            print(f"{task:12s} {'limits + CBF' if cbf else 'limits (reference)':18s} {cells} "
                  f"{r['goals_bad']:>4d}/{r['goals']:<5d} {1e3 * r['depth']:9.1f} {r['cbf_ticks']:9d} "
                  f"{r['wall_s']:7.1f}")
        ref, ours = sum(res[False]["counts"].values()), sum(res[True]["counts"].values())
        print(f"{task:12s} violation ticks with CBF / without: {ours} / {ref}"
              + (f" = {ours / ref:.3f}" if ref else ""))


if __name__ == "__main__":
    main()
