"""The backend-neutral transport API (the contract both backends implement).

A :class:`Node` owns publishers, subscriptions and timers. Callbacks (subscriptions and timers)
only ever run inside ``spin()`` / ``spin_once()`` on whichever single thread spins the node, so
user code is never re-entered concurrently; ``start()`` spins in a background thread owned by the
node. Publishing is thread-safe and may happen from any thread, including inside callbacks.

Names follow ROS 2: relative topics get the node namespace, ``~/x`` is private to the node,
remap rules ``from:=to`` are applied after expansion (see :mod:`robot_rl.transport.names`).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from . import names as _names
from .msgs import Message, Time


def _wait_until(ready: Callable[[], bool], timeout: float) -> bool:
    """Poll ``ready()`` every 5 ms until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
from .qos import QoSLike, QoSProfile
from .ros_args import RosArgs, parse_ros_args

__all__ = ["Node", "Publisher", "Subscription", "Timer", "TransportError", "EndpointInfo", "BARE_DDS_APP"]

BARE_DDS_APP = "_CREATED_BY_BARE_DDS_APP_"
"""The node name and namespace ROS 2 reports for an endpoint no node claims."""


@dataclass(frozen=True)
class EndpointInfo:
    """One publisher or subscription of a topic, as the ROS graph shows it (rclpy's
    ``TopicEndpointInfo``): ``node_name`` / ``node_namespace`` (``_CREATED_BY_BARE_DDS_APP_``
    when no node claims it), ``topic_type`` (``pkg/msg/Name``), ``qos`` (reliability and
    durability; history and depth are not part of discovery) and ``gid`` (16 bytes)."""

    node_name: str
    node_namespace: str
    topic_type: str
    qos: QoSProfile
    gid: bytes


class TransportError(RuntimeError):
    """A transport operation failed (entity creation, use after shutdown, ...)."""


