"""The imperfect starting policy every human-in-the-loop method starts from: a diffusion policy
trained from a few scripted demonstrations (`robot-rl record` + `robot-rl train-diffusion`).

`ensure_base(task, out, ...) -> (base_dir, demos_root)` records `demos` successful episodes of the
task's scripted expert into `out/demos` and trains the base into `out/base` (`policy.safetensors`
+ `config.json`, which names the task and the dataset), or reuses what `out` already holds, so a
benchmark trains one base per seed and shares it across methods (pass `base_dir` as
`HilRunConfig.base`). `load_diffusion(path, task, obs_dim, action_dim)` loads a base for
fine-tuning and refuses an exported artifact or a base of another task with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from robot_rl.policies.diffusion import DiffusionConfig


class BaseError(ValueError):
    pass


def ensure_base(task: str, out: str | Path, demos: int = 40, seed: int = 0, diffusion: DiffusionConfig | None = None,
                nthread: int = 1, log=print) -> tuple[Path, Path]:
    from robot_rl.imitation import TrainDiffusionConfig, train_diffusion_run
    from robot_rl.record import RecordConfig, record

    out = Path(out)
    base_dir, demos_root = out / "base", out / "demos"
    if (base_dir / "policy.safetensors").is_file() and (base_dir / "config.json").is_file():
        meta = json.loads((base_dir / "config.json").read_text())
        if meta.get("task") != task:
            raise BaseError(f"{base_dir} holds a base of task {meta.get('task')!r}, not {task!r}; "
                            "use another output directory")
        return base_dir, Path(meta.get("dataset") or demos_root)
    have = 0
    if (demos_root / "meta" / "info.json").is_file():
        from robot_rl.datasets import load_dataset

        have = load_dataset(demos_root).num_episodes
    if have < demos:
        r = record(RecordConfig(task=task, demos=demos - have, out=str(demos_root), seed=seed + have, num_envs=16,
                                nthread=nthread), log=log)
        log(f"base: {r.saved} demonstrations of {task} ({r.successes}/{r.attempts} expert episodes succeeded)")
    dcfg = diffusion or DiffusionConfig()
    dcfg = DiffusionConfig.from_dict({**dcfg.to_dict(), "seed": seed})
    res = train_diffusion_run(TrainDiffusionConfig(dataset=str(demos_root), out=str(base_dir), diffusion=dcfg,
                                                   eval_episodes=0, nthread=nthread), log=lambda s: None)
    log(f"base: diffusion policy trained on {res['demos']} demonstrations ({res['frames']} frames, "
        f"{dcfg.steps} steps, {res['train_s']:.0f} s): {base_dir}")
    return base_dir, demos_root


def load_diffusion(path: str | Path, task: str, obs_dim: int, action_dim: int):
    """A diffusion training directory (`policy.safetensors` + `config.json`) of `task`, trainable
    (`robot_rl.residual.load_diffusion_dir`'s checks)."""
    from robot_rl.residual import ResidualError, load_diffusion_dir

    try:
        return load_diffusion_dir(path, task, obs_dim, action_dim)
    except ResidualError as e:
        raise BaseError(str(e)) from None
