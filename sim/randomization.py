"""Domain randomization: declared as dataclass ranges next to each task, sampled per env.

Every range is `(lo, hi)` and sampled uniformly per env at reset (physics parameters can also be
re-sampled on an interval). Scales multiply the nominal value of the model; `payload_kg` is a point
mass added to the task's payload body at `payload_pos_*_m` in that body's frame. Delays are whole
control steps. Sampling is batched torch code on a seeded generator: the same seed gives the same
samples on every backend.

A task declares two ranges: `train` (used while training) and `eval`, a held-out range used to
check how a policy transfers (`--dr eval`); `off` gives the nominal model. `dr_effects.py` refuses
a range that cannot change the task's dynamics or observations (friction on a model without
contacts or joint friction, a payload offset without a payload...).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import torch

Range = tuple[float, float]


@dataclass(frozen=True)
class DomainRandomization:
    """Ranges sampled per env at reset. `(1.0, 1.0)` / `(0, 0)` means not randomized."""

    mass_scale: Range = (1.0, 1.0)
    """Multiplier on every link mass (and, with it, every link inertia)."""
    inertia_scale: Range = (1.0, 1.0)
    """Multiplier on every link's rotational inertia (on top of `mass_scale`)."""
    payload_kg: Range = (0.0, 0.0)
    """Point mass added to the task's payload body (the last link for arms: a tool)."""
    payload_pos_x_m: Range = (0.0, 0.0)
    """Where the payload sits, in the payload body's frame (x, y, z; z is the flange axis of an arm)."""
    payload_pos_y_m: Range = (0.0, 0.0)
    payload_pos_z_m: Range = (0.0, 0.0)
    friction_scale: Range = (1.0, 1.0)
    """Multiplier on contact friction and joint friction loss (needs contacts or friction loss)."""
    damping_scale: Range = (1.0, 1.0)
    """Multiplier on joint damping."""
    armature_scale: Range = (1.0, 1.0)
    kp_scale: Range = (1.0, 1.0)
    """Multiplier on the actuators' position gain."""
    kd_scale: Range = (1.0, 1.0)
    """Multiplier on the actuators' velocity gain."""
    motor_strength: Range = (1.0, 1.0)
    """Multiplier on the whole actuator output (gain and bias)."""
    gravcomp_error: Range = (0.0, 0.0)
    """Relative error of the controller's gravity model: it compensates (1 + e) x the nominal links'
    gravity (needs a robot with gravity compensation)."""
    action_delay_steps: tuple[int, int] = (0, 0)
    """Control steps between the policy's action and its effect (inclusive range)."""
    obs_delay_steps: tuple[int, int] = (0, 0)
    """Age in control steps of the observation the policy sees (inclusive range)."""
    encoder_bias_rad: Range = (0.0, 0.0)
    """Magnitude of a constant per-episode encoder offset, each actuated joint with a random sign:
    the robot measures q + b, and its position controller servos the measured value, so the joint
    settles at target - b while the policy sees the target reached (invisible to proprioception)."""
    obs_noise_scale: float = 0.0
    """Multiplier on each observation term's declared noise standard deviation."""
    obs_bias_scale: float = 0.0
    """Multiplier on each term's declared noise std for a constant per-episode bias."""
    push_interval_s: Range = (0.0, 0.0)
    """Seconds between random pushes; (0, 0) disables pushes."""
    push_joint_velocity: float = 0.0
    """Largest joint-velocity kick of a push, rad/s (or m/s for slide joints)."""
    resample_interval_s: float = 0.0
    """Re-sample physics parameters every this many seconds within an episode; 0 = at reset only."""
    part_size_delta_m: Range = (0.0, 0.0)
    """Manufacturing tolerance of the task's parts: change of the radius of the geoms the task
    names in `Task.toleranced_geoms` (spheres, capsules, cylinders), per physics variant (m,
    signed). A geometry parameter (`GEOMETRY_PARAMS`): only a task that names toleranced geoms
    samples it and has it in its DR values and critic group."""

    def validate(self, where: str = "dr") -> None:
        """Raise ValueError (one line) for a malformed range or one outside physical sense."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                if len(v) != 2:
                    raise ValueError(f"{where}.{f.name} must be a (min, max) pair, got {v!r}")
                lo, hi = v
                if lo > hi:
                    raise ValueError(
                        f"{where}.{f.name} has min > max ({lo} > {hi}); give the range as (min, max)"
                    )
                if f.name in POSITIVE and lo <= 0:
                    raise ValueError(f"{where}.{f.name} must be > 0 (a scale of zero or less is not a robot), "
                                     f"got {v!r}")
                if f.name == "gravcomp_error" and not (-1.0 <= lo and hi <= 1.0):
                    raise ValueError(f"{where}.gravcomp_error must lie in [-1, 1] (a relative error), got {v!r}")
                if f.name not in SIGNED and lo < 0:
                    raise ValueError(f"{where}.{f.name} must be non-negative, got {v!r}")
            elif v < 0:
                raise ValueError(f"{where}.{f.name} must be non-negative, got {v}")

    @property
    def max_action_delay(self) -> int:
        return int(self.action_delay_steps[1])

    @property
    def max_obs_delay(self) -> int:
        return int(self.obs_delay_steps[1])


POSITIVE = ("mass_scale", "inertia_scale", "kp_scale", "kd_scale", "motor_strength")
"""Scales that must stay > 0 (a massless link or a zero gain is not a robot)."""
SIGNED = ("payload_pos_x_m", "payload_pos_y_m", "payload_pos_z_m", "gravcomp_error", "part_size_delta_m")
"""Ranges that may be negative."""

NOMINAL = DomainRandomization()

# the parameters that live in the simulator's model (one model per physics variant, see
# `physics_bank.py`); they lead `PARAM_NAMES`, the others are sampled per env at each reset
PHYSICS_PARAMS = (
    "mass_scale",
    "inertia_scale",
    "payload_kg",
    "payload_pos_x_m",
    "payload_pos_y_m",
    "payload_pos_z_m",
    "friction_scale",
    "damping_scale",
    "armature_scale",
    "kp_scale",
    "kd_scale",
    "motor_strength",
    "gravcomp_error",
)
EPISODE_PARAMS = ("action_delay_steps", "obs_delay_steps", "encoder_bias_rad")
PARAM_NAMES = PHYSICS_PARAMS + EPISODE_PARAMS
"""Names of the per-env scalar parameters that `sample` returns, in a fixed order (critic group)."""
GEOMETRY_PARAMS = ("part_size_delta_m",)
"""Per-variant parameters of the task's part geometry. Not in `PARAM_NAMES`: only a task that
declares toleranced geoms samples them (one more column of each physics variant's draw, after the
physics parameters), so the random stream, DR values and critic size of every other task are
unchanged."""


def param_names(geometry: bool) -> tuple[str, ...]:
    """The DR value columns of an env (`env.dr_values`, the critic group's tail): `PARAM_NAMES`,
    then `GEOMETRY_PARAMS` for a task with toleranced geoms."""
    return PARAM_NAMES + GEOMETRY_PARAMS if geometry else PARAM_NAMES


def uniform(gen: torch.Generator, lo: float, hi: float, shape, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=device)


@functools.lru_cache(maxsize=64)
def _bounds(dr: DomainRandomization, names: tuple[str, ...], device: str):
    """`(lo, width, ints)` for `sample_matrix`: integer ranges `(a, b)` become `[a, b + 1)`, floored
    when sampled; `ints` selects their columns (None when there are none)."""
    lo, width, ints = [], [], []
    for i, name in enumerate(names):
        a, b = (float(v) for v in getattr(dr, name))
        is_int = name.endswith("_steps")
        lo.append(a)
        width.append(b + 1.0 - a if is_int else b - a)
        if is_int:
            ints.append(i)
    cols = None
    if ints:
        contiguous = ints == list(range(ints[0], ints[-1] + 1))
        cols = slice(ints[0], ints[-1] + 1) if contiguous else torch.tensor(ints, device=device)
    return torch.tensor(lo, device=device), torch.tensor(width, device=device), cols


def sample_matrix(dr: DomainRandomization, n: int, gen: torch.Generator, device,
                  names: tuple[str, ...] = PARAM_NAMES) -> torch.Tensor:
    """One value of each parameter per env as one `[n, len(names)]` tensor (columns in `names`
    order), drawn in one batched call. Whole-step parameters (`*_steps`) are uniform integers."""
    lo, width, ints = _bounds(dr, tuple(names), str(torch.device(device)))
    out = torch.rand((n, len(names)), generator=gen, device=device).mul_(width).add_(lo)
    if ints is not None:
        hi = lo[ints] + width[ints] - 1.0
        out[:, ints] = torch.minimum(out[:, ints].floor(), hi)
    return out


def sample(dr: DomainRandomization, n: int, gen: torch.Generator, device,
           names: tuple[str, ...] = PARAM_NAMES) -> dict[str, torch.Tensor]:
    """One value of each parameter per env: `{name: tensor[n]}` in `names` order."""
    m = sample_matrix(dr, n, gen, device, names)
    return {name: m[:, i] for i, name in enumerate(names)}


@dataclass(frozen=True)
class DRPresets:
    """The ranges a task declares: `train` for training, `eval` held out for evaluation."""

    train: DomainRandomization = field(default_factory=DomainRandomization)
    eval: DomainRandomization = field(default_factory=DomainRandomization)
    adr_bounds: dict[str, Range] = field(default_factory=dict, hash=False)
    """Outer bounds `{parameter: (lo, hi)}` that automatic DR (`robot_rl.adr`, `--adr.enabled`) may
    widen `train` up to; each must contain the `train` range. Parameters not named here get the
    generic bound of `ADRConfig.widen_factor`."""

    def get(self, mode: str) -> DomainRandomization:
        if mode == "off":
            return NOMINAL
        if mode in ("train", "eval"):
            return getattr(self, mode)
        raise ValueError(f"unknown DR mode {mode!r}; use one of: train, eval, off")
