"""Safety node: the 1 kHz layer between the policy and the robot driver.

    python -m robot_rl.nodes.safety --ros-args -p artifact:=models/policies/iiwa-reach

Topics (all relative: they resolve in the node's namespace, so graphs run side by side under `__ns`)
Subscribes
    ``joint_states`` (sensor_msgs/JointState; matched by joint name; joints the artifact does not
    command, e.g. a gripper's on an arm-only policy, are ignored),
    ``policy/joint_command`` (sensor_msgs/JointState with ``name`` + ``position``: names are
    checked, a command without the right names is rejected),
    ``safety/estop`` (std_msgs/Bool; ``true`` engages and *latches* the e-stop; volatile
    publishers are heard with no QoS warning, and a latched (transient-local) publisher's last
    value reaches a safety node started after it: ``LatchableSubscription``),
    ``safety/reset`` (std_msgs/Bool; ``true`` clears a latched e-stop once ``safety/estop`` has
    been released with ``false``; nothing else clears it).
Publishes
    the filtered command through :class:`robot_rl.hardware.ros2_control.Ros2ControlDriver`:
    ``<controller>/commands`` (Float64MultiArray in ``controller_joints`` order; default) or
    ``<controller>/joint_trajectory`` (``interface:=trajectory``), every tick at ``rate_hz``
    unless the filter says send nothing (fault with ``fault_action:=none``);
    ``safety/diagnostics`` (std_msgs/String, JSON: the filter status, its counters, the loop
    period and compute-time percentiles) at ``diagnostics_rate_hz``.

Every tick runs :meth:`robot_rl.safety.SafetyFilter.tick` (see that module for modes: ok, hold,
brake, estop, backup, fault). A raw policy command is never forwarded: the output only comes from
validated, clipped, rate-limited targets. NaN/Inf, wrong-length and wrong-name commands are
rejected and counted by reason, and logged (at most one line per reason per second, with the
number not logged); so are rejected joint states and refused e-stop resets. A stale policy (no
command for ``cmd_timeout_s``) is held, then braked after ``brake_timeout_s``; stale joint states
(``state_timeout_s``) stop commanding. Every stop moves within the velocity and
``acceleration_limit`` limits (no jump). The reported command latency runs from a command's stamp
to the first driver command computed from it; a command the filter did not use (fault, hold,
brake) gives no sample.

Parameters (defaults): ``artifact`` (required: the commanded joints, their position, velocity
and effort limits, the control period and the robot model for kinematics come from it),
``rate_hz`` (1000), ``diagnostics_rate_hz`` (20), ``command_topic`` (policy/joint_command), ``controller`` (forward_position_controller),
``interface`` (forward | trajectory), ``controller_joints`` (spec joint order),
``time_from_start`` (0.0), ``velocity_limit`` (rad/s, scalar or list; default: the largest
command rate the policy can ask for, `robot_rl.artifact.command_limits`), ``acceleration_limit``
(rad/s^2, scalar or list; default 10 x velocity_limit: a stop from full speed in 0.1 s),
``max_command_rate`` (inf), ``position_margin`` (0.02 rad), ``velocity_trip_factor`` (1.5), ``effort_limit`` (spec
effort limits; 0 disables), ``cmd_timeout_s`` (0.1), ``brake_timeout_s`` (0.5),
``state_timeout_s`` (0.05), ``fault_action`` (none | hold), ``estop_action`` (brake | hold),
``workspace_lower`` / ``workspace_upper`` ([x, y, z] box for site ``ee_site``; off by default),
``ee_site`` (the robot's ``ee`` frame), ``scene`` (default: the artifact robot's scene, `robot_rl.scenes`;
a scene name; none), ``cbf`` (true: the CBF-QP stage keeps the arm out of the scene's table and
obstacles, its links apart and its ee in the scene's box, `robot_rl.safety.cbf`; on whenever a scene
is configured; false disables it), ``cbf_margin`` (0.05 m), ``cbf_self_margin`` (0.01 m), ``cbf_gain``
(20 1/s), ``critic`` ("artifact": the artifact's own checksummed critic when it has one,
`robot_rl.safety.critic_artifact`; "" or "off": none; or another artifact directory whose critic
was trained for this artifact; a critic of another robot or artifact refuses to start),
``critic_rate_hz`` (100: the tick hands the critic a snapshot every ``rate_hz / critic_rate_hz`` ticks; the
critic runs on its own thread, `robot_rl.safety.critic_worker`, and the tick applies its newest risk at the
snapshot's time), ``critic_stale_s`` (3 / critic_rate_hz: a risk older than this, or no first risk this long
after the first snapshot, counts as maximal: backup, reason ``risk_stale``, one log line a second),
``switch_interval_s`` (1e-4 with a critic: ``sys.setswitchinterval``, the longest the tick waits for the
GIL while the critic thread runs Python), ``risk_threshold`` / ``risk_hysteresis`` / ``risk_dwell_s`` (the critic's
calibrated values; without a critic 0.8 / 0.1 / 0), ``backup`` (retreat_path | hold | retreat),
``retreat_rate`` (rad/s; half the velocity limit),
``strict_state_names`` (false:
extra joints in ``joint_states`` are ignored; true: they are a fault).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from robot_rl.nodes._common import (LatchableSubscription, LatencyStats, NodeStartError, RateLimitedLog, dumps, fail,
                                     floats, node_main, param, run_node, set_realtime_priority)


def build_filter(node, spec: dict, artifact_dir):
    """SafetyConfig + SafetyFilter (+ optional critic) from the artifact spec and node params."""
    from pathlib import Path

    from robot_rl.artifact import ArtifactError, command_limits
    from robot_rl.safety import SafetyConfig, SafetyFilter

    modes = {t["mode"] for t in spec["action"]["terms"]}
    if modes != {"position"}:
        raise NodeStartError(f"the artifact's actions are {sorted(modes)} commands; the safety node filters "
                             "joint position commands only")
    try:
        lim = command_limits(spec)
    except ArtifactError as e:
        raise NodeStartError(str(e)) from None
    names = lim["names"]
    effort = param(node, "effort_limit", None, floats)
    if effort is None:
        effort = lim["effort"]
    elif effort == 0 or effort == []:
        effort = None
    robot_xml = (Path(artifact_dir) / spec["robot"]["model"]).read_text()
    kw = dict(
        joint_names=names,
        position_lower=lim["lower"],
        position_upper=lim["upper"],
        velocity_limit=param(node, "velocity_limit", lim["velocity"], floats),
        acceleration_limit=param(node, "acceleration_limit", None, floats),
        max_command_rate=param(node, "max_command_rate", math.inf, floats),
        position_margin=param(node, "position_margin", 0.02, floats),
        velocity_trip_factor=param(node, "velocity_trip_factor", 1.5, float),
        effort_limit=effort,
        cmd_timeout_s=param(node, "cmd_timeout_s", 0.1, float),
        brake_timeout_s=param(node, "brake_timeout_s", 0.5, float),
        state_timeout_s=param(node, "state_timeout_s", 0.05, float),
        fault_action=param(node, "fault_action", "none", str),
        estop_action=param(node, "estop_action", "brake", str),
        backup=param(node, "backup", "retreat_path", str),
        retreat_rate=param(node, "retreat_rate", [0.5 * v for v in lim["velocity"]], floats),
        strict_state_names=param(node, "strict_state_names", False, bool),
        ee_site=param(node, "ee_site", spec["robot"]["frames"].get("ee", "ee"), str),
    )
    grip = spec["robot"].get("gripper") or {}
    if grip:  # a finger may sit a little beyond its stroke: no position margin on the fingers
        margin = kw["position_margin"]
        margin = [margin] * len(names) if not isinstance(margin, list) else margin
        kw["position_margin"] = [0.0 if j in grip["joint_names"] else m for j, m in zip(names, margin)]
    ws_lo = param(node, "workspace_lower", None, floats)
    ws_hi = param(node, "workspace_upper", None, floats)
    if ws_lo is not None or ws_hi is not None:
        kw.update(workspace_lower=ws_lo, workspace_upper=ws_hi, robot_model=robot_xml)
    home = dict(zip(spec["robot"]["joint_names"], spec["robot"]["default_pose"]))
    if grip:
        home.update({j: float(grip["open_position"]) for j in grip["joint_names"]})
    if kw["backup"] == "retreat":
        kw["home"] = [home[j] for j in names]
    critic = _load_critic(node, spec, artifact_dir)
    sec = critic.section if critic is not None else {}
    kw.update(risk_threshold=param(node, "risk_threshold", float(sec.get("threshold", 0.8)), float),
              risk_hysteresis=param(node, "risk_hysteresis", float(sec.get("hysteresis", 0.1)), float),
              risk_dwell_s=param(node, "risk_dwell_s", float(sec.get("dwell_s", 0.0)), float),
              command_velocity_window=max(1, int(round(param(node, "rate_hz", 1000.0, float)
                                                       * float(spec["control"]["period_s"])))))
    if critic is not None:  # fail closed when the critic (on its own thread) falls behind
        critic_hz = param(node, "critic_rate_hz", 100.0, float, check=lambda v: v > 0, expect="> 0 Hz")
        kw["risk_timeout_s"] = param(node, "critic_stale_s", 3.0 / critic_hz, float, check=lambda v: v > 0,
                                     expect="> 0 s (default: three critic periods)")
    kw["cbf"] = _cbf_config(node, spec, [home.get(j, 0.0) for j in names])
    if kw["cbf"] is not None and kw["backup"] == "retreat":
        raise NodeStartError("backup:=retreat (a straight joint-space move home) is not checked by the CBF and could "
                             "cross the scene's obstacles; use backup:=retreat_path (the recent, CBF-checked path) or "
                             "hold, or cbf:=false")
    if kw["cbf"] is not None:
        kw["robot_model"] = robot_xml
    try:
        cfg = SafetyConfig(**kw)
        filt = SafetyFilter(cfg)
    except (ValueError, TypeError) as e:
        raise NodeStartError(f"invalid safety configuration: {e}") from None
    return cfg, filt, critic


def _load_critic(node, spec: dict, artifact_dir):
    """The safety critic named by the ``critic`` param: "artifact" (default: the artifact's own,
    when it has one), "" / "off" (none), or another artifact directory holding a critic trained
    for this artifact. Every file is checksum-verified; a critic of another robot or artifact is a
    start-up error (one line), so the robot holds."""
    from robot_rl.safety.critic_artifact import CriticError, load_critic

    which = param(node, "critic", "artifact", str)
    if which in ("", "off", "none"):
        return None
    if which == "artifact":
        if "safety_critic" not in spec:
            node.logger.info("the artifact has no safety critic (train one with `robot-rl train-critic --artifact "
                             "%s`); running without", artifact_dir)
            return None
        which = str(artifact_dir)
    try:
        critic = load_critic(which, spec)
    except (CriticError, OSError) as e:
        raise NodeStartError(f"safety critic refused: {e}") from None
    except Exception as e:  # noqa: BLE001 - any load problem is a start-up error
        raise NodeStartError(f"cannot load the safety critic {which}: {e}") from None
    missing = [j for j in critic.section["joint_names"] if j not in spec["robot"]["joint_names"]]
    if missing:
        raise NodeStartError(f"safety critic {which} scores joints {missing} that this artifact does not command; "
                             "train the critic for this artifact: robot-rl train-critic --artifact DIR")
    cal = critic.section.get("calibration", {})
    node.logger.info("safety critic %s: threshold %.3f (false alarms %.2f%% of held-out nominal ticks, detection "
                     "%.1f%%)", which, critic.threshold, 100 * cal.get("false_alarm_rate", float("nan")),
                     100 * cal.get("detection_rate", float("nan")))
    return critic


def _cbf_config(node, spec: dict, home: list[float]):
    """The CBF stage's config from the ``scene`` / ``cbf*`` params (None: off)."""
    from robot_rl.safety.cbf import CBFConfig
    from robot_rl.scenes import SceneError, get_scene

    scene = param(node, "scene", "default", str)
    if scene == "default":
        scene = spec["robot"].get("scene", "")
    on = param(node, "cbf", True, bool)
    if not on or scene in ("", "none"):
        return None
    try:
        return CBFConfig(scene=get_scene(scene), margin=param(node, "cbf_margin", 0.05, float),
                         self_margin=param(node, "cbf_self_margin", 0.01, float),
                         gain=param(node, "cbf_gain", 20.0, float), check_pose=home)
    except (SceneError, ValueError) as e:
        raise NodeStartError(f"invalid CBF configuration: {e}") from None


