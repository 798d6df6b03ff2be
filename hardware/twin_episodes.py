"""Task episodes on the robot twin: the task's own reset, commands and success, on the twin's state.

A real cell resets its scene by hand or with a fixture, and a perception system tells the robot
where things are; the twin does both in simulation (like Gazebo's reset service), sim-only:

* :func:`sample_episode` draws the task's reset for a seed through the twin's 1-env
  :class:`robot_rl.sim.env.BatchedEnv` (``task.reset(env, ids)``: the full qpos/qvel of the scene,
  the arm at the task's start pose, objects and scene joints such as a hole block's slides or a
  peg's grasp offset) and the task's commands (``env.commands``: what perception gives the robot,
  e.g. the believed hole position with the episode's error);
* :func:`task_status` mirrors a MuJoCo state (the twin's ``MjData``) into that env and evaluates
  the task's own ``success(env)`` (and ``distance(env)`` when the task defines one);
* :class:`TwinEpisodes` runs requests on a live twin, on the node's clock (transport-free).

Resetting under the deploy graph (:class:`TwinEpisodes`): the twin teleports the arm, and the
policy and the safety filter hold state anchored at the old pose (held joint targets, the last
output). A request therefore goes through a joint-state **silence** of ``gap_s`` (default 0.3 s):

    t = 0            request taken: joint_states stop (queued samples dropped)
    t > 0.05 s       the safety node's state is stale: fault, it sends nothing (``fault_action``
                     none, the default) and marks its output for re-anchoring
    t > 0.1 s        the policy node's state is stale: it stops and will re-anchor
    t = 0.75 gap_s   teleport: the task's reset state is written into the twin's MjData, the
                     twin's held command becomes the new pose (pending delayed commands dropped),
                     the task's commands are handed out to be published
    t = gap_s        joint_states resume: the safety filter restarts its output at the measured
                     pose, the policy re-anchors (runtime, executor, held targets) at it; the
                     episode clock starts

Nothing brakes: the safety node sees a stale state (``state_stale``) then waits for a command
(``cmd_stale`` / ``awaiting_command``), not a jump; with ``gap_s`` = 0.3 the last command is about
0.2 s old at the restart, below the 0.5 s brake timeout. This needs the safety node's
``fault_action`` none (with ``hold`` it keeps commanding the old pose during the silence).
"""

from __future__ import annotations

import collections
import math
import threading

import numpy as np
import torch

__all__ = ["TwinEpisodes", "sample_episode", "task_status", "mirror_state", "EpisodeRequestError"]


class EpisodeRequestError(ValueError):
    pass


def _ids(env) -> torch.Tensor:
    return torch.zeros(1, dtype=torch.long, device=env.device)


@torch.inference_mode()
def mirror_state(env, qpos, qvel) -> None:
    """Write a full MuJoCo state (qpos [nq], qvel [nv]) into env 0 of `env` and refresh the env's
    robot state and frames, so that task functions (success, distance, reward) read it."""
    q = torch.as_tensor(np.asarray(qpos, dtype=np.float64)).reshape(1, -1)
    v = torch.as_tensor(np.asarray(qvel, dtype=np.float64)).reshape(1, -1)
    if q.shape[1] != env.sim.nq or v.shape[1] != env.sim.nv:
        raise ValueError(f"state has {q.shape[1]} qpos / {v.shape[1]} qvel values; the env's model has "
                         f"{env.sim.nq} / {env.sim.nv}")
    env.sim.set_joint_state(_ids(env), q, v)
    env._refresh_state()


