"""Twin episodes: the task's own reset for a seed on the twin (scene joints, start pose, believed
hole position), its success on the twin's state, the request state machine, and the node over
loopback DDS."""

import json
import time

import numpy as np
import pytest

from _nodes_helpers import Recorder

SCENE = ("hole_x", "hole_y", "peg_x", "peg_y", "peg_tilt")


@pytest.fixture(scope="module")
def peg_twin():
    from robot_rl.hardware.twin import RobotTwin

    return RobotTwin("panda-peg-insert", seed=2, physics_rate_hz=1000)


def _q(twin, joint: str) -> float:
    m = twin.model
    return float(twin.data.qpos[m.jnt_qposadr[m.joint(joint).id]])


def test_an_episode_sets_the_task_state_of_its_seed_and_gives_the_believed_hole(peg_twin):
    import torch

    from robot_rl.sim import make_env
    from robot_rl.sim.tasks.panda_peg_insert import CONTACT_DR, EE_ABOVE

    tw = peg_twin
    assert tw.task_obj.cdr == CONTACT_DR["eval"]  # the held-out range's hole error and grasp offset
    cmds = tw.start_episode(5)
    scene = {j: _q(tw, j) for j in SCENE}
    q_arm = tw.data.qpos[tw._cmd_qadr[:7]].copy()
    # the same seed's reset in a fresh env of the task on the held-out range
    env = make_env("panda-peg-insert", 1, dr="eval", seed=0, nthread=1)
    env.gen.manual_seed(5)
    with torch.inference_mode():
        qpos, _ = env.task.reset(env, torch.zeros(1, dtype=torch.long))
    m = env.model
    for j in SCENE:
        assert scene[j] == pytest.approx(float(qpos[0, m.jnt_qposadr[m.joint(j).id]]), abs=1e-6), j
    np.testing.assert_allclose(q_arm, qpos[0, env._actuated_qpos].double().numpy(), atol=1e-6)
    assert abs(scene["hole_x"]) > 1e-3 and abs(scene["peg_x"]) > 1e-5  # moved, not the model's zero
    # the arm at the start pose: the peg tip above the hole; the command is the believed hole top
    hole, tip = tw.site_pos("hole_top"), tw.site_pos("peg_tip")
    assert np.linalg.norm(tip[:2] - hole[:2]) < 0.02 + 0.0125 * 1.5 + 0.01
    assert tip[2] - hole[2] == pytest.approx(EE_ABOVE, abs=0.015)
    err = cmds["hole_pos"] - hole
    assert 0 < np.linalg.norm(err[:2]) <= CONTACT_DR["eval"].hole_error_m + 1e-6
    # deterministic by seed, different across seeds
    np.testing.assert_allclose(tw.start_episode(5)["hole_pos"], cmds["hole_pos"])
    assert np.abs(tw.start_episode(6)["hole_pos"] - cmds["hole_pos"]).max() > 1e-3
    # the held command is the new pose: the arm stays there (no pull back to the old command)
    q0 = tw.read(noisy=False)[0][:7]
    tw.step(300)
    assert np.abs(tw.read(noisy=False)[0][:7] - q0).max() < 0.02


def test_success_is_the_tasks_own_on_the_twins_state(peg_twin):
    from robot_rl.hardware.twin_episodes import mirror_state
    from robot_rl.sim.tasks.panda_peg_insert import PEG_TIP

    tw = peg_twin
    tw.start_episode(7)
    st = tw.task_status()
    assert st["success"] is False and st["terminated"] is False and st["distance"] > 0.05
    # put the peg 20 mm deep into the hole: the grasp offset zeroed, the ee above the hole's axis
    m, d = tw.model, tw.data
    for j in ("peg_x", "peg_y", "peg_tilt"):
        d.qpos[m.jnt_qposadr[m.joint(j).id]] = 0.0
    hole = tw.site_pos("hole_top")
    q = tw.task_obj._ik(tw._env, hole + [0.0, 0.0, PEG_TIP - 0.02], d.qpos[tw._cmd_qadr[:7]].copy())
    d.qpos[tw._cmd_qadr[:7]] = q
    st = tw.task_status()
    assert st["success"] is True and st["terminated"] is True and st["distance"] < 1e-3, st
    with pytest.raises(ValueError, match="qpos"):
        mirror_state(tw._env, d.qpos[:-1], d.qvel)


class _Clockless:
    """A stand-in twin for the request state machine (no physics)."""

    sim_time = 1.5
    episode_length_s = 6.0

    def __init__(self):
        self.started = []

    def start_episode(self, seed):
        self.started.append(seed)
        return {"hole_pos": np.array([0.5, 0.0, 0.04 + seed])}

    def task_status(self):
        return {"success": False, "terminated": False, "distance": 0.1}


