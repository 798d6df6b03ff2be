"""`robot-rl record`: collect demonstrations from a batched env into a LeRobotDataset v3.0.

```
robot-rl record panda-peg-insert --demos 50 --out data/peg_demos              # the task's scripted expert
robot-rl record --expert models/policies/iiwa-reach --demos 20 --out data/reach # an exported policy
```

All `num_envs` envs run together; each env's frames are kept until its episode ends, then the
episode is written at once (`DatasetWriter.save_episode`, durable when it returns) if it succeeded
(or always, with `--no-only-successful`). A frame is (the env's `policy` observation group, the
expert's action, the measured joint positions) at the same control step; features:

* `observation.state` [D] float32: the policy observation, named by the task's observation terms;
* `action` [A] float32 in [-1, 1]: what the env applied. A scripted expert must stay in [-1, 1]
  (an action outside, or NaN, stops the recording with one error line; saved episodes stay). An
  artifact policy's output is clipped to [-1, 1] first, as the env clips it;
* `observation.joint_pos` [J] float32: the robot's joint positions (named by its joints; what the
  MCAP export publishes on `/joint_states`).

Episode success comes from the env's `info["episode"]["success"]`. An existing `--out` is
resumed (same task, robot and features required): new episodes continue its indices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robot_rl.datasets import DatasetWriter


@dataclass
class RecordConfig:
    task: str = ""
    """Task to record (default: the --expert artifact's task)."""
    demos: int = 10
    """Episodes to save."""
    out: str = ""
    """Dataset root (default: data/demos/<task>); an existing dataset is resumed."""
    expert: str = ""
    """Exported policy artifact directory to use as the expert (default: the task's scripted expert)."""
    seed: int = 0
    num_envs: int = 8
    only_successful: bool = True
    """Keep only episodes that ended in success."""
    max_attempts: int = 0
    """Stop after this many finished episodes even if fewer demos were kept (default 20 x demos)."""
    dr: str = "train"
    """Domain randomization of the recording env: train, eval or off."""
    nthread: int = 1
    task_description: str = ""
    """The language task stored per frame (LeRobot's `task`; default: the task name)."""


@dataclass
class RecordResult:
    root: Path
    saved: int
    attempts: int
    successes: int
    frames: int
    wall_s: float
    first_episode: int


class ArtifactExpert:
    """An exported policy (`PolicyArtifact`) as an expert, run as `robot-rl eval --artifact` runs it;
    its actions are clipped to [-1, 1] (what the env applies)."""

    def __init__(self, path: str | Path, num_envs: int):
        from robot_rl.artifact import PolicyArtifact
        from robot_rl.evaluate_artifact import ArtifactPolicy

        self.artifact = PolicyArtifact.load(path)
        self.policy = ArtifactPolicy(self.artifact, num_envs)

    def reset(self, env, ids: torch.Tensor) -> None:
        done = torch.zeros(env.num_envs, dtype=torch.bool)
        done[ids.cpu()] = True
        self.policy.reset(done)

    def act(self, env, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.policy(obs["policy"]).clamp(-1.0, 1.0)


def _features(env) -> dict[str, dict]:
    obs_names = [f"{t['name']}[{i}]" if t["dim"] > 1 else t["name"]
                 for t in env.observation_spec() for i in range(t["dim"])]
    act_names = [f"{t['name']}[{i}]" if t["dim"] > 1 else t["name"]
                 for t in env.action_spec() for i in range(t["dim"])]
    joints = list(env.robot.joint_names)
    return {"observation.state": {"dtype": "float32", "shape": [env.num_obs["policy"]],
                                  "names": obs_names if len(obs_names) == env.num_obs["policy"] else None},
            "action": {"dtype": "float32", "shape": [env.num_actions],
                       "names": act_names if len(act_names) == env.num_actions else None},
            "observation.joint_pos": {"dtype": "float32", "shape": [len(joints)], "names": joints}}


def robot_info(env) -> dict:
    """The `info["robot_rl"]` block: what a consumer checks before training on the data."""
    return {"robot": env.robot.name, "joint_names": list(env.robot.joint_names), "task": env.task.name,
            "observation_terms": env.observation_spec(), "action_terms": env.action_spec(),
            "control_period_s": env.control_dt}


def record(cfg: RecordConfig, log=print) -> RecordResult:
    from robot_rl.sim import make_env

    if cfg.demos < 1:
        raise ValueError(f"--demos must be >= 1, got {cfg.demos}")
    expert_art = None
    task = cfg.task
    if cfg.expert:
        from robot_rl.artifact import PolicyArtifact

        expert_art = PolicyArtifact.load(cfg.expert)
        art_task = expert_art.spec["task"]
        if task and task != art_task:
            raise ValueError(f"--expert {cfg.expert} was trained on task {art_task}, not {task}; "
                             f"drop the task argument or pick an expert of {task}")
        task = art_task
    if not task:
        raise ValueError("name a task (robot-rl record TASK) or an --expert ARTIFACT_DIR")
    env = make_env(task, cfg.num_envs, dr=cfg.dr, seed=cfg.seed, nthread=cfg.nthread)
    try:
        if expert_art is not None:
            expert = ArtifactExpert(cfg.expert, env.num_envs)
            if env.num_obs["policy"] != expert.artifact.obs_dim or env.num_actions != expert.artifact.action_dim:
                raise ValueError(f"--expert {cfg.expert} maps {expert.artifact.obs_dim} observations to "
                                 f"{expert.artifact.action_dim} actions, task {task} has {env.num_obs['policy']} "
                                 f"and {env.num_actions}; export it again")
        else:
            expert = env.task.expert(env, cfg.seed)
        return _run(env, expert, cfg, task, log)
    finally:
        env.sim.close()


def _run(env, expert, cfg: RecordConfig, task: str, log) -> RecordResult:
    fps = int(round(1.0 / env.control_dt))
    if abs(fps * env.control_dt - 1.0) > 1e-6:
        raise ValueError(f"task {task}: control period {env.control_dt} s is not a whole number of frames per "
                         "second, which LeRobot's integer fps cannot describe")
    root = Path(cfg.out or Path("data") / "demos" / task)
    writer = DatasetWriter(root, fps, _features(env), robot_info=robot_info(env))
    first = writer.num_episodes
    description = cfg.task_description or task
    max_attempts = cfg.max_attempts or 20 * cfg.demos
    n = env.num_envs
    buf: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(n)]
    saved = attempts = successes = frames = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        obs = env.reset()
        expert.reset(env, torch.arange(n, device=env.device))
        while saved < cfg.demos and attempts < max_attempts:
            # copies: on the CPU .numpy() shares memory with env tensors that the next step overwrites
            o = obs["policy"].cpu().numpy().copy()
            q = env.joint_pos.cpu().numpy().copy()
            a_t = expert.act(env, obs)
            a = a_t.detach().cpu().numpy().copy()
            for i in range(n):
                buf[i].append((o[i], a[i], q[i]))
            obs, _, terminated, truncated, info = env.step(a_t)
            ep = info["episode"]
            ids = ep["env_ids"].cpu().tolist()
            ok = ep["success"].cpu().numpy() > 0.5
            for i, success in zip(ids, ok):
                attempts += 1
                successes += int(success)
                if saved < cfg.demos and (success or not cfg.only_successful):
                    try:
                        for oi, ai, qi in buf[i]:
                            writer.add_frame({"observation.state": oi, "action": ai, "observation.joint_pos": qi},
                                             task=description)
                    except Exception:
                        writer.discard_episode()
                        raise
                    writer.save_episode(success=bool(success))
                    saved += 1
                    frames += len(buf[i])
                buf[i] = []
            if ids:
                expert.reset(env, torch.as_tensor(ids, device=env.device))
    wall = time.perf_counter() - t0
    writer.close()
    log(f"recorded {saved} episodes ({frames} frames) of {task} into {root} in {wall:.1f} s: "
        f"{successes}/{attempts} finished episodes succeeded"
        + (f"; stopped after {attempts} attempts (--max-attempts)" if saved < cfg.demos else ""))
    return RecordResult(root, saved, attempts, successes, frames, wall, first)
