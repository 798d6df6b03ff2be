"""The ROS 2 graph of the DDS backend: announcing our nodes, and reading everyone's.

ROS 2 graph introspection (``ros2 node list``, ``ros2 topic info -v``, rclpy's
``get_publishers_info_by_topic``) pairs two things: the DDS endpoints discovered by the DDS stack
(GUID, topic, type, QoS, and the GUID of the participant that owns the endpoint) and the
``ros_discovery_info`` topic, on which every participant announces
``ParticipantEntitiesInfo(gid=<participant GUID>, nodes=[(namespace, name, reader GIDs, writer
GIDs)])``. An endpoint is named after the node that lists its GID *in the entry of the endpoint's
participant* (``rmw_dds_common::GraphCache``); otherwise it is ``_CREATED_BY_BARE_DDS_APP_``.

Our GIDs are right (16-byte RTPS GUIDs: 12-byte prefix + entity id, the layout rmw_fastrtps and
rmw_cyclonedds use since Iron). What breaks the pairing with rmw_fastrtps (Fast DDS 3, ROS 2 Kilted,
rclpy's default) is the participant GUID of *our* endpoints on its side: Cyclone DDS does not put
``PID_PARTICIPANT_GUID`` in its endpoint discovery data (the DDSI spec lets it be derived from the
GUID prefix), and Fast DDS 3 (``WriterProxyData::participant_guid``, eProsima/Fast-DDS#1380
regressed) then reports the all-zero GUID as the endpoint's participant. rmw_fastrtps thus looks
our endpoints up in the entry of participant ``00..00``, which nobody announces.

What we publish, therefore (:class:`DomainGraph`):

* while no Fast DDS participant is in the domain: our entry under our participant GUID, with our
  nodes (what rmw_cyclonedds and rmw_connextdds read; they get endpoint participants right);
* while one is (GUID prefix starting with eProsima's vendor id 01.0f): our entry under our GUID
  *without* nodes, plus one entry under the zero GUID listing the nodes of *every* robot_rl
  process in the domain, so each node is listed once and rmw_fastrtps finds our endpoints. Our
  processes learn each other's nodes on a private DDS topic (``robot_rl_discovery_info``, not a
  ROS topic), and all of them publish the same union; a process leaving publishes the union
  without its nodes. When every robot_rl process of the domain is killed at once, a Fast DDS peer
  keeps listing their nodes until one starts again (nothing else removes an entry for the zero
  GUID), which is the price of the workaround.

Entries are republished on every change, whenever a new reader of them appears, and once a
second. The same readers give our own view of the graph: node names and, per topic, the
publishers and subscriptions with their node, QoS and GID (:meth:`DomainGraph.endpoints`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from cyclonedds.builtin import (
    BuiltinDataReader, BuiltinTopicDcpsParticipant, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription,
)
from cyclonedds.core import DDSException, InstanceState, Policy, Qos
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from .base import BARE_DDS_APP, EndpointInfo
from .msgs import Gid, NodeEntitiesInfo, ParticipantEntitiesInfo
from .qos import QoSProfile

__all__ = ["DomainGraph", "EndpointInfo", "DISCOVERY_TOPIC", "PRIVATE_TOPIC", "BARE_DDS_APP", "FASTDDS_PREFIX"]

log = logging.getLogger("robot_rl.transport.dds")

DISCOVERY_TOPIC = "ros_discovery_info"
PRIVATE_TOPIC = "robot_rl_discovery_info"
FASTDDS_PREFIX = b"\x01\x0f"  # eProsima's vendor id, the first two bytes of a Fast DDS GUID prefix
ZERO_GID = bytes(16)
_TAKE = 256
_REPUBLISH_S = 1.0


def _profile(qos: Qos) -> QoSProfile:
    rel = "best_effort" if "BestEffort" in repr(qos[Policy.Reliability]) else "reliable"
    dur = repr(qos[Policy.Durability])
    return QoSProfile(reliability=rel,
                      durability="transient_local" if ("Transient" in dur or "Persistent" in dur) else "volatile")


def _ros_type(dds_type: str) -> str:
    parts = dds_type.split("::")  # pkg::msg::dds_::Name_ -> pkg/msg/Name
    if len(parts) == 4 and parts[2] == "dds_" and parts[3].endswith("_"):
        return f"{parts[0]}/{parts[1]}/{parts[3][:-1]}"
    return dds_type


class DomainGraph:
    """Announces this process's nodes and tracks the domain's ROS graph (module docstring).

    Args:
        participant: our Cyclone ``DomainParticipant``; ``gid``: its 16-byte GUID.
        own_nodes: returns this process's ``NodeEntitiesInfo`` list (called from the graph thread).
        writer_qos: the QoS of ``ros_discovery_info`` (reliable, transient-local, keep-last 1);
        reader_qos: the same with keep-all history.
    """

    def __init__(self, participant, gid: bytes, own_nodes: Callable[[], list], writer_qos: Qos, reader_qos: Qos):
        self.gid = gid
        self._own_nodes = own_nodes
        self.lock = threading.RLock()
        self._topic = Topic(participant, DISCOVERY_TOPIC, ParticipantEntitiesInfo)
        self._private_topic = Topic(participant, PRIVATE_TOPIC, ParticipantEntitiesInfo)
        self._writer = DataWriter(participant, self._topic, qos=writer_qos)       # our entry
        self._zero_writer = DataWriter(participant, self._topic, qos=writer_qos)  # the zero-GUID entry
        self._private_writer = DataWriter(participant, self._private_topic, qos=writer_qos)
        self._reader = DataReader(participant, self._topic, qos=reader_qos)
        self._private_reader = DataReader(participant, self._private_topic, qos=reader_qos)
        self._participants = BuiltinDataReader(participant, BuiltinTopicDcpsParticipant)
        self._publications = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
        self._subscriptions = BuiltinDataReader(participant, BuiltinTopicDcpsSubscription)
        self._entries: dict[bytes, ParticipantEntitiesInfo] = {}   # ros_discovery_info, by participant
        self._ours: dict[bytes, ParticipantEntitiesInfo] = {}      # robot_rl processes, by participant
        self._alive: set[bytes] = set()
        self._endpoints: dict[bytes, tuple] = {}                   # gid -> (is_reader, topic, type, qos)
        self._last: dict[str, bytes] = {}
        self._zero_published = False
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ros_discovery_info", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------

    def changed(self) -> None:
        """Our nodes or their endpoints changed: republish now."""
        self._changed.set()

    def _drain(self) -> None:
        with self.lock:
            for reader, store in ((self._reader, self._entries), (self._private_reader, self._ours)):
                for s in reader.take(N=_TAKE):
                    if isinstance(s, ParticipantEntitiesInfo):
                        store[bytes(s.gid.data)] = s
            for s in self._participants.take(N=_TAKE):
                key = s.key.bytes
                if s.sample_info.instance_state == InstanceState.Alive:
                    self._alive.add(key)
                else:
                    self._alive.discard(key)
                    self._ours.pop(key, None)
                    self._entries.pop(key, None)
            for reader, is_reader in ((self._publications, False), (self._subscriptions, True)):
                for s in reader.take(N=_TAKE):
                    key = s.key.bytes
                    if s.sample_info.instance_state == InstanceState.Alive and getattr(s, "topic_name", None):
                        self._endpoints[key] = (is_reader, s.topic_name, s.type_name, _profile(s.qos))
                    else:
                        self._endpoints.pop(key, None)

    def _fastdds_present(self) -> bool:
        return any(k[:2] == FASTDDS_PREFIX for k in self._alive)

    def _union(self, own: list, without_self: bool = False) -> list:
        out = [] if without_self else list(own)
        for gid, entry in self._ours.items():
            if gid != self.gid and gid in self._alive:
                out.extend(entry.node_entities_info_seq)
        return out

    def _write(self, key: str, writer: DataWriter, msg: ParticipantEntitiesInfo, force: bool) -> None:
        data = msg.serialize()
        if force or self._last.get(key) != data:
            writer.write(msg)
            self._last[key] = data

    def _publish(self, force: bool) -> None:
        own = list(self._own_nodes())
        with self.lock:
            fast = self._fastdds_present()
            union = self._union(own) if fast else None
        self._write("private", self._private_writer, ParticipantEntitiesInfo(gid=Gid(self.gid), node_entities_info_seq=own),
                    force)
        self._write("own", self._writer, ParticipantEntitiesInfo(gid=Gid(self.gid), node_entities_info_seq=[] if fast else own),
                    force)
        if fast or self._zero_published:
            self._write("zero", self._zero_writer,
                        ParticipantEntitiesInfo(gid=Gid(ZERO_GID), node_entities_info_seq=union or []), force)
            self._zero_published = fast

    def _loop(self) -> None:
        last_pub = 0.0
        last_matched = -1
        while not self._stop.is_set():
            changed = self._changed.wait(0.1)
            if self._stop.is_set():
                break
            try:
                self._changed.clear()
                self._drain()
                matched = self._writer.get_publication_matched_status().total_count
                now = time.monotonic()
                periodic = now - last_pub >= _REPUBLISH_S or matched != last_matched
                self._publish(force=periodic)
                if periodic or changed:
                    last_pub, last_matched = now, matched
            except DDSException as e:  # participant being deleted
                if not self._stop.is_set():
                    log.debug("ros_discovery_info: %s", e)

    # ------------------------------------------------------------------------------------------

    def node_names_and_namespaces(self, own: list[tuple[str, str]]) -> list[tuple[str, str]]:
        self._drain()
        with self.lock:
            out = set(own)  # our own nodes, even before our own announcement came back
            for store in (self._entries, self._ours):
                for gid, entry in store.items():
                    if gid in self._alive or gid == self.gid:
                        out.update((i.node_name, i.node_namespace) for i in entry.node_entities_info_seq)
            return sorted(out)

    def endpoints(self, dds_topic: str, readers: bool) -> list[EndpointInfo]:
        """Publishers (``readers=False``) or subscriptions of a DDS topic (``rt/...``)."""
        self._drain()
        with self.lock:
            owner: dict[bytes, tuple[str, str]] = {}
            for store in (self._entries, self._ours):
                for entry in store.values():
                    for info in entry.node_entities_info_seq:
                        for g in (info.reader_gid_seq if readers else info.writer_gid_seq):
                            owner[bytes(g.data)] = (info.node_name, info.node_namespace)
            out = []
            for gid, (is_reader, topic, dds_type, qos) in self._endpoints.items():
                if is_reader == readers and topic == dds_topic:
                    name, ns = owner.get(gid, (BARE_DDS_APP, BARE_DDS_APP))
                    out.append(EndpointInfo(name, ns, _ros_type(dds_type), qos, gid))
            return sorted(out, key=lambda e: (e.node_namespace, e.node_name, e.gid))

    def close(self) -> None:
        """Stop; when our nodes were in the zero-GUID entry, publish it without them first."""
        self._stop.set()
        self._changed.set()
        self._thread.join(timeout=2.0)
        try:
            if self._zero_published:
                self._drain()
                with self.lock:
                    rest = self._union([], without_self=True)
                self._zero_writer.write(ParticipantEntitiesInfo(gid=Gid(ZERO_GID), node_entities_info_seq=rest))
        except DDSException:
            pass

    def entities(self) -> list:
        """Everything this object created, for the caller to delete (readers before topics)."""
        return [self._reader, self._private_reader, self._participants, self._publications, self._subscriptions,
                self._writer, self._zero_writer, self._private_writer, self._topic, self._private_topic]


def node_entities(name: str, namespace: str, reader_gids, writer_gids) -> NodeEntitiesInfo:
    return NodeEntitiesInfo(node_namespace=namespace, node_name=name,
                            reader_gid_seq=[Gid(g) for g in reader_gids], writer_gid_seq=[Gid(g) for g in writer_gids])
