"""A one-joint reaching task small enough for PPO to learn inside a test's budget."""

from dataclasses import dataclass, field

import mujoco
import torch

from robot_rl.sim.randomization import DomainRandomization, DRPresets, uniform
from robot_rl.sim.task import ObsTerm, Task
from robot_rl.sim.tasks import register

XML = """
<mujoco model="slider">
  <option timestep="0.01"/>
  <worldbody>
    <body name="block">
      <joint name="x" type="slide" axis="1 0 0" range="-1 1" damping="1"/>
      <geom type="box" size="0.05 0.05 0.05" mass="1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator><position joint="x" kp="50" kv="10" ctrlrange="-1 1"/></actuator>
</mujoco>
"""


@dataclass
class ToyReach(Task):
    name: str = "toy-reach"
    model_file: str = ""
    joint_names: tuple = ("x",)
    default_pose: tuple = (0.0,)
    action_scale: float = 0.5
    decimation: int = 2
    episode_length_s: float = 0.4
    dr: DRPresets = field(default_factory=lambda: DRPresets(
        train=DomainRandomization(mass_scale=(0.8, 1.2)), eval=DomainRandomization(mass_scale=(1.3, 1.5))))
    success_rate_to_solve: float = 0.8

    def build_model(self):
        return mujoco.MjModel.from_xml_string(XML)

    def setup(self, env):
        self.target = torch.zeros(env.num_envs, 1, device=env.device)

    def policy_terms(self):
        return [ObsTerm("error", lambda e: self.target - e.joint_pos, "m", 1.0, 0.0),
                ObsTerm("vel", lambda e: e.joint_vel, "m/s", 0.3, 0.0)]

    def reset(self, env, ids):
        self.target[ids] = uniform(env.gen, -0.6, 0.6, (len(ids), 1), env.device)
        q = torch.zeros(len(ids), 1, device=env.device)
        return q, q.clone()

    def reward(self, env):
        return -(self.target - env.joint_pos).abs()[:, 0]

    def success(self, env):
        return (self.target - env.joint_pos).abs()[:, 0] < 0.1


register("toy-reach", ToyReach)
