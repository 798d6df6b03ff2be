"""The robot twin's dynamics as DR: which range a name means, explicit overrides, and the
published stress set.

A twin is the held-out DR range (`eval`) of its task, sampled once from a seed (`RobotTwin`), with
any term replaced by an explicit value: what a user measured on their own robot, or one of the
named **stress twins** below, which lie beyond the held-out range. Because a twin is a point of
the same DR space the env samples from, `make_env(task, n, dr="heavy-tool")` simulates exactly the
stress twin's dynamics (batched, faster than real time) and the twin node simulates it in real time
behind the deploy graph.

| name | what differs from the held-out range (iiwa-reach / panda-reach) |
|---|---|
| `heavy-tool` | a tool of 1.5x the largest held-out payload (3 kg / 1.5 kg) 15 cm down the flange axis, links 15% heavier |
| `weak-gains` | position gain x0.7, velocity gain x0.7, motor strength x0.85 |
| `stiff-gains` | position gain x1.3, velocity gain x1.3 |
| `large-latency` | 2 control steps (40 ms) of action delay and 2 of observation delay |
| `biased-encoders` | every joint's encoder off by 0.005 rad (0.29 deg), random signs |
| `gravity-model` | the controller's gravity model 15% too weak |
| `all` | heavy-tool, weak-gains, large-latency, biased-encoders and gravity-model at once |
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from robot_rl.sim.randomization import DomainRandomization, Range


def _point(v: float) -> Range:
    return (float(v), float(v))


def _heavy_tool(dr: DomainRandomization) -> dict:
    return {"payload_kg": _point(1.5 * dr.payload_kg[1]), "payload_pos_x_m": _point(0.0),
            "payload_pos_y_m": _point(0.0), "payload_pos_z_m": _point(0.15), "mass_scale": _point(1.15)}


def _weak(dr):
    return {"kp_scale": _point(0.7), "kd_scale": _point(0.7), "motor_strength": _point(0.85)}


def _stiff(dr):
    return {"kp_scale": _point(1.3), "kd_scale": _point(1.3)}


def _latency(dr):
    return {"action_delay_steps": (2, 2), "obs_delay_steps": (2, 2)}


def _biased(dr):
    return {"encoder_bias_rad": _point(0.005)}


def _gravity(dr):
    return {"gravcomp_error": _point(-0.15)}


STRESS_TWINS: dict[str, Callable[[DomainRandomization], dict]] = {
    "heavy-tool": _heavy_tool,
    "weak-gains": _weak,
    "stiff-gains": _stiff,
    "large-latency": _latency,
    "biased-encoders": _biased,
    "gravity-model": _gravity,
    "all": lambda dr: {**_heavy_tool(dr), **_weak(dr), **_latency(dr), **_biased(dr), **_gravity(dr)},
}
"""Named twins beyond the held-out range: name -> overrides of the task's `eval` DR."""

DR_MODES = ("train", "eval", "off")


def stress_dr(task, name: str) -> DomainRandomization:
    """The DR of stress twin `name` for `task` (its held-out range with the stress overrides)."""
    if name not in STRESS_TWINS:
        raise ValueError(f"unknown stress twin {name!r}; the published stress twins are: "
                         f"{', '.join(STRESS_TWINS)}")
    base = task.dr.get("eval")
    return dataclasses.replace(base, **STRESS_TWINS[name](base))


def resolve_dr(task, dr) -> DomainRandomization:
    """`dr` as the env takes it: a DR mode (train, eval, off), a stress twin name, or a
    `DomainRandomization`."""
    if isinstance(dr, DomainRandomization):
        return dr
    if dr in DR_MODES:
        return task.dr.get(dr)
    if dr in STRESS_TWINS:
        return stress_dr(task, dr)
    raise ValueError(f"unknown DR mode {dr!r}; use one of: {', '.join(DR_MODES)}, or a stress twin: "
                     f"{', '.join(STRESS_TWINS)}")


SCALAR_OVERRIDES = ("payload_kg", "mass_scale", "inertia_scale", "kp_scale", "kd_scale", "motor_strength",
                    "gravcomp_error")
"""Twin overrides that replace one DR term by a measured value."""


def with_overrides(dr: DomainRandomization, overrides: dict) -> DomainRandomization:
    """`dr` with measured values in place of sampled ones: each of `SCALAR_OVERRIDES`, `payload_pos`
    ([x, y, z] m in the payload body's frame) and a scalar `encoder_bias` (rad, random signs).
    None values are ignored. The result is validated (negative masses, zero gains... raise)."""
    fields: dict = {}
    for k, v in overrides.items():
        if v is None:
            continue
        if k in SCALAR_OVERRIDES:
            fields[k] = _point(v)
        elif k == "payload_pos":
            if len(v) != 3:
                raise ValueError(f"payload_pos needs [x, y, z] in metres, got {list(v)}")
            fields.update({f"payload_pos_{a}_m": _point(x) for a, x in zip("xyz", v)})
        elif k == "encoder_bias":
            fields["encoder_bias_rad"] = _point(abs(v))
        else:
            raise ValueError(f"unknown twin override {k!r}; known: {', '.join(SCALAR_OVERRIDES)}, payload_pos, "
                             "encoder_bias")
    out = dataclasses.replace(dr, **fields)
    out.validate("twin")
    return out


def sampled_point(task, dr="eval", seed: int = 0) -> DomainRandomization:
    """The one sample of `dr` that `RobotTwin(task, seed, dr)` simulates, as a DR whose ranges are
    that point (noise, reading bias and pushes keep the range's settings; the encoder bias keeps
    its magnitude, with signs drawn per episode): `make_env(task, n, dr=sampled_point(...))` runs
    many episodes of the published twin's dynamics at once."""
    from robot_rl.sim import make_env

    env = make_env(task, 1, dr=dr, seed=int(seed), nthread=1)
    env.reset()
    vals = {k: float(v[0]) for k, v in env.dr_params.items()}
    fields = {k: ((int(v), int(v)) if k.endswith("_steps") else (v, v)) for k, v in vals.items()}
    env.sim.close()
    return dataclasses.replace(env.dr, **fields)
