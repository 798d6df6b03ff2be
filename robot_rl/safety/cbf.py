"""Control-barrier-function QP filter at the safety rate (after OSCBF's joint-space CBF-QP).

Each tick the safety filter computes the command it would send (the nominal), and
:meth:`CBF.filter` replaces the nominal joint velocity ``v_nom = (q_nominal - q) / dt`` by the
closest velocity that keeps every barrier ``h(q) >= 0`` forward invariant:

    minimize    ||v - v_nom||^2
    subject to  grad h_i(q) . v >= -gain * h_i(q)              (every barrier i)
                max(-rate, gain (q_lo - q)) <= v <= min(rate, gain (q_hi - q))   (velocity, joint limits)

and the next command is ``q + v dt``. ``q`` is the last command sent (what the arm's position
controller tracks), so the barrier holds on the commanded trajectory. Barriers (metres):

* table, obstacles and self-collision: ``h = dist(geom_a, geom_b) - margin`` for every pair of a
  robot geom (its collision capsules, the base included) and a scene shape, and every pair of
  non-adjacent robot links (``self_margin``), from MuJoCo's collision detection
  (:class:`robot_rl.safety.collision.SceneCollisionModel`: exact primitive distances, pairs found
  within a detection margin, parent-child and the model's excluded pairs left out, and pairs already
  within the margin at the check pose left out, as MoveIt's setup assistant does);
* workspace: ``h = p_ee - lower`` and ``upper - p_ee`` for the scene's box around the ``ee`` site.

Gradients: ``grad h = n . (J(c_b) - J(c_a))`` with ``n`` the contact normal from geom a to b and
``J`` the positional Jacobians of the closest points ``c_a``, ``c_b`` (from MuJoCo's joint axes and
anchors, the columns ``mj_jac`` returns; the tests check them against ``mj_jac`` and finite
differences). A barrier with ``gain * h`` above the fastest its two geoms can approach each other
at the rate limit cannot bind this tick and is left out of the QP. The QP is solved with DAQP
(dense active-set; ``benchmarks/safety_tick.py`` compares it with OSQP and proxsuite).

Fail closed: an infeasible QP, a solver error, a non-finite input or result, or a solution that
violates the constraints raises :class:`CBFError`; the safety filter then brakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import mujoco
import numpy as np

from robot_rl.scenes import Scene, get_scene

from .collision import SceneCollisionModel, moving_joints, point_jacobians

__all__ = ["CBFConfig", "CBF", "CBFError"]

class CBFError(RuntimeError):
    """The QP gave no usable answer (``reason``: cbf_infeasible | cbf_error)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass
class CBFConfig:
    """Barrier margins and gain. ``scene``: a :class:`robot_rl.scenes.Scene` or a registered name.
    ``margin`` (m): kept from the table and obstacles; ``self_margin`` (m): between links;
    ``gain`` (1/s): the class-K gain (a barrier may shrink by at most ``gain * dt`` of itself per
    tick); ``workspace``: use the scene's ``ee`` box; ``self_collision``: link-link barriers;
    ``check_pose``: a pose (configured joint order; the home pose) that must satisfy every barrier
    (the scene is refused otherwise); ``ee_site``: the site of the workspace box."""

    scene: Any
    margin: float = 0.05
    self_margin: float = 0.01
    gain: float = 20.0
    workspace: bool = True
    self_collision: bool = True
    check_pose: Sequence[float] | None = None
    ee_site: str = "ee"

    def __post_init__(self) -> None:
        if isinstance(self.scene, str):
            self.scene = get_scene(self.scene)
        if not isinstance(self.scene, Scene):
            raise ValueError(f"CBFConfig.scene must be a robot_rl.scenes.Scene or a scene name, got {self.scene!r}")
        for k in ("margin", "self_margin"):
            if not (0.0 <= float(getattr(self, k)) < 1.0):
                raise ValueError(f"CBFConfig.{k} must be in [0, 1) m, got {getattr(self, k)}")
        if not (0.0 < self.gain < 1000.0):
            raise ValueError(f"CBFConfig.gain must be in (0, 1000) 1/s, got {self.gain}")


