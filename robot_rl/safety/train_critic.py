"""Train the learned safety critic in simulation and export it to ONNX.

    python -m robot_rl.safety.train_critic --out models/critics/iiwa-risk.onnx [--samples 200000 --seed 0]

Pipeline (torch is needed here, on the training machine only; the robot runs the exported
``.onnx`` with :class:`robot_rl.safety.SafetyCritic`: numpy, onnxruntime and MuJoCo for the
kinematics of the artifact's ``robot.xml``):

1. **Data.** ``make_env("iiwa-reach", envs, dr="train")`` (physics domain randomization, pushes,
   action delays) is driven by a scripted, deliberately aggressive commander instead of a policy.
   Each env follows a *segment* (10-50 control steps, 30-80 toward a limit) with one goal and one speed: a random pose
   (uniform over, and a little beyond, the joint ranges), a pose with one or two joints at (or
   pushed past) a limit (wide joints chosen more often), a self-collision pose (from a bank of poses whose link geoms overlap), or a
   safe pose near the default; the action steers the env's joint target toward the goal at the
   segment's speed, plus noise. Episodes last ``episode_length_s`` (5 s) and start in a wider band
   around the default pose (``reset_joint_noise``, default +-1.5 rad per joint, clipped to the
   ranges), so states near limits and folded poses are common.
2. **Labels.** A sample is the state ``(q_t, qd_t)`` and the joint target ``q_cmd`` the robot is
   commanded to during the next control step. Its label is 1 if a constraint violation happens
   at any of the states ``t .. t + H`` (``H = --horizon`` control steps, default 15 = 0.3 s)
   under the commanded motion, where a violation is: a joint within ``--limit-margin`` (rad) of
   its range limit, a self-collision distance
   (:meth:`robot_rl.kinematics.RobotKinematics.self_collision_distance` on the robot's
   kinematic model, ``kinematic_model_xml``: geoms of non-adjacent links, the base's included)
   below ``--collision-threshold`` (m), or, when a workspace box is given, the ``ee`` site outside
   it.
   Samples whose horizon crosses an episode reset are dropped.
3. **Features.** :func:`robot_rl.safety.risk_features` with :class:`RiskLimits` built the way the
   safety node builds them (hard joint ranges, velocity limit = action scale / control period, the
   same optional workspace box), so deployment computes exactly the inputs trained on.
4. **Model.** A small MLP (input standardisation inside, 2 x 64 ELU, sigmoid output; two derived
   inputs computed in the graph, see :func:`build_model`) trained with
   binary cross-entropy, positives weighted by ``#neg / #pos`` (class balancing; the risk is
   therefore the balanced-prior probability of a violation). The held-out set is a disjoint set
   of envs (no trajectory is split between training and evaluation); accuracy at 0.5 and ROC AUC
   are reported on it.
5. **Export.** ONNX opset 17, input ``features`` [B, F] float32, output ``risk`` [B, 1]; the
   feature names (:func:`robot_rl.safety.risk_feature_names`) are stored as JSON under the
   metadata key ``RISK_METADATA_KEY``, and the training settings under
   ``robot_rl.risk_training``. The file is written atomically, then loaded back with
   :class:`SafetyCritic` and compared with the torch model (max abs difference <= 1e-5, else the
   export fails).

Deploy it with the safety node: ``-p critic:=path.onnx -p risk_threshold:=0.8 -p backup:=hold``
(or ``critic:=...`` on ``launch/deploy.launch.xml``). A critic trained with a workspace box must
run with the same box on the node (``workspace_lower`` / ``workspace_upper``), and one trained
without a box with none.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.config import EnvConfig
from robot_rl.safety.critic import (
    RISK_METADATA_KEY,
    RiskLimits,
    risk_feature_names,
    risk_features,
)

TRAINING_METADATA_KEY = "robot_rl.risk_training"
PARITY_TOL = 1e-5


@dataclass
class CriticTrainConfig:
    """Settings of :func:`train_critic` (CLI flags of the same names)."""

    samples: int = 200_000          # labelled samples to generate (train + held-out)
    seed: int = 0
    task: str = field(default_factory=lambda: EnvConfig().task)  # the default task (iiwa-reach)
    envs: int = 256                 # parallel simulated robots
    horizon: int = 15               # control steps (0.3 s at 50 Hz) a violation is looked for ahead
    limit_margin: float = 0.05      # rad: a joint this close to its range limit is a violation
    collision_threshold: float = 0.02  # m: self-collision distance below this is a violation
    workspace_lower: Sequence[float] | None = None  # optional ee box [x, y, z]; leaving it is a violation
    workspace_upper: Sequence[float] | None = None
    command_horizon_s: float = 0.1  # RiskLimits.command_horizon_s (node default)
    collision_scale: float = 0.1    # RiskLimits.collision_scale (node default)
    velocity_limit: float | None = None  # rad/s; None = action scale / control period (node default)
    reset_joint_noise: float = 1.5  # rad: episodes start at default pose + U(-x, x) (clipped to the ranges)
    episode_length_s: float = 5.0   # s: at least this long per episode (the task's own length if longer)
    holdout: float = 0.2            # fraction of envs held out for evaluation
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 3e-3
    time_budget_s: float = 60.0     # wall-clock cap on the optimisation loop
    threads: int = 2                # torch and physics threads

    def validate(self) -> None:
        if self.samples < 100:
            raise ValueError(f"samples={self.samples}: need at least 100 samples")
        if self.envs < 2:
            raise ValueError("envs must be >= 2 (some envs are held out for evaluation)")
        if not (1 <= self.horizon <= 200):
            raise ValueError(f"horizon={self.horizon} control steps must be in 1..200")
        if not (0 < self.holdout < 1):
            raise ValueError("holdout must be in (0, 1)")
        if not (self.limit_margin >= 0 and self.collision_threshold > -1):
            raise ValueError("limit_margin must be >= 0 and collision_threshold a distance in metres")
        if (self.workspace_lower is None) != (self.workspace_upper is None):
            raise ValueError("give both workspace_lower and workspace_upper, or neither")


@dataclass
class CriticReport:
    path: str
    num_train: int
    num_test: int
    positive_fraction: float
    test_accuracy: float
    test_auc: float
    test_positive_rate_at_0_5: float
    parity_max_abs_diff: float
    collect_s: float
    train_s: float
    epochs_run: int
    examples: dict[str, float] = field(default_factory=dict)
    violation_breakdown: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# data generation
# ---------------------------------------------------------------------------------------------


def _make_kinematics(env):
    """The robot's kinematics as a deployed node builds them (from the artifact's robot.xml, which
    is ``kinematic_model_xml``), and that XML text."""
    from robot_rl.kinematics import RobotKinematics, kinematic_model_xml

    xml = kinematic_model_xml(env.robot)
    return RobotKinematics(xml, list(env.robot.joint_names)), xml


def _joint_target(env) -> np.ndarray:
    """[N, A] the joint position targets the env holds (float64 copy)."""
    return env.action_terms.joint_target.double().numpy()


def make_risk_limits(env, kin, cfg: CriticTrainConfig) -> RiskLimits:
    """RiskLimits as the safety node builds them for this task's exported artifact."""
    vel = cfg.velocity_limit
    if vel is None:
        vel = float(env.task.action_scale) / float(env.control_dt)
    return RiskLimits(
        lower=kin.lower.copy(), upper=kin.upper.copy(), velocity=vel,
        workspace_lower=cfg.workspace_lower, workspace_upper=cfg.workspace_upper,
        collision_scale=cfg.collision_scale, command_horizon_s=cfg.command_horizon_s,
    )


