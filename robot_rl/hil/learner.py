"""The HIL-SERL / RLIF learner: a process that receives transitions, trains SAC with RLPD batches
and publishes versioned actor weights.

```
python -m robot_rl.hil.learner CONFIG.json        # a LearnerConfig as JSON (serl.run writes it)
```

* Rewards are labelled here from the fields every transition carries (`label_rewards`):
  `hil-serl` uses the task's sparse success (+1 on the success step); `rlif` uses -1 on the
  transition just before a takeover (`penalty`: the next step started a takeover), 0 otherwise,
  and no task reward. Both put intervention transitions (and the demonstrations) in the offline
  buffer, the policy's own in the online buffer.
* Updates are paced by data: at most `updates_per_transition` SAC updates (each `utd` critic
  steps) per transition received, after `warmup` transitions.
* Every `publish_every` updates a new weights version goes to every actor heard from; an actor
  whose heartbeat reports an older version gets the newest one (so a reconnecting actor catches up).
* Every `checkpoint_s` seconds, and on SIGTERM, `learner.safetensors` (networks, temperature,
  buffers, counters) is written atomically to `out`; a restarted learner reloads it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from robot_rl.hil.link import LearnerLink
from robot_rl.hil.sac import SAC, RLPDBuffers, SACConfig

METHODS = ("hil-serl", "rlif")


@dataclass
class LearnerConfig:
    obs_dim: int
    act_dim: int
    out: str
    method: str = "hil-serl"
    address: str = "tcp://127.0.0.1:5588"
    sac: SACConfig = field(default_factory=SACConfig)
    demos: str = ""
    """Offline transitions (safetensors with the `tr` fields) loaded at the first start."""
    capacity: int = 200_000
    warmup: int = 256
    updates_per_transition: float = 0.5
    publish_every: int = 10
    checkpoint_s: float = 10.0
    heartbeat_s: float = 0.25
    peer_timeout_s: float = 5.0
    max_updates: int = 0
    """Stop after this many updates (0: run until SIGTERM)."""
    takeover_penalty: float = 0.0
    """hil-serl only: subtract this times RLIF's takeover label from the success reward (0: HIL-SERL's
    success alone)."""

    @staticmethod
    def from_dict(d: dict) -> LearnerConfig:
        d = dict(d)
        d["sac"] = SACConfig(**d.get("sac", {}))
        return LearnerConfig(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def label_rewards(method: str, tr: dict[str, torch.Tensor], takeover_penalty: float = 0.0) -> torch.Tensor:
    """The reward of each transition: `success` (+1) for hil-serl, minus `takeover_penalty` on the
    transition before each takeover; -`penalty` for rlif."""
    if method == "hil-serl":
        return tr["success"].float() - takeover_penalty * tr["penalty"].float()
    if method == "rlif":
        return -tr["penalty"].float()
    raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")


class Learner:
    def __init__(self, cfg: LearnerConfig, log=print):
        if cfg.method not in METHODS:
            raise ValueError(f"unknown method {cfg.method!r}; use one of {', '.join(METHODS)}")
        self.cfg, self.log = cfg, log
        torch.set_num_threads(1)
        self.agent = SAC(cfg.sac, cfg.obs_dim, cfg.act_dim)
        self.buffers = RLPDBuffers(cfg.obs_dim, cfg.act_dim, cfg.capacity)
        self.received = self.version = 0
        self.seen_sets: dict[str, set[int]] = {}
        self.ckpt = Path(cfg.out) / "learner.safetensors"
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        if self.ckpt.is_file():
            self._load()
            log(f"learner: resumed from {self.ckpt} (version {self.version}, {self.agent.updates} updates, "
                f"{self.received} transitions)")
        elif cfg.demos:
            demos = load_file(cfg.demos)
            self._add(demos, force_offline=True)
            log(f"learner: {len(demos['obs'])} demonstration transitions in the offline buffer")
        self.link = LearnerLink(cfg.address, log)
        self.peers: dict[bytes, list] = {}  # peer -> [last heard, version it acts with, version sent, sent at]
        self.stop = False

    def _add(self, tr: dict[str, torch.Tensor], force_offline: bool = False) -> None:
        off = torch.ones(len(tr["obs"]), dtype=torch.bool) if force_offline else tr["intervening"].bool()
        self.buffers.add(tr["obs"], tr["act"], label_rewards(self.cfg.method, tr, self.cfg.takeover_penalty), tr["next_obs"],
                         tr["terminated"].float(), offline=off)

    def _weights(self) -> dict[str, torch.Tensor]:
        return self.agent.actor_state()

    def _publish(self, peers) -> None:
        w = self._weights()
        head = {"version": self.version, "boot": self.link.boot, "updates": self.agent.updates, "time": time.time()}
        for p in peers:
            self.link.send(p, "w", head, w)
            self.peers[p][2:] = [self.version, time.monotonic()]

    def checkpoint(self) -> None:
        t = self.agent.state() | self.buffers.offline.state("offline") | self.buffers.online.state("online")
        t["counters"] = torch.tensor([self.received, self.version])
        tmp = self.ckpt.with_suffix(".tmp")
        save_file(t, str(tmp))
        os.replace(tmp, self.ckpt)

    def _load(self) -> None:
        t = load_file(str(self.ckpt))
        self.agent.load(t)
        self.buffers.offline.load("offline", t)
        self.buffers.online.load("online", t)
        self.received, self.version = (int(x) for x in t["counters"])

    def _handle(self, peer: bytes, kind: str, head: dict, tensors: dict) -> None:
        now = time.monotonic()
        state = self.peers.setdefault(peer, [now, -1, -1, -1e9])
        state[0] = now
        if kind == "hb":  # an actor behind (new, reconnected, or a message lost): send it the newest
            state[1] = int(head.get("version", -1)) if head.get("boot") == self.link.boot else -1
            if 0 < self.version != state[1] and (state[2] != self.version or now - state[3] > 2.0):
                self._publish([peer])
        elif kind == "tr":
            sid, seq = str(head.get("sid")), int(head.get("seq", -1))
            seen = self.seen_sets.setdefault(sid, set())
            if seq not in seen:
                need = {"obs", "act", "next_obs", "terminated", "success", "penalty", "intervening"}
                if not need <= tensors.keys():
                    self.link.log(f"learner: ignored a transition chunk without {sorted(need - tensors.keys())}")
                    return
                self._add(tensors)
                self.received += len(tensors["obs"])
                seen.add(seq)
            self.link.send(peer, "ack", {"seq": seq})

    def run(self) -> None:
        cfg, a = self.cfg, self.agent
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        hb_at = ck_at = log_at = time.monotonic()
        info: dict = {}
        while not self.stop:
            ready = self.buffers.offline.size + self.buffers.online.size >= cfg.warmup
            allowed = ready and a.updates < cfg.updates_per_transition * max(self.received, 0) + 1
            for msg in self.link.poll(0 if allowed else 20):
                self._handle(*msg)
            now = time.monotonic()
            if now - hb_at >= cfg.heartbeat_s:
                hb_at = now
                self.peers = {p: v for p, v in self.peers.items() if now - v[0] < cfg.peer_timeout_s}
                for p in self.peers:
                    self.link.send(p, "hb", {"boot": self.link.boot, "version": self.version, "updates": a.updates})
            if allowed:
                info = a.update(self.buffers)
                if a.updates % cfg.publish_every == 0:
                    self.version += 1
                    self._publish(list(self.peers))
            if now - log_at >= 30.0 and info:
                log_at = now
                self.log(f"learner: {a.updates} updates, version {self.version}, {self.received} transitions "
                         f"(offline {self.buffers.offline.size}, online {self.buffers.online.size}), "
                         + ", ".join(f"{k} {v:.3g}" for k, v in info.items()))
            if now - ck_at >= cfg.checkpoint_s:
                ck_at = now
                self.checkpoint()
            if cfg.max_updates and a.updates >= cfg.max_updates:
                break
        self.checkpoint()
        self.link.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m robot_rl.hil.learner CONFIG.json", file=sys.stderr)
        return 2
    cfg = LearnerConfig.from_dict(json.loads(Path(argv[0]).read_text()))
    Learner(cfg, log=lambda s: print(s, flush=True)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
