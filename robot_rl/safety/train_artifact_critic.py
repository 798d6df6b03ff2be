"""``robot-rl train-critic --artifact DIR``: train the safety critic of a policy artifact.

1. **Data** (:mod:`robot_rl.safety.critic_data`): rollouts of the artifact's own policy under the
   task's DR, perturbed, and interleaved with the training rogue (seed ``seed``).
2. **Q-risk** (Recovery RL): ``Q(s, a)`` is the discounted probability of a future constraint
   violation when command velocity ``a`` is sent at state ``s`` and the data's behaviour follows.
   The action is the command after the step (joint target ``q_cmd`` and its velocity).
   Fitted with Bellman backups: ``target = c' + (1 - c') * gamma * Q_frozen(s', a')`` where ``c'``
   is the violation indicator of the next state (target 1 when ``s`` itself violates); ``rounds``
   rounds, each re-computing the targets with the network frozen, then ``epochs_per_round``
   epochs of binary cross-entropy with those soft targets. Transitions across an episode reset
   are dropped. Features: :mod:`robot_rl.safety.critic_features`. The network's output is
   floored by a known-violation term (risk 1 when a clearance now or along the command ahead is
   0, falling to 0 at ``floor_eps * activation_m``; :func:`_model`).
3. **Calibration** on held-out rollouts (seeds ``seed + 1000``: the nominal policy alone;
   ``seed + 2000``: perturbed and rogue): the threshold is the ``1 - false_alarm_rate`` quantile of
   the risk over nominal ticks (never below ``min_threshold``); recorded with the measured
   false-alarm rate (share of nominal ticks above it) and the detection rate (share of violation
   onsets in the held-out rogue data preceded, within ``detect_window_s``, by a tick above it).
4. **Export**: ONNX (input ``features`` [B, F], output ``risk`` [B, 1]), checked against the torch
   model (max |diff| <= 1e-5), then written into the artifact with its section
   (:func:`robot_rl.safety.critic_artifact.write_critic`).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .critic_artifact import load_critic, policy_digest, write_critic
from .critic_data import ROGUE_STRATEGIES, TrainingRogue, rollouts, violations
from .critic_features import CRITIC_FEATURES, Clearance, CriticFeatures, critic_feature_names

PARITY_TOL = 1e-5


@dataclass
class CriticConfig:
    """Settings of ``robot-rl train-critic``."""

    artifact: str = ""
    """The policy artifact directory; the critic is written into it."""
    envs: int = 64
    steps: int = 500
    """Control steps per env of the training rollouts."""
    calib_envs: int = 32
    calib_steps: int = 300
    seed: int = 0
    mix: tuple[float, float, float] = (0.5, 0.2, 0.3)
    """Shares of nominal, perturbed and rogue segments in the training rollouts."""
    dr: str = "train"
    gamma: float = 0.9
    """Discount of the risk per control step (0.9 at 50 Hz: a violation 0.2 s ahead counts 0.35)."""
    rounds: int = 25
    epochs_per_round: int = 2
    hidden: tuple[int, ...] = (64, 64)
    lr: float = 2e-3
    batch_size: int = 1024
    false_alarm_rate: float = 0.01
    """Calibration target: share of nominal-policy ticks above the threshold."""
    min_threshold: float = 0.2
    hysteresis_frac: float = 0.3
    """Backup ends below threshold * (1 - hysteresis_frac)..."""
    dwell_s: float = 0.1
    """...held for this long."""
    detect_window_s: float = 0.3
    lookahead_s: float = 0.1
    activation_m: float = 0.1
    floor_eps: float = 0.03
    """The risk is at least 1 - clearance / (floor_eps * activation_m) (1 at contact; see _model)."""
    limit_margin: float = 0.005
    """rad: a joint this close to its range limit is a violation."""
    position_margin: float = 0.02
    """rad: commands are clipped to the ranges minus this, as by the safety node (its default)."""
    threads: int = 1

    def validate(self) -> None:
        if not self.artifact:
            raise ValueError("--artifact is required: the policy artifact directory to train a critic for")
        if self.envs < 1 or self.steps < 20 or self.calib_envs < 1 or self.calib_steps < 20:
            raise ValueError("envs/calib-envs must be >= 1 and steps/calib-steps >= 20")
        if not (0 < self.gamma < 1):
            raise ValueError(f"gamma={self.gamma} must be in (0, 1)")
        if not (0 < self.false_alarm_rate < 0.5):
            raise ValueError(f"false-alarm-rate={self.false_alarm_rate} must be in (0, 0.5)")
        if not (0 < self.min_threshold < 1 and 0 < self.hysteresis_frac < 1):
            raise ValueError("min-threshold and hysteresis-frac must be in (0, 1)")
        if self.rounds < 1 or self.epochs_per_round < 1:
            raise ValueError("rounds and epochs-per-round must be >= 1")


def _featurize(data: dict, feats: CriticFeatures, lower, upper, limit_margin: float) -> dict:
    """Per state t < T: features of (s_t, a_t), violation c_t, validity, next-index validity."""
    Q, QD, CMD, FRESH = data["q"], data["qd"], data["cmd"], data["fresh"]
    T = Q.shape[0] - 1
    n = Q.shape[-1]
    clear = feats.clearance(Q)
    viol = violations(Q, clear, lower, upper, limit_margin)
    c = np.zeros(Q.shape[:2], dtype=bool)
    for v in viol.values():
        c |= v
    V = (CMD[1:] - CMD[:-1]) / data["control_dt"]
    valid = ~FRESH[1:]  # the action at t is a real step (no reset between t and t + 1)
    X = np.zeros((T, Q.shape[1], 4 * n + 4), dtype=np.float32)
    ts, es = np.nonzero(valid)
    X[ts, es] = feats(Q[ts, es], QD[ts, es], CMD[1:][ts, es], V[ts, es], (clear[0][ts, es], clear[1][ts, es]))
    has_next = np.zeros_like(valid)
    has_next[:-1] = valid[:-1] & valid[1:]
    return {"X": X, "c": c, "valid": valid, "has_next": has_next, "breakdown": {k: float(v.mean()) for k, v in viol.items()}}


def _model(F: int, hidden, mean, std, n: int, floor_eps: float):
    """``risk = max(sigmoid(MLP(standardised features)), floor)``: ``floor`` rises linearly from 0
    to 1 as the smallest clearance feature (now, or along the command ahead) falls from
    ``floor_eps`` to 0 (normalised units: ``floor_eps * activation_m`` metres). A state in, or a
    command into, penetration is risk 1 by construction (its Bellman target is 1), so the learned
    part only has to cover what comes before, and states the data never visited cannot read as safe."""
    import torch
    from torch import nn

    class RiskQ(nn.Module):
        def __init__(self):
            super().__init__()
            self.c0, self.eps = 2 * n, float(floor_eps)
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
            layers, d = [], F
            for h in hidden:
                layers += [nn.Linear(d, h), nn.ELU()]
                d = h
            self.net = nn.Sequential(*layers, nn.Linear(d, 1))

        def logits(self, x):
            return self.net((x - self.mean) / self.std)

        def forward(self, features):
            clear = features[:, self.c0:self.c0 + 4].min(dim=1, keepdim=True)[0]
            floor = torch.clamp(1.0 - clear / self.eps, 0.0, 1.0)
            return torch.maximum(torch.sigmoid(self.logits(features)), floor)

    return RiskQ()


def fit_q_risk(D: dict, cfg: CriticConfig, log=print):
    """Fitted Q-evaluation of the risk (module docstring). Returns the torch model."""
    import torch

    torch.manual_seed(cfg.seed)
    X, c, valid, has_next = D["X"], D["c"], D["valid"], D["has_next"]
    ts, es = np.nonzero(valid)
    x = torch.from_numpy(X[ts, es])
    c_now = torch.from_numpy(c[ts, es].astype(np.float32))
    c_next = torch.from_numpy(c[ts + 1, es].astype(np.float32))
    nxt = torch.from_numpy(has_next[ts, es])
    x_next = torch.from_numpy(X[np.minimum(ts + 1, X.shape[0] - 1), es])
    mean, std = x.mean(0), x.std(0).clamp_min(1e-3)
    model = _model(x.shape[1], cfg.hidden, mean, std, (x.shape[1] - 4) // 4, cfg.floor_eps)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def loss_fn(p, y):
        return torch.nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), y)
    gen = torch.Generator().manual_seed(cfg.seed)
    for r in range(cfg.rounds):
        with torch.no_grad():
            q_next = model(x_next).squeeze(1) if r else torch.zeros(len(x))
            y = c_next + (1.0 - c_next) * cfg.gamma * q_next * nxt.float()
            y = torch.where(c_now > 0, torch.ones_like(y), y).unsqueeze(1)
        for _ in range(cfg.epochs_per_round):
            perm = torch.randperm(len(x), generator=gen)
            for k in range(0, len(x), cfg.batch_size):
                idx = perm[k:k + cfg.batch_size]
                loss = loss_fn(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    log(f"[train-critic] Q-risk: {cfg.rounds} Bellman rounds on {len(x)} transitions, last loss {float(loss.detach()):.4f}")
    model.eval()
    return model


def _risk(model, X: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(X.reshape(-1, X.shape[-1])))).numpy().reshape(X.shape[:-1])


def calibrate(risk_nom: np.ndarray, D_nom: dict, risk_rogue: np.ndarray, D_rogue: dict, cfg: CriticConfig,
              control_dt: float) -> dict:
    """Threshold for the false-alarm target on nominal ticks; measured rates (module docstring)."""
    nom = risk_nom[D_nom["valid"]]
    thr = float(min(max(np.quantile(nom, 1.0 - cfg.false_alarm_rate, method="higher"), cfg.min_threshold), 0.999))
    far = float((nom > thr).mean())  # above the target only when the 0.999 cap binds (target_met False)
    W = max(1, int(round(cfg.detect_window_s / control_dt)))
    c, valid = D_rogue["c"], D_rogue["valid"]
    above = (risk_rogue > thr) & valid
    events = detected = 0
    for e in range(c.shape[1]):
        for t in range(1, c.shape[0] - 1):
            if c[t, e] and not c[t - 1, e] and valid[max(0, t - W):t, e].all() and t >= W:
                events += 1
                detected += bool(above[t - W:t, e].any())
    rogue_ticks = valid & ~c[:-1]
    return {"threshold": thr, "false_alarm_rate_target": cfg.false_alarm_rate, "false_alarm_rate": far,
            "target_met": far <= cfg.false_alarm_rate,
            "nominal_ticks": int(nom.size), "nominal_violation_share": float(D_nom["c"].mean()),
            "detection_rate": (detected / events) if events else math.nan, "violation_onsets": events,
            "detect_window_s": W * control_dt, "rogue_ticks_above": float(above[rogue_ticks].mean())}


def _export(model, F: int, names: list[str]) -> bytes:
    import onnx
    import torch

    with tempfile.TemporaryDirectory() as d:
        p = str(Path(d) / "critic.onnx")
        torch.onnx.export(model, (torch.zeros(1, F),), p, input_names=["features"], output_names=["risk"],
                          dynamic_axes={"features": {0: "batch"}, "risk": {0: "batch"}}, opset_version=17, dynamo=False)
        m = onnx.load(p)
        e = m.metadata_props.add()
        e.key, e.value = "robot_rl.critic_features", json.dumps(names)
        onnx.checker.check_model(m)
        return m.SerializeToString()


def train_artifact_critic(cfg: CriticConfig, log=print) -> dict:
    """Train, calibrate and write the critic into ``cfg.artifact``; returns the report (the
    spec section plus timings)."""
    import warnings

    import onnxruntime as ort
    import torch

    from robot_rl.artifact import PolicyArtifact, command_limits
    from robot_rl.kinematics import RobotKinematics
    from robot_rl.scenes import get_scene

    cfg.validate()
    torch.set_num_threads(max(1, cfg.threads))
    t0 = time.perf_counter()
    art = PolicyArtifact.load(cfg.artifact)
    spec, robot = art.spec, art.spec["robot"]
    names = list(robot["joint_names"])
    xml = (art.path / robot["model"]).read_text()
    scene_name = robot.get("scene", "")
    scene = get_scene(scene_name) if scene_name else None
    home = list(robot["default_pose"])
    lim = command_limits(spec)
    idx = [lim["names"].index(j) for j in names]
    lower = np.array([robot["position_limits"][i][0] for i in range(len(names))])
    upper = np.array([robot["position_limits"][i][1] for i in range(len(names))])
    velocity = np.array([lim["velocity"][i] for i in idx])
    clearance = Clearance(xml, names, scene, home, cfg.activation_m)
    feats = CriticFeatures(clearance, lower, upper, velocity, cfg.lookahead_s)
    kin = RobotKinematics(xml, names)
    fold = Clearance(xml, names, None, home, 0.3)
    ee = robot["frames"].get("ee", "ee")

    def rogue_factory(env, rng):
        return TrainingRogue(kin, fold, scene, lower, upper, float(env.task.action_scale), ee, rng)

    run = dict(dr=cfg.dr, nthread=cfg.threads, rogue_factory=rogue_factory,
               command_limits=(lower + cfg.position_margin, upper - cfg.position_margin))
    data = rollouts(art, envs=cfg.envs, steps=cfg.steps, seed=cfg.seed, mix=cfg.mix, **run)
    cal_nom = rollouts(art, envs=cfg.calib_envs, steps=cfg.calib_steps, seed=cfg.seed + 1000, mix=(1, 0, 0), **run)
    cal_rogue = rollouts(art, envs=cfg.calib_envs, steps=cfg.calib_steps, seed=cfg.seed + 2000, mix=(0.2, 0.3, 0.5), **run)
    sim_s = time.perf_counter() - t0
    D = _featurize(data, feats, lower, upper, cfg.limit_margin)
    Dn = _featurize(cal_nom, feats, lower, upper, cfg.limit_margin)
    Dr = _featurize(cal_rogue, feats, lower, upper, cfg.limit_margin)
    if not D["c"].any():
        raise RuntimeError("no constraint violation in the training rollouts; raise --steps or the rogue share (--mix)")
    log(f"[train-critic] rollouts {sim_s:.1f} s; states in violation (train): "
        + ", ".join(f"{k} {v:.1%}" for k, v in D["breakdown"].items()))
    t1 = time.perf_counter()
    model = fit_q_risk(D, cfg, log)
    fit_s = time.perf_counter() - t1
    cal = calibrate(_risk(model, Dn["X"]), Dn, _risk(model, Dr["X"]), Dr, cfg, data["control_dt"])
    fnames = critic_feature_names(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_bytes = _export(model, len(fnames), fnames)
    check = D["X"][D["valid"]][:4096]
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    diff = float(np.abs(sess.run(None, {"features": check})[0].ravel() - _risk(model, check)).max())
    if not diff <= PARITY_TOL:
        raise RuntimeError(f"exported critic disagrees with the torch model by {diff:.2e} (> {PARITY_TOL:.0e})")
    thr = cal["threshold"]
    section = {
        "format": CRITIC_FEATURES, "features": fnames, "robot": robot.get("name"), "joint_names": names,
        "policy_sha256": policy_digest(spec), "scene": scene_name, "activation_m": cfg.activation_m,
        "lookahead_s": cfg.lookahead_s, "velocity": velocity.tolist(), "lower": lower.tolist(),
        "upper": upper.tolist(), "home": home, "threshold": thr, "hysteresis": thr * cfg.hysteresis_frac,
        "dwell_s": cfg.dwell_s, "calibration": cal, "parity_max_abs_diff": diff,
        "training": {**asdict(cfg), "rogue_strategies": list(ROGUE_STRATEGIES), "transitions": int(D["valid"].sum()),
                     "violation_breakdown": D["breakdown"], "control_dt": data["control_dt"]},
    }
    write_critic(art.path, onnx_bytes, section)
    load_critic(art.path, PolicyArtifact.load(art.path).spec)  # as the safety node will
    if not cal["target_met"]:
        log(f"[train-critic] warning: the nominal policy's risk is near 1 on {cal['false_alarm_rate']:.1%} of held-out "
            "ticks, above the false-alarm target; the critic would stop ordinary motion (more data: --envs/--steps)")
    log(f"[train-critic] threshold {thr:.3f}: false alarms {cal['false_alarm_rate']:.2%} of "
        f"{cal['nominal_ticks']} held-out nominal ticks (target {cfg.false_alarm_rate:.2%}), detection "
        f"{cal['detection_rate']:.1%} of {cal['violation_onsets']} held-out violation onsets "
        f"(within {cal['detect_window_s']:.2f} s); wrote {art.path / 'critic.onnx'}")
    return {**section, "sim_s": sim_s, "fit_s": fit_s, "total_s": time.perf_counter() - t0}
