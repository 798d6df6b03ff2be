"""Data for the artifact safety critic: rollouts of the artifact's own policy under the task's DR,
perturbed, and interleaved with a *training* rogue commander; constraint-violation labels.

:func:`rollouts` runs ``make_env(task, envs, dr)`` with the artifact's runtime
(:class:`robot_rl.evaluate_artifact.ArtifactPolicy`). Each env follows segments of 10-40 control
steps, each in one mode drawn with ``mix`` = (nominal, perturbed, rogue) probabilities:

* ``nominal``: the policy's action as is (the states the deployed policy visits);
* ``perturbed``: the policy's action plus Gaussian noise (``noise``) and, with probability 1/2 per
  segment, scaled by a factor in [1, 2.5] (an over-eager policy);
* ``rogue``: :class:`TrainingRogue`, which drives *velocities*, never absolute goal poses (the
  benchmark rogue, :mod:`robot_rl.safety.rogue`, commands goal configurations sampled in
  collision; it stays unseen in training). Strategies: ``limit_sweep`` (one or two joints pushed
  at constant speed toward a limit, the policy moving the rest), ``dive`` (resolved-rate motion of
  the ``ee`` site toward a point inside the scene's table or an obstacle), ``fold`` (descent of
  the self-clearance gradient, finite differences) and ``jerk`` (Ornstein-Uhlenbeck actions at
  full scale).

Labels (:func:`violations`): a state violates when a joint is within ``limit_margin`` rad of its
range limit, two non-adjacent links are closer than 0 m, or a link penetrates the scene's table or
an obstacle (:class:`robot_rl.safety.critic_features.Clearance` on the artifact's robot model plus
the scene). The simulated env does not contain the scene: links pass through it, and the labels
say where they would have hit it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TrainingRogue", "ROGUE_STRATEGIES", "rollouts", "violations", "MODES"]

ROGUE_STRATEGIES = ("limit_sweep", "dive", "fold", "jerk")
MODES = ("nominal", "perturbed", "rogue")


def scene_targets(scene) -> list[tuple[np.ndarray, np.ndarray]]:
    """(lo, hi) boxes of points inside each scene shape (the table's top layer, obstacle cores)."""
    out = []
    for s in scene.shapes if scene is not None else ():
        p = np.asarray(s.pos, dtype=np.float64)
        if s.kind == "box":
            h = np.asarray(s.size)
            lo = p - 0.8 * h
            hi = p + 0.8 * h
            lo[2] = p[2] + 0.5 * h[2]  # the upper half: reachable from above
            out.append((lo, hi))
        elif s.kind == "sphere":
            r = 0.5 * s.size[0]
            out.append((p - r, p + r))
        else:  # capsule: its axis
            q = np.asarray(s.to, dtype=np.float64)
            out.append((np.minimum(p, q), np.maximum(p, q)))
    return out


class TrainingRogue:
    """Velocity-driving adversary (module docstring); actions in the env's [-1, 1] action units."""

    def __init__(self, kin, clearance_fold, scene, lower, upper, scale: float, ee_site: str,
                 rng: np.random.Generator):
        self.kin, self.fold_clear = kin, clearance_fold
        self.targets = scene_targets(scene)
        self.lower, self.upper = np.asarray(lower), np.asarray(upper)
        self.scale, self.site, self.rng = float(scale), ee_site, rng
        self.n = len(self.lower)

    def start(self) -> dict:
        """A new segment's plan."""
        rng = self.rng
        names = ROGUE_STRATEGIES if self.targets else tuple(s for s in ROGUE_STRATEGIES if s != "dive")
        kind = names[rng.integers(len(names))]
        plan = {"kind": kind, "speed": float(rng.uniform(0.5, 1.0)), "ou": np.zeros(self.n)}
        if kind == "limit_sweep":
            plan["joints"] = rng.choice(self.n, size=int(rng.integers(1, 3)), replace=False)
            plan["dir"] = rng.choice([-1.0, 1.0], size=len(plan["joints"]))
        elif kind == "dive":
            lo, hi = self.targets[rng.integers(len(self.targets))]
            plan["point"] = rng.uniform(lo, hi)
        elif kind == "fold":
            plan["dir"] = rng.normal(size=self.n)
        return plan

    def action(self, plan: dict, policy_action: np.ndarray, q_cmd: np.ndarray) -> np.ndarray:
        kind, u = plan["kind"], plan["speed"]
        if kind == "limit_sweep":
            a = policy_action.copy()
            a[plan["joints"]] = plan["dir"] * u
            return a
        if kind == "dive":
            ee = self.kin.site_pos(q_cmd, self.site)
            J = self.kin.site_jacobian(q_cmd, self.site)
            dq = np.linalg.pinv(J) @ (plan["point"] - ee)
            m = float(np.abs(dq).max())
            return u * dq / m if m > 0 else np.zeros(self.n)
        if kind == "fold":
            eps = 0.02
            base = self.fold_clear(q_cmd)[0]
            steps = q_cmd[None] + eps * np.eye(self.n)
            grad = (self.fold_clear(steps)[0] - base) / eps
            if np.abs(grad).max() > 1e-6:
                plan["dir"] = -grad
            d = plan["dir"]
            return u * d / max(float(np.abs(d).max()), 1e-9)
        # jerk: Ornstein-Uhlenbeck at full scale
        plan["ou"] += 0.3 * (-plan["ou"]) + 0.6 * self.rng.normal(size=self.n)
        return np.clip(plan["ou"], -1.0, 1.0)


def violations(q: np.ndarray, clear: tuple[np.ndarray, np.ndarray], lower, upper,
               limit_margin: float = 0.01) -> dict[str, np.ndarray]:
    """Per-state violations (bool over the leading axes of ``q``) from the clearances ``clear``
    = (self, scene) at ``q``."""
    margin = np.minimum(q - np.asarray(lower), np.asarray(upper) - q).min(axis=-1)
    return {"joint_limit": margin < limit_margin, "self_collision": clear[0] < 0.0, "scene_contact": clear[1] < 0.0}


def rollouts(art, *, envs: int, steps: int, seed: int, mix=(0.5, 0.2, 0.3), dr: str = "train",
             noise: float = 0.3, nthread: int = 1, rogue_factory=None, command_limits=None) -> dict:
    """Simulate ``steps`` control steps of ``envs`` envs (module docstring). Returns arrays
    ``q, qd, cmd`` [steps + 1, envs, n] (``cmd[t]``: joint target held during step t, so the
    action at state t is ``cmd[t + 1] - cmd[t]``), ``fresh`` [steps + 1, envs] (state t starts an
    episode), ``mode`` [steps, envs] (index into ``MODES`` of the action at t), ``control_dt``.

    ``command_limits``: optional (lower, upper) the joint targets are clipped to, as the safety
    filter clips commands (ranges minus its ``position_margin``): the critic sits behind that
    clipping, so it is trained on the commands that pass it."""
    import torch

    from robot_rl.evaluate_artifact import ArtifactPolicy
    from robot_rl.sim import make_env

    rng = np.random.default_rng(seed)
    mix = np.asarray(mix, dtype=np.float64)
    if mix.shape != (3,) or (mix < 0).any() or mix.sum() <= 0:
        raise ValueError(f"mix must be 3 non-negative weights (nominal, perturbed, rogue), got {mix.tolist()}")
    mix = mix / mix.sum()
    env_cfg = art.spec.get("training", {}).get("config", {}).get("env", {})
    env = make_env(art.spec["task"], envs, dr=dr, seed=seed, nthread=nthread,
                   physics_variants=int(env_cfg.get("physics_variants", 256)))
    try:
        if env.num_obs["policy"] != art.obs_dim or env.num_actions != art.action_dim:
            raise ValueError(f"{art.path}: the policy does not fit task {art.spec['task']} any more; export it again")
        policy = ArtifactPolicy(art, envs)
        rogue = rogue_factory(env, rng) if rogue_factory is not None and mix[2] > 0 else None
        n = art.action_dim
        scale = float(env.task.action_scale)
        Q = np.empty((steps + 1, envs, n))
        QD, CMD = np.empty_like(Q), np.empty_like(Q)
        FRESH = np.zeros((steps + 1, envs), dtype=bool)
        MODE = np.zeros((steps, envs), dtype=np.int8)
        obs = env.reset()
        env.randomize_episode_start()

        def read(t):
            Q[t] = env.joint_pos.double().numpy()[:, :n]
            QD[t] = env.joint_vel.double().numpy()[:, :n]
            CMD[t] = env.action_terms.joint_target.double().numpy()[:, :n]

        read(0)
        FRESH[0] = True
        mode = rng.choice(3, size=envs, p=mix)
        left = rng.integers(10, 41, size=envs)
        plans = [rogue.start() if rogue is not None else None for _ in range(envs)]
        gain = np.ones(envs)
        with torch.inference_mode():
            for t in range(steps):
                due = (left <= 0) | FRESH[t]
                for i in np.flatnonzero(due):
                    mode[i] = rng.choice(3, p=mix)
                    left[i] = rng.integers(10, 41)
                    gain[i] = rng.uniform(1.0, 2.5) if rng.random() < 0.5 else 1.0
                    if mode[i] == 2:
                        plans[i] = rogue.start()
                left -= 1
                a = policy(obs["policy"]).numpy().astype(np.float64)
                pert = mode == 1
                if pert.any():
                    a[pert] = a[pert] * gain[pert, None] + rng.normal(0.0, noise, (int(pert.sum()), a.shape[1]))
                for i in np.flatnonzero(mode == 2):
                    a[i] = rogue.action(plans[i], a[i], CMD[t, i])
                MODE[t] = mode
                a = np.clip(a, -1.0, 1.0)
                if command_limits is not None:
                    goal = np.clip(CMD[t] + scale * a, command_limits[0], command_limits[1])
                    a = (goal - CMD[t]) / scale
                obs, _, term, trunc, _ = env.step(torch.from_numpy(a).float())
                done = (term | trunc).numpy()
                policy.reset(term | trunc)
                read(t + 1)
                FRESH[t + 1] = done
        return {"q": Q, "qd": QD, "cmd": CMD, "fresh": FRESH, "mode": MODE, "control_dt": float(env.control_dt),
                "action_scale": scale}
    finally:
        env.sim.close()
