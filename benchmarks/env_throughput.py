"""Env throughput of `iiwa-reach` (DR on) against the raw MuJoCo limit and Gymnasium's vector envs.

Everything runs in this one process (and, for AsyncVectorEnv, its worker processes) pinned to the
same `--threads` CPUs, on the same model (`env.model`, i.e. `models/iiwa14/iiwa14.xml`):

* ours: `make_env("iiwa-reach", N, dr="train", nthread=threads)`, random actions in [-1, 1], the
  full `env.step` (physics, DR pushes, observations with noise/delay, reward, automatic resets).
  Episode clocks are spread (`randomize_episode_start`, as in training) so resets happen at their
  steady-state rate (1 in 300 steps) inside any timing window. Physics DR comes from the default
  bank of 256 continually re-sampled models (`--physics-variants`); the column "ours, exact" is the
  same env with one model per env (`physics_variants=0`), sampled exactly at each reset.
* raw limit: `mujoco.rollout.Rollout(nthread=threads)` stepping the same N worlds (the models of
  our env) `--nstep` physics steps per call, random position targets held for `decimation`
  physics steps; reported as env-steps/s = mj_steps/s / decimation.
* mj_step loop: one MjModel/MjData stepped by `mujoco.mj_step` in a Python loop on one thread,
  times `threads` (an ideal-scaling sanity line; includes Python call overhead).
* Gymnasium: a `gymnasium.Env` over one MjModel/MjData of the same XML, same decimation and the
  same relative joint-position action (q_cmd += 0.05 * action, clipped to the joint range), a
  37-float observation like ours (joint pos/vel, flange pos, target, flange-to-target, command
  offset, last action), reward = -distance to a random target, truncation at 100 steps; vectorized
  by `SyncVectorEnv` and `AsyncVectorEnv` (one process per env) in SAME_STEP autoreset mode.
  "Gymnasium best" is the highest env-steps/s among the configurations tried.

An env-step is one control step of one env (= `decimation` physics steps).

Full run (quiet machine):  python benchmarks/env_throughput.py
Smoke run:                 python benchmarks/env_throughput.py --quick
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces
from mujoco import rollout

TASK = "iiwa-reach"
_STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


# --------------------------------------------------------------------------------------------
# Gymnasium reference env (numpy + mujoco only, so AsyncVectorEnv workers stay light)
# --------------------------------------------------------------------------------------------
class IiwaReachGym(gymnasium.Env):
    """One iiwa14 world: relative joint-position targets, reward = -distance to a random target."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(self, xml_path: str, joint_names: tuple[str, ...], default_pose: tuple[float, ...],
                 decimation: int = 4, max_steps: int = 100, action_scale: float = 0.05,
                 target_lo=(0.35, -0.30, 0.30), target_hi=(0.65, 0.30, 0.70), reset_noise: float = 0.3):
        self.model = mujoco.MjModel.from_xml_path(xml_path)
        self.data = mujoco.MjData(self.model)
        m = self.model
        jids = [m.joint(n).id for n in joint_names]
        self.qadr = np.array([m.jnt_qposadr[j] for j in jids])
        self.vadr = np.array([m.jnt_dofadr[j] for j in jids])
        self.q_lo = m.jnt_range[jids, 0].copy()
        self.q_hi = m.jnt_range[jids, 1].copy()
        sid = m.sensor("frame/ee").id
        self.ee = slice(int(m.sensor_adr[sid]), int(m.sensor_adr[sid]) + 3)
        self.default = np.asarray(default_pose, dtype=np.float64)
        self.decimation = decimation
        self.max_steps = max_steps
        self.action_scale = action_scale
        self.t_lo, self.t_hi = np.asarray(target_lo), np.asarray(target_hi)
        self.reset_noise = reset_noise
        na = len(jids)
        self.action_space = spaces.Box(-1.0, 1.0, (na,), np.float32)
        # joint pos, joint vel, flange pos, target, flange-to-target, command offset, last action
        self.observation_space = spaces.Box(-np.inf, np.inf, (4 * na + 9,), np.float32)
        self.q_cmd = self.default.copy()
        self.target = np.zeros(3)
        self.last_action = np.zeros(na)
        self.steps = 0

    def _obs(self) -> np.ndarray:
        d = self.data
        q = d.qpos[self.qadr]
        ee = d.sensordata[self.ee]
        return np.concatenate([
            q - self.default, 0.1 * d.qvel[self.vadr], ee, self.target, 4.0 * (self.target - ee),
            4.0 * (self.q_cmd - q), self.last_action,
        ]).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        q = np.clip(self.default + self.np_random.uniform(-self.reset_noise, self.reset_noise, self.default.shape),
                    self.q_lo, self.q_hi)
        d.qpos[self.qadr] = q
        self.q_cmd = q.copy()
        d.ctrl[:] = q
        self.target = self.np_random.uniform(self.t_lo, self.t_hi)
        self.last_action[:] = 0.0
        self.steps = 0
        mujoco.mj_forward(m, d)
        return self._obs(), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.q_cmd = np.clip(self.q_cmd + self.action_scale * a, self.q_lo, self.q_hi)
        m, d = self.model, self.data
        d.ctrl[:] = self.q_cmd
        for _ in range(self.decimation):
            mujoco.mj_step(m, d)
        self.last_action = a
        self.steps += 1
        dist = float(np.linalg.norm(self.target - d.sensordata[self.ee]))
        return self._obs(), -dist, False, self.steps >= self.max_steps, {}


