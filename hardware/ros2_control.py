"""Driver for a ros2_control robot: joint position commands onto its command controller.

ros2_control exposes a robot through topics (see ``notes/ros2-wire.md``):

* ``/joint_states`` (``sensor_msgs/JointState``) from ``joint_state_broadcaster``;
* ``/<controller>/commands`` (``std_msgs/Float64MultiArray``, one value per configured joint in
  the *controller's* joint order) for ``forward_command_controller`` and its position variant;
* ``/<controller>/joint_trajectory`` (``trajectory_msgs/JointTrajectory``) for
  ``joint_trajectory_controller``.

:class:`Ros2ControlDriver` turns a position vector given in the caller's joint order (e.g. the
policy artifact's order) into the message the controller expects and publishes it; it also checks
the robot's ``/joint_states`` names against the joints it commands, so a launch file pointed at the
wrong robot fails with a clear message instead of driving the wrong joints. The robot twin
(:mod:`robot_rl.hardware.twin`) speaks the same topics, so the same driver drives both.

    driver = Ros2ControlDriver(node, joint_names=spec_joints,
                               controller="forward_position_controller",
                               interface="forward", controller_joints=None)
    driver.check_joint_names(first_joint_state.name)      # raises DriverError on mismatch
    driver.write(q)                                       # q in joint_names order

Driver contract (``hardware``): read state (``/joint_states``, subscribed by the caller), write
command (:meth:`write`), stop (:meth:`stop`: stop publishing; ros2_control controllers then hold
the last command, as a forward controller does).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from robot_rl.joint_map import JointMap, JointMapError

__all__ = ["DriverError", "Ros2ControlDriver", "INTERFACES"]

INTERFACES = ("forward", "trajectory")


class DriverError(RuntimeError):
    """The driver cannot command this robot (joint names disagree, bad configuration)."""


class Ros2ControlDriver:
    """Publishes joint position commands to a ros2_control controller.

    Args:
        node: a :class:`robot_rl.transport.Node` used to create the publisher.
        joint_names: the order of the vectors given to :meth:`write`.
        controller: controller name; the topic is ``/<controller>/commands`` (forward) or
            ``/<controller>/joint_trajectory`` (trajectory). A name starting with ``/`` or
            containing a namespace is used as given (relative names resolve in the node's
            namespace, as in ROS 2).
        interface: ``"forward"`` (Float64MultiArray) or ``"trajectory"`` (JointTrajectory).
        controller_joints: the controller's configured joint order (its ``joints`` parameter);
            default: ``joint_names``. Every name must be in ``joint_names`` and vice versa.
        time_from_start: for ``"trajectory"``: ``time_from_start`` of the single point (s). 0
            means "reach it now": the controller jumps its reference to the point, which is what a
            safety layer publishing at 1 kHz wants; use a few control periods for smoothing.
        qos: QoS of the command publisher (ros2_control subscribes with system defaults).
    """

    def __init__(self, node, joint_names: Sequence[str], controller: str = "forward_position_controller",
                 interface: str = "forward", controller_joints: Sequence[str] | None = None,
                 time_from_start: float = 0.0, qos="default"):
        from robot_rl.transport import msgs

        if interface not in INTERFACES:
            raise DriverError(f"interface {interface!r} must be one of {INTERFACES} "
                              "(forward: <controller>/commands, trajectory: <controller>/joint_trajectory)")
        names = [str(n) for n in joint_names]
        if not names or len(set(names)) != len(names):
            raise DriverError(f"joint_names must be distinct and non-empty, got {names}")
        ctrl = [str(n) for n in (controller_joints if controller_joints else names)]
        if len(set(ctrl)) != len(ctrl):
            raise DriverError(f"controller_joints has duplicates: {ctrl}")
        try:  # the commanded joints (names) -> the controller's joint order
            perm = JointMap(ctrl, extra="refuse", what="the commanded joints").permutation(names)
        except JointMapError as e:
            raise DriverError(
                f"controller joints {ctrl} and the commanded joints {names} differ "
                f"(missing in controller: {e.unknown}, unknown: {e.missing}); set controller_joints to the "
                "controller's 'joints' parameter") from None
        # the robot's joint_states must report every controller joint (extra joints, e.g. a gripper's, are fine)
        self._state_map = JointMap(ctrl, extra="ignore", what="the robot's joint_states")
        if not (math.isfinite(time_from_start) and time_from_start >= 0):
            raise DriverError(f"time_from_start must be >= 0 seconds, got {time_from_start}")
        self.msgs = msgs
        self.joint_names = names
        self.controller_joints = ctrl
        self.interface = interface
        self.time_from_start = float(time_from_start)
        self._perm = perm
        base = controller.rstrip("/")
        if interface == "forward":
            self.topic = f"{base}/commands"
            self._pub = node.create_publisher(msgs.Float64MultiArray, self.topic, qos)
        else:
            self.topic = f"{base}/joint_trajectory"
            self._pub = node.create_publisher(msgs.JointTrajectory, self.topic, qos)
        self._tfs = msgs.Duration(sec=int(self.time_from_start),
                                  nanosec=int(round((self.time_from_start % 1.0) * 1e9)) % 1_000_000_000)
        self.commands_sent = 0
        self._stopped = False

    @property
    def resolved_topic(self) -> str:
        return self._pub.topic

    def check_joint_names(self, state_names: Sequence[str]) -> None:
        """Raise :class:`DriverError` unless every commanded joint is in the robot's
        ``/joint_states`` names (extra joints there, e.g. a gripper, are fine)."""
        try:
            self._state_map.check(list(state_names))
        except JointMapError as e:
            what = (f"does not report joints {e.missing}" if e.reason == "missing_joint"
                    else f"names joints {e.duplicate} more than once")
            raise DriverError(
                f"the robot's joint_states {what} that the controller '{self.topic}' is configured for "
                f"(robot reports {list(state_names)}); check the controller_joints / robot parameters") from None

    def message(self, q) -> object:
        """The controller message for positions ``q`` (``joint_names`` order)."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.shape[0] != len(self.joint_names):
            raise DriverError(f"command has {q.shape[0]} values for {len(self.joint_names)} joints")
        if not np.isfinite(q).all():
            raise DriverError("refusing to send a non-finite joint command")
        ordered = q[self._perm]
        if self.interface == "forward":
            return self.msgs.float64_multi_array(ordered)
        point = self.msgs.JointTrajectoryPoint(positions=ordered, time_from_start=self._tfs)
        return self.msgs.JointTrajectory(joint_names=list(self.controller_joints), points=[point])

    def write(self, q) -> None:
        """Publish positions ``q`` (``joint_names`` order) to the controller."""
        if self._stopped:
            return
        self._pub.publish(self.message(q))
        self.commands_sent += 1

    def stop(self) -> None:
        """Stop publishing (the controller keeps its last command)."""
        self._stopped = True
