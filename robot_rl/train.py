"""Training loop: collect rollouts from the batched env, update PPO, log, checkpoint, resume."""

from __future__ import annotations

import collections
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from robot_rl import checkpoint as ckpt
from robot_rl.config import TrainConfig, to_dict
from robot_rl.evaluate import run_episodes
from robot_rl.policies import DeterministicActor, build_actor_critic
from robot_rl.ppo import PPO
from robot_rl.residual import residual_env


def make_run_dir(cfg: TrainConfig) -> Path:
    name = cfg.run_name or f"{cfg.env.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = Path(cfg.log_root) / name
    if run.exists():
        raise ValueError(f"run directory {run} already exists; choose another --run-name, "
                         f"or continue it with --resume {run}")
    run.mkdir(parents=True, exist_ok=True)
    return run


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    iterations: int
    total_steps: int
    wall_s: float
    success: float
    eval_success: float | None
    mean_return: float
    solved_at_s: float | None
    nan_resets: int = 0
    adr: dict | None = None
    """Initial, outer-bound and reached DR ranges when automatic DR was on."""
    best_checkpoint: Path | None = None
    """`checkpoints/best.pt`: the policy at the best in-training deterministic evaluation (on its own
    env seed, `env.seed + 1000`), as SB3's EvalCallback keeps it; None without evaluations."""
    best_eval_success: float | None = None
    best_iteration: int | None = None


