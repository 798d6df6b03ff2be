"""The actor-learner link over ZeroMQ: the learner binds a ROUTER, each actor connects a DEALER.

Wire format, every message: `[MAGIC, kind, header (JSON), payload]`, the payload a safetensors
blob of named tensors (possibly empty). Never pickle. Kinds:

| kind | from | header | payload |
|---|---|---|---|
| `hb` | actor | `sid` (actor session), `version` and `boot` of the weights it acts with | - |
| `tr` | actor | `sid`, `seq` (per session), `n` | transitions (`obs`, `act`, ...) |
| `hb` | learner | `boot` (learner process id), `version` published, `updates` | - |
| `ack` | learner | `seq` | - |
| `w` | learner | `version`, `boot`, `updates`, `time` (wall clock at publication) | actor weights |

`ActorLink` never blocks: `send_transitions` appends to a bounded queue of unacknowledged chunks
(the oldest dropped, counted, when full), `poll()` drains incoming messages and (re)sends due
chunks with NOBLOCK; chunks stay queued until the learner acknowledges them, so a learner that
dies or a network that drops loses nothing the queue can hold, and a restarted learner (new
`boot`) receives everything still unacknowledged. ZeroMQ reconnects the socket by itself.

Weights versions count up within one learner process (`boot`); the actor takes any version of a
restarted learner (which resumes from its last checkpoint, possibly behind what the actor had).

`LearnerLink.poll()` returns decoded messages; a malformed one (another program on the port, a
version mismatch) is skipped, never an exception: one log line for the first, then at most one
every 5 s with the count (ZeroMQ may even frame raw TCP garbage as messages: ZMTP 1.0).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import zmq
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

MAGIC = b"robot-rl-hil/1"
KINDS = {b"hb", b"tr", b"ack", b"w"}


class LinkError(ValueError):
    pass


def encode(kind: str, header: dict, tensors: dict[str, torch.Tensor] | None = None) -> list[bytes]:
    payload = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}) if tensors else b""
    return [MAGIC, kind.encode(), json.dumps(header).encode(), payload]


def decode(frames: list[bytes]) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """(kind, header, tensors) of a message; `LinkError` naming what is wrong otherwise."""
    if len(frames) != 4:
        raise LinkError(f"expected 4 frames, got {len(frames)}")
    magic, kind, header, payload = frames
    if magic != MAGIC:
        raise LinkError(f"bad protocol tag {magic[:32]!r} (expected {MAGIC!r}): another program, or an actor and "
                        "learner of different robot-rl versions")
    if kind not in KINDS:
        raise LinkError(f"unknown message kind {kind[:16]!r}")
    try:
        head = json.loads(header)
        tensors = st_load(payload) if payload else {}
    except Exception as e:  # noqa: BLE001 -- anything a hostile peer sends is a malformed message
        raise LinkError(f"undecodable {kind.decode()} message: {type(e).__name__}: {str(e)[:80]}") from None
    if not isinstance(head, dict):
        raise LinkError("the header is not a JSON object")
    return kind.decode(), head, tensors


class _Complainer:
    """One log line for the first malformed message, then at most one every `every_s` seconds
    (with the count of those not logged): a peer that floods garbage cannot flood the log."""

    def __init__(self, log, who: str, every_s: float = 5.0):
        self.log, self.who, self.every_s = log, who, every_s
        self.at, self.quiet, self.count = -1e9, 0, 0

    def __call__(self, what: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.at < self.every_s:
            self.quiet += 1
            return
        more = f" ({self.quiet} more malformed messages not shown)" if self.quiet else ""
        self.log(f"{self.who}: ignored a malformed message{what}{more}")
        self.at, self.quiet = now, 0


def _socket(ctx: zmq.Context, kind: int) -> zmq.Socket:
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, 1000)
    s.setsockopt(zmq.RCVHWM, 1000)
    s.setsockopt(zmq.RECONNECT_IVL, 100)
    s.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
    return s


@dataclass
class _Chunk:
    frames: list[bytes]
    n: int
    sent_at: float = -1.0


@dataclass
class ActorLink:
    address: str = "tcp://127.0.0.1:5588"
    heartbeat_s: float = 0.25
    timeout_s: float = 2.0
    """The learner counts as gone after this long without a message from it."""
    resend_s: float = 2.0
    max_buffered: int = 200_000
    """Transitions kept unacknowledged at most; beyond, the oldest chunks are dropped (counted)."""
    log: object = print
    clock: object = time.monotonic
    sid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self):
        self.ctx = zmq.Context.instance()
        self.sock = _socket(self.ctx, zmq.DEALER)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)  # no queueing towards a learner that is not connected
        self.sock.connect(self.address)
        self.pending: OrderedDict[int, _Chunk] = OrderedDict()
        self.buffered = self.dropped = self.seq = 0
        self.sent_total = 0  # transitions handed to `send_transitions`, ever
        self.heard_at = -1e9
        self.hb_at = -1e9
        self.boot = self.weights_boot = None
        self.version = -1  # weights the actor acts with
        self.learner_version = self.learner_updates = -1
        self.weights: tuple[int, dict, dict] | None = None  # newest received, not yet taken
        self.complain = _Complainer(self.log, "actor")

    @property
    def malformed(self) -> int:
        return self.complain.count

    @property
    def learner_alive(self) -> bool:
        return self.clock() - self.heard_at < self.timeout_s

    def send_transitions(self, tensors: dict[str, torch.Tensor]) -> None:
        self.seq += 1
        n = len(next(iter(tensors.values())))
        self.pending[self.seq] = _Chunk(encode("tr", {"sid": self.sid, "seq": self.seq, "n": n}, tensors), n)
        self.buffered += n
        self.sent_total += n
        while self.buffered > self.max_buffered and len(self.pending) > 1:
            _, old = self.pending.popitem(last=False)
            self.buffered -= old.n
            self.dropped += old.n

    def _send(self, frames: list[bytes]) -> bool:
        try:
            self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False

    def take_weights(self):
        """(version, header, state dict) of the newest weights received since the last call, or None."""
        w, self.weights = self.weights, None
        if w is not None:
            self.version, self.weights_boot = w[0], w[1].get("boot")
        return w

    def poll(self, max_send: int = 8) -> None:
        """Non-blocking: receive everything waiting, send a heartbeat when due, (re)send chunks."""
        now = self.clock()
        while True:
            try:
                frames = self.sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                kind, head, tensors = decode(frames)
            except LinkError as e:
                self.complain(f" from the learner: {e}")
                continue
            self.heard_at = now
            if kind == "hb":
                if head.get("boot") != self.boot:
                    if self.boot is not None:
                        self.log(f"actor: learner restarted (boot {head.get('boot')}); resending "
                                 f"{self.buffered} unacknowledged transitions")
                    self.boot = head.get("boot")
                    for c in self.pending.values():
                        c.sent_at = -1.0
                self.learner_version = int(head.get("version", -1))
                self.learner_updates = int(head.get("updates", -1))
            elif kind == "ack":
                c = self.pending.pop(int(head.get("seq", -1)), None)
                if c is not None:
                    self.buffered -= c.n
            elif kind == "w":  # versions count up within one learner process; a restarted one starts
                v, boot = int(head.get("version", -1)), head.get("boot")  # from its checkpoint's
                newer = boot != self.weights_boot or v > self.version
                if newer and (self.weights is None or boot != self.weights[1].get("boot") or v > self.weights[0]):
                    self.weights = (v, head, tensors)
        if now - self.hb_at >= self.heartbeat_s:
            if self._send(encode("hb", {"sid": self.sid, "version": self.version, "boot": self.weights_boot})):
                self.hb_at = now
        if not self.learner_alive:
            return
        sent = 0
        for c in self.pending.values():
            if sent >= max_send:
                break
            if c.sent_at < 0 or now - c.sent_at > self.resend_s:
                if not self._send(c.frames):
                    break
                c.sent_at, sent = now, sent + 1

    def wait_for_updates(self, target: int, timeout_s: float, sleep=time.sleep) -> bool:
        """Poll until the learner reports at least `target` updates (True), or it is gone or
        `timeout_s` passed (False). In simulation the actor can wait here so that a run gets the
        same updates per transition on any host; a real robot's actor never waits."""
        deadline = self.clock() + timeout_s
        while True:
            self.poll()
            if self.learner_updates >= target:
                return True
            if self.clock() >= deadline or (not self.learner_alive and self.heard_at > -1e9):
                return False
            sleep(0.02)

    def close(self) -> None:
        self.sock.close(0)


