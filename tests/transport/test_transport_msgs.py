"""Serialization of robot_rl.transport.msgs against the independent `rosbags` serializer."""

import math

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from robot_rl.transport import msgs as M
from robot_rl.transport.cdr import CdrError, FieldSpec, field_specs

TS = get_typestore(Stores.ROS2_KILTED)

_DT = {"float64": np.float64, "float32": np.float32, "int32": np.int32, "uint32": np.uint32,
       "uint8": np.uint8, "int64": np.int64, "bool": np.bool_}


def to_rosbags(msg):
    """Convert one of our messages into the equivalent rosbags message object."""
    cls = TS.types[type(msg).__ros_type__]
    kwargs = {}
    for name, spec in field_specs(type(msg)):
        kwargs[name] = _conv(getattr(msg, name), spec)
    return cls(**kwargs)


def _conv(value, spec: FieldSpec):
    if spec.kind == "struct":
        return to_rosbags(value)
    if spec.kind in ("seq", "array"):
        e = spec.elem
        if e.kind == "prim":
            if isinstance(value, (bytes, bytearray)):
                return np.frombuffer(bytes(value), dtype=np.uint8)
            return np.asarray(value, dtype=_DT[e.name])
        return [_conv(v, e) for v in value]
    return value


def rosbags_bytes(msg) -> bytes:
    return bytes(TS.serialize_cdr(to_rosbags(msg), type(msg).__ros_type__))


def _hdr(sec=0, ns=0, frame=""):
    return M.Header(stamp=M.Time(sec, ns), frame_id=frame)


def _gid(i):
    return M.Gid(bytes((i + k) % 256 for k in range(16)))


SAMPLES = [
    M.Time(), M.Time(1_700_000_000, 999_999_999), M.Time(-5, 3),
    M.Duration(), M.Duration(12, 500),
    M.Header(), _hdr(1, 2, "base_link"), _hdr(3, 4, "é✓ utf8"),
    M.MultiArrayDimension(), M.MultiArrayDimension("rows", 3, 12),
    M.MultiArrayLayout(), M.MultiArrayLayout([M.MultiArrayDimension("a", 2, 6), M.MultiArrayDimension("bc", 3, 3)], 1),
    M.Float64MultiArray(), M.Float64MultiArray(data=[1.5]), M.Float64MultiArray(data=np.linspace(-1, 1, 7)),
    M.Float64MultiArray(M.MultiArrayLayout([M.MultiArrayDimension("x", 7, 7)], 0), np.arange(7.0)),
    M.Bool(), M.Bool(True),
    M.String(), M.String("a"), M.String("hello world"), M.String("ünïcødé"),
    M.JointState(),
    M.JointState(header=_hdr(5, 6, "w"), name=["j1"], position=[0.25]),
    M.JointState(header=_hdr(1, 1, "abc"), name=["a", "bb", "ccc"], position=np.array([1.0, 2.0, 3.0]),
                 velocity=[0.1, 0.2, 0.3], effort=np.array([-1.0, 0.0, 1e300])),
    M.JointState(name=["a", "b"], position=[], velocity=[1.0, 2.0], effort=[]),
    M.JointState(name=[], position=[1.0], velocity=[], effort=[3.0]),
    M.JointState(header=_hdr(0, 0, "xyz"), name=[f"joint_{i}" for i in range(12)],
                 position=np.arange(12.0), velocity=np.ones(12), effort=np.zeros(12)),
    M.JointTrajectoryPoint(),
    M.JointTrajectoryPoint(positions=[1.0, 2.0], velocities=[], accelerations=[0.5], effort=[],
                           time_from_start=M.Duration(1, 5)),
    M.JointTrajectory(),
    M.JointTrajectory(header=_hdr(9, 9, "f"), joint_names=["a", "b"],
                      points=[M.JointTrajectoryPoint(positions=[1.0, 2.0], time_from_start=M.Duration(0, 10)),
                              M.JointTrajectoryPoint(positions=[3.0, 4.0], velocities=[0.0, 0.1],
                                                     time_from_start=M.Duration(1, 0))]),
    M.JointTrajectory(joint_names=["x"], points=[M.JointTrajectoryPoint()]),
    M.Vector3(), M.Vector3(1.0, -2.0, 3.5),
    M.Point(), M.Point(0.1, 0.2, 0.3),
    M.Quaternion(), M.Quaternion(0.0, 0.7071, 0.0, 0.7071),
    M.Pose(), M.Pose(M.Point(1, 2, 3), M.Quaternion(0, 0, 1, 0)),
    M.PoseStamped(), M.PoseStamped(_hdr(7, 8, "map"), M.Pose(M.Point(-1, 0, 2))),
    M.Twist(), M.Twist(M.Vector3(1, 0, 0), M.Vector3(0, 0, -0.5)),
    M.Gid(), _gid(1),
    M.NodeEntitiesInfo(), M.NodeEntitiesInfo("/ns", "talker", [_gid(2)], [_gid(3), _gid(4)]),
    M.ParticipantEntitiesInfo(),
    M.ParticipantEntitiesInfo(_gid(5), [M.NodeEntitiesInfo("/", "a", [], [_gid(6)]),
                                        M.NodeEntitiesInfo("/x/y", "b", [_gid(7)], [])]),
]

