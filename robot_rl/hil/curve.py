"""What every human-in-the-loop method reports, so that one benchmark compares them side by side.

A method (`robot_rl.hil.<method>.run(cfg, log) -> list[CurvePoint]`) learns with a
`SimulatedOperator` supervising and, after each round, evaluates its current policy
autonomously (no operator) and appends a `CurvePoint`. `HilRunConfig` is the budget and the
starting point shared by all methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class HilRunConfig:
    task: str = "panda-peg-insert"
    seed: int = 0
    base: str = ""
    """The imperfect starting policy: a diffusion artifact or checkpoint directory (empty: train one
    from `demos` scripted demonstrations first)."""
    demos: int = 40
    operator_budget_s: float = 1800.0
    """Stop when the simulated operator has watched this many seconds (summed over envs)."""
    num_envs: int = 16
    eval_episodes: int = 64
    nthread: int = 1
    torch_threads: int = 1
    out: str = ""
    """Directory for checkpoints and the curve (empty: a temporary directory)."""
    operator: dict = field(default_factory=dict)
    """Overrides of `SimulatedOperator`'s keyword arguments."""

    def eval_seed(self) -> int:
        """Seed of the evaluation envs: every method and every evaluation of a run's seed plays the
        same episodes (`autonomous_success`)."""
        return self.seed + 1000


@dataclass
class CurvePoint:
    operator_time_s: float
    """Simulated seconds the operator watched so far (summed over envs)."""
    intervention_time_s: float
    """... of which with hands on the device."""
    interventions: int
    """Takeovers so far."""
    success: float
    """Autonomous success rate of the current policy (0..1) over `episodes` evaluation episodes."""
    episodes: int
    wall_s: float
    """Wall-clock seconds of training so far (on this machine)."""
    updates: int = 0
    """Gradient updates (or training epochs) so far."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def autonomous_success(cfg: HilRunConfig, base, net=None, dr: str = "train") -> float:
    """The success every method's curve reports: the diffusion policy `base` (receding-horizon chunks,
    as on a robot) plus the residual actor `net` (its deterministic action; None: the base alone),
    no operator, one episode on each of `cfg.eval_episodes` envs seeded `cfg.eval_seed()`."""
    import numpy as np
    import torch

    from robot_rl.evaluate import run_episodes
    from robot_rl.residual import ResidualEnv
    from robot_rl.sim import make_env

    seed = cfg.eval_seed()
    env = ResidualEnv(make_env(cfg.task, cfg.eval_episodes, dr=dr, seed=seed, nthread=cfg.nthread), base,
                      scale=1.0, seed=seed)
    try:
        with torch.no_grad():
            return float(np.mean(run_episodes(env, residual_policy(net, env.num_actions))[2]))
    finally:
        env.env.sim.close()


def residual_policy(net, act_dim: int):
    """For a `ResidualEnv` (input: [observation, base action]): the residual that makes the executed
    action the actor `net`'s deterministic one; zeros (the base alone) when `net` is None."""
    import torch

    def policy(x):
        return torch.zeros(len(x), act_dim) if net is None else net(x, deterministic=True)[0] - x[:, -act_dim:]

    return policy
