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

Messages are the project's ROS 2 classes (`robot_rl.transport.msgs`) serialized by its CDR codec;
the schemas are `.msg` definitions generated from the same classes, with their dependencies in the
`ros2msg` concatenated form that rosbag2's MCAP plugin writes.
"""

from __future__ import annotations

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


def export_episode_mcap(root: str | Path, episode: int, out: str | Path, start_ns: int = 0) -> Path:
    """Write episode `episode` of the dataset at `root` to the MCAP file `out` (atomically)."""
    ds = load_dataset(root)
    if not 0 <= episode < ds.num_episodes:
        raise DatasetError(f"episode {episode} does not exist: {ds.root} has {ds.num_episodes} episodes (0..{ds.num_episodes - 1})")
    ep = ds.episode(episode)
    fps = ds.info["fps"]
    vectors = [k for k, ft in ds.features.items() if k not in F.DEFAULT_FEATURES and ft["dtype"] != "string"]
    stamps = [start_ns + round(int(i) * 1e9 / fps) for i in ep["frame_index"]]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{F.TMP_PREFIX}{out.name}")
    with open(tmp, "wb") as f:
        w = Writer(f)
        w.start(profile="ros2", library="robot-rl")
        array_schema = w.register_schema(name="std_msgs/msg/Float64MultiArray", encoding="ros2msg",
                                          data=msg_definition(Float64MultiArray).encode())
        channels = {k: w.register_channel(topic=topic_of(k), message_encoding="cdr", schema_id=array_schema)
                    for k in vectors}
        joints = None
        names = ds.features.get("observation.joint_pos", {}).get("names")
        if names:
            js_schema = w.register_schema(name="sensor_msgs/msg/JointState", encoding="ros2msg",
                                          data=msg_definition(JointState).encode())
            joints = w.register_channel(topic="/joint_states", message_encoding="cdr", schema_id=js_schema)
        for t, ns in enumerate(stamps):
            if joints is not None:
                msg = JointState(header=Header(stamp=Time.from_ns(ns)), name=list(names),
                                 position=np.asarray(ep["observation.joint_pos"][t], dtype=np.float64))
                w.add_message(joints, log_time=ns, publish_time=ns, data=msg.serialize(), sequence=t)
            for k, ch in channels.items():
                data = np.asarray(ep[k][t], dtype=np.float64).reshape(-1)
                msg = Float64MultiArray(layout=MultiArrayLayout(dim=[MultiArrayDimension(k, len(data), len(data))]),
                                        data=data)
                w.add_message(ch, log_time=ns, publish_time=ns, data=msg.serialize(), sequence=t)
        w.finish()
    tmp.replace(out)
    return out
