"""Env throughput of `panda-peg-insert` (train DR) on one thread against the raw MuJoCo limit of
the same worlds, and the scripted expert's success rate.

* ours: `make_env("panda-peg-insert", N, dr="train", nthread=1)` driven by the scripted expert
  (so the peg is in contact for much of the time, as in training), the full `env.step` (10
  physics steps of 4 ms, the held-axis IK with its two Jacobians, DR, observations, reward,
  automatic resets), expert time included.
* raw limit: `mujoco.rollout.Rollout` (one thread) stepping the same N worlds from the states the
  env reached (mid-insertion), with their controls held, `decimation` physics steps per env-step.
* expert: success of every episode that ended during the timed run (first episodes included),
  `torch.set_num_threads(1)`.

An env-step is one control step of one env (40 ms of simulated time). The per-CPU-second columns
(process time of this single-threaded process) are the figures to compare on a shared machine.

    python benchmarks/peg_insert_throughput.py             # N = 64, 128, 256; 300 steps each
    python benchmarks/peg_insert_throughput.py --quick     # N = 64; 60 steps
"""

from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np
import torch
from mujoco import rollout

from robot_rl.sim import make_env


def run(n: int, steps: int, seed: int = 0) -> dict:
    env = make_env("panda-peg-insert", n, dr="train", seed=seed, nthread=1)
    obs = env.reset()
    expert = env.task.expert(env, seed)
    expert.reset(env, torch.arange(n))
    for _ in range(40):  # into the insertion phase before timing
        obs, *_ = env.step(expert.act(env, obs))
    succ = []
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        obs, _, _, _, info = env.step(expert.act(env, obs))
        ep = info["episode"]
        if len(ep["env_ids"]):
            succ += ep["success"].tolist()
            expert.reset(env, ep["env_ids"])
    ours = n * steps / (time.perf_counter() - t0)
    ours_cpu = n * steps / (time.process_time() - c0)
    # the raw limit: the same worlds, from the states reached, controls held
    sim = env.sim
    state0 = sim.state.copy()
    ctrl = np.repeat(sim._ctrl, env.task.decimation, axis=1)
    pool = rollout.Rollout(nthread=0)
    datas = [mujoco.MjData(env.model)]
    k = max(1, steps // 5)  # 5 calls of k env-steps each
    out = np.empty((n, k * env.task.decimation, state0.shape[1]))
    ctrl_k = np.repeat(ctrl, k, axis=1)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(5):
        pool.rollout(sim.models, datas, state0, ctrl_k, nstep=k * env.task.decimation, state=out, skip_checks=True)
    raw = n * k * 5 / (time.perf_counter() - t0)
    raw_cpu = n * k * 5 / (time.process_time() - c0)
    return {"n": n, "ours": ours, "raw": raw, "ours_cpu": ours_cpu, "raw_cpu": raw_cpu, "episodes": len(succ), "success": float(np.mean(succ)) if succ else float("nan")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    torch.set_num_threads(1)
    sizes, steps = ([64], 60) if args.quick else ([64, 128, 256], args.steps)
    print("| envs | ours (env-steps/s) | raw MuJoCo rollout (env-steps/s) | ours / raw | ours per CPU-s | raw per CPU-s "
          "| ours / raw (CPU) | expert episodes | expert success |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        r = run(n, steps)
        print(f"| {n} | {r['ours']:.0f} | {r['raw']:.0f} | {r['ours'] / r['raw']:.2f} | {r['ours_cpu']:.0f} | "
              f"{r['raw_cpu']:.0f} | {r['ours_cpu'] / r['raw_cpu']:.2f} | {r['episodes']} | {r['success']:.1%} |")


if __name__ == "__main__":
    main()