def train(cfg: TrainConfig) -> TrainResult:
    """Validate everything first, then create the run directory and train."""
    from robot_rl.sim import make_env

    cfg.validate()
    resume = ckpt.load(cfg.resume, task=cfg.env.task) if cfg.resume else None
    threads = cfg.torch_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.env.seed)
    env = residual_env(cfg, make_env(cfg.env.task, cfg.env.num_envs, dr=cfg.env.dr, seed=cfg.env.seed,
                                     backend=cfg.env.backend, device=cfg.env.device,
                                     nthread=cfg.env.nthread or None, physics_variants=cfg.env.physics_variants))
    adr = None
    if cfg.adr.enabled:  # automatic DR: the ranges start at the task's and move with success at their ends
        from robot_rl.adr import ADR

        adr = ADR(env.dr, cfg.adr, bounds=env.task.dr.adr_bounds, where=f"{cfg.env.task} adr")
        if resume is not None and resume.get("adr") is not None:
            adr.load_state_dict(resume["adr"])
        env.set_dr(adr.dr, adr.boundary(), cfg.adr.boundary_fraction)
    ac = build_actor_critic(cfg, env.num_obs, env.num_actions).to(env.device)
    actor_obs = cfg.ppo.actor_obs  # "policy", or "critic" for a privileged teacher
    ppo = PPO(ac, cfg.ppo, env.num_envs, env.num_obs[actor_obs], env.num_obs["critic"],
              env.num_actions, env.device, seed=cfg.env.seed)
    start_it, total_steps = 0, 0
    if resume is not None:
        if resume["num_obs"] != env.num_obs or resume["num_actions"] != env.num_actions:
            raise ckpt.CheckpointError(f"checkpoint {resume['path']} has observation/action sizes "
                                       f"{resume['num_obs']}/{resume['num_actions']}, this env "
                                       f"{env.num_obs}/{env.num_actions}")
        ckpt.load_state(ac, resume["model"], resume["path"])
        ppo.optimizer.load_state_dict(resume["optimizer"])
        ppo.lr = resume["learning_rate"]
        start_it, total_steps = resume["iteration"], resume["total_steps"]

    run = Path(cfg.resume).parent.parent if resume and Path(cfg.resume).is_file() else (
        Path(cfg.resume) if resume else make_run_dir(cfg))
    (run / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    (run / "command.txt").write_text(shlex.join(sys.argv) + "\n")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run / "tensorboard"), purge_step=start_it or None)
    progress_csv = (run / "progress.csv").open("a")
    if start_it == 0:
        progress_csv.write("iteration,steps,wall_s,mean_return,success,episode_length,steps_per_s,eval_success\n")

    def save(it: int, name: str | None = None) -> Path:
        path = run / "checkpoints" / (name or f"model_{it}.pt")
        ckpt.save(path, task=cfg.env.task, kind=cfg.ppo.policy, num_obs=env.num_obs, num_actions=env.num_actions,
                  model=ac.state_dict(), optimizer=ppo.optimizer.state_dict(), iteration=it,
                  learning_rate=ppo.lr, total_steps=total_steps, config=to_dict(cfg),
                  adr=adr.state_dict() if adr is not None else None)
        return path

    obs = env.reset()
    env.randomize_episode_start()
    window = max(env.num_envs, 256)
    returns = collections.deque(maxlen=window)
    successes = collections.deque(maxlen=window)
    lengths = collections.deque(maxlen=window)
    T = cfg.ppo.num_steps_per_env
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_iterations, initial=start_it, desc=f"train {cfg.env.task}",
                   unit="it", dynamic_ncols=True, file=sys.stdout)
    eval_env = None
    if cfg.eval_interval > 0:
        eval_env = residual_env(cfg, make_env(cfg.env.task, cfg.eval_episodes, dr=cfg.env.dr,
                                              seed=cfg.env.seed + 1000, backend=cfg.env.backend,
                                              device=cfg.env.device, nthread=cfg.env.nthread or None,
                                              physics_variants=cfg.env.physics_variants))
    eval_success = None
    best: dict = {}
    nan_resets = logged_nan = 0
    t0 = time.perf_counter()
    solved_at = None
    it = start_it
    last_ckpt = None
    success = mean_ret = 0.0  # what a resumed run with no iteration left reports
    while it < cfg.max_iterations:
        it_start = time.perf_counter()
        # small per-step tensors: one torch thread, leaving the cores to the physics threads
        torch.set_num_threads(1)
        with torch.inference_mode():
            for _ in range(T):
                ac.update_normalization(obs[actor_obs], obs["critic"])
                actions, logp, mu, sigma, values = ppo.act(obs[actor_obs], obs["critic"])
                next_obs, reward, terminated, truncated, info = env.step(actions)
                # bootstrap the value of states cut by a time-out (rsl_rl does the same)
                reward = reward + cfg.ppo.gamma * values * truncated.float()
                done = terminated | truncated
                ppo.storage.add(obs[actor_obs], obs["critic"], actions, logp, mu, sigma, values, reward, done.float())
                ppo.episode_ended(done)
                ep = info["episode"]
                if len(ep["env_ids"]):
                    returns.extend(ep["return"].tolist())
                    successes.extend(ep["success"].tolist())
                    lengths.extend(ep["length"].tolist())
                    if adr is not None and adr.update(ep["dr_boundary"], ep["success"]):
                        env.set_dr(adr.dr, adr.boundary(), cfg.adr.boundary_fraction)
                nan_resets += info["nan_resets"]
                obs = next_obs
            last_values = ac.value(obs["critic"])
            ppo.storage.compute_returns(last_values, cfg.ppo.gamma, cfg.ppo.lam)
        collect_s = time.perf_counter() - it_start
        torch.set_num_threads(threads)
        stats = ppo.update()
        it += 1
        steps = T * env.num_envs
        total_steps += steps
        wall = time.perf_counter() - t0
        sps = steps / (time.perf_counter() - it_start)
        mean_ret = sum(returns) / len(returns) if returns else 0.0
        success = sum(successes) / len(successes) if successes else 0.0
        mean_len = sum(lengths) / len(lengths) if lengths else 0.0
        for k, v in (("reward/mean_episode_return", mean_ret), ("reward/success_rate", success),
                     ("reward/episode_length", mean_len), ("loss/value", stats.value_loss),
                     ("loss/surrogate", stats.surrogate_loss), ("loss/entropy", stats.entropy),
                     ("policy/kl", stats.kl), ("policy/learning_rate", stats.learning_rate),
                     ("policy/action_std", stats.action_std), ("perf/steps_per_s", sps),
                     ("perf/collect_s", collect_s), ("env/nan_resets", nan_resets)):
            writer.add_scalar(k, v, it)
        if adr is not None:
            for name, (lo, hi) in adr.ranges.items():
                writer.add_scalar(f"adr/{name}/lo", lo, it)
                writer.add_scalar(f"adr/{name}/hi", hi, it)
            writer.add_scalar("adr/decisions", adr.decisions, it)
        progress_line = f"{it},{total_steps},{wall:.2f},{mean_ret:.4f},{success:.4f},{mean_len:.1f},{sps:.0f}"
        if bar is not None:
            bar.set_postfix(ret=f"{mean_ret:.2f}", success=f"{success:.2f}", sps=f"{sps:,.0f}")
            bar.update(1)
        if nan_resets > logged_nan:
            logged_nan = nan_resets
            msg = (f"iteration {it}: {nan_resets} env(s) reset after a NaN/Inf physics state so far "
                   "(transition marked terminated, reward 0); training goes on")
            bar.write(msg) if bar is not None else print(msg, file=sys.stderr)
        if it % cfg.save_interval == 0:
            last_ckpt = save(it)
        eval_field = ""
        if eval_env is not None and it % cfg.eval_interval == 0:
            torch.set_num_threads(1)
            _, _, succ, _, _ = run_episodes(eval_env, DeterministicActor(ac, eval_env.num_envs))
            eval_success = float(succ.mean())
            eval_field = f"{eval_success:.4f}"
            if eval_success > best.get("success", -1.0):
                best.update(success=eval_success, iteration=it, path=save(it, "best.pt"))
            writer.add_scalar("eval/success_rate", eval_success, it)
            if bar is not None:
                bar.write(f"iteration {it}: deterministic success {eval_success:.1%} "
                          f"({cfg.eval_episodes} episodes, {time.perf_counter() - t0:.0f} s)")
        progress_csv.write(f"{progress_line},{eval_field}\n")
        progress_csv.flush()
        ref = eval_success if eval_env is not None else (success if len(successes) >= window else None)
        if ref is not None and solved_at is None and ref >= env.task.success_rate_to_solve:
            solved_at = time.perf_counter() - t0
        if cfg.stop_at_success > 0 and ref is not None and ref >= cfg.stop_at_success:
            break
        if cfg.time_budget_s > 0 and wall >= cfg.time_budget_s:
            break
    if bar is not None:
        bar.close()
    if last_ckpt is None or not last_ckpt.name.endswith(f"_{it}.pt"):
        last_ckpt = save(it)
    writer.close()
    progress_csv.close()
    result = TrainResult(run, last_ckpt, it, total_steps, time.perf_counter() - t0,
                         success, eval_success, mean_ret, solved_at, nan_resets,
                         adr.describe() if adr is not None else None, best.get("path"), best.get("success"),
                         best.get("iteration"))
    plot_learning_curve(run / "progress.csv", run / "learning_curve.png", cfg.env.task)
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    return result


def plot_learning_curve(csv: Path, png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [line.split(",") for line in csv.read_text().splitlines()[1:] if line]
    steps = [int(r[1]) for r in rows]
    ret = [float(r[3]) for r in rows]
    succ = [float(r[4]) for r in rows]
    evals = [(int(r[1]), float(r[7])) for r in rows if len(r) > 7 and r[7]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, ret, color="tab:blue")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episode return", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(steps, succ, color="tab:green", label="training episodes (sampled actions)")
    if evals:
        ax2.plot(*zip(*evals), "o-", color="tab:red", markersize=3, label="deterministic policy")
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_ylabel("success rate", color="tab:green")
    ax2.set_ylim(-0.02, 1.02)
    ax.set_title(f"{title}: learning curve")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
