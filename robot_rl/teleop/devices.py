"""Every teleop device, loaded, and their configs built from flat parameters (ROS `-p k:=v`, CLI `k=v`).

    load_devices()                                  # imports the device modules: they register themselves
    cfg = build_config("gamepad", {"deadzone": "0.2", "linear_m_s": 0.05})
    dev = make_device("gamepad", cfg)

Parameters are the fields of the device's config dataclass, plus the `DeviceScale` fields
(`linear_m_s`, `angular_rad_s`, `joint_rad_s`). A string value is typed by rcl's rules
(`-p x:=0.2` is a float, `[a, b]` a list); a dict field takes JSON (`'{"l1": "j1"}'`) or a list of
`key:value` strings. A device whose optional library is missing still registers (it fails with
one line when opened).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from robot_rl.teleop.device import DeviceScale, TeleopError, _DEVICES, device_names

SCALE_FIELDS = tuple(f.name for f in dataclasses.fields(DeviceScale))
RUNTIME_FIELDS = ("scale", "node")  # set in code, not from parameters


def load_devices() -> list[str]:
    """The registered device names (the built-in modules register on the registry's first lookup)."""
    return device_names()


def config_class(name: str) -> type:
    load_devices()
    if name not in _DEVICES:
        raise TeleopError(f"teleop device {name!r} is unknown; known: {', '.join(device_names()) or 'none'}")
    return _DEVICES[name][0]


def parameter_defaults(name: str) -> dict[str, Any]:
    """{parameter: default} of device `name` (its config fields and the scale fields)."""
    cls = config_class(name)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in RUNTIME_FIELDS:
            continue
        out[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    scale = DeviceScale()
    out.update({k: getattr(scale, k) for k in SCALE_FIELDS})
    return out


def _typed(name: str, key: str, value: Any, default: Any) -> Any:
    from robot_rl.transport.ros_args import RosArgsError, parse_param_value

    try:
        if isinstance(default, dict):
            if isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("{") else parse_param_value(value)
            if isinstance(value, (list, tuple)):
                value = dict(str(kv).split(":", 1) for kv in value)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object or a list of key:value")
            return {str(k).strip(): v for k, v in value.items()}
        if isinstance(value, str) and not isinstance(default, str):
            value = parse_param_value(value)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if isinstance(default, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError("expected an integer")
            return value
        if isinstance(default, float):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if isinstance(default, list):
            if not isinstance(value, (list, tuple)):
                raise ValueError("expected a list, e.g. [a, b]")
            return list(value)
        return value if isinstance(value, str) else str(value)
    except (ValueError, TypeError, RosArgsError) as e:
        raise TeleopError(f"{name} parameter {key}={value!r} is invalid: {e}") from None


def build_config(name: str, values: dict[str, Any], **runtime: Any):
    """The config of device `name` from parameter values (unknown keys are an error); `runtime`
    sets fields that are not parameters (e.g. `node=`)."""
    cls = config_class(name)
    defaults = parameter_defaults(name)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise TeleopError(f"{name} has no parameter(s) {', '.join(unknown)}; it takes: {', '.join(sorted(defaults))}")
    typed = {k: _typed(name, k, v, defaults[k]) for k, v in values.items()}
    scale = DeviceScale(**{k: typed.pop(k) for k in SCALE_FIELDS if k in typed})
    if min(scale.linear_m_s, scale.angular_rad_s, scale.joint_rad_s) <= 0:
        raise TeleopError(f"{name} scale must be positive, got {scale}")
    return cls(scale=scale, **typed, **runtime)
