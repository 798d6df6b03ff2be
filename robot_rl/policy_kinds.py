"""The policy-kind registry: one entry per kind, naming its training module and its runtime.

A policy kind provides
* a **training module** (torch, `robot_rl.policies.*`): an actor-critic that PPO trains
  (`robot_rl.policies.base.ActorCritic`), and its **export** to ONNX files in the artifact;
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


_KINDS: dict[str, PolicyKind] = {
    k.name: k for k in (
        PolicyKind("mlp", "robot_rl.policies.mlp:MlpActorCritic", "robot_rl.runtimes.mlp:MlpRuntime",
                   "Gaussian MLP actor, MLP critic (PPO)"),
        PolicyKind("recurrent", "robot_rl.policies.recurrent:RecurrentActorCritic",
                   "robot_rl.runtimes.recurrent:RecurrentRuntime",
                   "GRU/LSTM actor with its hidden state carried between steps, MLP critic (PPO)"),
    )
}


def register_policy_kind(kind: PolicyKind) -> None:
    _KINDS[kind.name] = kind


def kind_names() -> list[str]:
    return sorted(_KINDS)


def get_kind(name: str) -> PolicyKind:
    if name not in _KINDS:
        raise ValueError(f"unknown policy kind {name!r}; known kinds: {', '.join(kind_names())} "
                         "(a new kind registers in robot_rl.policy_kinds)")
    return _KINDS[name]


def load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def training_class(name: str):
    return load(get_kind(name).training)


def runtime_class(name: str):
    return load(get_kind(name).runtime)
