"""Policy node: runs an exported policy artifact (any policy kind) on the robot's joint states.

    python -m robot_rl.nodes.policy --ros-args -p artifact:=models/policies/iiwa-reach

Topics (all relative: they resolve in the node's namespace, so a graph runs under `__ns`)
    subscribes ``joint_states`` (sensor_msgs/JointState; joints matched *by name*: every joint of
        the spec's state joints must be present, extra joints such as a gripper's are ignored),
        and one topic per command the task reads (``spec["observation"]["commands"]``, e.g.
        ``target_pose``: geometry_msgs/PoseStamped, position in the robot base frame);
    publishes ``policy/joint_command`` (sensor_msgs/JointState with ``name`` and ``position``: the
        joint position targets of the commanded joints, so the safety node checks the names) on
        schedule, with each command ``policy/step`` (std_msgs/Float64MultiArray: the observation,
        the action and the targets of that tick, see :func:`policy_step_message`; what the
        recorder stores), and ``policy/diagnostics`` (std_msgs/String, JSON: inference latency, waiting
        reason, action queue) once a second.

The observation is built from the same term functions the simulator used (`robot_rl.observer`),
frames by MuJoCo kinematics on the artifact's robot model. The policy runtime is the one of the
artifact's kind (`robot_rl.runtimes`): `act(obs)` returns an action chunk (one or more actions with
time offsets after the observation). :class:`robot_rl.chunk_executor.ChunkExecutor` schedules them
onto the control ticks (its docstring states the rules): receding horizon or temporal ensembling,
each action executed at the tick nearest its due time (observation time + offset), actions whose
tick has passed when their chunk arrives dropped as stale, an all-stale chunk counted as an
overrun. The node publishes at most one command per tick, none while no action is due (the safety
node keeps the last one, then holds and brakes on its own timeouts). Single-action kinds (MLP,
recurrent) run inline in the tick, as before; a chunked kind (its spec declares
``policy.execution_horizon``) runs on a worker thread so inference slower than a control period
does not hold up the ticks, and the next chunk is requested one measured inference latency before
the queue runs out. The runtime, the executor and the held joint targets are reset (re-anchored
at the measured pose) at start-up and after a joint-state outage.

Start-up: waits up to ``state_wait_s`` for the first joint state and refuses to start (one-line
error, exit code 2) when the robot lacks joints of the artifact (matched by
:class:`robot_rl.joint_map.JointMap`; extra joints are ignored). Rejected inputs (a command
message without the fields or size the policy needs, NaN/Inf, a joint state lacking joints) are
logged at most once a second per reason, with the number not logged. Nothing is published before every
command has arrived or while the joint state is older than ``state_timeout_s``; the safety node
then holds, then brakes.

Parameters (defaults): ``artifact`` (required), ``rate_hz`` (0 = 1 / spec control period),
``command_topic`` (policy/joint_command), ``state_wait_s`` (10.0), ``state_timeout_s`` (0.1),
``<command>`` (an initial value for a command, e.g. ``target_pos:=[0.5, 0.0, 0.5]``),
``<command>_topic`` (remap one command's topic; ``-r`` remapping works too).

Chunk execution: ``chunk_mode`` (receding | ensemble; receding), ``execution_horizon`` (actions
executed per chunk before re-planning in receding mode; 0 = the spec's ``policy.execution_horizon``,
or the whole chunk), ``ensemble_decay`` (m of ACT's weights exp(-m i), i = 0 the oldest prediction;
0.01), ``action_exec_latency`` (seconds from a command to its effect: actions due sooner after
their chunk arrives are stale too; 0.0), ``over_budget`` (hold | last: an all-stale chunk executes
nothing, or its last action at once as Diffusion Policy's runner does; hold), ``inference`` (auto |
inline | thread; auto = a worker thread for chunked kinds, inline otherwise). Diagnostics carry
``chunk``: requested, received, executed, starved (ticks with nothing due), stale, late, overruns,
discarded, lead_ms.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from robot_rl.chunk_executor import MODES, OVER_BUDGET, ChunkConfig, ChunkExecutor
from robot_rl.joint_map import JointMap, JointMapError
from robot_rl.nodes._commands import command_reader
from robot_rl.nodes._common import LatencyStats, NodeStartError, RateLimitedLog, dumps, node_main, param, run_node


def main(argv=None) -> int:
    return node_main("policy", _run, argv)


def _wait_first_state(node, msgs, wait_s: float):
    got = []
    sub = node.create_subscription(msgs.JointState, "joint_states", got.append, qos="sensor_data")
    deadline = time.monotonic() + wait_s
    while not got and time.monotonic() < deadline:
        node.spin_once(0.05)
    sub.destroy()
    if not got:
        raise NodeStartError(f"no joint state on {sub.topic} within {wait_s:.1f} s; is the robot (or twin) running? "
                             "(raise state_wait_s to wait longer)")
    return got[0]


def _run(node) -> int:
    from robot_rl.artifact import ArtifactError, PolicyArtifact
    from robot_rl.observer import RobotObserver, SpecError
    from robot_rl.transport import msgs

    art_path = param(node, "artifact", "", str)
    if not art_path:
        raise NodeStartError("parameter 'artifact' is required (-p artifact:=path/to/exported/policy)")
    try:
        art = PolicyArtifact.load(art_path)
        observer = RobotObserver(art.spec, art.path)
    except (ArtifactError, SpecError, OSError) as e:
        raise NodeStartError(str(e)) from None
    spec = art.spec
    if art.action_modes != {"position"}:
        raise NodeStartError(f"the artifact's actions are {sorted(art.action_modes)} commands; the policy node "
                             "sends joint position targets through the safety layer only (position action terms)")
    rate_hz = param(node, "rate_hz", 0.0, float, check=lambda v: 0 <= v <= 1000,
                    expect="0 (the artifact's control rate) or up to 1000 Hz")
    rate_hz = rate_hz or 1.0 / art.control_period_s
    cmd_topic = param(node, "command_topic", "policy/joint_command", str)
    wait_s = param(node, "state_wait_s", 10.0, float)
    state_timeout = param(node, "state_timeout_s", 0.1, float)
    if abs(rate_hz * art.control_period_s - 1.0) > 0.01:
        node.logger.warning("rate_hz=%.1f differs from the artifact's control rate %.1f Hz: the policy was trained "
                            "for its own control period", rate_hz, 1.0 / art.control_period_s)
    executor, worker = _chunk_execution(node, art, rate_hz)
    observes = art.runtime.wants_observations  # a history kind gets every tick's observation
    state_joints = list(observer.state_joints)
    out_joints = list(observer.command_joints)

    first = _wait_first_state(node, msgs, wait_s)
    robot = list(first.name)
    jmap = JointMap(state_joints, what="the robot's joint_states")  # extra joints (a gripper's) are ignored
    try:
        jmap.check(robot)
    except JointMapError as e:
        detail = f"missing: {e.missing}" if e.reason == "missing_joint" else str(e)
        raise NodeStartError(f"robot joint names {robot} disagree with the artifact's {state_joints} ({detail}); "
                             "deploy an artifact trained for this robot") from None
    extra = jmap.extras(robot)
    if extra:
        node.logger.info("ignoring joints the policy does not use: %s", extra)
    reject = RateLimitedLog(node.logger)  # every rejected input is logged, at most once a second per reason

    latest = {"msg": first, "t": time.monotonic()}
    commands: dict[str, np.ndarray | None] = {}
    subs: dict = {}
    for name, c in spec["observation"].get("commands", {}).items():
        init = param(node, name, None, list)
        commands[name] = None if init is None else np.asarray([float(v) for v in init], dtype=np.float64)
        cls, read = command_reader(msgs, c)
        topic = param(node, f"{name}_topic", c["topic"], str)

        def on_command(msg, name=name, read=read):
            try:
                v = read(msg)
            except (ValueError, TypeError, AttributeError) as e:
                reject(f"bad_{name}", "ignored a %s command on %s: %s", name, subs[name].topic, e)
                return
            if np.isfinite(v).all():
                commands[name] = v
            else:
                reject(f"non_finite_{name}", "ignored a non-finite %s command on %s: %s", name, subs[name].topic,
                       v.tolist())

        subs[name] = node.create_subscription(cls, topic, on_command)

    def on_state(msg):
        latest["msg"], latest["t"] = msg, time.monotonic()

    node.create_subscription(msgs.JointState, "joint_states", on_state, qos="sensor_data")
    pub = node.create_publisher(msgs.JointState, cmd_topic)
    diag = node.create_publisher(msgs.String, "policy/diagnostics")
    step_pub = node.create_publisher(msgs.Float64MultiArray, STEP_TOPIC)
    infer = LatencyStats()
    loop = {"anchored": False, "steps": 0, "waiting": None, "next_diag": time.monotonic() + 1.0}

    def wait_reason(reason, log=True):
        if loop["waiting"] != reason:
            loop["waiting"] = reason
            if reason and log:
                node.logger.warning("not commanding: %s", reason)

    def step_chunks(now: float, obs_fn):
        """Pick up a finished chunk, request the next when due; the action of this tick or None."""
        done = worker.poll() if worker is not None else None
        if done is not None:
            ticket, chunk, dt = done
            infer.add(dt)
            received(ticket, chunk, now)
        if executor.wants_chunk(now):
            ticket = executor.request(now)
            if worker is not None:
                worker.submit(ticket, obs_fn())
            else:
                a = time.perf_counter()
                chunk = art.act(obs_fn())
                infer.add(time.perf_counter() - a)
                received(ticket, chunk, now)
        elif observes:  # a history-conditioned kind sees every control step's observation
            (worker.observe if worker is not None else art.observe)(obs_fn())
        return executor.tick(now)

    def received(ticket, chunk, now):
        if executor.receive(ticket, chunk, now) == "overrun":
            reject("over_budget", "over budget: a chunk arrived %.0f ms after its observation, after all its "
                   "actions were due (%d overruns; over_budget=%s)", executor.last_latency_s * 1e3,
                   executor.counts["overruns"], executor.cfg.over_budget)

    def on_tick():
        now = time.monotonic()
        if now >= loop["next_diag"]:
            loop["next_diag"] = now + 1.0
            diag.publish(msgs.String(data=dumps({"steps": loop["steps"], "inference": infer.summary(),
                                                 "waiting": loop["waiting"], "queued": executor.queued(),
                                                 "kind": art.kind, "chunk": executor.diagnostics()})))
        if now - latest["t"] > state_timeout:
            loop["anchored"] = False  # re-anchor held targets and the policy's state when state returns
            return wait_reason(f"joint state older than {state_timeout} s")
        absent = [k for k, v in commands.items() if v is None]
        if absent:
            return wait_reason(f"no {', '.join(absent)} yet")
        try:
            q, dq, eff = msgs.joint_state_to_numpy(latest["msg"], state_joints)
        except (KeyError, ValueError) as e:
            reject(getattr(e, "reason", "bad_joint_state"), "not commanding: rejected the joint state: %s", e)
            return wait_reason(f"bad joint state: {e}", log=False)
        if not (np.isfinite(q).all() and np.isfinite(dq).all()):
            reject("non_finite_joint_state", "not commanding: NaN/Inf in the joint state of %s",
                   [j for j, a, b in zip(state_joints, q, dq) if not (np.isfinite(a) and np.isfinite(b))])
            return wait_reason("non-finite joint state", log=False)
        wait_reason(None)
        n_act = len(observer.ctx.actuated)
        state = observer.state(q, dq, eff[:n_act] if np.isfinite(eff[:n_act]).all() else None, commands)
        if not loop["anchored"]:
            observer.reset(state)
            if worker is not None:
                worker.reset()  # after any inference in flight (whose chunk the executor discards)
            else:
                art.reset()
            executor.reset()
            loop["anchored"] = True
        obs = observer.observe(state)  # before apply(): the observation this tick's action answers
        action = step_chunks(now, lambda: obs)
        if action is None:
            return  # nothing due at this tick (waiting for a chunk): the safety node keeps the last command
        targets = observer.apply(action, state)
        loop["steps"] += 1
        position = np.array([targets[j] for j in out_joints])
        pub.publish(msgs.JointState(header=msgs.Header(stamp=node.now()), name=out_joints, position=position))
        step_pub.publish(policy_step_message(msgs, obs, observer.last_action[0], position))

    node.create_timer(1.0 / rate_hz, on_tick)
    node.logger.info("policy %s (%s, kind %s) at %.1f Hz -> %s", art.path, spec.get("task"), art.kind, rate_hz,
                     pub.topic)
    code = run_node(node, on_stop=reject.flush)
    if worker is not None:
        worker.stop()
    node.logger.info("inference latency %s; chunks %s", dumps(infer.summary()), dumps(executor.diagnostics()))
    return code


STEP_TOPIC = "policy/step"
STEP_BLOCKS = ("observation", "action", "joint_target")


def policy_step_message(msgs, obs, action, joint_target):
    """The `policy/step` message of one executed tick: std_msgs/Float64MultiArray whose data is three
    consecutive blocks, each named by one `layout.dim` entry (label, size = stride = block length):
    the observation the policy saw, its action (clipped to [-1, 1], as applied) and the joint
    position targets it produced (the command joints, as on `policy/joint_command`)."""
    blocks = [np.asarray(b, dtype=np.float64).reshape(-1) for b in (obs, action, joint_target)]
    dims = [msgs.MultiArrayDimension(label, len(b), len(b)) for label, b in zip(STEP_BLOCKS, blocks)]
    return msgs.Float64MultiArray(layout=msgs.MultiArrayLayout(dim=dims), data=np.concatenate(blocks))


def read_policy_step(msg, sizes: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observation, action, joint_target) of a `policy/step` message; ValueError when its blocks
    are not `STEP_BLOCKS` of `sizes` (a policy of another artifact)."""
    got = [(d.label, int(d.size)) for d in msg.layout.dim]
    want = list(zip(STEP_BLOCKS, sizes))
    data = np.asarray(msg.data, dtype=np.float64)
    if got != want or data.shape != (sum(sizes),):
        raise ValueError(f"blocks {got} with {data.size} values, expected {want}")
    a, b = sizes[0], sizes[0] + sizes[1]
    return data[:a], data[a:b], data[b:]


