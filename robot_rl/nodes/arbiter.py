"""Arbiter node: the person over the policy, ahead of the safety node (teleoperation, issue 12).

    python -m robot_rl.nodes.arbiter --ros-args -p artifact:=models/policies/iiwa-reach

Topics (relative, like the rest of the deploy graph; /work/teleop_topics.md is the contract)
Subscribes
    ``joint_states`` (sensor_msgs/JointState: anchors a takeover before anything was executed),
    ``policy/joint_command`` (sensor_msgs/JointState: the policy's command, checked by name),
    ``teleop/command`` (std_msgs/String: JSON of ``TeleopSample.to_dict()``, from the teleop node).
Publishes
    ``arbiter/joint_command`` (sensor_msgs/JointState, the artifact's commanded joints): the
    executed command, one per tick at ``rate_hz``, to the safety node (whose ``command_topic`` is
    then ``arbiter/joint_command``); nothing before the first command is known;
    ``teleop/intervention`` (std_msgs/Bool): true while the person commands, every tick;
    ``teleop/status`` (std_msgs/String JSON, 10 Hz): source (policy | person | hold), intervening,
    device, device_alive, device_age_s, interventions, episode, last_event, stamp (monotonic s),
    and also reason, blending, policy_alive, policy_age_s, intervention_rate, successes, failures;
    ``teleop/events`` (std_msgs/String JSON ``{"event", "stamp", "episode"}``): each device event
    (success | failure | reset) once.

The logic is :class:`robot_rl.teleop.arbiter.Arbiter` (see it for the rules: clutch, bumpless
handover both ways, hold on a silent device or policy). The person's commands go through the
safety node like the policy's: the arbiter never talks to the driver. Bad teleop samples and
policy commands are dropped and logged (one line per reason at most once a second, with the
number not logged). Source changes are logged as one line each.

Parameters (defaults): ``artifact`` (required: the commanded joints, their limits, the robot
model and ``ee`` frame for end-effector commands), ``rate_hz`` (100), ``device_timeout_s`` (0.2),
``policy_timeout_s`` (0.1), ``blend_s`` (0.5), ``rate_limit`` (rad/s, scalar or list: the most a
person step or a blend moves the command; default half the artifact's command rates),
``position_margin`` (0.02 rad, the safety node's), ``ik_damping`` (0.05), ``linear_m_s`` /
``angular_rad_s`` / ``joint_rad_s`` (the device scale samples are checked against: at least the
teleop device's; defaults ``DeviceScale()``), ``status_line`` (a terminal status line on stdout;
default true when stdout is a terminal, `robot_rl.teleop.status_line`).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from robot_rl.nodes._common import NodeStartError, RateLimitedLog, dumps, floats, node_main, param, run_node

STATUS_HZ = 10.0


def main(argv=None) -> int:
    return node_main("arbiter", _run, argv)


def _build(node):
    from pathlib import Path

    from robot_rl.artifact import ArtifactError, PolicyArtifact
    from robot_rl.teleop.arbiter import Arbiter, ArbiterConfig
    from robot_rl.teleop.device import DeviceScale

    path = param(node, "artifact", "", str)
    if not path:
        raise NodeStartError("parameter 'artifact' is required (-p artifact:=path/to/exported/policy)")
    try:
        art = PolicyArtifact.load(path)
    except (ArtifactError, OSError) as e:
        raise NodeStartError(str(e)) from None
    spec = art.spec
    if art.action_modes != {"position"}:
        raise NodeStartError(f"the artifact's actions are {sorted(art.action_modes)} commands; the arbiter hands "
                             "joint position commands to the safety node only")
    pos = dict(check=lambda v: v > 0, expect="> 0")
    default = DeviceScale()
    try:
        cfg = ArbiterConfig.from_spec(
            spec, (Path(art.path) / spec["robot"]["model"]).read_text(),
            device_timeout_s=param(node, "device_timeout_s", 0.2, float, **pos),
            policy_timeout_s=param(node, "policy_timeout_s", 0.1, float, **pos),
            blend_s=param(node, "blend_s", 0.5, float, check=lambda v: v >= 0, expect=">= 0 s"),
            rate_limit=param(node, "rate_limit", None, floats),
            position_margin=param(node, "position_margin", 0.02, float, check=lambda v: v >= 0, expect=">= 0 rad"),
            ik_damping=param(node, "ik_damping", 0.05, float, **pos),
            scale=DeviceScale(linear_m_s=param(node, "linear_m_s", default.linear_m_s, float, **pos),
                              angular_rad_s=param(node, "angular_rad_s", default.angular_rad_s, float, **pos),
                              joint_rad_s=param(node, "joint_rad_s", default.joint_rad_s, float, **pos)))
        return cfg, Arbiter(cfg)
    except (ArtifactError, ValueError, KeyError) as e:
        raise NodeStartError(f"invalid arbiter configuration: {e}") from None


def _run(node) -> int:
    from robot_rl.teleop.status_line import StatusLine
    from robot_rl.transport import msgs

    rate_hz = param(node, "rate_hz", 100.0, float, check=lambda v: 10 <= v <= 1000, expect="10..1000 Hz")
    show = param(node, "status_line", sys.stdout.isatty(), bool)
    cfg, arb = _build(node)
    names = list(cfg.joint_names)
    reject = RateLimitedLog(node.logger)
    line = StatusLine(sys.stdout) if show else None

    def on_state(msg):
        err = arb.on_state(time.monotonic(), list(msg.name), msg.position)
        if err:
            reject("joint_state", "%s", err)

    def on_policy(msg):
        err = arb.on_policy(time.monotonic(), list(msg.name), msg.position)
        if err:
            reject("policy_command", "%s on %s (not executed)", err, pol_sub.topic)

    def on_teleop(msg):
        bad = arb.on_sample(time.monotonic(), msg.data)
        if bad is not None:
            reject(bad[0], "%s on %s", bad[1], tele_sub.topic)

    node.create_subscription(msgs.JointState, "joint_states", on_state, qos="sensor_data")
    pol_sub = node.create_subscription(msgs.JointState, "policy/joint_command", on_policy)
    tele_sub = node.create_subscription(msgs.String, "teleop/command", on_teleop)
    cmd_pub = node.create_publisher(msgs.JointState, "arbiter/joint_command")
    iv_pub = node.create_publisher(msgs.Bool, "teleop/intervention")
    status_pub = node.create_publisher(msgs.String, "teleop/status")
    ev_pub = node.create_publisher(msgs.String, "teleop/events")
    status_every = max(1, int(round(rate_hz / STATUS_HZ)))
    loop = {"k": 0, "source": None}

    def on_tick():
        t = time.monotonic()
        cmd, st = arb.tick(t)
        if cmd is not None:
            cmd_pub.publish(msgs.JointState(header=msgs.Header(stamp=node.now()), name=names, position=cmd))
        iv_pub.publish(msgs.Bool(data=bool(st["intervening"])))
        for ev in arb.pop_events():
            ev_pub.publish(msgs.String(data=dumps(ev)))
            node.logger.info("operator event %s (episode %d)", ev["event"], ev["episode"])
        if (st["source"], st["reason"]) != loop["source"]:
            if loop["source"] is not None or st["source"] != "hold":
                node.logger.info("source %s (%s)%s", st["source"], st["reason"],
                                 f", intervention {st['interventions']}" if st["source"] == "person" else "")
            loop["source"] = (st["source"], st["reason"])
        loop["k"] += 1
        if loop["k"] % status_every == 0:
            c = st["counters"]
            out = {k: v for k, v in st.items() if k != "counters"}
            out.update(successes=c["successes"], failures=c["failures"])
            status_pub.publish(msgs.String(data=dumps(out)))
            if line is not None:
                line.update(out)

    node.create_timer(1.0 / rate_hz, on_tick)
    node.logger.info("arbiter at %.0f Hz: policy/joint_command + teleop/command -> %s; joints %s (device timeout "
                     "%.2f s, blend %.2f s)", rate_hz, cmd_pub.topic, names, cfg.device_timeout_s, cfg.blend_s)

    def stop():
        reject.flush()
        if line is not None:
            line.close()
        c = arb.counters
        node.logger.info("interventions %d, device timeouts %d, samples accepted %d, dropped %s, person %.1f%% of "
                         "ticks", c["interventions"], c["device_timeouts"], c["samples_accepted"],
                         dumps(c["samples_dropped"]), 100.0 * c["person_ticks"] / max(1, c["ticks"]))

    return run_node(node, on_stop=stop)


if __name__ == "__main__":
    sys.exit(main())
