"""Evaluate an exported policy artifact (ONNX, no torch policy) zero-shot, on any simulator backend.

`robot-rl eval --artifact DIR --env.backend pybullet`: the env is built from the artifact's task
(`spec["task"]`) on the chosen backend and runs one episode per env, all together, with the
artifact's runtime exactly as a robot runs it:

* a stateless kind (`mlp`) maps the whole batch of observations at once (`act_batch`);
* any other kind (recurrent, chunked...) gets one runtime instance per env, `reset()` at the start
  of each episode, and its action chunks are executed on schedule as the policy node does (an
  action is due `offsets_s` after the observation it was computed from; a new chunk is asked for
  when none is queued; late actions are skipped).

The report has the fields of `robot_rl.evaluate.evaluate` (success rate, mean/std return, episode
length, per episode) plus the backend, the artifact and its policy kind.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from robot_rl.artifact import ArtifactError, PolicyArtifact

STATELESS_KINDS = frozenset({"mlp"})
"""Policy kinds whose runtime carries no state: `act_batch` on the whole batch is exact."""


class ArtifactPolicy:
    """`policy(obs [N, D] tensor) -> actions [N, A] tensor` for `robot_rl.evaluate.run_episodes`,
    running the artifact's runtime (one per env unless the kind is stateless)."""

    def __init__(self, artifact: PolicyArtifact, num_envs: int):
        from robot_rl.policy_kinds import runtime_class

        self.artifact = artifact
        self.num_envs = num_envs
        self.stateless = artifact.kind in STATELESS_KINDS
        self.period_s = artifact.control_period_s
        if self.stateless:
            self.runtimes = [artifact.runtime]
        else:
            cls = runtime_class(artifact.kind)
            self.runtimes = [artifact.runtime] + [cls(artifact.path, artifact.spec) for _ in range(num_envs - 1)]
            for r in self.runtimes:
                r.reset()
        self.queues: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(num_envs)]
        self.horizon = int(artifact.spec["policy"].get("execution_horizon", 0)) or None
        """Actions executed per chunk (receding horizon, the policy node's default); None = all."""
        self.observes = artifact.runtime.wants_observations
        self.step_count = 0

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.stateless:
            actions = np.asarray(self.artifact.act_batch(x), dtype=np.float32)
        else:
            actions = np.stack([self._next_action(i, x[i]) for i in range(self.num_envs)])
        self.step_count += 1
        return torch.from_numpy(actions).to(obs.device)

    def _next_action(self, i: int, obs: np.ndarray) -> np.ndarray:
        """As the policy node: the queued action due now, a new chunk when none is left."""
        now = self.step_count
        queue = self.queues[i]
        while len(queue) > 1 and queue[1][0] <= now:
            queue.pop(0)  # late: skip to the newest due action
        if not queue:
            chunk = self.runtimes[i].act(obs)
            due = np.rint(np.asarray(chunk.offsets_s, dtype=np.float64) / self.period_s).astype(int)
            pairs = list(zip(due, chunk.actions))[: self.horizon]
            queue.extend((now + int(d), np.asarray(a, dtype=np.float32)) for d, a in pairs)
        elif self.observes:  # history-conditioned kinds see every step, as in the node
            self.runtimes[i].observe(obs)
        return queue.pop(0)[1]

    def reset(self, done: torch.Tensor) -> None:
        """Envs whose episode ended start a new one: fresh runtime state, empty action queue."""
        if self.stateless:
            return
        for i in done.nonzero().flatten().tolist():
            self.runtimes[i].reset()
            self.queues[i].clear()


def comparable_dr(task: str, dr, backends) -> tuple:
    """The DR `dr` means for `task`, simulated alike on every one of `backends`: when one of them
    cannot move a centre of mass (pybullet), the payload sits at the last link's origin on all of
    them. Returns (DomainRandomization, a note saying what was changed, or "")."""
    from robot_rl.sim import make_task
    from robot_rl.sim.backend import backend_class
    from robot_rl.sim.dr_effects import moves_payload, without_payload_offset
    from robot_rl.sim.twins import resolve_dr

    drange = resolve_dr(make_task(task), dr)
    if moves_payload(drange) and not all(backend_class(b).moves_com for b in backends):
        return without_payload_offset(drange), ("payload offsets set to 0 (payload at the last link's origin): "
                                                f"{'/'.join(backends)} cannot move a centre of mass")
    return drange, ""


def evaluate_artifact(artifact: str | Path | PolicyArtifact, episodes: int = 100, dr: str = "eval", seed: int = 1,
                      backend: str = "mujoco", device: str = "cpu", nthread: int | None = None,
                      report: str | Path | None = None, video: str | Path | None = None,
                      video_size: tuple[int, int] = (480, 640)) -> dict:
    """Run `episodes` episodes (one per env) of an artifact's policy on `backend`; the report dict
    (written to `report` as JSON when given)."""
    from robot_rl.evaluate import episode_report, run_episodes
    from robot_rl.sim import make_env
    from robot_rl.sim.backend import backend_class

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    backend_class(backend)  # an unknown backend or a missing package fails here, before any work
    art = artifact if isinstance(artifact, PolicyArtifact) else PolicyArtifact.load(artifact)
    spec = art.spec
    task = spec["task"]
    env_cfg = spec.get("training", {}).get("config", {}).get("env", {})
    drange, note = comparable_dr(task, dr, [backend])
    env = make_env(task, episodes, dr=drange, seed=seed, backend=backend, device=device, nthread=nthread,
                   physics_variants=int(env_cfg.get("physics_variants", 256)))
    if note:
        print(f"note: {note}", file=sys.stderr)
    try:
        if env.num_obs["policy"] != art.obs_dim or env.num_actions != art.action_dim:
            raise ArtifactError(f"{art.path}: the policy maps {art.obs_dim} observations to {art.action_dim} actions, "
                                f"task {task} has {env.num_obs['policy']} and {env.num_actions}; export it again")
        t0 = time.perf_counter()
        ret, length, success, distance, frames = run_episodes(env, ArtifactPolicy(art, env.num_envs),
                                                    video_size if video else None)
        wall = time.perf_counter() - t0
    finally:
        env.sim.close()
    training = spec.get("training", {})
    head = {"task": task, "backend": backend, "dr": dr if isinstance(dr, str) else "custom", "episodes": episodes, "seed": seed, "artifact": str(art.path),
            "dr_note": note, "kind": art.kind, "checkpoint": training.get("checkpoint"), "iteration": training.get("iteration"),
            "wall_s": wall}
    return episode_report(env, ret, length, success, distance, frames, head, video, report)
