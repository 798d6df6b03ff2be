"""Quality-of-service profiles with ROS 2 names and defaults.

``qos`` arguments in this package accept a :class:`QoSProfile`, a preset name, or an int depth:

=================  ===========  ===============  =============  =====
preset             reliability  durability       history        depth
=================  ===========  ===============  =============  =====
``"default"``      reliable     volatile         keep_last      10
``"sensor_data"``  best_effort  volatile         keep_last      5
``"latched"``      reliable     transient_local  keep_last      1
``"system_default"`` same as ``"default"`` (what ros2_control controllers use in practice)
int ``N``          reliable     volatile         keep_last      N
=================  ===========  ===============  =============  =====

Matching (DDS rules): a best-effort writer never matches a reliable reader, and a volatile
writer never matches a transient-local reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["QoSProfile", "resolve_qos", "QoSLike", "DEFAULT", "SENSOR_DATA", "LATCHED"]

_RELIABILITY = ("reliable", "best_effort")
_DURABILITY = ("volatile", "transient_local")
_HISTORY = ("keep_last", "keep_all")


@dataclass(frozen=True)
class QoSProfile:
    """A ROS 2 QoS profile (the subset the control path needs)."""

    reliability: str = "reliable"
    durability: str = "volatile"
    history: str = "keep_last"
    depth: int = 10

    def __post_init__(self) -> None:
        if self.reliability not in _RELIABILITY:
            raise ValueError(f"reliability {self.reliability!r} must be one of {_RELIABILITY}")
        if self.durability not in _DURABILITY:
            raise ValueError(f"durability {self.durability!r} must be one of {_DURABILITY}")
        if self.history not in _HISTORY:
            raise ValueError(f"history {self.history!r} must be one of {_HISTORY}")
        if self.history == "keep_last" and (not isinstance(self.depth, int) or self.depth < 1):
            raise ValueError(f"keep_last depth must be a positive int, got {self.depth!r}")

    def compatible_with_reader(self, reader: "QoSProfile") -> bool:
        """Whether a writer with this profile matches a reader with ``reader``'s profile."""
        if reader.reliability == "reliable" and self.reliability != "reliable":
            return False
        if reader.durability == "transient_local" and self.durability != "transient_local":
            return False
        return True


DEFAULT = QoSProfile()
SENSOR_DATA = QoSProfile(reliability="best_effort", depth=5)
LATCHED = QoSProfile(durability="transient_local", depth=1)
_PRESETS = {
    "default": DEFAULT,
    "system_default": DEFAULT,
    "sensor_data": SENSOR_DATA,
    "latched": LATCHED,
    "transient_local": LATCHED,
}

QoSLike = Union[QoSProfile, str, int]


def resolve_qos(qos: QoSLike | None) -> QoSProfile:
    """Turn a QoSProfile / preset name / int depth (None = default) into a QoSProfile."""
    if qos is None:
        return DEFAULT
    if isinstance(qos, QoSProfile):
        return qos
    if isinstance(qos, bool):
        raise TypeError("qos must be a QoSProfile, a preset name or an int depth, not a bool")
    if isinstance(qos, int):
        return QoSProfile(depth=qos)
    if isinstance(qos, str):
        try:
            return _PRESETS[qos]
        except KeyError:
            raise ValueError(f"unknown QoS preset {qos!r}; use one of {sorted(_PRESETS)} or a QoSProfile") from None
    raise TypeError(f"qos must be a QoSProfile, a preset name or an int depth, got {type(qos).__name__}")
