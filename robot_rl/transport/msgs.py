"""ROS 2 message types as plain Python dataclasses that both backends understand.

Every class is a ``cyclonedds.idl.IdlStruct`` named the way ROS 2 names its DDS types
(``sensor_msgs/msg/JointState`` -> ``sensor_msgs::msg::dds_::JointState_``), with fields in
``.msg`` order, so a Cyclone DDS reader/writer created for it speaks the ROS 2 wire format.
Serialization is XCDR1 little-endian with the 4-byte encapsulation header, byte-for-byte what
rmw_fastrtps / rmw_cyclonedds put on the wire (checked against ``rosbags`` in the tests); it is
done by the compiled codec in :mod:`robot_rl.transport.cdr`.

Field value conventions (see :mod:`robot_rl.transport.cdr`): numeric sequences accept lists,
tuples or numpy arrays and come back from the wire as numpy arrays; ``uint8`` arrays are
``bytes``; nested messages are instances of the classes below.

Each class carries its ROS name and DDS name::

    JointState.__ros_type__   == "sensor_msgs/msg/JointState"
    JointState.__idl_typename__ == "sensor_msgs::msg::dds_::JointState_"
    data = msg.serialize(); JointState.deserialize(data) == msg
"""



import time
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Sequence

import numpy as np
from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from .cdr import CdrError, compile_codec

__all__ = [
    "Message", "CdrError", "MESSAGE_TYPES", "get_message_type", "ros_type_name", "dds_type_name",
    "Time", "Duration", "Header", "MultiArrayDimension", "MultiArrayLayout", "Float64MultiArray",
    "Bool", "String", "JointState", "JointTrajectoryPoint", "JointTrajectory", "Vector3", "Point",
    "Quaternion", "Pose", "PoseStamped", "Twist", "Gid", "NodeEntitiesInfo",
    "ParticipantEntitiesInfo", "joint_state_to_numpy", "joint_state_from_numpy",
    "float64_multi_array",
]


def _f64() -> np.ndarray:
    return np.zeros(0, dtype=np.float64)


def _values_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            a_arr, b_arr = np.asarray(a), np.asarray(b)
        except Exception:  # noqa: BLE001 - ragged or odd input is simply "not equal"
            return False
        return a_arr.shape == b_arr.shape and bool(np.array_equal(a_arr, b_arr))
    if isinstance(a, (bytes, bytearray)) or isinstance(b, (bytes, bytearray)):
        try:
            return bytes(a) == bytes(b)
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


