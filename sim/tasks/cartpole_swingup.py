"""cartpole-swingup: swing a hanging pole up and balance it (dm_control's task, batched).

The action is the cart motor command in [-1, 1]. Reward as in dm_control: upright x centered x
small control x small velocity, each in [0, 1]. Success: the pole within ~18 degrees of upright and
the cart within 0.5 m of the centre when the episode ends. As in dm_control the rail ends in hard
stops and episodes only time out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from robot_rl.sim.randomization import DomainRandomization, DRPresets, uniform
from robot_rl.sim.task import ObsTerm, Task

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


def _pole_angle(env) -> torch.Tensor:
    return env.qpos_all[:, 1]


@dataclass
class CartpoleSwingup(Task):
    name: str = "cartpole-swingup"
    model_file: str = "cartpole.xml"
    joint_names: tuple[str, ...] = ("slider",)
    default_pose: tuple[float, ...] = (0.0,)
    action_scale: float = 1.0
    action_mode: str = "joint_effort"
    decimation: int = 2  # 10 ms physics, 20 ms policy
    episode_length_s: float = 5.0
    dr: DRPresets = field(default_factory=lambda: DRPresets(train=TRAIN_DR, eval=EVAL_DR))
    payload_body: str = "pole"
    success_rate_to_solve: float = 0.9

    def policy_terms(self) -> list[ObsTerm]:
        return [
            ObsTerm("cart_pos", lambda e: e.qpos_all[:, :1], "m", 1.0, 0.005, "joint_states.position[slider]"),
            ObsTerm("pole_cos_sin", lambda e: torch.stack(
                [torch.cos(_pole_angle(e)), torch.sin(_pole_angle(e))], dim=1), "", 1.0, 0.005,
                "cos, sin of joint_states.position[hinge]"),
            ObsTerm("cart_pole_vel", lambda e: e.qvel_all[:, :2], "m/s, rad/s", 0.2, 0.02,
                    "joint_states.velocity[slider, hinge]"),
            ObsTerm("last_action", lambda e: e.actions, "", 1.0, 0.0, "previous policy output"),
        ]

    def reset(self, env, ids):
        n = len(ids)
        qpos = torch.stack([uniform(env.gen, -0.1, 0.1, (n,), env.device),
                            torch.pi + uniform(env.gen, -0.1, 0.1, (n,), env.device)], dim=1)
        qvel = uniform(env.gen, -0.05, 0.05, (n, 2), env.device)
        return qpos, qvel

    def action_to_ctrl(self, env, actions):
        return actions * self.action_scale

    def reward(self, env):
        x = env.qpos_all[:, 0]
        upright = (torch.cos(_pole_angle(env)) + 1.0) / 2.0
        centered = (1.0 + torch.exp(-(x**2) / 0.5)) / 2.0
        small_control = (4.0 + torch.exp(-env.actions[:, 0] ** 2)) / 5.0
        small_velocity = (1.0 + torch.exp(-(env.qvel_all[:, 1] ** 2) / 10.0)) / 2.0
        return upright * centered * small_control * small_velocity

    def success(self, env):
        return (torch.cos(_pole_angle(env)) > 0.95) & (env.qpos_all[:, 0].abs() < 0.5)
