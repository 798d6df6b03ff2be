"""Configuration of the safety filter (:class:`SafetyConfig`).

All limits are per joint in the configured ``joint_names`` order; a scalar is broadcast to every
joint. Units: rad (or m for slide joints), rad/s, N m, seconds, metres for the workspace box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FAULT_ACTIONS = ("none", "hold")
ESTOP_ACTIONS = ("brake", "hold")
BACKUP_BEHAVIOURS = ("hold", "retreat", "retreat_path")


def _per_joint(name: str, value: Any, n: int, *, positive: bool = False, allow_inf: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"SafetyConfig.{name}: expected a scalar or {n} values (one per joint), got shape {arr.shape}")
    if np.isnan(arr).any() or (not allow_inf and not np.isfinite(arr).all()):
        raise ValueError(f"SafetyConfig.{name}: values must be finite, got {arr.tolist()}")
    if positive and (arr <= 0).any():
        raise ValueError(f"SafetyConfig.{name}: values must be > 0, got {arr.tolist()}")
    arr.setflags(write=False)
    return arr


@dataclass
class SafetyConfig:
    """Limits, timeouts and behaviours of :class:`robot_rl.safety.SafetyFilter`.

    Joint limits
        ``position_lower`` / ``position_upper``: hard position limits; commands are clipped to
        ``[lower + position_margin, upper - position_margin]``. ``velocity_limit``: caps the rate
        of change of the position command, and a *measured* speed above
        ``velocity_limit * velocity_trip_factor`` brakes. ``effort_limit`` (optional): a measured
        effort above it brakes. ``max_command_rate``: rad/s cap on the change of the position
        command (the effective rate is ``min(max_command_rate, velocity_limit)``). A brake caused
        by a measured velocity or effort lasts at least ``monitor_hold_s`` after the last sample
        over the limit. ``acceleration_limit`` (rad/s^2; default ``10 * velocity_limit``, i.e. a
        stop from full speed within 0.1 s, about what a position-controlled arm's own trajectory
        limits allow): the largest change of the command velocity per second in every motion the
        filter makes itself (brake, e-stop, hold, fault hold, backup; see ``SafetyFilter``).

    Workspace
        ``workspace_lower`` / ``workspace_upper``: axis-aligned box [x, y, z] (world frame, m) for
        the site ``ee_site``; needs ``robot_model``, the robot's MJCF text (an artifact's
        ``robot.xml``, or :func:`robot_rl.kinematics.kinematic_model_xml`), whose forward
        kinematics MuJoCo computes (:class:`robot_rl.kinematics.RobotKinematics`). A command whose
        joint-space path from the current command leaves the box is scaled back toward the
        current command (see ``SafetyFilter.on_command``). ``workspace_resolution``: the largest
        joint step (rad) between two checked points of that path.

    Watchdog (times in seconds, from the ``t`` passed to the filter)
        ``cmd_timeout_s``: no accepted command for this long -> hold the last safe command.
        ``brake_timeout_s``: no accepted command for this long -> brake (hold the measured
        position). ``state_timeout_s``: no valid joint state for this long -> fault;
        ``fault_action`` "none" sends nothing (``tick`` returns ``None``), "hold" keeps sending
        the last safe command. ``max_tick_dt_s``: the rate limiter never advances by more than
        this per tick, so a late tick cannot produce a jump.

    E-stop
        ``estop_action``: "brake" (hold the position measured when the stop engaged) or "hold"
        (hold the last safe command).

    Learned safety critic
        Risk above ``risk_threshold`` hands control to the ``backup`` behaviour until it falls
        below ``risk_threshold - risk_hysteresis``. "hold" keeps the last safe command;
        "retreat" moves toward ``home`` at ``retreat_rate`` (rad/s); "retreat_path" stops, then
        replays the recent safe path backwards at ``retreat_rate`` (waypoints ``path_spacing`` rad
        apart, at most ``path_capacity``; :mod:`robot_rl.safety.recovery`) and holds at its end.
        The backup ends once risk stayed below ``risk_threshold - risk_hysteresis`` for
        ``risk_dwell_s`` seconds. ``risk_timeout_s``: if set and no risk value arrived for this
        long (after the first one), risk counts as 1. ``command_velocity_window``: ticks over
        which :attr:`SafetyFilter.command_velocity` (the critic's action input) is averaged (one
        policy control period: ``rate_hz * period``).

    CBF
        ``cbf``: a :class:`robot_rl.safety.cbf.CBFConfig` (the scene, margins, gain) turns on the
        CBF-QP stage of the filter; it needs ``robot_model`` (the robot's collision capsules).

    State
        ``strict_state_names``: joint states naming joints that are not configured are a fault
        (default). Set False when the driver also publishes e.g. gripper joints.
    """

    joint_names: Sequence[str]
    position_lower: Any
    position_upper: Any
    velocity_limit: Any
    max_command_rate: Any = math.inf
    position_margin: Any = 0.0
    effort_limit: Any = None
    velocity_trip_factor: float = 1.0
    monitor_hold_s: float = 0.1
    robot_model: str | None = field(default=None, repr=False)  # MJCF text: long
    ee_site: str = "ee"
    workspace_lower: Any = None
    workspace_upper: Any = None
    workspace_resolution: float = 0.02
    cmd_timeout_s: float = 0.1
    brake_timeout_s: float = 0.5
    state_timeout_s: float = 0.05
    fault_action: str = "none"
    estop_action: str = "brake"
    max_tick_dt_s: float = 0.01
    risk_threshold: float = 0.8
    risk_hysteresis: float = 0.1
    risk_timeout_s: float | None = None
    backup: str = "hold"
    home: Any = None
    retreat_rate: Any = 0.25
    risk_dwell_s: float = 0.0
    path_spacing: float = 0.02
    path_capacity: int = 200
    command_velocity_window: int = 20
    strict_state_names: bool = True
    acceleration_limit: Any = None
    cbf: Any = None

    # derived, read-only arrays (filled by __post_init__)
    lower: np.ndarray = field(init=False, repr=False)
    upper: np.ndarray = field(init=False, repr=False)
    cmd_lower: np.ndarray = field(init=False, repr=False)
    cmd_upper: np.ndarray = field(init=False, repr=False)
    velocity: np.ndarray = field(init=False, repr=False)
    rate: np.ndarray = field(init=False, repr=False)
    accel: np.ndarray = field(init=False, repr=False)
    effort: np.ndarray | None = field(init=False, repr=False)
    home_q: np.ndarray | None = field(init=False, repr=False)
    retreat: np.ndarray = field(init=False, repr=False)
    ws_lower: np.ndarray | None = field(init=False, repr=False)
    ws_upper: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = list(self.joint_names)
        if not names:
            raise ValueError("SafetyConfig.joint_names must name at least one joint")
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"SafetyConfig.joint_names must be distinct non-empty strings, got {names}")
        self.joint_names = tuple(names)
        n = len(names)
        self.lower = _per_joint("position_lower", self.position_lower, n)
        self.upper = _per_joint("position_upper", self.position_upper, n)
        if (self.lower >= self.upper).any():
            raise ValueError("SafetyConfig: position_lower must be < position_upper for every joint")
        margin = _per_joint("position_margin", self.position_margin, n)
        if (margin < 0).any() or (2 * margin >= self.upper - self.lower).any():
            raise ValueError(
                "SafetyConfig.position_margin must be >= 0 and leave a non-empty range "
                "(2 * margin < upper - lower)"
            )
        self.cmd_lower = _frozen(self.lower + margin)
        self.cmd_upper = _frozen(self.upper - margin)
        self.velocity = _per_joint("velocity_limit", self.velocity_limit, n, positive=True)
        rate = _per_joint("max_command_rate", self.max_command_rate, n, positive=True, allow_inf=True)
        self.rate = _frozen(np.minimum(rate, self.velocity))
        if self.acceleration_limit is None:  # default: stop from the velocity limit in 0.1 s
            self.accel = _frozen(10.0 * self.velocity)
        else:
            self.accel = _per_joint("acceleration_limit", self.acceleration_limit, n, positive=True)
        self.effort = None if self.effort_limit is None else _per_joint("effort_limit", self.effort_limit, n, positive=True)
        if not (self.velocity_trip_factor >= 1.0):
            raise ValueError("SafetyConfig.velocity_trip_factor must be >= 1 (1 = trip at the limit)")
        for name in ("monitor_hold_s", "cmd_timeout_s", "brake_timeout_s", "state_timeout_s", "max_tick_dt_s"):
            v = float(getattr(self, name))
            if not (v > 0 and math.isfinite(v)) and not (name == "monitor_hold_s" and v == 0):
                raise ValueError(f"SafetyConfig.{name} must be a positive finite number of seconds, got {v}")
        if self.brake_timeout_s < self.cmd_timeout_s:
            raise ValueError("SafetyConfig.brake_timeout_s must be >= cmd_timeout_s (hold first, then brake)")
        if self.risk_timeout_s is not None and not (self.risk_timeout_s > 0):
            raise ValueError("SafetyConfig.risk_timeout_s must be > 0 or None")
        if self.fault_action not in FAULT_ACTIONS:
            raise ValueError(f"SafetyConfig.fault_action must be one of {FAULT_ACTIONS}, got {self.fault_action!r}")
        if self.estop_action not in ESTOP_ACTIONS:
            raise ValueError(f"SafetyConfig.estop_action must be one of {ESTOP_ACTIONS}, got {self.estop_action!r}")
        if self.backup not in BACKUP_BEHAVIOURS:
            raise ValueError(f"SafetyConfig.backup must be one of {BACKUP_BEHAVIOURS}, got {self.backup!r}")
        if not (0.0 < self.risk_threshold <= 1.0):
            raise ValueError("SafetyConfig.risk_threshold must be in (0, 1]")
        if not (0.0 <= self.risk_hysteresis < self.risk_threshold):
            raise ValueError("SafetyConfig.risk_hysteresis must be in [0, risk_threshold)")
        if not (self.risk_dwell_s >= 0 and math.isfinite(self.risk_dwell_s)):
            raise ValueError(f"SafetyConfig.risk_dwell_s must be >= 0 seconds, got {self.risk_dwell_s}")
        if not (self.path_spacing > 0 and int(self.path_capacity) >= 1 and int(self.command_velocity_window) >= 1):
            raise ValueError("SafetyConfig.path_spacing must be > 0, path_capacity and command_velocity_window >= 1")
        self.retreat = _per_joint("retreat_rate", self.retreat_rate, n, positive=True)
        self.home_q = None
        if self.home is not None:
            home = _per_joint("home", self.home, n)
            if (home < self.cmd_lower).any() or (home > self.cmd_upper).any():
                raise ValueError(
                    f"SafetyConfig.home {home.tolist()} lies outside the command limits "
                    "[position_lower + margin, position_upper - margin]"
                )
            self.home_q = home
        elif self.backup == "retreat":
            raise ValueError("SafetyConfig.backup='retreat' needs a home pose (SafetyConfig.home)")

        if self.robot_model is not None and not isinstance(self.robot_model, str):
            raise ValueError(
                "SafetyConfig.robot_model must be the robot's MJCF as text (e.g. an artifact's robot.xml "
                f"read with Path.read_text()), got {type(self.robot_model).__name__}"
            )
        if self.cbf is not None:
            from .cbf import CBFConfig

            if not isinstance(self.cbf, CBFConfig):
                raise ValueError(f"SafetyConfig.cbf must be a robot_rl.safety.cbf.CBFConfig or None, got {self.cbf!r}")
            if self.robot_model is None:
                raise ValueError("SafetyConfig: the CBF filter needs the robot's collision shapes; pass robot_model="
                                 "<the robot's MJCF text> (an artifact's robot.xml)")
        self.ws_lower = self.ws_upper = None
        if (self.workspace_lower is None) != (self.workspace_upper is None):
            raise ValueError("SafetyConfig: give both workspace_lower and workspace_upper, or neither")
        if self.workspace_lower is not None:
            lo = np.asarray(self.workspace_lower, dtype=np.float64)
            hi = np.asarray(self.workspace_upper, dtype=np.float64)
            if lo.shape != (3,) or hi.shape != (3,) or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
                raise ValueError("SafetyConfig.workspace_lower/upper must be 3 finite numbers each (x, y, z)")
            if (lo >= hi).any():
                raise ValueError("SafetyConfig: workspace_lower must be < workspace_upper on every axis")
            self._check_workspace_model()
            if not (self.workspace_resolution > 0):
                raise ValueError("SafetyConfig.workspace_resolution must be > 0 (rad)")
            self.ws_lower, self.ws_upper = _frozen(lo), _frozen(hi)

    @property
    def njoint(self) -> int:
        return len(self.joint_names)

    def _check_workspace_model(self) -> None:
        """The workspace box needs the robot model, with the configured joints and ``ee_site``."""
        if self.robot_model is None:
            raise ValueError(
                "SafetyConfig: a workspace box needs the robot's kinematics; pass robot_model=<the robot's "
                "MJCF text> (an artifact's robot.xml, or robot_rl.kinematics.kinematic_model_xml(robot)), "
                "e.g. SafetyConfig.from_model(xml, ...)"
            )
        kin = _kinematics(self.robot_model, self.joint_names)
        if self.ee_site not in kin.site_names:
            raise ValueError(
                f"SafetyConfig.ee_site {self.ee_site!r} is not a site of the robot model "
                f"(sites: {kin.site_names})"
            )

    @classmethod
    def from_model(cls, xml: str | Path, joint_names: Sequence[str] | None = None, **kwargs) -> "SafetyConfig":
        """Config whose position limits are the joint ranges of the robot model ``xml`` (MJCF
        text, or a path to it; stored as ``robot_model``).

        ``joint_names`` defaults to the model's hinge and slide joints in model order; other
        fields come from ``kwargs`` (``velocity_limit`` is required; ``position_lower`` /
        ``position_upper`` given there override the model's ranges).
        """
        text = Path(xml).read_text() if isinstance(xml, Path) else xml
        if joint_names is None:
            joint_names = _model_joint_names(text)
        names = list(joint_names)
        kin = _kinematics(text, names)
        if "position_lower" not in kwargs or "position_upper" not in kwargs:
            limited = np.isfinite(kin.lower) & np.isfinite(kin.upper)
            unlimited = [n for n, ok in zip(names, limited) if not ok]
            if unlimited:
                raise ValueError(
                    f"joints {unlimited} have no range in the robot model; pass position_lower/upper explicitly"
                )
        kwargs.setdefault("position_lower", kin.lower.tolist())
        kwargs.setdefault("position_upper", kin.upper.tolist())
        kwargs.setdefault("robot_model", text)
        return cls(joint_names=names, **kwargs)


def _kinematics(xml: str, joint_names: Sequence[str]):
    """``RobotKinematics`` of the model, model errors as ``ValueError`` naming the field."""
    from robot_rl.kinematics import RobotKinematics

    try:
        return RobotKinematics(xml, list(joint_names))
    except ValueError as e:
        raise ValueError(f"SafetyConfig.robot_model: {e}") from None
    except Exception as e:  # noqa: BLE001 - MuJoCo's XML/compile errors
        raise ValueError(f"SafetyConfig.robot_model is not a valid MJCF model: {e}") from None


def _model_joint_names(xml: str) -> list[str]:
    """Hinge and slide joints of an MJCF model, in model order."""
    import mujoco

    try:
        m = mujoco.MjModel.from_xml_string(xml)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"SafetyConfig.robot_model is not a valid MJCF model: {e}") from None
    kinds = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    return [m.joint(i).name for i in range(m.njnt) if int(m.jnt_type[i]) in kinds]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a
