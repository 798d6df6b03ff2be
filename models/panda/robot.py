"""Franka Emika Panda: 7-DoF arm with joint position control and gravity compensation, and the
Franka Hand, a parallel gripper whose two fingers move together.

The model (`panda.xml`) is built from the URDF in `pybullet_data` by `build_from_urdf.py`, which
takes every constant below from this declaration (a test checks that they agree).

Joint controller (`actuator`): a joint-space PD position servo on top of the robot's own gravity
compensation, as Franka's joint impedance controller runs it. Gains as MuJoCo Menagerie's
`franka_emika_panda` (kp 4500 / 2000 N m/rad, kd 450 / 200 N m s/rad for joints 1-4 / 5-7). With
the URDF's link inertias (0.1 kg m^2 per link about every axis) plus 0.1 kg m^2 armature this is an
overdamped servo (damping ratio 1.6-3.5 over the workspace, closed-loop time constant kd/kp = 0.1 s:
a 0.2 rad step settles to 2 mrad in 0.5 s) and it is stable at the 100 Hz physics step with MuJoCo's
implicitfast integrator: kd is integrated implicitly, and kp dt^2 / I stays below 0.7 on every joint
over the whole workspace and the domain-randomization extremes, far inside the stability bound
4 + 2 kd dt / I of that step (a 0.5 rad step at the torque limits stays within 0.03 rad of a
2 kHz reference). The torques saturate at the rated 87 / 12 N m, so a large error is closed at the torque limit.

Frames: `ee` is the grasp centre between the finger pads (the URDF's `panda_grasptarget`, 0.105 m
past the flange); `flange` is link 8's flange (0.107 m past link 7's origin); `tool` is the point
between the fingertips' ends (0.1122 m past the flange), the first point to touch a surface below
the hand.

Gripper: one position actuator on a tendon that averages the two finger joints (ctrl = opening of
each finger, 0 = closed .. 0.04 m = open); an equality constraint keeps joint 2 = joint 1, as the
hand's mechanical coupling does. `max_force` is the Franka Hand's continuous grasping force (70 N;
the model limits each finger joint to it, where the pybullet URDF states 20 N, not the real hand's
value). Only the finger pads collide (see `build_from_urdf.py`).
"""

from robot_rl.robots import ActuatorModel, Gripper, Robot

JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGERS = ("panda_finger_joint1", "panda_finger_joint2")

# The finger servo (not part of `Gripper`): a PD law on the mean finger opening, force on that
# tendon limited to 2 x max_force (each finger gets half, so the squeeze is at most max_force).
GRIPPER_KP = 2000.0  # N / m
GRIPPER_KD = 100.0  # N s / m

PANDA = Robot(
    name="panda",
    model_file="panda/panda.xml",
    urdf="pybullet_data:franka_panda/panda.urdf",
    joint_names=JOINTS,
    default_pose=(0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785),  # "ready": hand above the table, pointing down
    velocity_limits=(2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61),  # rad/s, as the URDF states
    effort_limits=(87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0),  # N m, as the URDF states
    actuator=ActuatorModel(
        kind="position",
        kp=(4500.0, 4500.0, 4500.0, 4500.0, 2000.0, 2000.0, 2000.0),  # N m / rad
        kd=(450.0, 450.0, 450.0, 450.0, 200.0, 200.0, 200.0),  # N m s / rad
        gravity_compensation=True,  # Franka's controller compensates the gravity of its nominal model
        armature=0.1,  # kg m^2
        damping=1.0,  # N m s / rad
        frictionloss=0.0,
    ),
    frames={"ee": "ee", "flange": "flange", "tool": "tool"},
    gripper=Gripper(
        joint_names=FINGERS,
        actuator="panda_hand_act",
        open_position=0.04,
        closed_position=0.0,
        max_force=70.0,
    ),
    payload_body="panda_hand",
    scene="tabletop",
    description="Franka Emika Panda with the Franka Hand (URDF from pybullet_data), link meshes replaced "
    "by fitted capsules, finger pads as boxes",
)
