"""HIL-SERL actor-learner: env steps/s at the actor, policy update lag, reconnect time after a kill.

```
python benchmarks/hil_actor_learner.py [--task panda-peg-insert --num-envs 16 --seconds 20 --base DIR]
```

1. reference: the actor alone (same envs, simulated operator, policy network; no link);
2. ours: the same actor with the learner attached (a subprocess on loopback, ZeroMQ), training
   SAC with RLPD batches on what the actor sends; the version age of the weights in use (seconds
   since the learner published them, and learner updates behind) is sampled at every actor step;
3. the learner is killed (SIGKILL), the actor keeps stepping alone (steps/s meanwhile), the learner
   is restarted from its checkpoint: seconds until the actor acts with new weights.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _steps_per_s(actor, seconds: float) -> float:
    n0, t0 = actor.steps, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        actor.step()
    return (actor.steps - n0) * actor.env.num_envs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="panda-peg-insert")
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--base", default="", help="diffusion base (residual actor); default: SAC from scratch")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from robot_rl.hil.actor import HilActor, PolicySpec
    from robot_rl.hil.learner import LearnerConfig
    from robot_rl.hil.link import ActorLink
    from robot_rl.hil.operator import SimulatedOperator
    from robot_rl.hil.sac import SACConfig
    from robot_rl.hil.serl import free_port, start_learner
    from robot_rl.residual import load_base
    from robot_rl.sim import make_env

    def make_actor(link):
        env = make_env(a.task, a.num_envs, dr="train", seed=0, nthread=1, autoreset=False)
        base = load_base(a.base, a.task) if a.base else None
        obs_dim = env.num_obs["policy"] + (env.num_actions if base is not None else 0)
        spec = PolicySpec(obs_dim, env.num_actions, residual_scale=0.2 if base is not None else 0.0)
        return HilActor(env, spec, link, operator=SimulatedOperator(env, 0), base=base, log=print), spec

    alone, spec = make_actor(None)
    alone.load_weights(0, {}, spec.build().state_dict())
    ref = _steps_per_s(alone, a.seconds)

    out = Path(tempfile.mkdtemp(prefix="hil-bench-"))
    lcfg = LearnerConfig(obs_dim=spec.obs_dim, act_dim=spec.act_dim, out=str(out), address=f"tcp://127.0.0.1:{free_port()}",
                         sac=SACConfig(residual_scale=spec.residual_scale), warmup=256, updates_per_transition=0.25,
                         publish_every=10, checkpoint_s=5.0)
    proc = start_learner(lcfg, out / "learner.log")
    link = ActorLink(lcfg.address, log=print)
    actor, _ = make_actor(link)
    t0 = time.perf_counter()
    while actor.version < 1:
        actor.step()
    first_s = time.perf_counter() - t0
    actor.ages.clear()
    ours = _steps_per_s(actor, a.seconds)
    ages = np.array(actor.ages)
    versions = actor.version
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t_kill = time.perf_counter()
    while link.learner_alive:
        actor.step()
    detect_s = time.perf_counter() - t_kill
    dead = _steps_per_s(actor, 3.0)
    boot_dead, backlog = link.weights_boot, link.buffered
    t_restart = time.perf_counter()
    proc = start_learner(lcfg, out / "learner.log")
    while not link.learner_alive:
        actor.step()
    heard_s = time.perf_counter() - t_restart
    while link.weights_boot == boot_dead:
        actor.step()
    reconnect_s = time.perf_counter() - t_restart
    t1 = time.perf_counter()
    while link.buffered > 2 * actor.send_every * a.num_envs and time.perf_counter() - t1 < 60:
        actor.step()
    drain_s = time.perf_counter() - t1
    proc.terminate()
    proc.wait()

    rows = [("env steps/s at the actor, learner attached", f"{ours:,.0f}", f"{ref:,.0f} (actor alone)", f"{ours / ref:.2f}"),
            ("env steps/s at the actor, learner killed", f"{dead:,.0f}", f"{ref:,.0f} (actor alone)", f"{dead / ref:.2f}"),
            ("version age at the actor, p50 / p99 (s)", f"{np.percentile(ages[:, 0], 50):.2f} / "
             f"{np.percentile(ages[:, 0], 99):.2f}", "", ""),
            ("learner updates behind, p50 / p99", f"{np.percentile(ages[:, 1], 50):.0f} / "
             f"{np.percentile(ages[:, 1], 99):.0f}", "", ""),
            ("weights versions received in the run", f"{versions}", "", ""),
            ("learner start -> first weights at the actor (s)", f"{first_s:.1f}", "", ""),
            ("kill -9 -> actor sees the learner gone (s)", f"{detect_s:.1f}", "2.0 (timeout)", ""),
            ("restart -> first heartbeat at the actor (s; the learner process starting)", f"{heard_s:.1f}", "", ""),
            ("restart -> actor acts with new weights (s)", f"{reconnect_s:.1f}", "", ""),
            ("transitions buffered during the outage", f"{backlog:,}", "", ""),
            ("backlog delivered after the restart (s)", f"{drain_s:.1f}", "", ""),
            ("transitions dropped", f"{link.dropped}", "", "")]
    print(f"\n{a.task}, {a.num_envs} envs, {'residual over ' + a.base if a.base else 'SAC from scratch'}, "
          f"{a.seconds:.0f} s per phase, one torch thread each\n")
    w = max(len(r[0]) for r in rows)
    print(f"| {'metric':<{w}} | ours | reference | ratio |\n|{'-' * (w + 2)}|---|---|---|")
    for r in rows:
        print(f"| {r[0]:<{w}} | {r[1]} | {r[2]} | {r[3]} |")
    link.close()


if __name__ == "__main__":
    main()