def test_requests_silence_the_joint_states_then_teleport_then_run():
    from robot_rl.hardware.twin_episodes import EpisodeRequestError, TwinEpisodes

    tw = _Clockless()
    eps = TwinEpisodes(tw, gap_s=0.4)
    assert eps.update(0.0) is None and eps.publishing and eps.status()["phase"] == "idle"
    assert eps.status()["success"] is None
    for bad in ("nope", '{"seed": "a"}', '{"seed": 1.5}', '{"id": 3}', '[1]', '{"seed": 1, "id": true}'):
        with pytest.raises(EpisodeRequestError):
            eps.request(bad)
    assert eps.request('{"seed": 3}') == 1
    assert eps.request('{"seed": 3, "id": 1}') == 1  # a repeat of the queued one: ignored
    assert eps.update(1.0) is None and not eps.publishing and eps.status()["phase"] == "starting"
    assert eps.update(1.29) is None and tw.started == []
    cmds = eps.update(1.3)  # 0.75 x gap: the teleport
    assert tw.started == [3] and cmds["hole_pos"][2] == pytest.approx(3.04) and not eps.publishing
    assert eps.update(1.39) is None and not eps.publishing
    eps.update(1.4)
    assert eps.publishing
    st = eps.status()
    assert st["episode"] == 1 and st["seed"] == 3 and st["phase"] == "running" and st["success"] is False
    assert st["commands"] == {"hole_pos": [0.5, 0.0, 3.04]} and st["distance"] == 0.1
    eps.request('{"seed": 3, "id": 1}')  # the running one again: ignored
    assert eps.update(2.0) is None and eps.publishing
    assert eps.request('{"seed": 9, "id": 7}') == 7
    eps.update(3.0)
    assert eps.status()["episode"] == 7 and not eps.publishing
    with pytest.raises(ValueError, match="episode_gap_s"):
        TwinEpisodes(tw, gap_s=0.05)


def test_twin_node_runs_an_episode_over_dds(graph):
    from robot_rl.transport import msgs

    twin = graph.start("twin", task="panda-peg-insert", seed=1, episode_gap_s=0.3)
    js = Recorder(graph.node, msgs.JointState, "/joint_states", qos="sensor_data")
    status = Recorder(graph.node, msgs.String, "/twin/episode_status")
    hole = Recorder(graph.node, msgs.PoseStamped, "/hole_pose")
    req = graph.node.create_publisher(msgs.String, "/twin/episode")
    graph.node.start()
    st0 = json.loads(status.wait_for(lambda m: True, 60, "the twin's status").data)
    assert st0["phase"] == "idle" and st0["episode"] is None and st0["success"] is None
    js.wait_for(lambda m: True, 10, "joint states")
    assert hole.last() is None  # no command before an episode
    req.wait_for_subscribers(1, timeout=10.0)
    before = np.asarray(js.last().position)
    t_req = time.monotonic()
    req.publish(msgs.String(data='{"seed": 4, "id": 11}'))
    req.publish(msgs.String(data="not json"))  # logged and ignored
    m = status.wait_for(lambda m: json.loads(m.data)["phase"] == "running", 10, "episode 11 running")
    st = json.loads(m.data)
    assert st["episode"] == 11 and st["seed"] == 4 and st["success"] is False and st["distance"] > 0.05
    h = hole.wait_for(lambda m: True, 5, "the believed hole position")
    np.testing.assert_allclose([h.pose.position.x, h.pose.position.y, h.pose.position.z],
                               st["commands"]["hole_pos"], atol=1e-6)
    assert h.header.frame_id == "world"
    time.sleep(0.3)
    # the joint states paused (>= 0.2 s without a sample) and came back at the new pose, held there
    times = js.times()
    gaps = np.diff(times[times >= t_req - 0.05])
    assert gaps.max() >= 0.2, gaps.max()
    after = np.asarray(js.last().position)
    assert np.abs(after[:7] - before[:7]).max() > 0.01
    time.sleep(0.3)
    assert np.abs(np.asarray(js.last().position)[:7] - after[:7]).max() < 0.01
    assert "ignored an episode request" in twin.log() and twin.alive()


def test_command_writer_is_the_inverse_of_the_policy_nodes_reader():
    from robot_rl.nodes._commands import command_reader, command_writer
    from robot_rl.sim.task import Command
    from robot_rl.transport import msgs

    for c, v in ((Command(dim=3, topic="hole_pose"), [0.5, -0.02, 0.04]),
                 (Command(dim=2, topic="gains", msg="std_msgs/Float64MultiArray", field="data"), [1.5, -2.0])):
        spec = c.to_dict()
        cls, write = command_writer(msgs, spec)
        m = write(v, stamp=msgs.Time(sec=3, nanosec=5), frame_id="base")
        assert isinstance(m, cls) and cls is command_reader(msgs, spec)[0]
        m2 = cls.deserialize(m.serialize())  # and it survives the wire format
        np.testing.assert_allclose(command_reader(msgs, spec)[1](m2), v)
        if hasattr(m2, "header"):
            assert m2.header.frame_id == "base" and m2.pose.orientation.w == 1.0
        with pytest.raises(ValueError, match="values"):
            write(v + [0.0])
