"""Wall-clock time to solve a task: our trainer against Stable-Baselines3 PPO, same env and budget.

"Solved" = the deterministic policy (action mean), run for one episode in each of `eval_episodes`
envs of the training DR range by `robot_rl.evaluate.run_episodes`, reaches the task's
`success_rate_to_solve` (iiwa-reach 0.95, cartpole-swingup 0.9). Both contenders are evaluated
this way every `--eval-interval` PPO iterations (rollout + update), the evaluation time counts as
training time for both, and both stop at the first evaluation that meets the threshold or at the
first iteration that ends past its budget (`--budget-s`; SB3 runs `--sb3-budget-s`, by default the
same).

* ours: `robot_rl.train.train(cfg)` with `cfg = task_defaults(task)`, `stop_at_success` = the
  threshold, `time_budget_s` = budget; `TrainResult.solved_at_s` is the time of the first
  evaluation that met it.
* SB3 as its users run it (the reference for the 5x target): `stable_baselines3.PPO("MlpPolicy")`
  on `--sb3-gym-envs` (8) Gymnasium envs of the same task (`robot_rl.sim.gym_env.GymEnv`: the
  same task code, DR and physics, one env each) vectorized by SB3's `make_vec_env` (DummyVecEnv),
  `--sb3-gym-steps` (256) steps per env per update, `VecNormalize`, and the knobs below as for
  the batched run. It is evaluated after as many env steps as ours between evaluations.
* SB3 on our batched env (isolates the learner; not the target): `stable_baselines3.PPO("MlpPolicy")`
  on the same `BatchedEnv` (same task, DR mode, seed,
  `num_envs`, physics threads) through `benchmarks/sb3_vecenv.py` (policy observation group;
  exact terminal observations for time-out bootstrapping), wrapped in `VecNormalize` (observation
  and reward normalization, as SB3 users do for continuous control; ours normalizes observations
  too). Hyperparameters follow ours where SB3 has the same knob: rollout length, epochs,
  minibatch count, gamma, lambda, clip range, entropy and value coefficients, grad-norm clip,
  [128, 128] ELU actor and critic, initial action std. SB3 has no KL-adaptive learning rate, so
  it is run with each of `--sb3-lr` (fixed) and its best run is the reference.
* Same seed, same torch thread count and physics threads (`--threads`, default 2), the process
  pinned to that many CPUs. The clock starts when the training loop starts (after env
  construction) for both.

Full run (quiet machine):  python benchmarks/time_to_solve.py
Smoke run:                 python benchmarks/time_to_solve.py --quick
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from robot_rl.sim import make_env
from robot_rl.sim.tasks import make_task
from sb3_vecenv import SB3VecEnv, check_terminal_obs

from robot_rl.config import task_defaults
from robot_rl.evaluate import run_episodes

TASKS = ("iiwa-reach", "cartpole-swingup")
DEFAULT_EVAL_INTERVAL = {"iiwa-reach": 5, "cartpole-swingup": 10}


def _configure(task: str, args, eval_interval: int):
    cfg = task_defaults(task)
    cfg.env.seed = args.seed
    cfg.env.nthread = args.threads
    if args.num_envs:
        cfg.env.num_envs = args.num_envs
    cfg.torch_threads = args.torch_threads or args.threads
    cfg.eval_interval = eval_interval
    cfg.eval_episodes = args.eval_episodes
    cfg.stop_at_success = make_task(task).success_rate_to_solve
    cfg.time_budget_s = args.budget_s
    cfg.max_iterations = 10**9
    cfg.progress = False
    return cfg


# --------------------------------------------------------------------------------------------
def run_ours(task: str, args, eval_interval: int, log_root: str) -> dict:
    from robot_rl.train import train

    cfg = _configure(task, args, eval_interval)
    cfg.log_root = log_root
    cfg.run_name = f"ours-{task}"
    res = train(cfg)
    evals = []
    with open(res.run_dir / "progress.csv") as f:
        for row in csv.DictReader(f):
            if row["eval_success"]:
                evals.append((float(row["wall_s"]), int(row["steps"]), float(row["eval_success"])))
    for wall, steps, succ in evals:
        print(f"    ours  {task}: eval at {wall:7.1f} s, {steps:>11,} steps: success {succ:.3f}", flush=True)
    return {
        "name": "ours (robot_rl.train)",
        "solved_at_s": res.solved_at_s,
        "steps": res.total_steps,
        "wall_s": res.wall_s,
        "best_eval": max((e[2] for e in evals), default=float("nan")),
        "num_envs": cfg.env.num_envs,
        "iterations": res.iterations,
        "budget_s": cfg.time_budget_s,
    }


def run_sb3(task: str, args, eval_interval: int, lr: float, vec: str = "batched") -> dict:
    """SB3 PPO on our batched env (`vec="batched"`: same num_envs and rollout length as ours) or,
    as SB3 users run it, on `--sb3-gym-envs` Gymnasium envs (`robot_rl.sim.gym_env.GymEnv`, the
    same task) in SB3's `DummyVecEnv` (`vec="gym"`: rollout length `--sb3-gym-steps` per env)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    cfg = _configure(task, args, eval_interval)
    cfg.time_budget_s = args.sb3_budget_s or args.budget_s
    p = cfg.ppo
    threshold = cfg.stop_at_success
    torch.set_num_threads(args.torch_threads or args.threads)
    if vec == "gym":
        from robot_rl.sim.gym_env import GymEnv

        n, T = args.sb3_gym_envs, args.sb3_gym_steps
        venv = make_vec_env(GymEnv, n_envs=n, seed=cfg.env.seed,
                            env_kwargs={"task": task, "dr": cfg.env.dr, "seed": cfg.env.seed})
        # evaluate after as many env steps as ours does between evaluations
        eval_interval = max(1, round(eval_interval * cfg.env.num_envs * p.num_steps_per_env / (n * T)))
    else:
        n, T = cfg.env.num_envs, p.num_steps_per_env
        venv = SB3VecEnv(task, n, dr=cfg.env.dr, seed=cfg.env.seed, nthread=args.threads)
    norm = None
    if not args.sb3_no_vecnormalize:
        venv = norm = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=p.gamma)
    eval_env = make_env(task, cfg.eval_episodes, dr=cfg.env.dr, seed=cfg.env.seed + 1000,
                        nthread=args.threads)
    act = {"elu": torch.nn.ELU, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "silu": torch.nn.SiLU}[p.activation]
    model = PPO(
        "MlpPolicy", venv, learning_rate=lr, n_steps=T, batch_size=n * T // p.num_mini_batches,
        n_epochs=p.num_learning_epochs, gamma=p.gamma, gae_lambda=p.lam, clip_range=p.clip_param,
        ent_coef=p.entropy_coef, vf_coef=p.value_loss_coef, max_grad_norm=p.max_grad_norm,
        policy_kwargs={"net_arch": {"pi": list(p.actor_hidden), "vf": list(p.critic_hidden)},
                       "activation_fn": act, "log_std_init": math.log(p.init_noise_std)},
        seed=cfg.env.seed, device="cpu", verbose=0,
    )

    def policy(obs: torch.Tensor) -> torch.Tensor:
        o = obs.cpu().numpy()
        if norm is not None:
            o = norm.normalize_obs(o)
        a, _ = model.predict(o, deterministic=True)
        return torch.as_tensor(a, dtype=torch.float32)

    out = {"solved_at_s": None, "steps": 0, "best_eval": float("nan")}

    class Solve(BaseCallback):
        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()
            self.updates = 0
            self.stop = False

        def _on_rollout_start(self) -> None:
            # called before every rollout, i.e. after `self.updates` rollout+update iterations
            if self.updates > 0:
                wall = time.perf_counter() - self.t0
                if self.updates % eval_interval == 0:
                    _, _, succ, _, _ = run_episodes(eval_env, policy)
                    s = float(succ.mean())
                    now = time.perf_counter() - self.t0
                    out["best_eval"] = s if math.isnan(out["best_eval"]) else max(out["best_eval"], s)
                    print(f"    sb3 ({vec}) {task} lr={lr:g}: eval at {now:7.1f} s, "
                          f"{self.model.num_timesteps:>11,} steps: success {s:.3f}", flush=True)
                    if s >= threshold:
                        out["solved_at_s"] = now
                        self.stop = True
                if wall >= cfg.time_budget_s:
                    self.stop = True
                if self.stop:
                    out["steps"] = self.model.num_timesteps
            self.updates += 1

        def _on_step(self) -> bool:
            return not self.stop

    cb = Solve()
    t0 = time.perf_counter()
    model.learn(total_timesteps=10**13, callback=cb)
    where = (f"{n} Gymnasium envs in DummyVecEnv, {T} steps/env/update" if vec == "gym"
             else "our batched env")
    out.update(name=f"SB3 PPO lr={lr:g}, {where}" + ("" if norm is not None else " (no VecNormalize)"),
               wall_s=time.perf_counter() - t0, num_envs=n, iterations=cb.updates - 1, vec=vec,
               budget_s=cfg.time_budget_s)
    if not out["steps"]:
        out["steps"] = model.num_timesteps
    return out