def _chunk_execution(node, art, rate_hz: float):
    """The chunk executor and (for threaded inference) the worker, from the node's parameters."""
    from robot_rl.nodes._inference import InferenceWorker

    mode = param(node, "chunk_mode", "receding", str, check=lambda v: v in MODES, expect=" or ".join(MODES))
    spec_h = art.spec["policy"].get("execution_horizon")
    horizon = param(node, "execution_horizon", 0, int, check=lambda v: v >= 0,
                    expect="an integer >= 0 (0: the artifact's policy.execution_horizon, or the whole chunk)")
    decay = param(node, "ensemble_decay", 0.01, float, check=lambda v: v >= 0, expect="a number >= 0 (ACT: 0.01)")
    latency = param(node, "action_exec_latency", 0.0, float, check=lambda v: v >= 0, expect="seconds >= 0")
    over = param(node, "over_budget", "hold", str, check=lambda v: v in OVER_BUDGET, expect=" or ".join(OVER_BUDGET))
    how = param(node, "inference", "auto", str, check=lambda v: v in ("auto", "inline", "thread"),
                expect="auto, inline or thread")
    try:
        cfg = ChunkConfig(period_s=1.0 / rate_hz, mode=mode, execution_horizon=horizon or int(spec_h or 0),
                          ensemble_decay=decay, action_exec_latency=latency, over_budget=over)
    except (TypeError, ValueError) as e:
        raise NodeStartError(f"{e} (the artifact's policy.execution_horizon is {spec_h!r})") from None
    threaded = how == "thread" or (how == "auto" and spec_h is not None)
    worker = InferenceWorker(art.act, art.reset, art.observe) if threaded else None
    node.logger.info("chunk execution: %s, execution horizon %s, inference %s", mode,
                     cfg.execution_horizon or "whole chunk", "on a worker thread" if threaded else "inline")
    return ChunkExecutor(cfg), worker


if __name__ == "__main__":
    sys.exit(main())
