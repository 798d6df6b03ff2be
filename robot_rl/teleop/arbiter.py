"""The arbiter: who commands the robot, the policy or the person, with a bumpless handover.

:class:`Arbiter` is transport-free numpy logic (plus MuJoCo kinematics for end-effector commands)
in the style of :mod:`robot_rl.safety.filter`: a node (or any loop) feeds it the policy's joint
commands, the teleop device's samples and the measured joint state, and calls :meth:`tick` at the
arbiter rate (100 Hz), sending what it returns to the safety node. Every method takes the time
``t`` (seconds, monotonic, one clock for all calls); nothing inside reads a clock. The arbiter
sits *ahead of* the safety layer: its output is limited by the safety node like any policy
command, and it never talks to the driver.

Sources (``status["source"]``), each tick, in this order:

    ====== =================================================== ====================================
    source when                                                output
    ====== =================================================== ====================================
    person clutch held on a fresh sample (not latched, below)  the last executed command moved by
                                                               the person's input (see modes)
    hold   the device went silent during an intervention       the last executed command, held
           (latched until a fresh sample with the clutch
           released), or no fresh policy command
    policy a fresh policy command                              the policy's command; after any other
                                                               source a blend first (see below)
    ====== =================================================== ====================================

A sample is fresh for ``device_timeout_s`` after it *arrived* (receive time, so the device's
clock need not be the arbiter's); a policy command for ``policy_timeout_s``. Before any command
was executed, "hold" sends nothing (None) and a takeover starts from the measured joint state.

Person modes (the device's ``TeleopSample.mode``), every tick from the last executed command ``u``:

* ``joint_velocity``: ``u + v dt``;
* ``ee_twist``: ``u + dq``, ``dq`` the damped least-squares IK (``ik_damping``) of the twist
  (turned from the robot's base frame into the world frame) times ``dt``, with the 6-D Jacobian of
  the robot's ``ee`` site at ``u`` (MuJoCo, the artifact's robot model);
* ``joint_position`` (a leader arm): toward the leader's positions;
* ``gripper`` (0 open .. 1 closed, when the artifact commands the fingers): toward that opening.

The person's goal is clipped to the joint limits less ``position_margin`` (the safety node's
margin, none on gripper fingers, as there: an integrated command never winds up beyond what the
safety node would send), and the step toward it is scaled back along its line to at most
``rate_limit * dt`` per joint. Takeover is therefore bumpless by construction: the first person
command is within one rate step of the last executed one.

Release (clutch let go, or back from "hold"): the output blends from where it is to the policy's
current command ``p``: the goal is ``from + a (p - from)``, ``a`` rising linearly from 0 to 1
over ``blend_s``, and the output moves toward that goal by at most ``rate_limit * dt``; the blend
ends when ``a = 1`` and the output has reached ``p``; then the policy's commands pass unchanged.

Device samples are validated with :func:`robot_rl.teleop.device.check_sample` against the
configured ``scale``; a bad one (malformed JSON, unknown mode, wrong length, NaN, over the scale,
unknown event, a stamp not newer than the last sample's) is dropped, counted by reason, and
:meth:`on_sample` returns ``(reason, message)`` for the node's rate-limited log. A dropped sample
does not feed the device's freshness: a device sending only garbage is a silent device.

Events (``success``, ``failure``, ``reset`` buttons) are queued once each for :meth:`pop_events`
as ``{"event", "stamp", "episode"}``; ``episode`` is the episode the event ends: ``success`` and
``failure`` label it and start the next one, ``reset`` ends it unlabeled and starts the next
(a ``reset`` right after a label, with no takeover in between, starts nothing new).

Thread safety: each public method holds one lock.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from robot_rl.joint_map import JointMap, JointMapError
from robot_rl.teleop.device import MODES, DeviceScale, TeleopError, TeleopSample, check_sample
from robot_rl.teleop.ik import EeTwistIK

POLICY, PERSON, HOLD = "policy", "person", "hold"
SOURCES = (POLICY, PERSON, HOLD)
DROP_REASONS = ("malformed", "unknown_mode", "wrong_length", "non_finite", "rejected", "old_stamp")


def _vec(name: str, v: Any, n: int) -> np.ndarray:
    a = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy() if np.ndim(v) == 0 else \
        np.asarray(v, dtype=np.float64)
    if a.shape != (n,) or not np.isfinite(a).all():
        raise ValueError(f"ArbiterConfig.{name} needs {n} finite values, got {v!r}")
    return a


@dataclass
class ArbiterConfig:
    """Joints, limits and timing of the arbiter (build it from an artifact with :meth:`from_spec`)."""

    joint_names: Sequence[str]
    """Commanded joints, in the order of the output (the policy's and the safety node's)."""
    lower: Any
    upper: Any
    rate_limit: Any
    """rad/s per joint (or one value): the most a person step or a blend moves the output."""
    robot_joints: Sequence[str] = ()
    """Order of a joint_velocity / joint_position sample's values (the robot's arm joints);
    default: the commanded joints that are not gripper fingers."""
    robot_model: str | None = None
    """The robot's MJCF text (ee_twist IK); None: ee_twist samples are refused."""
    ee_site: str = "ee"
    base_body: str | None = None
    gripper: dict | None = None
    """{"joint_names", "open_position", "closed_position"} when the fingers are commanded."""
    scale: DeviceScale = field(default_factory=DeviceScale)
    device_timeout_s: float = 0.2
    policy_timeout_s: float = 0.1
    blend_s: float = 0.5
    position_margin: float = 0.02
    ik_damping: float = 0.05
    max_tick_dt_s: float = 0.05

    def __post_init__(self) -> None:
        self.joint_names = list(self.joint_names)
        n = len(self.joint_names)
        if n == 0 or len(set(self.joint_names)) != n:
            raise ValueError(f"ArbiterConfig.joint_names must be distinct and non-empty, got {self.joint_names}")
        self.lower, self.upper = _vec("lower", self.lower, n), _vec("upper", self.upper, n)
        self.rate_limit = _vec("rate_limit", self.rate_limit, n)
        if (self.rate_limit <= 0).any():
            raise ValueError("ArbiterConfig.rate_limit must be > 0 rad/s for every joint")
        fingers = list((self.gripper or {}).get("joint_names", []))
        self.robot_joints = list(self.robot_joints) or [j for j in self.joint_names if j not in fingers]
        for name in ("device_timeout_s", "policy_timeout_s", "max_tick_dt_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ArbiterConfig.{name} must be > 0 s, got {getattr(self, name)!r}")
        if not (self.blend_s >= 0 and self.position_margin >= 0 and self.ik_damping > 0):
            raise ValueError("ArbiterConfig: blend_s and position_margin must be >= 0, ik_damping > 0")

    @classmethod
    def from_spec(cls, spec: dict, robot_xml: str | None, **overrides) -> "ArbiterConfig":
        """From an artifact's ``spec.json``: the commanded joints and their limits
        (:func:`robot_rl.artifact.command_limits`), the robot's ``ee`` frame, base body and
        gripper; ``rate_limit`` defaults to half the artifact's command rates."""
        from robot_rl.artifact import command_limits

        lim = command_limits(spec)
        robot = spec["robot"]
        grip = robot.get("gripper") or None
        commanded = set(lim["names"])
        kw = dict(joint_names=lim["names"], lower=lim["lower"], upper=lim["upper"],
                  rate_limit=[0.5 * v for v in lim["velocity"]],
                  robot_joints=[j for j in robot["joint_names"] if j in commanded],
                  robot_model=robot_xml, ee_site=robot.get("frames", {}).get("ee", "ee"),
                  base_body=robot.get("base_body"),
                  gripper=grip if grip and set(grip["joint_names"]) <= commanded else None)
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


