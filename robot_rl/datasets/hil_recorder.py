"""Episodes of a deployed, supervised robot into a LeRobotDataset v3.0 (and one MCAP log each).

The logic of the `recorder` node (`robot_rl.nodes.recorder`), free of any transport so it is
tested directly:

```
rec = HilRecorder("data/hil", spec, fps=50, mcap=True)          # spec: the artifact's spec.json
rec.log("/joint_states", JointState, cdr_bytes, t_ns)            # every message heard (MCAP)
rec.add_frame(obs, action, joint_target, executed, intervening, q, dq, commands)   # per policy step
rec.end_episode("success")     # or "failure", "reset", "timeout": the episode is durable on return
```

Features of a frame (LeRobot names; HIL-SERL's where they exist):

| feature | shape | what |
|---|---|---|
| `observation.state` | [D] float32 | the observation the policy saw at this step (its terms' names) |
| `observation.joint_pos`, `observation.joint_vel` | [J] float32 | measured state joints (rad, rad/s) |
| `observation.command.<name>` | [dim] float32 | each task command the policy reads (e.g. the hole pose) |
| `action` | [A] float32 in [-1, 1] | the policy's action (what it would have done) |
| `action.joint_target` | [C] float32 | the policy's joint position targets (`policy/joint_command`) |
| `action.executed` | [C] float32 | the targets sent to the safety layer (`arbiter/joint_command`: person or policy) |
| `complementary_info.is_intervention` | bool | the person commanded at this step |
| `next.reward` | float32 | 1 on the last frame of an episode labelled success, else 0 (sparse reward) |
| `next.done` | bool | true on the last frame of an episode that ended with a success or failure label |

Episode ends: `success` / `failure` (labels: `success` column of the episodes table True /
False, `next.done` set on the last frame), `timeout` (max frames reached: success False, not
done: truncated), `reset` (the operator restarts: success unknown (null), not done).

Durability: an episode's MCAP (`<root>/mcap/episode_NNNNNN.mcap`, temp file + rename) is written,
then the episode is committed by `DatasetWriter.save_episode` (atomic, the commit point). A killed
recorder loses only the open episode; opening the root again resumes with contiguous indices and
deletes MCAP files whose episode was never committed. A dataset of another robot, task or feature
layout is refused (`DatasetError`, one line) before anything is written.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from pathlib import Path

import numpy as np

from robot_rl.datasets.format import DatasetError
from robot_rl.datasets.mcap_export import write_ros2_mcap
from robot_rl.datasets.writer import DatasetWriter

ENDS = ("success", "failure", "timeout", "reset")
MCAP_DIR = "mcap"
INTERVENTION = "complementary_info.is_intervention"


def _names(terms: list[dict]) -> list[str]:
    return [f"{t['name']}[{i}]" if t["dim"] > 1 else t["name"] for t in terms for i in range(t["dim"])]


def command_joints(spec: dict) -> list[str]:
    out: list[str] = []
    for t in spec["action"]["terms"]:
        out += [j for j in t["joints"] if j not in out]
    return out


def hil_features(spec: dict) -> dict[str, dict]:
    """The recorded features for an artifact's spec (see the module table)."""
    obs, act = spec["observation"], spec["action"]
    joints, cmd_joints = list(obs["state_joints"]), command_joints(spec)
    obs_names, act_names = _names(obs["terms"]), _names(act["terms"])
    f32 = "float32"
    feats = {"observation.state": {"dtype": f32, "shape": [int(obs["dim"])],
                                   "names": obs_names if len(obs_names) == int(obs["dim"]) else None},
             "observation.joint_pos": {"dtype": f32, "shape": [len(joints)], "names": joints},
             "observation.joint_vel": {"dtype": f32, "shape": [len(joints)], "names": joints}}
    for name, c in obs.get("commands", {}).items():
        feats[f"observation.command.{name}"] = {"dtype": f32, "shape": [int(c["dim"])], "names": None}
    feats.update({
        "action": {"dtype": f32, "shape": [int(act["dim"])], "names": act_names if len(act_names) == int(act["dim"]) else None},
        "action.joint_target": {"dtype": f32, "shape": [len(cmd_joints)], "names": cmd_joints},
        "action.executed": {"dtype": f32, "shape": [len(cmd_joints)], "names": cmd_joints},
        INTERVENTION: {"dtype": "bool", "shape": [1], "names": None},
        "next.reward": {"dtype": f32, "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
    })
    return feats


def hil_robot_info(spec: dict) -> dict:
    """`info["robot_rl"]`: the same keys `robot-rl record` stores, so a consumer checks both alike."""
    return {"robot": spec["robot"]["name"], "joint_names": list(spec["robot"]["joint_names"]), "task": spec["task"],
            "observation_terms": spec["observation"]["terms"], "action_terms": spec["action"]["terms"],
            "control_period_s": float(spec["control"]["period_s"])}


class HilRecorder:
    """Frames of the open episode, the messages of its MCAP log, and the dataset writer.

    `max_episode_s`: an episode reaching `max_episode_s * fps` frames ends as `timeout` (0: no
    limit). `pre_roll_s`: while no episode is open, the MCAP log keeps only this much of the
    newest messages (the lead-in of the next episode). `task`: the language task of every frame
    (default: the spec's task name). `background`: commit ended episodes on a worker thread, in
    order, so the caller (the node's spin thread) is not held up by the MCAP and Parquet writes
    and fsyncs; `flush()` waits for them. `on_commit(index, error)`: called after each commit
    (on the worker thread when `background`); error is None or the exception that lost it."""

    def __init__(self, root: str | Path, spec: dict, fps: int, *, mcap: bool = True, max_episode_s: float = 0.0,
                 pre_roll_s: float = 1.0, task: str = "", background: bool = False, on_commit=None):
        self.spec = spec
        self.features = hil_features(spec)
        self.commands = list(spec["observation"].get("commands", {}))
        self.writer = DatasetWriter(root, fps, self.features, robot_info=hil_robot_info(spec), bounded=("action",))
        self.root = self.writer.root
        self.fps = int(fps)
        self.mcap = bool(mcap)
        self.max_frames = int(round(max_episode_s * fps)) if max_episode_s > 0 else 0
        self.pre_roll_ns = int(pre_roll_s * 1e9)
        self.task = task or spec["task"]
        self.on_commit = on_commit
        self._log: deque = deque()
        self._frames: list[dict] = []
        self.open_interventions = 0
        self._ended = 0  # episodes ended (committed, failed or queued)
        self.committed = 0
        self.failed = 0
        self.last: dict = {"episode": None, "success": None, "end": None, "frames": 0, "interventions": 0}
        self.removed_mcap = self._remove_uncommitted_mcap()
        self._queue: queue.Queue | None = None
        if background:
            self._queue = queue.Queue()
            self._worker = threading.Thread(target=self._work, name="hil-recorder-commit", daemon=True)
            self._worker.start()

    # -- state ---------------------------------------------------------------------------------
    @property
    def episode_frames(self) -> int:
        """Frames of the open episode."""
        return len(self._frames)

    @property
    def pending_commits(self) -> int:
        """Ended episodes not yet committed (nor failed)."""
        return self._ended - self.committed - self.failed

    def mcap_path(self, episode: int) -> Path:
        return self.root / MCAP_DIR / f"episode_{episode:06d}.mcap"

    def status(self) -> dict:
        return {"root": str(self.root), "episodes": self.writer.num_episodes, "frames": self.writer.num_frames,
                "committing": self.pending_commits,
                "failed": self.failed, "episode_frames": self.episode_frames,
                "episode_interventions": self.open_interventions, "last_episode": self.last["episode"],
                "last_success": self.last["success"], "last_end": self.last["end"], "last_frames": self.last["frames"],
                "last_interventions": self.last["interventions"], "mcap": self.mcap}

    def _remove_uncommitted_mcap(self) -> list[str]:
        """MCAP files of episodes a killed recorder never committed (their index is reused)."""
        d = self.root / MCAP_DIR
        gone = []
        for p in sorted(d.glob("episode_*.mcap")) if d.is_dir() else []:
            if p.stem[8:].isdigit() and int(p.stem[8:]) >= self.writer.num_episodes:
                p.unlink()
                gone.append(str(p))
        return gone

    # -- input ---------------------------------------------------------------------------------
    def log(self, topic: str, cls: type, data: bytes, t_ns: int) -> None:
        """One received message (CDR bytes) for the open episode's MCAP log."""
        if not self.mcap:
            return
        self._log.append((topic, cls, bytes(data), int(t_ns)))
        if not self._frames:
            while self._log and self._log[0][3] < t_ns - self.pre_roll_ns:
                self._log.popleft()

    def add_frame(self, obs, action, joint_target, executed, intervening: bool, joint_pos, joint_vel,
                  commands: dict[str, np.ndarray] | None = None) -> str | None:
        """Add one step; returns "timeout" when it filled the episode (which is then ended).
        A bad value (wrong size, NaN, action outside [-1, 1]) raises DatasetError and adds nothing."""
        commands = commands or {}
        frame = {"observation.state": obs, "observation.joint_pos": joint_pos, "observation.joint_vel": joint_vel,
                 "action": action, "action.joint_target": joint_target, "action.executed": executed,
                 INTERVENTION: np.array([bool(intervening)]), "next.reward": np.zeros(1, np.float32),
                 "next.done": np.zeros(1, bool)}
        for name in self.commands:
            if name not in commands:
                raise DatasetError(f"frame without the {name} command; the policy reads it, wait for its topic")
            frame[f"observation.command.{name}"] = commands[name]
        self._frames.append(self._checked(frame))
        self.open_interventions += int(bool(intervening))
        if self.max_frames and len(self._frames) >= self.max_frames:
            self.end_episode("timeout")
            return "timeout"
        return None

    def _checked(self, frame: dict) -> dict:
        """Shapes, finiteness and bounds checked now (the writer's own checks), not at the commit."""
        out = {}
        for name, ft in self.features.items():
            v = np.asarray(frame[name]).astype(ft["dtype"]).reshape(-1)
            if v.shape != tuple(ft["shape"]):
                raise DatasetError(f"{name} has {v.size} values, the artifact declares {ft['shape'][0]}; "
                                   "record with the artifact the policy runs")
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                raise DatasetError(f"{name} holds NaN or Inf; frame dropped")
            if name == "action" and np.abs(v).max(initial=0.0) > 1.0:
                raise DatasetError(f"action outside [-1, 1] (max |a| {float(np.abs(v).max()):.4g}); frame dropped")
            out[name] = v
        return out

    def end_episode(self, end: str) -> int | None:
        """Label the open episode and commit it (MCAP first, then the dataset); returns the index
        it gets, or None when it has no frames (nothing to label). Without `background` the
        episode is durable on return (a failed write raises); with it, after `flush()`."""
        if end not in ENDS:
            raise ValueError(f"episode end {end!r} is unknown; use one of {', '.join(ENDS)}")
        if not self._frames:
            return None
        frames, self._frames = self._frames, []
        frames[-1]["next.reward"] = np.array([1.0 if end == "success" else 0.0], np.float32)
        frames[-1]["next.done"] = np.array([end in ("success", "failure")])
        log, self._log = list(self._log), deque()
        job = (frames, log, end, self.open_interventions)
        index = self.writer.num_episodes + self.pending_commits  # the index it gets unless a commit fails
        self._ended += 1
        self.open_interventions = 0
        if self._queue is not None:
            self._queue.put(job)
        else:
            self._commit(*job)
        return index

    def _commit(self, frames: list[dict], log: list, end: str, interventions: int) -> None:
        index = self.writer.num_episodes
        try:
            if self.mcap:
                write_ros2_mcap(self.mcap_path(index), sorted(log, key=lambda m: m[3]))
            for f in frames:
                self.writer.add_frame(f, task=self.task)
            success = {"success": True, "failure": False, "timeout": False, "reset": None}[end]
            self.writer.save_episode(success=success)  # the commit point
        except BaseException as e:
            self.writer.discard_episode()
            self.failed += 1
            if self.on_commit is not None:
                self.on_commit(index, e)
            if self._queue is None:
                raise
            return
        self.committed += 1
        self.last = {"episode": index, "success": success, "end": end, "frames": len(frames),
                     "interventions": interventions}
        if self.on_commit is not None:
            self.on_commit(index, None)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._commit(*job)
            except Exception:  # noqa: BLE001 - reported through on_commit; the worker keeps going
                pass
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every ended episode is committed (or failed)."""
        if self._queue is not None:
            self._queue.join()

    def close(self) -> None:
        """Commit the ended episodes and stop the worker; an open episode is dropped (end it first)."""
        self.flush()
        if self._queue is not None:
            self._queue.put(None)
            self._worker.join()
            self._queue = None
        self.discard()

    def discard(self) -> None:
        """Drop the open episode (what a crash loses)."""
        self._frames = []
        self._log.clear()
        self.open_interventions = 0
