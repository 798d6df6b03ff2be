"""rclpy backend: the same API as :mod:`robot_rl.transport.dds`, on real ROS 2 (rclpy).

Messages stay the classes of :mod:`robot_rl.transport.msgs` on both sides of the API: they are
published as serialized CDR bytes (``Publisher.publish(bytes)``) and received with ``raw=True``
subscriptions, so no per-field conversion happens and the bytes are exactly those of the DDS
backend. Native rclpy message classes (``sensor_msgs.msg.JointState``) are accepted too; they are
then passed through untouched.

Names are resolved (expanded and remapped) by :class:`robot_rl.transport.base.Node` exactly as in
the DDS backend and handed to rclpy fully qualified; the rclpy node is created without global
command-line arguments so nothing is remapped twice. One rclpy ``Context`` per domain id is shared
by the nodes of the process. Real rclpy cannot live in the project's main environment (its wheels
re-execute the interpreter): create a separate one with ``scripts/setup_ros.sh``.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Callable, Iterable, Sequence

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node as _RclpyNode
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile as _RclpyQoS, ReliabilityPolicy

from .base import EndpointInfo, Node, Publisher, Subscription, Timer, TransportError
from .msgs import Message, Time
from .qos import QoSLike, QoSProfile, resolve_qos
from .ros_args import RosArgs

__all__ = ["RclpyNode", "ros_message_class"]


def ros_message_class(msg_type: type) -> type:
    """The rclpy (rosidl) class for one of our message classes, e.g. ``sensor_msgs.msg.JointState``."""
    pkg, sub, name = msg_type.__ros_type__.split("/")
    try:
        module = importlib.import_module(f"{pkg}.{sub}")
        return getattr(module, name)
    except (ImportError, AttributeError):
        raise TransportError(
            f"rclpy has no Python type for {msg_type.__ros_type__}: install the ROS package {pkg} "
            f"(pip install ros-{pkg.replace('_', '-')} in the ROS environment)") from None


def _is_ours(msg_type: Any) -> bool:
    return isinstance(msg_type, type) and issubclass(msg_type, Message) and bool(msg_type.__ros_type__)


def _rclpy_qos(profile: QoSProfile) -> _RclpyQoS:
    return _RclpyQoS(
        history=HistoryPolicy.KEEP_LAST if profile.history == "keep_last" else HistoryPolicy.KEEP_ALL,
        depth=profile.depth,
        reliability=(ReliabilityPolicy.RELIABLE if profile.reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if profile.durability == "transient_local"
                    else DurabilityPolicy.VOLATILE),
    )


# one rclpy context per domain id, reference counted by nodes
_CONTEXTS: dict[Any, tuple[Any, int]] = {}
_CONTEXTS_LOCK = threading.Lock()


def _acquire_context(domain_id: int | None):
    with _CONTEXTS_LOCK:
        entry = _CONTEXTS.get(domain_id)
        if entry is None:
            ctx = rclpy.Context()
            rclpy.init(args=[], context=ctx, domain_id=domain_id)
            entry = (ctx, 0)
        ctx, count = entry
        _CONTEXTS[domain_id] = (ctx, count + 1)
        return ctx


def _release_context(domain_id: int | None) -> None:
    with _CONTEXTS_LOCK:
        ctx, count = _CONTEXTS[domain_id]
        if count <= 1:
            del _CONTEXTS[domain_id]
            try:
                rclpy.shutdown(context=ctx)
            except Exception:  # noqa: BLE001 - already shut down (e.g. by a signal)
                pass
        else:
            _CONTEXTS[domain_id] = (ctx, count - 1)


class RclpyPublisher(Publisher):
    def __init__(self, node: "RclpyNode", msg_type: type, topic: str, qos: QoSProfile) -> None:
        self.node, self.msg_type, self.topic, self.qos = node, msg_type, topic, qos
        self._ours = _is_ours(msg_type)
        ros_cls = ros_message_class(msg_type) if self._ours else msg_type
        self._pub = node._node.create_publisher(ros_cls, topic, _rclpy_qos(qos))
        self._destroyed = False

    def publish(self, msg: Any) -> None:
        if type(msg) is not self.msg_type:
            name = getattr(self.msg_type, "__ros_type__", self.msg_type.__name__)
            raise TypeError(f"publisher on {self.topic} sends {name}, got {type(msg).__name__}")
        if self._destroyed:
            raise TransportError(f"publisher on {self.topic} has been destroyed")
        self._pub.publish(msg.serialize() if self._ours else msg)

    def get_subscription_count(self) -> int:
        return self._pub.get_subscription_count()

    def destroy(self) -> None:
        if not self._destroyed:
            self._destroyed = True
            self.node._node.destroy_publisher(self._pub)


class RclpySubscription(Subscription):
    def __init__(self, node: "RclpyNode", msg_type: type, topic: str, callback: Callable[[Any], None],
                 qos: QoSProfile) -> None:
        self.node, self.msg_type, self.topic, self.callback, self.qos = node, msg_type, topic, callback, qos
        ours = _is_ours(msg_type)
        ros_cls = ros_message_class(msg_type) if ours else msg_type
        if ours:
            decode = msg_type.deserialize

            def on_raw(data: bytes) -> None:
                node._did_work = True
                callback(decode(data))

            self._sub = node._node.create_subscription(ros_cls, topic, on_raw, _rclpy_qos(qos), raw=True)
        else:
            def on_msg(msg: Any) -> None:
                node._did_work = True
                callback(msg)

            self._sub = node._node.create_subscription(ros_cls, topic, on_msg, _rclpy_qos(qos))
        self._destroyed = False

    def get_publisher_count(self) -> int:
        return self.node._node.count_publishers(self.topic)

    def destroy(self) -> None:
        if not self._destroyed:
            self._destroyed = True
            self.node._node.destroy_subscription(self._sub)


class RclpyTimer(Timer):
    def __init__(self, node: "RclpyNode", period_s: float, callback: Callable[[], None]) -> None:
        if not (isinstance(period_s, (int, float)) and period_s > 0 and period_s != float("inf")):
            raise ValueError(f"timer period must be a positive number of seconds, got {period_s!r}")
        self.node, self.period_s, self.callback = node, float(period_s), callback
        self.missed = 0
        self.call_count = 0

        def fire() -> None:
            node._did_work = True
            self.call_count += 1
            callback()

        self._timer = node._node.create_timer(self.period_s, fire)

    def cancel(self) -> None:
        self._timer.cancel()

    def reset(self) -> None:
        self._timer.reset()

    def is_canceled(self) -> bool:
        return self._timer.is_canceled()

    def time_until_next_call(self) -> float | None:
        ns = self._timer.time_until_next_call()
        return None if ns is None else ns * 1e-9

    def destroy(self) -> None:
        self._timer.cancel()
        self.node._node.destroy_timer(self._timer)


class RclpyNode(Node):
    """ROS 2 node on rclpy with the :class:`robot_rl.transport.base.Node` API."""

    backend = "rclpy"

    def __init__(self, name: str, namespace: str = "", *, domain_id: int | None = None,
                 args: Sequence[str] | RosArgs | None = None, remaps: Iterable | dict | None = None,
                 parameters: dict[str, Any] | None = None) -> None:
        super().__init__(name, namespace, args=args, remaps=remaps, parameters=parameters)
        self.domain_id = domain_id
        self._ctx = _acquire_context(domain_id)
        try:
            overrides = [Parameter(k, value=v) for k, v in self._param_overrides.items()]
            self._node = _RclpyNode(self.name, namespace=self.namespace, context=self._ctx,
                                    use_global_arguments=False, parameter_overrides=overrides,
                                    start_parameter_services=False, enable_rosout=False)
            self._executor = SingleThreadedExecutor(context=self._ctx)
            self._executor.add_node(self._node)
            self._wake_gc = self._node.create_guard_condition(lambda: None)
        except Exception:
            _release_context(domain_id)
            raise
        self._did_work = False

    # parameters go through rclpy so they are typed and checked like in any ROS node
    def declare_parameter(self, name: str, default: Any = None) -> Any:
        if not self._node.has_parameter(name):
            if default is None and name in self._param_overrides:
                self._node.declare_parameter(name, self._param_overrides[name])
            else:
                self._node.declare_parameter(name, default)
        value = self._node.get_parameter(name).value
        self._parameters[name] = value
        return value

    def get_parameter(self, name: str, default: Any = None) -> Any:
        if self._node.has_parameter(name):
            return self._node.get_parameter(name).value
        return super().get_parameter(name, default)

    def create_publisher(self, msg_type: type, topic: str, qos: QoSLike = "default") -> RclpyPublisher:
        self._check_alive()
        return RclpyPublisher(self, msg_type, self.resolve_topic_name(topic), resolve_qos(qos))

    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoSLike = "default") -> RclpySubscription:
        self._check_alive()
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        sub = RclpySubscription(self, msg_type, self.resolve_topic_name(topic), callback, resolve_qos(qos))
        self._wake()
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> RclpyTimer:
        self._check_alive()
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        timer = RclpyTimer(self, period_s, callback)
        self._wake()
        return timer

    def now(self) -> Time:
        return Time.from_ns(self._node.get_clock().now().nanoseconds)

    def get_node_names_and_namespaces(self) -> list[tuple[str, str]]:
        self._check_alive()
        return sorted(set(self._node.get_node_names_and_namespaces()))

    def _endpoints(self, infos) -> list[EndpointInfo]:
        out = []
        for i in infos:
            q = i.qos_profile
            out.append(EndpointInfo(
                i.node_name, i.node_namespace, i.topic_type,
                QoSProfile(reliability="best_effort" if q.reliability == ReliabilityPolicy.BEST_EFFORT else "reliable",
                           durability="transient_local" if q.durability == DurabilityPolicy.TRANSIENT_LOCAL
                           else "volatile"),
                bytes(i.endpoint_gid)[:16]))
        return sorted(out, key=lambda e: (e.node_namespace, e.node_name, e.gid))

    def get_publishers_info_by_topic(self, topic: str) -> list[EndpointInfo]:
        self._check_alive()
        return self._endpoints(self._node.get_publishers_info_by_topic(self.resolve_topic_name(topic, only_expand=True)))

    def get_subscriptions_info_by_topic(self, topic: str) -> list[EndpointInfo]:
        self._check_alive()
        return self._endpoints(
            self._node.get_subscriptions_info_by_topic(self.resolve_topic_name(topic, only_expand=True)))

    @property
    def rclpy_node(self) -> _RclpyNode:
        """The underlying ``rclpy.node.Node`` (for services, actions, and other rclpy-only features)."""
        return self._node

    def _wake(self) -> None:
        try:
            self._wake_gc.trigger()
        except Exception:  # noqa: BLE001
            pass

    def spin_once(self, timeout: float | None = None) -> bool:
        self._check_alive()
        self._enter_spin()
        try:
            self._did_work = False
            self._executor.spin_once(timeout_sec=timeout)
            return self._did_work
        finally:
            self._exit_spin()

    def spin(self) -> None:
        self._check_alive()
        self._enter_spin()
        try:
            while not self._shutdown and self._ctx.ok():
                self._executor.spin_once(timeout_sec=None)
        finally:
            self._exit_spin()

    def _destroy(self) -> None:
        if getattr(self, "_destroyed", False):
            return
        self._destroyed = True
        try:
            self._executor.remove_node(self._node)
            self._node.destroy_node()
            self._executor.shutdown(timeout_sec=1.0)
        finally:
            _release_context(self.domain_id)


