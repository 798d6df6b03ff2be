"""cartpole-swingup: swing a hanging pole up and balance it (dm_control's task, batched).

The action is the cart motor command in [-1, 1]. Reward as in dm_control: upright x centered x
small control x small velocity, each in [0, 1]. Success: the pole within ~18 degrees of upright and
the cart within 0.5 m of the centre when the episode ends. As in dm_control the rail ends in hard
stops and episodes only time out. The robot is `cartpole` (`models/cartpole/robot.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from robot_rl.sim.randomization import DomainRandomization, DRPresets, uniform
from robot_rl.sim.task import ActTerm, ObsTerm, Task

TRAIN_DR = DomainRandomization(
    mass_scale=(0.8, 1.2),
    damping_scale=(0.5, 1.5),
    motor_strength=(0.9, 1.1),
    action_delay_steps=(0, 1),
    obs_noise_scale=1.0,
)
EVAL_DR = DomainRandomization(
    mass_scale=(1.2, 1.3),
    damping_scale=(1.5, 2.0),
    motor_strength=(0.85, 0.9),
    action_delay_steps=(1, 1),
    obs_noise_scale=1.5,
)


@dataclass
class CartpoleSwingup(Task):
    name: str = "cartpole-swingup"
    robot_name: str = "cartpole"
    decimation: int = 2  # 10 ms physics, 20 ms policy
    episode_length_s: float = 5.0
    dr: DRPresets = field(default_factory=lambda: DRPresets(train=TRAIN_DR, eval=EVAL_DR))
    success_rate_to_solve: float = 0.9
    train_defaults: dict = field(default_factory=lambda: {
        # 256 envs: 8k samples per update, so more updates per sample than 1024 envs give;
        # on 2 cores it solves in ~50-70 s (seeds 0-2) where 1024 envs took 170 s or more
        "env.num_envs": 256, "ppo.num_steps_per_env": 32, "ppo.entropy_coef": 0.005,
        "ppo.learning_rate": 1e-3, "ppo.init_noise_std": 1.0, "max_iterations": 400})

    def observations(self) -> list[ObsTerm]:
        return [
            ObsTerm("cart_pos", "joint_pos", {"joints": ["slider"], "relative": False}, "m", 1.0, 0.005),
            ObsTerm("pole_cos_sin", "joint_cos_sin", {"joints": ["hinge"]}, "", 1.0, 0.005),
            ObsTerm("cart_pole_vel", "joint_vel", {"joints": ["slider", "hinge"]}, "m/s, rad/s", 0.2, 0.02),
            ObsTerm("last_action", "last_action", {}, "", 1.0, 0.0),
        ]

    def actions(self) -> list[ActTerm]:
        return [ActTerm("cart", "joint_effort", {"scale": 1.0})]

    def reset(self, env, ids):
        n = len(ids)
        qpos = torch.stack([uniform(env.gen, -0.1, 0.1, (n,), env.device),
                            torch.pi + uniform(env.gen, -0.1, 0.1, (n,), env.device)], dim=1)
        qvel = uniform(env.gen, -0.05, 0.05, (n, 2), env.device)
        return qpos, qvel

    def reward(self, env):
        x, angle = env.state.joint_pos[:, 0], env.state.joint_pos[:, 1]
        upright = (torch.cos(angle) + 1.0) / 2.0
        centered = (1.0 + torch.exp(-(x**2) / 0.5)) / 2.0
        small_control = (4.0 + torch.exp(-env.actions[:, 0] ** 2)) / 5.0
        small_velocity = (1.0 + torch.exp(-(env.state.joint_vel[:, 1] ** 2) / 10.0)) / 2.0
        return upright * centered * small_control * small_velocity

    def success(self, env):
        return (torch.cos(env.state.joint_pos[:, 1]) > 0.95) & (env.state.joint_pos[:, 0].abs() < 0.5)