class Publisher(ABC):
    """Publishes messages of one type on one topic. Create with :meth:`Node.create_publisher`."""

    msg_type: type
    topic: str          # fully qualified, after remapping
    qos: QoSProfile

    @abstractmethod
    def publish(self, msg: Message) -> None:
        """Send ``msg`` (an instance of ``msg_type``). Thread-safe."""

    @abstractmethod
    def get_subscription_count(self) -> int:
        """Number of matched subscriptions (remote and local)."""

    def wait_for_subscribers(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` subscriptions match; False on timeout."""
        return _wait_until(lambda: self.get_subscription_count() >= count, timeout)

    @abstractmethod
    def destroy(self) -> None:
        """Remove the publisher from the node and the network."""


class Subscription(ABC):
    """Calls ``callback(msg)`` for each received message (inside spin). Create with
    :meth:`Node.create_subscription`."""

    msg_type: type
    topic: str
    qos: QoSProfile
    callback: Callable[[Any], None]

    @abstractmethod
    def get_publisher_count(self) -> int:
        """Number of matched publishers."""

    def wait_for_publishers(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` publishers match; False on timeout."""
        return _wait_until(lambda: self.get_publisher_count() >= count, timeout)

    @abstractmethod
    def destroy(self) -> None:
        """Remove the subscription from the node and the network."""


class Timer(ABC):
    """Calls ``callback()`` every ``period_s`` seconds (inside spin), on an absolute schedule:
    the n-th call is due at ``start + n * period``; when a call is late by more than a period the
    missed calls are skipped (counted in ``missed``), not bunched up."""

    period_s: float
    callback: Callable[[], None]
    missed: int = 0

    @abstractmethod
    def cancel(self) -> None:
        ...

    @abstractmethod
    def reset(self) -> None:
        """Restart the schedule from now (un-cancels a cancelled timer)."""

    @abstractmethod
    def is_canceled(self) -> bool:
        ...

    def destroy(self) -> None:
        self.cancel()


class Node(ABC):
    """A ROS 2 node. Create with :func:`robot_rl.transport.create_node`.

    Attributes: ``name``, ``namespace``, ``fully_qualified_name``, ``backend`` ("dds"/"rclpy"),
    ``logger`` (a ``logging.Logger``), ``exception`` (the error that stopped a background spin).
    """

    backend: str = ""

    def __init__(self, name: str, namespace: str = "", *, args: Sequence[str] | RosArgs | None = None,
                 remaps: Iterable | dict | None = None, parameters: dict[str, Any] | None = None) -> None:
        ros_args = args if isinstance(args, RosArgs) else parse_ros_args(args)
        _names.validate_node_name(name)
        name = ros_args.name_for(name)
        namespace = ros_args.namespace_for(name, namespace)
        self.name = _names.validate_node_name(name)
        self.namespace = _names.normalize_namespace(namespace)
        self.fully_qualified_name = self.namespace.rstrip("/") + "/" + self.name
        # explicit remaps first (they win), then command-line ones
        self._remaps = _names._as_rules(remaps) + ros_args.remaps_for(self.name)
        self._param_overrides: dict[str, Any] = ros_args.params_for(self.name, self.fully_qualified_name)
        self._param_overrides.update(parameters or {})
        self._parameters: dict[str, Any] = {}
        self.ros_args = ros_args
        self.logger = logging.getLogger("robot_rl.transport" + self.fully_qualified_name.replace("/", "."))
        self.exception: BaseException | None = None
        self._shutdown = False
        self._bg_thread: threading.Thread | None = None
        # one thread spins a node at a time; shutdown waits for it
        self._spin_lock = threading.Lock()
        self._spin_thread: int | None = None

    # -- names ---------------------------------------------------------------------------------

    def resolve_topic_name(self, topic: str, *, only_expand: bool = False) -> str:
        """Fully qualified name of ``topic`` for this node (expanded, then remapped)."""
        return _names.resolve_topic_name(topic, self.name, self.namespace, self._remaps, only_expand)

    # -- parameters ------------------------------------------------------------------------------

    def declare_parameter(self, name: str, default: Any = None) -> Any:
        """Declare a parameter and return its value: the override given on the command line
        (``-p name:=value``, params file) or in ``parameters=``, else ``default``."""
        value = self._param_overrides.get(name, default)
        self._parameters[name] = value
        return value

    def get_parameter(self, name: str, default: Any = None) -> Any:
        """Value of a declared (or overridden) parameter, else ``default``."""
        if name in self._parameters:
            return self._parameters[name]
        return self._param_overrides.get(name, default)

    @property
    def parameters(self) -> dict[str, Any]:
        """Declared parameters and command-line overrides (a copy)."""
        return {**self._param_overrides, **self._parameters}

    # -- entities (backend specific) ------------------------------------------------------------

    @abstractmethod
    def create_publisher(self, msg_type: type, topic: str, qos: QoSLike = "default") -> Publisher:
        """Publisher of ``msg_type`` on ``topic`` with ``qos`` (profile, preset name or depth)."""

    @abstractmethod
    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoSLike = "default") -> Subscription:
        """Subscription calling ``callback(msg)`` inside spin for each message on ``topic``."""

    @abstractmethod
    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """Timer calling ``callback()`` every ``period_s`` seconds inside spin."""

    @abstractmethod
    def now(self) -> Time:
        """Current time as a ``builtin_interfaces/Time`` message (for header stamps)."""

    @abstractmethod
    def get_node_names_and_namespaces(self) -> list[tuple[str, str]]:
        """(name, namespace) of every node visible in the ROS graph, this one included."""

    @abstractmethod
    def get_publishers_info_by_topic(self, topic: str) -> list[EndpointInfo]:
        """Every publisher of ``topic`` (expanded for this node, not remapped, as rclpy does)
        in the ROS graph: its node, type, QoS and GID."""

    @abstractmethod
    def get_subscriptions_info_by_topic(self, topic: str) -> list[EndpointInfo]:
        """Every subscription of ``topic`` (see :meth:`get_publishers_info_by_topic`)."""

    # -- executor --------------------------------------------------------------------------------

    @abstractmethod
    def spin_once(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever) for work, run every ready callback and
        due timer, and return whether anything ran."""

    @abstractmethod
    def spin(self) -> None:
        """Run callbacks until :meth:`shutdown` (or Ctrl-C). Exceptions from callbacks propagate."""

    def start(self) -> "Node":
        """Spin in a background thread owned by the node (one executor thread per node).

        An exception escaping a callback stops that thread (fail closed): it is logged and kept
        in ``node.exception`` and :meth:`ok` turns False.
        """
        if self._bg_thread is not None:
            raise TransportError(f"node {self.fully_qualified_name} is already spinning in the background")
        self._check_alive()

        def run() -> None:
            try:
                self.spin()
            except BaseException as e:  # noqa: BLE001 - recorded and logged, thread ends
                self.exception = e
                self.logger.exception("executor of %s stopped by an exception in a callback",
                                      self.fully_qualified_name)

        self._bg_thread = threading.Thread(target=run, name=f"executor{self.fully_qualified_name}", daemon=True)
        self._bg_thread.start()
        return self

    def ok(self) -> bool:
        """True until shutdown or until a background spin died on an exception."""
        return not self._shutdown and self.exception is None

    def shutdown(self) -> None:
        """Stop spinning and destroy every entity of the node. Idempotent."""
        if self._shutdown:
            return
        self._shutdown = True
        self._wake()
        bg = self._bg_thread
        if bg is not None and bg is not threading.current_thread():
            bg.join(timeout=5.0)
        if self._spin_thread == threading.get_ident():
            return  # called from a callback: _exit_spin finishes the job
        if self._spin_lock.acquire(timeout=5.0):
            try:
                self._destroy()
            finally:
                self._spin_lock.release()
        else:
            self.logger.warning("shutdown while another thread still spins the node; its entities are left "
                                "to the garbage collector")

    def _enter_spin(self) -> None:
        if not self._spin_lock.acquire(blocking=False):
            if self._spin_thread == threading.get_ident():
                raise TransportError("spin()/spin_once() called from inside a callback of the same node")
            raise TransportError(f"node {self.fully_qualified_name} is already being spun by another thread")
        self._spin_thread = threading.get_ident()

    def _exit_spin(self) -> None:
        self._spin_thread = None
        self._spin_lock.release()
        if self._shutdown:
            self._destroy()

    @abstractmethod
    def _wake(self) -> None:
        """Wake a spinning thread so it notices shutdown."""

    @abstractmethod
    def _destroy(self) -> None:
        """Destroy the node's entities (called once, with the spin lock held or by the spinner)."""

    def _check_alive(self) -> None:
        if self._shutdown:
            raise TransportError(f"node {self.fully_qualified_name} has been shut down")

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.fully_qualified_name} backend={self.backend}>"
