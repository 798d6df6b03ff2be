"""A one-joint reaching task small enough for PPO to learn inside a test's budget; also the
smallest complete example of a robot declaration plus a task file."""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from robot_rl.robots import ActuatorModel, Robot, register_robot
from robot_rl.sim.randomization import DomainRandomization, DRPresets, uniform
from robot_rl.sim.task import ActTerm, Command, ObsTerm, Task
from robot_rl.sim.tasks import register

SLIDER = Robot(
    name="toy-slider",
    model_file=str(Path(__file__).resolve().parent / "toy_slider.xml"),  # absolute: outside models/
    joint_names=("x",),
    default_pose=(0.0,),
    velocity_limits=5.0,
    effort_limits=100.0,
    actuator=ActuatorModel(kind="position", kp=50.0, kd=10.0, damping=1.0),
    frames={"tip": "tip"},
    payload_body="block",
)
register_robot(SLIDER)


@dataclass
class ToyReach(Task):
    name: str = "toy-reach"
    robot_name: str = "toy-slider"
    decimation: int = 2
    episode_length_s: float = 0.4
    dr: DRPresets = field(default_factory=lambda: DRPresets(
        train=DomainRandomization(mass_scale=(0.8, 1.2)), eval=DomainRandomization(mass_scale=(1.3, 1.5))))
    success_rate_to_solve: float = 0.8

    def commands(self):
        return {"target": Command(dim=1, topic="target", msg="std_msgs/Float64MultiArray", field="data", unit="m")}

    def observations(self):
        return [ObsTerm("error", "command_to_joint_pos", {"command": "target"}, "m", 1.0, 0.0),
                ObsTerm("vel", "joint_vel", {}, "m/s", 0.3, 0.0)]

    def actions(self):
        return [ActTerm("x", "joint_position", {"scale": 0.5})]

    def setup(self, env):
        self.target = env.commands["target"]

    def reset(self, env, ids):
        self.target[ids] = uniform(env.gen, -0.6, 0.6, (len(ids), 1), env.device)
        return env.default_qpos(len(ids))

    def reward(self, env):
        return -(self.target - env.joint_pos).abs()[:, 0]

    def success(self, env):
        return (self.target - env.joint_pos).abs()[:, 0] < 0.1


register("toy-reach", ToyReach)
