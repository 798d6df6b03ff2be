"""The actor beside the robot: runs the envs with the simulated operator and the newest policy it
has, streams transitions to the learner, never waits for it.

```
link = ActorLink("tcp://127.0.0.1:5588")
actor = HilActor(env, PolicySpec(obs_dim, act_dim), link, operator=SimulatedOperator(env), base=base)
for _ in range(steps): actor.step()          # one env step of every env; network I/O non-blocking
```

* The policy's input is the `policy` observation, followed by the frozen diffusion base's action
  when a `base` is given (residual mode, `robot_rl.residual.BaseChunker` batched over the envs).
* Acting: the newest weights received (a stochastic sample, for exploration); with none yet, the
  base alone (residual mode: the zero-initialised residual) or a hold (zero `ee_delta`: the arm
  stays where it is). A learner that dies or a network that drops changes nothing here: the actor
  keeps its last weights, the link keeps the unacknowledged transitions (bounded) and resends them.
* Each transition carries: `obs`, `act` (executed: the operator's when intervening), `next_obs`,
  `terminated`, `success` (the task's success on that step), `intervening`, `penalty` (the next
  step of the same episode starts a takeover: RLIF's label; a transition is held back one step
  for it), `done` (the episode ended on that step) and `version` (the weights that acted). On a time-out `next_obs` carries the terminal
  observation with the base action of that step (the env runs with `autoreset=False`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import torch

from robot_rl.hil.link import ActorLink
from robot_rl.hil.sac import Actor


@dataclass
class PolicySpec:
    obs_dim: int
    act_dim: int
    hidden: int = 256
    layers: int = 2
    residual_scale: float = 0.0

    def build(self) -> Actor:
        return Actor(self.obs_dim, self.act_dim, self.hidden, self.layers, self.residual_scale).eval()


class HilActor:
    def __init__(self, env, spec: PolicySpec, link: ActorLink | None, operator=None, base=None, seed: int = 0,
                 send_every: int = 4, log=print, expert=None, sink=None):
        """`expert` (a task expert) replaces the policy (demonstrations); `sink(chunk)` receives the
        transition chunks instead of `link`."""
        if getattr(env, "autoreset", False):
            raise ValueError("HilActor needs an env made with autoreset=False (it reads the terminal observation)")
        from robot_rl.residual import BaseChunker

        self.env, self.spec, self.link, self.op, self.log = env, spec, link, operator, log
        self.expert, self.sink = expert, sink or (link.send_transitions if link is not None else None)
        self.chunker = BaseChunker(base, env.num_envs, env.device, seed) if base is not None else None
        self.net: Actor | None = None
        self.version, self.weights_meta = -1, {}
        self.send_every = int(send_every)
        torch.manual_seed(seed)
        self.obs = env.reset()
        n = env.num_envs
        if self.chunker is not None:
            self.chunker.reset(self.obs["policy"])
        if self.op is not None:
            self.op.reset(env, torch.arange(n))
        if self.expert is not None:
            self.expert.reset(env, torch.arange(n))
        self.pending: dict | None = None
        self.out: list[dict] = []
        self.steps = self.ended = 0
        self.episodes: deque = deque(maxlen=200)  # (success, intervened steps) per ended episode
        self.ep_interv = torch.zeros(n)
        self.ages: list[tuple[float, int]] = []  # per step: (seconds since publication, updates behind)

    # -- the policy ------------------------------------------------------------------------------
    def load_weights(self, version: int, meta: dict, state: dict[str, torch.Tensor]) -> bool:
        net = self.spec.build()
        try:
            net.load_state_dict(state)
        except (RuntimeError, KeyError) as e:
            self.log(f"actor: ignored weights version {version} that do not fit the policy "
                     f"({str(e).splitlines()[0][:100]}); check the learner's obs/action sizes")
            return False
        self.net, self.version, self.weights_meta = net, version, dict(meta, received=time.time())
        return True

    def _input(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.chunker is None:
            return obs["policy"], None
        b = self.chunker.action()
        return torch.cat([obs["policy"], b], -1), b

    @torch.no_grad()
    def policy_action(self, x: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        if self.expert is not None:
            return self.expert.act(self.env, self.obs)
        if self.net is not None:
            return self.net(x)[0]
        return base.clone() if base is not None else torch.zeros(len(x), self.spec.act_dim)

    # -- one control step of every env ------------------------------------------------------------
    def step(self) -> None:
        if self.link is not None:
            self.link.poll()
            w = self.link.take_weights()
            if w is not None:
                self.load_weights(*w)
        env = self.env
        x, b = self._input(self.obs)
        a = self.policy_action(x, b)
        if self.op is not None:
            o = self.op.step(env, self.obs, a)
            act, interv, start = o.action, o.intervening, o.takeover_start
        else:
            act, interv, start = a, torch.zeros(env.num_envs, dtype=torch.bool), torch.zeros(env.num_envs, dtype=torch.bool)
        if self.pending is not None:  # the previous transition: its next input and RLIF label are known now
            p, live = self.pending, ~self.pending["done"]
            p["next_obs"][live] = x[live]
            p["penalty"] = start & live
            self._emit(p)
        nobs, _, term, trunc, _ = env.step(act)
        success = env.task.success(env) & term
        done = term | trunc
        self.pending = {"obs": x, "act": act, "next_obs": torch.cat([nobs["policy"], b], -1) if b is not None
                        else nobs["policy"].clone(), "terminated": term, "success": success,
                        "intervening": interv, "version": torch.full((env.num_envs,), self.version), "done": done}
        self.ep_interv += interv.float()
        self.steps += 1
        if self.net is not None and self.weights_meta:
            behind = max(0, (self.link.learner_updates if self.link else 0) - int(self.weights_meta.get("updates", 0)))
            self.ages.append((time.time() - float(self.weights_meta.get("time", time.time())), behind))
        if self.chunker is not None:
            self.chunker.observe(nobs["policy"], torch.zeros_like(done))
        if bool(done.any()):
            ids = done.nonzero().flatten()
            for i in ids.tolist():
                self.episodes.append((bool(success[i]), float(self.ep_interv[i])))
            self.ep_interv[ids] = 0
            self.ended += len(ids)
            nobs = env.reset(ids)
            if self.chunker is not None:
                self.chunker.reset(nobs["policy"], ids)
            if self.op is not None:
                self.op.reset(env, ids)
            if self.expert is not None:
                self.expert.reset(env, ids)
        self.obs = nobs

    def _emit(self, tr: dict) -> None:
        self.out.append(tr)
        if len(self.out) >= self.send_every:
            self.flush()

    def flush(self) -> None:
        if not self.out:
            return
        chunk = {k: torch.cat([t[k] for t in self.out]) for k in self.out[0]}
        self.out = []
        if self.sink is not None:
            self.sink(chunk)
