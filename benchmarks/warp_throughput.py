"""Env throughput on the MuJoCo Warp backend against raw `mujoco_warp.step` on the same model and batch.

For each world count N (one process, one device):

* ours: `make_env("iiwa-reach", N, backend="warp", device=dev, dr="train")`, random actions in
  [-1, 1] (pre-generated on the device, cycled), the full `env.step` (control terms, physics,
  snapshot, DR pushes and re-sampling, observations with noise/delay, reward, automatic resets with
  per-world physics DR). Episode clocks are spread (`randomize_episode_start`) so resets happen at
  their steady-state rate.
* raw: `mujoco_warp.step` on `put_model(env.model)` / `make_data(nworld=N)`, started from the env's
  world states after warm-up and cycling through the controls the env applied in its next 16 steps
  (copied into `Data.ctrl` each control step, so the motions, active joint limits and solver work
  are alike), each held for `decimation` physics steps;
  on CUDA the `decimation` steps are one captured CUDA graph, as our backend does. Reported as
  env-steps/s = physics steps/s / decimation.
* raw+DR: the same, stepping our backend's model (its DR fields batched per world) with a fresh
  `Data`: what the per-world parameters cost by themselves.

overhead = (raw / ours - 1) * 100 %: the time an env step spends outside the physics, relative to
the physics (mjlab reports 68% for its env over MuJoCo Warp; our target is <= 35%). After warm-up
(kernel loading, CUDA graph capture) the three are timed in interleaved rounds and the best round
of each is kept; windows are bracketed by `torch.cuda.synchronize()` and `wp.synchronize_device()`.

GPU (default):  python benchmarks/warp_throughput.py                      # N = 1024 4096 8192
CPU (info):     python benchmarks/warp_throughput.py --device cpu        # N = 64 512, Warp's CPU device
Needs no network; the first run compiles MuJoCo Warp's kernels (cached in ~/.cache/warp).
"""

from __future__ import annotations

import argparse
import gc
import platform
import time

import mujoco_warp as mjw
import torch
import warp as wp

from robot_rl.sim import make_env

TASK = "iiwa-reach"


def _sync(dev: torch.device, wdev: str) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wp.synchronize_device(wdev)


def _timed(fn, dev, wdev, seconds: float) -> tuple[int, float]:
    """Call `fn()` as often as fits in `seconds`; (calls, elapsed seconds)."""
    _sync(dev, wdev)
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls % 5 == 0 and time.perf_counter() - t0 >= seconds:
            break
    _sync(dev, wdev)
    return calls, time.perf_counter() - t0


def make_ours(n: int, dev: torch.device, dr: str):
    """The env and one call of its `step` with random actions."""
    env = make_env(TASK, n, dr=dr, seed=0, backend="warp", device=str(dev))
    env.reset()
    env.randomize_episode_start()  # after reset, as train.py does
    gen = torch.Generator(device=dev).manual_seed(0)
    actions = [torch.rand(n, env.num_actions, generator=gen, device=dev) * 2 - 1 for _ in range(16)]
    i = [0]

    def one():
        env.step(actions[i[0] % len(actions)])
        i[0] += 1

    return env, one


def record_controls(env, ours_fn, steps: int = 16):
    """The env's world states now and the controls its next `steps` steps apply (random actions)."""
    qpos, qvel = wp.clone(env.sim.d.qpos), wp.clone(env.sim.d.qvel)
    pool = []
    for _ in range(steps):
        ours_fn()
        pool.append(env.ctrl.clone())
    return qpos, qvel, pool


