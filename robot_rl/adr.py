"""Automatic domain randomization (ADR), as in OpenAI et al. 2019, "Solving Rubik's Cube with a
Robot Hand": a curriculum over the DR ranges, driven by the policy's success at their boundaries.

```
adr = ADR(task.dr.train, ADRConfig(enabled=True), bounds=task.dr.adr_bounds)
env.set_dr(adr.dr, adr.boundary(), cfg.boundary_fraction)       # before the first reset
...
ep = info["episode"]
if adr.update(ep["dr_boundary"], ep["success"]):                 # a boundary moved
    env.set_dr(adr.dr, adr.boundary(), cfg.boundary_fraction)
```

* Parameters: every `(lo, hi)` field of `DomainRandomization` that is sampled per env
  (`randomization.PARAM_NAMES`), found by iterating over the dataclass, so parameters added later
  are covered. Ranges not sampled per env (push intervals) are left as they are.
* Each range starts at the task's training range and moves, side by side, between it and an outer
  bound: the task's own (`DRPresets.adr_bounds`) or the generic one of `ADRConfig.widen_factor`.
  A side that cannot move (its bound is its training value, e.g. a payload's 0 kg) is not evaluated.
* Boundary evaluation: the env pins one parameter of a few envs at one end of its current range
  (`BatchedEnv.set_dr`, `sim/dr_boundary.py`); their episodes' successes fill one buffer per
  (parameter, side). A full buffer (`buffer_size`) decides: success >= `threshold_high` widens the
  side by one step, <= `threshold_low` narrows it by one step (never inside the training range);
  then the buffer clears.
* Positions are whole levels `0..K` per side (K = 1/step for real parameters, the number of whole
  steps for integer `*_steps` parameters), so the ranges are exact and reproducible, and values
  lie between the training value and the bound by construction: a bound that is physically
  impossible (a negative mass or delay, a zero or negative multiplier) is refused up front, so no
  range can ever reach such a value.

Pure bookkeeping on Python numbers: no simulator, no torch beyond reading the episode tensors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from robot_rl.config import ADRConfig
from robot_rl.sim import randomization as R

SIDES = ("lo", "hi")


def adr_parameters() -> tuple[str, ...]:
    """The DR parameters ADR can move: the `(lo, hi)` fields sampled per env, in field order."""
    nominal = R.DomainRandomization()
    return tuple(f.name for f in dataclasses.fields(R.DomainRandomization)
                 if isinstance(getattr(nominal, f.name), tuple) and f.name in R.PARAM_NAMES)


def is_integer(name: str) -> bool:
    return name.endswith("_steps")


def is_multiplier(name: str) -> bool:
    """A multiplier on a nominal model value (nominal `(1, 1)`): must stay > 0."""
    return tuple(getattr(R.NOMINAL, name)) == (1.0, 1.0)


def default_bounds(name: str, initial: R.Range, widen_factor: float) -> R.Range:
    """The training range widened `widen_factor` times about its centre, kept physical."""
    lo, hi = (float(v) for v in initial)
    c, h = (lo + hi) / 2, (hi - lo) / 2 * widen_factor
    blo, bhi = c - h, c + h
    if is_multiplier(name):
        blo = max(blo, lo / widen_factor)
    elif name == "gravcomp_error":  # a relative error: within [-1, 1]
        blo, bhi = max(blo, -1.0), min(bhi, 1.0)
    elif name not in R.SIGNED and lo >= 0:
        blo = max(blo, 0.0)
    blo, bhi = min(blo, lo), max(bhi, hi)
    if is_integer(name):
        return (int(math.ceil(blo - 1e-9)), int(math.floor(bhi + 1e-9)))
    return (round(blo, 9), round(bhi, 9))


def check_bounds(name: str, initial: R.Range, bounds, where: str = "adr") -> R.Range:
    """Validate a declared outer bound; the error is one line that names the problem and the fix."""
    if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
        raise ValueError(f"{where} bound {name}={bounds!r} must be a (lo, hi) pair")
    blo, bhi = (float(v) for v in bounds)
    lo, hi = (float(v) for v in initial)
    if not (math.isfinite(blo) and math.isfinite(bhi)) or blo > bhi:
        raise ValueError(f"{where} bound {name}=({blo}, {bhi}) is not a finite (lo, hi) range with lo <= hi")
    if is_multiplier(name) and (blo < 0 or blo <= 0 < lo):
        raise ValueError(f"{where} bound {name}=({blo}, {bhi}) is not physical: {name} is a multiplier "
                         f"and must stay > 0 (zero or negative masses and gains are impossible); raise its lower end")
    if name == "gravcomp_error" and not (-1.0 <= blo and bhi <= 1.0):
        raise ValueError(f"{where} bound {name}=({blo}, {bhi}) is not physical: a relative error lies in [-1, 1]")
    if not is_multiplier(name) and name not in R.SIGNED and lo >= 0 and blo < 0:
        raise ValueError(f"{where} bound {name}=({blo}, {bhi}) is not physical: {name} cannot be negative; "
                         "give a lower end >= 0")
    if is_integer(name) and (blo != int(blo) or bhi != int(bhi)):
        raise ValueError(f"{where} bound {name}=({blo}, {bhi}) must be whole numbers of control steps")
    if blo > lo or bhi < hi:
        raise ValueError(f"{where} bound {name}=({blo}, {bhi}) lies inside the training range ({lo}, {hi}); "
                         "an outer bound must contain the training range: widen it or leave it out")
    return (int(blo), int(bhi)) if is_integer(name) else (blo, bhi)


class ADR:
    def __init__(self, initial: R.DomainRandomization, cfg: ADRConfig,
                 bounds: Mapping[str, R.Range] | None = None, where: str = "adr"):
        cfg.validate()
        self.cfg = cfg
        self.initial_dr = initial
        names = adr_parameters()
        unknown = sorted(set(bounds or {}) - set(names))
        if unknown:
            raise ValueError(f"{where} bounds name unknown parameter(s) {', '.join(unknown)}; "
                             f"ADR moves: {', '.join(names)}")
        self.initial: dict[str, R.Range] = {}
        self.bounds: dict[str, R.Range] = {}
        for name in names:
            init = getattr(initial, name)
            b = (check_bounds(name, init, bounds[name], where) if bounds and name in bounds
                 else default_bounds(name, init, cfg.widen_factor))
            if b != tuple(init) and (b[0] < init[0] or b[1] > init[1]):
                self.initial[name], self.bounds[name] = tuple(init), b
        # the (parameter, side) pairs that can move, and K (levels from training value to bound)
        self.pairs: list[tuple[str, str]] = []
        self.num_levels: list[int] = []
        for name in self.initial:
            for s, side in enumerate(SIDES):
                dist = abs(self.bounds[name][s] - self.initial[name][s])
                if dist > 0:
                    self.pairs.append((name, side))
                    self.num_levels.append(int(round(dist)) if is_integer(name)
                                           else max(1, math.ceil(1 / cfg.step - 1e-9)))
        if not self.pairs:
            raise ValueError(f"{where}: no DR range can widen: the training range randomizes none of "
                             f"{', '.join(names)} and the task declares no adr_bounds; use --env.dr train "
                             "or declare DRPresets.adr_bounds")
        self.levels = [0] * len(self.pairs)
        self.buffers: list[list[float]] = [[] for _ in self.pairs]
        self.decisions = 0
        """Buffers decided so far (widened, narrowed or held)."""

    # -- the current ranges --------------------------------------------------------------------
    def value(self, p: int, level: int | None = None) -> float:
        """Where side `p` of its parameter's range is at `level` (default: its current level)."""
        name, side = self.pairs[p]
        s = SIDES.index(side)
        k = self.levels[p] if level is None else level
        a, b = self.initial[name][s], self.bounds[name][s]
        if is_integer(name):
            return int(a + (k if b > a else -k))
        t = k / self.num_levels[p]
        return (1 - t) * a + t * b  # exactly `a` at level 0 and `b` at level K

    @property
    def ranges(self) -> dict[str, R.Range]:
        """The current range of every parameter ADR moves."""
        out = {name: list(r) for name, r in self.initial.items()}
        for p, (name, side) in enumerate(self.pairs):
            out[name][SIDES.index(side)] = self.value(p)
        return {name: tuple(r) for name, r in out.items()}

    @property
    def dr(self) -> R.DomainRandomization:
        """The training DR with the current ranges."""
        return dataclasses.replace(self.initial_dr, **self.ranges)

    def boundary(self) -> list[tuple[str, float]]:
        """`(parameter, value)` of every pair, in pair order (what `BatchedEnv.set_dr` takes)."""
        return [(name, self.value(p)) for p, (name, _) in enumerate(self.pairs)]

    # -- the curriculum ------------------------------------------------------------------------
    def update(self, pair_ids, success) -> bool:
        """Credit ended episodes: `pair_ids[i]` the pair episode i evaluated (-1: none, ignored),
        `success[i]` its success (0/1). Returns True when a range moved."""
        moved = False
        pairs = pair_ids.tolist() if hasattr(pair_ids, "tolist") else list(pair_ids)
        succ = success.tolist() if hasattr(success, "tolist") else list(success)
        for p, s in zip(pairs, succ):
            if p < 0:
                continue
            buf = self.buffers[p]
            buf.append(float(s))
            if len(buf) < self.cfg.buffer_size:
                continue
            rate = sum(buf) / len(buf)
            buf.clear()
            self.decisions += 1
            if rate >= self.cfg.threshold_high and self.levels[p] < self.num_levels[p]:
                self.levels[p] += 1
                moved = True
            elif rate <= self.cfg.threshold_low and self.levels[p] > 0:
                self.levels[p] -= 1
                moved = True
        return moved

    # -- checkpoint and export -----------------------------------------------------------------
    def describe(self) -> dict:
        """Initial, outer-bound and reached ranges (for `spec.json` and logs)."""
        return {"initial": {k: list(v) for k, v in self.initial.items()},
                "bounds": {k: list(v) for k, v in self.bounds.items()},
                "reached": {k: list(v) for k, v in self.ranges.items()}}

    def state_dict(self) -> dict:
        return {**self.describe(), "pairs": [list(p) for p in self.pairs], "num_levels": list(self.num_levels),
                "levels": list(self.levels), "buffers": [list(b) for b in self.buffers],
                "decisions": self.decisions, "config": dataclasses.asdict(self.cfg)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`; it must come from the same ranges, bounds and step."""
        same = (state.get("pairs") == [list(p) for p in self.pairs]
                and state.get("num_levels") == list(self.num_levels)
                and state.get("initial") == self.describe()["initial"]
                and state.get("bounds") == self.describe()["bounds"])
        if not same:
            raise ValueError("the checkpoint's ADR state was made for other DR ranges, bounds or --adr.step; "
                             "resume with the task and --adr settings it was trained with, or start a new run")
        self.levels = [int(k) for k in state["levels"]]
        self.buffers = [[float(x) for x in b] for b in state["buffers"]]
        self.decisions = int(state.get("decisions", 0))


def summarize_moves(described: dict, limit: int | None = None) -> str:
    """One line naming the ranges an ADR run widened (`ADR.describe()` / `TrainResult.adr`):
    `name (lo, hi) -> (lo, hi)`, at most `limit` of them."""
    moved = {k: v for k, v in described["reached"].items() if v != described["initial"][k]}
    if not moved:
        return "no range moved"
    shown = list(moved.items())[:limit]
    text = "; ".join(f"{k} ({described['initial'][k][0]:.3g}, {described['initial'][k][1]:.3g}) -> "
                     f"({v[0]:.3g}, {v[1]:.3g})" for k, v in shown)
    return text if len(shown) == len(moved) else f"{len(moved)} widened, e.g. {text}"
