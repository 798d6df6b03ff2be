"""iiwa-reach: the 7-DoF KUKA LBR iiwa moves its flange to random targets.

Joint-position targets through the iiwa's PD position actuators. The action moves the joint
position target: `target += action_scale * action` each control step (clipped to the joint limits),
starting from the measured position at reset, as Isaac Lab's relative joint-position action does; a
feedback law of this form is learned far faster than an absolute inverse-kinematics map.

Targets are sampled in a box in front of the robot, a new one every `target_period_s` (2 s) within
a 6 s episode, so the arm learns to reach from wherever the previous reach left it. Success is the
flange within 2 cm of the (last) target when the episode ends. Model: `models/iiwa14/iiwa14.xml`,
built from the URDF in `pybullet_data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from robot_rl.sim.randomization import DomainRandomization, DRPresets, uniform
from robot_rl.sim.task import ObsTerm, Task

JOINTS = tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8))
TARGET_LO = (0.35, -0.30, 0.30)
TARGET_HI = (0.65, 0.30, 0.70)
SUCCESS_RADIUS = 0.02

TRAIN_DR = DomainRandomization(
    mass_scale=(0.9, 1.1),
    payload_kg=(0.0, 1.0),
    friction_scale=(0.5, 1.5),
    damping_scale=(0.8, 1.2),
    armature_scale=(0.8, 1.2),
    kp_scale=(0.85, 1.15),
    kd_scale=(0.85, 1.15),
    motor_strength=(0.9, 1.1),
    action_delay_steps=(0, 1),
    obs_delay_steps=(0, 1),
    obs_noise_scale=1.0,
    obs_bias_scale=0.5,
    push_interval_s=(0.8, 1.6),
    push_joint_velocity=0.1,
)
# held out: wider physics ranges, more payload, different delays; never seen in training
EVAL_DR = DomainRandomization(
    mass_scale=(0.85, 1.15),
    payload_kg=(0.5, 2.0),
    friction_scale=(1.0, 2.0),
    damping_scale=(1.1, 1.4),
    armature_scale=(1.1, 1.3),
    kp_scale=(0.8, 0.9),
    kd_scale=(1.1, 1.2),
    motor_strength=(0.85, 0.95),
    action_delay_steps=(1, 1),
    obs_delay_steps=(0, 1),
    obs_noise_scale=1.5,
    obs_bias_scale=1.0,
    push_interval_s=(1.0, 2.0),
    push_joint_velocity=0.15,
)


@dataclass
class IiwaReach(Task):
    name: str = "iiwa-reach"
    model_file: str = "iiwa14/iiwa14.xml"
    joint_names: tuple[str, ...] = JOINTS
    default_pose: tuple[float, ...] = (0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0)
    action_scale: float = 0.05  # rad per control step at |action| = 1 (2.5 rad/s)
    action_mode: str = "joint_position_delta"
    decimation: int = 2  # 10 ms physics, 20 ms (50 Hz) policy
    episode_length_s: float = 6.0
    target_period_s: float = 2.0
    """A new target every this many seconds within an episode: the arm learns to reach from where
    the last reach left it, as it must on a robot that gets one target after another."""
    dr: DRPresets = field(default_factory=lambda: DRPresets(train=TRAIN_DR, eval=EVAL_DR))
    payload_body: str = "lbr_iiwa_link_7"
    success_rate_to_solve: float = 0.95
    reset_joint_noise: float = 0.3

    def setup(self, env) -> None:
        self.target = torch.zeros(env.num_envs, 3, device=env.device)
        self.q_cmd = env.default_pose.repeat(env.num_envs, 1)
        self.lo = torch.tensor(TARGET_LO, device=env.device)
        self.hi = torch.tensor(TARGET_HI, device=env.device)
        lim = env.model.jnt_range[[env.model.joint(n).id for n in JOINTS]]
        self.q_lo = torch.tensor(lim[:, 0], dtype=torch.float32, device=env.device)
        self.q_hi = torch.tensor(lim[:, 1], dtype=torch.float32, device=env.device)

    # -- observation terms ---------------------------------------------------------------------
    def policy_terms(self) -> list[ObsTerm]:
        return [
            ObsTerm("joint_pos", lambda e: e.joint_pos - e.default_pose, "rad", 1.0, 0.002,
                    "joint_states.position - default_pose"),
            ObsTerm("joint_vel", lambda e: e.joint_vel, "rad/s", 0.1, 0.05, "joint_states.velocity"),
            ObsTerm("ee_pos", lambda e: e.sensor("ee_pos"), "m", 1.0, 0.002,
                    "forward kinematics of joint_states.position, site ee, base frame"),
            ObsTerm("target_pos", lambda e: self.target, "m", 1.0, 0.0, "target topic, base frame"),
            ObsTerm("ee_to_target", lambda e: self.target - e.sensor("ee_pos"), "m", 4.0, 0.002,
                    "target_pos - ee_pos"),
            ObsTerm("joint_target_offset", lambda e: self.q_cmd - e.joint_pos, "rad", 4.0, 0.002,
                    "commanded joint target - joint_states.position"),
            ObsTerm("last_action", lambda e: e.actions, "", 1.0, 0.0, "previous policy output"),
        ]

    # -- episode -------------------------------------------------------------------------------
    def _sample_targets(self, env, ids) -> None:
        self.target[ids] = self.lo + (self.hi - self.lo) * torch.rand(
            (len(ids), 3), generator=env.gen, device=env.device
        )

    def after_step(self, env, running):
        period = max(1, round(self.target_period_s / env.control_dt))
        due = (running & (env.episode_length % period == 0)).nonzero().flatten()
        if len(due):
            self._sample_targets(env, due)

    def reset(self, env, ids):
        n = len(ids)
        self._sample_targets(env, ids)
        q = env.default_pose + uniform(env.gen, -self.reset_joint_noise, self.reset_joint_noise,
                                       (n, env.num_actions), env.device)
        q = torch.maximum(torch.minimum(q, self.q_hi), self.q_lo)
        self.q_cmd[ids] = q
        return q, torch.zeros_like(q)

    def action_to_ctrl(self, env, actions):
        q = self.q_cmd + self.action_scale * actions
        self.q_cmd = torch.maximum(torch.minimum(q, self.q_hi), self.q_lo)
        return self.q_cmd

    def distance(self, env) -> torch.Tensor:
        return torch.linalg.norm(self.target - env.sensor("ee_pos"), dim=1)

    def reward(self, env):
        d = self.distance(env)
        action_rate = torch.sum((env.actions - env.last_actions) ** 2, dim=1)
        return (
            -d
            + 0.5 * (1.0 - torch.tanh(d / 0.1))
            + 0.5 * (1.0 - torch.tanh(d / 0.02))
            - 0.005 * action_rate
            - 0.0005 * torch.sum(env.joint_vel**2, dim=1)
            # stay near the default posture in the arm's null space: over many reaches a redundant
            # arm would otherwise drift toward its joint limits
            - 0.02 * torch.sum((env.joint_pos - env.default_pose) ** 2, dim=1)
        )

    def success(self, env):
        return self.distance(env) < SUCCESS_RADIUS

    def render_scene(self, env, env_id, model, data) -> None:
        model.site("target").pos[:] = self.target[env_id].cpu().numpy()