def _gym_env_fn(spec: dict):
    return IiwaReachGym(**spec)


# --------------------------------------------------------------------------------------------
# timing helpers
# --------------------------------------------------------------------------------------------
def _timed(step, seconds: float, min_calls: int, warmup: int) -> tuple[int, float]:
    for _ in range(warmup):
        step()
    calls, t0 = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        el = time.perf_counter() - t0
        if el >= seconds and calls >= min_calls:
            return calls, el


def ours_stepper(n: int, threads: int, seed: int, physics_variants: int, backend: str = "mujoco"):
    """(step function, env): `env.step` with random actions in [-1, 1], episode clocks spread."""
    import torch
    from robot_rl.sim import make_env

    env = make_env(TASK, n, dr="train", seed=seed, nthread=threads, physics_variants=physics_variants,
                   backend=backend, device="cpu")
    env.reset()
    env.randomize_episode_start()
    gen = torch.Generator().manual_seed(seed)
    a = env.num_actions

    def step():
        env.step(torch.rand(n, a, generator=gen) * 2.0 - 1.0)

    for _ in range(5):
        step()
    return step, env


def rollout_stepper(models: list, init_state: np.ndarray, q_lo: np.ndarray, q_hi: np.ndarray,
                    decimation: int, threads: int, nstep: int, seed: int,
                    default_pose: np.ndarray, action_scale: float):
    """Raw physics limit: (step function, env-steps per call, pool to close).

    Same per-env models as ours (the DR-sampled copies of the env), same kind of control (joint
    targets moved by up to `action_scale` per control step, as the task's actions do), but many
    physics steps per call and no Python in between."""
    n = init_state.shape[0]
    model = models[0]
    datas = [mujoco.MjData(model) for _ in range(threads)]
    rng = np.random.default_rng(seed)
    nctrl = -(-nstep // decimation)
    steps = rng.uniform(-action_scale, action_scale, (n, nctrl, model.nu))
    targets = np.clip(default_pose + np.cumsum(steps, axis=1), q_lo, q_hi)
    control = np.repeat(targets, decimation, axis=1)[:, :nstep].copy()
    state = init_state.copy()
    out_state = np.empty((n, nstep, state.shape[1]))
    out_sensor = np.empty((n, nstep, model.nsensordata))
    pool = rollout.Rollout(nthread=threads if threads > 1 else 0)

    def step():
        pool.rollout(models, datas, state, control, nstep=nstep, state=out_state,
                     sensordata=out_sensor, skip_checks=True)
        state[:] = out_state[:, -1]

    step()
    return step, n * nstep / decimation, pool


def best_of_rounds(contenders: dict, rounds: int, seconds: float, min_calls: dict) -> dict:
    """Time every contender (`name -> (step, units per call)`) for `seconds`, round after round,
    interleaved; keep each one's best round (units/s). Another job on the machine only ever slows a
    window down, so the best of interleaved rounds compares like with like."""
    best = {k: 0.0 for k in contenders}
    for _ in range(rounds):
        for name, (step, units) in contenders.items():
            calls, el = _timed(step, seconds, min_calls.get(name, 2), warmup=1)
            best[name] = max(best[name], calls * units / el)
    return best


def bench_mj_step(model: mujoco.MjModel, threads: int, decimation: int, seconds: float) -> float:
    """Plain `mj_step` loop on one thread, times `threads`; env-steps/s equivalent."""
    d = mujoco.MjData(model)
    mujoco.mj_resetData(model, d)
    d.ctrl[:] = d.qpos[: model.nu]
    k = 1000

    def step():
        for _ in range(k):
            mujoco.mj_step(model, d)

    calls, el = _timed(step, seconds, 2, warmup=1)
    return calls * k / el * threads / decimation


def bench_gym(kind: str, n: int, spec: dict, seconds: float, min_steps: int, seed: int, rounds: int = 1) -> float:
    """Best of `rounds` windows of `seconds / rounds` (as ours: another job only slows a window)."""
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

    fns = [functools.partial(_gym_env_fn, spec) for _ in range(n)]
    if kind == "sync":
        venv = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    else:
        venv = AsyncVectorEnv(fns, shared_memory=True, autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        venv.reset(seed=seed)
        rng = np.random.default_rng(seed)
        acts = rng.uniform(-1.0, 1.0, (64, n, venv.single_action_space.shape[0])).astype(np.float32)
        i = [0]

        def step():
            venv.step(acts[i[0] % 64])
            i[0] += 1

        best = 0.0
        for r in range(rounds):
            calls, el = _timed(step, max(0.5, seconds / rounds), min_steps, warmup=5 if r == 0 else 0)
            best = max(best, calls * n / el)
    finally:
        venv.close()
    return best


# --------------------------------------------------------------------------------------------
def _pin(threads: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))
    if threads > len(cpus):
        raise SystemExit(f"--threads {threads} but only {len(cpus)} CPUs are available to this process "
                         f"({cpus}); pass --threads {len(cpus)} or fewer")
    chosen = cpus[:threads]
    os.sched_setaffinity(0, chosen)
    return chosen


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--threads", type=int, default=2, help="threads/CPUs for every contender (default 2)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads for ours (default 1, as `robot-rl train` collects rollouts: "
                        "the per-step tensors are small and OpenMP workers would compete with physics threads)")
    p.add_argument("--seconds", type=float, default=6.0,
                   help="timing per contender and size, split into --rounds interleaved windows")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds per size; each contender's best round is reported")
    p.add_argument("--physics-variants", type=int, default=256,
                   help="size of our env's physics DR bank (default 256, the env's default)")
    p.add_argument("--nstep", type=int, default=100, help="physics steps per rollout call (raw limit)")
    p.add_argument("--gym-sync", type=int, nargs="*", default=[16, 256], help="SyncVectorEnv sizes")
    p.add_argument("--gym-async", type=int, nargs="*", default=[2, 8, 32], help="AsyncVectorEnv sizes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warp-num-envs", type=int, nargs="*", default=[64, 512],
                   help="worlds for the MuJoCo Warp backend on Warp's CPU device (information; empty = skip)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes and windows")
    args = p.parse_args(argv)
    if args.quick:
        args.num_envs = [64, 256]
        args.seconds = 0.5
        args.rounds = 1
        args.nstep = 20
        args.gym_sync = [8]
        args.gym_async = [2, 4]
        args.warp_num_envs = [16]
    min_steps = 3 if args.quick else 100  # >= one episode (100 control steps) for ours and sync gym

    cpus = _pin(args.threads)
    import torch

    torch_threads = args.torch_threads or args.threads
    torch.set_num_threads(torch_threads)
    import tempfile

    from robot_rl.sim import make_env
    from robot_rl.sim.model import build_spec
    from robot_rl.sim.tasks import make_task

    task = make_task(TASK)
    robot = task.robot
    probe = make_env(TASK, 1, dr="train", seed=args.seed, nthread=1)
    model = probe.model
    # the Gymnasium reference loads the env's own model (robot + task scene + frame sensor)
    xml = str(Path(tempfile.mkdtemp(prefix="env-throughput-")) / "task.xml")
    Path(xml).write_text(build_spec(task).to_xml())
    decimation = task.decimation
    jids = [model.joint(j).id for j in robot.joint_names]
    q_lo, q_hi = model.jnt_range[jids, 0], model.jnt_range[jids, 1]
    spec = {"xml_path": xml, "joint_names": tuple(robot.joint_names), "default_pose": tuple(robot.default_pose),
            "decimation": decimation, "max_steps": probe.max_episode_length, "action_scale": task.action_scale}
    if IiwaReachGym(**spec).observation_space.shape[0] != probe.num_obs["policy"]:
        raise SystemExit("the Gymnasium reference's observation size differs from ours; update IiwaReachGym._obs")

    print(f"# {TASK} env throughput: {args.threads} thread(s) on CPUs {cpus} (physics threads {args.threads}, "
          f"torch threads {torch_threads}), model {xml}")
    print(f"# decimation {decimation} (physics dt {model.opt.timestep} s), episode {probe.max_episode_length} "
          f"control steps; env-steps/s = control steps x envs / s; window {args.seconds} s per line")
    print(f"# mujoco {mujoco.__version__}, gymnasium {gymnasium.__version__}, torch {torch.__version__}, "
          f"python {sys.version.split()[0]}")
    sys.stdout.flush()

    # Gymnasium first: AsyncVectorEnv forks workers, best done before torch/mujoco thread pools exist.
    gym_rows = []
    for n in args.gym_sync:
        gym_rows.append((f"SyncVectorEnv, {n} envs", bench_gym("sync", n, spec, args.seconds, min_steps, args.seed,
                                                               args.rounds)))
    for n in args.gym_async:
        gym_rows.append((f"AsyncVectorEnv, {n} envs ({n} processes)",
                         bench_gym("async", n, spec, args.seconds, 3, args.seed, args.rounds)))
    gym_best_name, gym_best = max(gym_rows, key=lambda r: r[1])

    mj_loop = bench_mj_step(model, args.threads, decimation, args.seconds)

    rows = []
    per_round = max(0.5, args.seconds / args.rounds)
    for n in args.num_envs:
        ours, env = ours_stepper(n, args.threads, args.seed, args.physics_variants)
        exact, _ = ours_stepper(n, args.threads, args.seed, 0)
        raw, raw_units, pool = rollout_stepper(env.sim.models, env.sim.state, q_lo, q_hi, decimation, args.threads,
                                               args.nstep, args.seed, np.asarray(robot.default_pose),
                                               task.action_scale)
        # the same physics called the way an env must call it: `decimation` steps per call
        raw_d, raw_d_units, pool_d = rollout_stepper(env.sim.models, env.sim.state, q_lo, q_hi, decimation,
                                                     args.threads, decimation, args.seed,
                                                     np.asarray(robot.default_pose), task.action_scale)
        best = best_of_rounds({"ours": (ours, n), "exact": (exact, n), "raw": (raw, raw_units),
                               "raw_d": (raw_d, raw_d_units)}, args.rounds, per_round,
                              {"ours": min_steps, "exact": min_steps, "raw_d": min_steps})
        pool.close()
        pool_d.close()
        rows.append((n, best["ours"], best["exact"], best["raw"], best["raw_d"]))
        print(f"#   measured num_envs={n}: ours {_fmt(best['ours'])}, ours exact {_fmt(best['exact'])}, "
              f"raw {_fmt(best['raw'])}, raw per control step {_fmt(best['raw_d'])}", flush=True)

    warp_rows = []
    for n in args.warp_num_envs:
        try:
            warp, _ = ours_stepper(n, args.threads, args.seed, 0, backend="warp")
        except ImportError as e:
            print(f"#   warp backend skipped: {e}")
            break
        cpu, _ = ours_stepper(n, args.threads, args.seed, args.physics_variants)
        best = best_of_rounds({"cpu": (cpu, n), "warp": (warp, n)}, args.rounds, per_round, {})
        cpu, warp = best["cpu"], best["warp"]
        warp_rows.append((n, cpu, warp))
        print(f"#   measured backends num_envs={n}: mujoco {_fmt(cpu)}, warp (cpu device) {_fmt(warp)}", flush=True)

    print()
    print("## References measured in this run (env-steps/s)")
    ref_rows = [(f"Gymnasium {name}", v) for name, v in gym_rows]
    ref_rows.append((f"mj_step Python loop, 1 thread x {args.threads} (ideal scaling)", mj_loop))
    w = max(len(name) for name, _ in ref_rows)
    print(f"| {'reference':<{w}} | {'env-steps/s':>12} |")
    print(f"|{'-' * (w + 2)}|{'-' * 14}|")
    for name, v in ref_rows:
        print(f"| {name:<{w}} | {_fmt(v):>12} |")
    print()
    print(f"## Ours vs references (env-steps/s; raw limit = Rollout(nthread={args.threads}), nstep={args.nstep})")
    hdr = (f"| {'num_envs':>8} | {'ours (DR train)':>15} | {'ours, exact':>11} | {'raw limit':>12} | "
           f"{'ours/raw':>8} | {'exact/raw':>9} | {'raw, per control step':>21} | {'ours/that':>9} | "
           f"{'gym best':>10} | {'ours/gym':>8} |")
    print(hdr)
    print("|" + "|".join("-" * len(c) for c in hdr.split("|")[1:-1]) + "|")
    for n, ours, exact, raw, raw_d in rows:
        print(f"| {n:>8} | {_fmt(ours):>15} | {_fmt(exact):>11} | {_fmt(raw):>12} | {ours / raw:>8.2f} | "
              f"{exact / raw:>9.2f} | {_fmt(raw_d):>21} | {ours / raw_d:>9.2f} | {_fmt(gym_best):>10} | "
              f"{ours / gym_best:>7.1f}x |")
    if warp_rows:
        print()
        print("## Backends on this CPU (information: MuJoCo Warp's speed is measured on a GPU, "
              "benchmarks/warp_throughput.py)")
        print("| num_envs | mujoco (CPU) | warp (Warp's CPU device) | warp / mujoco |")
        print("|---|---|---|---|")
        for n, cpu, warp in warp_rows:
            print(f"| {n} | {_fmt(cpu)} | {_fmt(warp)} | {warp / cpu:.2f} |")
    best_n, best_ours = max(((r[0], r[1]) for r in rows), key=lambda r: r[1])
    print()
    print(f"Gymnasium best mode: {gym_best_name} = {_fmt(gym_best)} env-steps/s")
    print(f"physics DR bank: {args.physics_variants} variants (ours); 'exact' = one model per env")
    for n, ours, _, raw, _ in rows:
        verdict = ("target >= 0.80: " + ("met" if ours / raw >= 0.8 else "NOT met")) if n == 1024 else "information"
        print(f"ours / raw limit at num_envs={n}: {ours / raw:.2f} ({verdict})")
    print(f"ours best / Gymnasium best: {best_ours / gym_best:.1f}x at num_envs={best_n} (target >= 8x: "
          f"{'met' if best_ours / gym_best >= 8 else 'NOT met'})")
    if args.quick:
        print("(--quick: smoke-run sizes and windows; not a measurement to report)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
