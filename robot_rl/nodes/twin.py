"""Robot twin node: a real-time MuJoCo robot with held-out dynamics behind ros2_control topics.

    python -m robot_rl.nodes.twin --ros-args -p seed:=3 -p physics_rate_hz:=1000.0

Publishes
    ``joint_states`` (sensor_msgs/JointState: name, position, velocity, effort) at
    ``publish_rate_hz``, with sensor noise, each sample delayed by ``latency_ms``;
    ``twin/ee_pose`` (geometry_msgs/PoseStamped, ground-truth end-effector site position, noise
    free) at ``ee_rate_hz``, for tests and monitoring;
    ``twin/episode_status`` (std_msgs/String, JSON, at ``status_rate_hz``): ``episode`` (id),
    ``seed``, ``phase`` (idle: none requested yet | starting | running), ``time_s`` (episode time),
    ``episode_length_s`` (the task's), ``success`` and ``terminated`` (the task's own functions on
    the twin's true state now; null before the first episode), ``first_success_s``, ``distance``
    (when the task defines one), ``commands`` (the episode's command values);
    after an episode request, each task command (``Command.topic`` with its ``msg`` and ``field``,
    e.g. ``hole_pose``: geometry_msgs/PoseStamped, the believed hole position with the episode's
    error): at the episode's start and then at ``status_rate_hz``, as a perception system would.
Subscribes
    ``<controller>/commands`` (std_msgs/Float64MultiArray, one value per joint in
    ``joint_names`` order) and ``<controller>/joint_trajectory`` (trajectory_msgs/JointTrajectory:
    the first point's positions, mapped by ``joint_names``). The last valid command is held; until
    the first one the twin holds its initial pose. Invalid commands are dropped, counted and
    logged (at most one line a second per topic, with the number not logged);
    ``twin/episode`` (std_msgs/String, JSON ``{"seed": k}`` or ``{"seed": k, "id": n}``): start a
    task episode, sim-only (like Gazebo's reset service): the task's own reset for seed ``k`` (the
    arm at the task's start pose, the scene's objects and joints) after a joint-state silence of
    ``episode_gap_s`` that lets the safety and policy nodes re-anchor at the new pose
    (`robot_rl.hardware.twin_episodes` explains the sequence; it needs the safety node's
    ``fault_action`` none, its default).

Parameters (defaults): ``artifact`` (a policy artifact: the twin simulates the robot of its task)
or ``task`` (a task name; one of the two is required), ``seed`` (0), ``dr`` (eval: the held-out range;
train / nominal), ``stress`` (a published stress twin, `robot_rl.sim.twins`: heavy-tool, weak-gains,
stiff-gains, large-latency, biased-encoders, gravity-model, all; replaces ``dr``),
``physics_rate_hz`` (1000), ``publish_rate_hz`` (1000), ``controller`` (forward_position_controller),
``initial_pose`` (task default pose), ``ee_site`` (the robot's ``ee`` frame), ``ee_rate_hz`` (50),
``frame_id`` (world), ``scene`` (default: the task's safety scene from `robot_rl.scenes`, whose table and
obstacles the arm collides with; a scene name; or none), ``episode_gap_s`` (0.3), ``status_rate_hz`` (10).

The robot's own values, measured, replace the sampled ones (empty = sampled): ``payload_kg``,
``payload_pos`` ([x, y, z] m in the last link's frame), ``mass_scale``, ``inertia_scale``,
``kp_scale``, ``kd_scale``, ``motor_strength``, ``gravcomp_error`` (relative error of the gravity
model), ``latency_ms`` (age of each joint_states sample; sampled: the observation delay),
``command_latency_ms`` (time from a command to its effect; sampled: the action delay),
``encoder_bias`` (rad: one value per joint, or one magnitude with random signs),
``position_noise`` / ``velocity_noise`` (standard deviations; sampled: task noise x the range's
noise scale; 0 disables).

Physics is stepped on an absolute schedule: each timer call advances the simulation until sim
time equals wall time since start, so late wake-ups never slow the simulated robot down.
"""

from __future__ import annotations

import collections
import sys
import time


from robot_rl.nodes._common import (LatencyStats, NodeStartError, RateLimitedLog, dumps, floats, node_main,
                                     optional_param, param, run_node)


def main(argv=None) -> int:
    from robot_rl.transport import msgs

    return node_main("twin", lambda node: _run(node, msgs), argv)


