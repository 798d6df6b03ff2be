"""HilRecorder (the recorder node's logic): frames, labels (next.reward / next.done / success),
timeouts, the held-back last frame, MCAP per episode readable by rosbags, resume with contiguous
indices after a crash, another robot's dataset refused with nothing overwritten."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from robot_rl.artifact import sha256_file, spec_checksum
from robot_rl.datasets import DatasetError, load_dataset
from robot_rl.datasets.hil_recorder import INTERVENTION, HilRecorder, command_joints, hil_features
from robot_rl.transport import msgs


def write_spec_artifact(out: Path, spec: dict, robot_xml: str) -> Path:
    """A verified artifact directory holding only spec.json and robot.xml (all the recorder reads)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "robot.xml").write_text(robot_xml)
    spec = dict(spec, files={"robot.xml": sha256_file(out / "robot.xml")})
    spec["checksum"] = spec_checksum(spec)
    (out / "spec.json").write_text(json.dumps(spec, indent=2))
    return out


def reach_spec() -> tuple[dict, str]:
    from robot_rl.export import deploy_spec
    from robot_rl.kinematics import kinematic_model_xml
    from robot_rl.sim import make_env

    env = make_env("iiwa-reach", 1, dr="off", seed=0, nthread=1)
    try:
        return json.loads(json.dumps(deploy_spec(env))), kinematic_model_xml(env.robot)
    finally:
        env.sim.close()


def other_robot(spec: dict) -> dict:
    """The same spec with renamed joints: another robot's recording."""
    s = copy.deepcopy(spec)
    ren = {j: f"other_{i}" for i, j in enumerate(s["robot"]["joint_names"])}
    s["robot"]["joint_names"] = [ren[j] for j in s["robot"]["joint_names"]]
    s["robot"]["name"] = "other-arm"
    s["observation"]["state_joints"] = [ren.get(j, j) for j in s["observation"]["state_joints"]]
    for t in s["action"]["terms"]:
        t["joints"] = [ren.get(j, j) for j in t["joints"]]
    return s


@pytest.fixture(scope="module")
def spec():
    return reach_spec()[0]


def step_values(spec, k: int):
    d, a, c = int(spec["observation"]["dim"]), int(spec["action"]["dim"]), len(command_joints(spec))
    j = len(spec["observation"]["state_joints"])
    return dict(obs=np.full(d, 0.01 * k), action=np.full(a, 0.5 if k % 2 else -0.5), joint_target=np.full(c, 0.1 * k),
                executed=np.full(c, 0.2 * k), joint_pos=np.full(j, 0.3 * k), joint_vel=np.full(j, -0.1 * k),
                commands={"target_pos": np.array([0.5, 0.0, 0.4 + k * 1e-3])})


def add(rec, spec, k, intervening=False):
    v = step_values(spec, k)
    return rec.add_frame(v["obs"], v["action"], v["joint_target"], v["executed"], intervening, v["joint_pos"],
                         v["joint_vel"], v["commands"])


def test_frames_labels_and_mcap(tmp_path, spec):
    from rosbags.highlevel import AnyReader

    rec = HilRecorder(tmp_path / "ds", spec, fps=50, mcap=True, max_episode_s=0.2)  # 10 frames max
    js = msgs.JointState(name=spec["observation"]["state_joints"], position=np.zeros(7), velocity=np.zeros(7))
    for k in range(6):
        rec.log("/joint_states", msgs.JointState, js.serialize(), 1_000_000_000 + k * 20_000_000)
        rec.log("/teleop/intervention", msgs.Bool, msgs.Bool(data=2 <= k < 4).serialize(), 1_000_000_001 + k * 20_000_000)
        assert add(rec, spec, k, intervening=2 <= k < 4) is None
    assert rec.episode_frames == 6 and rec.writer.episode_frames == 0  # frames go to the writer at the commit
    rec.log("/teleop/events", msgs.String, msgs.String(data='{"event": "success"}').serialize(), 1_200_000_000)
    assert rec.end_episode("success") == 0
    for k in range(4):
        add(rec, spec, 10 + k)
    assert rec.end_episode("failure") == 1
    ends = [add(rec, spec, 20 + k) for k in range(10)]
    assert ends == [None] * 9 + ["timeout"] and rec.last["end"] == "timeout"
    add(rec, spec, 40)
    assert rec.end_episode("reset") == 3
    assert rec.end_episode("success") is None  # no frames: nothing to label

    ds = load_dataset(tmp_path / "ds")
    assert ds.num_episodes == 4 and ds.num_frames == 6 + 4 + 10 + 1
    assert ds.success().tolist() == [1, 0, 0, -1]
    e0 = ds.episode(0)
    np.testing.assert_allclose(e0["observation.state"][:, 0], 0.01 * np.arange(6), rtol=1e-6)
    np.testing.assert_allclose(e0["action.executed"][:, 0], 0.2 * np.arange(6), rtol=1e-6)
    np.testing.assert_allclose(e0["observation.command.target_pos"][:, 2], 0.4 + 1e-3 * np.arange(6), rtol=1e-6)
    assert e0[INTERVENTION].tolist() == [False, False, True, True, False, False]
    assert e0["next.reward"].tolist() == [0, 0, 0, 0, 0, 1] and e0["next.done"].tolist() == [False] * 5 + [True]
    e1, e2, e3 = ds.episode(1), ds.episode(2), ds.episode(3)
    assert e1["next.reward"].sum() == 0 and e1["next.done"].tolist() == [False] * 3 + [True]
    assert not e2["next.done"].any() and not e3["next.done"].any()  # timeout / reset: truncated
    assert ds.features["action.executed"]["names"] == command_joints(spec)
    ds.verify_stats()

    with AnyReader([rec.mcap_path(0)]) as r:
        counts = {c.topic: c.msgcount for c in r.connections}
        assert counts == {"/joint_states": 6, "/teleop/intervention": 6, "/teleop/events": 1}
        flags = [r.deserialize(raw, c.msgtype).data for c, _, raw in r.messages()
                 if c.topic == "/teleop/intervention"]
        assert flags == [False, False, True, True, False, False]
    assert sorted(p.name for p in (tmp_path / "ds" / "mcap").iterdir()) == [f"episode_00000{i}.mcap" for i in range(4)]


