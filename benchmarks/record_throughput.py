"""Recording: frames per second written by `DatasetWriter` (episode-atomic LeRobot v3.0) against
two references measured in the same run, and what a `kill -9` of each writer loses.

    python benchmarks/record_throughput.py            # full: 60 episodes x 250 frames, 3 rounds, 6 kills each
    python benchmarks/record_throughput.py --quick    # smoke run (~10 s)

Frames look like a Panda demonstration: observation.state [32], action [8], observation.joint_pos
[9] float32 (random values, fixed seed), 250 frames (5 s at 50 Hz) per episode.

| line | what is timed |
|---|---|
| ours | `DatasetWriter.add_frame` per frame + `save_episode` per episode: the episode's data file, episodes-table group, stats.json and info.json each written to a temp file, fsynced, renamed. |
| LeRobot's approach | what `LeRobotDataset.add_frame`/`save_episode` do for state-only data (v3): frames appended to per-episode lists, stacked, per-episode stats, the table streamed into one open `pyarrow.ParquetWriter` (footer written at close), info.json and stats.json rewritten per episode, episode rows buffered and written at close; no fsync. |
| one write_table | all frames as one table, one `pyarrow.parquet.write_table` at the end: the floor of Parquet writing, not a recorder (nothing is on disk until the end). |

Each line is timed in `--rounds` interleaved rounds; the best round is reported (another job on
the machine only slows a round down). Kill test: a recorder process writes episodes continuously
and is sent SIGKILL right after its k-th saved episode (k varied, with small random delays); then
the dataset is opened and the episodes that can still be read are counted. Ours must lose at most
the open episode: "lost" counts saved episodes (save returned) that cannot be read back.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_rl.datasets import DatasetWriter, load_dataset  # noqa: E402
from robot_rl.datasets import format as F  # noqa: E402

FEATURES = {"observation.state": {"dtype": "float32", "shape": [32], "names": None},
            "action": {"dtype": "float32", "shape": [8], "names": None},
            "observation.joint_pos": {"dtype": "float32", "shape": [9], "names": None}}


def make_frames(episodes: int, length: int, seed: int = 0) -> list[list[dict]]:
    rng = np.random.default_rng(seed)
    return [[{"observation.state": rng.normal(size=32).astype(np.float32),
              "action": rng.uniform(-1, 1, 8).astype(np.float32),
              "observation.joint_pos": rng.normal(size=9).astype(np.float32)} for _ in range(length)]
            for _ in range(episodes)]


def run_ours(root: Path, data) -> None:
    w = DatasetWriter(root, 50, FEATURES, robot_info={"robot": "panda"})
    for ep in data:
        for f in ep:
            w.add_frame(f, "insert the peg")
        w.save_episode(success=True)
    w.close()


class LeRobotStyleWriter:
    """LeRobot v3's recording path for state-only features, reproduced with pyarrow (see module doc)."""

    def __init__(self, root: Path):
        self.root = root
        self.features = {**FEATURES, **F.DEFAULT_FEATURES}
        self.schema = F.data_schema(self.features)
        self.writer = None
        self.buffer = {k: [] for k in FEATURES}
        self.tasks: list[str] = []
        self.meta_rows: list[dict] = []
        self.stats: list[dict] = []
        self.total = 0

    def add_frame(self, frame: dict, task: str) -> None:
        for k, v in frame.items():
            self.buffer[k].append(v)
        self.tasks.append(task)

    def save_episode(self) -> None:
        n = len(self.tasks)
        ep = len(self.meta_rows)
        cols = {k: np.stack(v) for k, v in self.buffer.items()}
        fi = np.arange(n, dtype=np.int64)
        cols.update(timestamp=(fi / 50).astype(np.float32), frame_index=fi, episode_index=np.full(n, ep),
                    index=np.arange(self.total, self.total + n), task_index=np.zeros(n, dtype=np.int64))
        stats = {k: F.feature_stats(v) for k, v in cols.items()}
        arrays = []
        for name, ft in self.features.items():
            typ = F.arrow_type(ft)
            v = cols[name]
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), typ.value_type), typ.list_size)
                          if pa.types.is_fixed_size_list(typ) else pa.array(v, typ))
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        if self.writer is None:
            path = self.root / F.DATA_PATH.format(chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, schema=self.schema, compression="snappy", use_dictionary=True)
        self.writer.write_table(table)
        self.meta_rows.append({"episode_index": ep, "length": n, "dataset_from_index": self.total,
                               "dataset_to_index": self.total + n})
        self.stats.append(stats)
        self.total += n
        agg = {f: F.aggregate_stats([s[f] for s in self.stats]) for f in stats}
        (self.root / "meta").mkdir(parents=True, exist_ok=True)
        (self.root / F.STATS_PATH).write_text(json.dumps(F.stats_to_json(agg), indent=4))
        (self.root / F.INFO_PATH).write_text(json.dumps({"total_episodes": ep + 1, "total_frames": self.total,
                                                         "features": self.features}, indent=4))
        self.buffer = {k: [] for k in FEATURES}
        self.tasks = []

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        path = self.root / F.EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.meta_rows), path)