def main(argv=None) -> int:
    return node_main("safety", _run, argv)


def _run(node) -> int:
    from robot_rl.artifact import ArtifactError, PolicyArtifact
    from robot_rl.hardware.ros2_control import DriverError, Ros2ControlDriver
    from robot_rl.transport import msgs

    art_path = param(node, "artifact", "", str)
    if not art_path:
        raise NodeStartError("parameter 'artifact' is required (-p artifact:=path/to/exported/policy)")
    try:
        art = PolicyArtifact.load(art_path)
    except (ArtifactError, OSError) as e:
        raise NodeStartError(str(e)) from None
    spec = art.spec
    rate_hz = param(node, "rate_hz", 1000.0, float, check=lambda v: 10 <= v <= 10000, expect="10..10000 Hz")
    diag_hz = param(node, "diagnostics_rate_hz", 20.0, float, check=lambda v: 0 < v <= rate_hz, expect="0 < value <= rate_hz")
    critic_hz = param(node, "critic_rate_hz", 100.0, float, check=lambda v: 0 < v <= rate_hz, expect="0 < value <= rate_hz")
    cmd_topic = param(node, "command_topic", "policy/joint_command", str)
    controller = param(node, "controller", "forward_position_controller", str)
    interface = param(node, "interface", "forward", str)
    ctrl_joints = param(node, "controller_joints", None, list)
    tfs = param(node, "time_from_start", 0.0, float)
    cfg, filt, critic = build_filter(node, spec, art.path)
    names = list(cfg.joint_names)
    try:
        driver = Ros2ControlDriver(node, names, controller=controller, interface=interface,
                                   controller_joints=ctrl_joints, time_from_start=tfs)
    except DriverError as e:
        raise NodeStartError(str(e)) from None

    state = {"checked": False, "error": None, "q": np.zeros(len(names)), "dq": np.zeros(len(names)),
             "estop": None,
             "have_state": False}
    reject = RateLimitedLog(node.logger)  # every rejected input is logged, at most once a second per reason

    def on_state(msg):
        t = time.monotonic()
        if not state["checked"]:
            try:
                driver.check_joint_names(list(msg.name))
            except DriverError as e:
                state["error"] = str(e)
                node.shutdown()
                return
            state["checked"] = True
        if filt.on_state(t, list(msg.name), msg.position, msg.velocity, msg.effort):
            if critic is not None:
                state["q"], state["dq"], _ = msgs.joint_state_to_numpy(msg, names)
                state["have_state"] = True
        else:
            st = filt.status
            reject(st["last_state_fault"], "rejected a joint state on %s (the filter faults until a valid one "
                   "arrives): %s", state_sub.topic, st["last_reject_detail"])

    def on_command(msg):
        if filt.on_command(time.monotonic(), list(msg.name), msg.position):
            stamp = msg.header.stamp
            loop["pending_stamp"] = float(stamp.sec) + float(stamp.nanosec) * 1e-9
        else:
            st = filt.status
            reject(st["last_reject_reason"], "rejected a command on %s (never forwarded): %s", cmd_sub.topic,
                   st["last_reject_detail"])

    def on_estop(msg):
        engaged = bool(msg.data)
        filt.estop(time.monotonic(), engaged)
        if engaged != state["estop"]:  # a latched publisher repeats itself: log changes only
            state["estop"] = engaged
            node.logger.warning("e-stop %s", f"ENGAGED (latched until {reset_sub.topic})" if engaged else
                                "released" + (f" (still latched: publish true on {reset_sub.topic})"
                                              if filt.status["estop_latched"] else ""))

    def on_reset(msg):
        if not msg.data:
            return
        was_latched = filt.status["estop_latched"]
        if filt.reset_estop():
            if was_latched:
                node.logger.warning("e-stop reset accepted")
            if filt.status["reason"] in ("internal_error", "cbf_error", "cbf_unsafe_start"):
                filt.reset_fault()  # a latched fault is cleared the same way; the filter then holds
                node.logger.warning("latched fault reset accepted; holding until a new command")
        else:
            reject("reset_refused", "refused an e-stop reset on %s: %s is still engaged (publish false first)",
                   reset_sub.topic, estop_sub.topic)

    state_sub = node.create_subscription(msgs.JointState, "joint_states", on_state, qos="sensor_data")
    cmd_sub = node.create_subscription(msgs.JointState, cmd_topic, on_command)
    estop_sub = LatchableSubscription(node, msgs.Bool, "safety/estop", on_estop)
    reset_sub = node.create_subscription(msgs.Bool, "safety/reset", on_reset)  # volatile: a reset is an event
    diag_pub = node.create_publisher(msgs.String, "safety/diagnostics")

    period = LatencyStats()
    compute = LatencyStats()
    diag_every = max(1, int(round(rate_hz / diag_hz)))
    critic_every = max(1, int(round(rate_hz / critic_hz)))
    cj = [names.index(j) for j in critic.section["joint_names"]] if critic is not None else []
    worker = None
    if critic is not None:  # the critic runs on its own thread (robot_rl.safety.critic_worker)
        from robot_rl.safety.critic_worker import CriticWorker, RiskFeed

        zeros = np.zeros(len(cj))
        pose = np.array([dict(zip(spec["robot"]["joint_names"], spec["robot"]["default_pose"])).get(j, 0.0)
                         for j in critic.section["joint_names"]])
        try:  # the first evaluation is slow (onnxruntime, MuJoCo): not in the loop, where it would be stale
            critic(pose, zeros, pose, zeros)
        except Exception as e:  # noqa: BLE001 - a critic that cannot run at the home pose refuses to start
            raise NodeStartError(f"the safety critic cannot be evaluated: {e}") from None
        worker = CriticWorker(critic).start()
        feed = RiskFeed(worker, filt, critic_every, cj)
        sys.setswitchinterval(param(node, "switch_interval_s", 1e-4, float, check=lambda v: 0 < v <= 0.005,
                                    expect="0 < value <= 0.005 s"))
    # command latency: policy stamp -> the first driver command computed from that command
    latency = LatencyStats()
    loop = {"k": 0, "last": None, "sent": 0, "timer": None, "pending_stamp": None, "reason": None}

    def apply_risk(t):
        """The critic thread's newest risk into the filter (RiskFeed.apply), before the tick."""
        res = feed.apply(t)
        if res is not None and res.error is not None:
            reject("critic_error", "safety critic failed (treated as maximal risk): %s", res.error)
        elif res is not None and res.non_finite:
            reject("critic_non_finite", "the safety critic gave a non-finite risk: treated as maximal (backup %s)",
                   cfg.backup)

    def on_tick():
        a = time.perf_counter()
        if loop["last"] is not None:
            period.add(a - loop["last"])
        loop["last"] = a
        t = time.monotonic()
        k = loop["k"] = loop["k"] + 1
        if worker is not None:
            apply_risk(t)
        cmd, st = filt.tick(t)
        if worker is not None:  # after the tick: the critic scores the command just sent, in the idle rest
            feed.submit(t, k, (state["q"], state["dq"]) if state["have_state"] else None)
        if st["reason"] == "risk_stale":
            reject("critic_stale", "the safety critic's risk is older than critic_stale_s=%.3f s (evaluated %d of %d "
                   "snapshots): treated as maximal (backup %s)", cfg.risk_timeout_s, worker.stats["evaluated"],
                   worker.stats["submitted"], cfg.backup)
        if st["reason"] != loop["reason"]:
            if st["reason"] in ("cbf_unsafe_start", "cbf_infeasible", "cbf_error"):
                node.logger.error("%s", st["last_error"])  # one line; the filter holds or brakes
            loop["reason"] = st["reason"]
        if cmd is not None:
            driver.write(cmd)
            loop["sent"] += 1
        if loop["pending_stamp"] is not None:
            # latency: from a command to the first driver command computed from it; a command the
            # filter did not use (fault: nothing sent; hold, brake...: the target was dropped) gives
            # no sample, so a stale stamp never survives an outage
            if cmd is not None and st["mode"] == "ok":
                latency.add(time.time() - loop["pending_stamp"])
            loop["pending_stamp"] = None
        compute.add(time.perf_counter() - a)
        if k % diag_every == 0:
            diag_pub.publish(msgs.String(data=dumps({
                **st, "joint_names": names, "command": None if cmd is None else cmd,
                "rate_limit": cfg.rate, "acceleration_limit": cfg.accel,
                "driver_topic": driver.resolved_topic, "commands_sent": loop["sent"],
                "loop": {"rate_hz": rate_hz, "period": period.summary(), "compute": compute.summary(),
                         "missed": loop["timer"].missed, "command_latency": latency.summary()},
            })))

    loop["timer"] = node.create_timer(1.0 / rate_hz, on_tick)
    set_realtime_priority(node, param(node, "realtime_priority", 0, int, check=lambda v: 0 <= v <= 99,
                                      expect="0 (off) or 1..99"))
    node.logger.info("safety filter on %s at %.0f Hz -> %s (%s); joints %s", cmd_topic, rate_hz,
                     driver.resolved_topic, interface, names)
    try:
        code = run_node(node, on_stop=reject.flush)
    finally:
        if worker is not None:
            worker.stop()
    node.logger.info("loop period %s, compute %s", dumps(period.summary()), dumps(compute.summary()))
    if state["error"]:
        return fail(node.name, state["error"])
    return code


if __name__ == "__main__":
    sys.exit(main())
