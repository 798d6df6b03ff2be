"""The policy-kind registry: one entry per kind, naming its training module and its runtime.

A policy kind provides
* a **training module** (torch, `robot_rl.policies.*`) and its **export** to ONNX files in the
  artifact. `trained_by` says what trains it: `ppo` (an `robot_rl.policies.base.ActorCritic` that
  `robot_rl.train` builds with `build_actor_critic`), or `demonstrations` (imitation: the
  `diffusion` kind's `DiffusionPolicy`, trained by `robot_rl.diffusion_train.train_diffusion` and
  exported by `robot_rl.diffusion_export.export_diffusion`); PPO code asks for
  `training_class(name, trained_by="ppo")` and gets a clear error for any other kind;
* a **runtime** (numpy + onnxruntime, `robot_rl.runtimes.*`): what the artifact loader runs on
  the robot, picked by the kind named in `spec.json` (`spec["policy"]["kind"]`): `reset()`,
  `act(observation) -> ActionChunk` (one or more actions with their time offsets), with any
  internal state it needs (recurrent state, history, a chunk queue).

Entries are import strings so that the robot side never imports torch. A new kind adds an entry
here (or `register_policy_kind` from user code) and its two modules; nothing else changes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class PolicyKind:
    name: str
    training: str
    """`module:Class` of the torch actor-critic (training, export)."""
    runtime: str
    """`module:Class` of the numpy/onnxruntime runtime."""
    description: str = ""
    trained_by: str = "ppo"
    """`ppo` (an ActorCritic trained by `robot_rl.train`) or `demonstrations` (imitation learning)."""


_KINDS: dict[str, PolicyKind] = {
    k.name: k for k in (
        PolicyKind("mlp", "robot_rl.policies.mlp:MlpActorCritic", "robot_rl.runtimes.mlp:MlpRuntime",
                   "Gaussian MLP actor, MLP critic (PPO)"),
        PolicyKind("recurrent", "robot_rl.policies.recurrent:RecurrentActorCritic",
                   "robot_rl.runtimes.recurrent:RecurrentRuntime",
                   "GRU/LSTM actor with its hidden state carried between steps, MLP critic (PPO)"),
        PolicyKind("diffusion", "robot_rl.policies.diffusion:DiffusionPolicy",
                   "robot_rl.runtimes.diffusion:DiffusionRuntime",
                   "Diffusion Policy (Chi et al.): FiLM-conditioned 1-D U-Net denoiser over an action chunk, "
                   "DDIM or flow-matching sampling; trained from demonstrations (robot_rl.diffusion_train), "
                   "not by PPO", trained_by="demonstrations"),
        PolicyKind("residual", "robot_rl.policies.residual:ResidualActorCritic",
                   "robot_rl.runtimes.residual:ResidualRuntime",
                   "per-step residual MLP on [observation, base action] over a frozen diffusion base "
                   "(ResiP), PPO with a privileged critic; --residual.base DIR"),
    )
}


def register_policy_kind(kind: PolicyKind) -> None:
    _KINDS[kind.name] = kind


def kind_names(trained_by: str | None = None) -> list[str]:
    """Registered kinds (those trained by `trained_by` when given)."""
    return sorted(k for k, v in _KINDS.items() if trained_by is None or v.trained_by == trained_by)


def get_kind(name: str) -> PolicyKind:
    if name not in _KINDS:
        raise ValueError(f"unknown policy kind {name!r}; known kinds: {', '.join(kind_names())} "
                         "(a new kind registers in robot_rl.policy_kinds)")
    return _KINDS[name]


def load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def training_class(name: str, trained_by: str | None = None):
    """The kind's torch class; with `trained_by`, refuse a kind that another method trains."""
    kind = get_kind(name)
    if trained_by is not None and kind.trained_by != trained_by:
        raise ValueError(f"policy kind {name!r} is trained by {kind.trained_by}, not {trained_by} "
                         f"({kind.description}); kinds trained by {trained_by}: "
                         f"{', '.join(kind_names(trained_by))}")
    return load(kind.training)


def runtime_class(name: str):
    return load(get_kind(name).runtime)
