"""Does the simulated operator tell a policy that will succeed from one that will fail? For each of
its two ways of watching (the task's progress, the action drift from the expert), the share of
episodes it would have noticed, split by whether the policy then succeeded alone.

    python benchmarks/operator_judgement.py --base runs/hil-bench/seed1/base --episodes 64

The policy is the diffusion base alone (`--base`, as `hil_success.py` trains one per seed); the
operator watches with its defaults but never acts (its reaction delay is longer than the
episode), so every episode runs to its end. A person should notice most failures and few
successes; "noticed at" is the median step of the first notice (25 steps a second).
"""

from __future__ import annotations

import argparse

import torch


def watch(base_dir: str, episodes: int, seed: int, watch_progress: bool) -> dict:
    from robot_rl.hil.operator import SimulatedOperator
    from robot_rl.residual import ResidualEnv, load_base
    from robot_rl.sim import make_env

    env = ResidualEnv(make_env("panda-peg-insert", episodes, dr="train", seed=seed, nthread=1, autoreset=False),
                      load_base(base_dir, "panda-peg-insert"), scale=1.0, seed=seed)
    obs = env.reset()
    op = SimulatedOperator(env.env, seed=seed, reaction_delay_s=1e6, watch_progress=watch_progress)
    op.reset(env.env, torch.arange(episodes))
    first = torch.full((episodes,), -1)
    done = torch.zeros(episodes, dtype=torch.bool)
    won = torch.zeros(episodes, dtype=torch.bool)
    t = 0
    while not done.all():
        op.step(env.env, obs, env.base_action)
        first[~done & (op.react >= 0) & (first < 0)] = t
        obs, _, term, trunc, _ = env.step(torch.zeros_like(env.base_action))
        won |= ~done & env.env.task.success(env.env).bool()
        done |= (term | trunc).bool()
        t += 1
    noticed = first >= 0

    def share(m):
        return float(noticed[m].float().mean()) if m.any() else float("nan")

    def median(m):
        return int(first[m & noticed].median()) if (m & noticed).any() else -1

    return {"success": float(won.float().mean()), "noticed_successes": share(won), "noticed_failures": share(~won),
            "at_successes": median(won), "at_failures": median(~won)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="a diffusion base of panda-peg-insert (a directory)")
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--seed", type=int, default=1000)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"panda-peg-insert, base {a.base}, {a.episodes} episodes (env seed {a.seed}), the base alone\n")
    print(f"{'operator watches':<34}{'base success':>14}{'noticed: successes':>20}{'failures':>10}"
          f"{'noticed at (step): successes':>30}{'failures':>10}")
    for name, progress in (("progress (Task.distance), default", True), ("action drift from the expert", False)):
        r = watch(a.base, a.episodes, a.seed, progress)
        print(f"{name:<34}{r['success']:>14.0%}{r['noticed_successes']:>20.0%}{r['noticed_failures']:>10.0%}"
              f"{r['at_successes']:>30d}{r['at_failures']:>10d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