def _run(node, msgs) -> int:
    from robot_rl.hardware.twin import RobotTwin, TwinError
    from robot_rl.hardware.twin_episodes import EpisodeRequestError, TwinEpisodes
    from robot_rl.nodes._commands import command_writer
    from robot_rl.sim.twins import SCALAR_OVERRIDES, STRESS_TWINS

    task = param(node, "task", "", str)
    artifact = param(node, "artifact", "", str)
    if artifact:
        from robot_rl.artifact import ArtifactError, load_spec

        try:
            task = load_spec(artifact)["task"]
        except (ArtifactError, OSError) as e:
            raise NodeStartError(str(e)) from None
    if not task:
        raise NodeStartError("set -p artifact:=<policy artifact> (the twin simulates its task's robot) "
                             "or -p task:=<task name>")
    seed = param(node, "seed", 0, int)
    # "nominal" = "off": ROS 2 reads an unquoted `off` parameter as the boolean false
    dr = param(node, "dr", "eval", str, check=lambda v: v in ("eval", "train", "off", "nominal"),
               expect="eval, train or nominal")
    dr = "off" if dr == "nominal" else dr
    stress = param(node, "stress", "", str, check=lambda v: v == "" or v in STRESS_TWINS,
                   expect=f"one of the published stress twins: {', '.join(STRESS_TWINS)}")
    physics_hz = param(node, "physics_rate_hz", 1000.0, float, check=lambda v: 100 <= v <= 10000, expect="100..10000")
    pub_hz = param(node, "publish_rate_hz", 1000.0, float, check=lambda v: 1 <= v <= 10000, expect="1..10000")
    controller = param(node, "controller", "forward_position_controller", str)
    initial = param(node, "initial_pose", None, list)
    ee_site = param(node, "ee_site", "", str)
    ee_hz = param(node, "ee_rate_hz", 50.0, float, check=lambda v: v > 0, expect="> 0")
    frame_id = param(node, "frame_id", "world", str)
    scene = param(node, "scene", "default", str)
    gap_s = param(node, "episode_gap_s", 0.3, float, check=lambda v: 0.2 <= v <= 5.0, expect="0.2..5 s")
    status_hz = param(node, "status_rate_hz", 10.0, float, check=lambda v: 0.1 <= v <= 100, expect="0.1..100 Hz")
    # measured values of the robot (empty: the sampled value)
    overrides = {k: optional_param(node, k, float) for k in SCALAR_OVERRIDES}
    overrides["payload_pos"] = optional_param(node, "payload_pos", floats)
    bias = optional_param(node, "encoder_bias", floats)
    if isinstance(bias, float):  # one magnitude, random signs
        overrides["encoder_bias"], bias = bias, None
    latency_ms = optional_param(node, "latency_ms", float)
    command_ms = optional_param(node, "command_latency_ms", float)
    pos_noise = optional_param(node, "position_noise", float)
    vel_noise = optional_param(node, "velocity_noise", float)
    try:
        twin = RobotTwin(task, seed=seed, dr=stress or dr, physics_rate_hz=physics_hz, position_noise=pos_noise,
                         velocity_noise=vel_noise,
                         initial_pose=None if initial is None else [float(v) for v in initial],
                         overrides=overrides, encoder_bias=bias,
                         obs_delay_s=None if latency_ms is None else latency_ms / 1e3,
                         command_delay_s=None if command_ms is None else command_ms / 1e3, scene=scene)
        ee_site = ee_site or twin.robot.frames.get("ee", "")
        if ee_site:
            twin.site_pos(ee_site)
    except (TwinError, KeyError, ValueError) as e:
        raise NodeStartError(f"cannot build the twin: {e}") from None
    latency = twin.obs_delay_s
    names = twin.joint_names
    node.logger.info("twin %s seed=%d dr=%s physics %.0f Hz, joint_states %.0f Hz, latency %.1f ms, command "
                     "latency %.1f ms, encoder bias %s rad; dynamics %s", task, seed, stress or dr, physics_hz,
                     pub_hz, latency * 1e3, twin.command_delay_s * 1e3, dumps([round(float(b), 4) for b in
                     twin.encoder_bias]), dumps(twin.dr_params))

    episodes = TwinEpisodes(twin, gap_s)
    writers = {k: command_writer(msgs, c.to_dict()) for k, c in twin.task_obj.commands().items()}
    cmd_pubs = {k: node.create_publisher(cls, c.topic) for (k, (cls, _)), c in
                zip(writers.items(), twin.task_obj.commands().values())}
    status_pub = node.create_publisher(msgs.String, "twin/episode_status")
    js_pub = node.create_publisher(msgs.JointState, "joint_states")
    ee_pub = node.create_publisher(msgs.PoseStamped, "twin/ee_pose")
    reject = RateLimitedLog(node.logger)  # every rejected command is logged, at most once a second per topic

    def on_forward(msg):
        try:
            twin.set_command(msg.data)
        except TwinError as e:
            reject("bad_command", "dropped a command on %s (the last valid one is held): %s", fwd_sub.topic, e)

    def on_trajectory(msg):
        try:
            if not len(msg.points):
                raise TwinError("trajectory has no points")
            twin.set_command(msg.points[0].positions, names=list(msg.joint_names))
        except TwinError as e:
            reject("bad_trajectory", "dropped a trajectory on %s (the last valid command is held): %s",
                   traj_sub.topic, e)

    def on_episode(msg):
        try:
            eid = episodes.request(msg.data)
            node.logger.info("episode %d requested: %s", eid, msg.data)
        except EpisodeRequestError as e:
            reject("bad_episode", "ignored an episode request on %s: %s", ep_sub.topic, e)

    def publish_commands():
        for k, value in episodes.commands.items():
            cmd_pubs[k].publish(writers[k][1](value, stamp=node.now(), frame_id=frame_id))

    fwd_sub = node.create_subscription(msgs.Float64MultiArray, f"{controller}/commands", on_forward)
    ep_sub = node.create_subscription(msgs.String, "twin/episode", on_episode)
    traj_sub = node.create_subscription(msgs.JointTrajectory, f"{controller}/joint_trajectory", on_trajectory)

    queue: collections.deque = collections.deque()
    pub_period = 1.0 / pub_hz
    ee_period = 1.0 / ee_hz
    t0 = time.perf_counter()
    sched = {"next_pub": 0.0, "next_ee": 0.0, "next_log": 10.0, "next_status": 0.0}
    status_period = 1.0 / status_hz
    step_cost = LatencyStats()

    def on_timer():
        now = time.perf_counter() - t0
        a = time.perf_counter()
        twin.advance_to(now)
        step_cost.add(time.perf_counter() - a)
        started = episodes.update(now)
        if started is not None:  # the teleport: the new episode's commands go out before joint_states resume
            node.logger.info("episode %d (seed %d) starts: %s", episodes.episode, episodes.seed,
                             dumps({k: [round(float(x), 4) for x in v] for k, v in started.items()}))
            publish_commands()
        if not episodes.publishing:
            queue.clear()  # the silence: no joint_states (samples of the old pose are dropped)
        elif now >= sched["next_pub"]:
            sched["next_pub"] += pub_period * max(1, int((now - sched["next_pub"]) // pub_period) + 1)
            q, dq, tau = twin.read(noisy=True)
            queue.append((now + latency, q, dq, tau))
        if now >= sched["next_status"]:
            sched["next_status"] = now + status_period
            status_pub.publish(msgs.String(data=dumps(episodes.status())))
            if episodes.phase == "running":
                publish_commands()
        while queue and queue[0][0] <= now:
            _, q, dq, tau = queue.popleft()
            js_pub.publish(msgs.joint_state_from_numpy(names, q, dq, tau, stamp=node.now(), frame_id=""))
        if ee_site and now >= sched["next_ee"]:
            sched["next_ee"] = now + ee_period
            p = twin.site_pos(ee_site)
            ee_pub.publish(msgs.PoseStamped(
                header=msgs.Header(stamp=node.now(), frame_id=frame_id),
                pose=msgs.Pose(position=msgs.Point(x=float(p[0]), y=float(p[1]), z=float(p[2])))))
        if now >= sched["next_log"]:
            sched["next_log"] = now + 10.0
            node.logger.info("sim %.2f s / wall %.2f s, commands %d (rejected %d), physics call %s",
                             twin.sim_time, now, twin.commands_received, sum(reject.counts.values()),
                             dumps(step_cost.summary()))

    node.create_timer(min(twin.physics_dt, pub_period), on_timer)
    return run_node(node, on_stop=reject.flush)


if __name__ == "__main__":
    sys.exit(main())
