"""Recorder node on loopback DDS, fed fake topics (joint_states, target_pose, policy/step,
policy/joint_command, arbiter/joint_command, teleop/intervention, teleop/events): frames,
intervention flags, success labels, MCAP per episode readable by rosbags with the right topics and
counts; kill -9 mid-episode loses only that episode and a restart continues the indices; a dataset
of another robot is refused with one line and nothing overwritten."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from _nodes_helpers import Recorder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_hil_recorder import other_robot, reach_spec, write_spec_artifact  # noqa: E402


@pytest.fixture(scope="module")
def spec_artifacts(tmp_path_factory):
    spec, xml = reach_spec()
    root = tmp_path_factory.mktemp("rec_art")
    return spec, write_spec_artifact(root / "iiwa", spec, xml), write_spec_artifact(root / "other", other_robot(spec), xml)


class Feeder:
    """Publishes what the deploy graph would, one policy step at a time."""

    def __init__(self, node, spec):
        from robot_rl.transport import msgs
        from robot_rl.nodes.policy import policy_step_message

        self.msgs, self.spec, self.step_msg = msgs, spec, policy_step_message
        self.joints = spec["observation"]["state_joints"]
        self.pubs = {t: node.create_publisher(c, t) for t, c in [
            ("/joint_states", msgs.JointState), ("/target_pose", msgs.PoseStamped),
            ("/policy/step", msgs.Float64MultiArray), ("/policy/joint_command", msgs.JointState),
            ("/arbiter/joint_command", msgs.JointState), ("/teleop/intervention", msgs.Bool),
            ("/teleop/events", msgs.String)]}
        self.status = Recorder(node, msgs.String, "/recorder/status")

    def wait_matched(self):
        for p in self.pubs.values():
            p.wait_for_subscribers(1, 20)

    def step(self, k: int, intervening: bool):
        m = self.msgs
        n, d, a = len(self.joints), int(self.spec["observation"]["dim"]), int(self.spec["action"]["dim"])
        q = np.full(n, 0.01 * k)
        self.pubs["/joint_states"].publish(m.joint_state_from_numpy(self.joints, q, np.full(n, 0.5), np.zeros(n)))
        pose = m.PoseStamped()
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 0.5, 0.0, 0.4
        self.pubs["/target_pose"].publish(pose)
        self.pubs["/teleop/intervention"].publish(m.Bool(data=intervening))
        executed = q + (0.3 if intervening else 0.1)
        self.pubs["/arbiter/joint_command"].publish(m.JointState(name=self.joints, position=executed))
        time.sleep(0.015)  # the newest state/flag/executed command reach the recorder before the step
        target = q + 0.1
        self.pubs["/policy/joint_command"].publish(m.JointState(name=self.joints, position=target))
        self.pubs["/policy/step"].publish(self.step_msg(m, np.full(d, float(k)), np.full(a, 0.25), target))
        time.sleep(0.01)

    def episode(self, first: int, steps: int, event: str | None, intervene=range(0)):
        for k in range(first, first + steps):
            self.step(k, k - first in intervene)
        if event:
            time.sleep(0.05)
            self.pubs["/teleop/events"].publish(self.msgs.String(data=json.dumps({"event": event, "stamp": 0.0})))

    def wait_status(self, pred, what: str, timeout: float = 15.0, since: float | None = None) -> dict:
        return json.loads(self.status.wait_for(lambda m: pred(json.loads(m.data)), timeout, what, since=since).data)


def test_frames_labels_interventions_and_mcap(graph, spec_artifacts, tmp_path):
    from rosbags.highlevel import AnyReader

    from robot_rl.datasets import load_dataset

    spec, art, _ = spec_artifacts
    root = tmp_path / "hil"
    feed = Feeder(graph.node, spec)
    graph.node.start()
    rec = graph.start("recorder", root=root, artifact=art)
    feed.wait_status(lambda s: s["episodes"] == 0, "the recorder running", 30)
    feed.wait_matched()
    feed.episode(0, 12, "success", intervene=range(4, 8))
    feed.wait_status(lambda s: s["episodes"] == 1, "episode 0 saved")
    feed.episode(100, 8, "failure")
    s = feed.wait_status(lambda s: s["episodes"] == 2, "episode 1 saved")
    assert s["last_success"] is False and s["last_end"] == "failure" and s["frames"] == 20
    feed.pubs["/teleop/events"].publish(feed.msgs.String(data='{"event": "maybe"}'))  # garbage: ignored, counted
    feed.episode(200, 3, None)
    s = feed.wait_status(lambda s: s["episode_frames"] == 3 and s["dropped"].get("bad_event") == 1, "3 open frames")
    assert s["episodes"] == 2
    assert rec.stop() == 0  # a clean stop saves the open episode, label unknown
    assert "ignored a teleop event" in rec.log()

    ds = load_dataset(root)
    assert ds.num_episodes == 3 and ds.success().tolist() == [1, 0, -1] and ds.episode(2)["index"].tolist() == [20, 21, 22]
    e0, e1 = ds.episode(0), ds.episode(1)
    np.testing.assert_allclose(e0["observation.state"][:, 0], np.arange(12))
    assert e0["complementary_info.is_intervention"].tolist() == [k in range(4, 8) for k in range(12)]
    np.testing.assert_allclose(e0["action.executed"] - e0["observation.joint_pos"],
                               np.where(e0["complementary_info.is_intervention"], 0.3, 0.1)[:, None] * np.ones(7), atol=1e-6)
    np.testing.assert_allclose(e0["action.joint_target"] - e0["observation.joint_pos"], 0.1, atol=1e-6)
    np.testing.assert_allclose(e0["observation.command.target_pos"], [[0.5, 0.0, 0.4]] * 12, atol=1e-6)
    assert e0["next.reward"].tolist() == [0] * 11 + [1] and e0["next.done"][-1] and not e0["next.done"][:-1].any()
    assert e1["next.reward"].sum() == 0 and e1["next.done"].tolist() == [False] * 7 + [True]
    assert ds.robot_info["robot"] == spec["robot"]["name"] and ds.info["fps"] == round(1 / spec["control"]["period_s"])

    for ep, steps, flags in ((0, 12, [k in range(4, 8) for k in range(12)]), (1, 8, [False] * 8)):
        with AnyReader([root / "mcap" / f"episode_{ep:06d}.mcap"]) as r:
            counts = {c.topic: c.msgcount for c in r.connections}
            types = {c.topic: c.msgtype for c in r.connections}
            got = [r.deserialize(raw, c.msgtype).data for c, _, raw in r.messages() if c.topic == "/teleop/intervention"]
        assert counts["/policy/step"] == steps and counts["/policy/joint_command"] == steps
        assert counts["/teleop/events"] == 1 and counts["/arbiter/joint_command"] == steps
        assert counts["/joint_states"] == steps and counts["/target_pose"] == steps
        assert types["/joint_states"] == "sensor_msgs/msg/JointState" and types["/target_pose"] == "geometry_msgs/msg/PoseStamped"
        assert got == flags


def test_kill9_keeps_committed_episodes_and_resumes(graph, spec_artifacts, tmp_path):
    from rosbags.highlevel import AnyReader

    from robot_rl.datasets import load_dataset

    spec, art, other = spec_artifacts
    root = tmp_path / "hil"
    feed = Feeder(graph.node, spec)
    graph.node.start()
    rec = graph.start("recorder", root=root, artifact=art)
    feed.wait_status(lambda s: s["episodes"] == 0, "the recorder running", 30)
    feed.wait_matched()
    feed.episode(0, 6, "success")
    feed.episode(10, 5, "failure")
    feed.wait_status(lambda s: s["episodes"] == 2, "2 episodes saved")
    feed.episode(20, 7, None)  # episode 2 in progress
    feed.wait_status(lambda s: s["episode_frames"] == 7, "episode 2 in progress")
    rec.kill()
    assert rec.proc.returncode == -9

    ds = load_dataset(root)
    assert (ds.num_episodes, ds.num_frames) == (2, 11) and ds.success().tolist() == [1, 0]
    ds.verify_stats()

    t_restart = time.monotonic()
    rec2 = graph.start("recorder", root=root, artifact=art)
    feed.wait_status(lambda s: s["episodes"] == 2, "the restarted recorder running", 30, since=t_restart)
    feed.wait_matched()
    feed.episode(30, 4, "success")
    feed.wait_status(lambda s: s["episodes"] == 3, "episode 2 saved after the restart")
    assert rec2.stop() == 0
    ds = load_dataset(root)
    assert ds.num_episodes == 3 and ds.success().tolist() == [1, 0, 1]
    np.testing.assert_array_equal(np.concatenate([ds.episode(i)["index"] for i in range(3)]), np.arange(15))
    np.testing.assert_allclose(ds.episode(2)["observation.state"][:, 0], np.arange(30, 34))
    assert sorted(p.name for p in (root / "mcap").iterdir()) == [f"episode_00000{i}.mcap" for i in range(3)]
    with AnyReader([root / "mcap" / "episode_000002.mcap"]) as r:
        assert {c.topic: c.msgcount for c in r.connections}["/policy/step"] == 4

    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    bad = graph.start("recorder", root=root, artifact=other)
    assert bad.wait(30) == 2
    err = [line for line in bad.log().splitlines() if "error" in line]
    assert len(err) == 1 and "joint_names" in err[0] and "record into a new directory" in err[0], bad.log()
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_real_policy_node_frames_match_its_observer(graph, spec_artifacts, tmp_path):
    """With the real policy node (a hand-made linear ONNX policy): each frame's observation is the one
    the artifact's observer computes from that frame's joint state and command and the previous
    frame's action and targets, so observation, action and state in a frame are of the same tick."""
    import threading

    from _nodes_helpers import StatePublisher, linear_reach_artifact

    from robot_rl.datasets import load_dataset
    from robot_rl.observer import RobotObserver
    from robot_rl.transport import msgs

    spec, art, _ = spec_artifacts
    (art / "parity.json").write_text("{}")  # linear_reach_artifact replaces the parity record of a trained one
    policy_art = linear_reach_artifact(art, tmp_path / "linear")
    (art / "parity.json").unlink()
    joints = spec["observation"]["state_joints"]
    q0 = np.asarray(spec["robot"]["default_pose"])
    feed = Feeder(graph.node, spec)
    graph.node.start()
    robot = StatePublisher(graph.node, joints, q0, rate_hz=200)
    stop = threading.Event()

    def targets():
        pose = msgs.PoseStamped()
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 0.55, 0.1, 0.45
        while not stop.is_set():
            feed.pubs["/target_pose"].publish(pose)
            time.sleep(0.05)

    th = threading.Thread(target=targets, daemon=True)
    th.start()
    root = tmp_path / "hil"
    try:
        graph.start("recorder", root=root, artifact=policy_art)
        feed.wait_status(lambda s: s["episodes"] == 0, "the recorder running", 30)
        graph.start("policy", artifact=policy_art)
        feed.wait_status(lambda s: s["episode_frames"] >= 25, "policy steps recorded", 30)
        feed.pubs["/teleop/events"].publish(msgs.String(data=json.dumps({"event": "success"})))
        feed.wait_status(lambda s: s["episodes"] == 1, "the episode saved")
    finally:
        stop.set()
        robot.stop()
        for p in graph.procs:
            p.stop()
    ep = load_dataset(root).episode(0)
    obs_side = RobotObserver(json.loads((policy_art / "spec.json").read_text()), policy_art)
    (arm,) = obs_side.actions.terms
    assert len(ep["action"]) >= 25 and np.abs(ep["action"]).max() > 1e-3  # the policy moved the arm's targets
    continued = 0
    for t in range(len(ep["action"])):
        state = obs_side.state(ep["observation.joint_pos"][t], ep["observation.joint_vel"][t], None,
                               {"target_pos": ep["observation.command.target_pos"][t]})
        if t > 0:
            obs_side.last_action = ep["action"][t - 1][None].astype(np.float64)
            arm.target = ep["action.joint_target"][t - 1][None].astype(np.float64)
            if np.allclose(ep["observation.state"][t], obs_side.observe(state), atol=2e-5):
                continued += 1
                continue
        # otherwise the policy (re-)anchored at this step: start-up, or a joint-state gap on a loaded machine
        obs_side.reset(state)
        np.testing.assert_allclose(ep["observation.state"][t], obs_side.observe(state), atol=2e-5, err_msg=f"frame {t}")
    assert continued >= 0.8 * (len(ep["action"]) - 1), continued
    # no arbiter in this graph: what was executed is the policy's own command
    np.testing.assert_array_equal(ep["action.executed"], ep["action.joint_target"])
