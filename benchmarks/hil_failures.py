"""Where does a panda-peg-insert policy fail? The diffusion base alone, or the base with a HIL-SERL /
RLIF learner's residual, runs one episode per env (deterministic, no operator, as `hil_success.py`
evaluates); for the failed episodes, the peg tip's lateral error from the hole's axis and its depth
below the hole's top at the end, and the deepest it went.

    python benchmarks/hil_failures.py --base runs/hil-bench/seed1/base
    python benchmarks/hil_failures.py --base runs/hil-bench/seed1/base \\
        --learner runs/hil-bench/seed1/hil-serl/learner --seed 1001

`--learner` is a learner's `out` directory (`learner.safetensors` and `learner_config.json`); `--seed`
the env seed (`hil_success.py` evaluates seed S on env seed S + 1000). A depth near 0 mm with a
lateral error of several mm means the peg ended pressed on the block's top, beside the hole
(the hole's radius is 11 mm, the block's top a ring out to 31 mm).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def load_residual(learner_dir: str):
    """The learner's actor (deterministic residual over the base) from its checkpoint."""
    from safetensors.torch import load_file

    from robot_rl.hil.actor import PolicySpec
    from robot_rl.hil.learner import LearnerConfig

    d = Path(learner_dir)
    cfg = LearnerConfig.from_dict(json.loads((d / "learner_config.json").read_text()))
    net = PolicySpec(cfg.obs_dim, cfg.act_dim, cfg.sac.hidden, cfg.sac.layers, cfg.sac.residual_scale).build()
    t = load_file(str(d / "learner.safetensors"))
    net.load_state_dict({k[len("actor."):]: v for k, v in t.items() if k.startswith("actor.")})
    return net


@torch.no_grad()
def episodes(base_dir: str, learner_dir: str | None, n: int, seed: int) -> dict[str, np.ndarray]:
    """Per env: success, length (steps), and the final lateral error, final depth and deepest depth (m)."""
    from robot_rl.hil.curve import residual_policy
    from robot_rl.residual import ResidualEnv, load_base
    from robot_rl.sim import make_env

    task = "panda-peg-insert"
    env = ResidualEnv(make_env(task, n, dr="train", seed=seed, nthread=1), load_base(base_dir, task),
                      scale=1.0, seed=seed)
    inner = env.env
    policy = residual_policy(load_residual(learner_dir) if learner_dir else None, env.num_actions)
    obs = env.reset()
    live = np.ones(n, bool)
    out = {k: np.zeros(n) for k in ("success", "length", "lat", "depth", "deepest")}
    out["deepest"][:] = -np.inf
    while live.any():
        a = policy(obs["policy"])
        lat, depth = (v.cpu().numpy() for v in inner.task.errors(inner))
        out["lat"][live], out["depth"][live] = lat[live], depth[live]
        out["deepest"][live] = np.maximum(out["deepest"][live], depth[live])
        obs, _, term, trunc, _ = env.step(a)
        out["length"][live] += 1
        ended = live & (term | trunc).cpu().numpy()
        out["success"][ended] = term.cpu().numpy()[ended]
        live &= ~ended
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="a diffusion base of panda-peg-insert (a directory)")
    p.add_argument("--learner", default="", help="a HIL-SERL / RLIF learner's out directory (empty: the base alone)")
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--seed", type=int, default=1000)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    r = episodes(a.base, a.learner or None, a.episodes, a.seed)
    won = r["success"] > 0.5
    who = f"base {a.base}" + (f" + residual {a.learner}" if a.learner else " alone")
    print(f"panda-peg-insert, {who}, {a.episodes} episodes (env seed {a.seed})")
    print(f"success {won.mean():.1%}; median steps to success {np.median(r['length'][won]):.0f}" if won.any()
          else "success 0%")
    if (~won).any():
        mm = {k: 1000 * r[k][~won] for k in ("lat", "depth", "deepest")}
        on_top = (np.abs(mm["depth"]) < 1.0) & (mm["lat"] > 3.0)
        q = [10, 50, 90]
        print(f"{int((~won).sum())} failures: lateral error at the end p10/p50/p90 "
              + " / ".join(f"{v:.1f}" for v in np.percentile(mm["lat"], q)) + " mm; depth at the end "
              + " / ".join(f"{v:.1f}" for v in np.percentile(mm["depth"], q)) + " mm; deepest "
              + " / ".join(f"{v:.1f}" for v in np.percentile(mm["deepest"], q)) + " mm")
        print(f"ended on the block's top beside the hole (|depth| < 1 mm, lateral > 3 mm): "
              f"{int(on_top.sum())} of {int((~won).sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