ALL_TYPES = [M.Time, M.Duration, M.Header, M.MultiArrayDimension, M.MultiArrayLayout, M.Float64MultiArray,
             M.Bool, M.String, M.JointState, M.JointTrajectoryPoint, M.JointTrajectory, M.Vector3, M.Point,
             M.Quaternion, M.Pose, M.PoseStamped, M.Twist, M.Gid, M.NodeEntitiesInfo, M.ParticipantEntitiesInfo]


def test_every_type_is_sampled_with_default_and_nondefault_values():
    for cls in ALL_TYPES:
        samples = [s for s in SAMPLES if type(s) is cls]
        assert len(samples) >= 2, cls
        assert any(s == cls() for s in samples), cls


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_bytes_equal_rosbags(msg):
    ours = msg.serialize()
    assert ours[:4] == b"\x00\x01\x00\x00"
    assert ours == rosbags_bytes(msg)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_roundtrip_and_decode_rosbags_bytes(msg):
    cls = type(msg)
    assert cls.deserialize(msg.serialize()) == msg
    assert cls.deserialize(rosbags_bytes(msg)) == msg


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_decode_big_endian_from_rosbags(msg):
    big = bytes(TS.serialize_cdr(to_rosbags(msg), type(msg).__ros_type__, little_endian=False))
    assert big[:2] == b"\x00\x00"
    assert type(msg).deserialize(big) == msg


def _listify(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_listify(v) for v in value]
    if isinstance(value, M.Message):
        return type(value)(**{k: _listify(getattr(value, k)) for k, _ in field_specs(type(value))})
    return value


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_bytes_equal_cyclone_generic_serializer(msg):
    """Our compiled codec agrees with cyclonedds' own XCDR1 serializer (lists instead of numpy)."""
    from cyclonedds.idl import IdlStruct

    plain = _listify(msg)
    assert IdlStruct.serialize(plain, use_version_2=False) == msg.serialize()


def test_type_names():
    assert M.JointState.__ros_type__ == "sensor_msgs/msg/JointState"
    assert M.JointState.__idl_typename__ == "sensor_msgs::msg::dds_::JointState_"
    assert M.dds_type_name(M.Float64MultiArray) == "std_msgs::msg::dds_::Float64MultiArray_"
    assert M.ros_type_name(M.ParticipantEntitiesInfo) == "rmw_dds_common/msg/ParticipantEntitiesInfo"
    assert M.get_message_type("sensor_msgs/JointState") is M.JointState
    for cls in ALL_TYPES:
        assert cls.__ros_type__ in TS.types, cls
        # same field names and order as the ROS definition
        assert [n for n, _ in field_specs(cls)] == [n for n, _ in TS.fielddefs[cls.__ros_type__][1]]
    with pytest.raises(KeyError, match="unknown message type"):
        M.get_message_type("foo_msgs/msg/Nope")


