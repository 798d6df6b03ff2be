"""Pure DDS backend on Cyclone DDS that is a ROS 2 peer on the wire (no ROS install needed).

What makes it a ROS 2 peer (see shared/notes/ros2-wire.md):

* topic ``/ns/foo`` is the DDS topic ``rt/ns/foo``; type ``pkg/msg/Name`` is
  ``pkg::msg::dds_::Name_``; data is XCDR1 (the writers and readers only offer/accept XCDR1);
* ``ROS_DOMAIN_ID`` selects the domain; ``ROS_AUTOMATIC_DISCOVERY_RANGE`` (``LOCALHOST``,
  ``SUBNET``, ``OFF``; or the older ``ROS_LOCALHOST_ONLY=1``) and ``ROS_STATIC_PEERS`` select the
  discovery scope the way rmw_cyclonedds does, plus ``IgnoreTypeInformation 1.15`` so Fast DDS 3
  peers (rclpy's default rmw) match types with sequences/nested structs. A user's own
  ``CYCLONEDDS_URI`` is appended last, so it can override any of it;
* one DDS participant per process and domain (as rmw does since Foxy), with ``enclave=/;`` in its
  USER_DATA, announcing its nodes and their reader/writer GIDs on ``ros_discovery_info``, so
  ``ros2 node list``, ``ros2 topic info -v`` and rclpy's graph API see our nodes and name our
  endpoints (including the workaround rmw_fastrtps / Fast DDS 3 needs: see
  :mod:`robot_rl.transport.dds_graph`, which also gives our own view of the graph).

Receive path: every subscription has a read condition attached to the node's wait set; the
executor thread blocks in the wait set (GIL released) until data arrives, a timer is due, or the
node is woken, then takes and deserializes samples and calls the callbacks. Timers run on
absolute ``time.perf_counter`` deadlines.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import atexit
import ctypes
import sys
from typing import Any, Callable, Iterable, Sequence

from cyclonedds.core import (
    DDSException, GuardCondition, InstanceState, Listener, Policy, Qos, ReadCondition, SampleState,
    ViewState, WaitSet,
)
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from . import names as _names
from .base import Node, Publisher, Subscription, Timer, TransportError
from .base import EndpointInfo
from .dds_graph import DISCOVERY_TOPIC, DomainGraph
from .msgs import Gid, Message, NodeEntitiesInfo, Time
from .qos import QoSLike, QoSProfile, resolve_qos
from .ros_args import RosArgs

__all__ = ["DdsNode", "cyclone_config", "domain_id_from_env", "DISCOVERY_TOPIC"]

log = logging.getLogger("robot_rl.transport.dds")

_FAST_DDS_VENDOR = "1.15"
_WRITER_LINGER = "200 ms"
_INFINITE_NS = 1 << 62
_TAKE_BATCH = 256


# ---------------------------------------------------------------------------------------------
# configuration


def domain_id_from_env() -> int:
    """``ROS_DOMAIN_ID`` (default 0), validated."""
    raw = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise TransportError(f"ROS_DOMAIN_ID={raw!r} is not an integer (use 0..232)") from None
    if not 0 <= value <= 232:
        raise TransportError(f"ROS_DOMAIN_ID={value} is out of range (use 0..232)")
    return value


def _discovery_range() -> str:
    rng = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper()
    if rng in ("", "SYSTEM_DEFAULT"):
        if os.environ.get("ROS_LOCALHOST_ONLY", "").strip() == "1":
            return "LOCALHOST"
        return "SUBNET"
    if rng not in ("LOCALHOST", "SUBNET", "OFF"):
        raise TransportError(
            f"ROS_AUTOMATIC_DISCOVERY_RANGE={rng!r} is not one of LOCALHOST, SUBNET, OFF, SYSTEM_DEFAULT")
    return rng


def cyclone_config(discovery_range: str | None = None, static_peers: Sequence[str] | None = None,
                   user_uri: str | None = None) -> str:
    """The Cyclone DDS configuration (an XML string, or a comma-separated list ending with the
    user's ``CYCLONEDDS_URI``) for the given discovery range (default: from the environment)."""
    rng = discovery_range or _discovery_range()
    if static_peers is None:
        static_peers = [p.strip() for p in os.environ.get("ROS_STATIC_PEERS", "").split(";") if p.strip()]
    if user_uri is None:
        user_uri = os.environ.get("CYCLONEDDS_URI", "").strip()
    general = ""
    discovery = ""
    peers = list(static_peers)
    if rng in ("LOCALHOST", "OFF"):
        general = ("<General><Interfaces><NetworkInterface address=\"127.0.0.1\"/></Interfaces>"
                   "<AllowMulticast>false</AllowMulticast></General>")
        if rng == "LOCALHOST":
            peers.insert(0, "localhost")
        discovery = "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
    if peers:
        discovery += "<Peers>" + "".join(f"<Peer address=\"{p}\"/>" for p in peers) + "</Peers>"
    xml = (
        "<CycloneDDS><Domain Id=\"any\">"
        + general
        + (f"<Discovery>{discovery}</Discovery>" if discovery else "")
        + f"<Compatibility><IgnoreTypeInformation>{_FAST_DDS_VENDOR}</IgnoreTypeInformation></Compatibility>"
        # a reliable writer deleted with data unacknowledged by a reader of a crashed peer (whose
        # lease has not expired yet) waits this long for acks: 1 s by default, per writer
        + f"<Internal><WriterLingerDuration>{_WRITER_LINGER}</WriterLingerDuration></Internal>"
        + "</Domain></CycloneDDS>"
    )
    return f"{xml},{user_uri}" if user_uri else xml


def _delete(entity: Any) -> None:
    """Delete a Cyclone entity now (rather than whenever Python collects it)."""
    if entity is None:
        return
    try:
        entity.__del__()
    except DDSException:
        pass


_MAIN_THREAD_WAIT_S = 0.1  # longest uninterruptible wait on the main thread (Ctrl-C latency)

TIMER_SPIN_S = 50e-6
"""Timers sleep until this long before their deadline and busy-wait the rest (jitter ~ a few us)."""

_SLACK_SET: set[int] = set()


def _low_timer_slack() -> None:
    """Linux: 1 us timer slack for the spinning thread (default 50 us) so wake-ups are punctual."""
    tid = threading.get_ident()
    if tid in _SLACK_SET or not sys.platform.startswith("linux"):
        return
    _SLACK_SET.add(tid)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, ns
    except (OSError, AttributeError):
        pass


def _dds_qos(profile: QoSProfile) -> Qos:
    policies = [
        Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
        if profile.reliability == "reliable" else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if profile.durability == "transient_local" else Policy.Durability.Volatile,
        Policy.History.KeepLast(profile.depth) if profile.history == "keep_last" else Policy.History.KeepAll,
        Policy.DataRepresentation(use_cdrv0_representation=True),
    ]
    return Qos(*policies)


def _check_msg_type(msg_type: Any) -> None:
    if not (isinstance(msg_type, type) and issubclass(msg_type, Message) and msg_type.__ros_type__):
        raise TypeError(
            f"{msg_type!r} is not a message class from robot_rl.transport.msgs (e.g. msgs.JointState)")


# ---------------------------------------------------------------------------------------------
# per-domain participant shared by the nodes of this process


class _DomainContext:
    def __init__(self, domain_id: int) -> None:
        self.domain_id = domain_id
        self.lock = threading.RLock()
        self.nodes: list[DdsNode] = []
        self.topics: dict[tuple[str, type], Topic] = {}
        self.domain = None
        try:
            self.domain = Domain(domain_id, cyclone_config())
        except DDSException as e:
            # The domain already exists in this process (created by other code): use it as is.
            log.warning("Cyclone DDS domain %d already exists in this process; its configuration is used "
                        "as is (%s)", domain_id, e)
        try:
            self.participant = DomainParticipant(domain_id, qos=Qos(Policy.Userdata(b"enclave=/;")))
        except DDSException as e:
            _delete(self.domain)
            raise TransportError(
                f"cannot create a DDS participant on domain {domain_id}: {e}. With "
                "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST at most 32 participants fit on one machine per domain"
            ) from e
        self.gid = self.participant.get_guid().bytes
        self.graph = DomainGraph(
            self.participant, self.gid, self._own_nodes,
            writer_qos=_dds_qos(QoSProfile(reliability="reliable", durability="transient_local", depth=1)),
            reader_qos=_dds_qos(QoSProfile(reliability="reliable", durability="transient_local", history="keep_all")))

    # topics ----------------------------------------------------------------------------------

    def topic(self, dds_name: str, msg_type: type) -> Topic:
        with self.lock:
            key = (dds_name, msg_type)
            topic = self.topics.get(key)
            if topic is None:
                for (name, other), _ in self.topics.items():
                    if name == dds_name and other.__idl_typename__ != msg_type.__idl_typename__:
                        raise TransportError(
                            f"topic {dds_name[2:]!r} is already used with type {other.__ros_type__} in this "
                            f"process; cannot also use it with {msg_type.__ros_type__}")
                topic = Topic(self.participant, dds_name, msg_type)
                self.topics[key] = topic
            return topic

    # graph -----------------------------------------------------------------------------------

    def graph_changed(self) -> None:
        self.graph.changed()

    def _own_nodes(self) -> list:
        with self.lock:
            return [n._entities_info() for n in self.nodes]

    def node_names_and_namespaces(self) -> list[tuple[str, str]]:
        with self.lock:
            own = [(n.name, n.namespace) for n in self.nodes]
        return self.graph.node_names_and_namespaces(own)

    def close(self) -> None:
        self.graph.close()
        with self.lock:
            for e in self.graph.entities():
                _delete(e)
            for topic in self.topics.values():
                _delete(topic)
            self.topics.clear()
            _delete(self.participant)
            _delete(self.domain)


_CONTEXTS: dict[int, _DomainContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _acquire_context(domain_id: int, node: "DdsNode") -> _DomainContext:
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(domain_id)
        if ctx is None:
            ctx = _CONTEXTS[domain_id] = _DomainContext(domain_id)
        with ctx.lock:
            ctx.nodes.append(node)
        ctx.graph_changed()
        return ctx


def _release_context(ctx: _DomainContext, node: "DdsNode") -> None:
    with _CONTEXTS_LOCK:
        with ctx.lock:
            if node in ctx.nodes:
                ctx.nodes.remove(node)
            last = not ctx.nodes
        if last:
            _CONTEXTS.pop(ctx.domain_id, None)
    if last:
        ctx.close()
    else:
        ctx.graph_changed()


# ---------------------------------------------------------------------------------------------
# entities


class DdsPublisher(Publisher):
    def __init__(self, node: "DdsNode", msg_type: type, topic: str, qos: QoSProfile) -> None:
        self.node, self.msg_type, self.topic, self.qos = node, msg_type, topic, qos
        ctx = node._ctx
        listener = Listener(on_offered_incompatible_qos=self._on_incompatible)
        self._writer = DataWriter(ctx.participant, ctx.topic(_names.dds_topic_name(topic), msg_type),
                                  qos=_dds_qos(qos), listener=listener)
        self.gid = self._writer.get_guid().bytes
        self.incompatible_qos_count = 0
        self._destroyed = False

    def _on_incompatible(self, writer: Any, status: Any) -> None:
        self.incompatible_qos_count = status.total_count
        log.warning("publisher on %s (%s): a subscription requests an incompatible QoS (policy id %d)",
                    self.topic, self.qos, status.last_policy_id)

    def publish(self, msg: Message) -> None:
        if type(msg) is not self.msg_type:
            raise TypeError(f"publisher on {self.topic} sends {self.msg_type.__ros_type__}, got {type(msg).__name__}")
        if self._destroyed:
            raise TransportError(f"publisher on {self.topic} has been destroyed")
        self._writer.write(msg)

    def get_subscription_count(self) -> int:
        return len(self._writer.get_matched_subscriptions())

    def destroy(self) -> None:
        if not self._destroyed:
            self._destroyed = True
            self.node._remove_publisher(self)
            _delete(self._writer)


class DdsSubscription(Subscription):
    def __init__(self, node: "DdsNode", msg_type: type, topic: str, callback: Callable[[Any], None],
                 qos: QoSProfile) -> None:
        self.node, self.msg_type, self.topic, self.callback, self.qos = node, msg_type, topic, callback, qos
        ctx = node._ctx
        listener = Listener(on_requested_incompatible_qos=self._on_incompatible)
        self._reader = DataReader(ctx.participant, ctx.topic(_names.dds_topic_name(topic), msg_type),
                                  qos=_dds_qos(qos), listener=listener)
        self._cond = ReadCondition(self._reader, SampleState.Any | ViewState.Any | InstanceState.Any)
        self.gid = self._reader.get_guid().bytes
        self.incompatible_qos_count = 0
        self._destroyed = False

    def _on_incompatible(self, reader: Any, status: Any) -> None:
        self.incompatible_qos_count = status.total_count
        log.warning("subscription on %s (%s): a publisher offers an incompatible QoS (policy id %d)",
                    self.topic, self.qos, status.last_policy_id)

    def _take(self) -> list:
        if self._destroyed:
            return []
        return self._reader.take(N=_TAKE_BATCH)

    def get_publisher_count(self) -> int:
        return len(self._reader.get_matched_publications())

    def destroy(self) -> None:
        if not self._destroyed:
            self._destroyed = True
            self.node._remove_subscription(self)


class DdsTimer(Timer):
    def __init__(self, node: "DdsNode", period_s: float, callback: Callable[[], None]) -> None:
        if not (isinstance(period_s, (int, float)) and math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"timer period must be a positive number of seconds, got {period_s!r}")
        self.node, self.period_s, self.callback = node, float(period_s), callback
        self.missed = 0
        self.call_count = 0
        self._canceled = False
        self._next = time.perf_counter() + self.period_s

    def cancel(self) -> None:
        self._canceled = True

    def reset(self) -> None:
        self._next = time.perf_counter() + self.period_s
        self._canceled = False
        self.node._wake()

    def is_canceled(self) -> bool:
        return self._canceled

    def time_until_next_call(self) -> float | None:
        return None if self._canceled else self._next - time.perf_counter()

    def destroy(self) -> None:
        self._canceled = True
        self.node._remove_timer(self)

    def _advance(self, now: float) -> None:
        self._next += self.period_s
        if self._next <= now:  # overran by more than a period: skip the missed calls
            skipped = int((now - self._next) // self.period_s) + 1
            self.missed += skipped
            self._next += skipped * self.period_s


# ---------------------------------------------------------------------------------------------
# node


class DdsNode(Node):
    """ROS 2 node on Cyclone DDS. Create with ``create_node(..., backend="dds")``.

    Extra attributes: ``domain_id``, ``participant_gid`` (16 bytes).
    """

    backend = "dds"

    def __init__(self, name: str, namespace: str = "", *, domain_id: int | None = None,
                 args: Sequence[str] | RosArgs | None = None, remaps: Iterable | dict | None = None,
                 parameters: dict[str, Any] | None = None) -> None:
        super().__init__(name, namespace, args=args, remaps=remaps, parameters=parameters)
        self.domain_id = domain_id_from_env() if domain_id is None else int(domain_id)
        if not 0 <= self.domain_id <= 232:
            raise TransportError(f"domain id {self.domain_id} is out of range (use 0..232)")
        self._lock = threading.RLock()
        self._publishers: list[DdsPublisher] = []
        self._subscriptions: list[DdsSubscription] = []
        self._timers: list[DdsTimer] = []
        self._pending_delete: list[DdsSubscription] = []
        self._ctx = _acquire_context(self.domain_id, self)
        try:
            self._waitset = WaitSet(self._ctx.participant)
            self._guard = GuardCondition(self._ctx.participant)
            self._waitset.attach(self._guard)
        except Exception:
            _release_context(self._ctx, self)
            raise
        self.participant_gid = self._ctx.gid

    # graph -------------------------------------------------------------------------------------

    def _entities_info(self) -> NodeEntitiesInfo:
        with self._lock:
            return NodeEntitiesInfo(
                node_namespace=self.namespace, node_name=self.name,
                reader_gid_seq=[Gid(s.gid) for s in self._subscriptions],
                writer_gid_seq=[Gid(p.gid) for p in self._publishers],
            )

    def get_node_names_and_namespaces(self) -> list[tuple[str, str]]:
        self._check_alive()
        return self._ctx.node_names_and_namespaces()

    def get_publishers_info_by_topic(self, topic: str) -> list[EndpointInfo]:
        self._check_alive()
        return self._ctx.graph.endpoints(_names.dds_topic_name(self.resolve_topic_name(topic, only_expand=True)),
                                         readers=False)

    def get_subscriptions_info_by_topic(self, topic: str) -> list[EndpointInfo]:
        self._check_alive()
        return self._ctx.graph.endpoints(_names.dds_topic_name(self.resolve_topic_name(topic, only_expand=True)),
                                         readers=True)

    # entities ----------------------------------------------------------------------------------

    def create_publisher(self, msg_type: type, topic: str, qos: QoSLike = "default") -> DdsPublisher:
        self._check_alive()
        _check_msg_type(msg_type)
        pub = DdsPublisher(self, msg_type, self.resolve_topic_name(topic), resolve_qos(qos))
        with self._lock:
            self._publishers.append(pub)
        self._ctx.graph_changed()
        return pub

    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoSLike = "default") -> DdsSubscription:
        self._check_alive()
        _check_msg_type(msg_type)
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        sub = DdsSubscription(self, msg_type, self.resolve_topic_name(topic), callback, resolve_qos(qos))
        with self._lock:
            self._subscriptions.append(sub)
            self._waitset.attach(sub._cond)
        self._ctx.graph_changed()
        self._wake()
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> DdsTimer:
        self._check_alive()
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        timer = DdsTimer(self, period_s, callback)
        with self._lock:
            self._timers.append(timer)
        self._wake()
        return timer

    def _remove_publisher(self, pub: DdsPublisher) -> None:
        with self._lock:
            if pub in self._publishers:
                self._publishers.remove(pub)
        self._ctx.graph_changed()

    def _remove_subscription(self, sub: DdsSubscription) -> None:
        with self._lock:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)
            try:
                self._waitset.detach(sub._cond)
            except DDSException:
                pass
        self._ctx.graph_changed()
        # the reader may be in use by a spinning thread: delete it when nobody spins
        if self._spin_lock.acquire(blocking=False):
            try:
                self._delete_sub(sub)
            finally:
                self._spin_lock.release()
        elif self._spin_thread == threading.get_ident():
            with self._lock:
                self._pending_delete.append(sub)
        else:
            with self._lock:
                self._pending_delete.append(sub)
            self._wake()

    @staticmethod
    def _delete_sub(sub: DdsSubscription) -> None:
        _delete(sub._cond)
        _delete(sub._reader)

    def _remove_timer(self, timer: DdsTimer) -> None:
        with self._lock:
            if timer in self._timers:
                self._timers.remove(timer)
        self._wake()

    def now(self) -> Time:
        return Time.from_ns(time.time_ns())

    # executor ----------------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._guard.set(True)
        except (DDSException, AttributeError):
            pass

    def _enter_spin(self) -> None:
        super()._enter_spin()
        _low_timer_slack()

    def _exit_spin(self) -> None:
        with self._lock:
            pending, self._pending_delete = self._pending_delete, []
        for sub in pending:
            self._delete_sub(sub)
        super()._exit_spin()

    def spin_once(self, timeout: float | None = None) -> bool:
        self._check_alive()
        self._enter_spin()
        try:
            if timeout is not None:
                return self._spin_once(timeout)
            # Block until something ran; on the main thread in short waits so Ctrl-C gets through.
            chunk = _MAIN_THREAD_WAIT_S if threading.current_thread() is threading.main_thread() else None
            while not self._shutdown:
                if self._spin_once(chunk):
                    return True
            return False
        finally:
            self._exit_spin()

    def spin(self) -> None:
        self._check_alive()
        self._enter_spin()
        try:
            chunk = _MAIN_THREAD_WAIT_S if threading.current_thread() is threading.main_thread() else None
            while not self._shutdown:
                self._spin_once(chunk)
        finally:
            self._exit_spin()

    def _spin_once(self, timeout: float | None) -> bool:
        if self._pending_delete:  # subscriptions destroyed while we were spinning
            with self._lock:
                pending, self._pending_delete = self._pending_delete, []
            for sub in pending:
                self._delete_sub(sub)
        with self._lock:
            subs = list(self._subscriptions)
            timers = [t for t in self._timers if not t._canceled]
        now = time.perf_counter()
        wait = math.inf if timeout is None else max(0.0, timeout)
        deadline = None
        if timers:
            deadline = min(t._next for t in timers)
            if deadline - now <= wait:
                wait = max(0.0, deadline - now)
            else:
                deadline = None
        if deadline is not None and wait > TIMER_SPIN_S:
            # sleep until just before the deadline, then spin the last few tens of microseconds
            triggered = self._waitset.wait(int((wait - TIMER_SPIN_S) * 1e9))
            if not triggered:
                while time.perf_counter() < deadline:
                    pass
        else:
            self._waitset.wait(_INFINITE_NS if wait == math.inf else int(wait * 1e9))
        if self._shutdown:
            return False
        self._guard.take()
        did = False
        for sub in subs:
            samples = sub._take()
            if samples:
                cb = sub.callback
                for msg in samples:
                    if isinstance(msg, Message):
                        cb(msg)
                        did = True
        if timers:
            now = time.perf_counter()
            for t in timers:
                if not t._canceled and t._next <= now:
                    t._advance(now)
                    t.call_count += 1
                    t.callback()
                    did = True
        return did

    def _destroy(self) -> None:
        with self._lock:
            if getattr(self, "_destroyed", False):
                return
            self._destroyed = True
            pubs, subs = list(self._publishers), list(self._subscriptions) + self._pending_delete
            self._publishers.clear()
            self._subscriptions.clear()
            self._timers.clear()
            self._pending_delete = []
        for p in pubs:
            p._destroyed = True
            _delete(p._writer)
        for s in subs:
            s._destroyed = True
            self._delete_sub(s)
        _delete(self._guard)
        _delete(self._waitset)
        _release_context(self._ctx, self)


@atexit.register
def _shutdown_all() -> None:
    """Leave the ROS graph cleanly and stop our threads before the interpreter goes away."""
    with _CONTEXTS_LOCK:
        nodes = [n for ctx in _CONTEXTS.values() for n in list(ctx.nodes)]
    for n in nodes:
        try:
            n.shutdown()
        except Exception:  # noqa: BLE001
            pass
