"""A cart on a rail with a hinged pole (dm_control's cartpole, motor twice as strong)."""

from robot_rl.robots import ActuatorModel, Robot

CARTPOLE = Robot(
    name="cartpole",
    model_file="cartpole/cartpole.xml",
    joint_names=("slider",),
    passive_joints=("hinge",),
    default_pose=(0.0,),
    velocity_limits=10.0,  # m/s
    effort_limits=20.0,  # N: gear 20 x control in [-1, 1]
    actuator=ActuatorModel(kind="effort", gear=20.0, damping=0.5),
    frames={},
    payload_body="pole",
    description="cart-pole, force-controlled cart, passive pole",
)
