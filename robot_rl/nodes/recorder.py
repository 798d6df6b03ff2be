"""Recorder node: every step of a deployed, supervised robot into a LeRobotDataset v3.0 (+ MCAP).

    robot-rl-recorder --ros-args -p root:=data/hil -p artifact:=models/policies/peg
    python -m robot_rl.nodes.recorder --ros-args -p root:=data/hil -p artifact:=... -p mcap:=false

One frame per policy step: each ``policy/step`` message (the observation the policy saw, its
action and its joint targets, published by the policy node with its command; see
:func:`robot_rl.nodes.policy.policy_step_message`) becomes a frame together with the newest
``joint_states`` (positions and velocities of the artifact's state joints, matched by name), the
newest executed command on ``arbiter/joint_command`` (until an arbiter has been heard, the
policy's own targets: without teleop the policy commands the safety node directly), the newest
``teleop/intervention`` flag (false until heard) and the newest value of every task command the
artifact reads (``spec["observation"]["commands"]``, e.g. ``hole_pose``). Features, labels and
durability: :mod:`robot_rl.datasets.hil_recorder`. The observation, action and targets of a frame
are the policy's own, of one tick; ``observation.joint_pos``/``joint_vel`` are the recorder's
newest reading when the step arrived (within a few ms of the policy's, which is inside
``observation.state``). ``joint_states`` is subscribed best effort, as the policy does: at 1 kHz on
a loaded machine the MCAP log can miss some of them (frames are not affected).

Episodes end on a ``teleop/events`` message (std_msgs/String JSON ``{"event": "success" |
"failure" | "reset", ...}``) or after ``max_episode_s`` of frames (``timeout``); each is committed
atomically with its MCAP log (``<root>/mcap/episode_NNNNNN.mcap``, every message the recorder
heard on its topics during the episode, log time = receive time, ros2msg schemas, cdr). SIGINT /
SIGTERM save the open episode with an unknown label (``reset``); SIGKILL loses only it (and an
ended episode still being committed), and a restarted recorder resumes the dataset with
contiguous indices. A dataset of another robot (or
task, rate, feature layout) is refused at start: one line, exit code 2, nothing overwritten.

Ended episodes are committed in order on a worker thread, so the MCAP and Parquet writes (a few
hundred ms for a 10 s episode, see ``benchmarks/hil_record_throughput.py``) never hold up the
subscriptions; a failed commit (disk full) is logged, counted and loses only that episode.

Publishes ``recorder/status`` (std_msgs/String JSON: root, episodes and frames committed,
committing, failed, episode_frames, episode_interventions, last_episode, last_success, last_end,
last_frames, last_interventions, mcap, waiting, dropped) twice a second.

Parameters (defaults): ``root`` (required), ``artifact`` (required), ``rate_hz`` (0 = the
artifact's control rate; the dataset's integer fps), ``mcap`` (true), ``max_episode_s`` (60.0; 0 =
no limit), ``state_timeout_s`` (0.2: a frame needs a joint state at most this old),
``executed_topic`` (arbiter/joint_command), ``task`` (the language task of every frame; default
the artifact's task name), ``<command>_topic`` (remap one command's topic, as on the policy node).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from robot_rl.nodes._commands import command_reader
from robot_rl.nodes._common import NodeStartError, RateLimitedLog, dumps, node_main, param, run_node

EVENTS = ("success", "failure", "reset")


def main(argv=None) -> int:
    return node_main("recorder", _run, argv)


def _run(node) -> int:
    from robot_rl.artifact import ArtifactError, load_spec
    from robot_rl.datasets import DatasetError
    from robot_rl.datasets.hil_recorder import HilRecorder, command_joints
    from robot_rl.nodes.policy import STEP_TOPIC, read_policy_step
    from robot_rl.transport import QoSProfile, msgs

    root = param(node, "root", "", str)
    art_path = param(node, "artifact", "", str)
    if not root or not art_path:
        raise NodeStartError("parameters 'root' (dataset directory) and 'artifact' (the deployed policy) are required "
                             "(-p root:=data/hil -p artifact:=path/to/policy)")
    try:
        spec = load_spec(art_path)
    except (ArtifactError, OSError) as e:
        raise NodeStartError(str(e)) from None
    period = float(spec["control"]["period_s"])
    rate_hz = param(node, "rate_hz", 0.0, float, check=lambda v: 0 <= v <= 1000, expect="0 (the artifact's rate) or up to 1000")
    rate_hz = rate_hz or 1.0 / period
    fps = int(round(rate_hz))
    if abs(fps - rate_hz) > 1e-6 * rate_hz:
        raise NodeStartError(f"rate_hz={rate_hz:g} is not a whole number of frames per second, which LeRobot's integer "
                             "fps cannot describe; set rate_hz to an integer")
    max_s = param(node, "max_episode_s", 60.0, float, check=lambda v: v >= 0, expect="seconds >= 0 (0: no limit)")
    state_timeout = param(node, "state_timeout_s", 0.2, float, check=lambda v: v > 0, expect="seconds > 0")
    use_mcap = param(node, "mcap", True, bool)
    def on_commit(index: int, error) -> None:  # on the recorder's commit thread
        if error is not None:
            node.logger.error("episode %d not saved (%s); the dataset keeps every earlier episode", index, error)
        else:
            last = rec.last
            node.logger.info("episode %d saved: %s, %d frames (%d with the person commanding)", index, last["end"],
                             last["frames"], last["interventions"])

    try:
        rec = HilRecorder(root, spec, fps, mcap=use_mcap, max_episode_s=max_s, task=param(node, "task", "", str),
                          background=True, on_commit=on_commit)
    except DatasetError as e:
        raise NodeStartError(str(e)) from None
    if rec.writer.recovered.get("orphan_data_files") or rec.removed_mcap:
        node.logger.warning("resumed after a crash: dropped the uncommitted episode's files %s",
                            rec.writer.recovered["orphan_data_files"] + rec.removed_mcap)

    state_joints = list(spec["observation"]["state_joints"])
    cmd_joints = command_joints(spec)
    sizes = (int(spec["observation"]["dim"]), int(spec["action"]["dim"]), len(cmd_joints))
    reject = RateLimitedLog(node.logger)
    latest: dict = {"state": None, "state_t": 0.0, "executed": None, "intervening": False}
    commands: dict[str, np.ndarray] = {}
    dropped: dict[str, int] = {}
    loop = {"waiting": "no policy/step yet (is the policy node running?)"}
    status_pub = node.create_publisher(msgs.String, "recorder/status")

    def drop(reason: str, msg: str, *args) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1
        reject(reason, msg, *args)

    def publish_status() -> None:
        status_pub.publish(msgs.String(data=dumps({**rec.status(), "waiting": loop["waiting"], "dropped": dropped,
                                                   "stamp": time.monotonic()})))

    def subscribe(cls, topic: str, handler=None, qos=QoSProfile(depth=100)):
        """Every message is logged for the episode's MCAP (under its resolved topic), then handled."""
        sub = None

        def cb(msg):
            if use_mcap:
                rec.log(sub.topic, cls, msg.serialize(), time.time_ns())
            if handler is not None:
                handler(msg)

        sub = node.create_subscription(cls, topic, cb, qos=qos)
        return sub

    def on_state(msg):
        latest["state"], latest["state_t"] = msg, time.monotonic()

    def on_executed(msg):
        try:
            latest["executed"] = msgs.joint_state_to_numpy(msg, cmd_joints)[0]
        except (KeyError, ValueError) as e:
            drop("bad_executed", "ignored an executed command on %s: %s", exe_sub.topic, e)

    def on_intervention(msg):
        latest["intervening"] = bool(msg.data)

    def finish(end: str) -> None:
        """End the open episode; it is committed on the recorder's commit thread (on_commit logs it)."""
        if rec.end_episode(end) is None:
            node.logger.info("%s event with no frames recorded since the last episode: nothing to label", end)

    def on_event(msg):
        try:
            event = json.loads(msg.data).get("event")
        except (json.JSONDecodeError, AttributeError):
            event = None
        if event not in EVENTS:
            return drop("bad_event", "ignored a teleop event %r: expected JSON {\"event\": %s}", msg.data,
                        " | ".join(EVENTS))
        finish(event)

    def on_step(msg):
        try:
            obs, action, target = read_policy_step(msg, sizes)
        except ValueError as e:
            return drop("bad_step", "ignored a policy step on %s (another artifact's policy?): %s", step_sub.topic, e)
        state = latest["state"]
        if state is None or time.monotonic() - latest["state_t"] > state_timeout:
            loop["waiting"] = f"no joint state newer than {state_timeout} s"
            return drop("no_state", "policy step not recorded: %s", loop["waiting"])
        absent = [k for k in rec.commands if k not in commands]
        if absent:
            loop["waiting"] = f"no {', '.join(absent)} yet"
            return drop("no_command", "policy step not recorded: %s", loop["waiting"])
        try:
            q, dq, _ = msgs.joint_state_to_numpy(state, state_joints)
            executed = target if latest["executed"] is None else latest["executed"]
            end = rec.add_frame(obs, action, target, executed, latest["intervening"], q, dq, commands)
        except (KeyError, ValueError) as e:  # DatasetError is a ValueError
            return drop("bad_frame", "policy step not recorded: %s", e)
        loop["waiting"] = None
        if end is not None:
            node.logger.info("episode ended: timeout after %d frames (max_episode_s=%g)", rec.max_frames, max_s)

    subscribe(msgs.JointState, "joint_states", on_state, qos=QoSProfile(reliability="best_effort", depth=200))
    step_sub = subscribe(msgs.Float64MultiArray, STEP_TOPIC, on_step)
    subscribe(msgs.JointState, "policy/joint_command")
    exe_sub = subscribe(msgs.JointState, param(node, "executed_topic", "arbiter/joint_command", str), on_executed)
    subscribe(msgs.Bool, "teleop/intervention", on_intervention)
    subscribe(msgs.String, "teleop/events", on_event)
    for name, c in spec["observation"].get("commands", {}).items():
        cls, read = command_reader(msgs, c)

        def on_command(msg, name=name, read=read):
            try:
                v = read(msg)
            except (ValueError, TypeError, AttributeError) as e:
                return drop(f"bad_{name}", "ignored a %s command: %s", name, e)
            if np.isfinite(v).all():
                commands[name] = v

        subscribe(cls, param(node, f"{name}_topic", c["topic"], str), on_command)

    node.create_timer(0.5, publish_status)
    node.logger.info("recording %s (%s on %s) at %d fps into %s (%d episodes, %d frames so far)%s", art_path,
                     spec["task"], spec["robot"]["name"], fps, rec.root, rec.writer.num_episodes,
                     rec.writer.num_frames, "; one MCAP per episode in " + str(rec.root / "mcap") if use_mcap else "")

    def on_stop():
        reject.flush()
        if rec.episode_frames:
            finish("reset")  # a clean stop keeps the open episode, label unknown
        rec.close()  # waits for the commits in flight

    return run_node(node, on_stop=on_stop)


if __name__ == "__main__":
    sys.exit(main())
