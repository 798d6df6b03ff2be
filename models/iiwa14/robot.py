"""KUKA LBR iiwa 14 R820: 7-DoF arm with joint position control and gravity compensation.

The model (`iiwa14.xml`) is built from the URDF in `pybullet_data` by `build_from_urdf.py`, which
takes every constant below from this declaration.
"""

from robot_rl.robots import ActuatorModel, Robot

JOINTS = tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8))

IIWA14 = Robot(
    name="iiwa14",
    model_file="iiwa14/iiwa14.xml",
    urdf="pybullet_data:kuka_iiwa/model.urdf",
    joint_names=JOINTS,
    default_pose=(0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0),
    velocity_limits=10.0,  # rad/s, as the URDF states
    effort_limits=300.0,  # N m, as the URDF states
    actuator=ActuatorModel(
        kind="position",
        kp=400.0,  # N m / rad
        kd=40.0,  # N m s / rad
        gravity_compensation=True,  # the iiwa's controller compensates the gravity of its nominal model
        armature=0.1,  # kg m^2
        damping=0.5,  # N m s / rad
        frictionloss=0.0,
    ),
    frames={"ee": "ee", "flange": "flange"},
    payload_body="lbr_iiwa_link_7",
    scene="tabletop",
    description="KUKA LBR iiwa 14 R820 (URDF from pybullet_data), link meshes replaced by fitted capsules",
)