def run_lerobot_style(root: Path, data) -> None:
    w = LeRobotStyleWriter(root)
    for ep in data:
        for f in ep:
            w.add_frame(f, "insert the peg")
        w.save_episode()
    w.close()


def run_one_table(root: Path, data) -> None:
    cols = {k: np.stack([f[k] for ep in data for f in ep]) for k in FEATURES}
    arrays = {k: pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1]) for k, v in cols.items()}
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), root / "all.parquet", compression="snappy")


KILLED = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root_dir!r}); sys.path.insert(0, {bench_dir!r})
    from record_throughput import make_frames, FEATURES, LeRobotStyleWriter
    from robot_rl.datasets import DatasetWriter
    from pathlib import Path
    data = make_frames(1, {length})[0]
    root = Path({root!r})
    w = DatasetWriter(root, 50, FEATURES) if {ours} else LeRobotStyleWriter(root)
    for e in range(10**6):
        for f in data:
            w.add_frame(f, "task")
        w.save_episode()
        print(e, flush=True)
""")


def kill_trial(root: Path, ours: bool, k: int, delay: float, length: int) -> tuple[int, int]:
    """(episodes whose save returned, episodes readable after SIGKILL right after the k-th)."""
    code = KILLED.format(root_dir=str(ROOT), bench_dir=str(Path(__file__).parent), length=length, root=str(root),
                         ours=ours)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    saved = 0
    for _line in p.stdout:
        saved += 1
        if saved == k:
            time.sleep(delay)
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait()
    saved += sum(1 for _ in p.stdout)
    if ours:
        DatasetWriter(root, 50, FEATURES)  # what a resumed recording does first: repair after the crash
        ds = load_dataset(root)
        readable = sum(1 for i in range(ds.num_episodes) if len(ds.episode(i)["index"]) == length)
    else:
        try:
            readable = pq.read_table(root / F.DATA_PATH.format(chunk_index=0, file_index=0)).num_rows // length
        except (pa.ArrowInvalid, OSError):
            readable = 0  # the open ParquetWriter never wrote its footer
    return saved, readable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--frames", type=int, default=250, help="frames per episode")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kills", type=int, default=6, help="SIGKILL trials per writer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.episodes, a.frames, a.rounds, a.kills = 8, 50, 1, 2
    cpus = sorted(os.sched_getaffinity(0))[: a.threads]
    os.sched_setaffinity(0, cpus)
    data = make_frames(a.episodes, a.frames)
    n = a.episodes * a.frames
    contenders = {"ours (episode-atomic, fsync)": run_ours, "LeRobot's approach (streamed file)": run_lerobot_style,
                  "one write_table at the end": run_one_table}
    best = {k: float("inf") for k in contenders}
    tmp = Path(tempfile.mkdtemp(prefix="record_bench_"))
    try:
        for r in range(a.rounds):
            for name, fn in contenders.items():
                root = tmp / f"r{r}_{len(name)}"
                t0 = time.perf_counter()
                fn(root, data)
                best[name] = min(best[name], time.perf_counter() - t0)
                shutil.rmtree(root)
        print(f"\nRecording throughput: {a.episodes} episodes x {a.frames} frames ({n} frames), "
              f"obs 32 + action 8 + joints 9 float32, CPUs {cpus}, best of {a.rounds} rounds")
        ours_t = best["ours (episode-atomic, fsync)"]
        print("| writer | frames/s | episodes/s | ms per episode | ours / it (frames/s) |")
        print("|---|---|---|---|---|")
        for name, t in best.items():
            print(f"| {name} | {n / t:,.0f} | {a.episodes / t:,.1f} | {1000 * t / a.episodes:.2f} | {t / ours_t:.2f} |")
        print(f"\nkill -9 test: SIGKILL right after the k-th saved episode (+0-20 ms), {a.kills} trials per writer")
        print("| writer | trials | episodes saved (total) | readable after the kill | saved episodes lost |")
        print("|---|---|---|---|---|")
        rng = np.random.default_rng(0)
        for ours, name in ((True, "ours"), (False, "LeRobot's approach")):
            saved_all = readable_all = lost = 0
            for t in range(a.kills):
                k = 2 + 3 * t
                s, rd = kill_trial(tmp / f"kill_{name[:4]}_{t}", ours, k, float(rng.uniform(0, 0.02)), a.frames)
                saved_all += s
                readable_all += rd
                lost += max(0, s - rd)
            print(f"| {name} | {a.kills} | {saved_all} | {readable_all} | {lost} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
