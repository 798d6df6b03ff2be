"""Which physics variant each env simulates: the bank of DR-sampled simulator models.

Domain randomization of physics (masses, payload, friction, damping, armature, actuator gains,
motor strength) needs one simulator model per distinct set of values. With one model per env a
CPU backend reloads thousands of models (tens of KB each) from main memory on every control step;
that memory traffic, not the physics, then bounds throughput. A bank of `num_variants` models
stays in cache and is shared by the envs, like Isaac Lab's material buckets, while staying fresh:

* At reset an env draws one variant uniformly among the *open* variants.
* A quarter of the bank is kept *draining*: closed to new envs. Whenever fewer variants drain, the
  open variant that has served the most episodes closes. When the last env using a draining
  variant releases it (its episode ends), the variant is re-sampled from the DR ranges and opens
  again. No variant ever changes under an env that uses it, three quarters of the bank is always
  open to draws, and over a training run the envs see a continuous stream of fresh samples (each
  variant is re-sampled every few episode lengths), not a fixed set.
* With `num_variants >= num_envs` (or 0) every env owns variant `env_id` and re-samples it at each
  of its resets: exact per-env sampling.

* Automatic DR (`robot_rl.adr`) evaluates a range's boundary on a few envs, each with one
  parameter pinned at the boundary: such an env needs a variant of its own. `reserve(k)` sets `k`
  variants aside (closed to ordinary draws); `take_private(ids)` gives envs a free reserved variant
  each, which the caller writes. With an exact bank every env's variant is already its own.

The bookkeeping is numpy on small arrays (a bank only exists on CPU backends; backends with
per-world parameters are exact), with a numpy generator seeded from the env's torch generator, so
it is reproducible from the env's seed; it knows nothing of the simulator. `assign` takes and
returns torch tensors.
"""

from __future__ import annotations

import numpy as np
import torch


class PhysicsBank:
    @staticmethod
    def requested_variants(num_envs: int, physics_variants: int) -> int:
        """How many variants a bank of `physics_variants` (0 = one per env) holds for `num_envs`."""
        if physics_variants < 0 or physics_variants == 1:
            raise ValueError(f"physics_variants must be 0 (one per env) or >= 2, got {physics_variants}")
        return num_envs if physics_variants == 0 else min(physics_variants, num_envs)

    def __init__(self, num_envs: int, num_variants: int, gen: torch.Generator, device):
        """`num_variants`: the bank size the backend holds (see `requested_variants`)."""
        if not 1 <= num_variants <= num_envs:
            raise ValueError(f"a physics bank holds 1..num_envs variants, got {num_variants} for {num_envs} envs")
        self.num_envs = num_envs
        self.num_variants = num_variants
        self.exact = self.num_variants == num_envs
        self.draining = 0 if self.exact else max(1, self.num_variants // 4)
        """How many variants are kept closed to new envs so they can empty and be re-sampled."""
        self.device = device
        self.rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device)))
        s = self.num_variants
        self.env_variant = np.full(num_envs, -1, dtype=np.int64)
        self.users = np.zeros(s, dtype=np.int64)
        self.uses = np.zeros(s, dtype=np.int64)
        self.open = np.zeros(s, dtype=bool)
        self.private = np.zeros(s, dtype=bool)
        """Variants reserved for envs that need one of their own (`reserve`, `take_private`)."""

    def assign(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Release the variants of envs `ids` and draw new ones.

        Returns `(variants, refresh)`: the variant of each env in `ids`, and the variants that must
        be re-sampled (written into the simulator) before those envs step."""
        if self.exact:
            return ids, ids
        idx = ids.cpu().numpy()
        old = self.env_variant[idx]
        np.subtract.at(self.users, old[old >= 0], 1)
        refresh = np.flatnonzero(~self.open & ~self.private & (self.users == 0))
        self.open[refresh] = True
        self.uses[refresh] = 0
        # keep `draining` variants closed to new envs: close the open ones that served most episodes
        need = self.draining - int((~self.open & ~self.private).sum())
        if need > 0:
            served = np.where(self.open, self.uses, 0)
            top = np.argsort(-served, kind="stable")[:need]
            self.open[top[served[top] > 0]] = False
        candidates = np.flatnonzero(self.open)
        n = len(idx)
        if n <= len(candidates):  # spread draws: no variant twice in one call when avoidable
            variants = self.rng.choice(candidates, n, replace=False)
        else:
            variants = candidates[self.rng.integers(len(candidates), size=n)]
        np.add.at(self.users, variants, 1)
        np.add.at(self.uses, variants, 1)
        self.env_variant[idx] = variants
        return torch.from_numpy(variants).to(ids.device), torch.from_numpy(refresh).to(ids.device)

    def reserve(self, count: int) -> int:
        """Set aside up to `count` more variants for `take_private` (at least half the bank stays
        in the shared rotation); returns how many are reserved in all. A reserved variant serves
        its current envs to their episodes' end and is private from then on."""
        if self.exact:
            return 0
        room = self.num_variants - self.draining - max(1, self.num_variants // 2) - int(self.private.sum())
        k = max(0, min(int(count) - int(self.private.sum()), room))
        if k:
            cand = np.flatnonzero(~self.private)
            pick = cand[np.argsort(self.users[cand], kind="stable")[:k]]  # the emptiest ones
            self.private[pick] = True
            self.open[pick] = False
        return int(self.private.sum())

    def take_private(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Give envs `ids` a variant nobody else uses (a free reserved one; the caller writes its
        parameters). Returns `(variants, ok)`: envs with `ok` False got none (none was free) and
        keep their old variant; give them an ordinary one with `assign`."""
        if self.exact:
            return ids, torch.ones(len(ids), dtype=torch.bool, device=ids.device)
        idx = ids.cpu().numpy()
        free = np.flatnonzero(self.private & (self.users == 0))
        k = min(len(free), len(idx))
        old = self.env_variant[idx[:k]]
        np.subtract.at(self.users, old[old >= 0], 1)
        self.users[free[:k]] += 1
        self.env_variant[idx[:k]] = free[:k]
        variants = np.full(len(idx), -1, dtype=np.int64)
        variants[:k] = free[:k]
        ok = np.arange(len(idx)) < k
        return torch.from_numpy(variants).to(ids.device), torch.from_numpy(ok).to(ids.device)
