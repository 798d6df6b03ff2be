"""The safety filter: the last stage between a policy and a robot driver.

:class:`SafetyFilter` is transport-free, single-process numpy logic (plus MuJoCo kinematics for
the workspace box); a ROS 2 node (or any other loop) feeds it joint states, policy commands,
e-stop and risk messages, and calls :meth:`tick` at the safety rate (500 Hz - 1 kHz), sending
whatever it returns to the driver. Every method takes the current time ``t`` (seconds, monotonic,
same clock for all calls) as an argument; nothing inside reads a clock, so behaviour is
deterministic and testable.

Data path (positions are in the configured ``joint_names`` order)::

    on_command(t, names, q)  -- validate (length, names, NaN/Inf) -> reorder by name
                              -> clip to [lower + margin, upper - margin]
                              -> workspace: scale back along the path from the current command
                              -> target
    tick(t)                  -- pick a mode (priority order below)
                              -> ok: move the output toward the target, at most rate * dt per
                                 joint, along a straight line in joint space; any other mode:
                                 the filter's own motion within rate and acceleration limits
                              -> (command or None, status)

Modes, highest priority first (the first that applies wins):

    ======== ================================================ =====================================
    mode     when                                             output
    ======== ================================================ =====================================
    brake    internal error (latched until ``reset_fault``)   stop, then to the measured position
                                                              latched at brake start
    estop    e-stop engaged (latched until ``reset_estop``)   ``estop_action``: brake | hold
    fault    no / invalid / stale joint state                 ``fault_action``: None | hold
    hold     CBF: start position inside a margin (latched)    stop, then hold where it stopped
    brake    CBF: solver error, NaN (latched)                 same (brake)
    brake    measured velocity or effort over its limit, or   same (brake)
             CBF: infeasible QP (for ``monitor_hold_s``)
    backup   risk > threshold (until < threshold-hysteresis   ``backup``: hold | retreat to home |
             for ``risk_dwell_s``)                            retreat along the recent path
    brake    no command for ``brake_timeout_s``               same (brake)
    hold     no command yet / for ``cmd_timeout_s`` / no new  stop, then hold where it stopped
             command since the last intervention
    ok       fresh, validated command                         target, rate limited
    ======== ================================================ =====================================

Every mode but ``ok`` moves the output by :class:`robot_rl.safety.braking.FilterMotion`, never by a
jump: no step above ``rate * dt`` and no change of step above ``acceleration_limit * dt**2`` per
joint, the command velocity being tracked from the last outputs. It first decelerates along the
direction of motion to rest (from full speed within 0.1 s and about ``v**2 / (2 a)`` by default),
then: "hold" (and e-stop "hold", fault "hold", backup "hold") keeps sending that stopping point;
"brake" goes on, along a straight joint-space line with a trapezoidal profile, to the measured
joint position latched when braking started, and keeps sending that (re-latching every tick would
let the arm sag under gravity); backup "retreat" does the same toward ``home`` at
``min(retreat_rate, rate)``. In ``ok`` the output follows the workspace-checked straight line to
the target at the rate limit only (bending that line to smooth accelerations would leave the
checked path); the policy's own commands set those accelerations. After any non-``ok`` tick the
pending target is dropped: the filter resumes only on a command received after the intervention,
validated from where the output is then, so an old command is never replayed and the workspace
check always covers the path actually taken.

Re-anchoring: after a fault in which nothing was sent (``fault_action`` none: the driver held its
last command, and the robot may have been moved meanwhile: a scene reset, a person, a re-homing),
the output restarts from the first valid measured position, as at start-up, and any target
checked from the old output is dropped; the robot is never pulled back to where the output was
(the policy node re-anchors its held targets after a joint-state outage the same way).

Workspace handling: a command is never rejected for the workspace; it is *scaled back*. The
straight joint-space path from the current command (the last output) to the new target is sampled
(``workspace_resolution`` rad apart, at most ``WORKSPACE_MAX_SAMPLES`` points) with MuJoCo forward
kinematics of the robot model (``mj_kinematics`` on the filter's own ``MjData``, ~1.5 us a point),
from the start outward, stopping at the first point outside; the target becomes the farthest
point along that path before the end-effector site would leave the box (refined by bisection to
1/256 of a sample step). A path longer than ``WORKSPACE_MAX_SAMPLES`` samples is cut after the
last one (the command counts as clipped by "workspace"): every point of an accepted path is
checked at the configured resolution, never more coarsely, and the check holds the lock for about
half a millisecond at most on the development CPU (a 0.05 rad step: ~40 us); a policy sending
commands at 50 Hz never comes near the cut (256 x 0.02 rad = 5.1 rad by default). If the current
command is already outside the box (e.g. at start-up), the path may go on only while it does not
get farther outside, so the robot can always come back in. Because the tick moves along that same
straight line (uniform rate scaling, not per-joint clipping), every command sent stays on the
checked path. The filter's own motions are not checked per step: a stop overshoots the current
line by at most its stopping distance (clipped to the joint limits), and the backup "retreat" to
``home`` (itself checked, inside the joint limits and the box, when the filter is built) follows the
straight joint-space line from where the output came to rest.

CBF stage (``config.cbf``, :mod:`robot_rl.safety.cbf`): in ``ok`` the step the rate limiter
computed (last output -> new output) is the nominal of a CBF-QP that keeps the commanded arm out of
the scene's table and obstacles (``margin``), its links apart (``self_margin``), its ``ee`` inside
the scene's workspace box and its joints within the command limits, at the velocity limit; the
output becomes the QP's safe step ("cbf" in ``active_limits`` when it changed the step). The QP may
bend the straight line toward the target (the on_command workspace check covers that line; the
CBF's own box covers the bent one). With the measured joint state the QP also keeps the command on
the safe side of each barrier's tangent plane at the measured arm, so a servo lagging behind its
command does not cut a corner into an obstacle. An infeasible QP brakes (``cbf_infeasible``, for at
least ``monitor_hold_s``, then holds until a new command, as a velocity trip does); a solver error
or a non-finite value brakes latched until :meth:`reset_fault` (``cbf_error``); a start position
that already violates a barrier holds (``cbf_unsafe_start``, latched, one line in ``last_error``). The
filter's own motions (hold, brake, retreat) are not filtered: a stop overshoots by its stopping
distance, which the margins must cover.

Fail closed: an exception anywhere in :meth:`tick` latches an internal error and brakes (that tick
sends one braking step from the last output; with no usable output, the latched brake position;
with neither, nothing); an exception while handling a command rejects the command. A raw policy
command is never returned: outputs only come from validated, clipped targets moved by the rate
limiter.

Thread safety: each public method holds one lock, so state, command, e-stop and risk callbacks
may come from other threads than the tick.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Sequence

import numpy as np

from robot_rl.joint_map import JointMap, JointMapError

from .braking import BRAKE as _M_BRAKE
from .braking import RETREAT as _M_RETREAT
from .braking import STOP as _M_STOP
from .braking import FilterMotion
from .config import SafetyConfig
from .recovery import PathMemory, PathRetreat, RiskGate

# most points of one command's path the workspace check evaluates (see the module docstring)
WORKSPACE_MAX_SAMPLES = 256
_WS_REFINE_STEPS = 8  # bisection steps between the last good and the first bad sample: 1/256 step

# modes
OK, HOLD, BRAKE, ESTOP, BACKUP, FAULT = "ok", "hold", "brake", "estop", "backup", "fault"
MODES = (OK, HOLD, BRAKE, ESTOP, BACKUP, FAULT)

# reasons a command is rejected (counters["commands_rejected"])
COMMAND_REJECT_REASONS = (
    "wrong_length",
    "unknown_joint",
    "missing_joint",
    "duplicate_joint",
    "non_finite",
    "bad_type",
    "bad_time",
    "no_state",
    "internal_error",
)
# reasons a command is altered (counters["commands_clipped"])
COMMAND_CLIP_REASONS = ("position_limit", "workspace")
# reasons a joint state message is rejected (counters["states_rejected"]); also fault reasons
STATE_REJECT_REASONS = (
    "state_wrong_length",
    "state_unknown_joint",
    "state_missing_joint",
    "state_duplicate_joint",
    "state_non_finite",
    "state_bad_type",
    "state_bad_time",
    "state_internal_error",
)
# reasons for a non-ok tick (status["reason"], counters["interventions"]: counted on entry)
INTERVENTION_REASONS = (
    "internal_error",
    "estop",
    "no_state",
    "state_stale",
    *STATE_REJECT_REASONS,
    "velocity_limit",
    "effort_limit",
    "risk",
    "risk_stale",
    "cmd_timeout_brake",
    "no_command",
    "cmd_stale",
    "awaiting_command",
    "cbf_unsafe_start",
    "cbf_infeasible",
    "cbf_error",
)
STATUS_KEYS = (
    "t",
    "mode",
    "reason",
    "active_limits",
    "risk",
    "backup",
    "estop_latched",
    "estop_engaged",
    "state_age",
    "cmd_age",
    "counters",
    "last_reject_reason",
    "last_state_fault",
    "last_reject_detail",
    "last_intervention",
    "last_error",
    "cbf",
)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason


def _time(t: Any, reason: str) -> float:
    """A message time as a finite float (a NaN time would make every age comparison false,
    i.e. never stale: fail open)."""
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise _Reject(reason, f"time {t!r} is not a number") from None
    if not math.isfinite(t):
        raise _Reject(reason, f"time {t!r} is not finite")
    return t


class _SitePath:
    """World position of one site for a batch of joint configurations: MuJoCo ``mj_kinematics``
    of the robot model in a tight loop on a private ``MjData`` (the same numbers as
    :meth:`robot_rl.kinematics.RobotKinematics.site_pos`, at ~1.5 us a point instead of ~8)."""

    def __init__(self, kin: Any, site: str):
        import mujoco

        m = kin.model
        try:
            self._sid = m.site(site).id
        except KeyError:
            raise ValueError(f"site {site!r} is not in the robot model (sites: {list(kin.site_names)})") from None
        self._m, self._d = m, mujoco.MjData(m)
        self._kinematics = mujoco.mj_kinematics
        qadr = [int(m.jnt_qposadr[m.joint(j).id]) for j in kin.joint_names]
        contiguous = qadr == list(range(qadr[0], qadr[0] + len(qadr)))
        self._qidx = slice(qadr[0], qadr[0] + len(qadr)) if contiguous else np.array(qadr)

    def positions(self, q: np.ndarray) -> np.ndarray:
        """[k, 3] site positions for q [k, n] (joint order of the kinematics)."""
        m, d, qidx, kinematics = self._m, self._d, self._qidx, self._kinematics
        qpos, site = d.qpos, d.site_xpos[self._sid]  # views into the MjData buffers
        out = np.empty((len(q), 3))
        for i, row in enumerate(q):
            qpos[qidx] = row
            kinematics(m, d)
            out[i] = site
        return out


class SafetyFilter:
    """Joint-space safety filter (see the module docstring for the behaviour).

    Args:
        config: limits, timeouts and behaviours.
        kinematics: optional :class:`robot_rl.kinematics.RobotKinematics` (in the configured
            joint order) for the workspace box; by default built from ``config.robot_model``. Only
            its model is used: the filter evaluates it on its own ``MjData``, so the object may
            be shared with other threads (e.g. the safety critic's).
    """

    def __init__(self, config: SafetyConfig, kinematics: Any = None):
        self.config = cfg = config
        n = self.n = cfg.njoint
        # name -> index mapping of commands (strict) and joint states (extras per strict_state_names)
        self._cmd_map = JointMap(cfg.joint_names, extra="refuse", what="command")
        self._state_map = JointMap(cfg.joint_names, extra="refuse" if cfg.strict_state_names else "ignore",
                                   what="joint state")
        self._kin = None
        if cfg.ws_lower is not None:
            if kinematics is None:
                from robot_rl.kinematics import RobotKinematics

                kinematics = RobotKinematics(cfg.robot_model, cfg.joint_names)
            if list(kinematics.joint_names) != list(cfg.joint_names):
                raise ValueError(
                    f"kinematics joint order {list(kinematics.joint_names)} differs from the config's "
                    f"{list(cfg.joint_names)}; build RobotKinematics(config.robot_model, config.joint_names)"
                )
            self._kin = kinematics
            self._ws = _SitePath(kinematics, cfg.ee_site)
            self._ws_lo = np.array(cfg.ws_lower)
            self._ws_hi = np.array(cfg.ws_upper)
            if cfg.home_q is not None:
                v = self._ws_violation(cfg.home_q[None])[0]
                if v > 0:
                    raise ValueError(
                        f"SafetyConfig.home puts {cfg.ee_site!r} {v:.3f} m outside the workspace box"
                    )
        # limits as private contiguous arrays
        self._lo = np.array(cfg.lower)
        self._hi = np.array(cfg.upper)
        self._cmd_lo = np.array(cfg.cmd_lower)
        self._cmd_hi = np.array(cfg.cmd_upper)
        self._rate_inv = 1.0 / np.array(cfg.rate)
        # the filter's own motions (hold, brake, e-stop, fault hold, backup) within rate and accel
        self._motion = FilterMotion(cfg.rate, cfg.accel, np.minimum(cfg.retreat, cfg.rate))
        self._vel_trip = np.array(cfg.velocity) * cfg.velocity_trip_factor
        self._eff_trip = None if cfg.effort is None else np.array(cfg.effort)
        self._home = None if cfg.home_q is None else np.array(cfg.home_q)
        # recovery (robot_rl.safety.recovery): recent safe path, its backwards replay, risk hysteresis
        self._path = PathMemory(n, cfg.path_spacing, int(cfg.path_capacity), int(cfg.command_velocity_window))
        self._replay = PathRetreat(np.minimum(cfg.retreat, cfg.rate), cfg.accel)
        self._gate = RiskGate(cfg.risk_threshold, cfg.risk_hysteresis, cfg.risk_dwell_s)
        # the CBF-QP stage (robot_rl.safety.cbf): after the limits, on the output of "ok" ticks
        self._cbf = None
        if cfg.cbf is not None:
            from .cbf import CBF

            self._cbf = CBF(cfg.cbf, cfg.robot_model, cfg.joint_names, cfg.cmd_lower, cfg.cmd_upper, cfg.rate)
        # preallocated buffers
        self._meas = np.zeros(n)
        self._meas_vel = np.zeros(n)
        self._meas_eff = np.zeros(n)
        self._target = np.zeros(n)
        self._out = np.zeros(n)
        self._brake_pos = np.zeros(n)
        self._prev_out = np.zeros(n)
        self._vel = np.zeros(n)  # command velocity: (last output - the one before) / dt
        self._d = np.zeros(n)
        self._tmp = np.zeros(n)
        self._cmd_buf = np.zeros(n)
        self._state_buf = np.zeros(n)
        self._lock = threading.Lock()
        self._reset_state()

    # ------------------------------------------------------------------------------------------
    # state

    def _reset_state(self) -> None:
        self._have_state = False
        self._t_state = -math.inf
        self._state_fault: str | None = None
        self._trip_until = -math.inf
        self._trip_reason = "velocity_limit"
        self._t_cmd: float | None = None
        self._have_target = False
        self._target_limits: tuple[str, ...] = ()
        self._target_limits_rate: tuple[str, ...] = ("rate",)
        self._have_out = False
        self._reanchor = False
        self._motion.reset()
        self._vel[:] = 0.0
        self._last_dt = 0.0
        self._estop_input = False
        self._estop_latched = False
        self._risk = 0.0
        self._t_risk: float | None = None
        self._backup_active = False
        self._gate.reset()
        self._path.clear()
        self._replay.reset()
        self._replaying = False
        self._internal_error = False
        self._t_tick: float | None = None
        self._prev_reason: str | None = None
        self.counters: dict[str, Any] = {
            "ticks": 0,
            "commands_accepted": 0,
            "commands_rejected": {r: 0 for r in COMMAND_REJECT_REASONS},
            "commands_clipped": {r: 0 for r in COMMAND_CLIP_REASONS},
            "states_rejected": {r: 0 for r in STATE_REJECT_REASONS},
            "rate_limited_ticks": 0,
            "risk_non_finite": 0,
            "interventions": {r: 0 for r in INTERVENTION_REASONS},
            "cbf_active_ticks": 0,
        }
        self._cbf_fault: str | None = None
        self._cbf_checked = False
        self.status: dict[str, Any] = {
            "t": None,
            "mode": FAULT,
            "reason": "no_state",
            "active_limits": (),
            "risk": 0.0,
            "backup": False,
            "estop_latched": False,
            "estop_engaged": False,
            "state_age": math.inf,
            "cmd_age": math.inf,
            "counters": self.counters,
            "last_reject_reason": None,
            "last_state_fault": None,
            "last_reject_detail": None,
            "last_intervention": None,
            "last_error": None,
            "cbf": None if self._cbf is None else self._cbf.last,
        }

    @property
    def mode(self) -> str:
        return self.status["mode"]

    # ------------------------------------------------------------------------------------------
    # inputs

    def _perm(self, names: Sequence[str], jmap: JointMap, prefix: str) -> np.ndarray:
        """Permutation of a message's values into the configured order (cached by the map)."""
        try:
            return jmap.permutation(names)
        except JointMapError as e:
            raise _Reject(prefix + e.reason, str(e)) from None

    def _read_vector(self, names, values, jmap: JointMap, prefix: str, out: np.ndarray) -> np.ndarray | None:
        """Validate one (names, values) message into ``out`` (configured order).

        Returns the permutation used (None when ``names`` is None, i.e. configured order)."""
        if values is None:
            raise _Reject(prefix + "bad_type", "values are None")
        try:
            vals = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise _Reject(prefix + "bad_type", f"values are not numbers: {exc}") from None
        if vals.ndim != 1:
            raise _Reject(prefix + "wrong_length", f"values must be a flat sequence, got shape {vals.shape}")
        if names is None:
            if vals.shape[0] != self.n:
                raise _Reject(prefix + "wrong_length", f"expected {self.n} values, got {vals.shape[0]}")
            perm = None
            np.copyto(out, vals)
        else:
            if isinstance(names, str) or len(names) != vals.shape[0]:
                raise _Reject(prefix + "wrong_length", f"{len(names)} names but {vals.shape[0]} values")
            perm = self._perm(names, jmap, prefix)
            np.take(vals, perm, out=out)
        # only the configured joints count (values of ignored extra joints may be anything)
        if not np.isfinite(out).all():
            raise _Reject(prefix + "non_finite", "NaN or Inf in values")
        return perm

    def on_state(self, t: float, names: Sequence[str] | None, position, velocity=None, effort=None) -> bool:
        """Joint state (e.g. a ``sensor_msgs/JointState``), mapped to the configured order by
        name (``names=None``: already in the configured order). ``velocity`` / ``effort`` may be
        None or empty (not reported); otherwise they must match ``position``.

        Returns True if accepted. A rejected message (wrong length, unknown/missing/duplicate
        names, NaN/Inf, non-numbers) is counted and puts the filter in ``fault`` until a valid
        state arrives; the last valid state is kept.
        """
        with self._lock:
            try:
                t = _time(t, "state_bad_time")
                perm = self._read_vector(names, position, self._state_map, "state_", self._state_buf)
                vel = self._optional_vector(velocity, perm, self._meas_vel, len(position))
                eff = self._optional_vector(effort, perm, self._meas_eff, len(position))
            except _Reject as rej:
                self._state_rejected(rej.reason, str(rej))
                return False
            except Exception as exc:  # fail closed: an unreadable state is a fault
                self.status["last_error"] = f"on_state: {exc!r}"
                self._state_rejected("state_internal_error", repr(exc))
                return False
            np.copyto(self._meas, self._state_buf)
            self._have_state = True
            self._t_state = t
            self._state_fault = None
            if not self._have_out or self._reanchor:  # start-up, or back from a fault that sent nothing
                np.minimum(self._meas, self._hi, out=self._out)
                np.maximum(self._out, self._lo, out=self._out)
                self._have_out = True
                if self._reanchor:  # a target checked from the old output is never used, nor its path
                    self._reanchor = self._have_target = False
                    self._path.clear()  # no retreat along (or velocity across) the jump to the new pose
                    self._replay.reset()
                    self._replaying = False
            if vel:
                np.abs(self._meas_vel, out=self._tmp)
                if (self._tmp > self._vel_trip).any():
                    self._trip_until = t + self.config.monitor_hold_s
                    self._trip_reason = "velocity_limit"
            if eff and self._eff_trip is not None:
                np.abs(self._meas_eff, out=self._tmp)
                if (self._tmp > self._eff_trip).any():
                    self._trip_until = t + self.config.monitor_hold_s
                    self._trip_reason = "effort_limit"
            return True

    def _optional_vector(self, values, perm, out: np.ndarray, npos: int) -> bool:
        if values is None:
            return False
        try:
            vals = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise _Reject("state_bad_type", f"velocity/effort are not numbers: {exc}") from None
        if vals.ndim != 1:
            raise _Reject("state_wrong_length", "velocity/effort must be flat sequences")
        if vals.shape[0] == 0:
            return False
        if vals.shape[0] != npos:
            raise _Reject("state_wrong_length", f"{vals.shape[0]} velocity/effort values for {npos} positions")
        if perm is None:
            np.copyto(out, vals)
        else:
            np.take(vals, perm, out=out)
        if not np.isfinite(out).all():
            raise _Reject("state_non_finite", "NaN or Inf in velocity/effort")
        return True

    def _state_rejected(self, reason: str, detail: str = "") -> None:
        self.status["last_reject_detail"] = detail or reason
        self._state_fault = reason
        self.counters["states_rejected"][reason] += 1
        self.status["last_state_fault"] = reason

    def on_command(self, t: float, names: Sequence[str] | None, values) -> bool:
        """Position command from the policy (``names=None``: configured order).

        Returns True if accepted (possibly clipped). Rejected commands (wrong length,
        unknown/missing/duplicate joint names, NaN/Inf, non-numbers, no joint state yet) are
        counted by reason, never forwarded, and do not feed the watchdog; the last good command
        stays the target. Accepted commands are clipped to the position limits (with margin) and
        scaled back to keep the end effector inside the workspace box (module docstring).
        """
        with self._lock:
            try:
                t = _time(t, "bad_time")
                self._read_vector(names, values, self._cmd_map, "", self._cmd_buf)
                if not self._have_out:
                    raise _Reject("no_state", "no joint state received yet; command dropped")
                limits: list[str] = []
                np.minimum(self._cmd_buf, self._cmd_hi, out=self._tmp)
                np.maximum(self._tmp, self._cmd_lo, out=self._tmp)
                if not np.array_equal(self._tmp, self._cmd_buf):
                    limits.append("position_limit")
                    np.copyto(self._cmd_buf, self._tmp)
                if self._kin is not None:
                    alpha = self._workspace_alpha(self._out, self._cmd_buf)
                    if alpha < 1.0:
                        limits.append("workspace")
                        self._cmd_buf -= self._out
                        self._cmd_buf *= alpha
                        self._cmd_buf += self._out
            except _Reject as rej:
                self._command_rejected(rej.reason, str(rej))
                return False
            except Exception as exc:  # fail closed: a command we could not check is dropped
                self.status["last_error"] = f"on_command: {exc!r}"
                self._command_rejected("internal_error", repr(exc))
                return False
            np.copyto(self._target, self._cmd_buf)
            self._have_target = True
            self._t_cmd = t
            self._target_limits = tuple(limits)
            self._target_limits_rate = tuple(limits) + ("rate",)
            self.counters["commands_accepted"] += 1
            for r in limits:
                self.counters["commands_clipped"][r] += 1
            return True

    def _command_rejected(self, reason: str, detail: str = "") -> None:
        self.status["last_reject_detail"] = detail or reason
        self.counters["commands_rejected"][reason] += 1
        self.status["last_reject_reason"] = reason

    def estop(self, t: float, engaged: bool) -> None:
        """E-stop input. Engaging latches the stop: every tick brakes (or holds, per
        ``estop_action``) until :meth:`reset_estop` is called while the input is released.
        ``engaged=False`` alone does not clear it."""
        with self._lock:
            try:
                self._estop_input = bool(engaged)
            except Exception:  # an unreadable e-stop message counts as engaged
                self._estop_input = True
            if self._estop_input:
                self._estop_latched = True
            self.status["estop_engaged"] = self._estop_input
            self.status["estop_latched"] = self._estop_latched

    def reset_estop(self) -> bool:
        """Clear a latched e-stop. Refused (returns False) while the e-stop input is still
        engaged. After a reset the filter holds until a new command arrives."""
        with self._lock:
            if self._estop_input:
                return False
            self._estop_latched = False
            self.status["estop_latched"] = False
            return True

    def reset_fault(self) -> None:
        """Clear a latched internal error or CBF fault (after it has been understood). The filter
        then holds until a new command arrives; the CBF checks the start position again."""
        with self._lock:
            self._internal_error = False
            self._cbf_fault = None
            self._cbf_checked = False

    @property
    def cbf(self):
        """The CBF-QP stage (:class:`robot_rl.safety.cbf.CBF`), or None."""
        return self._cbf

    def set_risk(self, t: float, risk: float) -> None:
        """Risk estimate in [0, 1] from the learned safety critic. Above ``risk_threshold`` the
        backup behaviour takes over until risk falls below ``risk_threshold - risk_hysteresis``.
        NaN/Inf (or a non-finite time) count as risk 1 (fail closed); values are clipped to
        [0, 1]."""
        with self._lock:
            try:
                r = float(risk)
                t = _time(t, "bad_time")
            except (TypeError, ValueError, _Reject):
                r = math.nan
                t = None
            if not math.isfinite(r):
                self.counters["risk_non_finite"] += 1
                r = 1.0
            r = min(max(r, 0.0), 1.0)
            self._risk = r
            if t is not None:
                self._t_risk = t
            self._backup_active = self._gate.update(t, r)

    @property
    def command_velocity(self) -> np.ndarray:
        """Mean velocity (rad/s) of the filter's output over the last ``command_velocity_window``
        ticks: the action the safety critic scores (a copy)."""
        with self._lock:
            return self._path.command_velocity()

    @property
    def output(self) -> np.ndarray:
        """The last command sent (a copy; configured joint order)."""
        with self._lock:
            return self._out.copy()

    @property
    def recent_path(self) -> np.ndarray:
        """[k, n] the recorded safe waypoints, oldest first (a copy)."""
        with self._lock:
            return self._path.waypoints()

    # ------------------------------------------------------------------------------------------
    # workspace

    def _ws_violation(self, q: np.ndarray) -> np.ndarray:
        """Distance (m) of the EE site outside the workspace box, 0 inside; q [k, n] -> [k]."""
        return self._box_violation(self._ws.positions(np.asarray(q, dtype=np.float64)))

    def _box_violation(self, ee: np.ndarray) -> np.ndarray:
        out = np.maximum(self._ws_lo - ee, 0.0) + np.maximum(ee - self._ws_hi, 0.0)
        return np.sqrt((out * out).sum(axis=-1))

    def _path_violation(self, start: np.ndarray, delta: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        return self._box_violation(self._ws.positions(start + alphas[:, None] * delta))

    def _workspace_alpha(self, start: np.ndarray, goal: np.ndarray) -> float:
        """Largest alpha in [0, 1] such that the path start + a (goal - start), a <= alpha, keeps
        the EE inside the box (or no farther outside than at ``start``), checked at
        ``workspace_resolution``; a path of more than ``WORKSPACE_MAX_SAMPLES`` samples ends after
        the last one. Samples are evaluated from the start outward in growing chunks and the
        search stops at the first bad one, so a short or soon-clipped path costs a few points."""
        delta = goal - start
        span = float(np.abs(delta).max())
        steps = max(math.ceil(span / self.config.workspace_resolution), 1)
        last = min(steps, WORKSPACE_MAX_SAMPLES)  # samples 1..last (sample 0 is the start)
        # inside: stay inside; outside: get no farther out
        tol = float(self._path_violation(start, delta, np.zeros(1))[0]) + 1e-12
        k, chunk = 1, 8
        while k <= last:
            idx = np.arange(k, min(k + chunk, last + 1), dtype=np.float64)
            viol = self._path_violation(start, delta, idx / steps)
            bad = np.flatnonzero(viol > tol)
            if bad.size:
                j = int(idx[bad[0]])
                a_lo, a_hi = (j - 1) / steps, j / steps
                for _ in range(_WS_REFINE_STEPS):  # bisection toward the first crossing
                    mid = 0.5 * (a_lo + a_hi)
                    if self._path_violation(start, delta, np.array([mid]))[0] > tol:
                        a_hi = mid
                    else:
                        a_lo = mid
                return a_lo
            k += chunk
            chunk = min(2 * chunk, 64)
        return 1.0 if last == steps else last / steps

    # ------------------------------------------------------------------------------------------
    # tick

    def tick(self, t: float) -> tuple[np.ndarray | None, dict]:
        """One safety-rate step at time ``t``.

        Returns ``(command, status)``: ``command`` is a new float64 array of joint positions in
        the configured order, or None (send nothing: fault with ``fault_action='none'``, or
        nothing safe is known yet). ``status`` is this filter's status dict (keys in
        ``STATUS_KEYS``), updated in place every tick: copy it to keep a snapshot.
        """
        with self._lock:
            try:
                return self._tick(t)
            except Exception as exc:
                return self._fail_closed(t, exc)

    def _step_toward(self, goal: np.ndarray, rate_inv: np.ndarray, dt: float) -> bool:
        """Move the output toward ``goal`` by at most rate*dt per joint, along a straight line
        (all joints scaled together). Returns True if the rate limit was active."""
        d = self._d
        np.subtract(goal, self._out, out=d)
        np.abs(d, out=self._tmp)
        self._tmp *= rate_inv
        need = float(self._tmp.max())  # seconds needed to reach the goal at the rate limit
        if need <= dt:
            np.copyto(self._out, goal)
            return False
        d *= dt / need
        self._out += d
        return True

    def _tick(self, t: float) -> tuple[np.ndarray | None, dict]:
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"tick time {t!r} is not finite")
        cfg = self.config
        st = self.status
        prev = self._t_tick
        if prev is None:
            dt = 0.0
        else:
            dt = t - prev
            if dt < 0.0:
                raise RuntimeError(f"time went backwards (t={t}, previous tick {prev})")
            if dt > cfg.max_tick_dt_s:
                dt = cfg.max_tick_dt_s
        self._t_tick = t
        self._last_dt = dt
        self.counters["ticks"] += 1
        state_age = t - self._t_state
        cmd_age = math.inf if self._t_cmd is None else t - self._t_cmd
        if cfg.risk_timeout_s is not None and self._t_risk is not None and t - self._t_risk > cfg.risk_timeout_s:
            risk_stale = True
            self._risk = 1.0
            self._backup_active = self._gate.update(None, 1.0)
        else:
            risk_stale = False

        if self._cbf is not None and not self._cbf_checked and self._have_out:
            self._cbf_checked = True  # the start position must satisfy every barrier
            msg = self._cbf.violation(self._out)
            if msg:
                self._cbf_fault = "cbf_unsafe_start"
                st["last_error"] = (f"CBF: the robot starts inside a safety margin ({msg}); it holds: move it out "
                                    "and call reset_fault()")

        # ---- mode selection (priority order) ----
        if self._internal_error:
            mode, reason = BRAKE, "internal_error"
        elif self._estop_latched:
            mode, reason = ESTOP, "estop"
        elif not self._have_state:
            mode, reason = FAULT, "no_state"
        elif self._state_fault is not None:
            mode, reason = FAULT, self._state_fault
        elif state_age > cfg.state_timeout_s:
            mode, reason = FAULT, "state_stale"
        elif self._cbf_fault is not None:
            mode, reason = (HOLD if self._cbf_fault == "cbf_unsafe_start" else BRAKE), self._cbf_fault
        elif t < self._trip_until:
            mode, reason = BRAKE, self._trip_reason
        elif self._backup_active:
            mode, reason = BACKUP, ("risk_stale" if risk_stale else "risk")
        elif cmd_age > cfg.brake_timeout_s:
            mode, reason = (HOLD, "no_command") if self._t_cmd is None else (BRAKE, "cmd_timeout_brake")
        elif cmd_age > cfg.cmd_timeout_s:
            mode, reason = HOLD, "cmd_stale"
        elif not self._have_target:
            mode, reason = HOLD, "awaiting_command"
        else:
            mode, reason = OK, None

        # ---- output ----
        limits: tuple[str, ...] = ()
        send = True
        motion = self._motion
        np.copyto(self._prev_out, self._out)
        if mode is OK:
            motion.reset()
            if self._step_toward(self._target, self._rate_inv, dt):
                limits = self._target_limits_rate
                self.counters["rate_limited_ticks"] += 1
            else:
                limits = self._target_limits
            if self._cbf is not None and dt > 0.0:
                fault = self._apply_cbf(dt)
                if fault is not None:
                    mode, reason, limits = BRAKE, fault, ()
                elif self._cbf.last["intervened"]:
                    limits = limits + ("cbf",)
        if mode is FAULT and cfg.fault_action != "hold":
            send = False
            motion.reset()
            self._reanchor = True  # nothing sent: the output restarts from the next measured position
        elif mode is not OK and self._have_out:  # the filter's own motion: stop, then brake / retreat to a goal, or hold
            if mode is BRAKE or (mode is ESTOP and cfg.estop_action == "brake"):
                if motion.kind != _M_BRAKE:  # the measured position when braking begins, latched
                    np.clip(self._meas if self._have_state else self._out, self._lo, self._hi, out=self._brake_pos)
                motion.start(_M_BRAKE, self._brake_pos)
            elif mode is BACKUP and cfg.backup == "retreat":
                motion.start(_M_RETREAT, self._home)
            elif mode is BACKUP and cfg.backup == "retreat_path":
                if not self._replaying and not self._vel.any() and motion.kind == _M_STOP:
                    self._replaying = True  # stopped: replay the recent path backwards
                if self._replaying:
                    if self._replay.step(self._out, self._path, dt):
                        limits = ("rate",)
                else:
                    motion.start(_M_STOP)
            else:  # hold, e-stop hold, fault hold, backup hold
                motion.start(_M_STOP)
            if not self._replaying:
                motion.step(self._out, self._vel, dt)
            if motion.kind == _M_RETREAT and not np.array_equal(self._out, self._home):
                limits = ("rate",)
        if mode is not BACKUP and self._replaying:
            self._replaying = False
            self._replay.reset()
            motion.reset()
        if mode is not OK:
            self._have_target = False
            if reason != self._prev_reason:
                self.counters["interventions"][reason] += 1
                st["last_intervention"] = reason
        self._prev_reason = reason

        out = None
        if send and self._have_out:
            o = self._out
            np.minimum(o, self._hi, out=o)
            np.maximum(o, self._lo, out=o)
            if not math.isfinite(float(np.dot(o, o))):
                raise FloatingPointError("non-finite safety output")
            if dt > 0.0:
                np.subtract(o, self._prev_out, out=self._vel)
                self._vel /= dt
            if mode is OK:
                self._path.record_waypoint(o)
            self._path.record_output(t, o)
            out = o.copy()
        else:
            self._vel[:] = 0.0  # nothing sent: the driver holds its last command

        st["t"] = t
        st["mode"] = mode
        st["reason"] = reason
        st["active_limits"] = limits
        st["risk"] = self._risk
        st["backup"] = self._backup_active
        st["estop_latched"] = self._estop_latched
        st["estop_engaged"] = self._estop_input
        st["state_age"] = state_age
        st["cmd_age"] = cmd_age
        return out, st

    def _apply_cbf(self, dt: float) -> str | None:
        """Replace this tick's step (prev_out -> out) by the CBF-QP's safe step. Returns None, or
        the fault reason after restoring the last output (the caller brakes; latched)."""
        from .cbf import CBFError

        np.subtract(self._out, self._prev_out, out=self._d)
        self._d /= dt
        try:
            v = self._cbf.filter(self._prev_out, self._d, self._meas)
        except CBFError as e:
            np.copyto(self._out, self._prev_out)
            if e.reason == "cbf_infeasible":  # brake for monitor_hold_s, then hold until a new command
                self._trip_until = self._t_tick + self.config.monitor_hold_s
                self._trip_reason = e.reason
                self.status["last_error"] = f"CBF: {e}; braking"
            else:
                self._cbf_fault = e.reason
                self.status["last_error"] = f"CBF: {e}; braking (latched until reset_fault())"
            return e.reason
        if self._cbf.last["intervened"]:
            np.multiply(v, dt, out=self._out)
            self._out += self._prev_out
            self.counters["cbf_active_ticks"] += 1
        return None

    def _fail_closed(self, t: Any, exc: BaseException) -> tuple[np.ndarray | None, dict]:
        """Latch an internal error and brake: the measured position (or the last output when
        no valid state exists); nothing if neither is known or finite."""
        try:
            self._internal_error = True
            st = self.status
            st["last_error"] = f"tick: {exc!r}"
            if self._prev_reason != "internal_error":
                self.counters["interventions"]["internal_error"] += 1
                st["last_intervention"] = "internal_error"
            self._prev_reason = "internal_error"
            self._have_target = False
            st["mode"] = BRAKE
            st["reason"] = "internal_error"
            st["active_limits"] = ()
            try:
                st["t"] = float(t)
            except Exception:
                st["t"] = None
            motion = self._motion
            if motion.kind != _M_BRAKE:
                if self._have_state and np.isfinite(self._meas).all():
                    src = self._meas
                elif self._have_out and np.isfinite(self._out).all():
                    src = self._out
                else:
                    return None, st
                np.clip(src, self._lo, self._hi, out=self._brake_pos)
                motion.start(_M_BRAKE, self._brake_pos)
            if not (self._have_out and np.isfinite(self._out).all() and np.isfinite(self._vel).all()):
                if not np.isfinite(self._brake_pos).all():
                    return None, st
                np.copyto(self._out, self._brake_pos)  # no usable output: the latched brake position
                self._vel[:] = 0.0
                return self._brake_pos.copy(), st
            np.copyto(self._prev_out, self._out)
            try:  # one braking step, with the last tick's dt (this tick's time may be the problem)
                motion.step(self._out, self._vel, self._last_dt)
                np.clip(self._out, self._lo, self._hi, out=self._out)
                if not np.isfinite(self._out).all():
                    raise FloatingPointError("non-finite brake step")
                if self._last_dt > 0.0:
                    np.subtract(self._out, self._prev_out, out=self._vel)
                    self._vel /= self._last_dt
            except Exception:  # hold the last output
                np.copyto(self._out, self._prev_out)
                self._vel[:] = 0.0
            return self._out.copy(), st
        except Exception:
            return None, self.status
