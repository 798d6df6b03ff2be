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

All bookkeeping is batched torch code on the env's device; it knows nothing of the simulator.
"""

from __future__ import annotations

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
        self.gen = gen
        self.device = device
        s = self.num_variants
        self.env_variant = torch.full((num_envs,), -1, dtype=torch.long, device=device)
        self.users = torch.zeros(s, dtype=torch.long, device=device)
        self.uses = torch.zeros(s, dtype=torch.long, device=device)
        self.open = torch.zeros(s, dtype=torch.bool, device=device)

    def assign(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Release the variants of envs `ids` and draw new ones.

        Returns `(variants, refresh)`: the variant of each env in `ids`, and the variants that must
        be re-sampled (written into the simulator) before those envs step."""
        if self.exact:
            self.env_variant[ids] = ids
            return ids, ids
        old = self.env_variant[ids]
        old = old[old >= 0]
        if len(old):
            self.users.index_add_(0, old, torch.full_like(old, -1))
        refresh = (~self.open & (self.users == 0)).nonzero().flatten()
        self.open[refresh] = True
        self.uses[refresh] = 0
        # keep `draining` variants closed to new envs: close the open ones that served most episodes
        need = self.draining - int((~self.open).sum())
        if need > 0:
            served = torch.where(self.open & (self.uses > 0), self.uses, torch.zeros_like(self.uses))
            top = served.topk(need).indices
            self.open[top[served[top] > 0]] = False
        candidates = self.open.nonzero().flatten()
        n = len(ids)
        if n <= len(candidates):  # spread draws: no variant twice in one call when avoidable
            pick = torch.randperm(len(candidates), generator=self.gen, device=self.device)[:n]
        else:
            pick = torch.randint(len(candidates), (n,), generator=self.gen, device=self.device)
        variants = candidates[pick]
        one = torch.ones_like(variants)
        self.users.index_add_(0, variants, one)
        self.uses.index_add_(0, variants, one)
        self.env_variant[ids] = variants
        return variants, refresh
