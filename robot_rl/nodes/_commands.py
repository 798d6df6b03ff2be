"""Task commands as ROS messages, both ways: what the policy node reads and what a perception
system (or the twin, `robot_rl.hardware.twin_episodes`) publishes.

A command is declared by the task (`robot_rl.sim.task.Command`) and copied into the artifact's
spec (``spec["observation"]["commands"][name]``): ``dim``, ``topic``, ``msg`` (a message type,
e.g. ``geometry_msgs/PoseStamped``) and ``field`` (a dotted path into the message, e.g.
``pose.position``). A field holding an x/y/z struct (Point, Vector3) carries 3 values; any other
field a flat sequence of ``dim`` numbers (e.g. ``data`` of a ``std_msgs/Float64MultiArray``).
"""

from __future__ import annotations

import numpy as np

from robot_rl.nodes._common import NodeStartError


def _message_type(msgs, spec_cmd: dict):
    try:
        return msgs.get_message_type(spec_cmd["msg"])
    except KeyError as e:
        raise NodeStartError(f"command message type: {e}") from None


def _path(spec_cmd: dict) -> list[str]:
    return [p for p in spec_cmd.get("field", "").split(".") if p]


def _is_xyz(v) -> bool:
    return hasattr(v, "x") and hasattr(v, "y") and hasattr(v, "z")


def command_reader(msgs, spec_cmd: dict):
    """(message class, msg -> float64 array [dim]) for a command declared in the spec."""
    cls = _message_type(msgs, spec_cmd)
    path = _path(spec_cmd)
    dim = int(spec_cmd["dim"])

    def read(msg) -> np.ndarray:
        v = msg
        for p in path:
            v = getattr(v, p)
        if _is_xyz(v):
            v = [v.x, v.y, v.z]
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
        if arr.shape != (dim,):
            raise ValueError(f"has {arr.size} values, the policy needs {dim}")
        return arr

    return cls, read


def command_writer(msgs, spec_cmd: dict):
    """(message class, (value [dim], stamp, frame_id) -> msg) for a command declared in the spec:
    the inverse of :func:`command_reader` (a header, when the message has one, gets the stamp and
    frame; everything else keeps its default, e.g. a Pose's identity orientation)."""
    cls = _message_type(msgs, spec_cmd)
    path = _path(spec_cmd)
    dim = int(spec_cmd["dim"])
    if not path:
        raise NodeStartError(f"command on {spec_cmd.get('topic')!r} names no field of {spec_cmd['msg']}")

    def write(value, stamp=None, frame_id: str = "world"):
        v = np.asarray(value, dtype=np.float64).reshape(-1)
        if v.shape != (dim,):
            raise ValueError(f"command value has {v.size} values, the command needs {dim}")
        msg = cls()
        if stamp is not None and hasattr(msg, "header"):
            msg.header = msgs.Header(stamp=stamp, frame_id=frame_id)
        parent = msg
        for p in path[:-1]:
            parent = getattr(parent, p)
        leaf = getattr(parent, path[-1])
        if _is_xyz(leaf):
            if dim != 3:
                raise ValueError(f"field {'.'.join(path)} holds x, y, z; the command has {dim} values")
            leaf.x, leaf.y, leaf.z = (float(x) for x in v)
        else:
            setattr(parent, path[-1], [float(x) for x in v])
        return msg

    return cls, write
