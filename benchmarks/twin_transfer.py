"""Sim-to-"real" transfer on the robot twin: a policy trained with domain randomization against one
trained without it.

For each training mode (`--env.dr train` and `--env.dr off`) the script trains iiwa-reach with the
task defaults and the same budget, evaluates the deterministic policy in the training simulation,
exports it, and deploys it on the twin (held-out dynamics, sensor noise and latency; policy node +
1 kHz safety node + twin through `launch/deploy.launch.xml`, DDS on loopback) for the same targets.
It prints success in simulation beside success on the twin and the drop in percentage points.
Target: the DR-trained policy loses at most 10 points moving to the twin.

    .venv/bin/python benchmarks/twin_transfer.py [--budget-s 120 --targets 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch


def run(mode: str, budget_s: float, targets: int, root: Path, seed: int) -> dict:
    from robot_rl.config import task_defaults
    from robot_rl.deploy_check import DeployConfig, deploy_on_twin
    from robot_rl.evaluate import evaluate
    from robot_rl.export import export
    from robot_rl.train import train

    cfg = task_defaults("iiwa-reach")
    cfg.env.dr = mode
    cfg.env.seed = seed
    cfg.time_budget_s = budget_s
    cfg.stop_at_success = 0.98
    cfg.max_iterations = 10_000
    cfg.log_root = str(root / "runs")
    cfg.run_name = f"dr-{mode}"
    cfg.progress = False
    tr = train(cfg)
    sim = evaluate(tr.checkpoint, episodes=200, dr=mode, seed=1)
    held_out = evaluate(tr.checkpoint, episodes=200, dr="eval", seed=1)
    art = export(tr.checkpoint, root / "policies" / f"dr-{mode}")
    twin = deploy_on_twin(art, DeployConfig(targets=targets, seed=seed + 7), log_path=root / f"deploy-{mode}.log")
    return {"mode": mode, "train_s": tr.wall_s, "steps": tr.total_steps, "sim": sim["success_rate"],
            "held_out_sim": held_out["success_rate"], "twin": twin["success_rate"],
            "twin_distance_cm": twin["mean_distance_m"] * 100, "interventions": twin["safety_interventions"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-s", type=float, default=120.0, help="training budget per mode (stops early at 98%)")
    p.add_argument("--targets", type=int, default=30, help="targets on the twin per policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="keep runs and artifacts here (default: a temporary directory)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="twin-transfer-"))
    rows = [run(mode, args.budget_s, args.targets, root, args.seed) for mode in ("train", "off")]
    print(f"# iiwa-reach, training budget {args.budget_s:.0f} s per mode, {args.targets} targets on the twin; runs in {root}")
    print("| trained with | train time (s) | env steps | success in its training sim | held-out DR sim | on the twin | twin - sim (points) | mean twin distance (cm) | safety interventions |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        drop = (r["twin"] - r["sim"]) * 100
        print(f"| DR {r['mode']} | {r['train_s']:.0f} | {r['steps']:,} | {r['sim']:.1%} | {r['held_out_sim']:.1%} | "
              f"{r['twin']:.1%} | {drop:+.1f} | {r['twin_distance_cm']:.2f} | {r['interventions']} |")
    dr = rows[0]
    ok = (dr["sim"] - dr["twin"]) * 100 <= 10
    print(f"\nDR-trained policy: {dr['sim']:.1%} in simulation -> {dr['twin']:.1%} on the twin "
          f"(target: lose at most 10 points: {'met' if ok else 'NOT met'})")
    (root / "twin_transfer.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