def make_raw(env, m, n: int, dev: torch.device, wdev: str, graph: bool, start):
    """One control step of raw mujoco_warp on Warp model `m`: `decimation` physics steps."""
    model, decimation = env.model, env.task.decimation
    with wp.ScopedDevice(wdev):
        d = mjw.make_data(model, nworld=n)
    # start from the env's worlds and replay the controls the env applied from there (same states
    # and motions, so the same active joint limits and solver work)
    qpos, qvel, pool = start
    pool = pool + pool[::-1]  # forth and back: no jump from the last target to the first
    wp.copy(d.qpos, qpos)
    wp.copy(d.qvel, qvel)
    ctrl_view = wp.to_torch(d.ctrl)

    def substeps():
        for _ in range(decimation):
            mjw.step(m, d)

    stream = wp.get_stream(wdev) if dev.type == "cuda" else None
    captured = None
    if graph and dev.type == "cuda":
        with wp.ScopedDevice(wdev):
            substeps()  # load modules before capturing
            with wp.ScopedCapture(device=wdev, stream=stream) as cap:
                substeps()
        captured = cap.graph
    i = [0]

    def one():
        ctrl_view.copy_(pool[i[0] % len(pool)])
        i[0] += 1
        if dev.type == "cuda":  # torch writes ctrl on its stream; Warp's stream waits for it
            torch_stream = wp.stream_from_torch(torch.cuda.current_stream(dev))
            stream.wait_stream(torch_stream)
            with wp.ScopedStream(stream):
                wp.capture_launch(captured) if captured is not None else substeps()
            torch_stream.wait_stream(stream)
        else:
            with wp.ScopedDevice(wdev):
                substeps()

    return one


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda[:i] (default) or cpu (Warp's CPU device)")
    p.add_argument("--num-envs", type=int, nargs="+", default=None,
                   help="world counts (default 1024 4096 8192 on cuda, 64 512 on cpu)")
    p.add_argument("--seconds", type=float, default=6.0, help="timing per measurement (split into rounds)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per measurement (best kept)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls of each before timing")
    p.add_argument("--dr", default="train", help="DR preset of the env")
    p.add_argument("--no-graph", action="store_true", help="raw: no CUDA graph (the env's backend still uses one)")
    args = p.parse_args(argv)

    dev = torch.device(args.device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU visible to torch; run with --device cpu")
        dev = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        wdev = f"cuda:{dev.index}"
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "cpu":
        wdev, name = "cpu", f"Warp CPU device ({platform.processor() or platform.machine()}, 1 thread)"
    else:
        raise SystemExit(f"--device {args.device}: use cuda[:i] or cpu")
    sizes = args.num_envs or ([1024, 4096, 8192] if dev.type == "cuda" else [64, 512])
    wp.init()
    torch.set_grad_enabled(False)

    print(f"task {TASK}, dr={args.dr}, device {name}; warp {wp.__version__}, mujoco_warp {mjw.__version__}, "
          f"torch {torch.__version__}; best of {args.rounds} interleaved windows of {args.seconds / args.rounds:g} s "
          f"after {args.warmup} warm-up calls")
    rows = []
    for n in sizes:
        env, ours_fn = make_ours(n, dev, args.dr)
        for _ in range(args.warmup):
            ours_fn()
        start = record_controls(env, ours_fn)
        with wp.ScopedDevice(wdev):
            m_plain = mjw.put_model(env.model)
        fns = {"ours": ours_fn,
               "raw+DR": make_raw(env, env.sim.m, n, dev, wdev, not args.no_graph, start),
               "raw": make_raw(env, m_plain, n, dev, wdev, not args.no_graph, start)}
        for k in ("raw+DR", "raw"):
            for _ in range(args.warmup):
                fns[k]()
        # interleaved rounds, best of each: robust to other load on a shared machine
        best = dict.fromkeys(fns, 0.0)
        for _ in range(args.rounds):
            for k, fn in fns.items():
                calls, dt = _timed(fn, dev, wdev, args.seconds / args.rounds)
                best[k] = max(best[k], n * calls / dt)
        rows.append((n, best["ours"], best["raw+DR"], best["raw"], env.task.decimation))
        print(f"  N={n}: ours {best['ours']:,.0f}, raw+DR {best['raw+DR']:,.0f}, raw {best['raw']:,.0f} env-steps/s",
              flush=True)
        del env, m_plain, fns, ours_fn
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    dec = rows[0][4]
    print(f"\nenv-steps/s (1 env-step = {dec} physics steps); overhead = (raw / ours - 1) * 100 "
          "(mjlab: 68%, target <= 35%)")
    head = (f"{'N':>6} | {'ours':>12} | {'raw+DR':>12} | {'raw':>12} | {'ours/raw':>8} | {'overhead':>8} | "
            f"{'DR fields':>9}")
    print(head)
    print("-" * len(head))
    for n, ours, raw_dr, raw, _ in rows:
        print(f"{n:>6} | {ours:>12,.0f} | {raw_dr:>12,.0f} | {raw:>12,.0f} | {ours / raw:>8.2f} | "
              f"{(raw / ours - 1) * 100:>7.1f}% | {(raw / raw_dr - 1) * 100:>8.1f}%")
    print("(DR fields: raw's slowdown from per-world model fields alone, included in the overhead)")


if __name__ == "__main__":
    main()
