"""Export one recorded episode as an MCAP log of ROS 2 messages (profile "ros2", CDR encoding).

```
export_episode_mcap("data/demos", episode=3, out="ep3.mcap")
ros2 bag play ep3.mcap     # or: rosbags.highlevel.AnyReader, Foxglove, PlotJuggler
```

Topics, stamped `start_ns + frame_index / fps`:

* `/joint_states` (`sensor_msgs/msg/JointState`): positions from the `observation.joint_pos`
  feature, named with its `names` (the robot's joints), when the dataset has it;
* `/<feature with "." as "/">` (`std_msgs/msg/Float64MultiArray`) for every recorded vector
  feature: `/observation/state`, `/action`, `/observation/joint_pos`... with one layout dimension
  labelled by the feature name.

`write_ros2_mcap` is the one MCAP writer: this export and the recorder node (one log per recorded
episode of the messages it received) both use it. Messages are the project's ROS 2 classes (`robot_rl.transport.msgs`) serialized by its CDR codec;
the schemas are `.msg` definitions generated from the same classes, with their dependencies in the
`ros2msg` concatenated form that rosbag2's MCAP plugin writes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from mcap.writer import Writer

from robot_rl.datasets import format as F
from robot_rl.datasets.format import DatasetError
from robot_rl.datasets.reader import load_dataset
from robot_rl.transport.cdr import field_specs
from robot_rl.transport.msgs import (Float64MultiArray, Header, JointState, MultiArrayDimension, MultiArrayLayout,
                                     Time)

_SEPARATOR = "=" * 80


def _short(ros_type: str) -> str:
    pkg, _, name = ros_type.split("/")
    return f"{pkg}/{name}"


def _type_text(spec, deps: list) -> str:
    if spec.kind == "prim":
        return spec.name
    if spec.kind == "string":
        return f"string<={spec.bound}" if spec.bound else "string"
    if spec.kind == "struct":
        deps.append(spec.cls)
        return _short(spec.cls.__ros_type__)
    inner = _type_text(spec.elem, deps)
    if spec.kind == "array":
        return f"{inner}[{spec.bound}]"
    return f"{inner}[<={spec.bound}]" if spec.bound else f"{inner}[]"


def msg_definition(cls: type) -> str:
    """The `ros2msg` schema text of a message class: its fields, then every nested type once."""
    out, seen, todo = [], set(), [cls]
    while todo:
        c = todo.pop(0)
        if c in seen:
            continue
        seen.add(c)
        deps: list = []
        body = "\n".join(f"{_type_text(spec, deps)} {name}" for name, spec in field_specs(c))
        out.append(body if c is cls else f"{_SEPARATOR}\nMSG: {_short(c.__ros_type__)}\n{body}")
        todo.extend(deps)
    return "\n".join(out) + "\n"


def topic_of(feature: str) -> str:
    return "/" + feature.replace(".", "/")


def write_ros2_mcap(out: str | Path, messages: Iterable[tuple[str, type, bytes, int]]) -> Path:
    """Write ROS 2 messages to the MCAP file `out`, atomically (a temporary file beside it, fsynced,
    then renamed into place): `messages` are (topic, message class, CDR bytes, log time ns) in
    log-time order. Each topic gets a `cdr` channel whose `ros2msg` schema is generated from its
    class (one schema per type); every message keeps its per-channel sequence number."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=F.TMP_PREFIX, suffix=".mcap", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            w = Writer(f)
            w.start(profile="ros2", library="robot-rl")
            schemas: dict[type, int] = {}
            channels: dict[str, tuple[int, type]] = {}
            seq: dict[str, int] = {}
            for topic, cls, data, ns in messages:
                if topic not in channels:
                    if cls not in schemas:
                        schemas[cls] = w.register_schema(name=cls.__ros_type__, encoding="ros2msg",
                                                         data=msg_definition(cls).encode())
                    channels[topic] = (w.register_channel(topic=topic, message_encoding="cdr",
                                                          schema_id=schemas[cls]), cls)
                    seq[topic] = 0
                elif channels[topic][1] is not cls:
                    raise DatasetError(f"MCAP topic {topic} carries {channels[topic][1].__ros_type__} and "
                                       f"{cls.__ros_type__}; one topic has one message type")
                w.add_message(channels[topic][0], log_time=int(ns), publish_time=int(ns), data=data,
                              sequence=seq[topic])
                seq[topic] += 1
            w.finish()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    F._fsync_dir(out.parent)
    return out


def export_episode_mcap(root: str | Path, episode: int, out: str | Path, start_ns: int = 0) -> Path:
    """Write episode `episode` of the dataset at `root` to the MCAP file `out` (atomically)."""
    ds = load_dataset(root)
    if not 0 <= episode < ds.num_episodes:
        raise DatasetError(f"episode {episode} does not exist: {ds.root} has {ds.num_episodes} episodes (0..{ds.num_episodes - 1})")
    ep = ds.episode(episode)
    fps = ds.info["fps"]
    vectors = [k for k, ft in ds.features.items() if k not in F.DEFAULT_FEATURES and ft["dtype"] != "string"]
    stamps = [start_ns + round(int(i) * 1e9 / fps) for i in ep["frame_index"]]
    names = ds.features.get("observation.joint_pos", {}).get("names")

    def messages():
        for t, ns in enumerate(stamps):
            if names:
                msg = JointState(header=Header(stamp=Time.from_ns(ns)), name=list(names),
                                 position=np.asarray(ep["observation.joint_pos"][t], dtype=np.float64))
                yield "/joint_states", JointState, msg.serialize(), ns
            for k in vectors:
                data = np.asarray(ep[k][t], dtype=np.float64).reshape(-1)
                msg = Float64MultiArray(layout=MultiArrayLayout(dim=[MultiArrayDimension(k, len(data), len(data))]),
                                        data=data)
                yield topic_of(k), Float64MultiArray, msg.serialize(), ns

    return write_ros2_mcap(out, messages())
