"""What every reach task shares: a target point for the robot's `ee` frame, resampled every
`target_period_s` within an episode, relative joint-position actions, and the reward and success
of reaching. A robot's reach task (`iiwa_reach.py`, `panda_reach.py`) only sets the robot, the
target box, the action scale and its DR ranges.

Observations (all functions of the robot state, `robot_rl.terms`): joint positions relative to the
default pose, joint velocities, the `ee` position, the target, the `ee`-to-target vector, the
held joint target minus the measured position, and the last action. The target is the command
`target_pos`; a deployed robot receives it on the `target_pose` topic (geometry_msgs/PoseStamped,
position in the robot base frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import torch

from robot_rl.sim.randomization import DomainRandomization, uniform
from robot_rl.sim.task import ActTerm, Command, ObsTerm, Task

SUCCESS_RADIUS = 0.02

ARM_TRAIN_DR = DomainRandomization(
    mass_scale=(0.9, 1.1),
    inertia_scale=(0.8, 1.25),
    payload_pos_z_m=(0.0, 0.1),
    armature_scale=(0.8, 1.2),
    kp_scale=(0.85, 1.15),
    kd_scale=(0.85, 1.15),
    motor_strength=(0.9, 1.1),
    gravcomp_error=(-0.05, 0.05),
    action_delay_steps=(0, 1),
    obs_delay_steps=(0, 1),
    encoder_bias_rad=(0.0, 0.002),
    obs_noise_scale=1.0,
    obs_bias_scale=0.5,
    push_interval_s=(0.8, 1.6),
    push_joint_velocity=0.1,
)
"""The training DR range a position-controlled arm's reach task starts from (a task sets its
robot's payload range with `dataclasses.replace(ARM_TRAIN_DR, payload_kg=...)`)."""
ARM_EVAL_DR = DomainRandomization(
    mass_scale=(0.85, 1.15),
    inertia_scale=(0.75, 1.3),
    payload_pos_z_m=(0.05, 0.12),
    armature_scale=(1.1, 1.5),
    kp_scale=(0.8, 0.9),
    kd_scale=(1.1, 1.2),
    motor_strength=(0.85, 0.95),
    gravcomp_error=(-0.08, 0.08),
    action_delay_steps=(1, 1),
    obs_delay_steps=(0, 1),
    encoder_bias_rad=(0.001, 0.003),
    obs_noise_scale=1.5,
    obs_bias_scale=1.0,
    push_interval_s=(1.0, 2.0),
    push_joint_velocity=0.15,
)
"""The held-out range: wider physics ranges, a tool further out, weaker gains, more delay and
encoder bias; never seen in training. No friction term: these arms have neither contacts nor joint
friction loss in their models (`dr_effects.py` would refuse it). No damping term: the joints' 0.5
N m s/rad against the controller's kd of 40 moved the trajectories by under 1e-3 rad
(`tests/test_dr_effects.py`); `kd_scale` is what varies the velocity-proportional torque."""


@dataclass
class ReachTask(Task):
    action_scale: float = 0.05
    """Joint target change (rad) per control step at |action| = 1."""
    target_lo: tuple[float, float, float] = (0.35, -0.30, 0.30)
    target_hi: tuple[float, float, float] = (0.65, 0.30, 0.70)
    target_period_s: float = 2.0
    """A new target every this many seconds within an episode: the arm learns to reach from where
    the last reach left it, as it must on a robot that gets one target after another."""
    reset_joint_noise: float = 0.3
    success_radius: float = SUCCESS_RADIUS

    def scene(self, spec: mujoco.MjSpec) -> None:
        target = spec.worldbody.add_site()
        target.name = "target"
        target.type = mujoco.mjtGeom.mjGEOM_SPHERE
        target.size = [0.02, 0.02, 0.02]
        target.pos = [0.5, 0.0, 0.5]
        target.rgba = [0.9, 0.1, 0.1, 0.6]

    def commands(self) -> dict[str, Command]:
        return {"target_pos": Command(dim=3, topic="target_pose", unit="m")}

    def observations(self) -> list[ObsTerm]:
        return [
            ObsTerm("joint_pos", "joint_pos", {}, "rad", 1.0, 0.002),
            ObsTerm("joint_vel", "joint_vel", {}, "rad/s", 0.1, 0.05),
            ObsTerm("ee_pos", "frame_pos", {"frame": "ee"}, "m", 1.0, 0.002),
            ObsTerm("target_pos", "command", {"name": "target_pos"}, "m", 1.0, 0.0),
            ObsTerm("ee_to_target", "frame_to_command", {"frame": "ee", "command": "target_pos"}, "m", 4.0, 0.002),
            ObsTerm("joint_target_offset", "joint_target_offset", {}, "rad", 4.0, 0.002),
            ObsTerm("last_action", "last_action", {}, "", 1.0, 0.0),
        ]

    def actions(self) -> list[ActTerm]:
        return [ActTerm("arm", "joint_position_delta", {"scale": self.action_scale})]

    # -- episode -------------------------------------------------------------------------------
    def setup(self, env) -> None:
        self.target = env.commands["target_pos"]
        self.lo = torch.tensor(self.target_lo, device=env.device)
        self.hi = torch.tensor(self.target_hi, device=env.device)
        self.q_lo, self.q_hi = env.ctx.lower, env.ctx.upper

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
        qpos, qvel = env.default_qpos(n)
        q = env.default_pose + uniform(env.gen, -self.reset_joint_noise, self.reset_joint_noise,
                                       (n, env.num_joints), env.device)
        qpos[:, env._actuated_qpos] = torch.maximum(torch.minimum(q, self.q_hi), self.q_lo)
        return qpos, qvel

    def distance(self, env) -> torch.Tensor:
        return torch.linalg.norm(self.target - env.frame("ee"), dim=1)

    def reward(self, env):
        """-d + 0.5 (1 - tanh(d / 0.1)) + 0.5 (1 - tanh(d / 0.02)) - 0.005 |a - a_prev|^2
        - 0.0005 |qdot|^2 - 0.02 |q - q_default|^2, with d the ee-to-target distance; the last term
        keeps the redundant arm near its default posture in the null space (over many reaches it
        would otherwise drift toward its joint limits)."""
        d = self.distance(env)
        r = 1.0 - d
        r.sub_(torch.tanh(d * 10.0), alpha=0.5)
        r.sub_(torch.tanh(d * 50.0), alpha=0.5)
        da = env.actions - env.last_actions
        r.sub_(torch.linalg.vecdot(da, da), alpha=0.005)
        r.sub_(torch.linalg.vecdot(env.joint_vel, env.joint_vel), alpha=0.0005)
        dq = env.joint_pos - env.default_pose
        r.sub_(torch.linalg.vecdot(dq, dq), alpha=0.02)
        return r

    def success(self, env):
        return self.distance(env) < self.success_radius

    def markers(self, env, env_id):
        return {"target": self.target[env_id].cpu().numpy()}
