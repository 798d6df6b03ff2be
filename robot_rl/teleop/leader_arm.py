"""Leader-arm teleop (`leader_arm`): another robot's joint states on a ROS 2 topic drive the
follower's joints (joint_position mode), like a GELLO / ALOHA / SO-100 leader.

    leader/joint_states (sensor_msgs/JointState) --joint_map, sign, offset--> joint_position sample
    leader/clutch (std_msgs/Bool, with clutch="topic"), leader/events (std_msgs/String)

* `joint_map` {leader joint: follower joint}; empty = the same names. Each follower joint gets
  `sign * leader_position + offset` (`signs` and `offsets` keyed by leader joint, default 1 and 0).
* `follower_joints`: the follower's joint order (the order of the sample's values); empty = the
  order of the follower's `joint_states` (the `teleop` node passes them to `show_state`), so no
  sample goes out before the follower has been heard.
* Every follower joint must be fed by the map: a leader message that lacks one, or carries
  NaN/inf, is refused (`poll` raises `TeleopError` naming the joints; the node then stops
  publishing and the arbiter holds).
* Clutch: `always` (the leader commands whenever it moves: the clutch is always held) or `topic`
  (a pedal or button publishing std_msgs/Bool on `clutch_topic`; released until the first true).
* Events: std_msgs/String on `events_topic`, either a bare `success` / `failure` / `reset` or JSON
  `{"event": "success"}`.
* `gripper_joint`: a leader joint read as the gripper, mapped linearly from `gripper_range`
  [open, closed] to 0..1.

`poll` returns the newest mapped position while the leader's last message is younger than
`stale_s`, None otherwise (a silent leader: the arbiter holds). The device subscribes on the
transport node given as `node` (the teleop node's own), or creates and spins its own node.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_rl.teleop.device import EVENTS, DeviceConfig, TeleopError, TeleopSample, register_device


@dataclass
class LeaderArmConfig(DeviceConfig):
    topic: str = "leader/joint_states"
    joint_map: dict = field(default_factory=dict)
    """{leader joint name: follower joint name}; empty: the same names."""
    signs: dict = field(default_factory=dict)
    offsets: dict = field(default_factory=dict)
    follower_joints: list = field(default_factory=list)
    clutch: str = "always"
    """always | topic"""
    clutch_topic: str = "leader/clutch"
    events_topic: str = "leader/events"
    stale_s: float = 0.2
    gripper_joint: str = ""
    gripper_range: list = field(default_factory=lambda: [0.0, 1.0])
    node: Any = None
    """Transport node to subscribe on (None: the device makes and spins its own)."""


class LeaderArm:
    mode = "joint_position"

    def __init__(self, cfg: LeaderArmConfig):
        if cfg.clutch not in ("always", "topic"):
            raise TeleopError(f"leader_arm clutch={cfg.clutch!r} must be 'always' or 'topic'")
        if cfg.stale_s <= 0 or len(cfg.gripper_range) != 2 or cfg.gripper_range[0] == cfg.gripper_range[1]:
            raise TeleopError(f"leader_arm stale_s={cfg.stale_s} must be > 0 and gripper_range two different "
                              f"values [open, closed], got {cfg.gripper_range}")
        self.cfg, self.scale, self.name = cfg, cfg.scale, "leader_arm"
        self.follower_joints: list[str] = list(cfg.follower_joints)
        self._lock = threading.Lock()
        self._latest: tuple[float, dict[str, float]] | None = None
        self._stamp_polled = -math.inf
        self._clutch = cfg.clutch == "always"
        self._events: set[str] = set()
        self.bad_messages = 0
        self._seq = 0
        self._own = cfg.node is None
        if self._own:
            from robot_rl.transport import create_node

            self.node = create_node("teleop_leader_arm")
        else:
            self.node = cfg.node
        from robot_rl.transport import msgs

        self._subs = [self.node.create_subscription(msgs.JointState, cfg.topic, self._on_joints, qos="sensor_data"),
                      self.node.create_subscription(msgs.String, cfg.events_topic, self._on_event)]
        if cfg.clutch == "topic":
            self._subs.append(self.node.create_subscription(msgs.Bool, cfg.clutch_topic, self._on_clutch))
        if self._own:
            self.node.start()

    # callbacks (the node's spin thread)
    def _on_joints(self, msg) -> None:
        pos = dict(zip(msg.name, (float(p) for p in msg.position)))
        with self._lock:
            self._latest = (time.monotonic(), pos)

    def _on_clutch(self, msg) -> None:
        with self._lock:
            self._clutch = bool(msg.data)

    def _on_event(self, msg) -> None:
        text = msg.data.strip()
        try:
            ev = json.loads(text).get("event") if text.startswith("{") else text
        except (ValueError, AttributeError):
            ev = None
        with self._lock:
            if ev in EVENTS:
                self._events.add(ev)
            else:
                self.bad_messages += 1

    def _map(self, pos: dict[str, float]) -> np.ndarray:
        cfg = self.cfg
        inverse = {f: l for l, f in cfg.joint_map.items()} if cfg.joint_map else {}
        leaders = [inverse.get(f, f if not cfg.joint_map else None) for f in self.follower_joints]
        missing = [f for f, l in zip(self.follower_joints, leaders) if l is None or l not in pos]
        if missing:
            self.bad_messages += 1
            raise TeleopError(f"leader arm message on {cfg.topic} does not feed follower joints {missing}; set "
                              "joint_map {leader: follower} so that every follower joint has a leader joint")
        q = np.array([float(cfg.signs.get(l, 1.0)) * pos[l] + float(cfg.offsets.get(l, 0.0)) for l in leaders])
        if not np.all(np.isfinite(q)):
            self.bad_messages += 1
            raise TeleopError(f"leader arm message on {cfg.topic} has NaN/inf positions; refused (the robot holds)")
        return q

    def poll(self, now: float | None = None) -> TeleopSample | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            latest, clutch = self._latest, self._clutch
            events, self._events = frozenset(self._events), set()
        if latest is None or not self.follower_joints or now - latest[0] > self.cfg.stale_s:
            if events:  # keep them for the next sample
                with self._lock:
                    self._events |= events
            return None
        stamp, pos = latest
        q = self._map(pos)
        grip = None
        if self.cfg.gripper_joint:
            g = pos.get(self.cfg.gripper_joint)
            if g is not None and math.isfinite(g):
                lo, hi = self.cfg.gripper_range
                grip = float(np.clip((g - lo) / (hi - lo), 0.0, 1.0))
        self._seq += 1
        return TeleopSample(stamp=stamp, mode=self.mode, values=q, clutch=clutch, events=events, gripper=grip,
                            device=self.name, seq=self._seq)

    def show_state(self, state: dict[str, Any]) -> None:
        """Learns the follower's joint order from its joint_states (`state["joint_names"]`) when
        `follower_joints` was not given."""
        names = state.get("joint_names")
        if names and not self.cfg.follower_joints and list(names) != self.follower_joints:
            self.follower_joints = list(names)

    def close(self) -> None:
        for s in self._subs:
            try:
                s.destroy()
            except Exception:  # noqa: BLE001 - the node may already be shut down
                pass
        if self._own:
            self.node.shutdown()


register_device("leader_arm", LeaderArmConfig, LeaderArm)
