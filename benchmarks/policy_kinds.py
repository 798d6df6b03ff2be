"""Recurrent vs MLP policy on a task: time to solve, success in simulation, success on the twin.

For each policy kind (`--kinds`, default `mlp recurrent`) and each seed (`--seeds`), the script
trains the task with its defaults and `--ppo.policy <kind>` until the deterministic policy reaches
the task's `success_rate_to_solve` (checked every `--eval-interval` iterations on 256 episodes of
the training DR range) or the budget ends; evaluates 200 episodes on the training and the held-out
DR range; exports the artifact; and deploys it on the robot twin through `launch/deploy.launch.xml`
(policy node + 1 kHz safety node + twin with held-out dynamics, DDS on loopback), sending
`--targets` reach targets. Both kinds run through the same launch file and the same policy node:
the node picks the runtime by the kind named in the artifact.

Prints one row per run and a summary per kind (mean and spread over seeds), with the
recurrent / MLP ratio of the mean time to solve.

    .venv/bin/python benchmarks/policy_kinds.py [--task iiwa-reach --seeds 0 1 2 --budget-s 300 --targets 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def run(task: str, kind: str, seed: int, budget_s: float, eval_interval: int, targets: int, root: Path) -> dict:
    from robot_rl.config import task_defaults
    from robot_rl.deploy_check import DeployConfig, deploy_on_twin
    from robot_rl.evaluate import evaluate
    from robot_rl.export import export
    from robot_rl.train import train

    from robot_rl.sim import make_task

    cfg = task_defaults(task)
    cfg.ppo.policy = kind
    cfg.env.seed = seed
    cfg.time_budget_s = budget_s
    cfg.max_iterations = 100_000
    cfg.eval_interval = eval_interval
    cfg.stop_at_success = make_task(task).success_rate_to_solve
    cfg.log_root = str(root / "runs")
    cfg.run_name = f"{kind}-seed{seed}"
    cfg.progress = False
    tr = train(cfg)
    sim = evaluate(tr.checkpoint, episodes=200, dr="train", seed=1)
    held_out = evaluate(tr.checkpoint, episodes=200, dr="eval", seed=1)
    art = export(tr.checkpoint, root / "policies" / cfg.run_name)
    twin = deploy_on_twin(art, DeployConfig(targets=targets, seed=seed + 7), log_path=root / f"deploy-{cfg.run_name}.log")
    return {"kind": kind, "seed": seed, "solve_at": cfg.stop_at_success, "solved_s": tr.solved_at_s, "train_s": tr.wall_s,
            "steps": tr.total_steps, "sim": sim["success_rate"], "held_out": held_out["success_rate"],
            "twin": twin["success_rate"], "twin_distance_cm": twin["mean_distance_m"] * 100,
            "inference_p99_ms": twin["policy_inference"].get("p99_ms")}


def _mean_sd(xs: list[float]) -> str:
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.1f} ± {sd:.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="iiwa-reach")
    p.add_argument("--kinds", nargs="+", default=["mlp", "recurrent"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget-s", type=float, default=300.0, help="training budget per run (stops when solved)")
    p.add_argument("--eval-interval", type=int, default=5)
    p.add_argument("--targets", type=int, default=20, help="targets on the twin per policy")
    p.add_argument("--out", default="", help="keep runs and artifacts here (default: a temporary directory)")
    args = p.parse_args(argv)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="policy-kinds-"))
    rows = []
    for kind in args.kinds:
        for seed in args.seeds:
            r = run(args.task, kind, seed, args.budget_s, args.eval_interval, args.targets, root)
            rows.append(r)
            print(f"# {kind} seed {seed}: solved at {r['solved_s']} s, sim {r['sim']:.1%}, twin {r['twin']:.1%}", flush=True)
    (root / "policy_kinds.json").write_text(json.dumps(rows, indent=2))
    print(f"\n# {args.task}: policy kinds, seeds {args.seeds}, budget {args.budget_s:.0f} s per run, "
          f"{args.targets} twin targets; runs in {root}")
    print("| kind | seed | time to solve (s) | env steps | success, training DR | held-out DR | twin | twin distance (cm) | inference p99 (ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        solved = f"{r['solved_s']:.0f}" if r["solved_s"] is not None else f"not in {r['train_s']:.0f}"
        print(f"| {r['kind']} | {r['seed']} | {solved} | {r['steps']:,} | {r['sim']:.1%} | {r['held_out']:.1%} | "
              f"{r['twin']:.1%} | {r['twin_distance_cm']:.2f} | {r['inference_p99_ms']} |")
    print("\n| kind | runs solved | time to solve (s), mean ± sd | training DR (%) | held-out DR (%) | twin (%) |")
    print("|---|---|---|---|---|---|")
    means = {}
    for kind in args.kinds:
        rs = [r for r in rows if r["kind"] == kind]
        solved = [r["solved_s"] for r in rs if r["solved_s"] is not None]
        means[kind] = statistics.mean(solved) if solved else None
        print(f"| {kind} | {len(solved)}/{len(rs)} | {_mean_sd(solved)} | {_mean_sd([100 * r['sim'] for r in rs])} | "
              f"{_mean_sd([100 * r['held_out'] for r in rs])} | {_mean_sd([100 * r['twin'] for r in rs])} |")
    if means.get("mlp") and means.get("recurrent"):
        print(f"\nrecurrent / mlp mean time to solve: {means['recurrent'] / means['mlp']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
