"""LeRobotDataset v3.0 writer/reader: the documented layout, round trip, resume, crash safety
(SIGKILL of a recording process), the bad inputs, and MCAP export read back with rosbags."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robot_rl.datasets import DatasetError, DatasetWriter, Expect, check_stats, load_dataset, load_training_arrays
from robot_rl.datasets.mcap_export import export_episode_mcap

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["a", "b", "c", "d"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    "observation.joint_pos": {"dtype": "float32", "shape": [2], "names": ["j1", "j2"]},
}
ROBOT = {"robot": "toy", "joint_names": ["j1", "j2"], "task": "toy-task"}
LEROBOT_INFO_KEYS = {"codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
                     "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path",
                     "robot_type", "splits"}
LEROBOT_EPISODE_COLUMNS = {"episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                           "dataset_from_index", "dataset_to_index", "meta/episodes/chunk_index",
                           "meta/episodes/file_index"}


def frame(rng, scale=1.0):
    return {"observation.state": rng.normal(size=4).astype(np.float32),
            "action": rng.uniform(-1, 1, 2).astype(np.float32) * scale,
            "observation.joint_pos": rng.normal(size=2).astype(np.float32)}


def record(root, lengths, seed=0, task="push the block", **kw):
    rng = np.random.default_rng(seed)
    w = DatasetWriter(root, 50, FEATURES, robot_info=ROBOT, **kw)
    frames = []
    for n in lengths:
        ep = [frame(rng) for _ in range(n)]
        for f in ep:
            w.add_frame(f, task)
        w.save_episode(success=len(frames) % 2 == 0)
        frames.append(ep)
    w.close()
    return frames


def test_layout_matches_lerobot_v3(tmp_path):
    root = tmp_path / "ds"
    frames = record(root, [5, 7, 3])
    info = json.loads((root / "meta/info.json").read_text())
    assert set(info) == LEROBOT_INFO_KEYS | {"robot_rl"}
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 15, 1)
    assert info["splits"] == {"train": "0:3"} and info["video_path"] is None and info["robot_type"] == "toy"
    assert info["robot_rl"] == ROBOT
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert info["features"][name]["shape"] == [1]
    assert info["features"]["timestamp"]["dtype"] == "float32" and info["features"]["index"]["dtype"] == "int64"
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.column_names == ["task_index", "task"] and tasks.to_pydict()["task"] == ["push the block"]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]  # pd.read_parquet: index "task"
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet")
    assert LEROBOT_EPISODE_COLUMNS <= set(eps.column_names)
    for f in FEATURES:
        for k in ("min", "max", "mean", "std", "count", "q01", "q50", "q99"):
            assert f"stats/{f}/{k}" in eps.column_names
    rows = eps.to_pylist()
    assert [(r["dataset_from_index"], r["dataset_to_index"], r["length"]) for r in rows] == [(0, 5, 5), (5, 12, 7), (12, 15, 3)]
    # a v3 reader: data_path + the row's chunk/file, frames from..to of the `index` column
    for i, r in enumerate(rows):
        t = pq.read_table(root / info["data_path"].format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"]))
        assert set(t.column_names) == set(info["features"])
        assert t.schema.field("observation.state").type == pa.list_(pa.float32(), 4)
        assert t.schema.field("index").type == pa.int64() and t.schema.field("timestamp").type == pa.float32()
        idx = t.column("index").to_numpy()
        sel = t.filter(pa.compute.and_(pa.compute.greater_equal(t["index"], r["dataset_from_index"]),
                                       pa.compute.less(t["index"], r["dataset_to_index"])))
        assert sel.num_rows == r["length"] == len(frames[i]) and len(idx) >= r["length"]
        got = np.array(sel.column("action").to_pylist(), dtype=np.float32)
        np.testing.assert_array_equal(got, np.stack([f["action"] for f in frames[i]]))
        np.testing.assert_allclose(sel.column("timestamp").to_numpy(), np.arange(r["length"]) / 50, rtol=1e-6)
    stats = json.loads((root / "meta/stats.json").read_text())
    acts = np.concatenate([np.stack([f["action"] for f in ep]) for ep in frames]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], acts.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], acts.std(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["min"], acts.min(0))
    assert stats["action"]["count"] == [15] and stats["index"]["max"] == [14]
    np.testing.assert_allclose(rows[1]["stats/action/mean"], np.stack([f["action"] for f in frames[1]]).mean(0), rtol=1e-6)


def test_round_trip_and_training_arrays(tmp_path):
    frames = record(tmp_path / "ds", [4, 6])
    ds = load_dataset(tmp_path / "ds", expect=Expect(features=FEATURES, robot="toy", joint_names=["j1", "j2"],
                                                     task="toy-task"))
    assert (ds.num_episodes, ds.num_frames) == (2, 10)
    ep = ds.episode(1)
    np.testing.assert_array_equal(ep["observation.state"], np.stack([f["observation.state"] for f in frames[1]]))
    np.testing.assert_array_equal(ep["index"], np.arange(4, 10))
    np.testing.assert_array_equal(ep["frame_index"], np.arange(6))
    ds.verify_stats()
    arr = load_training_arrays(tmp_path / "ds")
    assert arr["observation.state"].shape == (10, 4) and arr["observation.state"].dtype == np.float32
    assert arr["action"].shape == (10, 2) and arr["episode_index"].dtype == np.int64
    np.testing.assert_array_equal(arr["episode_index"], [0] * 4 + [1] * 6)
    np.testing.assert_array_equal(arr["frame_index"], list(range(4)) + list(range(6)))
    np.testing.assert_array_equal(arr["success"], [1, 0])
    assert arr["info"]["robot_rl"]["robot"] == "toy"


def test_resume_continues_contiguously(tmp_path):
    root = tmp_path / "ds"
    record(root, [3, 4], seed=1)
    w = DatasetWriter(root, 50, FEATURES, robot_info=ROBOT)
    assert (w.num_episodes, w.num_frames) == (2, 7)
    rng = np.random.default_rng(5)
    for _ in range(5):
        w.add_frame(frame(rng), "another task")
    assert w.save_episode() == 2
    ds = load_dataset(root)
    assert (ds.num_episodes, ds.num_frames) == (3, 12) and ds.tasks == ["push the block", "another task"]
    np.testing.assert_array_equal(ds.episode(2)["index"], np.arange(7, 12))
    np.testing.assert_array_equal(ds.episode(2)["task_index"], [1] * 5)
    assert ds.success().tolist() == [1, 0, -1]
    ds.verify_stats()
    with pytest.raises(DatasetError, match="at 50 fps, this recording runs at 30"):
        DatasetWriter(root, 30, FEATURES, robot_info=ROBOT)
    with pytest.raises(DatasetError, match="joint_names"):
        DatasetWriter(root, 50, FEATURES, robot_info=dict(ROBOT, joint_names=["k1", "k2"]))
    with pytest.raises(DatasetError, match="features"):
        DatasetWriter(root, 50, {k: v for k, v in FEATURES.items() if k != "observation.joint_pos"}, robot_info=ROBOT)
    assert load_dataset(root).num_frames == 12


RECORDER = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_dataset import FEATURES, ROBOT, frame
    from robot_rl.datasets import DatasetWriter
    w = DatasetWriter({root!r}, 50, FEATURES, robot_info=ROBOT)
    rng = np.random.default_rng(w.num_episodes)
    mode = {mode!r}
    for e in range(10**6):
        for t in range(4 + e % 5):
            w.add_frame(frame(rng), "task")
            if mode == "mid" and e == 3 and t == 2:
                print("OPEN", flush=True)
                time.sleep(60)
        ep = w.save_episode(success=True)
        print("SAVED", ep, flush=True)
""")


