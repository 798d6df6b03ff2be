"""Robot twin: a MuJoCo simulation of the robot with held-out dynamics, run in real time.

The twin stands in for hardware: a separate process (``python -m robot_rl.nodes.twin``) that
simulates the robot with physics parameters drawn from the task's *held-out* domain-randomization
range (``dr="eval"``: masses, payload, friction, damping, armature, PD gains, motor strength; the
sample is reproducible from ``seed``), and speaks the ros2_control topics a real arm does:
``/joint_states`` out, ``/<controller>/commands`` and ``/<controller>/joint_trajectory`` in.

:class:`RobotTwin` is the transport-free part:

    twin = RobotTwin("iiwa-reach", seed=3, physics_rate_hz=1000)
    twin.set_command(q)                   # joint position targets (joint_names order); held
    twin.advance_to(sim_time)             # step physics until sim time reaches sim_time
    q, dq, tau = twin.read(noisy=True)    # measured state with sensor noise

Physics runs at ``physics_rate_hz`` (the model's time step is set to ``1 / physics_rate_hz``);
the PD position actuators of the model track the held command. Until a command arrives the
twin holds its initial pose (the task's default pose unless ``initial_pose`` is given).
Sensor noise: Gaussian with ``position_noise`` (rad) and ``velocity_noise`` (rad/s) standard
deviations, defaults from the task's declared observation noise times the held-out noise scale.
The robot comes from the registry (the task's robot): the twin reports its actuated and passive
joints and, if it has a gripper, the finger joints; a command may include the fingers (the
gripper actuator then follows their target).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from robot_rl.joint_map import JointMap, JointMapError

__all__ = ["RobotTwin", "TwinError"]


class TwinError(ValueError):
    pass


class RobotTwin:
    def __init__(self, task: str, seed: int = 0, dr: str = "eval", physics_rate_hz: float = 1000.0,
                 position_noise: float | None = None, velocity_noise: float | None = None,
                 initial_pose: Sequence[float] | None = None):
        import mujoco

        from robot_rl.sim import make_env

        if not (100.0 <= physics_rate_hz <= 10000.0):
            raise TwinError(f"physics_rate_hz={physics_rate_hz} is outside 100..10000 Hz")
        env = make_env(task, 1, dr=dr, seed=int(seed), nthread=1, backend="mujoco")
        env.reset()  # samples the DR parameters and writes them into env.sim.models[0]
        self.dr_params = {k: float(v[0]) for k, v in env.dr_params.items()}
        self.task = task
        self.dr = dr
        self.seed = int(seed)
        self.model = model = env.sim.models[0]
        model.opt.timestep = 1.0 / float(physics_rate_hz)
        self.physics_dt = model.opt.timestep
        self.data = mujoco.MjData(model)
        self._mj = mujoco
        robot = env.robot
        self.robot = robot
        grip = robot.gripper
        self.command_joints: list[str] = list(robot.joint_names) + (list(grip.joint_names) if grip else [])
        """Joints a command may name: the actuated joints, then the gripper's fingers."""
        self.joint_names: list[str] = list(robot.state_joints) + (list(grip.joint_names) if grip else [])
        """Joints reported on joint_states."""
        jids = [model.joint(n).id for n in self.joint_names]
        self._qadr = np.array([model.jnt_qposadr[j] for j in jids])
        self._vadr = np.array([model.jnt_dofadr[j] for j in jids])
        n_arm = len(robot.joint_names)
        arm_ids = jids[:n_arm]
        self._act = np.array([int(np.flatnonzero(model.actuator_trnid[:, 0] == j)[0]) for j in arm_ids])
        self._grip_act = model.actuator(grip.actuator).id if grip else None
        cj = [model.joint(n).id for n in self.command_joints]
        self._cmd_qadr = np.array([model.jnt_qposadr[j] for j in cj])
        self.lower = model.jnt_range[cj, 0].copy()
        self.upper = model.jnt_range[cj, 1].copy()
        q0 = np.asarray(robot.default_pose if initial_pose is None else initial_pose, dtype=np.float64)
        if q0.shape != (n_arm,) or not np.isfinite(q0).all():
            raise TwinError(f"initial_pose needs {n_arm} finite values, got {list(np.atleast_1d(q0))}")
        self.data.qpos[self._cmd_qadr[:n_arm]] = np.clip(q0, self.lower[:n_arm], self.upper[:n_arm])
        if grip:
            # as in training: the gripper actuator starts at control 0, i.e. fingers closed
            self.data.qpos[self._cmd_qadr[n_arm:]] = grip.closed_position
        mujoco.mj_forward(model, self.data)
        self.command = self.data.qpos[self._cmd_qadr].copy()
        self._finger_names = set(self.command_joints[n_arm:])
        self._cmd_map_arm = JointMap(self.command_joints[:n_arm], extra="refuse", what="command")
        self._cmd_map_full = JointMap(self.command_joints, extra="refuse", what="command")
        self._apply_command()
        # default sensor noise: the task's declared noise of joint positions / velocities x held-out scale
        terms = {t["func"]: t for t in env.observation_spec()}
        scale = env.dr.obs_noise_scale
        self.position_noise = float(terms.get("joint_pos", {}).get("noise_std", 0.0) * scale
                                    if position_noise is None else position_noise)
        self.velocity_noise = float(terms.get("joint_vel", {}).get("noise_std", 0.0) * scale
                                    if velocity_noise is None else velocity_noise)
        if self.position_noise < 0 or self.velocity_noise < 0:
            raise TwinError("sensor noise standard deviations must be >= 0")
        self._rng = np.random.default_rng(self.seed + 1)
        self.steps = 0
        self.commands_received = 0

    @property
    def sim_time(self) -> float:
        return self.steps * self.physics_dt

    def _apply_command(self) -> None:
        n_arm = len(self._act)
        self.data.ctrl[self._act] = self.command[:n_arm]
        if self._grip_act is not None:
            self.data.ctrl[self._grip_act] = self.command[n_arm]

    def set_command(self, q, names: Sequence[str] | None = None) -> None:
        """Hold joint position targets ``q`` (in ``command_joints`` order, or by ``names``; the
        gripper's fingers may be left out: they keep their target).

        Raises :class:`TwinError` for a wrong length, unknown, missing or repeated names (mapped
        by :class:`robot_rl.joint_map.JointMap`), or NaN/Inf (the previous command stays).
        Targets are clipped to the joint ranges."""
        new = self.command.copy()
        n_arm = len(self._act)
        try:
            if names is not None:
                names = list(names)
                full = any(n in self._finger_names for n in names)
                jm = self._cmd_map_full if full else self._cmd_map_arm
                new[: len(jm)] = jm.take(names, q)
            else:
                q = np.asarray(q, dtype=np.float64).reshape(-1)
                if q.shape[0] not in (n_arm, len(self.command_joints)):
                    with_fingers = len(self.command_joints) > n_arm
                    raise TwinError(f"command has {q.shape[0]} values for {n_arm} joints"
                                    + (f" (or {len(self.command_joints)} with the fingers)" if with_fingers else ""))
                new[: q.shape[0]] = q
        except JointMapError as e:
            raise TwinError(str(e)) from None
        except (TypeError, ValueError) as e:
            raise TwinError(f"command values are not numbers: {e}") from None
        if not np.isfinite(new).all():
            raise TwinError("command contains NaN/Inf")
        self.command = np.clip(new, self.lower, self.upper)
        self._apply_command()
        self.commands_received += 1

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self._mj.mj_step(self.model, self.data)
        self.steps += n

    def advance_to(self, sim_time: float, max_steps: int = 50) -> int:
        """Step until the simulation clock reaches ``sim_time`` (at most ``max_steps`` steps)."""
        due = int(math.floor(sim_time / self.physics_dt + 1e-9)) - self.steps
        n = max(0, min(due, max_steps))
        if n:
            self.step(n)
        return n

    def read(self, noisy: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, effort) in ``joint_names`` order; effort = actuator torque."""
        q = self.data.qpos[self._qadr].copy()
        dq = self.data.qvel[self._vadr].copy()
        tau = self.data.qfrc_actuator[self._vadr].copy()
        tau[len(self._act):] = 0.0  # passive joints and fingers: no joint actuator of their own
        if noisy:
            if self.position_noise > 0:
                q += self._rng.normal(0.0, self.position_noise, q.shape)
            if self.velocity_noise > 0:
                dq += self._rng.normal(0.0, self.velocity_noise, dq.shape)
        return q, dq, tau

    def site_pos(self, site: str = "ee") -> np.ndarray:
        return self.data.site_xpos[self.model.site(site).id].copy()
