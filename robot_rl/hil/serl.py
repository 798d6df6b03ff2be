"""HIL-SERL and RLIF in simulation: the actor here, the learner in a subprocess, over ZeroMQ.

```
from robot_rl.hil.curve import HilRunConfig
from robot_rl.hil.serl import run
curve = run(HilRunConfig(task="panda-peg-insert", base="runs/peg-diffusion"), method="rlif")
```
(`robot-rl hil-serl` / `robot-rl rlif` on the command line.)

1. The starting policy: a residual SAC actor over the frozen diffusion base `cfg.base` (trained
   first from `cfg.demos` scripted demonstrations when empty), its last layer zero-initialised:
   the run starts exactly at the base.
2. Offline data: `cfg.demos` episodes of the task's scripted expert, as transitions with the
   base's action in the input (`demo_transitions`), into the learner's offline buffer.
3. The learner (`python -m robot_rl.hil.learner`) starts on a free loopback port; the actor
   (`HilActor`) runs `cfg.num_envs` envs supervised by a `SimulatedOperator` (`cfg.operator`
   overrides its arguments) and sends every transition.
4. After every round (`SerlOptions.round_steps` control steps of every env) one status line;
   every `eval_every` rounds the current policy runs `cfg.eval_episodes` episodes alone
   (deterministic, no operator) and a `CurvePoint` is appended. The run stops when the operator
   has watched `cfg.operator_budget_s` seconds. `curve.json` and the learner's checkpoint are in `out`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from robot_rl.hil.curve import CurvePoint, HilRunConfig, autonomous_success
from robot_rl.hil.learner import METHODS, LearnerConfig
from robot_rl.hil.sac import SACConfig


@dataclass
class SerlOptions:
    sac: SACConfig = field(default_factory=lambda: SACConfig(residual_scale=0.2, utd=4, batch_size=256,
                                                             init_alpha=0.002))
    """`init_alpha` 0.002: with a 0/1 success reward and gamma 0.97, SACConfig's 0.05 made the entropy
    bonus (about alpha x entropy x 33 steps, 3.3) outweigh the reward until the tuned temperature had
    fallen, about 15,000 updates in. On seed 1 (same base, the action-drift operator) 0.002 reached
    78% at 22 operator-minutes and 80% at 30, where 0.05 reached 55% and 67%."""
    round_steps: int = 150
    eval_every: int = 2
    diffusion_steps: int = 10000
    """Training steps of the base when `base` is empty."""
    updates_per_transition: float = 0.5
    publish_every: int = 10
    sync: bool = True
    """After each round the actor waits (up to `sync_timeout_s`) until the learner has made
    `updates_per_transition` updates per transition sent: the same learning per operator minute on
    any host. Off, the learner updates as fast as its CPU share allows, as on a real robot: on 2
    shared cores 0.11 updates per transition of the 0.25 then allowed, and seed 0 stayed at the
    base (48% -> 44% in 30 operator-minutes); synchronised at 0.5 it reached 78%."""
    sync_timeout_s: float = 600.0
    takeover_penalty: float = 0.0
    """hil-serl: the reward is success minus this on the transition before each takeover (RLIF's
    label on top of HIL-SERL's); 0 is HIL-SERL's own reward."""


@dataclass
class SerlCliConfig:
    """`robot-rl hil-serl` / `robot-rl rlif`."""

    run: HilRunConfig = field(default_factory=HilRunConfig)
    opts: SerlOptions = field(default_factory=SerlOptions)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_learner(cfg: LearnerConfig, log_path: Path) -> subprocess.Popen:
    """The learner as a subprocess (its output to `log_path`)."""
    cpath = Path(cfg.out) / "learner_config.json"
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    cpath.write_text(json.dumps(cfg.to_dict(), indent=2))
    return subprocess.Popen([sys.executable, "-m", "robot_rl.hil.learner", str(cpath)],
                            stdout=open(log_path, "a"), stderr=subprocess.STDOUT)


def stop_learner(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_base(cfg: HilRunConfig, opts: SerlOptions, out: Path, log=print):
    from robot_rl.hil.base import ensure_base
    from robot_rl.policies.diffusion import DiffusionConfig
    from robot_rl.residual import load_base

    if cfg.base:
        return load_base(cfg.base, cfg.task), cfg.base
    log(f"no --base: recording {cfg.demos} demonstrations and training a diffusion base ({opts.diffusion_steps} steps)")
    base_dir, _ = ensure_base(cfg.task, out, cfg.demos, cfg.seed, DiffusionConfig(steps=opts.diffusion_steps),
                              nthread=cfg.nthread, log=lambda s: None)
    return load_base(base_dir, cfg.task), str(base_dir)


def demo_transitions(task: str, base, episodes: int, num_envs: int, seed: int) -> dict[str, torch.Tensor]:
    """`episodes` episodes of the task's scripted expert as actor transitions (base action in the input)."""
    from robot_rl.hil.actor import HilActor, PolicySpec
    from robot_rl.sim import make_env

    env = make_env(task, num_envs, dr="train", seed=seed + 500, nthread=1, autoreset=False)
    spec = PolicySpec(env.num_obs["policy"] + env.num_actions, env.num_actions)
    chunks: list[dict] = []
    actor = HilActor(env, spec, None, base=base, seed=seed, expert=env.task.expert(env, seed + 500),
                     sink=chunks.append)
    while actor.ended < episodes:
        actor.step()
    actor.step()  # the last transitions' next inputs
    actor.flush()
    out = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    out["intervening"] = torch.ones_like(out["intervening"])
    return out


def status_line(rnd: int, op, actor, lag: tuple[float, int] | None, link) -> str:
    eps = list(actor.episodes)[-50:]
    succ = np.mean([s for s, _ in eps]) if eps else float("nan")
    rate = op.intervention_time_s / max(op.operator_time_s, 1e-9)
    lag_s = f"{lag[0]:.1f} s/{lag[1]} upd" if lag else "-"
    if link.learner_alive:
        learner = "up"
    else:
        learner = "DOWN (acting with its last weights)" if actor.net is not None else (
            "not reached yet (the base alone)" if actor.chunker is not None else "not reached yet (holding)")
    return (f"round {rnd:3d}  operator {op.operator_time_s / 60:6.1f} min  supervised success (last {len(eps)}) "
            f"{succ:4.0%}  "
            f"interventions {op.takeovers} ({rate:4.0%} of time)  policy v{actor.version}  lag {lag_s}  "
            f"learner {learner}  buffered {link.buffered}")


def _number(v, example: str = "--run.operator reaction_delay_s 0.5"):
    """An override from the command line ("0.5", "3") as a number."""
    if not isinstance(v, str):
        return v
    try:
        return int(v) if v.lstrip("-").isdigit() else float(v)
    except ValueError:
        raise ValueError(f"override {v!r} is not a number; e.g. {example}") from None


def sac_options(pairs: list[str]) -> SACConfig:
    """`SerlOptions.sac` with "KEY=VALUE" overrides (numbers), checked against `SACConfig`'s fields."""
    known = {f for f in asdict(SACConfig())}
    out = asdict(SerlOptions().sac)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise ValueError(f"SAC override {pair!r}: use KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        out[key] = _number(value, "init_alpha=0.002")
    return SACConfig(**out)


def operator_args(overrides: dict) -> dict:
    """`HilRunConfig.operator` checked against `SimulatedOperator`'s keyword arguments, as numbers."""
    import inspect

    from robot_rl.hil.operator import SimulatedOperator

    known = [p.name for p in inspect.signature(SimulatedOperator).parameters.values() if p.kind == p.KEYWORD_ONLY
             and p.name != "expert"]
    bad = [k for k in overrides if k not in known]
    if bad:
        raise ValueError(f"unknown operator setting {bad[0]!r}; use one of: {', '.join(known)}")
    return {k: _number(v) for k, v in overrides.items()}


def run(cfg: HilRunConfig, log=print, method: str = "hil-serl", opts: SerlOptions | None = None) -> list[CurvePoint]:
    from robot_rl.hil.actor import HilActor, PolicySpec
    from robot_rl.hil.link import ActorLink
    from robot_rl.hil.operator import SimulatedOperator
    from robot_rl.sim import make_env

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    opts = opts or SerlOptions()
    op_args = operator_args(cfg.operator)
    torch.set_num_threads(max(1, cfg.torch_threads))
    out = Path(cfg.out or tempfile.mkdtemp(prefix=f"{method}-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base, base_dir = make_base(cfg, opts, out, log)
    env = make_env(cfg.task, cfg.num_envs, dr="train", seed=cfg.seed, nthread=cfg.nthread, autoreset=False)
    obs_dim, act_dim = env.num_obs["policy"] + env.num_actions, env.num_actions
    demos_path = out / "demos.safetensors"
    if not demos_path.is_file() and cfg.demos > 0:
        save_file(demo_transitions(cfg.task, base, cfg.demos, 16, cfg.seed), str(demos_path))
    sac = SACConfig(**asdict(opts.sac) | {"seed": cfg.seed})
    lcfg = LearnerConfig(obs_dim=obs_dim, act_dim=act_dim, out=str(out / "learner"), method=method,
                         address=f"tcp://127.0.0.1:{free_port()}", sac=sac,
                         demos=str(demos_path) if demos_path.is_file() else "",
                         updates_per_transition=opts.updates_per_transition, publish_every=opts.publish_every,
                         takeover_penalty=opts.takeover_penalty)
    proc = start_learner(lcfg, out / "learner.log")
    spec = PolicySpec(obs_dim, act_dim, sac.hidden, sac.layers, sac.residual_scale)
    link = ActorLink(lcfg.address, log=log)
    op = SimulatedOperator(env, seed=cfg.seed, **op_args)
    actor = HilActor(env, spec, link, operator=op, base=base, seed=cfg.seed, log=log)
    curve: list[CurvePoint] = []
    log(f"{method}: {cfg.task}, base {base_dir}, learner at {lcfg.address} (log {out / 'learner.log'}), "
        f"operator budget {cfg.operator_budget_s / 60:.0f} min")
    try:
        rnd = 0
        t_train = time.perf_counter()
        base_succ = autonomous_success(cfg, base)  # point 0: the base
        curve.append(CurvePoint(0.0, 0.0, 0, base_succ, cfg.eval_episodes, 0.0, 0))
        log(f"  eval: {base_succ:.1%} success over {cfg.eval_episodes} episodes (the base)")
        while op.operator_time_s < cfg.operator_budget_s:
            for _ in range(opts.round_steps):
                actor.step()
            actor.flush()
            rnd += 1
            if opts.sync:
                target = int(opts.updates_per_transition * link.sent_total) - opts.publish_every
                if not link.wait_for_updates(target, opts.sync_timeout_s):
                    log(f"{method}: the learner did not reach {target} updates within {opts.sync_timeout_s:.0f} s "
                        f"(it has {link.learner_updates}); going on")
            if proc.poll() is not None:
                log(f"{method}: the learner exited (code {proc.returncode}); restarting it from its checkpoint")
                proc = start_learner(lcfg, out / "learner.log")
            lag = None
            if actor.ages:
                lag = (float(np.median([a for a, _ in actor.ages])), int(np.median([u for _, u in actor.ages])))
                actor.ages.clear()
            log(status_line(rnd, op, actor, lag, link))
            if rnd % opts.eval_every == 0 or op.operator_time_s >= cfg.operator_budget_s:
                succ = autonomous_success(cfg, base, actor.net)
                curve.append(CurvePoint(op.operator_time_s, op.intervention_time_s, op.takeovers, succ,
                                        cfg.eval_episodes, time.perf_counter() - t_train,
                                        int(link.learner_updates)))
                log(f"  eval: {succ:.1%} success over {cfg.eval_episodes} episodes (policy v{actor.version}, "
                    f"{time.perf_counter() - t0:.0f} s)")
                (out / "curve.json").write_text(json.dumps([p.to_dict() for p in curve], indent=2))
    finally:
        stop_learner(proc)
        link.close()
    return curve
