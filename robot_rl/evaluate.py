"""`robot-rl eval`: run N episodes of a trained policy and write a JSON report (and an mp4).

One episode per env, all run together; actions are the policy mean (deterministic). The report
holds return, success rate and episode length with the DR mode they were measured under.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from robot_rl import checkpoint as ckpt
from robot_rl.config import TrainConfig, from_dict
from robot_rl.policies import DeterministicActor, build_actor_critic


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def load_policy(checkpoint: str | Path, task: str | None = None):
    """(actor-critic module in eval mode, its training config, the checkpoint dict)."""
    ck = ckpt.load(checkpoint, task=task)
    cfg = from_dict(TrainConfig, ck["config"])
    ac = build_actor_critic(cfg, ck["num_obs"], ck["num_actions"])
    ckpt.load_state(ac, ck["model"], ck["path"])
    return ac.eval(), cfg, ck


def run_episodes(env, policy, video_size: tuple[int, int] | None = None):
    """Run one episode in every env of `env` with `policy(obs) -> actions` (no grad); a policy
    with memory (`DeterministicActor`) has it cleared for envs whose episode ended. The policy
    gets the `policy` observation group, or the group its `obs_group` names (a privileged teacher).

    Returns per-env (return, length, success, final distance to the goal: NaN when the task
    defines none) arrays and, with `video_size` (height, width), the frames of env 0's episode."""
    n = env.num_envs
    ret = np.full(n, np.nan)
    length = np.full(n, np.nan)
    success = np.full(n, np.nan)
    distance = np.full(n, np.nan)
    frames = []
    recording = video_size is not None
    obs = env.reset()
    with torch.inference_mode():
        while np.isnan(ret).any():
            if recording:
                frames.append(env.render(0, "front", *video_size))
            obs, _, terminated, truncated, info = env.step(policy(obs[getattr(policy, "obs_group", "policy")]))
            if hasattr(policy, "reset"):
                policy.reset(terminated | truncated)
            ep = info["episode"]
            ids = ep["env_ids"].cpu().numpy()
            first = ids[np.isnan(ret[ids])]
            if len(first):
                sel = np.isin(ids, first)
                ret[first] = ep["return"].cpu().numpy()[sel]
                length[first] = ep["length"].cpu().numpy()[sel]
                success[first] = ep["success"].cpu().numpy()[sel]
                if "distance" in ep:
                    distance[first] = ep["distance"].cpu().numpy()[sel]
                if 0 in first:
                    recording = False
    return ret, length, success, distance, frames


def episode_report(env, ret, length, success, distance, frames, head: dict, video=None, report=None) -> dict:
    """The report of `run_episodes`: `head` (what was evaluated) plus return, success and length
    statistics and per-episode values; writes the video and the JSON report atomically."""
    result = {
        **head,
        "mean_return": float(ret.mean()),
        "std_return": float(ret.std()),
        "success_rate": float(success.mean()),
        "mean_episode_length": float(length.mean()),
        "mean_final_distance_m": None if np.isnan(distance).all() else float(np.mean(distance)),
        "episode_length_s": float(length.mean() * env.control_dt),
        "per_episode": {"return": ret.tolist(), "success": success.tolist(), "length": length.tolist()},
    }
    if video:
        import imageio

        video = Path(video)
        video.parent.mkdir(parents=True, exist_ok=True)
        tmp = video.with_name(f".{video.stem}.tmp{video.suffix}")
        imageio.mimwrite(tmp, frames, fps=round(1.0 / env.control_dt), macro_block_size=1)
        os.replace(tmp, video)
        result["video"] = str(video)
    if report:
        write_json_atomic(Path(report), result)
        result["report"] = str(report)
    return result


def evaluate(checkpoint: str | Path, episodes: int = 100, dr: str = "eval", seed: int = 1,
             video: str | Path | None = None, report: str | Path | None = None,
             video_size: tuple[int, int] = (480, 640), backend: str | None = None, device: str = "cpu") -> dict:
    """Evaluate a checkpoint's deterministic policy (torch) on its training backend or `backend`."""
    from robot_rl.residual import residual_env
    from robot_rl.sim import make_env

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    ac, cfg, ck = load_policy(checkpoint)
    backend = backend or cfg.env.backend
    env = residual_env(cfg, make_env(cfg.env.task, episodes, dr=dr, seed=seed, backend=backend, device=device,
                                     physics_variants=cfg.env.physics_variants))
    if env.num_obs != ck["num_obs"]:
        raise ckpt.CheckpointError(f"checkpoint {ck['path']} expects observations {ck['num_obs']}, "
                                   f"task {cfg.env.task} gives {env.num_obs}")
    ret, length, success, distance, frames = run_episodes(env, DeterministicActor(ac.to(env.device), env.num_envs),
                                                video_size if video else None)
    head = {"task": cfg.env.task, "backend": backend, "dr": dr, "episodes": episodes, "seed": seed,
            "checkpoint": ck["path"], "iteration": ck["iteration"]}
    return episode_report(env, ret, length, success, distance, frames, head, video, report)
