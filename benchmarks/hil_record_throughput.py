"""HIL recording: what the recorder node's work costs per supervised episode, against references
measured in the same run.

    python benchmarks/hil_record_throughput.py            # 10 s episodes at 50 Hz, 3 rounds of 5 episodes
    python benchmarks/hil_record_throughput.py --quick    # smoke run (~5 s)

An episode is what the recorder hears in `--episode-s` seconds of the iiwa-reach deploy graph:
joint_states at 1 kHz (the twin's rate), policy/step and policy/joint_command at the policy rate
(50 Hz), arbiter/joint_command and teleop/intervention at 100 Hz, target_pose at 20 Hz, one
teleop/events; one frame per policy step.

| line | what is timed |
|---|---|
| ours, dataset + MCAP | per message: `msg.serialize()` + `HilRecorder.log`; per step: `HilRecorder.add_frame`; per episode: `end_episode` (MCAP of every message, temp + fsync + rename, then the atomic dataset commit) |
| ours, dataset + MCAP, background | the same with `background=True` (what the node runs): commits on a worker thread, total until `close()` returns |
| ours, dataset only | the same with `mcap=False` (no log, no MCAP) |
| ref: DatasetWriter | the same frames through `DatasetWriter.add_frame` / `save_episode` alone (the demonstrations recorder's path) |
| ours: MCAP write | `write_ros2_mcap` of one episode's messages |
| ref: rosbags MCAP | `rosbags.rosbag2.Writer` (storage MCAP, rosbag2 v9, Humble typestore schemas) writing the same CDR messages |

Ratios are ours / reference (time; < 1 is faster). The longest `end_episode` call is how long
the recorder's spin thread (its subscriptions) waits at an episode end, against the 20 ms
control period: the whole commit in line, a hand-off with `background=True`. Each line is
timed in `--rounds` interleaved rounds; the best round is reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_rl.datasets import DatasetWriter  # noqa: E402
from robot_rl.datasets.hil_recorder import HilRecorder, hil_features, hil_robot_info  # noqa: E402
from robot_rl.datasets.mcap_export import write_ros2_mcap  # noqa: E402
from robot_rl.nodes.policy import policy_step_message  # noqa: E402
from robot_rl.transport import msgs  # noqa: E402


def reach_spec() -> dict:
    from robot_rl.export import deploy_spec
    from robot_rl.sim import make_env

    env = make_env("iiwa-reach", 1, dr="off", seed=0, nthread=1)
    try:
        return json.loads(json.dumps(deploy_spec(env)))
    finally:
        env.sim.close()


def episode_messages(spec: dict, seconds: float, rng) -> tuple[list, list]:
    """(timeline of (t_ns, topic, message), frames) of one episode, in time order."""
    joints = spec["observation"]["state_joints"]
    d, a = int(spec["observation"]["dim"]), int(spec["action"]["dim"])
    out, frames = [], []
    for i in range(int(seconds * 1000)):
        t = i * 1_000_000
        q = rng.normal(size=7)
        out.append((t, "/joint_states", msgs.joint_state_from_numpy(joints, q, rng.normal(size=7), rng.normal(size=7))))
        if i % 10 == 0:
            out.append((t, "/arbiter/joint_command", msgs.JointState(name=joints, position=q)))
            out.append((t, "/teleop/intervention", msgs.Bool(data=bool(i % 2000 < 500))))
        if i % 50 == 0:
            pose = msgs.PoseStamped()
            pose.pose.position.x = 0.5
            out.append((t, "/target_pose", pose))
        if i % 20 == 0:
            obs, act, tgt = rng.normal(size=d), rng.uniform(-1, 1, a), q + 0.01
            out.append((t, "/policy/joint_command", msgs.JointState(name=joints, position=tgt)))
            out.append((t, "/policy/step", policy_step_message(msgs, obs, act, tgt)))
            frames.append((len(out), dict(obs=obs, action=act, joint_target=tgt, executed=tgt, intervening=i % 2000 < 500,
                                          joint_pos=q, joint_vel=q * 0.1, commands={"target_pos": np.array([0.5, 0, 0])})))
    out.append((int(seconds * 1e9), "/teleop/events", msgs.String(data='{"event": "success"}')))
    return out, frames


def run_ours(root: Path, spec, fps, episodes, mcap: bool, background: bool = False) -> tuple[float, float]:
    """(total seconds, worst end_episode call in seconds: the node's spin thread waits that long)."""
    t0 = time.perf_counter()
    rec = HilRecorder(root, spec, fps, mcap=mcap, background=background)
    worst = 0.0
    for timeline, frames in episodes:
        fi = 0
        for k, (t, topic, m) in enumerate(timeline):
            if mcap:
                rec.log(topic, type(m), m.serialize(), t)
            while fi < len(frames) and frames[fi][0] == k + 1:
                rec.add_frame(**frames[fi][1])
                fi += 1
        a = time.perf_counter()
        rec.end_episode("success")
        worst = max(worst, time.perf_counter() - a)
    rec.close()  # waits for the background commits
    return time.perf_counter() - t0, worst


def run_writer(root: Path, spec, fps, episodes) -> float:
    t0 = time.perf_counter()
    w = DatasetWriter(root, fps, hil_features(spec), robot_info=hil_robot_info(spec))
    for _, frames in episodes:
        for n, (_, f) in enumerate(frames):
            w.add_frame({"observation.state": f["obs"], "observation.joint_pos": f["joint_pos"],
                         "observation.joint_vel": f["joint_vel"], "observation.command.target_pos": f["commands"]["target_pos"],
                         "action": f["action"], "action.joint_target": f["joint_target"], "action.executed": f["executed"],
                         "complementary_info.is_intervention": np.array([f["intervening"]]),
                         "next.reward": np.array([float(n == len(frames) - 1)], np.float32),
                         "next.done": np.array([n == len(frames) - 1])}, task=spec["task"])
        w.save_episode(success=True)
    return time.perf_counter() - t0


def run_mcap_ours(path: Path, serialized) -> float:
    t0 = time.perf_counter()
    write_ros2_mcap(path, serialized)
    return time.perf_counter() - t0


def run_mcap_rosbags(path: Path, serialized) -> float:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    t0 = time.perf_counter()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}
        for topic, cls, data, ns in serialized:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, cls.__ros_type__, typestore=store)
            w.write(conns[topic], ns, data)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--episode-s", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.episodes, a.episode_s, a.rounds = 2, 2.0, 1
    spec = reach_spec()
    fps = int(round(1 / spec["control"]["period_s"]))
    rng = np.random.default_rng(0)
    episodes = [episode_messages(spec, a.episode_s, rng) for _ in range(a.episodes)]
    serialized = [(topic, type(m), m.serialize(), t) for t, topic, m in episodes[0][0]]
    frames = sum(len(f) for _, f in episodes)
    best: dict[str, float] = {}
    stall: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="hil_bench_"))
    try:
        for r in range(a.rounds):
            runs = {"ours, dataset + MCAP": lambda d: run_ours(d, spec, fps, episodes, True),
                    "ours, dataset + MCAP, background": lambda d: run_ours(d, spec, fps, episodes, True, True),
                    "ours, dataset only": lambda d: run_ours(d, spec, fps, episodes, False),
                    "ref: DatasetWriter": lambda d: (run_writer(d, spec, fps, episodes), 0.0),
                    "ours: MCAP write": lambda d: (run_mcap_ours(d / "ep.mcap", serialized), 0.0),
                    "ref: rosbags MCAP": lambda d: (run_mcap_rosbags(d / "bag", serialized), 0.0)}
            for name, fn in runs.items():
                d = tmp / f"{r}-{len(best)}-{name.replace(' ', '_').replace(':', '').replace(',', '')}"
                d.mkdir()
                sec, worst = fn(d)
                if sec < best.get(name, np.inf):
                    best[name], stall[name] = sec, worst
                shutil.rmtree(d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n_msgs = len(serialized)
    print(f"{a.episodes} episodes x {a.episode_s:g} s ({frames} frames at {fps} fps, {n_msgs} messages per episode), "
          f"best of {a.rounds} rounds")
    print(f"| line | time per episode (ms) | frames/s | ratio |")
    print("|---|---|---|---|")
    ref_ds = best["ref: DatasetWriter"]
    for name in ("ours, dataset + MCAP", "ours, dataset + MCAP, background", "ours, dataset only", "ref: DatasetWriter"):
        print(f"| {name} | {best[name] / a.episodes * 1e3:.1f} | {frames / best[name]:.0f} | {best[name] / ref_ds:.2f} |")
    ref_m = best["ref: rosbags MCAP"]
    for name in ("ours: MCAP write", "ref: rosbags MCAP"):
        print(f"| {name} | {best[name] * 1e3:.1f} | {n_msgs / best[name]:.0f} msg/s | {best[name] / ref_m:.2f} |")
    print(f"longest end_episode call (the node's spin thread waits this long): in line {stall['ours, dataset + MCAP'] * 1e3:.1f} ms, "
          f"background {stall['ours, dataset + MCAP, background'] * 1e3:.2f} ms; control period {1e3 / fps:.0f} ms; "
          f"real time per episode {a.episode_s * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
