"""Boundary episodes for automatic domain randomization (ADR, `robot_rl.adr`): which envs' episodes
evaluate one DR parameter exactly at one end of its current range.

The curriculum hands the env a list of *pairs*, `(parameter, value)` (one per parameter and side,
in a fixed order), and a fraction. At each reset, every reset env is a boundary env with
probability `fraction`; a boundary env gets one pair drawn uniformly, and its episode has that
parameter exactly at `value` (the others are sampled from the ranges as usual). `env_pair[i]` is the
index of the pair env i's episode evaluates (-1: none); the env reports it for every ended episode
(`info["episode"]["dr_boundary"]`), so the curriculum can credit the episode's success to the pair.

When a pair's value changes (the curriculum moved that boundary), episodes still running at the old
value are no longer counted for it: their `env_pair` becomes -1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from robot_rl.sim import randomization as R


class BoundaryPlan:
    def __init__(self, num_envs: int, device):
        self.device = device
        self.env_pair = torch.full((num_envs,), -1, dtype=torch.long, device=device)
        self.cols = torch.zeros(0, dtype=torch.long, device=device)
        """Column of each pair's parameter in `R.PARAM_NAMES` (the env's `dr_values`)."""
        self.values = torch.zeros(0, device=device)
        self.fraction = 0.0

    @property
    def active(self) -> bool:
        return self.fraction > 0 and len(self.cols) > 0

    def set(self, pairs: Sequence[tuple[str, float]], fraction: float, dr: R.DomainRandomization) -> None:
        """New pairs (each value inside `dr`'s range of its parameter) and the fraction of reset envs
        that evaluate one."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"boundary fraction must be in [0, 1], got {fraction}")
        cols, values = [], []
        for name, value in pairs:
            if name not in R.PARAM_NAMES:
                raise ValueError(f"unknown DR parameter {name!r} for a boundary episode; "
                                 f"per-env parameters: {', '.join(R.PARAM_NAMES)}")
            lo, hi = getattr(dr, name)
            if not lo <= value <= hi:
                raise ValueError(f"boundary value {name}={value} lies outside its DR range ({lo}, {hi})")
            cols.append(R.PARAM_NAMES.index(name))
            values.append(float(value))
        cols_t = torch.tensor(cols, dtype=torch.long, device=self.device)
        values_t = torch.tensor(values, device=self.device)
        if len(cols_t) == len(self.cols) and torch.equal(cols_t, self.cols):
            moved = (values_t != self.values).nonzero().flatten()
            stale = torch.isin(self.env_pair, moved)
        else:  # other pairs altogether: no running episode counts for any
            stale = self.env_pair >= 0
        if fraction == 0:  # no more boundary episodes (resets no longer draw pairs)
            stale = self.env_pair >= 0
        self.env_pair[stale] = -1
        self.cols, self.values, self.fraction = cols_t, values_t, float(fraction)

    def draw(self, ids: torch.Tensor, gen: torch.Generator) -> None:
        """Pick the pair (or none) each of the envs `ids` evaluates in its new episode."""
        u = torch.rand((len(ids), 2), generator=gen, device=self.device)
        pair = (u[:, 1] * len(self.cols)).long().clamp_(max=len(self.cols) - 1)
        self.env_pair[ids] = torch.where(u[:, 0] < self.fraction, pair, torch.full_like(pair, -1))

    def pin(self, ids: torch.Tensor, values: torch.Tensor, first_col: int = 0) -> None:
        """Set the boundary parameter of each boundary env among `ids` in `values` ([len(ids), k],
        columns `first_col..first_col + k` of `R.PARAM_NAMES`); other envs and columns are left."""
        pair = self.env_pair[ids]
        rows = (pair >= 0).nonzero().flatten()
        if not len(rows):
            return
        cols = self.cols[pair[rows]] - first_col
        inside = (cols >= 0) & (cols < values.shape[1])
        rows, cols = rows[inside], cols[inside]
        values[rows, cols] = self.values[pair[rows]]

    def physics(self, ids: torch.Tensor) -> torch.Tensor:
        """Mask over `ids`: boundary envs whose parameter lives in the physics model."""
        pair = self.env_pair[ids]
        sel = pair >= 0
        return sel & (self.cols[pair.clamp(min=0)] < len(R.PHYSICS_PARAMS)) if len(self.cols) else sel
