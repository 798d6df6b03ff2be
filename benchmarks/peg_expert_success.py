"""Success of panda-peg-insert's scripted expert under a DR mode, with and without the peg size
tolerance (`part_size_delta_m`), as the expert's docstring measures it: N envs, S control steps,
seed 0, every episode that ended.

    python benchmarks/peg_expert_success.py --dr train --envs 128 --steps 600

prints one table row per setting: episodes, successes, rate; `--no-size` runs only the row with
the tolerance off (the mode's other ranges unchanged); `--observed` plays the expert's strategy
from the policy's observations only (the believed hole, the nominal grasp).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from robot_rl.sim import make_env, make_task


def measure(task, mode: str, envs: int, steps: int, seed: int = 0, observed: bool = False) -> tuple[int, int]:
    from robot_rl.sim.tasks.panda_peg_insert_expert import PegInsertExpert

    env = make_env(task, envs, dr=mode, seed=seed, nthread=1)
    obs = env.reset()
    expert = PegInsertExpert(env, seed, observed=True) if observed else env.task.expert(env, seed)
    expert.reset(env, torch.arange(envs))
    ended = won = 0
    for _ in range(steps):
        obs, _, term, trunc, info = env.step(expert.act(env, obs))
        ids = info["episode"]["env_ids"]
        if len(ids):
            ended += len(ids)
            won += int(info["episode"]["success"].sum())
            expert.reset(env, ids)
    return ended, won


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dr", default="train", choices=["train", "eval"])
    ap.add_argument("--envs", type=int, default=128)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--no-size", action="store_true", help="only the row with part_size_delta_m = 0")
    ap.add_argument("--observed", action="store_true",
                    help="the expert's strategy on the policy's observations only (no true hole), one row")
    a = ap.parse_args()
    torch.set_num_threads(1)
    task = make_task("panda-peg-insert")
    rows = [] if a.no_size else [(a.dr + (", observed-state strategy" if a.observed else ""), task)]
    if not a.observed and hasattr(task.dr.train, "part_size_delta_m"):  # the same mode (its contact DR too), tolerance off
        off = {m: dataclasses.replace(getattr(task.dr, m), part_size_delta_m=(0.0, 0.0)) for m in ("train", "eval")}
        rows.append((f"{a.dr}, size tolerance off", dataclasses.replace(task, dr=dataclasses.replace(task.dr, **off))))
    elif a.no_size and not a.observed:  # a checkout without the term
        rows.append((f"{a.dr} (no size term in this checkout)", task))
    print(f"| DR | episodes | successes | success |  ({a.envs} envs x {a.steps} steps, seed 0)")
    for name, t in rows:
        ended, won = measure(t, a.dr, a.envs, a.steps, observed=a.observed)
        print(f"| {name} | {ended} | {won} | {100.0 * won / max(ended, 1):.1f}% |", flush=True)


if __name__ == "__main__":
    main()
