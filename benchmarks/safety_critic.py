"""Safety critic on the twin: does it spoil the task, and what does it stop?

    python benchmarks/safety_critic.py --artifact DIR [--train] [--targets 15 --twin-seeds 0 1 2]

Runs :func:`robot_rl.safety.twin_check.run_on_twin` (robot twin with held-out dynamics and the
scene's table and obstacles, the safety filter built as the safety node builds it, the artifact's
policy at its control rate, 1 kHz ticks, simulated time) in four safety configurations: nothing
learned or analytic (limits only), CBF, critic, critic + CBF. ``--train`` first trains the critic
into a copy of the artifact (``robot-rl train-critic`` with this script's sizes).

Nominal policy: success, interventions per minute, share of ticks in backup, false interventions
(backup ticks with no constraint violation within 0.5 s) as % of ticks; targets: at most 1 point of
success lost, false interventions at most 1% of ticks. Rogue: the benchmark's adversarial
commander (:mod:`robot_rl.safety.rogue`, unseen by the critic's training: another strategy family
and seed) replaces the policy; constraint-violation onsets (joint limits, self, table/obstacles)
with and without. Prints tables with each configuration beside the limits-only reference as a ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIGS = {"limits only": {"critic": "off", "cbf": False}, "CBF": {"critic": "off"},
           "critic": {"critic": "artifact", "cbf": False}, "critic + CBF": {"critic": "artifact"}}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ("1.00x" if a == b else "-")


def main(argv=None) -> int:
    from robot_rl.safety.twin_check import run_on_twin

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifact", required=True)
    p.add_argument("--train", action="store_true", help="train the critic into a copy of the artifact first")
    p.add_argument("--targets", type=int, default=15)
    p.add_argument("--twin-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rogue-seconds", type=float, default=30.0)
    p.add_argument("--rogue-seed", type=int, default=7)
    p.add_argument("--only", choices=("nominal", "rogue"), default=None, help="run one of the two parts")
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    art = Path(a.artifact)
    if a.train:
        from robot_rl.safety.train_artifact_critic import CriticConfig, train_artifact_critic

        copy = Path(tempfile.mkdtemp(prefix="critic-bench-")) / art.name
        shutil.copytree(art, copy)
        art = copy
        train_artifact_critic(CriticConfig(artifact=str(art)))
    spec = json.loads((art / "spec.json").read_text())
    if "safety_critic" not in spec:
        print(f"{art} has no safety critic: run `robot-rl train-critic --artifact {art}` or pass --train",
              file=sys.stderr)
        return 2
    cal = spec["safety_critic"]["calibration"]
    print(f"critic: threshold {spec['safety_critic']['threshold']:.3f}; calibration: false alarms "
          f"{cal['false_alarm_rate']:.2%} of {cal['nominal_ticks']} held-out nominal ticks, detection "
          f"{cal['detection_rate']:.1%} of {cal['violation_onsets']} held-out rogue violation onsets")
    out: dict = {"artifact": str(art), "calibration": cal, "nominal": {}, "rogue": {}}
    t0 = time.perf_counter()
    for name, params in (CONFIGS if a.only != "rogue" else {}).items():
        runs = [run_on_twin(art, params=params, targets=a.targets, twin_seed=s, seed=s) for s in a.twin_seeds]
        out["nominal"][name] = {k: float(np.mean([r[k] for r in runs])) for k in
                                ("success_rate", "interventions_per_min", "backup_share", "false_backup_share",
                                 "backup_entries_per_min")}
        out["nominal"][name]["success_per_seed"] = [r["success_rate"] for r in runs]
    ref = out["nominal"].get("limits only")
    if ref is not None:
        print(f"\nNominal policy on the twin: {a.targets} targets x twin seeds {a.twin_seeds} "
              f"({time.perf_counter() - t0:.0f} s)")
        print(f"{'safety':<14}{'success':>9}{'vs ref':>8}{'interv/min':>12}{'backup %':>10}{'false backup %':>16}")
    for name, r in out["nominal"].items():
        print(f"{name:<14}{r['success_rate']:>9.1%}{_ratio(r['success_rate'], ref['success_rate']):>8}"
              f"{r['interventions_per_min']:>12.1f}{100 * r['backup_share']:>10.2f}{100 * r['false_backup_share']:>16.2f}")
    try:
        if a.only == "nominal":
            raise ImportError
        from robot_rl.safety.rogue import RogueCommander
    except ImportError:
        print("\nRogue: robot_rl.safety.rogue (the benchmark rogue) is not in this branch; skipped")
        RogueCommander = None
    if RogueCommander is not None:
        from robot_rl.scenes import get_scene

        robot = spec["robot"]
        xml = (art / robot["model"]).read_text()
        targets = max(1, int(round(a.rogue_seconds / 2.0)))
        for name, params in CONFIGS.items():
            cmd = RogueCommander(xml, robot["joint_names"], get_scene(robot["scene"]), robot["default_pose"],
                                 strategy="mixed", seed=a.rogue_seed)
            r = run_on_twin(art, params=params, targets=targets, commander=cmd, twin_seed=0)
            out["rogue"][name] = {"violation_onsets": r["violation_onsets"], "violation_checks": r["violation_checks"],
                                  "backup_share": r["backup_share"]}
        ref_v = sum(out["rogue"]["limits only"]["violation_onsets"].values())
        print(f"\nRogue commander (benchmark rogue, mixed strategies, seed {a.rogue_seed}), {targets * 2} s on the twin")
        print(f"{'safety':<14}{'violations':>11}{'vs ref':>8}{'joint':>7}{'self':>6}{'scene':>7}{'viol. checks':>14}")
        for name, r in out["rogue"].items():
            v = r["violation_onsets"]
            tot = sum(v.values())
            print(f"{name:<14}{tot:>11}{_ratio(tot, ref_v):>8}{v['joint_limit']:>7}{v['self_collision']:>6}"
                  f"{v['scene_contact']:>7}{r['violation_checks']:>14}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
