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

from dataclasses import dataclass, field, replace

from robot_rl.sim.randomization import DRPresets
from robot_rl.sim.tasks.reach import ARM_EVAL_DR, ARM_TRAIN_DR, ReachTask

TRAIN_DR = replace(ARM_TRAIN_DR, payload_kg=(0.0, 1.0))
EVAL_DR = replace(ARM_EVAL_DR, payload_kg=(0.5, 2.0))  # held out: more payload than training ever saw


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
