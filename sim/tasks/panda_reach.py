"""panda-reach: the 7-DoF Franka Emika Panda moves its grasp centre to random targets.

The second robot of the project, to show that a new robot is a description (`models/panda/`)
plus this file: everything else (targets resampled every 2 s within a 6 s episode, relative
joint-position actions, observations, reward, success within 2 cm of the last target) is the
shared `ReachTask` (`reach.py`).

* `ee` is the grasp centre between the finger pads (`models/panda/robot.py`); the gripper is not
  part of the action (its actuator holds the fingers closed).
* Targets lie in a box in front of the robot, 0.3-0.6 m out, +-0.25 m to the side, 0.2-0.6 m
  high (the Panda reaches 0.855 m; every point of the box is reachable with the elbow and wrist
  well inside their limits).
* `action_scale` 0.04 rad per 20 ms control step at |action| = 1 is 2 rad/s, within the Panda's
  rated joint velocities (2.175 / 2.61 rad/s).
* Physics runs at 100 Hz, the policy at 50 Hz (`decimation = 2`).
* DR: like the iiwa's, with payloads scaled to the Panda's 3 kg rating (0-0.5 kg in training,
  0.3-1.0 kg held out for evaluation).

`robot-rl train panda-reach --env.nthread 1 --torch-threads 1` (512 envs, the iiwa's PPO
defaults) reaches the 95% deterministic success of `success_rate_to_solve` in 60-80 iterations,
about 100 s on one core (seeds 0 and 1); those policies succeed in 98-99% of episodes under the
held-out `eval` DR.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from robot_rl.sim.randomization import DRPresets
from robot_rl.sim.tasks.reach import ARM_EVAL_DR, ARM_TRAIN_DR, ReachTask

TRAIN_DR = replace(ARM_TRAIN_DR, payload_kg=(0.0, 0.5))
EVAL_DR = replace(ARM_EVAL_DR, payload_kg=(0.3, 1.0))  # held out: more payload than training ever saw


@dataclass
class PandaReach(ReachTask):
    name: str = "panda-reach"
    robot_name: str = "panda"
    action_scale: float = 0.04  # rad per control step at |action| = 1 (2 rad/s)
    decimation: int = 2  # 10 ms physics, 20 ms (50 Hz) policy
    episode_length_s: float = 6.0
    target_lo: tuple[float, float, float] = (0.30, -0.25, 0.20)
    target_hi: tuple[float, float, float] = (0.60, 0.25, 0.60)
    dr: DRPresets = field(default_factory=lambda: DRPresets(train=TRAIN_DR, eval=EVAL_DR))
    success_rate_to_solve: float = 0.95
    train_defaults: dict = field(default_factory=lambda: {"ppo.init_noise_std": 0.5, "ppo.entropy_coef": 0.0})