class Message(IdlStruct):
    """Base class of all ROS 2 message types here.

    Adds to ``IdlStruct``: the fast XCDR1 codec (``serialize``/``deserialize``), equality that
    understands numpy arrays, and the ROS type name (``__ros_type__``).
    """

    __ros_type__ = ""

    def serialize(self, buffer=None, endianness=None, use_version_2=None) -> bytes:  # noqa: D401
        """CDR bytes of this message, 4-byte encapsulation header included (XCDR1, little-endian).

        The signature matches ``IdlStruct.serialize`` because Cyclone's DataWriter calls it; only
        XCDR1 little-endian is produced (ROS 2's format), anything else is an error.
        """
        if use_version_2:
            raise CdrError(f"{type(self).__name__}: ROS 2 uses XCDR1; XCDR2 serialization was requested")
        if endianness is not None and getattr(endianness, "name", "Little") != "Little":
            raise CdrError(f"{type(self).__name__}: only little-endian serialization is supported")
        return compile_codec(type(self)).encode(self)

    @classmethod
    def deserialize(cls, data, has_header: bool = True, use_version_2=None, **kwargs):
        """Build a message from CDR bytes (with the encapsulation header unless has_header=False).

        Plain CDR (XCDR1, either endianness) goes through the fast codec; XCDR2 data falls back to
        Cyclone's generic deserializer (numeric sequences then come back as lists).
        """
        codec = compile_codec(cls)
        if not has_header:
            if use_version_2:
                return super().deserialize(data, has_header=False, use_version_2=True, **kwargs)
            return codec.decode_payload(memoryview(data))
        if len(data) >= 2 and data[0] == 0 and data[1] in (0, 1):
            return codec.decode(data)
        if len(data) < 2 or data[0] != 0 or data[1] not in (6, 7):  # 6/7: PLAIN_CDR2 BE/LE
            raise CdrError(f"cannot deserialize {cls.__name__}: unsupported encapsulation "
                           f"{bytes(data[:2]).hex()} (expected plain CDR 0000/0001 or XCDR2 0006/0007)")
        try:
            return super().deserialize(data, has_header=True, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise CdrError(f"cannot deserialize {cls.__name__}: {e}") from e

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_values_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None  # mutable


def _message(cls):
    """Class decorator: dataclass + ROS type name derived from the DDS type name."""
    cls = dataclass(eq=False)(cls)
    parts = cls.__idl_typename__.split("::")
    if len(parts) != 4 or parts[2] != "dds_" or not parts[3].endswith("_"):
        raise TypeError(f"{cls.__idl_typename__!r} is not a ROS 2 DDS type name (pkg::msg::dds_::Name_)")
    cls.__ros_type__ = f"{parts[0]}/{parts[1]}/{parts[3][:-1]}"
    MESSAGE_TYPES[cls.__ros_type__] = cls
    return cls


MESSAGE_TYPES: dict[str, type] = {}
"""ROS type name (``pkg/msg/Name``) -> message class, for every type defined here."""


def get_message_type(name: str) -> type:
    """Message class for ``pkg/msg/Name`` (``pkg/Name`` is accepted too)."""
    parts = name.strip("/").split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    key = "/".join(parts)
    try:
        return MESSAGE_TYPES[key]
    except KeyError:
        raise KeyError(f"unknown message type {name!r}; known: {sorted(MESSAGE_TYPES)}") from None


def ros_type_name(msg_type: type) -> str:
    """``pkg/msg/Name`` of a message class."""
    name = getattr(msg_type, "__ros_type__", "")
    if not name:
        raise TypeError(f"{msg_type!r} is not a ROS 2 message class from robot_rl.transport.msgs")
    return name


def dds_type_name(msg_type: type) -> str:
    """``pkg::msg::dds_::Name_`` of a message class."""
    ros_type_name(msg_type)
    return msg_type.__idl_typename__


# ---------------------------------------------------------------------------------------------
# builtin_interfaces


@_message
class Time(Message, typename="builtin_interfaces::msg::dds_::Time_"):
    """builtin_interfaces/msg/Time: seconds and nanoseconds since the epoch."""

    sec: t.int32 = 0
    nanosec: t.uint32 = 0

    @classmethod
    def from_ns(cls, ns: int) -> "Time":
        sec, nanosec = divmod(int(ns), 1_000_000_000)
        return cls(sec, nanosec)

    @classmethod
    def from_sec(cls, seconds: float) -> "Time":
        return cls.from_ns(round(seconds * 1e9))

    @classmethod
    def now(cls) -> "Time":
        """Wall-clock (system) time, like ``node.get_clock().now()`` with ROS time off."""
        return cls.from_ns(time.time_ns())

    def to_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec

    def to_sec(self) -> float:
        return self.sec + self.nanosec * 1e-9


@_message
class Duration(Message, typename="builtin_interfaces::msg::dds_::Duration_"):
    """builtin_interfaces/msg/Duration."""

    sec: t.int32 = 0
    nanosec: t.uint32 = 0

    @classmethod
    def from_ns(cls, ns: int) -> "Duration":
        sec, nanosec = divmod(int(ns), 1_000_000_000)
        return cls(sec, nanosec)

    @classmethod
    def from_sec(cls, seconds: float) -> "Duration":
        return cls.from_ns(round(seconds * 1e9))

    def to_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec

    def to_sec(self) -> float:
        return self.sec + self.nanosec * 1e-9


# ---------------------------------------------------------------------------------------------
# std_msgs


@_message
class Header(Message, typename="std_msgs::msg::dds_::Header_"):
    """std_msgs/msg/Header."""

    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@_message
class MultiArrayDimension(Message, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    """std_msgs/msg/MultiArrayDimension."""

    label: str = ""
    size: t.uint32 = 0
    stride: t.uint32 = 0


@_message
class MultiArrayLayout(Message, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    """std_msgs/msg/MultiArrayLayout."""

    dim: t.sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: t.uint32 = 0


@_message
class Float64MultiArray(Message, typename="std_msgs::msg::dds_::Float64MultiArray_"):
    """std_msgs/msg/Float64MultiArray (ros2_control forward command controllers' input)."""

    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: t.sequence[t.float64] = field(default_factory=_f64)


@_message
class Bool(Message, typename="std_msgs::msg::dds_::Bool_"):
    """std_msgs/msg/Bool."""

    data: bool = False


@_message
class String(Message, typename="std_msgs::msg::dds_::String_"):
    """std_msgs/msg/String."""

    data: str = ""


# ---------------------------------------------------------------------------------------------
# sensor_msgs / trajectory_msgs


@_message
class JointState(Message, typename="sensor_msgs::msg::dds_::JointState_"):
    """sensor_msgs/msg/JointState. Empty velocity/effort mean "not reported" (ROS convention)."""

    header: Header = field(default_factory=Header)
    name: t.sequence[str] = field(default_factory=list)
    position: t.sequence[t.float64] = field(default_factory=_f64)
    velocity: t.sequence[t.float64] = field(default_factory=_f64)
    effort: t.sequence[t.float64] = field(default_factory=_f64)

    def to_numpy(self, names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :func:`joint_state_to_numpy`."""
        return joint_state_to_numpy(self, names)

    @classmethod
    def from_numpy(cls, names: Sequence[str], position: Any, velocity: Any = None, effort: Any = None,
                   stamp: Time | None = None, frame_id: str = "") -> "JointState":
        """See :func:`joint_state_from_numpy`."""
        return joint_state_from_numpy(names, position, velocity, effort, stamp, frame_id)


@_message
class JointTrajectoryPoint(Message, typename="trajectory_msgs::msg::dds_::JointTrajectoryPoint_"):
    """trajectory_msgs/msg/JointTrajectoryPoint."""

    positions: t.sequence[t.float64] = field(default_factory=_f64)
    velocities: t.sequence[t.float64] = field(default_factory=_f64)
    accelerations: t.sequence[t.float64] = field(default_factory=_f64)
    effort: t.sequence[t.float64] = field(default_factory=_f64)
    time_from_start: Duration = field(default_factory=Duration)


@_message
class JointTrajectory(Message, typename="trajectory_msgs::msg::dds_::JointTrajectory_"):
    """trajectory_msgs/msg/JointTrajectory."""

    header: Header = field(default_factory=Header)
    joint_names: t.sequence[str] = field(default_factory=list)
    points: t.sequence[JointTrajectoryPoint] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# geometry_msgs


@_message
class Vector3(Message, typename="geometry_msgs::msg::dds_::Vector3_"):
    """geometry_msgs/msg/Vector3."""

    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0


@_message
class Point(Message, typename="geometry_msgs::msg::dds_::Point_"):
    """geometry_msgs/msg/Point."""

    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0


@_message
class Quaternion(Message, typename="geometry_msgs::msg::dds_::Quaternion_"):
    """geometry_msgs/msg/Quaternion (x, y, z, w); defaults to the identity like ROS 2."""

    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0
    w: t.float64 = 1.0


@_message
class Pose(Message, typename="geometry_msgs::msg::dds_::Pose_"):
    """geometry_msgs/msg/Pose."""

    position: Point = field(default_factory=Point)
    orientation: Quaternion = field(default_factory=Quaternion)


@_message
class PoseStamped(Message, typename="geometry_msgs::msg::dds_::PoseStamped_"):
    """geometry_msgs/msg/PoseStamped."""

    header: Header = field(default_factory=Header)
    pose: Pose = field(default_factory=Pose)


@_message
class Twist(Message, typename="geometry_msgs::msg::dds_::Twist_"):
    """geometry_msgs/msg/Twist."""

    linear: Vector3 = field(default_factory=Vector3)
    angular: Vector3 = field(default_factory=Vector3)


# ---------------------------------------------------------------------------------------------
# rmw_dds_common (ROS graph discovery, topic ``ros_discovery_info``)


@_message
class Gid(Message, typename="rmw_dds_common::msg::dds_::Gid_"):
    """rmw_dds_common/msg/Gid: a DDS GUID (16 bytes since Iron)."""

    data: t.array[t.uint8, 16] = field(default_factory=lambda: bytes(16))


@_message
class NodeEntitiesInfo(Message, typename="rmw_dds_common::msg::dds_::NodeEntitiesInfo_"):
    """rmw_dds_common/msg/NodeEntitiesInfo: one node and the GIDs of its readers and writers."""

    node_namespace: t.bounded_str[256] = ""
    node_name: t.bounded_str[256] = ""
    reader_gid_seq: t.sequence[Gid] = field(default_factory=list)
    writer_gid_seq: t.sequence[Gid] = field(default_factory=list)


@_message
class ParticipantEntitiesInfo(Message, typename="rmw_dds_common::msg::dds_::ParticipantEntitiesInfo_"):
    """rmw_dds_common/msg/ParticipantEntitiesInfo: the nodes living in one DDS participant."""

    gid: Gid = field(default_factory=Gid)
    node_entities_info_seq: t.sequence[NodeEntitiesInfo] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# numpy helpers


_JOINT_MAPS: dict[tuple, Any] = {}


def _joint_map(names: Sequence[str]):
    """A cached :class:`robot_rl.joint_map.JointMap` (extra joints ignored) for ``names``."""
    from robot_rl.joint_map import JointMap

    key = tuple(names)
    jm = _JOINT_MAPS.get(key)
    if jm is None:
        if len(_JOINT_MAPS) >= 32:
            _JOINT_MAPS.clear()
        jm = _JOINT_MAPS[key] = JointMap(key, what="JointState")
    return jm


def joint_state_to_numpy(msg: JointState, names: Sequence[str] | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, velocity, effort) of a JointState as float64 arrays.

    With ``names``, the arrays are reordered to that joint order by
    :class:`robot_rl.joint_map.JointMap` (joints the message has beyond ``names`` are ignored; a
    missing or duplicated joint raises :class:`robot_rl.joint_map.JointMapError`, which is a
    ``KeyError`` and a ``ValueError`` naming the joints). Fields the message leaves empty come back
    as arrays of NaN of the right length, so a consumer can tell "not reported" from zero.
    """
    pos = np.asarray(msg.position, dtype=np.float64)
    n = len(msg.name) if len(msg.name) else len(pos)
    out = []
    for arr in (pos, msg.velocity, msg.effort):
        arr = np.asarray(arr, dtype=np.float64)
        if arr.size == 0:
            arr = np.full(n, np.nan)
        elif arr.shape != (n,):
            raise ValueError(f"JointState has {n} names but a field of length {arr.size}")
        out.append(arr)
    if names is not None:
        idx = _joint_map(names).permutation(msg.name)
        out = [a[idx] for a in out]
    return out[0], out[1], out[2]


def joint_state_from_numpy(names: Iterable[str], position: Any, velocity: Any = None, effort: Any = None,
                           stamp: Time | None = None, frame_id: str = "") -> JointState:
    """A JointState from arrays (copied as float64); omitted velocity/effort stay empty."""
    names = list(names)

    def arr(value: Any, label: str) -> np.ndarray:
        if value is None:
            return _f64()
        a = np.array(value, dtype=np.float64).reshape(-1)
        if a.shape != (len(names),):
            raise ValueError(f"{label} has {a.size} values for {len(names)} joint names")
        return a

    return JointState(
        header=Header(stamp=stamp if stamp is not None else Time(), frame_id=frame_id),
        name=names, position=arr(position, "position"), velocity=arr(velocity, "velocity"),
        effort=arr(effort, "effort"),
    )


def float64_multi_array(data: Any) -> Float64MultiArray:
    """A Float64MultiArray with an empty layout (what ros2_control command topics expect)."""
    return Float64MultiArray(data=np.array(data, dtype=np.float64).reshape(-1))