def _collision_bank(kin, rng: np.random.Generator, want: int = 256, seeds: int = 8, batch: int = 2048,
                    tries: int = 40, spread: float = 0.3) -> np.ndarray:
    """Joint poses (inside the ranges) whose link geoms overlap: goals that drive into self-collision.

    Uniform draws over the ranges until ``seeds`` such poses are found (about 1 in 1000 for the
    iiwa), then random perturbations (``spread`` rad per joint) of the poses found so far, kept
    when they collide too (about 1 in 3): the bank fills with a few distance evaluations per pose
    (each is a MuJoCo call per configuration, ~80 us) instead of a thousand uniform draws.
    """
    lo, hi = kin.lower, kin.upper
    found: list[np.ndarray] = []
    for _ in range(tries):
        q = rng.uniform(lo, hi, size=(batch, kin.nq))
        found.append(q[kin.self_collision_distance(q) < 0.0])
        if sum(len(b) for b in found) >= seeds:
            break
    if not sum(len(b) for b in found):
        raise RuntimeError("found no self-colliding pose to drive toward; check the robot's collision geoms")
    for _ in range(tries):
        have = sum(len(b) for b in found)
        if have >= want:
            break
        pool = np.concatenate(found)
        k = min(batch, 3 * (want - have))
        q = np.clip(pool[rng.integers(len(pool), size=k)] + rng.normal(0.0, spread, (k, kin.nq)), lo, hi)
        found.append(q[kin.self_collision_distance(q) < 0.0])
    return np.concatenate(found)[:want]


