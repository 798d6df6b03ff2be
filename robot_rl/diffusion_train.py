"""Train a diffusion policy from demonstrations (Chi et al.'s recipe, CleanRL-style loop).

`train_diffusion(arrays, cfg) -> DiffusionPolicy` (the EMA weights) where `arrays` holds
`"observation.state"` [N, D] float32, `"action"` [N, A] float32 and `"episode_index"` [N] int64,
frames of an episode contiguous and in time order (what
`robot_rl.datasets.load_training_arrays` returns).

* Windows (`SequenceIndex`): every start `s` from `-(To - 1)` to `len - Tp + (Ta - 1)` of every
  episode gives observations `s .. s + To - 1` and actions `s .. s + Tp - 1`, indices outside the
  episode clamped to its first or last frame (padding by repeating the edge frames), so the first
  window's current observation is the episode's first frame and the last windows reach its end.
* Normalization stats: min/max of all observations and actions.
* AdamW (lr 1e-4, weight decay 1e-6, betas 0.95/0.999), cosine learning rate with linear warmup,
  EMA of the weights (power 0.75, max 0.9999), the loss logged every `log_interval` steps.

`save_policy(model, dir)` / `load_policy(dir)`: `policy.safetensors` (weights and stats) +
`config.json` (the `DiffusionConfig` and dims); loading never unpickles.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from robot_rl.policies.diffusion import EMA, DiffusionConfig, DiffusionPolicy

REQUIRED = ("observation.state", "action", "episode_index")


class SequenceIndex:
    """Training windows of a set of episodes (see the module docstring)."""

    def __init__(self, episode_index: np.ndarray, obs_horizon: int, pred_horizon: int, execution_horizon: int):
        ep = np.asarray(episode_index).reshape(-1)
        if ep.size == 0:
            raise ValueError("no frames in the training arrays; record demonstrations first")
        change = np.flatnonzero(np.diff(ep) != 0) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [ep.size]])
        if len(np.unique(ep[starts])) != len(starts):
            raise ValueError("episode_index is not contiguous (an episode's frames are split); sort the frames by "
                             "episode and frame index")
        self.obs_horizon, self.pred_horizon = obs_horizon, pred_horizon
        rows = []
        for a, b in zip(starts, ends):
            first, last = -(obs_horizon - 1), (b - a) - pred_horizon + (execution_horizon - 1)
            s = np.arange(first, max(first, last) + 1)
            rows.append(np.stack([s + a, np.full_like(s, a), np.full_like(s, b - 1)], 1))
        self.rows = np.concatenate(rows)
        """[W, 3]: window start (absolute, may precede its episode), episode's first and last frame."""

    def __len__(self) -> int:
        return len(self.rows)

    def frames(self, windows: np.ndarray) -> np.ndarray:
        """[B] window ids -> [B, Tp] frame indices (clamped to each window's episode)."""
        r = self.rows[windows]
        idx = r[:, :1] + np.arange(self.pred_horizon)[None]
        return np.clip(idx, r[:, 1:2], r[:, 2:3])

    def batch(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[B] window ids -> (observation frames [B, To], action frames [B, Tp])."""
        frames = self.frames(windows)
        return frames[:, : self.obs_horizon], frames


def check_arrays(arrays: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"training arrays lack {', '.join(missing)}; expected keys {', '.join(REQUIRED)}")
    obs = np.asarray(arrays["observation.state"], dtype=np.float32)
    act = np.asarray(arrays["action"], dtype=np.float32)
    ep = np.asarray(arrays["episode_index"]).reshape(-1)
    if obs.ndim != 2 or act.ndim != 2 or not len(obs) == len(act) == len(ep):
        raise ValueError(f"observation.state [N, D], action [N, A] and episode_index [N] must have the same N, "
                         f"got {list(obs.shape)}, {list(act.shape)}, {list(ep.shape)}")
    for name, x in (("observation.state", obs), ("action", act)):
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x).all(1))[0])
            raise ValueError(f"{name} has NaN or inf values (first at frame {bad}, episode {int(ep[bad])}); "
                             "drop that episode from the dataset")
    return obs, act, ep


def train_diffusion(arrays: dict, cfg: DiffusionConfig | None = None, log=print, init: DiffusionPolicy | None = None,
                    index=None) -> DiffusionPolicy:
    """Train on demonstration arrays; returns the EMA policy (eval mode). `log(str)` gets progress.

    `init`: warm start (fine-tuning) from this policy's weights and normalization (its own
    `DiffusionConfig` architecture; `cfg` gives the training schedule); it is not modified.
    `index`: the training windows (anything with `len()` and `batch(ids) -> (obs frames [B, To],
    action frames [B, Tp])`, e.g. `robot_rl.hil.hg_dagger.LabelIndex`); default: every window of
    every episode (`SequenceIndex`)."""
    from diffusers.optimization import get_cosine_schedule_with_warmup

    cfg = cfg or DiffusionConfig()
    cfg.validate()
    obs_np, act_np, ep = check_arrays(arrays)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    obs, act = torch.from_numpy(obs_np), torch.from_numpy(act_np)
    if init is not None:
        if (init.obs_dim, init.action_dim) != (obs.shape[1], act.shape[1]):
            raise ValueError(f"the policy to fine-tune takes {init.obs_dim} observations and gives {init.action_dim} "
                             f"actions, the data has {obs.shape[1]} and {act.shape[1]}")
        model = DiffusionPolicy(init.obs_dim, init.action_dim, init.cfg)
        model.load_state_dict(init.state_dict())
    else:
        model = DiffusionPolicy(obs.shape[1], act.shape[1], cfg)
        model.set_normalization(obs, act)
    mc = model.cfg
    index = index if index is not None else SequenceIndex(ep, mc.obs_horizon, mc.pred_horizon, mc.execution_horizon)
    if len(index) == 0:
        raise ValueError("no training windows (no labelled frames); record demonstrations or interventions first")
    ema = EMA(model, cfg.ema_power, cfg.ema_max)
    opt = torch.optim.AdamW(model.net.parameters(), lr=cfg.lr, betas=(0.95, 0.999), weight_decay=cfg.weight_decay)

    sched = get_cosine_schedule_with_warmup(opt, cfg.warmup_steps, cfg.steps)
    log(f"diffusion[{mc.objective}]: {len(index)} windows from {len(np.unique(ep))} episodes ({len(obs)} frames), "
        f"obs {obs.shape[1]}, action {act.shape[1]}, {sum(p.numel() for p in model.net.parameters()):,} parameters")
    model.train()
    t0, running = time.time(), []
    for step in range(1, cfg.steps + 1):
        o_idx, a_idx = index.batch(rng.integers(0, len(index), cfg.batch_size))
        loss = model.loss(obs[torch.from_numpy(o_idx)], act[torch.from_numpy(a_idx)], generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update(model)
        running.append(loss.item())
        if step % cfg.log_interval == 0 or step == cfg.steps:
            log(f"step {step}/{cfg.steps}  loss {np.mean(running):.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                f"ema {ema.decay:.4f}  {time.time() - t0:.0f}s")
            running = []
    policy = ema.model.eval()
    policy.train_log = {"steps": cfg.steps, "seconds": time.time() - t0}
    return policy


def save_policy(model: DiffusionPolicy, out_dir: str | Path) -> Path:
    """`policy.safetensors` + `config.json` in `out_dir` (written atomically, one file at a time)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "policy.safetensors.tmp"
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(out / "policy.safetensors")
    meta = {"kind": model.kind, "obs_dim": model.obs_dim, "action_dim": model.action_dim, "config": model.cfg.to_dict()}
    (out / "config.json.tmp").write_text(json.dumps(meta, indent=2))
    (out / "config.json.tmp").replace(out / "config.json")
    return out


def load_policy(path: str | Path) -> DiffusionPolicy:
    """A policy saved by `save_policy` (eval mode)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "policy.safetensors").is_file():
        raise FileNotFoundError(f"{path} is not a diffusion policy checkpoint (config.json + policy.safetensors); "
                                "train one with robot_rl.diffusion_train.train_diffusion")
    meta = json.loads((path / "config.json").read_text())
    model = DiffusionPolicy(meta["obs_dim"], meta["action_dim"], DiffusionConfig.from_dict(meta["config"]))
    model.load_state_dict(load_file(str(path / "policy.safetensors")))
    return model.eval()
