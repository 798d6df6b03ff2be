"""The LeRobotDataset v3.0 layout as we write it, shared by the writer and the reader.

```
ROOT/meta/info.json                                   codebase_version "v3.0", fps, features, totals,
                                                      path templates; our own block under "robot_rl"
ROOT/meta/stats.json                                  per feature: min, max, mean, std, count, q01..q99
ROOT/meta/tasks.parquet                               columns task_index (int64), task (str, the index)
ROOT/meta/episodes/chunk-CCC/file-FFF.parquet         one row per episode: episode_index, tasks, length,
                                                      data/chunk_index, data/file_index,
                                                      dataset_from_index, dataset_to_index,
                                                      meta/episodes/chunk_index, meta/episodes/file_index,
                                                      stats/<feature>/<stat>, success (ours)
ROOT/data/chunk-CCC/file-FFF.parquet                  frames: every feature of info["features"]
```

These names, dtypes and templates are LeRobot's (``lerobot/datasets/utils.py``,
``dataset_metadata.py``, ``dataset_writer.py``, ``compute_stats.py`` at huggingface/lerobot
main, 2026). One deliberate difference: LeRobot streams many episodes into one data file through
an open ``ParquetWriter`` (the file has no footer, so is unreadable, until it is closed); we write
**one data file per episode** (file index = episode index within its chunk of ``chunks_size``
files), each to a temporary file that is fsynced and renamed into place, so a saved episode is
durable at once. A v3 reader finds every frame the same way: ``data_path`` formatted with the
episode row's ``data/chunk_index``/``data/file_index``, rows ``dataset_from_index`` to
``dataset_to_index`` of the concatenated data. Episode rows are grouped ``EPISODES_PER_META_FILE``
to a metadata file (rewritten atomically on each save).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
EPISODES_PER_META_FILE = 100
TMP_PREFIX = ".tmp-"
"""Files being written start with this; a crash can leave one behind, opening a root deletes it."""

DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
"""LeRobot's per-frame bookkeeping features (``lerobot.utils.constants.DEFAULT_FEATURES``)."""

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)
STAT_KEYS = ("min", "max", "mean", "std", "count") + QUANTILE_KEYS
NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


class DatasetError(ValueError):
    """A dataset that is not what it must be (one line naming the problem and the fix)."""


# -- atomic files ------------------------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` holds either its old content or all of `data`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=4) + "\n").encode())


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """A Parquet file written whole (snappy, like LeRobot), fsynced, then renamed into place."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def tasks_table(tasks: dict[str, int]) -> pa.Table:
    """`meta/tasks.parquet` as LeRobot writes it (`DataFrame.to_parquet` of a frame with column
    task_index indexed by `task`): the pandas metadata makes `pd.read_parquet` restore that index."""
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                     "metadata": None},
                    {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                     "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3",
    }
    schema = pa.schema([("task_index", pa.int64()), ("task", pa.string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    return pa.table({"task_index": list(tasks.values()), "task": list(tasks)}, schema=schema)


def remove_temp_files(root: Path) -> list[Path]:
    """Delete the temporary files a killed writer left under `root`; returns them."""
    left = [p for p in root.rglob(TMP_PREFIX + "*") if p.is_file()]
    for p in left:
        p.unlink()
    return left


# -- features and frames -----------------------------------------------------------------------

def arrow_type(ft: dict) -> pa.DataType:
    """The Arrow type LeRobot (HF `datasets`) stores a feature as: a scalar for shape (1,), else a
    fixed-size list (`datasets.Sequence(length=D)`)."""
    dtype, shape = ft["dtype"], tuple(ft["shape"])
    if dtype not in NUMERIC_DTYPES and dtype != "string":
        raise DatasetError(f"feature dtype {dtype!r} is not supported here (no images/videos yet); "
                           f"use one of {', '.join(NUMERIC_DTYPES)}")
    base = pa.string() if dtype == "string" else pa.from_numpy_dtype(np.dtype(dtype))
    if shape == (1,):
        return base
    if len(shape) != 1:
        raise DatasetError(f"feature shape {list(shape)} is not supported here; use a 1-D shape [D]")
    return pa.list_(base, shape[0])


def data_schema(features: dict[str, dict]) -> pa.Schema:
    return pa.schema([(name, arrow_type(ft)) for name, ft in features.items()])


def column_to_numpy(col: pa.ChunkedArray | pa.Array, ft: dict) -> np.ndarray:
    """A data column as [N] (shape (1,)) or [N, D] numpy of the feature's dtype."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    shape = tuple(ft["shape"])
    if shape == (1,):
        return col.to_numpy(zero_copy_only=False).astype(ft["dtype"], copy=False)
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(ft["dtype"], copy=False)
    return flat.reshape(len(col), shape[0])


def data_path(info: dict, chunk_index: int, file_index: int) -> str:
    return info["data_path"].format(chunk_index=chunk_index, file_index=file_index)


def chunk_file(i: int, chunks_size: int) -> tuple[int, int]:
    """(chunk_index, file_index) of the i-th file: `chunks_size` files per chunk directory."""
    return divmod(i, chunks_size)


# -- statistics --------------------------------------------------------------------------------

def feature_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics of [N] or [N, D] values over frames (count is [1])."""
    x = np.asarray(x)
    x = x.reshape(len(x), -1).astype(np.float64)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0),
           "count": np.array([len(x)], dtype=np.int64)}
    qs = np.quantile(x, QUANTILES, axis=0)
    out.update({k: q for k, q in zip(QUANTILE_KEYS, qs)})
    return out


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stats of the union of episodes, as ``lerobot.datasets.compute_stats.aggregate_feature_stats``:
    exact min/max/mean/std/count (parallel variance); quantiles as an envelope (min of the lower,
    max of the upper quantiles), since exact ones cannot be recovered from summaries."""
    means = np.stack([s["mean"] for s in per_episode])
    var = np.stack([s["std"] ** 2 for s in per_episode])
    counts = np.stack([s["count"] for s in per_episode]).astype(np.float64)
    total = counts.sum(0)
    mean = (means * counts).sum(0) / total
    variance = ((var + (means - mean) ** 2) * counts).sum(0) / total
    out = {"min": np.min([s["min"] for s in per_episode], 0), "max": np.max([s["max"] for s in per_episode], 0),
           "mean": mean, "std": np.sqrt(variance), "count": total.astype(np.int64)}
    for key in QUANTILE_KEYS:
        vals = np.stack([s[key] for s in per_episode])
        out[key] = vals.min(0) if int(key[1:]) <= 50 else vals.max(0)
    return out


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


def stats_from_json(data: dict) -> dict[str, dict[str, np.ndarray]]:
    return {f: {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in s.items()} for f, s in data.items()}
