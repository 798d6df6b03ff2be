"""ros2_control driver: caller order -> controller order, both controller interfaces, name checks."""

import numpy as np
import pytest

from _nodes_helpers import Recorder

SPEC = ["a", "b", "c"]


def test_forward_and_trajectory_messages_follow_the_controller_order(graph):
    from robot_rl.hardware.ros2_control import DriverError, Ros2ControlDriver
    from robot_rl.transport import msgs

    fwd = Ros2ControlDriver(graph.node, SPEC, controller="arm", controller_joints=["c", "a", "b"])
    assert fwd.resolved_topic == "/arm/commands"
    np.testing.assert_array_equal(fwd.message([1.0, 2.0, 3.0]).data, [3.0, 1.0, 2.0])
    traj = Ros2ControlDriver(graph.node, SPEC, controller="jtc", interface="trajectory", time_from_start=0.25)
    m = traj.message([1.0, 2.0, 3.0])
    assert traj.resolved_topic == "/jtc/joint_trajectory" and list(m.joint_names) == SPEC
    assert m.points[0].time_from_start == msgs.Duration(sec=0, nanosec=250_000_000)
    for bad in ([1.0, 2.0], [1.0, np.nan, 3.0]):
        with pytest.raises(DriverError):
            fwd.message(bad)
    with pytest.raises(DriverError, match="differ"):
        Ros2ControlDriver(graph.node, SPEC, controller_joints=["a", "b", "x"])
    with pytest.raises(DriverError, match="does not report joints \\['b'\\]"):
        fwd.check_joint_names(["a", "c", "gripper"])
    fwd.check_joint_names(["c", "b", "a", "gripper"])

    rec = Recorder(graph.node, msgs.Float64MultiArray, "/arm/commands")
    graph.node.start()
    assert fwd._pub.wait_for_subscribers(1, 5)
    fwd.write([1.0, 2.0, 3.0])
    got = rec.wait_for(lambda m: True, 5, "the command")
    np.testing.assert_array_equal(got.data, [3.0, 1.0, 2.0])