class Arbiter:
    """Person over policy, with a bumpless handover (see the module docstring)."""

    def __init__(self, config: ArbiterConfig):
        self.config = cfg = config
        self.n = n = len(cfg.joint_names)
        self._idx = {j: i for i, j in enumerate(cfg.joint_names)}
        self._cmd_map = JointMap(cfg.joint_names, extra="refuse", what="policy command")
        self._state_map = JointMap(cfg.joint_names, what="joint state")
        # device joint order -> output indices (robot joints the artifact does not command are ignored)
        fingers = set((cfg.gripper or {}).get("joint_names", []))
        self._dev = [(k, self._idx[j]) for k, j in enumerate(cfg.robot_joints) if j in self._idx]
        margin = np.array([0.0 if j in fingers else cfg.position_margin for j in cfg.joint_names])
        self._lo, self._hi = cfg.lower + margin, cfg.upper - margin  # fingers: no margin (as the safety node)
        bad = self._lo > self._hi
        self._lo[bad] = self._hi[bad] = 0.5 * (cfg.lower[bad] + cfg.upper[bad])
        self._arm = np.array([self._idx[j] for j in cfg.robot_joints if j in self._idx], dtype=int)
        self._ik = None
        if cfg.robot_model is not None and len(self._arm):
            self._ik = EeTwistIK(cfg.robot_model, [cfg.joint_names[i] for i in self._arm], cfg.ee_site,
                             cfg.base_body, cfg.ik_damping)
        g = cfg.gripper
        self._fingers = np.array([self._idx[j] for j in g["joint_names"]], dtype=int) if g else np.zeros(0, int)
        self._lock = threading.Lock()
        self._out: np.ndarray | None = None
        self._policy: np.ndarray | None = None
        self._t_policy = -math.inf
        self._meas: np.ndarray | None = None
        self._sample: TeleopSample | None = None
        self._t_sample = -math.inf
        self._t_tick: float | None = None
        self._person = False
        self._latched = False  # device went silent mid-intervention: hold until the clutch is released
        self._blend: tuple[np.ndarray, float] | None = None  # (from, start time)
        self._passing = False  # the policy's commands pass unchanged
        self._events: list[dict] = []
        self._labeled = False  # the current episode was started by a success/failure label
        self.counters = {"ticks": 0, "person_ticks": 0, "hold_ticks": 0, "interventions": 0, "device_timeouts": 0,
                         "successes": 0, "failures": 0, "resets": 0, "policy_rejected": 0,
                         "samples_accepted": 0, "samples_dropped": {r: 0 for r in DROP_REASONS}}
        self.status: dict[str, Any] = {"source": HOLD, "reason": "no_command", "intervening": False, "blending": False,
                                       "device": "", "device_alive": False, "device_age_s": None,
                                       "policy_alive": False, "policy_age_s": None, "interventions": 0,
                                       "episode": 0, "last_event": None, "stamp": None,
                                       "intervention_rate": 0.0, "counters": self.counters}

    # -- inputs ----------------------------------------------------------------------------------
    def on_policy(self, t: float, names: Sequence[str], q: Any) -> str | None:
        """The policy's newest command (``names`` in any order). Returns None, or why it was refused."""
        with self._lock:
            try:
                v = self._cmd_map.take(list(names), np.asarray(q, dtype=np.float64))
            except (JointMapError, TypeError, ValueError) as e:
                self.counters["policy_rejected"] += 1
                return f"policy command refused: {e}"
            if not np.isfinite(v).all():
                self.counters["policy_rejected"] += 1
                return "policy command refused: NaN/inf values"
            self._policy, self._t_policy = v, float(t)
            return None

    def on_state(self, t: float, names: Sequence[str], q: Any) -> str | None:
        """The measured joint state (anchors a takeover before anything was executed)."""
        with self._lock:
            try:
                v = self._state_map.take(list(names), np.asarray(q, dtype=np.float64))
            except (JointMapError, TypeError, ValueError) as e:
                return f"joint state refused: {e}"
            if not np.isfinite(v).all():
                return "joint state refused: NaN/inf values"
            self._meas = v
            return None

    def on_sample(self, t: float, sample: TeleopSample | dict | str) -> tuple[str, str] | None:
        """A teleop sample (a ``TeleopSample``, its ``to_dict()``, or that as JSON). Returns None
        when accepted, else ``(reason, one-line message)``; the sample is then dropped."""
        with self._lock:
            try:
                if isinstance(sample, (str, bytes)):
                    sample = json.loads(sample)
                if isinstance(sample, dict):
                    sample = TeleopSample.from_dict(sample)
                if not isinstance(sample, TeleopSample):
                    raise TeleopError(f"teleop sample must be a JSON object, got {type(sample).__name__}")
            except (TeleopError, ValueError) as e:
                return self._drop("malformed", f"teleop sample dropped: {e}")
            try:
                check_sample(sample, self.config.scale, len(self.config.robot_joints))
            except TeleopError as e:
                v = np.asarray(sample.values)
                want = 6 if sample.mode == "ee_twist" else len(self.config.robot_joints)
                reason = ("unknown_mode" if sample.mode not in MODES else "wrong_length" if v.shape != (want,)
                          else "non_finite" if not (np.isfinite(v).all() and math.isfinite(sample.stamp))
                          else "rejected")
                return self._drop(reason, f"{e} (dropped)")
            if sample.mode == "ee_twist" and self._ik is None:
                return self._drop("rejected", "teleop ee_twist needs the robot model for IK (ArbiterConfig."
                                  "robot_model); use a joint mode device")
            if self._sample is not None and sample.stamp <= self._sample.stamp:
                return self._drop("old_stamp", f"teleop sample stamp {sample.stamp:.6f} is not newer than the last "
                                  f"one ({self._sample.stamp:.6f}): dropped (a restarted device must stamp with "
                                  "a monotonic clock)")
            self._sample, self._t_sample = sample, float(t)
            self.counters["samples_accepted"] += 1
            for ev in sorted(sample.events):
                self._event(ev, float(t))
            return None

    def _drop(self, reason: str, msg: str) -> tuple[str, str]:
        self.counters["samples_dropped"][reason] += 1
        return reason, msg

    def _event(self, ev: str, t: float) -> None:
        st = self.status
        self._events.append({"event": ev, "stamp": t, "episode": st["episode"]})
        if not (ev == "reset" and self._labeled):  # a reset right after a label: that label started it
            st["episode"] += 1
        self._labeled = ev in ("success", "failure")
        self.counters[{"success": "successes", "failure": "failures", "reset": "resets"}[ev]] += 1
        st["last_event"] = ev

    def pop_events(self) -> list[dict]:
        """Device events since the last call, oldest first (each returned once)."""
        with self._lock:
            ev, self._events = self._events, []
            return ev

    @property
    def output(self) -> np.ndarray | None:
        """The last executed command (a copy), or None."""
        with self._lock:
            return None if self._out is None else self._out.copy()

    # -- tick ------------------------------------------------------------------------------------
    def tick(self, t: float) -> tuple[np.ndarray | None, dict]:
        """One arbiter step at ``t``: ``(command or None, status)``; ``status`` is updated in place."""
        with self._lock:
            t = float(t)
            if not math.isfinite(t) or (self._t_tick is not None and t < self._t_tick):
                raise ValueError(f"tick time {t!r} is not finite or went backwards")
            dt = 0.0 if self._t_tick is None else min(t - self._t_tick, self.config.max_tick_dt_s)
            self._t_tick = t
            cfg, st, c = self.config, self.status, self.counters
            s = self._sample
            dev_age = t - self._t_sample
            fresh = s is not None and dev_age <= cfg.device_timeout_s
            pol_age = t - self._t_policy
            pol_fresh = self._policy is not None and pol_age <= cfg.policy_timeout_s
            if self._latched and fresh and not s.clutch:
                self._latched = False  # released: the policy may have the robot back
            if self._person:
                if not fresh:
                    self._person, self._latched = False, True
                    c["device_timeouts"] += 1
                elif not s.clutch:
                    self._person = False
            elif fresh and s.clutch and not self._latched:
                if self._out is None and self._meas is not None:
                    self._out = self._meas.copy()
                if self._out is not None:
                    self._person, self._labeled = True, False
                    c["interventions"] += 1
            if self._person:
                source, reason = PERSON, "clutch"
                self._person_step(s, dt)
                self._passing, self._blend = False, None
            elif self._latched:
                source, reason = HOLD, "device_silent" if not fresh else "release_clutch"
                self._passing, self._blend = False, None
            elif not pol_fresh:
                source, reason = HOLD, "no_command" if self._policy is None else "policy_silent"
                self._passing, self._blend = False, None
            else:
                source, reason = POLICY, "policy"
                self._policy_step(t, dt)
                if self._blend is not None:
                    reason = "blend"
            c["ticks"] += 1
            c["person_ticks"] += source == PERSON
            c["hold_ticks"] += source == HOLD
            st.update(source=source, reason=reason, intervening=source == PERSON, blending=self._blend is not None,
                      device="" if s is None else s.device, device_alive=bool(fresh),
                      device_age_s=None if s is None else dev_age, policy_alive=bool(pol_fresh),
                      policy_age_s=None if self._policy is None else pol_age, interventions=c["interventions"],
                      stamp=t, intervention_rate=c["person_ticks"] / c["ticks"])
            return (None if self._out is None else self._out.copy()), st

    def _policy_step(self, t: float, dt: float) -> None:
        p = self._policy
        if self._out is None or self._passing:
            self._out, self._passing = p.copy(), True
            return
        if self._blend is None:
            self._blend = (self._out.copy(), t)
        start, t0 = self._blend
        a = 1.0 if self.config.blend_s <= 0 else min(1.0, (t - t0) / self.config.blend_s)
        reached = self._step_toward(start + a * (p - start), dt)
        if a >= 1.0 and reached:
            self._out, self._blend, self._passing = p.copy(), None, True

    def _step_toward(self, goal: np.ndarray, dt: float) -> bool:
        """Move the output toward ``goal`` along a straight line, at most rate_limit * dt per joint."""
        d = goal - self._out
        need = float(np.max(np.abs(d) / self.config.rate_limit))
        if need <= dt:
            self._out = goal.copy()
            return True
        self._out = self._out + d * (dt / need)
        return False

    def _person_step(self, s: TeleopSample, dt: float) -> None:
        goal = self._out.copy()
        arm = self._arm
        if s.mode == "joint_position":
            for k, i in self._dev:
                goal[i] = s.values[k]
        elif s.mode == "joint_velocity":
            for k, i in self._dev:
                goal[i] += s.values[k] * dt
        elif dt > 0 and np.any(s.values):  # ee_twist
            goal[arm] += self._ik.step(self._out[arm], np.asarray(s.values, dtype=np.float64), dt)
        if s.gripper is not None and len(self._fingers):
            g = self.config.gripper
            goal[self._fingers] = g["open_position"] + s.gripper * (g["closed_position"] - g["open_position"])
        np.clip(goal, self._lo, self._hi, out=goal)
        self._step_toward(goal, dt)

    def ee_position(self, q: Any) -> np.ndarray:
        """World position of the ``ee`` site for a command ``q`` (output order); needs the model."""
        if self._ik is None:
            raise ValueError("no robot model: ArbiterConfig.robot_model is None")
        return self._ik.ee_pos(np.asarray(q, dtype=np.float64)[self._arm])
