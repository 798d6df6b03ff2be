"""`robot-rl distill`: teacher-student distillation (RMA, HIB) into a deployable recurrent student.

A privileged teacher (`robot-rl train --ppo.actor-obs critic`) acts on the `critic` observation
group: noise-free state plus the sampled DR parameters (masses, payload, gains, delays). A robot has
none of those, so the teacher is never exported. Its student is an ordinary `recurrent` policy on
the `policy` group (noisy, delayed proprioception and the command): its GRU memory over the
proprioceptive history has to infer what the teacher is told (implicit system identification).

DAgger, as rsl_rl's distillation runner: the student drives the training env (its deterministic
action, plus optional Gaussian noise) under the training DR range; on a fraction `beta` of env
steps the teacher's action is executed instead, `beta` falling linearly from `teacher_action_prob`
to 0 over the first `teacher_action_iterations` iterations. Every visited step is labelled with the
teacher's deterministic action on the privileged observation (clipped to the action range the env
applies). The loss is the squared error over whole env trajectories of each rollout: truncated BPTT
from the memory stored at the rollout's first step, carried between rollouts and cleared at episode
ends, exactly as PPO trains the recurrent kind (`sequence_mean`).

The student is saved as a normal `recurrent` checkpoint whose training config is the teacher's with
the student's policy (plus a `distill` section), so `robot-rl export`, `robot-rl eval`, the policy
node and the twin use it unchanged. The teacher's critic, its normalizer and action std are copied
into the student (`copy_critic`), so that the checkpoint is a complete actor-critic for a later PPO
fine-tune (not wired to a command yet).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from robot_rl import checkpoint as ckpt
from robot_rl.config import TrainConfig, to_dict
from robot_rl.evaluate import evaluate, load_policy
from robot_rl.policies import DeterministicActor, build_actor_critic
from robot_rl.policies.base import ActorCritic


class DistillError(ValueError):
    pass


@dataclass
class StudentConfig:
    rnn_type: Literal["gru", "lstm"] = "gru"
    rnn_hidden: int = 64
    rnn_layers: int = 1
    actor_hidden: tuple[int, ...] = (128, 128)
    """MLP head after the recurrent layer."""


@dataclass
class DistillConfig:
    teacher: str
    """Run directory (its latest checkpoint) or checkpoint file of the teacher, trained with
    `robot-rl train TASK --ppo.actor-obs critic`."""
    task: str = ""
    """Task to distill on (default: the teacher's); a teacher of another task is refused."""
    student: StudentConfig = field(default_factory=StudentConfig)
    num_envs: int = 0
    """Envs to roll out in (0 = the teacher's)."""
    seed: int = -1
    """Env and student seed (-1 = the teacher's)."""
    num_steps_per_env: int = 32
    """Rollout length: the truncated-BPTT window."""
    num_learning_epochs: int = 1
    num_mini_batches: int = 4
    """Minibatches of whole env trajectories per epoch."""
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    teacher_action_prob: float = 0.5
    """DAgger's beta at the start: the share of env steps that execute the teacher's action."""
    teacher_action_iterations: int = 20
    """Iterations over which beta falls linearly to 0 (from then on the student acts alone)."""
    action_noise_std: float = 0.0
    """Gaussian noise on the student's executed action (the label stays the teacher's mean)."""
    max_iterations: int = 1000
    time_budget_s: float = 0.0
    """Stop after this many seconds of distillation (0 = no limit)."""
    copy_critic: bool = True
    """Copy the teacher's critic, its normalizer and action std into the student (for a later PPO fine-tune)."""
    eval_episodes: int = 200
    """Episodes per DR range (training and held-out) for the final teacher/student report (0 = none)."""
    save_interval: int = 50
    log_root: str = "runs"
    run_name: str = ""
    """Run directory name under `log_root` (default: `<teacher run>-student`)."""
    torch_threads: int = 0
    """Threads for torch's update step; 0 = one per available core."""
    progress: bool = True

    def validate(self) -> None:
        for name in ("num_steps_per_env", "num_learning_epochs", "num_mini_batches", "max_iterations",
                     "save_interval"):
            if getattr(self, name) < 1:
                raise DistillError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise DistillError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.teacher_action_prob <= 1.0:
            raise DistillError(f"teacher_action_prob must be in [0, 1], got {self.teacher_action_prob}")
        if self.action_noise_std < 0 or self.num_envs < 0 or self.eval_episodes < 0:
            raise DistillError("action_noise_std, num_envs and eval_episodes must be >= 0")
        if self.student.rnn_hidden < 1 or self.student.rnn_layers < 1:
            raise DistillError("student.rnn_hidden and student.rnn_layers must be >= 1")


@dataclass
class DistillResult:
    run_dir: Path
    checkpoint: Path
    teacher: str
    iterations: int
    total_steps: int
    wall_s: float
    action_mse_initial: float
    """Student vs teacher, squared action error on the student's own deterministic rollouts, before training."""
    action_mse_final: float
    success: dict = field(default_factory=dict)
    """{"teacher"|"student": {"train"|"eval": success rate}} (deterministic, `eval_episodes` each)."""


def load_teacher(cfg: DistillConfig) -> tuple[ActorCritic, TrainConfig, dict]:
    ac, tcfg, tck = load_policy(cfg.teacher)
    if cfg.task and tck["task"] != cfg.task:
        raise DistillError(f"teacher {tck['path']} was trained on task {tck['task']!r}, not {cfg.task!r}; give a "
                           f"teacher of {cfg.task!r} (robot-rl train {cfg.task} --ppo.actor-obs critic) "
                           "or leave out --task")
    return ac, tcfg, tck


def student_config(tcfg: TrainConfig, cfg: DistillConfig, run_name: str) -> TrainConfig:
    """The student's training config: the teacher's, with a recurrent actor on the `policy` group."""
    s = cfg.student
    ppo = dataclasses.replace(tcfg.ppo, policy="recurrent", actor_obs="policy", rnn_type=s.rnn_type,
                              rnn_hidden=s.rnn_hidden, rnn_layers=s.rnn_layers, actor_hidden=tuple(s.actor_hidden),
                              learning_rate=cfg.learning_rate)
    env = dataclasses.replace(tcfg.env, num_envs=cfg.num_envs or tcfg.env.num_envs,
                              seed=tcfg.env.seed if cfg.seed < 0 else cfg.seed)
    return dataclasses.replace(tcfg, env=env, ppo=ppo, log_root=cfg.log_root, run_name=run_name, resume="",
                               time_budget_s=cfg.time_budget_s, max_iterations=cfg.max_iterations,
                               progress=cfg.progress, torch_threads=cfg.torch_threads)


@torch.no_grad()
def action_error(env, student: ActorCritic, teacher: ActorCritic, steps: int) -> float:
    """Mean squared error of the student's deterministic actions to the teacher's (clipped to
    [-1, 1]) along `steps` steps of the student's own rollouts in `env` (memory cleared at episode ends)."""
    s, t = DeterministicActor(student, env.num_envs), DeterministicActor(teacher, env.num_envs)
    obs, total = env.reset(), 0.0
    for _ in range(steps):
        a = s(obs["policy"])
        total += float((a.clamp(-1, 1) - t(obs[t.obs_group]).clamp(-1, 1)).pow(2).mean())
        obs, _, term, trunc, _ = env.step(a)
        s.reset(term | trunc)
        t.reset(term | trunc)
    return total / steps


def distill(cfg: DistillConfig) -> DistillResult:
    """Validate everything first, then create the run directory and distill."""
    from robot_rl.sim import make_env
    from robot_rl.train import make_run_dir

    cfg.validate()
    teacher, tcfg, tck = load_teacher(cfg)
    teacher_run = Path(tck["path"]).parent.parent
    scfg = student_config(tcfg, cfg, cfg.run_name or f"{teacher_run.name}-student")
    scfg.validate()
    if (Path(scfg.log_root) / scfg.run_name).exists():
        raise DistillError(f"run directory {Path(scfg.log_root) / scfg.run_name} already exists; choose another --run-name")
    threads = cfg.torch_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(scfg.env.seed)
    e = scfg.env
    env = make_env(e.task, e.num_envs, dr=e.dr, seed=e.seed, backend=e.backend, device=e.device,
                   nthread=e.nthread or None, physics_variants=e.physics_variants)
    if tck["num_obs"] != env.num_obs or tck["num_actions"] != env.num_actions:
        raise DistillError(f"teacher {tck['path']} has observation/action sizes {tck['num_obs']}/{tck['num_actions']}, "
                           f"task {e.task!r} gives {env.num_obs}/{env.num_actions}: it was trained for another robot "
                           "or version of the task; train a new teacher")
    if tcfg.ppo.actor_obs == "policy":
        print(f"note: teacher {tck['path']} is not privileged (its actor reads the policy group); distilling it "
              "anyway (behaviour cloning into a recurrent student)", file=sys.stderr)
    teacher = teacher.to(env.device)
    student = build_actor_critic(scfg, env.num_obs, env.num_actions).to(env.device)
    if cfg.copy_critic:  # same config, same critic: a PPO fine-tune would start from a trained value
        for name in ("critic", "critic_norm"):
            getattr(student, name).load_state_dict(getattr(teacher, name).state_dict())
        with torch.no_grad():
            student.log_std.copy_(teacher.log_std)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.learning_rate)
    gen = torch.Generator(device="cpu").manual_seed(scfg.env.seed)

    check_env = make_env(e.task, min(64, e.num_envs), dr=e.dr, seed=e.seed + 2000, backend=e.backend, device=e.device,
                         nthread=1, physics_variants=e.physics_variants)
    mse0 = action_error(check_env, student, teacher, env.max_episode_length)

    run = make_run_dir(scfg)
    saved_config = {**to_dict(scfg), "distill": {**to_dict(cfg), "teacher_checkpoint": tck["path"]}}
    (run / "config.json").write_text(json.dumps(saved_config, indent=2))
    (run / "command.txt").write_text(shlex.join(sys.argv) + "\n")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run / "tensorboard"))
    progress_csv = (run / "progress.csv").open("w")
    progress_csv.write("iteration,steps,wall_s,action_mse,beta,success,episode_length,steps_per_s\n")
    total_steps = 0

    def save(it: int) -> Path:
        path = run / "checkpoints" / f"model_{it}.pt"
        ckpt.save(path, task=e.task, kind=scfg.ppo.policy, num_obs=env.num_obs, num_actions=env.num_actions,
                  model=student.state_dict(), optimizer=optimizer.state_dict(), iteration=it,
                  learning_rate=cfg.learning_rate, total_steps=total_steps, config=saved_config)
        return path

    N, T, A = env.num_envs, cfg.num_steps_per_env, env.num_actions
    obs_buf = torch.zeros(T, N, env.num_obs["policy"], device=env.device)
    label_buf = torch.zeros(T, N, A, device=env.device)
    done_buf = torch.zeros(T, N, dtype=torch.bool, device=env.device)
    t_actor = DeterministicActor(teacher, N)
    memory = student.initial_memory(N)
    obs = env.reset()
    env.randomize_episode_start()
    successes, lengths = collections.deque(maxlen=max(N, 256)), collections.deque(maxlen=max(N, 256))
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_iterations, desc=f"distill {e.task}", unit="it", dynamic_ncols=True, file=sys.stdout)
    t0 = time.perf_counter()
    it, last_ckpt = 0, None
    while it < cfg.max_iterations:
        it_start = time.perf_counter()
        beta = cfg.teacher_action_prob * max(0.0, 1.0 - it / max(1, cfg.teacher_action_iterations))
        memory0 = memory.clone()
        torch.set_num_threads(1)  # small per-step tensors; the cores go to the physics threads
        with torch.no_grad():
            for t in range(T):
                student.actor_norm.update(obs["policy"])
                label = t_actor(obs[t_actor.obs_group]).clamp(-1.0, 1.0)
                mean, memory = student.act_step(obs["policy"], memory)
                action = mean
                if cfg.action_noise_std > 0:
                    action = mean + cfg.action_noise_std * torch.randn(mean.shape, generator=gen).to(env.device)
                if beta > 0:
                    use_teacher = (torch.rand(N, generator=gen) < beta).to(env.device)
                    action = torch.where(use_teacher[:, None], label, action)
                obs_buf[t], label_buf[t] = obs["policy"], label
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated | truncated
                done_buf[t] = done
                memory = student.reset_memory(memory, done)
                t_actor.reset(done)
                ep = info["episode"]
                if len(ep["env_ids"]):
                    successes.extend(ep["success"].tolist())
                    lengths.extend(ep["length"].tolist())
        torch.set_num_threads(threads)
        # DAgger update: squared error to the teacher over whole env trajectories (truncated BPTT)
        starts = torch.zeros_like(done_buf)
        starts[1:] = done_buf[:-1]
        n = max(1, N // cfg.num_mini_batches)
        losses = []
        for _ in range(cfg.num_learning_epochs):
            perm = torch.randperm(N, generator=gen).to(env.device)
            for i in range(max(1, N // n)):
                envs = perm[i * n : (i + 1) * n]
                pred = student.sequence_mean(obs_buf[:, envs], student.select_memory(memory0, envs), starts[:, envs])
                loss = (pred - label_buf[:, envs]).pow(2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.max_grad_norm)
                optimizer.step()
                losses.append(loss.item())
        it += 1
        total_steps += T * N
        wall = time.perf_counter() - t0
        sps = T * N / (time.perf_counter() - it_start)
        mse = losses[0]  # the first minibatch's loss: before this rollout's updates, on the data just collected
        success = sum(successes) / len(successes) if successes else 0.0
        mean_len = sum(lengths) / len(lengths) if lengths else 0.0
        for k, v in (("distill/action_mse", mse), ("distill/beta", beta), ("reward/success_rate", success),
                     ("reward/episode_length", mean_len), ("perf/steps_per_s", sps)):
            writer.add_scalar(k, v, it)
        progress_csv.write(f"{it},{total_steps},{wall:.2f},{mse:.6f},{beta:.3f},{success:.4f},{mean_len:.1f},{sps:.0f}\n")
        progress_csv.flush()
        if bar is not None:
            bar.set_postfix(mse=f"{mse:.4f}", beta=f"{beta:.2f}", success=f"{success:.2f}", sps=f"{sps:,.0f}")
            bar.update(1)
        if it % cfg.save_interval == 0:
            last_ckpt = save(it)
        if cfg.time_budget_s > 0 and wall >= cfg.time_budget_s:
            break
    if bar is not None:
        bar.close()
    if last_ckpt is None or not last_ckpt.name.endswith(f"_{it}.pt"):
        last_ckpt = save(it)
    wall_s = time.perf_counter() - t0
    writer.close()
    progress_csv.close()
    torch.set_num_threads(1)
    mse1 = action_error(check_env, student.eval(), teacher, env.max_episode_length)
    result = DistillResult(run, last_ckpt, tck["path"], it, total_steps, wall_s, mse0, mse1)
    for dr in ("train", "eval") if cfg.eval_episodes else ():
        for who, path in (("teacher", tck["path"]), ("student", last_ckpt)):
            r = evaluate(path, cfg.eval_episodes, dr, seed=1, report=run / f"eval_{who}_{dr}.json")
            result.success.setdefault(who, {})[dr] = r["success_rate"]
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    return result


def success_table(r: DistillResult) -> str:
    """Teacher and student success on the training and the held-out DR range, as printed lines."""
    rows = [f"{'success (deterministic)':<38}{'train DR':>10}{'held-out DR':>13}"]
    for who, label in (("teacher", "teacher (privileged, not deployable)"), ("student", "student (recurrent, deployable)")):
        s = r.success.get(who, {})
        rows.append(f"{label:<38}" + "".join(f"{s[dr]:>{w}.1%}" if dr in s else f"{'-':>{w}}"
                                                for dr, w in (("train", 10), ("eval", 13))))
    return "\n".join(rows)
