"""The parts of the PyBullet backend, tied together by `robot_rl.sim.pybullet_backend.PybulletBackend`
(the entry point: it checks that pybullet is installed before importing them).

* `urdf`: the robot's URDF for pybullet (its own, or one written from the compiled MuJoCo model).
* `contacts`: which contacts the model lets the robot make (a floor plane at most).
* `world`: the pybullet clients holding the robot copies and their shadows.
* `mapping`: MuJoCo joints, bodies and sites to pybullet joints and links (checked at construction).
* `actuators`: MuJoCo's actuator model as pybullet joint torques (with its approximations).
* `internal_step`: pybullet's internal step, from the stability of the explicit PD law.
* `physics`: the per-env physics parameters (`set_physics`) on the pybullet links and motors.
* `mjmodel`: what these modules read alike from the MuJoCo model.
"""