def test_bad_frames_refused_and_nothing_added(tmp_path, spec):
    rec = HilRecorder(tmp_path / "ds", spec, fps=50, mcap=False)
    v = step_values(spec, 1)
    with pytest.raises(DatasetError, match="action outside"):
        rec.add_frame(v["obs"], v["action"] * 3, v["joint_target"], v["executed"], False, v["joint_pos"],
                      v["joint_vel"], v["commands"])
    with pytest.raises(DatasetError, match="NaN"):
        rec.add_frame(v["obs"] * np.nan, v["action"], v["joint_target"], v["executed"], False, v["joint_pos"],
                      v["joint_vel"], v["commands"])
    with pytest.raises(DatasetError, match="observation.joint_pos has 6 values"):
        rec.add_frame(v["obs"], v["action"], v["joint_target"], v["executed"], False, v["joint_pos"][:6],
                      v["joint_vel"], v["commands"])
    with pytest.raises(DatasetError, match="target_pos"):
        rec.add_frame(v["obs"], v["action"], v["joint_target"], v["executed"], False, v["joint_pos"],
                      v["joint_vel"], {})
    assert rec.episode_frames == 0


def test_crash_resume_and_other_robot(tmp_path, spec):
    root = tmp_path / "ds"
    rec = HilRecorder(root, spec, fps=50, mcap=True)
    for ep in range(2):
        for k in range(3):
            add(rec, spec, k)
        rec.end_episode("success")
    for k in range(4):  # the episode in progress when the recorder dies
        rec.log("/joint_states", msgs.JointState, msgs.JointState().serialize(), k)
        add(rec, spec, k)
    rec.mcap_path(2).parent.mkdir(exist_ok=True)
    rec.mcap_path(2).write_bytes(b"left by a crash between the MCAP and the commit")
    del rec  # no close: a kill -9
    rec = HilRecorder(root, spec, fps=50, mcap=True)
    assert (rec.writer.num_episodes, rec.writer.num_frames) == (2, 6) and rec.removed_mcap
    for k in range(5):
        add(rec, spec, k)
    assert rec.end_episode("failure") == 2
    ds = load_dataset(root)
    assert ds.num_episodes == 3 and ds.episode(2)["index"].tolist() == list(range(6, 11))

    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(DatasetError, match=r"recorded with joint_names=.*lbr_iiwa_joint_1.*other_0.*record into a new directory"):
        HilRecorder(root, other_robot(spec), fps=50)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert list(hil_features(other_robot(spec))["observation.joint_pos"]["names"])[0] == "other_0"


def test_background_commits_in_order_and_a_failed_one_is_reported(tmp_path, spec):
    done = []
    rec = HilRecorder(tmp_path / "ds", spec, fps=50, mcap=True, background=True,
                      on_commit=lambda i, e: done.append((i, type(e).__name__ if e else None)))
    for ep, end in enumerate(["success", "failure"]):
        for k in range(3 + ep):
            add(rec, spec, k)
        assert rec.end_episode(end) == ep
    rec.flush()
    assert done == [(0, None), (1, None)] and rec.status()["episodes"] == 2 and rec.status()["committing"] == 0
    (tmp_path / "ds" / "mcap").rename(tmp_path / "mcap-moved")
    (tmp_path / "ds" / "mcap").write_text("a file where the MCAP directory was: the next MCAP write fails")
    add(rec, spec, 0)
    rec.end_episode("success")
    rec.flush()
    assert done[-1][0] == 2 and done[-1][1] is not None and rec.failed == 1
    (tmp_path / "ds" / "mcap").unlink()
    add(rec, spec, 7)
    assert rec.end_episode("reset") == 2  # the failed episode's index is reused, indices stay contiguous
    rec.close()
    ds = load_dataset(tmp_path / "ds")
    assert ds.num_episodes == 3 and ds.success().tolist() == [1, 0, -1] and ds.episode(2)["index"].tolist() == [7]
