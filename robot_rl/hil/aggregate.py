"""The aggregated data of HG-DAgger: demonstrations and intervention episodes in one LeRobot v3.0
dataset, and the training windows of its labelled frames.

Features (those of `robot-rl record`, plus one):

* `observation.state` [D], `observation.joint_pos` [J], `action` [A] in [-1, 1]: the action the
  robot executed at that step (the person's command where the person commanded, else the policy's);
* `intervention` (bool): the person commanded this step, so its `action` is a label. Every frame
  of a demonstration is one (the demonstrator commanded all of it); in an intervention episode
  only the human-gated steps are, and the policy's steps around them are kept as the observation
  history (the diffusion policy is conditioned on `obs_horizon` observations) and as the record
  of what the policy did.

`open_aggregate(root, env, demos)` creates the dataset (copying the demonstrations, flag set) or
resumes it; another robot's or another task's dataset is refused with one line (`DatasetError`).
Intervention episodes are appended with the writer (`robot_rl.datasets.DatasetWriter`): durable
episode by episode, contiguous `episode_index`/`index`, a killed run loses at most the episodes
in progress.

`LabelIndex(arrays, cfg)`: one training window per labelled frame `c` (the window's current
observation), as `SequenceIndex` makes them for demonstrations: observations `c - To + 1 .. c`
(clamped to the episode: the policy's steps before a takeover are real history), actions
`c - To + 1 .. c - To + Tp` clamped to the run of labelled frames that contains `c` (no policy
action is ever a target), and, like `SequenceIndex`, only windows whose executed part
`c .. c + Ta - 1` starts inside the run (`c <= last - (Tp - To - Ta + 1)`, at least the run's first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_rl.datasets import DatasetError, DatasetWriter, Expect, load_dataset, load_training_arrays
from robot_rl.datasets import format as F

FLAG = "intervention"


def features(env) -> dict[str, dict]:
    from robot_rl.record import _features

    return {**_features(env), FLAG: {"dtype": "bool", "shape": [1], "names": None}}


def check_robot(root: str | Path, env, what: str) -> None:
    """Refuse a dataset of another robot, joint order or task than `env`'s (one line)."""
    ri = load_dataset(root).robot_info
    robot, task = env.robot.name, env.task.name
    if ri.get("robot") != robot or list(ri.get("joint_names") or []) != list(env.robot.joint_names):
        raise DatasetError(f"{root}: {what} recorded on robot {ri.get('robot')!r} (joints {ri.get('joint_names')}), "
                           f"this run drives {robot!r} on {task}; give {what} of {robot} on {task}")
    if ri.get("task") != task:
        raise DatasetError(f"{root}: {what} recorded on task {ri.get('task')!r}, this run is {task!r}; "
                           f"record {what} of {task} (robot-rl record {task})")


def load_demos(root: str | Path, env) -> dict:
    """Training arrays of a demonstration dataset (robot-rl record) of `env`'s robot and task."""
    from robot_rl.record import robot_info

    check_robot(root, env, "the demonstrations")
    info = robot_info(env)
    return load_training_arrays(root, Expect(features={k: v["shape"] for k, v in features(env).items() if k != FLAG},
                                             robot=info["robot"], joint_names=info["joint_names"], task=info["task"]))


def open_aggregate(root: str | Path, env, demos: str | Path | None = None) -> DatasetWriter:
    """The aggregate dataset's writer: resumed when `root` holds one (of this robot and task),
    else created with every frame of the demonstrations at `demos` copied in, flagged."""
    from robot_rl.record import robot_info

    root = Path(root)
    fps = int(round(1.0 / env.control_dt))
    if (root / F.INFO_PATH).exists():
        check_robot(root, env, "the aggregate dataset")
        return DatasetWriter(root, fps, features(env), robot_info=robot_info(env))
    if demos is None:
        raise DatasetError(f"{root} holds no aggregate dataset yet and no demonstrations were given to start it")
    load_demos(demos, env)  # robot, task, features, contiguity: one line when wrong
    ds = load_dataset(demos)
    writer = DatasetWriter(root, fps, features(env), robot_info=robot_info(env))
    ok = ds.success()
    task = ds.tasks[0] if ds.tasks else env.task.name
    for e in range(ds.num_episodes):
        ep = ds.episode(e)
        for i in range(len(ep["action"])):
            writer.add_frame({"observation.state": ep["observation.state"][i], "action": ep["action"][i],
                              "observation.joint_pos": ep["observation.joint_pos"][i], FLAG: np.array(True)},
                             task=task)
        writer.save_episode(success=None if ok[e] < 0 else bool(ok[e]))
    return writer


def load_aggregate(root: str | Path, env) -> dict:
    """Training arrays of the aggregate dataset plus `intervention` [N] bool."""
    check_robot(root, env, "the aggregate dataset")
    arrays = load_training_arrays(root)
    ds = load_dataset(root)
    if FLAG not in ds.features:
        raise DatasetError(f"{root}: no {FLAG!r} column; it is not an HG-DAgger aggregate dataset "
                           "(pass demonstrations with --dataset instead)")
    arrays[FLAG] = np.concatenate([ds.episode(i)[FLAG] for i in range(ds.num_episodes)]).astype(bool)
    return arrays


class LabelIndex:
    """Training windows of the labelled frames (see the module docstring); `batch(ids)` as
    `SequenceIndex.batch`."""

    def __init__(self, episode_index: np.ndarray, labelled: np.ndarray, obs_horizon: int, pred_horizon: int,
                 execution_horizon: int):
        ep = np.asarray(episode_index).reshape(-1)
        lab = np.asarray(labelled).reshape(-1).astype(bool)
        if ep.shape != lab.shape:
            raise ValueError(f"episode_index {ep.shape} and the label flags {lab.shape} differ in length")
        self.obs_horizon, self.pred_horizon = obs_horizon, pred_horizon
        n = ep.size
        ep_change = np.flatnonzero(np.diff(ep) != 0) + 1
        ep_start = np.zeros(n, dtype=np.int64)
        ep_end = np.full(n, n - 1, dtype=np.int64)
        starts, ends = np.concatenate([[0], ep_change]), np.concatenate([ep_change, [n]]) - 1
        for a, b in zip(starts, ends):
            ep_start[a:b + 1], ep_end[a:b + 1] = a, b
        rows = []
        tail = pred_horizon - obs_horizon - execution_horizon + 1
        # runs of labelled frames, never across an episode boundary
        edge = np.ones(n, dtype=bool)
        edge[1:] = (lab[1:] != lab[:-1]) | (ep[1:] != ep[:-1])
        run_starts = np.flatnonzero(edge)
        run_ends = np.concatenate([run_starts[1:], [n]]) - 1
        for p, q in zip(run_starts, run_ends):
            if not lab[p]:
                continue
            c = np.arange(p, max(p, q - tail) + 1)
            rows.append(np.stack([c, np.full_like(c, p), np.full_like(c, q), ep_start[c], ep_end[c]], 1))
        self.rows = np.concatenate(rows) if rows else np.zeros((0, 5), dtype=np.int64)
        """[W, 5]: current frame, its labelled run's first and last frame, its episode's first and last."""

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.rows[windows]
        first = r[:, :1] - (self.obs_horizon - 1)
        obs = np.clip(first + np.arange(self.obs_horizon)[None], r[:, 3:4], r[:, 4:5])
        act = np.clip(first + np.arange(self.pred_horizon)[None], r[:, 1:2], r[:, 2:3])
        return obs, act
