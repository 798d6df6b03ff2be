"""A rogue commander and a constraint-violation monitor, to measure what the safety layer stops.

:class:`RogueCommander` is an adversarial policy: every ``hold_s`` seconds it picks a joint-space
goal that violates a constraint and commands it (absolute joint targets, as a policy's position
commands reach the safety filter), so the arm is driven straight at the violation. Strategies:

* ``joint_limit``: the home pose with one to three joints commanded 0.2 rad beyond a limit;
* ``table`` / ``obstacle`` / ``self``: configurations sampled uniformly within the joint limits
  (seeded) in which a link penetrates the scene's table, one of its obstacles, or another link
  (MuJoCo's collision detection on the robot model plus the scene,
  :class:`robot_rl.safety.collision.SceneCollisionModel`);
* ``mixed``: a random one of the above for each goal.

:class:`ViolationMonitor` labels a robot state: the joint limits passed, and the table, obstacle
and self contacts at the true joint positions (MuJoCo distances below zero; link pairs already
touching at the home pose are ignored). A critic can use both: the commander for adversarial
rollouts, the monitor for constraint-violation labels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from robot_rl.scenes import Scene

from .collision import SceneCollisionModel

__all__ = ["RogueCommander", "ViolationMonitor", "STRATEGIES", "VIOLATION_KINDS"]

STRATEGIES = ("joint_limit", "table", "obstacle", "self", "mixed")
VIOLATION_KINDS = ("joint_limit", "table", "obstacle", "self")


class ViolationMonitor:
    """Which constraints a configuration violates (module docstring).

    Args:
        robot_xml: the robot's MJCF text; joint_names: the order of ``q``; scene: the scene;
        home: a pose whose touching link pairs are ignored; limit_tol: rad past a joint limit that
        counts.
    """

    def __init__(self, robot_xml: str, joint_names: Sequence[str], scene: Scene, home: Sequence[float],
                 limit_tol: float = 1e-3):
        self.col = col = SceneCollisionModel(robot_xml, joint_names, scene, activation=0.0)
        col.exclude_within(np.asarray(home, float), 0.0)
        m = col.model
        self.lower = m.jnt_range[col.joint_ids, 0].copy()
        self.upper = m.jnt_range[col.joint_ids, 1].copy()
        self.tol = float(limit_tol)
        roles = {int(g): s.role for g, s in zip(col.scene_geoms, scene.shapes)}
        self._role = np.array([roles.get(g, "") for g in range(m.ngeom)], dtype=object)

    def __call__(self, q) -> set[str]:
        """The kinds (``VIOLATION_KINDS``) violated at joint positions ``q``."""
        q = np.asarray(q, float)
        out = set()
        if (q < self.lower - self.tol).any() or (q > self.upper + self.tol).any():
            out.add("joint_limit")
        self.col.set(q)
        dist, _, _, g = self.col.contacts()
        for dd, (a, b) in zip(dist, g):
            if dd < 0:
                role = self._role[a] or self._role[b]
                out.add("self" if not role else ("table" if role == "table" else "obstacle"))
        return out


class RogueCommander:
    """Adversarial joint-position goals (module docstring).

    Args:
        robot_xml, joint_names, scene, home: the robot (MJCF text, joint order), its scene and home.
        strategy: one of ``STRATEGIES``; seed: the goals' random stream; hold_s: seconds per goal;
        samples: configurations sampled per collision strategy.
    """

    def __init__(self, robot_xml: str, joint_names: Sequence[str], scene: Scene, home: Sequence[float],
                 strategy: str = "mixed", seed: int = 0, hold_s: float = 1.5, samples: int = 4000):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown rogue strategy {strategy!r}; choose one of {STRATEGIES}")
        self.strategy, self.hold_s = strategy, float(hold_s)
        self.home = np.asarray(home, float)
        self.rng = np.random.default_rng(seed)
        mon = ViolationMonitor(robot_xml, joint_names, scene, home)
        self.lower, self.upper = mon.lower, mon.upper
        self.pools: dict[str, np.ndarray] = {}
        kinds = [strategy] if strategy != "mixed" else list(STRATEGIES[:-1])
        wanted = [k for k in kinds if k != "joint_limit"]
        if wanted:
            qs = self.rng.uniform(self.lower, self.upper, (samples, len(self.lower)))
            labels = [mon(q) for q in qs]
            for k in wanted:
                pool = qs[[k in lab for lab in labels]]
                if not len(pool):
                    raise ValueError(f"no sampled configuration of this robot violates {k!r} in scene "
                                     f"{scene.name!r}; raise `samples` or use another strategy")
                self.pools[k] = pool
        self._kinds = kinds
        self._goal = self.home.copy()
        self._t_next = 0.0
        self.goal_kind = "home"

    def next_goal(self) -> np.ndarray:
        """A new goal of the strategy (``goal_kind`` says which kind)."""
        kind = self._kinds[int(self.rng.integers(len(self._kinds)))]
        self.goal_kind = kind
        if kind == "joint_limit":
            g = self.home.copy()
            for j in self.rng.choice(len(g), int(self.rng.integers(1, 4)), replace=False):
                g[j] = self.upper[j] + 0.2 if self.rng.random() < 0.5 else self.lower[j] - 0.2
            return g
        pool = self.pools[kind]
        return pool[int(self.rng.integers(len(pool)))].copy()

    def __call__(self, t: float) -> np.ndarray:
        """The joint-position command at time ``t`` (s): the current goal, a new one every
        ``hold_s``."""
        if t >= self._t_next:
            self._goal = self.next_goal()
            self._t_next = t + self.hold_s
        return self._goal.copy()
