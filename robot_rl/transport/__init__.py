"""ROS 2 publish/subscribe/timers for the deploy path, with two interchangeable backends.

    from robot_rl.transport import create_node, msgs

    node = create_node("policy", namespace="/arm", args=sys.argv[1:])   # backend="auto"
    cmd = node.create_publisher(msgs.Float64MultiArray, "forward_position_controller/commands")
    def on_state(msg: msgs.JointState):
        q, dq, _ = msg.to_numpy(names=JOINTS)
        cmd.publish(msgs.float64_multi_array(policy(q, dq)))
    node.create_subscription(msgs.JointState, "/joint_states", on_state, qos="sensor_data")
    node.create_timer(0.002, safety_check)        # 500 Hz, absolute deadlines
    node.spin()                                   # or node.start() for a background executor thread

Backends (``backend=``):

* ``"dds"``: :mod:`robot_rl.transport.dds`, pure Cyclone DDS speaking the ROS 2 wire format
  (``rt/<topic>``, ``pkg::msg::dds_::Name_``, XCDR1, ROS QoS, ``ROS_DOMAIN_ID``,
  ``ros_discovery_info``); needs no ROS installation and talks to real ROS 2 nodes.
* ``"rclpy"``: :mod:`robot_rl.transport.rclpy_backend`, real rclpy (install it into a separate
  environment with ``scripts/setup_ros.sh``).
* ``"auto"`` (default): the ``ROBOT_RL_TRANSPORT`` environment variable if set, else rclpy when it
  is importable, else dds.

Messages are the classes in :mod:`robot_rl.transport.msgs` for both backends. QoS: a
:class:`QoSProfile`, a preset (``"default"``, ``"sensor_data"``, ``"latched"``) or an int depth.
Command-line ROS arguments (``--ros-args -r from:=to -p name:=value -r __node:=x -r __ns:=/y``)
are parsed by :func:`parse_ros_args` and applied when passed as ``args=``; ``-p`` values are typed
by rcl's rules (:mod:`robot_rl.transport.param_values`). Graph introspection:
``node.get_node_names_and_namespaces()``, ``node.get_publishers_info_by_topic(topic)`` and
``node.get_subscriptions_info_by_topic(topic)`` (:class:`EndpointInfo`: node, namespace, type,
QoS, GID), on both backends; real ROS 2 tools name our DDS backend's nodes too.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Iterable, Sequence

from . import msgs
from .base import BARE_DDS_APP, EndpointInfo, Node, Publisher, Subscription, Timer, TransportError
from .names import NameError_, expand_topic_name, resolve_topic_name
from .qos import LATCHED, SENSOR_DATA, QoSProfile, resolve_qos
from .ros_args import RosArgs, RosArgsError, parse_ros_args

__all__ = [
    "create_node", "available_backends", "Node", "Publisher", "Subscription", "Timer", "TransportError",
    "EndpointInfo", "BARE_DDS_APP",
    "QoSProfile", "SENSOR_DATA", "LATCHED", "resolve_qos", "RosArgs", "RosArgsError", "parse_ros_args",
    "NameError_", "expand_topic_name", "resolve_topic_name", "msgs",
]

_BACKENDS = ("auto", "dds", "rclpy")


def _rclpy_importable() -> bool:
    try:
        return importlib.util.find_spec("rclpy") is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """Backends usable in this interpreter (``dds`` always; ``rclpy`` when importable)."""
    return ["dds"] + (["rclpy"] if _rclpy_importable() else [])


def create_node(name: str, namespace: str = "", *, backend: str = "auto", domain_id: int | None = None,
                args: Sequence[str] | RosArgs | None = None, remaps: Iterable | dict | None = None,
                parameters: dict[str, Any] | None = None) -> Node:
    """Create a ROS 2 node.

    Args:
        name: node name (``[A-Za-z_][A-Za-z0-9_]*``); ``__node:=`` in ``args`` overrides it.
        namespace: node namespace (``""`` = ``/``); ``__ns:=`` in ``args`` overrides it.
        backend: ``"auto"``, ``"dds"`` or ``"rclpy"`` (see the module docstring).
        domain_id: DDS domain; default ``ROS_DOMAIN_ID`` (or 0).
        args: an argv list possibly containing ``--ros-args ...`` (e.g. ``sys.argv[1:]``), or a
            parsed :class:`RosArgs`.
        remaps: extra remap rules (``{"from": "to"}`` or ``["from:=to"]``); they take precedence
            over those in ``args``.
        parameters: parameter overrides, applied on top of those in ``args``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend {backend!r} must be one of {_BACKENDS}")
    if backend == "auto":
        env = os.environ.get("ROBOT_RL_TRANSPORT", "").strip().lower()
        if env:
            if env not in ("dds", "rclpy"):
                raise ValueError(f"ROBOT_RL_TRANSPORT={env!r} must be 'dds' or 'rclpy'")
            backend = env
        else:
            backend = "rclpy" if _rclpy_importable() else "dds"
    if backend == "rclpy":
        if not _rclpy_importable():
            raise TransportError(
                "backend='rclpy' but rclpy is not importable in this interpreter; use backend='dds', or run "
                "in the ROS environment made by scripts/setup_ros.sh (.ros-venv/bin/python)")
        from .rclpy_backend import RclpyNode

        return RclpyNode(name, namespace, domain_id=domain_id, args=args, remaps=remaps, parameters=parameters)
    from .dds import DdsNode

    return DdsNode(name, namespace, domain_id=domain_id, args=args, remaps=remaps, parameters=parameters)