# --------------------------------------------------------------------------------------------
def _pin(threads: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))
    if threads > len(cpus):
        raise SystemExit(f"--threads {threads} but only {len(cpus)} CPUs are available to this process "
                         f"({cpus}); pass --threads {len(cpus)} or fewer")
    os.sched_setaffinity(0, cpus[:threads])
    return cpus[:threads]


def _t(r: dict) -> str:
    return f"{r['solved_at_s']:.1f}" if r["solved_at_s"] is not None else f"> {r['budget_s']:g}"


def _verdict(ours: dict, sb3: list[dict], target: bool) -> str:
    solved = [r for r in sb3 if r["solved_at_s"] is not None]
    best = min(solved, key=lambda r: r["solved_at_s"]) if solved else None
    if ours["solved_at_s"] is None:
        verdict = f"ours did not solve within {ours['budget_s']:g} s: no ratio"
        if best is not None:
            verdict += f" (SB3 solved in {best['solved_at_s']:.1f} s with {best['name']})"
        return verdict
    if best is None:
        budget = min(r["budget_s"] for r in sb3)
        lb = budget / ours["solved_at_s"]
        verdict = f"> {lb:.1f}x (no SB3 run solved within {budget:g} s; ours {ours['solved_at_s']:.1f} s)"
        if target:
            verdict += "; " + ("target met" if lb >= 5 else "lower bound below target: raise --sb3-budget-s to decide")
        return verdict
    r = best["solved_at_s"] / ours["solved_at_s"]
    verdict = (f"{r:.1f}x ({best['name']} {best['solved_at_s']:.1f} s / ours {ours['solved_at_s']:.1f} s; "
               f"env steps {best['steps']:,} vs {ours['steps']:,})")
    if target:
        verdict += "; " + ("target met" if r >= 5 else "target NOT met")
    return verdict


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--budget-s", type=float, default=300.0, help="wall-clock budget per contender and task")
    p.add_argument("--sb3-budget-s", type=float, default=0.0,
                   help="budget of the SB3 runs (default: --budget-s); a lower bound on the ratio is "
                        "this over our time, so give it >= 5x our time to decide the 5x target")
    p.add_argument("--threads", type=int, default=2, help="torch and physics threads (process pinned to as many CPUs)")
    p.add_argument("--torch-threads", type=int, default=0, help="torch threads for both contenders (default: --threads)")
    p.add_argument("--eval-interval", type=int, default=0,
                   help="iterations between evaluations (default: iiwa-reach 5, cartpole-swingup 10)")
    p.add_argument("--eval-episodes", type=int, default=256)
    p.add_argument("--num-envs", type=int, default=0, help="override the task default num_envs (both contenders)")
    p.add_argument("--sb3-lr", type=float, nargs="*", default=[1e-3, 3e-4],
                   help="fixed learning rates to run SB3 on our batched env with (none: skip those runs)")
    p.add_argument("--sb3-no-vecnormalize", action="store_true")
    p.add_argument("--sb3-gym-envs", type=int, default=8,
                   help="Gymnasium envs for SB3's own vectorization (DummyVecEnv, make_vec_env's default)")
    p.add_argument("--sb3-gym-steps", type=int, default=256, help="SB3 n_steps per Gymnasium env per update")
    p.add_argument("--sb3-gym-lr", type=float, nargs="*", default=[1e-3],
                   help="learning rates for the Gymnasium-env SB3 runs (none: skip them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-root", default="", help="keep our run directories here (default: a temp dir)")
    p.add_argument("--quick", action="store_true", help="smoke run: 15 s budgets, small evals, one SB3 lr")
    args = p.parse_args(argv)
    if args.quick:
        args.budget_s = 15.0
        args.sb3_budget_s = 0.0
        args.eval_episodes = 32
        args.eval_interval = args.eval_interval or 2
        args.sb3_lr = args.sb3_lr[:1]
        args.sb3_gym_lr = args.sb3_gym_lr[:1]

    cpus = _pin(args.threads)
    import stable_baselines3

    print(f"# time to solve: {args.threads} thread(s) on CPUs {cpus} (torch threads {args.torch_threads or args.threads}), budget {args.budget_s:g} s per contender "
          f"and task (SB3 {args.sb3_budget_s or args.budget_s:g} s), {args.eval_episodes} deterministic eval episodes (DR train), seed {args.seed}")
    print(f"# torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}, "
          f"python {sys.version.split()[0]}")
    for t in args.tasks:
        check_terminal_obs(t)
    print("# SB3 adapter: terminal observations checked against a non-resetting twin env", flush=True)

    results = {}
    with tempfile.TemporaryDirectory(prefix="time_to_solve-") as tmp:
        log_root = args.log_root or tmp
        for task in args.tasks:
            ei = args.eval_interval or DEFAULT_EVAL_INTERVAL[task]
            print(f"## {task}: threshold {make_task(task).success_rate_to_solve:g}, eval every {ei} iterations",
                  flush=True)
            rows = [run_ours(task, args, ei, log_root)]
            for lr in args.sb3_lr:
                rows.append(run_sb3(task, args, ei, lr))
            for lr in args.sb3_gym_lr:
                rows.append(run_sb3(task, args, ei, lr, vec="gym"))
            results[task] = rows

    print()
    print("## Time to solve (wall-clock s until the deterministic policy meets the threshold; '> budget' if never)")
    hdr = ["task", "contender", "num_envs", "solved at (s)", "env steps", "iterations", "best eval success"]
    lines = []
    for task, rows in results.items():
        for r in rows:
            lines.append([task, r["name"], str(r["num_envs"]), _t(r), f"{r['steps']:,}", str(r["iterations"]),
                          "no eval yet" if math.isnan(r["best_eval"]) else f"{r['best_eval']:.3f}"])
    w = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(hdr)]
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for l in lines:
        print("| " + " | ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(l)) + " |")

    print()
    print("## SB3 (best run of each kind) / ours; target >= 5x against SB3 as its users run it (Gymnasium envs)")
    for task, rows in results.items():
        ours = rows[0]
        for vec, label in (("gym", "SB3 on Gymnasium envs (DummyVecEnv)"),
                           ("batched", "SB3 on our batched env (learner only, not the target)")):
            sb3 = [r for r in rows[1:] if r["vec"] == vec]
            if sb3:
                print(f"- {task}, {label}: {_verdict(ours, sb3, vec == 'gym')}")
    if args.quick:
        print("(--quick: smoke-run budgets; not a measurement to report)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
