"""Sim-to-"real" transfer, a multi-seed study: robustness methods on the published twin and on the
stress twins beyond the held-out range.

For each method (`--methods`) and training seed (`--seeds`) the script trains iiwa-reach within
`--budget-s` (stopping early at `--stop-at` deterministic success), exports the artifact, and
evaluates it with its runtime (onnxruntime, as on the robot) for `--episodes` episodes each:

* in its training simulation (the DR it was trained on; `off` for no-DR),
* on the held-out DR range (`eval`),
* on the published twin: the held-out sample that `RobotTwin(seed=0)` and the deploy launch file's
  default twin simulate (`robot_rl.sim.twins.sampled_point`),
* on every published stress twin (`robot_rl.sim.twins.STRESS_TWINS`).

The twins are simulated by the batched env with exactly the twin's DR terms (the twin node applies
the same terms in real time behind the ROS 2 graph; `tests/nodes` runs a stress twin through the
launch file). Success, final distance to the target, and the drop in points from the training
simulation are reported as mean and spread (sample standard deviation) over seeds, with a bar
chart with error bars beside the JSON. Results are kept per run in `--out`, so methods and seeds can
be added in later invocations (a run whose result is there is kept unless `--again`); the table
covers every run found there. ADR trains for the whole iteration budget (its curriculum widens the
ranges after the task is solved); the others stop at `--stop-at`.

Methods:
    no-dr            PPO MLP trained without DR
    dr               PPO MLP trained on the task's DR range (the default)
    adr              the same with automatic domain randomization (`--adr.enabled`)
    history          PPO with an MLP actor on the last 8 observations (`--ppo.rnn-type history`)
    recurrent        PPO with a GRU actor on the DR range (implicit system identification)
    teacher-student  a privileged teacher (sees the DR parameters) distilled into a GRU student
                     (`robot-rl train --ppo.actor-obs critic`, then `robot-rl distill`)

    .venv/bin/python benchmarks/twin_transfer.py --out runs/twin_transfer [--methods dr no-dr --seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

TASK = "iiwa-reach"
METHODS = ("no-dr", "dr", "adr", "history", "recurrent", "teacher-student")


def _train_cfg(method: str, seed: int, args, root: Path, name: str):
    from robot_rl.config import task_defaults

    cfg = task_defaults(TASK)
    cfg.env.seed = seed
    cfg.env.dr = "off" if method == "no-dr" else "train"
    cfg.time_budget_s = args.budget_s
    cfg.max_iterations = args.max_iterations
    cfg.stop_at_success = args.stop_at
    cfg.log_root = str(root / "runs")
    cfg.run_name = name
    cfg.progress = False
    if method == "recurrent":
        cfg.ppo.policy = "recurrent"
    if method == "history":
        cfg.ppo.policy, cfg.ppo.rnn_type, cfg.ppo.history_length = "recurrent", "history", 8
    if method == "adr":  # the whole budget: the curriculum widens ranges after the task is solved
        cfg.adr.enabled = True
        cfg.stop_at_success = 0.0
    return cfg


def train_method(method: str, seed: int, args, root: Path) -> tuple[Path, float, str]:
    """Train one run; returns (artifact dir, training wall seconds, the DR mode of its training sim)."""
    from robot_rl.export import export
    from robot_rl.train import train

    name = f"{method}-seed{seed}"
    if method == "teacher-student":
        from robot_rl.distill import DistillConfig, distill

        t0 = time.perf_counter()
        tcfg = _train_cfg("dr", seed, args, root, f"teacher-seed{seed}")
        tcfg.ppo.actor_obs = "critic"  # the privileged teacher sees the DR parameters
        teacher = train(tcfg)
        d = distill(DistillConfig(teacher=str(teacher.run_dir), max_iterations=args.distill_iterations,
                                  log_root=str(root / "runs"), run_name=name, progress=False, eval_episodes=0,
                                  torch_threads=args.threads))
        ckpt, wall = d.checkpoint, time.perf_counter() - t0
    else:
        tr = train(_train_cfg(method, seed, args, root, name))
        ckpt, wall = tr.checkpoint, tr.wall_s
    art = export(ckpt, root / "policies" / name)
    return Path(art), wall, "off" if method == "no-dr" else "train"


def conditions(twin_seed: int) -> dict:
    from robot_rl.sim import make_task
    from robot_rl.sim.twins import STRESS_TWINS, sampled_point

    return {"held-out": "eval", "twin": sampled_point(make_task(TASK), "eval", twin_seed),
            **{name: name for name in STRESS_TWINS}}


def run(method: str, seed: int, args, root: Path) -> dict:
    from robot_rl.evaluate_artifact import evaluate_artifact

    art, wall, train_dr = train_method(method, seed, args, root)
    out = {"method": method, "seed": seed, "train_s": wall, "artifact": str(art), "results": {}}
    for cond, dr in {"train sim": train_dr, **conditions(args.twin_seed)}.items():
        r = evaluate_artifact(art, args.episodes, dr, seed=1000 + seed)
        out["results"][cond] = {"success": r["success_rate"], "distance_cm": 100 * r["mean_final_distance_m"]}
        print(f"  {method} seed {seed} {cond:16s} success {r['success_rate']:6.1%}  "
              f"final distance {100 * r['mean_final_distance_m']:.2f} cm", flush=True)
    return out


def _ms(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.1f} ± {sd:.1f}"


def summarize(rows: list[dict], root: Path) -> dict:
    conds = list(rows[0]["results"])
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    summary = {}
    order = [m for m in METHODS if m in by]
    print(f"\n# {TASK}: success % (mean ± sd over seeds) by where the policy runs; twin = the published twin")
    print("| method | seeds | train s | " + " | ".join(conds) + " | worst stress drop (points) |")
    print("|---|---|---|" + "---|" * len(conds) + "---|")
    for m in order:
        runs = by[m]
        succ = {c: [100 * r["results"][c]["success"] for r in runs] for c in conds}
        dist = {c: [r["results"][c]["distance_cm"] for r in runs] for c in conds}
        stress = [c for c in conds if c not in ("train sim", "held-out", "twin")]
        drops = [statistics.mean(succ["train sim"]) - statistics.mean(succ[c]) for c in stress]
        summary[m] = {"seeds": [r["seed"] for r in runs], "train_s": statistics.mean(r["train_s"] for r in runs),
                      "success": {c: {"mean": statistics.mean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
                                      "per_seed": v} for c, v in succ.items()},
                      "distance_cm": {c: statistics.mean(v) for c, v in dist.items()},
                      "worst_stress_drop": max(drops)}
        print(f"| {m} | {','.join(str(r['seed']) for r in runs)} | {summary[m]['train_s']:.0f} | "
              + " | ".join(_ms(succ[c]) for c in conds) + f" | {max(drops):.1f} |")
    print("\n# final distance to the target (cm, mean over seeds)")
    print("| method | " + " | ".join(conds) + " |")
    print("|---|" + "---|" * len(conds))
    for m in order:
        print(f"| {m} | " + " | ".join(f"{summary[m]['distance_cm'][c]:.2f}" for c in conds) + " |")
    met = [m for m in order if summary[m]["worst_stress_drop"] <= 10 and summary[m]["success"]["train sim"]["mean"] >= 95]
    print(f"\ntarget (lose <= 10 points from training sim to every stress twin, >= 95% in training sim): "
          f"{'met by ' + ', '.join(met) if met else 'NOT met by any method'}")
    (root / "twin_transfer.json").write_text(json.dumps({"task": TASK, "runs": rows, "summary": summary}, indent=2))
    _chart(summary, conds, root / "twin_transfer.png")
    print(f"wrote {root / 'twin_transfer.json'} and {root / 'twin_transfer.png'}")
    return summary


def _chart(summary: dict, conds: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods = list(summary)
    x = np.arange(len(conds))
    w = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(conds)), 4.5))
    for i, m in enumerate(methods):
        s = summary[m]["success"]
        ax.bar(x + (i - (len(methods) - 1) / 2) * w, [s[c]["mean"] for c in conds], w,
               yerr=[s[c]["sd"] for c in conds], capsize=2, label=f"{m} (n={len(summary[m]['seeds'])})")
    ax.set_xticks(x, conds, rotation=30, ha="right")
    ax.set_ylabel("success %")
    ax.set_ylim(0, 105)
    ax.set_title(f"{TASK}: success by where the policy runs (mean ± sd over seeds)")
    ax.legend(fontsize=8, ncol=min(5, len(methods)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget-s", type=float, default=300.0, help="wall-clock cap per run (the issue's 5 min on 2 cores)")
    p.add_argument("--max-iterations", type=int, default=200,
                   help="PPO iterations per run (stops earlier at --stop-at): the same budget on a busy machine")
    p.add_argument("--distill-iterations", type=int, default=60,
                   help="teacher-student: DAgger iterations of the student after the teacher's training")
    p.add_argument("--stop-at", type=float, default=0.98, help="stop training at this deterministic success")
    p.add_argument("--episodes", type=int, default=200, help="episodes per evaluation")
    p.add_argument("--twin-seed", type=int, default=0, help="seed of the published twin (the launch file's default)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/twin_transfer", help="runs, artifacts and results (kept between calls)")
    p.add_argument("--summary-only", action="store_true", help="print the table of the runs already in --out")
    p.add_argument("--again", action="store_true", help="redo runs whose results are already in --out")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    root = Path(args.out)
    (root / "results").mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        for method in args.methods:
            for seed in args.seeds:
                done = root / "results" / f"{method}-seed{seed}.json"
                if done.exists() and not args.again:
                    print(f"== {method} seed {seed}: kept from {done} (--again to redo)", flush=True)
                    continue
                print(f"== {method} seed {seed}", flush=True)
                r = run(method, seed, args, root)
                done.write_text(json.dumps(r, indent=2))
    rows = [json.loads(f.read_text()) for f in sorted((root / "results").glob("*.json"))]
    if not rows:
        print(f"no runs in {root / 'results'}")
        return 1
    summarize(rows, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