def _recorder(root, mode):
    code = RECORDER.format(tests=os.path.dirname(__file__), root=str(root), mode=mode)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_sigkill_mid_episode_loses_only_the_open_episode(tmp_path):
    root = tmp_path / "ds"
    p = _recorder(root, "mid")
    lines = []
    for line in p.stdout:
        lines.append(line.split())
        if line.startswith("OPEN"):
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert [int(x[1]) for x in lines if x[0] == "SAVED"] == [0, 1, 2]
    ds = load_dataset(root)
    assert ds.num_episodes == 3 and ds.num_frames == 4 + 5 + 6
    ds.verify_stats()
    w = DatasetWriter(root, 50, FEATURES, robot_info=ROBOT)  # resume
    rng = np.random.default_rng(0)
    for _ in range(2):
        w.add_frame(frame(rng), "task")
    assert w.save_episode() == 3
    ds = load_dataset(root)
    np.testing.assert_array_equal(ds.episode(3)["index"], [15, 16])
    ds.verify_stats()


def test_sigkill_at_any_time_keeps_every_saved_episode(tmp_path):
    """Killed while writing continuously (mostly inside save_episode): every episode whose save
    returned is there, the dataset loads, and a resume continues contiguously."""
    for trial, (k, delay) in enumerate(((3, 0.0), (6, 0.005), (9, 0.02))):
        root = tmp_path / f"ds{trial}"
        p = _recorder(root, "loop")
        saved = []
        for line in p.stdout:
            saved.append(int(line.split()[1]))
            if len(saved) == k:
                time.sleep(delay)
                os.kill(p.pid, signal.SIGKILL)
                break
        p.wait()
        saved += [int(line.split()[1]) for line in p.stdout]
        assert p.returncode == -signal.SIGKILL and saved == list(range(len(saved)))
        w = DatasetWriter(root, 50, FEATURES, robot_info=ROBOT)
        assert w.num_episodes >= len(saved)  # an episode may be committed just before its print
        assert not list(root.rglob(".tmp-*"))
        ds = load_dataset(root)
        for i in range(ds.num_episodes):
            assert len(ds.episode(i)["index"]) == 4 + i % 5
        ds.verify_stats()


