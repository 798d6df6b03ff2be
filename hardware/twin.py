"""Robot twin: a MuJoCo simulation of the robot with held-out dynamics, run in real time.

The twin stands in for hardware: a separate process (``python -m robot_rl.nodes.twin``) that
simulates the robot with every term of the task's *held-out* domain-randomization range
(``dr="eval"``), sampled once from ``seed``, and speaks the ros2_control topics a real arm does:
``/joint_states`` out, ``/<controller>/commands`` and ``/<controller>/joint_trajectory`` in.
It applies the whole sample, as the training env does:

* physics: link masses and inertias, the payload and where it sits, armature, PD gains, motor
  strength, the gravity-compensation error (in the model, `robot_rl.sim.physics_params`);
* the action delay: a command takes effect ``command_delay_s`` after it arrives (the sampled
  delay steps x the control period); the observation delay is the node's ``latency_ms``
  (``obs_delay_s``);
* encoder bias: the joints report q + b and the position controller servos that reading, so the
  arm settles at target - b; sensor noise and a per-run bias of the velocity and position readings
  (the term noise x the range's noise and bias scales);
* pushes: random joint-velocity kicks at the range's intervals;
* the scene (``scene``: "default" = the robot's, a registered name, or None / "none"): the table
  and obstacles of :mod:`robot_rl.scenes` are added to the model and collide with the arm's link
  capsules (and fingers), so a link really hits them; ``scene_contacts()`` lists the contacts. A
  scene whose shapes overlap the robot at its home pose is refused (``TwinError``, one line).

``dr`` may name a DR range (eval, train, off) or a published stress twin (``robot_rl.sim.twins``),
and ``overrides`` replace single terms with measured values (payload mass and position, mass and
inertia scales, kp/kd scales, motor strength, gravity-compensation error, encoder bias: a scalar
with random signs or one value per joint; delays in seconds).

:class:`RobotTwin` is the transport-free part:

    twin = RobotTwin("iiwa-reach", seed=3, physics_rate_hz=1000)
    twin.set_command(q)                   # joint position targets (joint_names order); held
    twin.advance_to(sim_time)             # step physics until sim time reaches sim_time
    q, dq, tau = twin.read(noisy=True)    # measured state with sensor noise
    cmds = twin.start_episode(seed=7)     # the task's reset for seed 7 in the MjData; its commands
    twin.task_status()                    # {"success": ..., "distance": ...} by the task's functions

Physics runs at ``physics_rate_hz`` (the model's time step is set to ``1 / physics_rate_hz``);
the PD position actuators of the model track the held command. Until a command arrives the
twin holds its initial pose (the task's default pose unless ``initial_pose`` is given).
Sensor noise: Gaussian with ``position_noise`` (rad) and ``velocity_noise`` (rad/s) standard
deviations, defaults from the task's declared observation noise times the held-out noise scale.
The robot comes from the registry (the task's robot): the twin reports its actuated and passive
joints and, if it has a gripper, the finger joints; a command may include the fingers (the
gripper actuator then follows their target).

Task episodes (`robot_rl.hardware.twin_episodes`): ``start_episode(seed)`` writes the task's own
reset for ``seed`` (the whole scene: the arm at the task's start pose, objects, scene joints) into
the twin's MjData, makes the new arm pose the held command (delayed commands still pending are
dropped) and returns the task's commands (e.g. a believed hole position, with the episode's
error); ``task_status()`` evaluates the task's ``success`` (and ``distance``) on the twin's state.
The dynamics sample stays the twin's own (one per twin, not per episode). The task's own
per-episode randomization (e.g. panda-peg-insert's hole-pose error and grasp offset) follows the
named range (``dr``; ``eval`` for a stress twin).
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
                 initial_pose: Sequence[float] | None = None, overrides: dict | None = None,
                 command_delay_s: float | None = None, obs_delay_s: float | None = None,
                 encoder_bias: Sequence[float] | None = None, scene: str | None = "default"):
        import mujoco

        from robot_rl.sim import make_env, make_task
        from robot_rl.sim.twins import DR_MODES, resolve_dr, with_overrides

        if not (100.0 <= physics_rate_hz <= 10000.0):
            raise TwinError(f"physics_rate_hz={physics_rate_hz} is outside 100..10000 Hz")
        from robot_rl.scenes import SceneError, add_scene_to_spec, check_scene, resolve_scene

        task_obj = make_task(task)
        try:
            self.scene = resolve_scene(task_obj.scene_name() or "none" if scene == "default" else scene,
                                       task_obj.robot)
            if self.scene is not None:
                check_scene(self.scene, task_obj.robot)
        except SceneError as e:
            raise TwinError(str(e)) from None
        self.scene_geoms: list[str] = []
        if self.scene is not None:  # the task's scene plus the table and obstacles, colliding with the arm
            task_scene, the_scene = task_obj.scene, self.scene

            def scene_with_obstacles(spec):
                task_scene(spec)
                self.scene_geoms = add_scene_to_spec(spec, the_scene)

            task_obj.scene = scene_with_obstacles
        try:
            drange = with_overrides(resolve_dr(task_obj, dr), dict(overrides or {}))
            env = make_env(task_obj, 1, dr=drange, seed=int(seed), nthread=1, backend="mujoco")
        except ValueError as e:
            raise TwinError(str(e)) from None
        # the env got a DR object ("custom"): the task's own per-episode randomization follows the
        # named range (stress twins and measured values are points beyond / in the held-out range)
        mode = dr if dr in DR_MODES else "eval"
        if env.dr_mode != mode:
            env.dr_mode = mode
            task_obj.setup(env)
        self._env, self.task_obj = env, task_obj
        self.episode_length_s = float(task_obj.episode_length_s)
        env.reset()  # samples the DR parameters and writes them into env.sim.models[0]
        self.dr_params = {k: round(float(v[0]), 6) for k, v in env.dr_params.items()}  # (float32 samples)
        self.task = task
        self.dr = dr
        self.drange = drange
        self.seed = int(seed)
        episode_s = task_obj.episode_length_s
        control_dt = env.control_dt
        self.command_delay_s = self._delay("command_delay_s", command_delay_s,
                                           self.dr_params["action_delay_steps"] * control_dt, episode_s)
        self.obs_delay_s = self._delay("obs_delay_s", obs_delay_s, self.dr_params["obs_delay_steps"] * control_dt,
                                       episode_s)
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
        # encoder bias of the actuated joints (the env's sample, or measured values)
        n_state = len(self.joint_names)
        bias = env.encoder_bias[0].double().numpy() if encoder_bias is None else np.asarray(encoder_bias, float)
        if bias.shape != (n_arm,) or not np.isfinite(bias).all():
            raise TwinError(f"encoder_bias needs {n_arm} finite values (rad), got {list(np.atleast_1d(bias))}")
        if np.abs(bias).max(initial=0.0) > 0.2:
            raise TwinError(f"encoder_bias {list(bias)} is above 0.2 rad: that is a wrong zero, not a bias")
        self.encoder_bias = np.zeros(n_state)
        self.encoder_bias[:n_arm] = bias
        # per-run bias of the readings (the env's `obs_bias_scale` x the term noise)
        bscale = env.dr.obs_bias_scale
        self._read_bias_q = self._rng.normal(0.0, 1.0, n_state) * terms.get("joint_pos", {}).get("noise_std", 0.0) * bscale
        self._read_bias_dq = self._rng.normal(0.0, 1.0, n_state) * terms.get("joint_vel", {}).get("noise_std", 0.0) * bscale
        # pushes
        self._push_v = float(env.dr.push_joint_velocity)
        self._push_interval = tuple(env.dr.push_interval_s)
        self._next_push = self._draw_push_interval()
        self.pushes = 0
        self._pending: list[tuple[float, np.ndarray]] = []  # (time it takes effect, command)
        self.steps = 0
        self.commands_received = 0
        self.command[:n_arm] += bias  # until the first command the controller holds what it measures
        self._apply_command()

    @staticmethod
    def _delay(name: str, given: float | None, sampled: float, episode_s: float) -> float:
        v = sampled if given is None else float(given)
        if not (0.0 <= v < episode_s) or not math.isfinite(v):
            raise TwinError(f"{name}={v} s must lie in [0, {episode_s}) (the task's episode length)")
        return v

    def _draw_push_interval(self) -> float:
        lo, hi = self._push_interval
        if self._push_v <= 0 or hi <= 0:
            return math.inf
        return self._rng.uniform(lo, hi)

    @property
    def sim_time(self) -> float:
        return self.steps * self.physics_dt

    def _apply_command(self) -> None:
        n_arm = len(self._act)
        # the controller servos the (biased) encoder reading to the command
        self.data.ctrl[self._act] = self.command[:n_arm] - self.encoder_bias[:n_arm]
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
        self.commands_received += 1
        new = np.clip(new, self.lower, self.upper)
        if self.command_delay_s > 0:  # takes effect after the action delay
            self._pending.append((self.sim_time + self.command_delay_s, new))
        else:
            self.command = new
            self._apply_command()

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            t = self.sim_time
            while self._pending and self._pending[0][0] <= t + 1e-12:
                self.command = self._pending.pop(0)[1]
                self._apply_command()
            if t >= self._next_push:
                self.data.qvel[:] += self._rng.uniform(-self._push_v, self._push_v, self.model.nv)
                self._next_push = t + self._draw_push_interval()
                self.pushes += 1
            self._mj.mj_step(self.model, self.data)
            self.steps += 1

    def advance_to(self, sim_time: float, max_steps: int = 50) -> int:
        """Step until the simulation clock reaches ``sim_time`` (at most ``max_steps`` steps)."""
        due = int(math.floor(sim_time / self.physics_dt + 1e-9)) - self.steps
        n = max(0, min(due, max_steps))
        if n:
            self.step(n)
        return n

    def read(self, noisy: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, effort) in ``joint_names`` order; effort = actuator torque."""
        q = self.data.qpos[self._qadr] + self.encoder_bias  # what the encoders report
        dq = self.data.qvel[self._vadr].copy()
        tau = self.data.qfrc_actuator[self._vadr].copy()
        tau[len(self._act):] = 0.0  # passive joints and fingers: no joint actuator of their own
        if noisy:
            q += self._read_bias_q
            dq += self._read_bias_dq
            if self.position_noise > 0:
                q += self._rng.normal(0.0, self.position_noise, q.shape)
            if self.velocity_noise > 0:
                dq += self._rng.normal(0.0, self.velocity_noise, dq.shape)
        return q, dq, tau

    def scene_contacts(self) -> list[tuple[str, str, float]]:
        """Contacts between the arm and the scene's shapes now: (shape, robot geom or body, depth m)."""
        m, d = self.model, self.data
        ids = {m.geom(n).id: n.split("/", 1)[-1] for n in self.scene_geoms}
        out = []
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = int(c.geom1), int(c.geom2)
            if c.dist < 0 and (g1 in ids) != (g2 in ids):
                s, r = (g1, g2) if g1 in ids else (g2, g1)
                out.append((ids[s], m.geom(r).name or m.body(m.geom_bodyid[r]).name, float(-c.dist)))
        return out

    def start_episode(self, seed: int) -> dict[str, np.ndarray]:
        """Start a task episode: the task's reset for `seed` becomes the simulated state (qpos, qvel),
        the arm's new pose the held command; returns the task's commands {name: [dim]}."""
        from robot_rl.hardware.twin_episodes import sample_episode

        qpos, qvel, cmds = sample_episode(self._env, seed)
        d = self.data
        d.qpos[:], d.qvel[:] = qpos, qvel
        if self.model.na:
            d.act[:] = 0.0
        d.qacc_warmstart[:] = 0.0
        self._mj.mj_forward(self.model, d)
        n_arm = len(self._act)
        self._pending.clear()  # commands sent for the old pose never act on the new one
        self.command[:n_arm] = d.qpos[self._cmd_qadr[:n_arm]] + self.encoder_bias[:n_arm]
        self._apply_command()
        return cmds

    def task_status(self) -> dict:
        """The task's ``success`` (bool) and, when the task defines it, ``distance`` (float) of the
        twin's current true state."""
        from robot_rl.hardware.twin_episodes import task_status

        return task_status(self._env, self.data.qpos, self.data.qvel)

    def site_pos(self, site: str = "ee") -> np.ndarray:
        return self.data.site_xpos[self.model.site(site).id].copy()
