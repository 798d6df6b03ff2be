"""Typed configs. `tyro` turns them into the CLI, so every field can be set from the command line
(`--ppo.learning-rate 3e-4`, `--env.num-envs 512`); a run saves its config as `config.json`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EnvConfig:
    task: str = "iiwa-reach"
    """Task name (`robot-rl tasks` lists them)."""
    backend: str = "mujoco"
    """Simulator backend: `mujoco` (MuJoCo on the CPU, default), `warp` (MuJoCo Warp: a GPU, or
    Warp's CPU device with `--env.device cpu`), `pybullet`."""
    num_envs: int = 512
    dr: Literal["train", "eval", "off"] = "train"
    """Domain randomization range: the task's training range, its held-out range, or off."""
    seed: int = 0
    device: str = "cpu"
    """Torch (and Warp) device of the env: `cpu` or `cuda[:i]`."""
    nthread: int = 0
    """Physics threads; 0 = one per available core."""
    physics_variants: int = 256
    """Most distinct DR physics models the envs share at a time (a continually re-sampled bank;
    keeps them in cache on CPU); 0 = one per env, sampled exactly at each reset."""

    def validate(self) -> None:
        from robot_rl.sim import BACKENDS, task_names

        if self.task not in task_names():
            raise ValueError(f"unknown task {self.task!r}; available tasks: {', '.join(task_names())}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; available backends: {', '.join(BACKENDS)}")
        if self.num_envs < 1:
            raise ValueError(f"env.num_envs must be >= 1, got {self.num_envs}; pass --env.num-envs 512 for example")
        if self.nthread < 0:
            raise ValueError(f"env.nthread must be >= 0, got {self.nthread}")
        if self.physics_variants < 0 or self.physics_variants == 1:
            raise ValueError(f"env.physics_variants must be 0 (one per env) or >= 2, got {self.physics_variants}")
        from robot_rl.sim.backend import backend_class
        from robot_rl.sim.env import check_device

        check_device(self.device)
        backend_class(self.backend)  # a missing optional package fails here, before anything is written


@dataclass
class PPOConfig:
    num_steps_per_env: int = 24
    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    value_loss_coef: float = 1.0
    use_clipped_value_loss: bool = True
    entropy_coef: float = 0.005
    learning_rate: float = 1e-3
    schedule: Literal["adaptive", "fixed"] = "adaptive"
    """`adaptive`: scale the learning rate to keep the KL divergence near `desired_kl`."""
    desired_kl: float = 0.01
    max_grad_norm: float = 1.0
    init_noise_std: float = 1.0
    actor_hidden: tuple[int, ...] = (128, 128)
    critic_hidden: tuple[int, ...] = (128, 128)
    activation: str = "elu"
    normalize_obs: bool = True
    policy: str = "mlp"
    """Policy kind (`robot_rl.policy_kinds`): `mlp` (Gaussian MLP) or `recurrent` (an actor with
    memory: GRU, LSTM or an observation history)."""
    rnn_type: Literal["gru", "lstm", "history"] = "gru"
    """`recurrent` kind's memory: a GRU or LSTM, or `history` (an MLP on the last `history_length`
    observations, the memory holding the previous ones)."""
    rnn_hidden: int = 64
    rnn_layers: int = 1
    history_length: int = 8
    actor_obs: Literal["policy", "critic"] = "policy"
    """Observation group the actor reads: `policy` (what a robot sees; deployable) or `critic`
    (privileged, with the sampled DR parameters): a teacher that is not exported but distilled
    into a deployable student with `robot-rl distill --teacher RUN`."""

    def validate(self) -> None:
        for name in ("num_steps_per_env", "num_learning_epochs", "num_mini_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError("ppo.gamma must be in (0, 1] and ppo.lam in [0, 1]")
        if self.learning_rate <= 0:
            raise ValueError(f"ppo.learning_rate must be > 0, got {self.learning_rate}")
        from robot_rl.policy_kinds import get_kind, kind_names

        if get_kind(self.policy).trained_by != "ppo":
            raise ValueError(f"ppo.policy {self.policy!r} is trained by {get_kind(self.policy).trained_by}, not PPO; "
                             f"use one of {', '.join(kind_names('ppo'))}")
        if self.rnn_hidden < 1 or self.rnn_layers < 1:
            raise ValueError("ppo.rnn_hidden and ppo.rnn_layers must be >= 1")
        if self.history_length < 2:
            raise ValueError(f"ppo.history_length must be >= 2 (the current observation and at least one before), "
                             f"got {self.history_length}")


@dataclass
class ADRConfig:
    """Automatic domain randomization (`robot_rl.adr`, OpenAI's ADR): each DR range of the task's
    training range widens while the policy succeeds at its boundary and narrows when it fails."""

    enabled: bool = False
    boundary_fraction: float = 0.3
    """Fraction of the envs reset at a time that evaluate one (parameter, side) at its boundary."""
    buffer_size: int = 16
    """Boundary episodes per (parameter, side) that decide one move."""
    threshold_high: float = 0.5
    """Success at a boundary at or above this widens that side. Boundary episodes run the training
    policy (sampled actions): on iiwa-reach its success is about 80% when the deterministic policy
    reaches 98%, so a threshold of 0.8 never widened anything in a measured run."""
    threshold_low: float = 0.2
    """Success at a boundary at or below this narrows that side (never inside the training range)."""
    step: float = 0.25
    """Each move shifts a side by this fraction of the way from its training value to its outer
    bound (integer parameters such as delays: one whole step)."""
    widen_factor: float = 3.0
    """Outer bound of a parameter whose task declares none (`DRPresets.adr_bounds`): its training
    range widened this many times about its centre, never below 0 (never below 1/widen_factor
    of its training minimum for a multiplier). Parameters the task does not randomize stay fixed."""

    def validate(self) -> None:
        if not 0 < self.boundary_fraction <= 1:
            raise ValueError(f"adr.boundary_fraction must be in (0, 1], got {self.boundary_fraction}")
        if self.buffer_size < 1:
            raise ValueError(f"adr.buffer_size must be >= 1, got {self.buffer_size}")
        if not 0 <= self.threshold_low < self.threshold_high <= 1:
            raise ValueError(f"adr thresholds need 0 <= threshold_low < threshold_high <= 1, got "
                             f"{self.threshold_low} and {self.threshold_high}")
        if not 0 < self.step <= 1:
            raise ValueError(f"adr.step must be in (0, 1], got {self.step}")
        if self.widen_factor < 1:
            raise ValueError(f"adr.widen_factor must be >= 1, got {self.widen_factor}")


@dataclass
class ResidualConfig:
    """Residual RL on a frozen diffusion base (`--ppo.policy residual`, `robot_rl.residual`)."""

    base: str = ""
    """Directory of the diffusion base (`robot-rl train-diffusion --out DIR`)."""
    scale: float = 0.1
    """The residual's share of the normalized [-1, 1] action range: action = base + scale * residual."""

    def validate(self, policy: str) -> None:
        if policy == "residual" and not self.base:
            raise ValueError("--ppo.policy residual needs --residual.base DIR (a diffusion base trained with "
                             "robot-rl train-diffusion)")
        if not 0 < self.scale <= 1:
            raise ValueError(f"residual.scale must be in (0, 1], got {self.scale}")


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    adr: ADRConfig = field(default_factory=ADRConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    max_iterations: int = 300
    time_budget_s: float = 0.0
    """Stop after this many seconds of training (0 = no limit)."""
    stop_at_success: float = 0.0
    """Stop once the success rate reaches this (0 = never): the deterministic policy's, measured
    every `eval_interval` iterations, or else that of recent training episodes."""
    eval_interval: int = 10
    """Every this many iterations, run `eval_episodes` episodes with the deterministic policy on
    the training DR range (0 = never); logged as `eval/success_rate`."""
    eval_episodes: int = 256
    save_interval: int = 50
    log_root: str = "runs"
    run_name: str = ""
    """Run directory name under `log_root` (default: `<task>-<date>-<time>`)."""
    resume: str = ""
    """Run directory or checkpoint file to continue from."""
    torch_threads: int = 0
    """Threads for torch's update step; 0 = one per available core."""
    progress: bool = True

    def validate(self) -> None:
        self.env.validate()
        self.ppo.validate()
        self.residual.validate(self.ppo.policy)
        if self.adr.enabled:
            self.adr.validate()
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if self.save_interval < 1:
            raise ValueError(f"save_interval must be >= 1, got {self.save_interval}")


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict):
    """Rebuild a (nested) config dataclass from `to_dict` output."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        v = data[f.name]
        sub = _dataclass_type(cls, f.name)
        if sub is not None and isinstance(v, dict):
            v = from_dict(sub, v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def _dataclass_type(cls, name: str):
    default = cls()
    v = getattr(default, name)
    return type(v) if dataclasses.is_dataclass(v) else None


def task_defaults(task: str) -> TrainConfig:
    """Per-task training defaults (what `robot-rl train <task>` starts from): the config defaults
    with the task's own `train_defaults` (declared next to the task) applied."""
    from robot_rl.sim.tasks import make_task

    cfg = TrainConfig(env=EnvConfig(task=task))
    for path, value in make_task(task).train_defaults.items():
        *parents, leaf = path.split(".")
        obj = cfg
        for p in parents:
            obj = getattr(obj, p)
        if not hasattr(obj, leaf):
            raise ValueError(f"task {task!r} declares a training default for unknown config field {path!r}")
        setattr(obj, leaf, tuple(value) if isinstance(value, list) else value)
    return cfg