@torch.inference_mode()
def sample_episode(env, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The task's reset for `seed` in env 0: (qpos [nq], qvel [nv], {command: value [dim]}).

    The env's generator is seeded with `seed`, so a seed always gives the same episode. The env's
    own state is set to it too (the task's state tensors, e.g. the true hole, now describe it)."""
    env.gen.manual_seed(int(seed))
    qpos, qvel = env.task.reset(env, _ids(env))
    q, v = qpos[0].double().cpu().numpy(), qvel[0].double().cpu().numpy()
    mirror_state(env, q, v)
    cmds = {k: env.commands[k][0].double().cpu().numpy().copy() for k in env.task.commands()}
    return q, v, cmds


@torch.inference_mode()
def task_status(env, qpos, qvel) -> dict:
    """``{"success": bool, "terminated": bool, "distance": float}`` (distance only when the task
    defines one) of the state (qpos, qvel), by the task's own functions on env 0."""
    mirror_state(env, qpos, qvel)
    out = {"success": bool(env.task.success(env)[0]), "terminated": bool(env.task.terminated(env)[0])}
    if callable(getattr(env.task, "distance", None)):
        out["distance"] = float(env.task.distance(env)[0])
    return out


def parse_request(text: str, next_id: int) -> tuple[int, int]:
    """(episode id, seed) from a request's JSON ``{"seed": k, "id": n}`` (id optional)."""
    import json

    try:
        req = json.loads(text)
    except ValueError as e:
        raise EpisodeRequestError(f"episode request is not JSON ({e}); send {{\"seed\": 3}}") from None
    if not isinstance(req, dict) or not isinstance(req.get("seed"), int) or isinstance(req.get("seed"), bool):
        raise EpisodeRequestError(f"episode request {text!r} needs an integer seed: {{\"seed\": 3}}")
    eid = req.get("id", next_id)
    if not isinstance(eid, int) or isinstance(eid, bool):
        raise EpisodeRequestError(f"episode request {text!r}: id must be an integer")
    return eid, req["seed"]


class TwinEpisodes:
    """Episode requests on a running :class:`robot_rl.hardware.twin.RobotTwin` (module docstring).

        eps = TwinEpisodes(twin, gap_s=0.3)
        eps.request('{"seed": 3}')        # from any thread; raises EpisodeRequestError
        cmds = eps.update(now)            # in the loop: {command: value} at the teleport, else None
        if eps.publishing: ...            # joint_states go out (False during the silence)
        eps.status()                      # JSON-able: episode, seed, phase, time_s, success, ...
    """

    def __init__(self, twin, gap_s: float = 0.3):
        if not (0.2 <= gap_s <= 5.0):
            raise ValueError(f"episode_gap_s={gap_s} must lie in 0.2..5 s (longer than the safety and policy "
                             "nodes' joint-state timeouts, 0.05 s and 0.1 s by default)")
        self.twin = twin
        self.gap_s = float(gap_s)
        self._requests: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._next_id = 1
        self.episode: int | None = None
        self.seed: int | None = None
        self.phase = "idle"
        """idle (no episode requested yet), starting (the silence), running."""
        self.commands: dict[str, np.ndarray] = {}
        self._t_req = 0.0
        self._teleported = False
        self._start_sim = 0.0
        self.first_success_s: float | None = None
        self.started = 0

    def request(self, text: str) -> int:
        """Queue a request (JSON ``{"seed": k, "id": n}``, id optional); returns its id. A request
        repeating the id of the current or a queued episode is ignored (requests are idempotent)."""
        with self._lock:
            eid, seed = parse_request(text, self._next_id)
            if eid == self.episode or any(e == eid for e, _ in self._requests):
                return eid
            self._next_id = max(self._next_id, eid) + 1
            self._requests.append((eid, seed))
            return eid

    @property
    def publishing(self) -> bool:
        return self.phase != "starting"

    def update(self, now: float) -> dict[str, np.ndarray] | None:
        """Advance at wall time `now` (seconds, the caller's clock). Returns the new episode's
        commands at its teleport (to publish), else None. A request during the silence of another
        waits for it to end."""
        if self.phase != "starting":
            with self._lock:
                req = self._requests.popleft() if self._requests else None
            if req is not None:
                self.episode, self.seed = req
                self.phase, self._t_req, self._teleported = "starting", now, False
                self.commands, self.first_success_s = {}, None
        if self.phase != "starting":
            return None
        out = None
        if not self._teleported and now >= self._t_req + 0.75 * self.gap_s:
            self.commands = self.twin.start_episode(self.seed)
            self._teleported = True
            out = self.commands
        if self._teleported and now >= self._t_req + self.gap_s:
            self.phase, self._start_sim = "running", self.twin.sim_time
            self.started += 1
        return out

    def status(self) -> dict:
        """The episode's status; success and distance by the task's functions on the twin's state
        now (None before the first episode's teleport)."""
        st = {"episode": self.episode, "seed": self.seed, "phase": self.phase,
              "time_s": round(self.twin.sim_time - self._start_sim, 4) if self.phase == "running" else 0.0,
              "episode_length_s": self.twin.episode_length_s, "success": None, "terminated": None,
              "first_success_s": self.first_success_s,
              "commands": {k: [round(float(x), 6) for x in v] for k, v in self.commands.items()}}
        if self._teleported:
            ev = self.twin.task_status()
            st["success"], st["terminated"] = ev["success"], ev["terminated"]
            if "distance" in ev and math.isfinite(ev["distance"]):
                st["distance"] = round(ev["distance"], 6)
            if ev["success"] and self.phase == "running" and self.first_success_s is None:
                self.first_success_s = st["first_success_s"] = st["time_s"]
        return st
