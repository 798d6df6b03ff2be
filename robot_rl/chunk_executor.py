"""Chunked action execution on the robot: time-stamped actions, receding horizon or temporal
ensembling, stale actions dropped, the over-budget case defined.

:class:`ChunkExecutor` is the pure scheduling logic behind the policy node
(`robot_rl.nodes.policy`), in the style of `robot_rl/safety/filter.py`: every method takes the
current time ``t`` (seconds, monotonic, one clock for all calls); nothing inside reads a clock or
runs a thread, so behaviour is deterministic and testable. The node calls, at each control tick
at time ``t`` (in this order)::

    receive(ticket, chunk, t)     -- a chunk that inference finished since the last tick (if any)
    if wants_chunk(t):            -- time to ask for a new chunk
        ticket = request(t)       -- observe now; inference runs inline or on a worker thread
        (inline: receive(ticket, runtime.act(obs), t) at once)
    action = tick(t)              -- at most one action for this tick, or None (publish nothing)

Rules
-----
* **Tick grid.** Ticks are numbered by slots ``round((t - t0) / period_s)`` from the first tick
  after a reset, and never repeat (a tick that falls in an executed slot takes the next one): a
  tick executes at most one action, the one of its slot, so the safety node sees at most one
  command per tick. A tick the timer missed leaves its slot's action unexecuted (dropped as late).
* **Time stamps.** A chunk is requested at a tick, from the observation of that tick; action ``i``
  is due at the observation's time plus ``offsets_s[i]``, i.e. in slot
  ``request_slot + round(offsets_s[i] / period_s)``: the tick nearest its due time executes it.
  (Several actions in one slot, a chunk finer than the control period: the later one is kept.)
* **Stale actions** (Diffusion Policy's real-robot runner). A chunk is picked up at a tick (time
  ``t``, slot ``s``). An action whose slot is before ``slot(t + action_exec_latency)`` can no
  longer be executed at its tick and is dropped as stale (counted). A single action at offset 0
  computed inline (MLP, recurrent kinds) is never stale: it is due at the tick that asked for it.
* **Receding horizon** (``mode="receding"``). Of the chunk's fresh actions, the first
  ``execution_horizon`` (0: all) that come after the last queued action are queued; queued
  actions are committed, never replaced by a newer chunk. The next chunk is requested
  ``lead`` before the queue runs out, ``lead`` being the largest of the last ``latency_window``
  measured inference latencies (request tick to pick-up tick), so with a steady latency a chunk
  arrives at the tick after the last queued action and the actions it predicted for the
  meantime are the stale ones. With inline inference (latency 0) that is: re-plan when the queue
  is empty, as before. A late chunk leaves ticks without an action (counted as ``starved``).
* **Temporal ensembling** (``mode="ensemble"``, ACT). A chunk is requested at every tick (with a
  worker thread: whenever none is in flight) and every fresh action of every chunk is kept as a
  prediction for its slot; a tick executes the weighted mean of all predictions for its slot,
  ``w_i = exp(-ensemble_decay * i)``, normalized, ``i = 0`` for the oldest prediction (ACT's
  ``exp_weights``; ``ensemble_decay`` m = 0.01 as in ACT). ``execution_horizon`` is not used.
* **Over budget.** A chunk whose actions are all stale (inference took longer than the whole
  chunk) is an overrun, counted in :meth:`diagnostics`. ``over_budget="hold"`` (default): none of
  it is executed; the node publishes nothing until a fresh chunk arrives (a new one is requested
  at once), so the robot keeps the last executed command, and if this goes on, the safety node
  holds and then brakes on its own command timeouts. ``over_budget="last"`` does what Diffusion
  Policy's runner does: the chunk's last action is executed at the next free tick (this one).
* **Reset** (start-up, joint-state outage, new episode): the queue and predictions are cleared,
  the tick grid restarts at the next tick, and a chunk still in flight is discarded when it
  arrives (its ticket is from before the reset). Counters and latency estimates are kept.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

MODES = ("receding", "ensemble")
OVER_BUDGET = ("hold", "last")


@dataclass
class ChunkConfig:
    period_s: float
    """Control period (the node's tick)."""
    mode: str = "receding"
    """receding | ensemble."""
    execution_horizon: int = 0
    """Receding mode: actions executed per chunk before re-planning (0: the whole chunk)."""
    ensemble_decay: float = 0.01
    """Ensemble mode: m in w_i = exp(-m i), i = 0 the oldest prediction."""
    action_exec_latency: float = 0.0
    """Seconds from a command to its effect: actions due sooner after pick-up are stale too."""
    over_budget: str = "hold"
    """hold | last: what an all-stale chunk does (see the module docstring)."""
    latency_window: int = 8
    """Inference lead = the largest of this many recent latencies."""

    def __post_init__(self):
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise ValueError(f"period_s={self.period_s} must be a positive number of seconds")
        if self.mode not in MODES:
            raise ValueError(f"chunk mode {self.mode!r} is unknown; use one of {', '.join(MODES)}")
        if self.over_budget not in OVER_BUDGET:
            raise ValueError(f"over_budget {self.over_budget!r} is unknown; use one of {', '.join(OVER_BUDGET)}")
        if int(self.execution_horizon) != self.execution_horizon or self.execution_horizon < 0:
            raise ValueError(f"execution_horizon={self.execution_horizon} must be an integer >= 0 (0: the whole chunk)")
        if not (self.ensemble_decay >= 0 and math.isfinite(self.ensemble_decay)):
            raise ValueError(f"ensemble_decay={self.ensemble_decay} must be a number >= 0 (ACT uses 0.01)")
        if not (self.action_exec_latency >= 0 and math.isfinite(self.action_exec_latency)):
            raise ValueError(f"action_exec_latency={self.action_exec_latency} must be a number of seconds >= 0")
        if self.latency_window < 1:
            raise ValueError(f"latency_window={self.latency_window} must be at least 1")


class ChunkExecutor:
    """Schedules action chunks onto control ticks (see the module docstring for the rules)."""

    def __init__(self, cfg: ChunkConfig):
        self.cfg = cfg
        self.period = float(cfg.period_s)
        self._latencies: deque[float] = deque(maxlen=int(cfg.latency_window))
        self.counts = {"requested": 0, "received": 0, "executed": 0, "starved": 0, "stale": 0, "overruns": 0,
                       "late": 0, "not_queued": 0, "discarded": 0}
        self._generation = 0
        self._ticket = 0
        self.last_latency_s = 0.0
        self._in_flight: tuple[int, int, int, float] | None = None  # (ticket, generation, slot, t)
        self.reset()

    # -- state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget queued actions, predictions and the tick grid. A chunk in flight stays in flight
        (no new request until it is handed to :meth:`receive`), and is then discarded."""
        self._generation += 1
        self._t0: float | None = None
        self._last_slot: int | None = None
        self._queue: dict[int, np.ndarray] = {}  # receding: slot -> action
        self._preds: dict[int, list[tuple[int, np.ndarray]]] = {}  # ensemble: slot -> [(seq, action)]

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    @property
    def lead_s(self) -> float:
        """The inference lead: the largest recent latency (0 before any chunk arrived)."""
        return max(self._latencies) if self._latencies else 0.0

    def slot(self, t: float) -> int:
        """The slot the tick at time ``t`` executes (the grid starts at the first call after a reset)."""
        if self._t0 is None:
            self._t0 = t
        s = int(round((t - self._t0) / self.period))
        return s if self._last_slot is None else max(s, self._last_slot + 1)

    def queued(self) -> int:
        return len(self._queue) if self.cfg.mode == "receding" else len(self._preds)

    # -- requests --------------------------------------------------------------------------------

    def wants_chunk(self, t: float) -> bool:
        """Whether to request a chunk at the tick at time ``t`` (never while one is in flight)."""
        if self._in_flight is not None:
            return False
        if self.cfg.mode == "ensemble" or not self._queue:
            return True
        lead_slots = int(round(self.lead_s / self.period))
        return self.slot(t) + lead_slots > max(self._queue)

    def request(self, t: float) -> int:
        """Record a request made at the tick at time ``t`` (from that tick's observation); returns
        the ticket to hand back with the chunk to :meth:`receive`."""
        if self._in_flight is not None:
            raise RuntimeError("a chunk is already in flight; wait for it (wants_chunk is False)")
        self._ticket += 1
        self._in_flight = (self._ticket, self._generation, self.slot(t), t)
        self.counts["requested"] += 1
        return self._ticket

    def receive(self, ticket: int, chunk, t: float) -> str:
        """Take the chunk for ``ticket`` (actions [k, A], offsets_s [k]), picked up at time ``t``.

        Returns what happened: ``queued`` (some actions will run), ``overrun`` (all stale),
        ``discarded`` (requested before a reset) or ``nothing_new`` (every fresh action lay in
        already queued slots, or the chunk was empty)."""
        if self._in_flight is None or self._in_flight[0] != ticket:
            raise RuntimeError(f"chunk ticket {ticket} was not requested or was already received")
        _, generation, req_slot, t_req = self._in_flight
        self._in_flight = None
        if generation != self._generation:
            self.counts["discarded"] += 1
            return "discarded"
        self.last_latency_s = max(0.0, t - t_req)
        self._latencies.append(self.last_latency_s)
        self.counts["received"] += 1
        actions = np.asarray(chunk.actions, dtype=np.float64)
        offsets = np.asarray(chunk.offsets_s, dtype=np.float64).reshape(-1)
        if actions.ndim != 2 or actions.shape[0] != offsets.shape[0]:
            raise ValueError(f"action chunk has actions {actions.shape} and offsets {offsets.shape}; "
                             "the runtime must return actions [k, A] with one offset per action")
        if not np.isfinite(offsets).all():
            raise ValueError("action chunk has non-finite time offsets; the runtime must return seconds")
        slots = req_slot + np.rint(offsets / self.period).astype(np.int64)
        first_ok = self._stale_before(t)
        fresh = slots >= first_ok
        self.counts["stale"] += int((~fresh).sum())
        if actions.shape[0] and not fresh.any():
            self.counts["overruns"] += 1
            if self.cfg.over_budget == "last":
                self._add(ticket, self.slot(t), [(self.slot(t), actions[-1])], horizon=1)
            return "overrun"
        entries = [(int(s), a) for s, a, ok in zip(slots, actions, fresh) if ok]
        return "queued" if self._add(ticket, first_ok, entries, self.cfg.execution_horizon) else "nothing_new"

    def _stale_before(self, t: float) -> int:
        """First slot still executable at a pick-up at time ``t`` (with the execution latency)."""
        lat_slots = int(math.floor(self.cfg.action_exec_latency / self.period + 0.5))
        return self.slot(t) + lat_slots

    def _add(self, seq: int, first_ok: int, entries: list[tuple[int, np.ndarray]], horizon: int) -> int:
        if self.cfg.mode == "ensemble":
            by_slot = dict(entries)  # one prediction per slot per chunk (the later action wins)
            for s, a in by_slot.items():
                self._preds.setdefault(s, []).append((seq, a))
            return len(by_slot)
        after = max(self._queue) if self._queue else first_ok - 1
        by_slot = {s: a for s, a in entries if s > after}
        self.counts["not_queued"] += len({s for s, _ in entries}) - len(by_slot)
        keep = sorted(by_slot)[:horizon] if horizon else sorted(by_slot)
        self.counts["not_queued"] += len(by_slot) - len(keep)
        for s in keep:
            self._queue[s] = by_slot[s]
        return len(keep)

    # -- execution -------------------------------------------------------------------------------

    def tick(self, t: float) -> np.ndarray | None:
        """The one action to execute at the tick at time ``t``, or None (nothing due)."""
        s = self.slot(t)
        self._last_slot = s
        if self.cfg.mode == "ensemble":
            for old in [k for k in self._preds if k < s]:
                self.counts["late"] += len(self._preds.pop(old))
            preds = self._preds.pop(s, None)
            action = None if not preds else self.ensemble([a for _, a in sorted(preds, key=lambda p: p[0])])
        else:
            for old in [k for k in self._queue if k < s]:
                del self._queue[old]
                self.counts["late"] += 1
            action = self._queue.pop(s, None)
        self.counts["executed" if action is not None else "starved"] += 1
        return action

    def ensemble(self, predictions: list[np.ndarray]) -> np.ndarray:
        """ACT's temporal ensemble of predictions for one tick, oldest first."""
        p = np.stack(predictions)
        w = np.exp(-self.cfg.ensemble_decay * np.arange(p.shape[0]))
        return (w / w.sum()) @ p

    def diagnostics(self) -> dict:
        return {"mode": self.cfg.mode, "execution_horizon": self.cfg.execution_horizon, "queued": self.queued(),
                "lead_ms": round(self.lead_s * 1e3, 3), "in_flight": self.in_flight, **self.counts}