def test_decoded_sequences_are_numpy_and_writable():
    msg = M.JointState(name=["a", "b"], position=[1.0, 2.0])
    out = M.JointState.deserialize(msg.serialize())
    assert isinstance(out.position, np.ndarray) and out.position.dtype == np.float64
    out.position[0] = 5.0  # a writable copy, not a view of the received buffer
    assert out.velocity.shape == (0,)
    assert M.Gid.deserialize(M.Gid(bytes(range(16))).serialize()).data == bytes(range(16))


def test_bad_values_give_clear_errors():
    with pytest.raises(CdrError, match="position"):
        M.JointState(position=np.zeros((2, 2))).serialize()
    with pytest.raises(CdrError, match="JointState"):
        M.JointState(name=[1, 2]).serialize()
    with pytest.raises(CdrError, match="exactly 16"):
        M.Gid(b"short").serialize()
    with pytest.raises(CdrError, match="bound 256"):
        M.NodeEntitiesInfo(node_name="x" * 300).serialize()
    with pytest.raises(CdrError):
        M.Time(sec=2**40).serialize()
    good = M.JointState(name=["a"], position=[1.0]).serialize()
    with pytest.raises(CdrError, match="truncated"):
        M.JointState.deserialize(good[:-3])
    with pytest.raises(CdrError, match="truncated"):
        # a sequence length far larger than the data must not allocate or loop forever
        M.Float64MultiArray.deserialize(b"\x00\x01\x00\x00" + b"\x00" * 8 + b"\xff\xff\xff\x7f")
    with pytest.raises(CdrError, match="encapsulation"):
        M.Bool.deserialize(b"\x00\x0a\x00\x00\x01")


def test_numpy_helpers():
    msg = M.joint_state_from_numpy(["a", "b", "c"], np.array([1.0, 2.0, 3.0]), velocity=[0.1, 0.2, 0.3],
                                   stamp=M.Time(1, 2), frame_id="base")
    assert msg.header.stamp == M.Time(1, 2) and msg.effort.shape == (0,)
    pos, vel, eff = M.joint_state_to_numpy(M.JointState.deserialize(msg.serialize()))
    np.testing.assert_array_equal(pos, [1, 2, 3])
    np.testing.assert_array_equal(vel, [0.1, 0.2, 0.3])
    assert eff.shape == (3,) and np.isnan(eff).all()
    pos, vel, _ = msg.to_numpy(names=["c", "a"])
    np.testing.assert_array_equal(pos, [3.0, 1.0])
    np.testing.assert_array_equal(vel, [0.3, 0.1])
    with pytest.raises(KeyError, match="'z'"):
        msg.to_numpy(names=["z"])
    with pytest.raises(ValueError, match="3 joint names"):
        M.joint_state_from_numpy(["a", "b", "c"], [1.0, 2.0])
    cmd = M.float64_multi_array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(cmd.data, [1, 2, 3, 4])
    t = M.Time.from_sec(1.25)
    assert (t.sec, t.nanosec) == (1, 250_000_000) and math.isclose(t.to_sec(), 1.25)
    assert M.Time.from_ns(t.to_ns()) == t


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_decode_xcdr2_falls_back_to_cyclone(msg):
    """A peer sending XCDR2 (PLAIN_CDR2) is still understood, through cyclonedds' generic decoder."""
    from cyclonedds.idl import IdlStruct

    data = IdlStruct.serialize(_listify(msg), use_version_2=True, endianness=None)
    assert data[:2] in (b"\x00\x06", b"\x00\x07")
    assert type(msg).deserialize(data) == msg
    with pytest.raises(CdrError, match="XCDR1"):
        msg.serialize(use_version_2=True)