def test_leftovers_of_a_crash_are_cleaned(tmp_path):
    root = tmp_path / "ds"
    record(root, [3, 3])
    (root / "data/chunk-000/.tmp-abc").write_bytes(b"partial")
    orphan = root / "data/chunk-000/file-002.parquet"  # data of an episode whose row never got written
    orphan.write_bytes((root / "data/chunk-000/file-001.parquet").read_bytes())
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps(dict(info, total_episodes=1, total_frames=3)))  # lagging summary
    with pytest.raises(DatasetError, match="info.json says 1 episodes"):
        load_dataset(root)
    w = DatasetWriter(root, 50, FEATURES, robot_info=ROBOT)
    assert len(w.recovered["temp_files"]) == 1 and w.recovered["orphan_data_files"] == [str(orphan)]
    assert not orphan.exists() and load_dataset(root).num_frames == 6


def test_bad_frames_are_refused_and_saved_episodes_stay(tmp_path):
    root = tmp_path / "ds"
    record(root, [3])
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    w = DatasetWriter(root, 50, FEATURES, robot_info=ROBOT)
    rng = np.random.default_rng(0)
    good = frame(rng)
    w.add_frame(good, "task")
    cases = [({**good, "action": np.array([np.nan, 0], np.float32)}, "action holds NaN or Inf"),
             ({**good, "action": np.array([0.5, 1.5], np.float32)}, r"outside \[-1, 1\]"),
             ({**good, "observation.state": np.array([np.inf, 0, 0, 0])}, "NaN or Inf"),
             ({k: v for k, v in good.items() if k != "action"}, r"missing \['action'\], extra \[\]"),
             ({**good, "reward": np.zeros(1)}, r"extra \['reward'\]"),
             ({**good, "action": np.zeros(3)}, "shape"),
             ]
    for bad, msg in cases:
        with pytest.raises(DatasetError, match=msg) as e:
            w.add_frame(bad, "task")
        assert "\n" not in str(e.value)
    assert w.episode_frames == 1
    w.discard_episode()
    with pytest.raises(DatasetError, match="no frames"):
        w.save_episode()
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    with pytest.raises(DatasetError, match="written by the dataset itself"):
        DatasetWriter(tmp_path / "new", 50, {**FEATURES, "index": {"dtype": "int64", "shape": [1]}})


def test_bad_datasets_get_one_line_each(tmp_path):
    root = tmp_path / "ds"
    record(root, [3, 4])
    cases = [
        (Expect(features=["observation.state", "action"]), r"extra \['observation.joint_pos'\]"),
        (Expect(features=[*FEATURES, "observation.images.wrist"]), r"missing \['observation.images.wrist'\]"),
        (Expect(features={**{k: v["shape"] for k, v in FEATURES.items()}, "action": [7]}), "action has shape"),
        (Expect(robot="panda"), "recorded on robot 'toy', expected 'panda'"),
        (Expect(joint_names=["panda_joint1", "panda_joint2"]), "another robot's joints"),
        (Expect(task="panda-peg-insert"), "recorded on task"),
    ]
    for expect, msg in cases:
        with pytest.raises(DatasetError, match=msg) as e:
            load_training_arrays(root, expect=expect)
        assert "\n" not in str(e.value)
    # stats vs a policy's normalization
    ds = load_dataset(root)
    check_stats(ds, {"action": {"min": ds.stats["action"]["min"], "max": ds.stats["action"]["max"]}})
    check_stats(root, {"observation.state": {"mean": ds.stats["observation.state"]["mean"]}})
    with pytest.raises(DatasetError, match="action max does not match the policy's normalization"):
        check_stats(ds.stats, {"action": {"min": ds.stats["action"]["min"], "max": ds.stats["action"]["max"] + 0.1}})
    with pytest.raises(DatasetError, match="no stats for 'observation.image'"):
        check_stats(ds.stats, {"observation.image": {"mean": [0.0]}})
    # stats.json that does not match the data
    stats = json.loads((root / "meta/stats.json").read_text())
    stats["action"]["mean"] = [9.0, 9.0]
    (root / "meta/stats.json").write_text(json.dumps(stats))
    with pytest.raises(DatasetError, match="action mean does not match the data"):
        load_dataset(root).verify_stats()
    # a data file whose frame indices were shifted: not contiguous
    path = root / "data/chunk-000/file-001.parquet"
    t = pq.read_table(path)
    t = t.set_column(t.column_names.index("index"), "index", pa.array(t.column("index").to_numpy() + 1))
    pq.write_table(t, path)
    with pytest.raises(DatasetError, match="episode 1 frames are not contiguous"):
        load_dataset(root).episode(1)
    # an episode row removed: episode indices jump
    meta = root / "meta/episodes/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(meta).slice(1), meta)
    with pytest.raises(DatasetError, match="not contiguous"):
        load_dataset(root)
    # a data file written with another feature set
    record(tmp_path / "ds2", [2])
    p2 = tmp_path / "ds2/data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(p2).drop_columns(["action"]), p2)
    with pytest.raises(DatasetError, match=r"missing \['action'\]"):
        load_dataset(tmp_path / "ds2").episode(0)
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        load_dataset(tmp_path / "nothing")


