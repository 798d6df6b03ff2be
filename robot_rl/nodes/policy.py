"""Policy node: runs an exported policy artifact on the robot's joint states.

    python -m robot_rl.nodes.policy --ros-args -p artifact:=models/policies/iiwa-reach

Subscribes ``joint_states`` (sensor_msgs/JointState; joints matched *by name* to the artifact's
joint order) and, for reaching tasks, ``/target_pose`` (geometry_msgs/PoseStamped, position in
the robot base frame). Publishes ``/policy/joint_command`` (sensor_msgs/JointState with ``name``
and ``position``: the joint position targets, so the safety node can check the names) every
control period of the artifact, and ``/policy/diagnostics`` (std_msgs/String, JSON with the
inference latency percentiles) once a second.

Start-up: waits up to ``state_wait_s`` for the first joint state and refuses to start (one-line
error, exit code 2) when the robot's joint names disagree with the artifact's. The observation
is built term by term exactly as ``spec["observation"]["terms"]`` lists them (each term times its
``scale``); an unknown term name is a start-up error. Delta-mode actions
(``joint_position_delta``) accumulate into a joint target that starts at the measured position.
Nothing is published before a target arrives (for tasks that need one) or while the joint state
is older than ``state_timeout_s``; the safety node then holds, then brakes.

Parameters (defaults): ``artifact`` (required), ``rate_hz`` (0 = 1 / spec control period),
``command_topic`` (/policy/joint_command), ``target_topic`` (/target_pose), ``target``
(optional initial [x, y, z]), ``state_wait_s`` (10.0), ``state_timeout_s`` (0.1),
``allow_extra_joints`` (false: joint_states must name exactly the artifact's joints).
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np

from robot_rl.nodes._common import LatencyStats, NodeStartError, dumps, fail, make_node, param, run_node


class ObservationBuilder:
    """Builds the policy observation from robot signals, following ``spec["observation"]``.

    Known terms (``TERMS``): joint_pos (q - default_pose), joint_vel, ee_pos (FK of q at site
    ``ee``), target_pos, ee_to_target (target - ee_pos), joint_target_offset (q_cmd - q),
    last_action. Each is multiplied by its ``scale`` and concatenated in the spec's order.
    """

    TERMS: dict[str, Callable] = {
        "joint_pos": lambda s: s["q"] - s["default_pose"],
        "joint_vel": lambda s: s["dq"],
        "ee_pos": lambda s: s["ee"],
        "target_pos": lambda s: s["target"],
        "ee_to_target": lambda s: s["target"] - s["ee"],
        "joint_target_offset": lambda s: s["q_cmd"] - s["q"],
        "last_action": lambda s: s["last_action"],
    }
    NEEDS_TARGET = {"target_pos", "ee_to_target"}
    NEEDS_FK = {"ee_pos", "ee_to_target"}

    def __init__(self, spec: dict, ee_site: str = "ee"):
        obs = spec["observation"]
        self.terms = [(t["name"], int(t["dim"]), float(t["scale"])) for t in obs["terms"]]
        unknown = [n for n, _, _ in self.terms if n not in self.TERMS]
        if unknown:
            raise NodeStartError(f"the artifact's observation term(s) {unknown} are not supported by the policy node "
                                 f"(supported: {sorted(self.TERMS)}); add them to robot_rl.nodes.policy.ObservationBuilder")
        if int(obs.get("history_length", 1)) != 1:
            raise NodeStartError(f"observation history_length={obs.get('history_length')} is not supported (only 1)")
        dim = sum(d for _, d, _ in self.terms)
        if dim != int(obs["dim"]):
            raise NodeStartError(f"the spec's observation terms add up to {dim} values but its dim is {obs['dim']}")
        self.dim = dim
        self.needs_target = any(n in self.NEEDS_TARGET for n, _, _ in self.terms)
        self.kin = None
        self.ee_site = ee_site
        if any(n in self.NEEDS_FK for n, _, _ in self.terms):
            if "kinematics" not in spec:
                raise NodeStartError("the observation needs the end-effector position but the artifact has no "
                                     "kinematics; re-export it")
            from robot_rl.kinematics import Kinematics

            try:
                self.kin = Kinematics(spec["kinematics"], joint_names=spec["joints"]["names"])
            except (ValueError, KeyError) as e:
                raise NodeStartError(f"the artifact's kinematics do not match its joints ({e}); re-export it") from None
            if ee_site not in self.kin.site_names:
                raise NodeStartError(f"site {ee_site!r} is not in the artifact's kinematics ({self.kin.site_names})")
        self.default_pose = np.asarray(spec["joints"]["default_pose"], dtype=np.float64)
        self._buf = np.zeros(dim, dtype=np.float32)

    def build(self, q, dq, target, q_cmd, last_action) -> np.ndarray:
        s = {"q": q, "dq": dq, "target": target, "q_cmd": q_cmd, "last_action": last_action,
             "default_pose": self.default_pose}
        if self.kin is not None:
            s["ee"] = self.kin.site_pos(q, self.ee_site)
        i = 0
        for name, dim, scale in self.terms:
            v = np.asarray(self.TERMS[name](s), dtype=np.float64).reshape(-1)
            if v.shape[0] != dim:
                raise ValueError(f"observation term {name} has {v.shape[0]} values, the spec says {dim}")
            self._buf[i:i + dim] = v * scale
            i += dim
        return self._buf.copy()


def main(argv=None) -> int:
    from robot_rl.transport import RosArgsError

    try:
        node = make_node("policy", argv)
    except (RosArgsError, ValueError) as e:
        return fail("policy", str(e))
    try:
        return _run(node)
    except NodeStartError as e:
        node.shutdown()
        return fail(node.name, str(e))


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
    from robot_rl.transport import msgs

    art_path = param(node, "artifact", "", str)
    if not art_path:
        raise NodeStartError("parameter 'artifact' is required (-p artifact:=path/to/exported/policy)")
    try:
        art = PolicyArtifact.load(art_path)
    except (ArtifactError, OSError) as e:
        raise NodeStartError(str(e)) from None
    spec = art.spec
    if art.action_mode not in ("joint_position", "joint_position_delta"):
        raise NodeStartError(f"action mode {art.action_mode!r} is not supported by the policy node "
                             "(joint_position, joint_position_delta)")
    rate_hz = param(node, "rate_hz", 0.0, float, check=lambda v: 0 <= v <= 1000,
                    expect="0 (the artifact's control rate) or up to 1000 Hz")
    rate_hz = rate_hz or 1.0 / art.control_period_s
    cmd_topic = param(node, "command_topic", "/policy/joint_command", str)
    target_topic = param(node, "target_topic", "/target_pose", str)
    target0 = param(node, "target", None, list)
    wait_s = param(node, "state_wait_s", 10.0, float)
    state_timeout = param(node, "state_timeout_s", 0.1, float)
    allow_extra = param(node, "allow_extra_joints", False, bool)
    builder = ObservationBuilder(spec)
    if abs(rate_hz * art.control_period_s - 1.0) > 0.01:
        node.logger.warning("rate_hz=%.1f differs from the artifact's control rate %.1f Hz: the policy was trained "
                            "for its own control period", rate_hz, 1.0 / art.control_period_s)
    names = list(art.joint_names)

    first = _wait_first_state(node, msgs, wait_s)
    robot = list(first.name)
    missing = [n for n in names if n not in robot]
    extra = [n for n in robot if n not in names]
    if missing or (extra and not allow_extra):
        raise NodeStartError(
            f"robot joint names {robot} disagree with the artifact's {names} (missing: {missing}, unexpected: "
            f"{extra}); deploy an artifact trained for this robot" + ("" if missing else " or set allow_extra_joints:=true"))

    latest = {"msg": first, "t": time.monotonic()}
    target = {"p": None if target0 is None else np.asarray([float(v) for v in target0], dtype=np.float64)}

    def on_state(msg):
        latest["msg"], latest["t"] = msg, time.monotonic()

    def on_target(msg):
        p = msg.pose.position
        v = np.array([p.x, p.y, p.z], dtype=np.float64)
        if np.isfinite(v).all():
            target["p"] = v
        else:
            node.logger.warning("ignored a non-finite target %s", v)

    node.create_subscription(msgs.JointState, "joint_states", on_state, qos="sensor_data")
    if builder.needs_target:
        node.create_subscription(msgs.PoseStamped, target_topic, on_target)
    pub = node.create_publisher(msgs.JointState, cmd_topic)
    diag = node.create_publisher(msgs.String, "/policy/diagnostics")
    infer = LatencyStats()
    loop = {"q_cmd": None, "last_action": np.zeros(art.action_dim), "steps": 0, "waiting": None,
            "next_diag": time.monotonic() + 1.0}

    def wait_reason(reason):
        if loop["waiting"] != reason:
            loop["waiting"] = reason
            if reason:
                node.logger.warning("not commanding: %s", reason)

    def on_tick():
        now = time.monotonic()
        if now >= loop["next_diag"]:
            loop["next_diag"] = now + 1.0
            diag.publish(msgs.String(data=dumps({"steps": loop["steps"], "inference": infer.summary(),
                                                 "waiting": loop["waiting"]})))
        if now - latest["t"] > state_timeout:
            loop["q_cmd"] = None  # re-anchor the delta target at the measured pose when state returns
            return wait_reason(f"joint state older than {state_timeout} s")
        if builder.needs_target and target["p"] is None:
            return wait_reason(f"no target yet on {target_topic}")
        try:
            q, dq, _ = msgs.joint_state_to_numpy(latest["msg"], names)
        except (KeyError, ValueError) as e:
            return wait_reason(f"bad joint state: {e}")
        if not (np.isfinite(q).all() and np.isfinite(dq).all()):
            return wait_reason("non-finite joint state")
        wait_reason(None)
        if loop["q_cmd"] is None:
            loop["q_cmd"] = q.copy()
            loop["last_action"][:] = 0.0
        obs = builder.build(q, dq, target["p"], loop["q_cmd"], loop["last_action"])
        a = time.perf_counter()
        action = art.act(obs)
        infer.add(time.perf_counter() - a)
        action = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64), nan=0.0), -1.0, 1.0)
        loop["q_cmd"] = art.joint_targets(action, loop["q_cmd"])
        loop["last_action"] = action
        loop["steps"] += 1
        pub.publish(msgs.JointState(header=msgs.Header(stamp=node.now()), name=names, position=loop["q_cmd"]))

    node.create_timer(1.0 / rate_hz, on_tick)
    node.logger.info("policy %s (%s) at %.1f Hz -> %s", art.path, spec.get("task"), rate_hz, pub.topic)
    code = run_node(node)
    node.logger.info("inference latency %s", dumps(infer.summary()))
    return code


if __name__ == "__main__":
    sys.exit(main())
