"""`robot-rl train-diffusion`: demonstrations (a LeRobotDataset v3.0 from `robot-rl record`) ->
a diffusion policy, evaluated in simulation, optionally exported.

```
robot-rl train-diffusion --dataset data/demos/panda-peg-insert --out runs/peg-diffusion \
    --diffusion.steps 10000 --eval-episodes 100 --export models/policies/peg-diffusion
```

The dataset must be of the task it names (its robot, joints and observation/action layout: the
task's env is built and compared), with no NaN and actions in [-1, 1] (the writer guarantees it).
`--out` receives `policy.safetensors` + `config.json` (which records the task, so a residual run,
`--residual.base DIR`, refuses a base of another task) and `eval.json`. Evaluation runs the
policy batched over `--eval-episodes` envs with receding-horizon execution, as the policy node
does on a robot (`robot_rl.residual.BaseChunker`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from robot_rl.policies.diffusion import DiffusionConfig


@dataclass
class TrainDiffusionConfig:
    dataset: str = ""
    """Dataset root written by `robot-rl record`."""
    out: str = ""
    """Directory for the trained policy (default: runs/<task>-diffusion-<date>-<time>)."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    eval_episodes: int = 100
    """Episodes of the trained policy in simulation (0 = none)."""
    eval_dr: str = "train"
    """DR range of the evaluation: train, eval (held out) or off."""
    eval_seed: int = 1
    export: str = ""
    """Also write the verified policy artifact here (e.g. models/policies/NAME); empty = no export."""
    torch_threads: int = 1
    nthread: int = 1
    """Physics threads of the evaluation env."""


def _task_env(task: str, num_envs: int, dr: str, seed: int, nthread: int):
    from robot_rl.sim import make_env

    return make_env(task, num_envs, dr=dr, seed=seed, nthread=nthread)


def load_demos(root: str | Path) -> tuple[dict, str]:
    """Training arrays of a dataset, checked against its task's env (robot, joints, layout)."""
    from robot_rl.datasets import load_dataset, load_training_arrays
    from robot_rl.datasets.reader import Expect
    from robot_rl.record import robot_info

    ds = load_dataset(root)
    task = ds.robot_info.get("task")
    if not task:
        raise ValueError(f"{root}: the dataset names no task (info.json robot_rl.task); record it with robot-rl record")
    env = _task_env(task, 1, "off", 0, 1)
    info = robot_info(env)
    expect = Expect(features={"observation.state": [env.num_obs["policy"]], "action": [env.num_actions],
                              "observation.joint_pos": [len(env.robot.joint_names)]},
                    robot=info["robot"], joint_names=info["joint_names"], task=task)
    arrays = load_training_arrays(root, expect)
    rec = ds.robot_info
    for key in ("observation_terms", "action_terms"):
        if rec.get(key) != info[key]:
            raise ValueError(f"{root}: recorded {key.replace('_', ' ')} differ from task {task}'s today; "
                             "record the demonstrations again with this version")
    return arrays, task


def evaluate_base(base, task: str, episodes: int, dr: str = "train", seed: int = 1, nthread: int = 1) -> dict:
    """Success of a diffusion policy alone in simulation (receding horizon, batched)."""
    from robot_rl.evaluate import run_episodes
    from robot_rl.residual import ResidualEnv

    env = ResidualEnv(_task_env(task, episodes, dr, seed, nthread), base, scale=1.0, seed=seed)
    zero = torch.zeros(episodes, env.num_actions)
    t0 = time.perf_counter()
    ret, length, success, distance, _ = run_episodes(env, lambda obs: zero)
    return {"task": task, "dr": dr, "episodes": episodes, "seed": seed, "success_rate": float(np.mean(success)),
            "mean_return": float(np.mean(ret)), "mean_episode_length": float(np.mean(length)),
            "wall_s": time.perf_counter() - t0}


def train_diffusion_run(cfg: TrainDiffusionConfig, log=print) -> dict:
    from robot_rl.diffusion_train import save_policy, train_diffusion

    if not cfg.dataset:
        raise ValueError("--dataset DIR is required (a dataset written by robot-rl record)")
    cfg.diffusion.validate()
    torch.set_num_threads(max(1, cfg.torch_threads))
    arrays, task = load_demos(cfg.dataset)
    episodes = int(len(np.unique(arrays["episode_index"])))
    out = Path(cfg.out or f"runs/{task}-diffusion-{time.strftime('%Y%m%d-%H%M%S')}")
    t0 = time.perf_counter()
    model = train_diffusion(arrays, cfg.diffusion, log=log)
    train_s = time.perf_counter() - t0
    save_policy(model, out)
    meta = json.loads((out / "config.json").read_text())
    meta.update(task=task, dataset=str(Path(cfg.dataset).resolve()), demos=episodes, train_s=train_s)
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    result = {"task": task, "out": str(out), "demos": episodes, "frames": int(len(arrays["action"])),
              "train_s": train_s}
    if cfg.eval_episodes > 0:
        result["eval"] = evaluate_base(model, task, cfg.eval_episodes, cfg.eval_dr, cfg.eval_seed, cfg.nthread)
        (out / "eval.json").write_text(json.dumps(result["eval"], indent=2))
    if cfg.export:
        from robot_rl.diffusion_export import export_diffusion_for_env

        env = _task_env(task, 1, "off", 0, 1)
        export_diffusion_for_env(model, cfg.export, env, training={"dataset": meta["dataset"], "demos": episodes,
                                                                    "config": cfg.diffusion.to_dict()})
        result["artifact"] = cfg.export
    return result