class _Commander:
    """Scripted aggressive driver: per env a goal pose and a speed, resampled every segment."""

    MODES = ("random", "limit", "collision", "safe")
    PROBS = (0.3, 0.3, 0.25, 0.15)

    def __init__(self, n: int, lo, hi, default, bank, rng: np.random.Generator, scale: float):
        self.n, self.lo, self.hi, self.default = n, lo, hi, np.asarray(default)
        self.bank, self.rng, self.scale = bank, rng, scale
        self.nq = len(lo)
        self.goal = np.tile(self.default, (n, 1))
        self.speed = np.ones(n)
        self.left = np.zeros(n, dtype=np.int64)
        w = (np.asarray(hi) - np.asarray(lo)) ** 2
        self.limit_p = w / w.sum()

    def _resample(self, ids: np.ndarray, q_now: np.ndarray) -> None:
        rng, k = self.rng, len(ids)
        span = self.hi - self.lo
        mode = rng.choice(len(self.MODES), size=k, p=self.PROBS)
        goal = np.empty((k, self.nq))
        for j, (i, m) in enumerate(zip(ids, mode)):
            name = self.MODES[m]
            if name == "random":
                goal[j] = rng.uniform(self.lo - 0.1 * span, self.hi + 0.1 * span)
            elif name == "limit":
                g = q_now[j] + rng.normal(0.0, 0.2, self.nq)
                # wide joints need the longest travel to reach a limit: pick them more often
                for jj in rng.choice(self.nq, size=1 if rng.random() < 0.7 else 2, replace=False, p=self.limit_p):
                    side = self.hi[jj] if rng.random() < 0.5 else self.lo[jj]
                    g[jj] = side + np.sign(side) * rng.uniform(-0.15, 0.3)
                goal[j] = g
            elif name == "collision":
                goal[j] = self.bank[rng.integers(len(self.bank))]
            else:
                goal[j] = self.default + rng.normal(0.0, 0.35, self.nq)
        self.goal[ids] = goal
        aggressive = rng.choice([0.3, 0.6, 1.0, 1.0], size=k)
        gentle = rng.choice([0.1, 0.2, 0.4], size=k)
        safe = mode == self.MODES.index("safe")
        limit = mode == self.MODES.index("limit")
        speed = np.where(safe, gentle, np.where(limit, 1.0, aggressive))
        self.speed[ids] = speed * rng.uniform(0.7, 1.0, size=k)
        # long enough to reach a far limit at full speed (the iiwa's +-2.97 rad joints)
        self.left[ids] = np.where(mode == self.MODES.index("limit"), rng.integers(30, 81, size=k),
                                  rng.integers(10, 51, size=k))

    def actions(self, q_cmd: np.ndarray, q_now: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        due = np.nonzero((self.left <= 0) | fresh)[0]
        if len(due):
            self._resample(due, q_now[due])
        self.left -= 1
        step = (self.goal - q_cmd) / self.scale  # actions that would reach the goal this step
        a = np.clip(step, -1.0, 1.0) * self.speed[:, None]
        a += self.rng.normal(0.0, 0.15, a.shape)
        return np.clip(a, -1.0, 1.0)


def violations(kin, q: np.ndarray, limits: RiskLimits, cfg: CriticTrainConfig,
               self_collision: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-state constraint violations (bool arrays over the leading axes of ``q``);
    ``self_collision``: ``kin.self_collision_distance(q)`` if already computed."""
    margin = np.minimum(q - limits.lower, limits.upper - q).min(axis=-1)
    if self_collision is None:
        self_collision = kin.self_collision_distance(q)
    out = {
        "joint_limit": margin < cfg.limit_margin,
        "self_collision": self_collision < cfg.collision_threshold,
    }
    if limits.workspace_lower is not None:
        ee = kin.site_pos(q, limits.ee_site)
        out["workspace"] = ((ee < limits.workspace_lower) | (ee > limits.workspace_upper)).any(axis=-1)
    return out


def collect(cfg: CriticTrainConfig, log=print) -> dict[str, Any]:
    """Simulate, label and featurize. Returns features [S, F], labels [S], env ids [S], and the
    kinematics / limits / robot model (MJCF text, as an artifact's robot.xml) used."""
    import torch

    from robot_rl.sim import make_env

    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    n = cfg.envs
    from robot_rl.sim.tasks import make_task

    task = make_task(cfg.task)
    if hasattr(task, "reset_joint_noise"):
        # episodes start anywhere in a wide band around the default pose (near limits and
        # folded poses too), not only near it as in policy training
        task.reset_joint_noise = max(float(task.reset_joint_noise), cfg.reset_joint_noise)
    # longer episodes than in policy training, so that far limits are reached before a reset
    task.episode_length_s = max(float(task.episode_length_s), cfg.episode_length_s)
    env = make_env(task, n, dr="train", seed=cfg.seed, nthread=cfg.threads)
    kin, robot_model = _make_kinematics(env)
    limits = make_risk_limits(env, kin, cfg)
    lo, hi = kin.lower, kin.upper
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError(f"task {cfg.task!r} has unlimited joints; the critic needs joint ranges")
    bank = _collision_bank(kin, rng)
    cmdr = _Commander(n, lo, hi, np.asarray(env.robot.default_pose), bank, rng, float(env.task.action_scale))

    # valid samples per env ~ (T - H) * (1 - H / episode_len); run until enough are collected
    ep = env.max_episode_length
    per_step = n * max(0.05, 1.0 - cfg.horizon / ep)
    steps = math.ceil(cfg.samples / per_step) + cfg.horizon + 1
    env.reset()
    env.randomize_episode_start()
    Q = np.empty((steps + 1, n, kin.nq))
    QD = np.empty_like(Q)
    CMD = np.empty_like(Q)          # CMD[t]: joint target applied during step t (t >= 1)
    FRESH = np.zeros((steps + 1, n), dtype=bool)  # state t is the first of a new episode
    Q[0] = env.joint_pos.double().numpy()
    QD[0] = env.joint_vel.double().numpy()
    CMD[0] = _joint_target(env)
    FRESH[0] = True
    t0 = time.perf_counter()
    with torch.inference_mode():
        for t in range(1, steps + 1):
            cmd_before = _joint_target(env)
            a = cmdr.actions(cmd_before, Q[t - 1], FRESH[t - 1])
            _, _, term, trunc, _ = env.step(torch.from_numpy(a).float())
            done = (term | trunc).numpy()
            # the target the step applied; for envs that reset, the reset has already replaced it
            applied = _joint_target(env)
            if done.any():
                applied[done] = np.clip(cmd_before[done] + env.task.action_scale * a[done], lo, hi)
            CMD[t] = applied
            Q[t] = env.joint_pos.double().numpy()
            QD[t] = env.joint_vel.double().numpy()
            FRESH[t] = done
    sim_s = time.perf_counter() - t0

    H = cfg.horizon
    # one self-collision distance per simulated state, for the labels and the features
    dist = kin.self_collision_distance(Q.reshape(-1, kin.nq))
    viol = violations(kin, Q.reshape(-1, kin.nq), limits, cfg, self_collision=dist)
    any_v = np.zeros(Q.shape[0] * n, dtype=bool)
    for v in viol.values():
        any_v |= v
    any_v = any_v.reshape(Q.shape[0], n)
    T = steps + 1 - H  # sample times 0 .. T-1 (need states up to t + H)
    # label: any violation among states t..t+H; valid: no reset among states t+1..t+H
    label = np.zeros((T, n), dtype=bool)
    crosses = np.zeros((T, n), dtype=bool)
    for k in range(H + 1):
        label |= any_v[k:k + T]
        if k >= 1:
            crosses |= FRESH[k:k + T]
    valid = ~crosses
    ts, envs = np.nonzero(valid)
    if len(ts) > cfg.samples:
        keep = np.sort(rng.choice(len(ts), size=cfg.samples, replace=False))
        ts, envs = ts[keep], envs[keep]
    feats = risk_features(kin, Q[ts, envs], QD[ts, envs], CMD[ts + 1, envs], limits,
                          self_collision=dist.reshape(Q.shape[0], n)[ts, envs])
    y = label[ts, envs].astype(np.float32)
    breakdown = {k: float(v.reshape(Q.shape[0], n)[:T][valid].mean()) for k, v in viol.items()}
    log(f"[train_critic] simulated {steps} control steps x {n} envs in {sim_s:.1f} s; "
        f"{len(y)} samples, {y.mean():.1%} labelled risky (horizon {H} steps = {H * env.control_dt:.2f} s); "
        f"states in violation: " + ", ".join(f"{k} {v:.1%}" for k, v in breakdown.items()))
    return {"features": feats, "labels": y, "env_ids": envs, "kin": kin, "robot_model": robot_model, "limits": limits,
            "env": env, "breakdown": breakdown, "sim_s": sim_s}


# ---------------------------------------------------------------------------------------------
# model, metrics, export
# ---------------------------------------------------------------------------------------------


def build_model(num_features: int, hidden: Sequence[int], mean: np.ndarray, std: np.ndarray, *,
                njoint: int, half_range: np.ndarray, velocity: np.ndarray, lookahead_s: float):
    """The risk network: ``sigmoid(MLP(standardise([features, derived])))``.

    ``derived`` are two features computed inside the graph from the inputs (so the ONNX input
    stays ``features``): the smallest joint-limit margin in radians, and the smallest margin left
    after moving ``lookahead_s`` at the current speed (direction-agnostic, as the margin feature
    does not say which limit is nearer). They give the network the "any joint" structure of the
    joint-limit constraint directly instead of leaving it to be learned joint by joint.
    """
    import torch
    from torch import nn

    n = int(njoint)
    speed0 = n + 7  # first joint_speed feature (after n margins, 1 self-collision, 6 workspace)

    class RiskMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
            self.register_buffer("half_range", torch.as_tensor(half_range, dtype=torch.float32).reshape(1, n))
            self.register_buffer("vel", torch.as_tensor(velocity, dtype=torch.float32).reshape(1, n))
            self.lookahead = float(lookahead_s)
            layers, d = [], num_features + 2
            for h in hidden:
                layers += [nn.Linear(d, h), nn.ELU()]
                d = h
            layers.append(nn.Linear(d, 1))
            self.net = nn.Sequential(*layers)

        def derived(self, x):
            margin = x[:, :n] * self.half_range                     # rad to the nearer limit
            travel = torch.abs(x[:, speed0:speed0 + n]) * self.vel * self.lookahead
            return torch.cat([margin.min(dim=1, keepdim=True)[0], (margin - travel).min(dim=1, keepdim=True)[0]], dim=1)

        def logits(self, x):
            z = torch.cat([x, self.derived(x)], dim=1)
            return self.net((z - self.mean) / self.std)

        def forward(self, features):
            return torch.sigmoid(self.logits(features))

    return RiskMLP()


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney U with average ranks for ties); nan if one class is missing."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    npos, nneg = int(labels.sum()), int((~labels).sum())
    if npos == 0 or nneg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = 0.5 * (i + j) + 1.0
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    return float((r[labels].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def fit(X: np.ndarray, y: np.ndarray, cfg: CriticTrainConfig, limits: RiskLimits, lookahead_s: float, log=print):
    import torch

    torch.manual_seed(cfg.seed)
    n = limits.lower.shape[0]
    half = 0.5 * (limits.upper - limits.lower)
    model = build_model(X.shape[1], cfg.hidden, np.zeros(X.shape[1] + 2), np.ones(X.shape[1] + 2), njoint=n,
                        half_range=half, velocity=limits.velocity, lookahead_s=lookahead_s)
    with torch.no_grad():
        Z = torch.cat([torch.from_numpy(X), model.derived(torch.from_numpy(X))], dim=1).numpy()
    model.mean.copy_(torch.from_numpy(Z.mean(axis=0)))
    model.std.copy_(torch.from_numpy(np.maximum(Z.std(axis=0), 1e-3)))
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
    npos = float(y.sum())
    pos_weight = torch.tensor([(len(y) - npos) / max(npos, 1.0)])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    epochs = 0
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for k in range(0, len(Xt), cfg.batch_size):
            idx = perm[k:k + cfg.batch_size]
            loss = loss_fn(model.logits(Xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        epochs = epoch + 1
        if time.perf_counter() - t0 > cfg.time_budget_s:
            log(f"[train_critic] time budget {cfg.time_budget_s:.0f} s reached after {epochs} epochs")
            break
    log(f"[train_critic] trained {epochs} epochs in {time.perf_counter() - t0:.1f} s, "
        f"last loss {total / len(Xt):.4f} (pos_weight {float(pos_weight):.2f})")
    model.eval()
    return model, epochs


def export_onnx(model, path: Path, feature_names: list[str], training: dict) -> None:
    """Write the critic as ONNX (input ``features`` [B, F], output ``risk`` [B, 1]) with the
    feature list in the metadata; atomic (temporary file + rename)."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    F = len(feature_names)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy (TorchScript) exporter's deprecation notice
            torch.onnx.export(model, (torch.zeros(1, F),), tmp, input_names=["features"], output_names=["risk"],
                              dynamic_axes={"features": {0: "batch"}, "risk": {0: "batch"}}, opset_version=17,
                              dynamo=False)
        m = onnx.load(tmp)
        for key, value in ((RISK_METADATA_KEY, json.dumps(feature_names)), (TRAINING_METADATA_KEY, json.dumps(training))):
            entry = m.metadata_props.add()
            entry.key, entry.value = key, value
        m.producer_name = "robot_rl.safety.train_critic"
        onnx.checker.check_model(m)
        onnx.save(m, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def example_states(kin, default_pose) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Named (q, qd, q_cmd) situations used in the report and the tests."""
    q0 = np.asarray(default_pose, dtype=np.float64)
    z = np.zeros_like(q0)
    lo, hi = kin.lower, kin.upper
    out = {"default pose at rest": (q0, z, q0)}
    q = q0.copy()
    q[0] = hi[0] - 0.03
    qd = z.copy()
    qd[0] = 0.3
    c = q.copy()
    c[0] = hi[0]
    out["joint 1 0.03 rad from its upper limit, 0.3 rad/s outward"] = (q, qd, c)
    q = q0.copy()
    q[3] = lo[3] + 0.25
    qd = z.copy()
    qd[3] = -1.0
    c = q.copy()
    c[3] = lo[3]
    out["joint 4 0.25 rad from its lower limit, 1 rad/s toward it"] = (q, qd, c)
    q = q0.copy()
    q[3] = lo[3] + 0.25
    c = q.copy()
    c[3] = q[3] + 0.1
    out["joint 4 0.25 rad from its lower limit, commanded away, at rest"] = (q, z, c)
    return out


def train_critic(out: str | Path, cfg: CriticTrainConfig | None = None, log=print) -> CriticReport:
    """Generate data in simulation, train, export to ``out`` (.onnx) and verify; see the module
    docstring. Returns a :class:`CriticReport` (also printed through ``log``)."""
    import torch

    from robot_rl.safety.critic import SafetyCritic

    cfg = cfg or CriticTrainConfig()
    cfg.validate()
    torch.set_num_threads(max(1, int(cfg.threads)))
    t0 = time.perf_counter()
    data = collect(cfg, log=log)
    collect_s = time.perf_counter() - t0
    X, y, env_ids = data["features"], data["labels"], data["env_ids"]
    kin, limits, env = data["kin"], data["limits"], data["env"]
    rng = np.random.default_rng(cfg.seed + 1)
    held = rng.permutation(cfg.envs)[: max(1, round(cfg.holdout * cfg.envs))]
    test = np.isin(env_ids, held)
    if y[~test].min() == y[~test].max():
        raise RuntimeError("all training samples have the same label; raise --samples or the commander's "
                           "aggressiveness so that both safe and violating states occur")
    t1 = time.perf_counter()
    model, epochs = fit(X[~test], y[~test], cfg, limits, cfg.horizon * float(env.control_dt), log=log)
    train_s = time.perf_counter() - t1
    with torch.no_grad():
        p_test = model(torch.from_numpy(X[test])).numpy().ravel()
    acc = float(((p_test > 0.5) == (y[test] > 0.5)).mean())
    auc = roc_auc(p_test, y[test])

    names = risk_feature_names(kin.joint_names)
    training = {k: v for k, v in asdict(cfg).items()}
    training.update(task=cfg.task, velocity_limit=float(limits.velocity[0]), control_period_s=float(env.control_dt),
                    test_auc=auc, test_accuracy=acc, joint_names=list(kin.joint_names))
    out = Path(out)
    export_onnx(model, out, names, training)

    critic = SafetyCritic(out, kin=kin, limits=limits)
    check = np.concatenate([X[test][:2048], X[~test][:2048]])
    with torch.no_grad():
        ref = model(torch.from_numpy(check)).numpy().ravel()
    diff = float(np.abs(critic.predict(check) - ref).max())
    if not diff <= PARITY_TOL:
        raise RuntimeError(f"exported critic disagrees with the torch model by {diff:.2e} (> {PARITY_TOL:.0e})")
    examples = {name: critic(*s) for name, s in example_states(kin, env.robot.default_pose).items()}
    report = CriticReport(
        path=str(out), num_train=int((~test).sum()), num_test=int(test.sum()), positive_fraction=float(y.mean()),
        test_accuracy=acc, test_auc=auc, test_positive_rate_at_0_5=float((p_test > 0.5).mean()),
        parity_max_abs_diff=diff, collect_s=collect_s, train_s=train_s, epochs_run=epochs, examples=examples,
        violation_breakdown=data["breakdown"],
    )
    log(f"[train_critic] held-out ({report.num_test} samples from {len(held)} unseen envs): "
        f"accuracy {acc:.3f}, ROC AUC {auc:.3f}; onnxruntime vs torch max |diff| {diff:.1e}")
    for name, r in examples.items():
        log(f"[train_critic]   risk {r:.3f}  {name}")
    log(f"[train_critic] wrote {out}")
    return report


def _floats3(text: str | None):
    if text is None:
        return None
    vals = [float(v) for v in text.replace(",", " ").split()]
    if len(vals) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 numbers x,y,z, got {text!r}")
    return vals


def main(argv: Sequence[str] | None = None) -> int:
    d = CriticTrainConfig()
    p = argparse.ArgumentParser(prog="python -m robot_rl.safety.train_critic",
                                description="Train the learned safety critic in simulation and export it to ONNX.")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--samples", type=int, default=d.samples)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--task", default=d.task)
    p.add_argument("--envs", type=int, default=d.envs)
    p.add_argument("--horizon", type=int, default=d.horizon, help="control steps looked ahead for a violation")
    p.add_argument("--limit-margin", type=float, default=d.limit_margin, help="rad")
    p.add_argument("--collision-threshold", type=float, default=d.collision_threshold, help="m")
    p.add_argument("--workspace-lower", type=_floats3, default=None, help="x,y,z (with --workspace-upper)")
    p.add_argument("--workspace-upper", type=_floats3, default=None, help="x,y,z")
    p.add_argument("--velocity-limit", type=float, default=None,
                   help="rad/s used to normalise features; default: action scale / control period, as the safety node")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--time-budget-s", type=float, default=d.time_budget_s)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--report-json", default=None, help="also write the report as JSON here")
    a = p.parse_args(argv)
    if not a.out.endswith(".onnx"):
        p.error("--out must be a .onnx file")
    cfg = CriticTrainConfig(samples=a.samples, seed=a.seed, task=a.task, envs=a.envs, horizon=a.horizon,
                            limit_margin=a.limit_margin, collision_threshold=a.collision_threshold,
                            workspace_lower=a.workspace_lower, workspace_upper=a.workspace_upper,
                            velocity_limit=a.velocity_limit, epochs=a.epochs, time_budget_s=a.time_budget_s,
                            threads=a.threads)
    try:
        cfg.validate()
    except ValueError as e:
        p.error(str(e))
    report = train_critic(a.out, cfg)
    if a.report_json:
        Path(a.report_json).write_text(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
