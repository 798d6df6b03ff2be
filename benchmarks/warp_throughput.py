"""Env throughput on the MuJoCo Warp backend against raw `mujoco_warp.step` on the same model and batch.

For each world count N (one process, one device):

* ours: `make_env("iiwa-reach", N, backend="warp", device=dev, dr="train")`, random actions in
  [-1, 1] (pre-generated on the device, cycled), the full `env.step` (control terms, physics,
  snapshot, DR pushes and re-sampling, observations with noise/delay, reward, automatic resets with
  per-world physics DR). Episode clocks are spread (`randomize_episode_start`) so resets happen at
  their steady-state rate.
* raw: `mujoco_warp.step` on `put_model(env.model)` / `make_data(nworld=N)` started from the env's
  world states, random position targets around the env's current targets (pre-generated, copied
  into `Data.ctrl` each control step) held for `decimation` physics steps;
  on CUDA the `decimation` steps are one captured CUDA graph, as our backend does. Reported as
  env-steps/s = physics steps/s / decimation.
* raw+DR: the same, stepping our backend's model (its DR fields batched per world) with a fresh
  `Data`: what the per-world parameters cost by themselves.

overhead = (raw / ours - 1) * 100 %: the time an env step spends outside the physics, relative to
the physics (mjlab reports 68% for its env over MuJoCo Warp; our target is <= 35%). Timing windows
are bracketed by `torch.cuda.synchronize()` and `wp.synchronize_device()`.

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


def _timed(fn, dev, wdev, seconds: float, warmup: int) -> tuple[int, float]:
    """Call `fn()` `warmup` times, then as often as fits in `seconds`; (calls, elapsed seconds)."""
    for _ in range(warmup):
        fn()
    _sync(dev, wdev)
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls % 5 == 0 and time.perf_counter() - t0 >= seconds:
            break
    _sync(dev, wdev)
    return calls, time.perf_counter() - t0


def bench_ours(n: int, dev: torch.device, wdev: str, seconds: float, warmup: int, dr: str):
    env = make_env(TASK, n, dr=dr, seed=0, backend="warp", device=str(dev))
    env.reset()
    env.randomize_episode_start()  # after reset, as train.py does
    gen = torch.Generator(device=dev).manual_seed(0)
    actions = [torch.rand(n, env.num_actions, generator=gen, device=dev) * 2 - 1 for _ in range(16)]
    i = [0]

    def one():
        env.step(actions[i[0] % len(actions)])
        i[0] += 1

    calls, dt = _timed(one, dev, wdev, seconds, warmup)
    return env, n * calls / dt


def bench_raw(env, m, n: int, dev: torch.device, wdev: str, seconds: float, warmup: int, graph: bool):
    """Env-steps/s of `decimation` raw mujoco_warp steps per control step on model `m` (a Warp model)."""
    model, decimation = env.model, env.task.decimation
    with wp.ScopedDevice(wdev):
        d = mjw.make_data(model, nworld=n)
    # start from the env's worlds (same states, so the same contacts/limits and solver work) and
    # hold random targets around the env's current joint targets
    wp.copy(d.qpos, env.sim.d.qpos)
    wp.copy(d.qvel, env.sim.d.qvel)
    ctrl_view = wp.to_torch(d.ctrl)
    lo = torch.as_tensor(model.actuator_ctrlrange[:, 0], dtype=torch.float32, device=dev)
    hi = torch.as_tensor(model.actuator_ctrlrange[:, 1], dtype=torch.float32, device=dev)
    gen = torch.Generator(device=dev).manual_seed(1)
    pool = [torch.clamp(env.ctrl + 0.1 * (torch.rand(n, model.nu, generator=gen, device=dev) * 2 - 1), lo, hi)
            for _ in range(16)]

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

    calls, dt = _timed(one, dev, wdev, seconds, warmup)
    return n * calls / dt


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda[:i] (default) or cpu (Warp's CPU device)")
    p.add_argument("--num-envs", type=int, nargs="+", default=None,
                   help="world counts (default 1024 4096 8192 on cuda, 64 512 on cpu)")
    p.add_argument("--seconds", type=float, default=5.0, help="timing window per measurement")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls before each window")
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
          f"torch {torch.__version__}; {args.seconds:g} s windows after {args.warmup} warm-up calls")
    rows = []
    for n in sizes:
        env, ours = bench_ours(n, dev, wdev, args.seconds, args.warmup, args.dr)
        raw_dr = bench_raw(env, env.sim.m, n, dev, wdev, args.seconds, max(3, args.warmup // 4), not args.no_graph)
        with wp.ScopedDevice(wdev):
            m_plain = mjw.put_model(env.model)
        raw = bench_raw(env, m_plain, n, dev, wdev, args.seconds, max(3, args.warmup // 4), not args.no_graph)
        rows.append((n, ours, raw_dr, raw, env.task.decimation))
        print(f"  N={n}: ours {ours:,.0f}, raw+DR {raw_dr:,.0f}, raw {raw:,.0f} env-steps/s", flush=True)
        del env, m_plain
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    dec = rows[0][4]
    print(f"\nenv-steps/s (1 env-step = {dec} physics steps); overhead = (raw / ours - 1) * 100 "
          "(mjlab: 68%, target <= 35%)")
    head = f"{'N':>6} | {'ours':>12} | {'raw+DR':>12} | {'raw':>12} | {'ours/raw':>8} | {'overhead':>8} | {'DR fields':>9}"
    print(head)
    print("-" * len(head))
    for n, ours, raw_dr, raw, _ in rows:
        print(f"{n:>6} | {ours:>12,.0f} | {raw_dr:>12,.0f} | {raw:>12,.0f} | {ours / raw:>8.2f} | "
              f"{(raw / ours - 1) * 100:>7.1f}% | {(raw / raw_dr - 1) * 100:>8.1f}%")
    print("(DR fields: raw's slowdown from per-world model fields alone, included in the overhead)")


if __name__ == "__main__":
    main()
