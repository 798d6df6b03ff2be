"""Checkpoints: one file per save, loaded with `torch.load(weights_only=True)` (no pickle code)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

FORMAT = "robot-rl-checkpoint/1"


class CheckpointError(ValueError):
    pass


def save(path: Path, *, task: str, kind: str, num_obs: dict, num_actions: int, model: dict, optimizer: dict,
         iteration: int, learning_rate: float, total_steps: int, config: dict, adr: dict | None = None) -> None:
    """Write atomically: a crash never leaves a truncated checkpoint under the final name. `adr`:
    the curriculum's state (`robot_rl.adr.ADR.state_dict`) when automatic DR is on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {"format": FORMAT, "task": task, "kind": kind, "num_obs": dict(num_obs), "num_actions": num_actions,
         "model": model, "optimizer": optimizer, "iteration": iteration,
         "learning_rate": learning_rate, "total_steps": total_steps, "config": json.dumps(config),
         **({"adr": adr} if adr is not None else {})},
        tmp,
    )
    os.replace(tmp, path)


def latest(run_or_file: str | Path) -> Path:
    p = Path(run_or_file)
    if p.is_file():
        return p
    ckdir = p / "checkpoints"
    if not p.exists():
        raise CheckpointError(f"no run directory or checkpoint at {p}; pass a path from `runs/`")
    files = sorted(ckdir.glob("model_*.pt"), key=lambda f: int(re.findall(r"\d+", f.stem)[-1]))
    if not files:
        raise CheckpointError(f"{p} has no checkpoints (expected {ckdir}/model_<iteration>.pt)")
    return files[-1]


def load(path: str | Path, *, task: str | None = None) -> dict:
    """Load and check a checkpoint; errors name the problem and the fix."""
    path = latest(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or contains pickled code
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0]}; "
                              "the file is damaged or not a robot-rl checkpoint, use another one") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a robot-rl checkpoint (format {FORMAT} expected)")
    if task is not None and ck["task"] != task:
        raise CheckpointError(
            f"checkpoint {path} was trained on task {ck['task']!r}, not {task!r}; "
            f"use --env.task {ck['task']} or a checkpoint of {task!r}"
        )
    ck["path"] = str(path)
    ck["config"] = json.loads(ck["config"])
    ck.setdefault("kind", ck["config"].get("ppo", {}).get("policy", "mlp"))
    return ck


def load_state(module: torch.nn.Module, state: dict, path: str) -> None:
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:4]}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:4]}")
        if wrong:
            parts.append(f"wrong shapes for {wrong[:4]}")
        raise CheckpointError(
            f"checkpoint {path} does not fit this network ({'; '.join(parts)}); it is incomplete or was "
            "trained with other network sizes or another policy kind: pass the same --ppo.policy, "
            "--ppo.actor-hidden/--ppo.critic-hidden"
        )
    module.load_state_dict(state)
