"""Read and validate a LeRobotDataset v3.0 (state-only features) with pyarrow.

```
ds = load_dataset("data/demos", expect=Expect(features=["observation.state", "action"], robot="panda"))
ds.num_episodes, ds.num_frames, ds.info, ds.stats
ep = ds.episode(0)                    # {"observation.state": [T, D], "action": [T, A], "index": [T], ...}
arrays = load_training_arrays("data/demos", expect=...)   # what a trainer needs, float32 / int64
check_stats(ds.stats, policy_normalization)               # the policy's stats are this data's
```

Episodes are located as any v3 reader does: an episode row's `data/chunk_index`/`data/file_index`
name the file (through `info["data_path"]`), its `dataset_from_index`..`dataset_to_index` the
frames (the `index` column), so datasets that pack many episodes per file (LeRobot's own) load too.
Every check raises `DatasetError` with one line naming the problem and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_rl.datasets import format as F
from robot_rl.datasets.format import DatasetError
from robot_rl.datasets.writer import read_episode_rows


@dataclass
class Expect:
    """What a consumer (trainer, policy) needs of a dataset; None means "anything"."""

    features: Iterable[str] | Mapping[str, Sequence[int] | Mapping] | None = None
    """Recorded feature names (bookkeeping features excluded), name -> shape, or a features dict."""
    robot: str | None = None
    joint_names: Sequence[str] | None = None
    task: str | None = None
    """The simulator task name stored in `info["robot_rl"]["task"]`."""


class RecordedDataset:
    """A validated dataset on disk: `info`, `stats`, `tasks`, `episodes` (rows), `episode(i)`."""

    def __init__(self, root: str | Path, expect: Expect | dict | None = None):
        self.root = Path(root)
        path = self.root / F.INFO_PATH
        if not path.is_file():
            raise DatasetError(f"{self.root} is not a LeRobot dataset (no {F.INFO_PATH}); record one with robot-rl record")
        self.info = json.loads(path.read_text())
        if self.info.get("codebase_version") != F.CODEBASE_VERSION:
            raise DatasetError(f"{self.root}: format {self.info.get('codebase_version')!r} is not supported, "
                               f"only LeRobot {F.CODEBASE_VERSION}; convert it with LeRobot's converter")
        self.features: dict[str, dict] = self.info["features"]
        self.episodes = read_episode_rows(self.root)
        self.stats = F.stats_from_json(json.loads((self.root / F.STATS_PATH).read_text())) \
            if (self.root / F.STATS_PATH).exists() else {}
        self.tasks: list[str] = []
        if (self.root / F.TASKS_PATH).exists():
            t = pq.read_table(self.root / F.TASKS_PATH).to_pydict()
            self.tasks = [task for _, task in sorted(zip(t["task_index"], t["task"]))]
        self._files: dict[tuple[int, int], pa.Table] = {}
        self._check_index()
        if expect is not None:
            check_expectation(self, expect if isinstance(expect, Expect) else Expect(**expect))

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return self.episodes[-1]["dataset_to_index"] if self.episodes else 0

    @property
    def robot_info(self) -> dict:
        return self.info.get("robot_rl", {})

    def _check_index(self) -> None:
        at = self.root
        for i, row in enumerate(self.episodes):
            if row["episode_index"] != i:
                raise DatasetError(f"{at}: episode indices are not contiguous (row {i} is episode {row['episode_index']}); "
                                   "the dataset was edited or merged wrongly, re-record or repair meta/episodes")
            start = self.episodes[i - 1]["dataset_to_index"] if i else 0
            if row["dataset_from_index"] != start or row["dataset_to_index"] - start != row["length"]:
                raise DatasetError(f"{at}: episode {i} covers frames {row['dataset_from_index']}..{row['dataset_to_index']} "
                                   f"with length {row['length']}, expected to start at {start}; repair meta/episodes")
        if (self.info["total_episodes"], self.info["total_frames"]) != (self.num_episodes, self.num_frames):
            raise DatasetError(f"{at}: info.json says {self.info['total_episodes']} episodes / {self.info['total_frames']} "
                               f"frames, the episodes table {self.num_episodes} / {self.num_frames}; open it with "
                               "DatasetWriter once to repair the summary")

    def _file(self, chunk: int, file: int) -> pa.Table:
        key = (chunk, file)
        if key not in self._files:
            path = self.root / F.data_path(self.info, chunk, file)
            if not path.is_file():
                raise DatasetError(f"{self.root}: data file {path.relative_to(self.root)} is missing; "
                                   "the dataset is incomplete, restore the file or drop its episodes")
            table = pq.read_table(path)
            names = set(table.column_names)
            missing, extra = sorted(set(self.features) - names), sorted(names - set(self.features))
            if missing or extra:
                raise DatasetError(f"{path}: columns do not match info.json features: missing {missing}, extra {extra}; "
                                   "the data was written with another feature set, re-record it")
            for name, ft in self.features.items():
                want = F.arrow_type(ft)
                if table.schema.field(name).type != want:
                    raise DatasetError(f"{path}: column {name} is {table.schema.field(name).type}, info.json declares {want}")
            self._files[key] = table
        return self._files[key]

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Every feature of episode `i` as numpy ([T] for shape (1,), else [T, D]), checked contiguous."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range: the dataset has {self.num_episodes}")
        row = self.episodes[i]
        table = self._file(row["data/chunk_index"], row["data/file_index"])
        index = table.column("index").to_numpy()
        lo, hi = row["dataset_from_index"], row["dataset_to_index"]
        sel = np.flatnonzero((index >= lo) & (index < hi))
        part = table.take(pa.array(sel)) if len(sel) != table.num_rows else table
        out = {name: F.column_to_numpy(part.column(name), ft) for name, ft in self.features.items()}
        if not (np.array_equal(out["index"], np.arange(lo, hi)) and np.array_equal(out["frame_index"], np.arange(hi - lo))
                and (out["episode_index"] == i).all()):
            raise DatasetError(f"{self.root}: episode {i} frames are not contiguous (index, frame_index or episode_index "
                               "columns disagree with meta/episodes); the data file was altered, re-record this episode")
        return out

    def success(self) -> np.ndarray:
        """Per-episode success: 1, 0, or -1 when unknown (int8)."""
        return np.array([-1 if r.get("success") is None else int(r["success"]) for r in self.episodes], dtype=np.int8)

    def verify_stats(self, rtol: float = 1e-5, atol: float = 1e-6) -> None:
        """Recompute min/max/mean/std/count from the data; raise if `meta/stats.json` disagrees."""
        if not self.stats:
            raise DatasetError(f"{self.root}: no {F.STATS_PATH}; open the dataset with DatasetWriter to rebuild it")
        eps = [self.episode(i) for i in range(self.num_episodes)]
        for name, ft in self.features.items():
            if ft["dtype"] == "string":
                continue
            got = F.feature_stats(np.concatenate([e[name] for e in eps]))
            _compare(f"{self.root} {F.STATS_PATH}", name, self.stats.get(name, {}), got,
                     ("min", "max", "mean", "std", "count"), rtol, atol, "the data")


def load_dataset(root: str | Path, expect: Expect | dict | None = None) -> RecordedDataset:
    return RecordedDataset(root, expect)


def check_expectation(ds: RecordedDataset, expect: Expect) -> None:
    """Missing/extra features, another robot or its joints, another task: one line each."""
    recorded = {k: list(v["shape"]) for k, v in ds.features.items() if k not in F.DEFAULT_FEATURES}
    if expect.features is not None:
        want = dict(expect.features) if isinstance(expect.features, Mapping) else {k: None for k in expect.features}
        want = {k: v["shape"] if isinstance(v, Mapping) else v for k, v in want.items()}
        missing, extra = sorted(set(want) - set(recorded)), sorted(set(recorded) - set(want))
        if missing or extra:
            raise DatasetError(f"{ds.root}: features do not match: missing {missing}, extra {extra} "
                               f"(recorded {sorted(recorded)}); record with the expected observation/action layout")
        for k, shape in want.items():
            if shape is not None and list(shape) != recorded[k]:
                raise DatasetError(f"{ds.root}: feature {k} has shape {recorded[k]}, expected {list(shape)}; "
                                   "record with the expected observation/action layout")
    ri = ds.robot_info
    if expect.robot is not None and ri.get("robot") != expect.robot:
        raise DatasetError(f"{ds.root}: recorded on robot {ri.get('robot')!r}, expected {expect.robot!r}; "
                           f"use demonstrations of {expect.robot}")
    if expect.joint_names is not None and list(ri.get("joint_names") or []) != list(expect.joint_names):
        raise DatasetError(f"{ds.root}: recorded with joints {ri.get('joint_names')}, expected {list(expect.joint_names)} "
                           "(another robot's joints or another order); use demonstrations of this robot")
    if expect.task is not None and ri.get("task") != expect.task:
        raise DatasetError(f"{ds.root}: recorded on task {ri.get('task')!r}, expected {expect.task!r}; "
                           f"record demonstrations of {expect.task}")


def load_training_arrays(root: str | Path, expect: Expect | dict | None = None) -> dict:
    """Frames for a trainer: observation.state [N, D] and action [N, A] float32, episode_index,
    frame_index, index [N] int64, episode_from / episode_to [E] int64 (frame ranges), success [E]
    int8 (1, 0, -1 unknown), plus `info`, `stats` and `tasks`."""
    ds = load_dataset(root, expect)
    for need in ("observation.state", "action"):
        if need not in ds.features:
            raise DatasetError(f"{ds.root}: no {need!r} feature (has {sorted(ds.features)}); "
                               "a policy trainer needs observation.state and action")
    if ds.num_episodes == 0:
        raise DatasetError(f"{ds.root}: the dataset has no episodes; record some with robot-rl record")
    eps = [ds.episode(i) for i in range(ds.num_episodes)]

    def cat(name: str, dtype) -> np.ndarray:
        return np.concatenate([e[name] for e in eps]).astype(dtype, copy=False)

    obs, act = cat("observation.state", np.float32), cat("action", np.float32)
    return {"observation.state": obs.reshape(len(obs), -1), "action": act.reshape(len(act), -1),
            "episode_index": cat("episode_index", np.int64), "frame_index": cat("frame_index", np.int64),
            "index": cat("index", np.int64),
            "episode_from": np.array([r["dataset_from_index"] for r in ds.episodes], dtype=np.int64),
            "episode_to": np.array([r["dataset_to_index"] for r in ds.episodes], dtype=np.int64),
            "success": ds.success(), "info": ds.info, "stats": ds.stats, "tasks": ds.tasks}


def _compare(where: str, name: str, have: dict, want: dict, keys, rtol: float, atol: float, what: str) -> None:
    for k in keys:
        if k not in want:
            continue
        if k not in have:
            raise DatasetError(f"{where}: {name} has no {k!r} statistic to compare with {what}; recompute the stats")
        a, b = np.asarray(have[k], dtype=np.float64).reshape(-1), np.asarray(want[k], dtype=np.float64).reshape(-1)
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
            diff = "shape " + str(a.shape) + " vs " + str(b.shape) if a.shape != b.shape else \
                f"max difference {float(np.max(np.abs(a - b))):.4g}"
            raise DatasetError(f"{where}: {name} {k} does not match {what} ({diff}); "
                               "normalize with the stats of the data the policy was trained on")


def check_stats(info_or_stats, expected: Mapping[str, Mapping[str, Sequence[float]]],
                rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Raise DatasetError unless the dataset's stats agree with `expected` (e.g. the normalization a
    policy artifact stores: {"action": {"min": [...], "max": [...]}, ...}) on every feature and
    statistic `expected` names. `info_or_stats`: a RecordedDataset, a dataset root, or a stats dict."""
    if isinstance(info_or_stats, (str, Path)):
        info_or_stats = load_dataset(info_or_stats)
    if isinstance(info_or_stats, RecordedDataset):
        where, stats = f"{info_or_stats.root} {F.STATS_PATH}", info_or_stats.stats
    else:
        where, stats = "dataset stats", info_or_stats
    for name, want in expected.items():
        if name not in stats:
            raise DatasetError(f"{where}: no stats for {name!r} (has {sorted(stats)}); the policy expects another feature set")
        _compare(where, name, stats[name], want, list(want), rtol, atol, "the policy's normalization")
