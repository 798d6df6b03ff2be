"""Write a LeRobotDataset v3.0 episode by episode, atomically (layout: `robot_rl.datasets.format`).

```
w = DatasetWriter("data/demos", fps=50, features={"observation.state": {"dtype": "float32", "shape": [12],
                  "names": [...]}, "action": {"dtype": "float32", "shape": [7], "names": [...]}},
                  robot_info={"robot": "panda", "joint_names": [...], "task": "panda-peg-insert", ...})
w.add_frame({"observation.state": obs, "action": act}, task="insert the peg")   # per control step
w.save_episode(success=True)     # durable when it returns
w.close()
```

Crash safety: `save_episode` writes, in this order, the episode's data file, the task table, the
episode's metadata row (its group file), `meta/stats.json` and `meta/info.json`, each to a
temporary file that is fsynced and renamed into place. The episodes table is the commit point:
an episode whose row is written is kept; opening a root after a crash (`kill -9`) deletes the
temporary files and any data file no episode row names, and rewrites `info.json`/`stats.json` from
the episodes table. So a killed recorder loses at most the episode in progress, and a resumed
recording continues with contiguous `episode_index` and `index`.

Bad frames (missing/extra features, wrong shape, NaN/Inf, a bounded feature such as `action`
outside [-1, 1]) raise `DatasetError` at `add_frame` and are not added; `discard_episode()` drops
the open episode. Nothing already saved is touched by an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_rl.datasets import format as F
from robot_rl.datasets.format import DatasetError


def episodes_schema(features: dict[str, dict]) -> pa.Schema:
    """Columns of `meta/episodes/*.parquet` (LeRobot's, plus `success`, null when unknown)."""
    cols = [("episode_index", pa.int64()), ("tasks", pa.list_(pa.string())), ("length", pa.int64()),
            ("data/chunk_index", pa.int64()), ("data/file_index", pa.int64()),
            ("dataset_from_index", pa.int64()), ("dataset_to_index", pa.int64())]
    for name, ft in features.items():
        if ft["dtype"] == "string":
            continue
        for key in F.STAT_KEYS:
            cols.append((f"stats/{name}/{key}", pa.list_(pa.int64() if key == "count" else pa.float64())))
    cols += [("meta/episodes/chunk_index", pa.int64()), ("meta/episodes/file_index", pa.int64()),
             ("success", pa.bool_())]
    return pa.schema(cols)


def read_episode_rows(root: Path) -> list[dict]:
    """Every row of `meta/episodes/*/*.parquet`, sorted by episode_index."""
    rows: list[dict] = []
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return sorted(rows, key=lambda r: r["episode_index"])


def episode_stats(row: dict, features: dict[str, dict]) -> dict[str, dict[str, np.ndarray]]:
    return {name: {k: np.asarray(row[f"stats/{name}/{k}"]) for k in F.STAT_KEYS}
            for name, ft in features.items() if ft["dtype"] != "string" and f"stats/{name}/min" in row}


class DatasetWriter:
    """Appends episodes to the dataset at `root` (created, or resumed when it exists).

    `features`: the recorded features (LeRobot form: name -> {"dtype", "shape", "names"}); the
    bookkeeping features (timestamp, frame_index, episode_index, index, task_index) are added.
    `robot_info`: our metadata stored as `info["robot_rl"]` (robot, joint_names, task, observation
    and action term layouts) so a reader can refuse another robot's data. `bounded`: features whose
    values must lie in [-1, 1] (normalized actions). Resuming checks fps, features and robot_info
    against the existing dataset."""

    def __init__(self, root: str | Path, fps: int, features: dict[str, dict], robot_info: dict | None = None,
                 robot_type: str | None = None, chunks_size: int = F.DEFAULT_CHUNK_SIZE,
                 bounded: tuple[str, ...] = ("action",)):
        self.root = Path(root)
        if int(fps) != fps or fps <= 0:
            raise DatasetError(f"fps must be a positive integer (LeRobot stores an int), got {fps}")
        for name in features:
            if name in F.DEFAULT_FEATURES:
                raise DatasetError(f"feature {name!r} is written by the dataset itself; remove it from features")
        user = {k: {"dtype": v["dtype"], "shape": [int(s) for s in v["shape"]], "names": v.get("names")}
                for k, v in features.items()}
        for name, ft in user.items():
            F.arrow_type(ft)  # unsupported dtype/shape: one line, before anything is written
            if ft["names"] is not None and len(ft["names"]) != int(np.prod(ft["shape"])):
                raise DatasetError(f"feature {name!r} has {len(ft['names'])} names for shape {ft['shape']}")
        missing = [b for b in bounded if b not in user]
        if missing:
            raise DatasetError(f"bounded features {missing} are not among the features {list(user)}")
        self.user_features = user
        self.features = {**user, **F.DEFAULT_FEATURES}
        self.bounded = tuple(bounded)
        self.schema = F.data_schema(self.features)
        self.robot_info = dict(robot_info or {})
        self._buffer: dict[str, list] = {k: [] for k in user}
        self._tasks_buf: list[str] = []
        self.recovered: dict = {}
        if (self.root / F.INFO_PATH).exists():
            self._resume(int(fps))
        else:
            self._create(int(fps), robot_type, chunks_size)

    # -- opening -------------------------------------------------------------------------------
    def _create(self, fps: int, robot_type: str | None, chunks_size: int) -> None:
        if self.root.exists() and any(p for p in self.root.iterdir() if not p.name.startswith(F.TMP_PREFIX)):
            raise DatasetError(f"{self.root} exists and is not a dataset (no {F.INFO_PATH}); choose a new or empty directory")
        self.info = {
            "codebase_version": F.CODEBASE_VERSION, "fps": fps, "features": self.features,
            "total_episodes": 0, "total_frames": 0, "total_tasks": 0, "chunks_size": int(chunks_size),
            "data_files_size_in_mb": F.DEFAULT_DATA_FILE_SIZE_IN_MB,
            "video_files_size_in_mb": F.DEFAULT_VIDEO_FILE_SIZE_IN_MB,
            "data_path": F.DATA_PATH, "video_path": None, "robot_type": robot_type or self.robot_info.get("robot"),
            "splits": {}, "robot_rl": self.robot_info,
        }
        self.tasks: dict[str, int] = {}
        self.rows: list[dict] = []
        self.ep_stats: list[dict] = []
        F.atomic_write_json(self.root / F.INFO_PATH, self.info)

    def _resume(self, fps: int) -> None:
        removed = F.remove_temp_files(self.root)
        info = json.loads((self.root / F.INFO_PATH).read_text())
        where = f"{self.root} already holds a dataset"
        if info.get("codebase_version") != F.CODEBASE_VERSION:
            raise DatasetError(f"{where} in format {info.get('codebase_version')}, not {F.CODEBASE_VERSION}; record into a new directory")
        theirs = info.get("robot_rl", {})
        # the robot first: another robot's data is the likeliest mismatch, and its message the clearest
        for key in sorted(set(theirs) | set(self.robot_info), key=lambda k: (k not in ("robot", "joint_names"), k)):
            if json.loads(json.dumps(self.robot_info.get(key))) != theirs.get(key):
                raise DatasetError(f"{where} recorded with {key}={theirs.get(key)!r}, this recording has "
                                   f"{self.robot_info.get(key)!r}; record into a new directory")
        if info["fps"] != fps:
            raise DatasetError(f"{where} at {info['fps']} fps, this recording runs at {fps}; record into a new directory")
        if info["features"] != json.loads(json.dumps(self.features)):
            raise DatasetError(f"{where} with features {_describe(info['features'])}, this recording writes "
                               f"{_describe(self.features)}; record into a new directory")
        self.info = info
        self.rows = read_episode_rows(self.root)
        for i, row in enumerate(self.rows):
            if row["episode_index"] != i or row["dataset_from_index"] != (self.rows[i - 1]["dataset_to_index"] if i else 0):
                raise DatasetError(f"{self.root}: episode rows are not contiguous at episode {i}; "
                                   "the metadata was edited by hand, restore it or record into a new directory")
        self.ep_stats = [episode_stats(r, self.features) for r in self.rows]
        self.tasks = {}
        if (self.root / F.TASKS_PATH).exists():
            t = pq.read_table(self.root / F.TASKS_PATH).to_pydict()
            self.tasks = dict(zip(t["task"], t["task_index"]))
        # data files that no episode row names: an episode killed between its data and its row
        named = {(r["data/chunk_index"], r["data/file_index"]) for r in self.rows}
        orphans = [p for p in (self.root / "data").glob("chunk-*/file-*.parquet")
                   if (int(p.parent.name[6:]), int(p.stem[5:])) not in named]
        for p in orphans:
            p.unlink()
        self.recovered = {"temp_files": [str(p) for p in removed], "orphan_data_files": [str(p) for p in orphans]}
        self._write_summary()  # info/stats may lag the episodes table after a crash

    # -- recording -----------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return len(self.rows)

    @property
    def num_frames(self) -> int:
        return self.rows[-1]["dataset_to_index"] if self.rows else 0

    @property
    def episode_frames(self) -> int:
        """Frames in the open (unsaved) episode."""
        return len(self._tasks_buf)

    def add_frame(self, frame: dict[str, np.ndarray], task: str) -> None:
        """Append one frame to the open episode; a bad frame raises DatasetError and is not added."""
        keys = set(frame)
        expected = set(self.user_features)
        if keys != expected:
            missing, extra = sorted(expected - keys), sorted(keys - expected)
            raise DatasetError(f"frame features do not match the dataset: missing {missing}, extra {extra}; "
                               f"give exactly {sorted(expected)}")
        if not isinstance(task, str) or not task:
            raise DatasetError("every frame needs a task (a non-empty string describing what is done)")
        values = {}
        n = self.episode_frames
        for name, ft in self.user_features.items():
            v = np.asarray(frame[name])
            shape = tuple(ft["shape"])
            if v.shape != shape and not (shape == (1,) and v.shape == ()):
                raise DatasetError(f"frame {n}: {name} has shape {list(v.shape)}, the dataset declares {list(shape)}")
            if ft["dtype"] != "string":
                v = v.astype(ft["dtype"]).reshape(shape)
                if v.dtype.kind == "f" and not np.isfinite(v).all():
                    raise DatasetError(f"frame {n}: {name} holds NaN or Inf ({v.tolist()}); "
                                       "the demonstration is refused, fix the expert/teleop source")
                if name in self.bounded and np.abs(v).max() > 1.0:
                    raise DatasetError(f"frame {n}: {name} is outside [-1, 1] (max |value| "
                                       f"{float(np.abs(v).max()):.4g}); clip or rescale the expert's actions")
            values[name] = v
        for name, v in values.items():
            self._buffer[name].append(v)
        self._tasks_buf.append(task)

    def discard_episode(self) -> None:
        """Drop the open episode's frames (nothing on disk changes)."""
        for v in self._buffer.values():
            v.clear()
        self._tasks_buf.clear()

    def save_episode(self, success: bool | None = None) -> int:
        """Write the open episode durably; returns its episode_index."""
        n = self.episode_frames
        if n == 0:
            raise DatasetError("save_episode: the episode has no frames; add_frame first")
        ep = self.num_episodes
        start = self.num_frames
        new_tasks = [t for t in dict.fromkeys(self._tasks_buf) if t not in self.tasks]
        tasks = dict(self.tasks)
        for t in new_tasks:
            tasks[t] = len(tasks)
        cols = {}
        for name, ft in self.user_features.items():
            arr = np.stack(self._buffer[name])
            cols[name] = arr.reshape(n) if tuple(ft["shape"]) == (1,) else arr
        frame_index = np.arange(n, dtype=np.int64)
        cols.update({"timestamp": (frame_index / self.info["fps"]).astype(np.float32), "frame_index": frame_index,
                     "episode_index": np.full(n, ep, dtype=np.int64),
                     "index": np.arange(start, start + n, dtype=np.int64),
                     "task_index": np.array([tasks[t] for t in self._tasks_buf], dtype=np.int64)})
        table = pa.table({name: _arrow_column(cols[name], self.features[name]) for name in self.features},
                         schema=self.schema)
        chunk, file = F.chunk_file(ep, self.info["chunks_size"])
        F.atomic_write_table(self.root / F.data_path(self.info, chunk, file), table)
        if new_tasks:
            self.tasks = tasks
            F.atomic_write_table(self.root / F.TASKS_PATH, F.tasks_table(tasks))
        stats = {name: F.feature_stats(cols[name]) for name, ft in self.features.items() if ft["dtype"] != "string"}
        meta_chunk, meta_file = F.chunk_file(ep // F.EPISODES_PER_META_FILE, self.info["chunks_size"])
        row = {"episode_index": ep, "tasks": list(dict.fromkeys(self._tasks_buf)), "length": n,
               "data/chunk_index": chunk, "data/file_index": file,
               "dataset_from_index": start, "dataset_to_index": start + n,
               **{f"stats/{f}/{k}": np.asarray(v).tolist() for f, s in stats.items() for k, v in s.items()},
               "meta/episodes/chunk_index": meta_chunk, "meta/episodes/file_index": meta_file,
               "success": None if success is None else bool(success)}
        group = [r for r in self.rows if r["episode_index"] // F.EPISODES_PER_META_FILE == ep // F.EPISODES_PER_META_FILE]
        F.atomic_write_table(self.root / F.EPISODES_PATH.format(chunk_index=meta_chunk, file_index=meta_file),
                             pa.Table.from_pylist(group + [row], schema=episodes_schema(self.features)))
        self.rows.append(row)  # committed
        self.ep_stats.append(stats)
        self.discard_episode()
        self._write_summary()
        return ep

    def _write_summary(self) -> None:
        """meta/stats.json and meta/info.json from the episodes table (derived, rewritten whole)."""
        if self.ep_stats:
            agg = {f: F.aggregate_stats([s[f] for s in self.ep_stats]) for f in self.ep_stats[0]}
            F.atomic_write_json(self.root / F.STATS_PATH, F.stats_to_json(agg))
        info = dict(self.info, total_episodes=self.num_episodes, total_frames=self.num_frames,
                    total_tasks=len(self.tasks), splits={"train": f"0:{self.num_episodes}"} if self.rows else {})
        if info != self.info or not self.rows:
            self.info = info
            F.atomic_write_json(self.root / F.INFO_PATH, info)

    def close(self) -> None:
        """Drop an unsaved open episode (what a crash would lose). Everything saved is already on disk."""
        self.discard_episode()

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _arrow_column(values: np.ndarray, ft: dict) -> pa.Array:
    typ = F.arrow_type(ft)
    if pa.types.is_fixed_size_list(typ):
        values = np.ascontiguousarray(values)
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), typ.value_type), typ.list_size)
    return pa.array(values, typ)


def _describe(features: dict) -> str:
    return "{" + ", ".join(f"{k}{list(v['shape'])}" for k, v in features.items() if k not in F.DEFAULT_FEATURES) + "}"
