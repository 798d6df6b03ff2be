"""iiwa-reach: the 7-DoF KUKA LBR iiwa moves its flange to random targets.

Joint-position targets through the iiwa's PD position actuators. The action moves the joint
position target: `target += action_scale * action` each control step (clipped to the joint limits),
starting from the measured position at reset, as Isaac Lab's relative joint-position action does; a
feedback law of this form is learned far faster than an absolute inverse-kinematics map.

Targets are sampled in a box in front of the robot, a new one every `target_period_s` (2 s) within
a 6 s episode, so the arm learns to reach from wherever the previous reach left it. Success is the
flange within 2 cm of the (last) target when the episode ends. The robot is `iiwa14`
(`models/iiwa14/robot.py`); `reach.py` holds what every reach task shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.sim.randomization import DomainRandomization, DRPresets
from robot_rl.sim.tasks.reach import ReachTask

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
class IiwaReach(ReachTask):
    name: str = "iiwa-reach"
    robot_name: str = "iiwa14"
    action_scale: float = 0.05  # rad per control step at |action| = 1 (2.5 rad/s)
    decimation: int = 2  # 10 ms physics, 20 ms (50 Hz) policy
    episode_length_s: float = 6.0
    target_lo: tuple[float, float, float] = (0.35, -0.30, 0.30)
    target_hi: tuple[float, float, float] = (0.65, 0.30, 0.70)
    dr: DRPresets = field(default_factory=lambda: DRPresets(train=TRAIN_DR, eval=EVAL_DR))
    success_rate_to_solve: float = 0.95
    train_defaults: dict = field(default_factory=lambda: {"ppo.init_noise_std": 0.5, "ppo.entropy_coef": 0.0})
