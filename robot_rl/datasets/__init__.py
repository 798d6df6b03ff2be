"""Demonstration datasets in the LeRobotDataset v3.0 layout (pyarrow, no `lerobot` needed) and
their export to ROS 2 MCAP logs. See `format.py` for the layout, `writer.py` for crash safety."""

from robot_rl.datasets.format import CODEBASE_VERSION, DatasetError
from robot_rl.datasets.reader import Expect, RecordedDataset, check_stats, load_dataset, load_training_arrays
from robot_rl.datasets.writer import DatasetWriter

__all__ = ["CODEBASE_VERSION", "DatasetError", "DatasetWriter", "Expect", "RecordedDataset", "check_stats",
           "load_dataset", "load_training_arrays"]