class LearnerLink:
    """The learner's ROUTER: `poll(timeout_ms)` -> [(peer, kind, header, tensors)]; `send(peer, ...)`."""

    def __init__(self, address: str = "tcp://127.0.0.1:5588", log=print):
        self.log = log
        self.ctx = zmq.Context.instance()
        self.sock = _socket(self.ctx, zmq.ROUTER)
        try:
            self.sock.bind(address)
        except zmq.ZMQError as e:
            self.sock.close(0)
            raise LinkError(f"cannot bind the learner to {address}: {e}; is another learner running? pick another "
                            "--port") from None
        self.address = address
        self.complain = _Complainer(log, "learner")
        self.boot = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def poll(self, timeout_ms: int = 0, max_messages: int = 256) -> list[tuple[bytes, str, dict, dict]]:
        out: list = []
        if not self.sock.poll(timeout_ms, zmq.POLLIN):
            return out
        while len(out) < max_messages:
            try:
                peer, *frames = self.sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                kind, head, tensors = decode(frames)
            except LinkError as e:
                self.complain(f" on {self.address}: {e}")
                continue
            out.append((peer, kind, head, tensors))
        return out

    @property
    def malformed(self) -> int:
        return self.complain.count

    def send(self, peer: bytes, kind: str, header: dict, tensors: dict | None = None) -> None:
        try:
            self.sock.send_multipart([peer, *encode(kind, header, tensors)], flags=zmq.NOBLOCK)
        except zmq.Again:  # that actor's queue is full: it catches up through heartbeats
            pass

    def close(self) -> None:
        self.sock.close(0)
