"""Per-env delay of a batched signal by a whole number of control steps (action and observation
latency in domain randomization).

The history is a list `[newest, ..., oldest]` of `max_delay + 1` tensors `[N, dim]`: pushing moves
references, never data. Which entry each env reads is kept as one boolean mask per delay,
updated only when an env's delay changes (at its reset), so a step costs one `where` per delay.
"""

from __future__ import annotations

import torch


class DelayLine:
    def __init__(self, n: int, dim: int, max_delay: int, device):
        self.max_delay = int(max_delay)
        self.history = [torch.zeros(n, dim, device=device) for _ in range(self.max_delay + 1)]
        self.masks = [torch.zeros(n, 1, dtype=torch.bool, device=device) for _ in range(self.max_delay)]

    def grow(self, max_delay: int) -> None:
        """Hold delays up to `max_delay` from now on (older entries repeat the oldest one)."""
        for _ in range(self.max_delay, int(max_delay)):
            self.history.append(self.history[-1].clone())
            self.masks.append(torch.zeros_like(self.masks[0]) if self.masks else
                              torch.zeros(self.history[0].shape[0], 1, dtype=torch.bool, device=self.history[0].device))
        self.max_delay = max(self.max_delay, int(max_delay))

    def set_delays(self, ids: torch.Tensor, delays: torch.Tensor) -> None:
        """Envs `ids` read the value from `delays` (ints, [len(ids)]) steps ago from now on."""
        for d, mask in enumerate(self.masks, start=1):
            mask[ids] = (delays == d).view(-1, 1)

    def shift(self, x: torch.Tensor) -> None:
        """A control step passed: `x` is the newest value."""
        self.history = [x, *self.history[:-1]]

    def output(self) -> torch.Tensor:
        """What each env sees now: `history[delay_i][i]`."""
        out = self.history[0]
        for past, mask in zip(self.history[1:], self.masks):
            out = torch.where(mask, past, out)
        return out

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.shift(x)
        return self.output()

    def fill(self, ids: torch.Tensor, rows) -> None:
        """Every history entry of envs `ids` holds `rows` (a new episode has no past)."""
        for past in self.history:
            past[ids] = rows

    def own(self) -> None:
        """Copy the history, so that later writes never touch a tensor handed to a caller."""
        self.history = [past.clone() for past in self.history]
