"""Human-in-the-loop learning side by side: success against simulated operator time and against the
number of interventions, for HIL-SERL, RLIF and HG-DAgger, over several seeds (issue 12).

```
python benchmarks/hil_success.py --seeds 0 1 2                         # panda-peg-insert, 30 operator-minutes
python benchmarks/hil_success.py --seeds 0 --methods hg-dagger --budget-min 10 --eval-episodes 32
python benchmarks/hil_success.py --out runs/hil-bench --table-only      # the table of runs already made
python benchmarks/hil_success.py --seeds 0 --methods hil-serl --no-serl-sync --serl-updates-per-transition 0.25
python benchmarks/hil_success.py --seeds 1 --methods hil-serl --serl-sac init_alpha=0.05
```

Every method starts from the same imperfect policy: per seed, one diffusion base trained from
`--demos` scripted demonstrations (`robot_rl.hil.base.ensure_base`, in `OUT/seed<S>/`), passed to
each method as `HilRunConfig.base`. A method is `module:function` with keyword arguments
(`METHODS`), called as `function(HilRunConfig, log=..., **kwargs) -> list[CurvePoint]`; one that
does not import (or fails) is printed as "not available" with its error and the others run.

Tables (mean ± std over seeds): autonomous success at operator-time checkpoints (`--at-min`; the
last evaluation at or before it) with the interventions so far, the first operator time at which
each seed reached `--target` success, the base, and the ratio of the success at the last
checkpoint to the base's; then success after a number of interventions (`--at-interventions`).
`OUT/results.json` keeps every curve (rewritten after each run).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = {
    "hil-serl": ("robot_rl.hil.serl:run", {"method": "hil-serl"}),
    "rlif": ("robot_rl.hil.serl:run", {"method": "rlif"}),
    "hg-dagger": ("robot_rl.hil.hg_dagger:run", {}),
}
"""name -> ("module:function", keyword arguments)."""


def resolve(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def at(curve: list[dict], key: str, limit: float, slack: float = 0.01) -> dict | None:
    """The last point of `curve` whose `key` is at most `limit` (None when none is), with 1% of
    slack: a round ends on the env step that crosses its operator-time budget."""
    pts = [p for p in curve if p[key] <= limit * (1 + slack) + 1e-6]
    return pts[-1] if pts else None


def first_reaching(curve: list[dict], target: float) -> float | None:
    for p in curve:
        if p["success"] >= target:
            return p["operator_time_s"]
    return None


def mean_std(xs: list[float], fmt: str = "{:.0%}") -> str:
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(float(np.mean(xs)))} ± {fmt.format(float(np.std(xs)))}"


def table(results: dict, at_min: list[float], at_interventions: list[int], target: float) -> str:
    lines = []
    head = ["method", "seeds", "base"] + [f"{m:g} min" for m in at_min] + \
           [f"interventions @{m:g} min" for m in at_min] + [f"first >= {target:.0%} (min, per seed)", "ratio vs base"]
    rows = [head]
    rows2 = [["method"] + [f"after {n} interventions" for n in at_interventions]]
    for name, per_seed in results.items():
        errors = [r["error"] for r in per_seed.values() if "error" in r]
        curves = [r["curve"] for r in per_seed.values() if "curve" in r and r["curve"]]
        if not curves:
            rows.append([name, "0", f"not available: {errors[0] if errors else 'not run'}"])
            continue
        base = [c[0]["success"] for c in curves]
        row = [name, str(len(curves)), mean_std(base)]
        last = []
        for m in at_min:
            pts = [at(c, "operator_time_s", m * 60) for c in curves]
            vals = [p["success"] for p in pts if p is not None]
            row.append(mean_std(vals) + ("" if len(vals) == len(curves) else f" ({len(vals)} seeds)"))
            last = vals if vals else last
        for m in at_min:
            pts = [at(c, "operator_time_s", m * 60) for c in curves]
            row.append(mean_std([p["interventions"] for p in pts if p is not None], "{:.0f}"))
        firsts = [first_reaching(c, target) for c in curves]
        row.append(" ".join("-" if f is None else f"{f / 60:.1f}" for f in firsts))
        row.append(f"{np.mean(last) / max(np.mean(base), 1e-9):.2f}x" if last else "-")
        if errors:
            row[-1] += f" ({len(errors)} seed(s) failed: {errors[0]})"
        rows.append(row)
        row2 = [name]
        for n in at_interventions:
            vals = [p["success"] for p in (at(c, "interventions", n) for c in curves) if p is not None]
            row2.append(mean_std(vals))
        rows2.append(row2)
    for block in (rows, rows2):
        width = [max(len(r[i]) for r in block if i < len(r)) for i in range(len(block[0]))]
        for r in block:
            lines.append("  ".join(c.ljust(width[i]) for i, c in enumerate(r)).rstrip())
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="panda-peg-insert")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--budget-min", type=float, default=30.0, help="simulated operator minutes per run")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--eval-episodes", type=int, default=64)
    p.add_argument("--demos", type=int, default=40)
    p.add_argument("--base-steps", type=int, default=10000, help="training steps of each seed's diffusion base")
    p.add_argument("--at-min", type=float, nargs="+", default=[5, 10, 20, 30])
    p.add_argument("--at-interventions", type=int, nargs="+", default=[25, 50, 100, 200])
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--out", default="runs/hil-bench")
    p.add_argument("--serl-updates-per-transition", type=float, default=None,
                   help="HIL-SERL / RLIF learner updates per transition (default: SerlOptions')")
    p.add_argument("--serl-sync", action=argparse.BooleanOptionalAction, default=None,
                   help="HIL-SERL / RLIF: the actor waits for the learner's updates after each round "
                        "(default: SerlOptions', on)")
    p.add_argument("--serl-takeover-penalty", type=float, default=None,
                   help="HIL-SERL: subtract this on the transition before each takeover (default 0)")
    p.add_argument("--serl-sac", nargs="+", default=[], metavar="KEY=VALUE",
                   help="HIL-SERL / RLIF: SACConfig fields over SerlOptions' (e.g. init_alpha=0.002 utd=2)")
    p.add_argument("--table-only", action="store_true", help="print the table of OUT/results.json, run nothing")
    a = p.parse_args(argv)

    import torch

    from robot_rl.hil.base import ensure_base
    from robot_rl.hil.curve import HilRunConfig
    from robot_rl.policies.diffusion import DiffusionConfig

    torch.set_num_threads(1)
    out = Path(a.out)
    path = out / "results.json"
    results: dict = json.loads(path.read_text()) if path.is_file() else {}
    if not a.table_only:
        out.mkdir(parents=True, exist_ok=True)
        for seed in a.seeds:
            base_dir, _ = ensure_base(a.task, out / f"seed{seed}", a.demos, seed, DiffusionConfig(steps=a.base_steps),
                                      log=print)
            for name in a.methods:
                target, kwargs = METHODS[name]
                if target == "robot_rl.hil.serl:run":
                    from robot_rl.hil.serl import SerlOptions, sac_options

                    given = {"sync": a.serl_sync, "updates_per_transition": a.serl_updates_per_transition,
                             "sac": sac_options(a.serl_sac) if a.serl_sac else None,
                             "takeover_penalty": a.serl_takeover_penalty}
                    kwargs = kwargs | {"opts": SerlOptions(**{k: v for k, v in given.items() if v is not None})}
                entry = results.setdefault(name, {})
                cfg = HilRunConfig(task=a.task, seed=seed, base=str(base_dir), demos=a.demos,
                                   operator_budget_s=a.budget_min * 60, num_envs=a.num_envs,
                                   eval_episodes=a.eval_episodes, out=str(out / f"seed{seed}" / name))
                t0 = time.perf_counter()
                try:
                    fn = resolve(target)
                except Exception as e:  # noqa: BLE001 (a method another branch has not delivered)
                    entry[str(seed)] = {"error": f"{type(e).__name__}: {e}"}
                    print(f"{name}: not available ({type(e).__name__}: {e})")
                    continue
                print(f"== {name}, seed {seed}")
                try:
                    curve = fn(cfg, log=lambda s, n=name: print(f"  {n}: {s}", flush=True), **kwargs)
                    entry[str(seed)] = {"curve": [c.to_dict() for c in curve], "wall_s": time.perf_counter() - t0}
                except Exception as e:  # noqa: BLE001 (one method failing must not lose the others)
                    traceback.print_exc()
                    entry[str(seed)] = {"error": f"{type(e).__name__}: {e}"}
                path.write_text(json.dumps(results, indent=2))
    if not results:
        print(f"no results in {path}; run without --table-only first")
        return 1
    print(f"\n{a.task}: autonomous success vs simulated operator time ({', '.join(results)}; "
          f"mean ± std over seeds; target {a.target:.0%})\n")
    print(table(results, a.at_min, a.at_interventions, a.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