def test_mcap_export_reads_back_with_rosbags(tmp_path):
    from rosbags.highlevel import AnyReader

    frames = record(tmp_path / "ds", [3, 5])
    out = export_episode_mcap(tmp_path / "ds", 1, tmp_path / "ep1.mcap", start_ns=10**9)
    seen: dict[str, list] = {}
    with AnyReader([out]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == {"/joint_states": "sensor_msgs/msg/JointState", "/observation/state": "std_msgs/msg/Float64MultiArray",
                         "/action": "std_msgs/msg/Float64MultiArray", "/observation/joint_pos": "std_msgs/msg/Float64MultiArray"}
        for conn, stamp, raw in reader.messages():
            seen.setdefault(conn.topic, []).append((stamp, reader.deserialize(raw, conn.msgtype)))
    stamps = [10**9 + t * 20_000_000 for t in range(5)]
    js = seen["/joint_states"]
    assert [s for s, _ in js] == stamps
    for t, (_, m) in enumerate(js):
        assert list(m.name) == ["j1", "j2"] and m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamps[t]
        np.testing.assert_allclose(m.position, frames[1][t]["observation.joint_pos"], rtol=1e-7)
    for t, (_, m) in enumerate(seen["/action"]):
        np.testing.assert_allclose(m.data, frames[1][t]["action"], rtol=1e-7)
        assert m.layout.dim[0].label == "action" and m.layout.dim[0].size == 2
    assert len(seen["/observation/state"]) == 5
    with pytest.raises(DatasetError, match="episode 2 does not exist"):
        export_episode_mcap(tmp_path / "ds", 2, tmp_path / "x.mcap")


def test_chunked_files_and_lerobot_packed_files_load(tmp_path, monkeypatch):
    import robot_rl.datasets.format as F

    monkeypatch.setattr(F, "EPISODES_PER_META_FILE", 2)
    root = tmp_path / "ds"
    frames = record(root, [2, 3, 4, 5, 6], chunks_size=2)
    assert (root / "data/chunk-002/file-000.parquet").is_file()  # episode 4: third chunk of 2 files
    assert (root / "meta/episodes/chunk-001/file-000.parquet").is_file()  # episodes 4..5: third group
    ds = load_dataset(root)
    assert ds.num_frames == 20 and [r["data/chunk_index"] for r in ds.episodes] == [0, 0, 1, 1, 2]
    np.testing.assert_array_equal(ds.episode(4)["action"], np.stack([f["action"] for f in frames[4]]))
    monkeypatch.undo()
    # LeRobot's own packing: several episodes in one data file, rows sliced by dataset_from/to_index
    packed = tmp_path / "packed"
    record(packed, [3, 4, 2])
    data = [pq.read_table(packed / f"data/chunk-000/file-{i:03d}.parquet") for i in range(3)]
    for i in range(3):
        (packed / f"data/chunk-000/file-{i:03d}.parquet").unlink()
    pq.write_table(pa.concat_tables(data), packed / "data/chunk-000/file-000.parquet")
    meta = packed / "meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(meta)
    pq.write_table(t.set_column(t.column_names.index("data/file_index"), "data/file_index", pa.array([0, 0, 0])), meta)
    ds = load_dataset(packed)
    assert [len(ds.episode(i)["index"]) for i in range(3)] == [3, 4, 2]
    np.testing.assert_array_equal(ds.episode(2)["index"], [7, 8])
    ds.verify_stats()