class CBF:
    """The CBF-QP of one robot model and scene (module docstring).

    Args:
        config: :class:`CBFConfig`.
        robot_xml: the robot's MJCF text (an artifact's ``robot.xml``).
        joint_names: the configured joint order of every ``q``.
        lower, upper: command position limits (the safety config's ``cmd_lower`` / ``cmd_upper``).
        rate: velocity limit per joint (rad/s).
        solver: a ``daqp.solve``-compatible callable (default DAQP; tests inject failing ones).

    Raises ValueError (one line) if ``config.check_pose`` violates a barrier: an obstacle overlaps
    the robot's base or its links at that pose.
    """

    def __init__(self, config: CBFConfig, robot_xml: str, joint_names: Sequence[str], lower, upper, rate,
                 solver=None):
        import daqp

        self.config = cfg = config
        self.scene = scene = cfg.scene
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.rate = np.asarray(rate, float)
        self.n = len(self.rate)
        self.solve_qp = solver or daqp.solve
        # detection margin: the farthest a barrier can bind from (fastest point speed / gain)
        self.col = col = SceneCollisionModel(robot_xml, joint_names, scene, 1.0, cfg.self_collision)
        m = col.model
        reach = float(np.linalg.norm(m.body_pos, axis=1).sum() + m.geom_rbound.max())
        self.activation = min(2.0 * self.rate.sum() * reach / cfg.gain, 2.0)
        m.geom_margin[:] = 0.0
        self._speed = np.zeros(m.ngeom)
        self._rbound = m.geom_rbound[col.robot_geoms].copy()
        self._rmask = col.mask[col.robot_geoms]
        self._margin_of = np.where(np.isin(np.arange(m.ngeom), col.scene_geoms), cfg.margin, cfg.self_margin)
        self._ws = bool(cfg.workspace and scene.workspace_lower is not None)
        if self._ws:
            self._site = m.site(cfg.ee_site).id
            self._ee_mask = moving_joints(m, col.joint_ids, int(m.site_bodyid[self._site]))[None]
            self._ws_lo, self._ws_hi = np.array(scene.workspace_lower), np.array(scene.workspace_upper)
            self._ws_n = np.concatenate([np.eye(3), -np.eye(3)])
            self._ee_rate = self._ee_mask[0] * self.rate
        self.dropped_pairs: list[tuple[str, str]] = []
        if cfg.check_pose is not None:
            q0 = np.asarray(cfg.check_pose, float)
            if cfg.self_collision:
                col.model.geom_margin[:] = self.activation
                self.dropped_pairs = col.exclude_within(q0, cfg.self_margin)
                col.model.geom_margin[:] = 0.0
                self._rbound = col.model.geom_rbound[col.robot_geoms].copy()
                self._rmask = col.mask[col.robot_geoms]
            dist, sg, rg = col.scene_clearance(q0)
            msg = None
            if dist < cfg.margin:
                msg = (f"{col.geom_name(sg)} is {dist:.3f} m from the robot's {col.geom_name(rg)} (margin "
                       f"{cfg.margin:.3f} m)")
            msg = msg or self.violation(q0)
            if msg:
                raise ValueError(f"scene {scene.name!r} at the home pose: {msg}; an obstacle overlaps the robot's "
                                 "base or links: move or shrink it in the scene, or lower the CBF margin")
        self._H = np.eye(self.n)
        self.last: dict = {"min_h": None, "constraint": None, "rows": 0, "intervened": False}

    # ------------------------------------------------------------------------------------------
    def _rows(self, q: np.ndarray, all_rows: bool = False, horizon: float = 0.0):
        """Barriers at q: h [M], normals [M, 3], points a, b [M, 3], their masks [M, n] (the
        barrier grows with ``n . (v_b - v_a)``), the speed bound [M] and labels (g1, g2).

        Each robot geom's detection margin is set to twice the distance its points can move at the
        rate limit within ``horizon`` s (MuJoCo takes the larger margin of a pair, so every pair
        whose barrier could bind is detected); ``all_rows`` uses ``activation`` for all.
        The closest contact of each geom pair is kept (a capsule-box pair reports two)."""
        col = self.col
        col.set(q)
        d, m = col.data, col.model
        an = d.xanchor[col.joint_ids]
        rg = col.robot_geoms
        dv = d.geom_xpos[rg][:, None] - an[None]
        lever = np.sqrt(np.einsum("gjk,gjk->gj", dv, dv)) + self._rbound[:, None]
        speed_g = self._speed
        speed_g[rg] = np.einsum("gj,gj,j->g", lever, self._rmask, self.rate)
        m.geom_margin[rg] = self.activation if all_rows else np.minimum(2.0 * speed_g[rg] * horizon, self.activation)
        dist, nrm, p1, p2, g1, g2 = col.contacts()
        if len(dist) > 1:  # closest contact per pair
            key = g1 * m.ngeom + g2
            order = np.lexsort((dist, key))
            first = order[np.concatenate([[True], key[order][1:] != key[order][:-1]])]
            dist, nrm, p1, p2, g1, g2 = dist[first], nrm[first], p1[first], p2[first], g1[first], g2[first]
        h = dist - np.maximum(self._margin_of[g1], self._margin_of[g2])
        speed = speed_g[g1] + speed_g[g2]
        ma, mb = col.mask[g1], col.mask[g2]
        if self._ws:
            pe = d.site_xpos[self._site]
            h = np.concatenate([h, pe - self._ws_lo, self._ws_hi - pe])
            # the ee is point b (its barrier grows with n . v_ee); a is fixed
            nrm = np.concatenate([nrm, self._ws_n])
            pw = np.repeat(pe[None], 6, 0)
            p1, p2 = np.concatenate([p1, pw]), np.concatenate([p2, pw])
            ma = np.concatenate([ma, np.zeros((6, self.n))])
            mb = np.concatenate([mb, np.repeat(self._ee_mask, 6, 0)])
            de = pe[None] - an
            ee_speed = float(np.sqrt(np.einsum("jk,jk->j", de, de)) @ self._ee_rate)
            speed = np.concatenate([speed, np.full(6, ee_speed)])
        return h, nrm, p1, p2, ma, mb, speed, (g1, g2)

    def _grads(self, nrm, pa, pb, ma, mb) -> np.ndarray:
        R = len(nrm)
        J = point_jacobians(self.col.data, self.col.joint_ids, self.col.slide, np.concatenate([pa, pb]),
                            np.concatenate([ma, mb]))
        return np.einsum("rk,rkn->rn", nrm, J[R:] - J[:R])

    def _label(self, i: int, geoms) -> str:
        g1, g2 = geoms
        if i < len(g1):
            a, b = self.col.geom_name(int(g1[i])), self.col.geom_name(int(g2[i]))
            kind = "clearance" if int(g1[i]) in self.col.scene_geoms or int(g2[i]) in self.col.scene_geoms else \
                "self-clearance"
            return f"the {kind} of {a} and {b}"
        k = i - len(g1)
        return f"the workspace box ({'lower' if k < 3 else 'upper'} {'xyz'[k % 3]}) of {self.config.ee_site!r}"

    def barriers(self, q, names: bool = False):
        """Values h [M] of the barriers detected at ``q`` (pairs within the detection margin, then
        the workspace rows); with ``names`` also their labels."""
        r = self._rows(np.asarray(q, float), all_rows=True)
        return (r[0], [self._label(i, r[-1]) for i in range(len(r[0]))]) if names else r[0]

    def gradients(self, q) -> np.ndarray:
        """[M, n] gradients of :meth:`barriers` w.r.t. q (for tests)."""
        h, nrm, pa, pb, ma, mb, _, _ = self._rows(np.asarray(q, float), all_rows=True)
        return self._grads(nrm, pa, pb, ma, mb)

    def violation(self, q) -> str | None:
        """One line naming the most violated barrier at ``q``, or None if all hold."""
        h, names = self.barriers(q, names=True)
        if not len(h) or h.min() >= 0:
            return None
        i = int(np.argmin(h))
        return f"{names[i]} is {-h[i]:.3f} m inside its margin"

    def filter(self, q: np.ndarray, v_nom: np.ndarray, q_meas: np.ndarray | None = None) -> np.ndarray:
        """The safe joint velocity closest to ``v_nom`` for the command at ``q``; raises
        :class:`CBFError` when there is none (or on any numerical problem).

        The barriers are evaluated at the measured arm ``q_meas`` (default: ``q``, perfect
        tracking) and predicted at the command along the way there: ``h_p = h(q_meas) +
        grad h(q_meas) . (q - q_meas)``, the barrier the arm meets on its straight way to the
        command, is the barrier of the QP, ``grad h(q_meas) . v >= -gain * h_p``. A position servo
        lagging behind its command then closes the gap without cutting a corner into an obstacle;
        with no lag ``h_p = h(q)``."""
        if not (np.isfinite(q).all() and np.isfinite(v_nom).all()):
            raise CBFError("cbf_error", "non-finite position or nominal velocity")
        base = q if q_meas is None else np.asarray(q_meas, dtype=np.float64)
        if not np.isfinite(base).all():
            raise CBFError("cbf_error", "non-finite measured position")
        gain = self.config.gain
        lag = q - base
        # |grad h . (q + v / gain - base)| <= speed * horizon: rows beyond that cannot bind
        horizon = float(np.max(np.abs(lag) / self.rate)) + 1.0 / gain
        h, nrm, pa, pb, ma, mb, speed, geoms = self._rows(base, horizon=horizon)
        if not np.isfinite(h).all():
            raise CBFError("cbf_error", "non-finite barrier values")
        act = np.flatnonzero(h < speed * horizon + 1e-9)
        A = self._grads(nrm[act], pa[act], pb[act], ma[act], mb[act])
        hp = h[act] + A @ lag
        lo_rows = -gain * hp
        if not (np.isfinite(A).all() and np.isfinite(lo_rows).all()):
            raise CBFError("cbf_error", "non-finite barrier gradients")
        blo = np.maximum(-self.rate, gain * (self.lower - q))
        bhi = np.minimum(self.rate, gain * (self.upper - q))
        last = self.last
        last["min_h"] = float(hp.min()) if len(hp) else None
        last["rows"], last["intervened"], last["constraint"] = int(act.size), False, None
        # the nominal already satisfies everything (to rounding): no QP, no intervention
        tol = 1e-9
        if (v_nom >= blo - tol).all() and (v_nom <= bhi + tol).all() and (A @ v_nom >= lo_rows - tol).all():
            return v_nom
        if (blo > bhi + 1e-12).any():
            j = int(np.argmax(blo - bhi))
            raise CBFError("cbf_infeasible", f"joint {j} cannot stay in its range within the rate limit")
        bupper = np.concatenate([bhi, np.full(act.size, 1e30)])
        blower = np.concatenate([blo, lo_rows])
        try:
            x, _, flag, _ = self.solve_qp(self._H, -v_nom, np.ascontiguousarray(A), bupper, blower,
                                          np.zeros(bupper.size, dtype=np.int32))
        except Exception as e:  # noqa: BLE001 - any solver failure fails closed
            raise CBFError("cbf_error", f"QP solver failed: {e!r}") from None
        if flag == -1:
            i = int(np.argmin(hp))
            raise CBFError("cbf_infeasible", f"no safe velocity (tightest: {self._label(int(act[i]), geoms)}, "
                                             f"h = {hp[i]:.3f} m)")
        x = np.asarray(x, dtype=np.float64)
        if flag < 1 or x.shape != (self.n,) or not np.isfinite(x).all():
            raise CBFError("cbf_error", f"QP solver returned exit flag {flag} or a non-finite solution")
        if (x < blo - 1e-6).any() or (x > bhi + 1e-6).any() or (A @ x < lo_rows - 1e-6).any():
            raise CBFError("cbf_error", "QP solution violates its constraints")
        last["intervened"] = True
        if act.size:
            last["constraint"] = self._label(int(act[int(np.argmin(A @ x - lo_rows))]), geoms)
        return x
