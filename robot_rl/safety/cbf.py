"""Control-barrier-function QP filter at the safety rate (after OSCBF's joint-space CBF-QP).

Each tick the safety filter computes the command it would send (the nominal), and
:meth:`CBF.filter` replaces the nominal joint velocity ``v_nom = (q_nominal - q) / dt`` (``q``: the
last command sent) by the closest velocity that keeps every barrier ``h >= 0`` forward invariant:

    minimize    ||v - v_nom||^2
    subject to  grad h_i(q_m) . v >= -gain * h_p,i,   h_p,i = h_i(q_m) + grad h_i(q_m) . (q - q_m)
                max(-rate, gain (q_lo - q)) <= v <= min(rate, gain (q_hi - q))   (velocity, joint limits)

and the next command is ``q + v dt``. The barriers are evaluated at the measured arm ``q_m`` and
predicted at the command (``h_p``: what the arm meets on its straight way to the command), so a
position servo lagging behind its command does not cut a corner into an obstacle; with perfect
tracking ``q_m = q`` and this is the plain CBF condition on the command. Barriers (metres):

* table, obstacles and self-collision: ``h = dist(geom_a, geom_b) - margin`` for every pair of a
  robot geom (its collision capsules and spheres, the base included) and a scene shape, and every
  pair of non-adjacent robot links (``self_margin``), from MuJoCo's collision detection
  (:class:`robot_rl.safety.collision.SceneCollisionModel`: exact primitive distances, pairs found
  within a detection margin, parent-child and the model's excluded pairs left out, and pairs already
  within the margin at the check pose left out, as MoveIt's setup assistant does);
* workspace: ``h = p_ee - lower`` and ``upper - p_ee`` for the scene's box around the ``ee`` site.

Gradients: ``grad h = n . (J(c_b) - J(c_a))`` with ``n`` the contact normal from geom a to b and
``J`` the positional Jacobians of the two bodies at the contact point (any point on the line
between the closest points gives the same row): MuJoCo's frictionless contact constraint Jacobian
(``mj_makeConstraint``), in C for all rows at once (the tests check it against ``mj_jac`` at the
closest points and against finite differences). The workspace box is six planes and a small
sphere at the ``ee`` site in the same collision model, so its rows come from the same detection.

Which rows: a joint step ``dq`` changes a pair's distance by at most ``lever_ab . |dq|`` (per joint,
the longest lever of the joint on the geom it moves, along the kinematic chain; 0 for a joint that
moves both geoms, which moves them rigidly: its entry ``n . (a_j x (c_b - c_a))`` is 0). A row
binds only if ``h + grad h . (lag + v / gain) < 0`` for some ``|v| <= rate``, which needs ``h <
lever_ab . step`` with ``step = |q - q_m| + rate / gain``. Each pair is an explicit MuJoCo pair
whose detection margin is set every tick to exactly that (plus the pair's barrier margin), so
MuJoCo reports the pairs that can bind and no other; each is a row. Every barrier that can bind is
evaluated exactly every tick (no lower rate, no cache).

Skipping the QP: ``v_nom`` is the QP's solution when it satisfies every constraint, and is then
returned as is. Row i holds for ``v_nom`` iff ``h_i + grad h_i . u >= 0``, ``u = (q - q_m) + v_nom
/ gain``, and ``|grad h_i . u| <= lever_ab . |u|``; within the velocity box ``|u| <= step``, so
``h_i >= lever_ab . |u|`` for every detected pair (the others satisfy it) with the joint boxes
checked exactly proves it without building a row (not tried on the tick after an intervention,
when it almost always fails). Otherwise the rows are built (a pair's second, farther contact as a
row with h = 1e6 m that never binds), the nominal is checked against them exactly (to 1e-9), and
only if it fails is the QP solved with DAQP (dense
active-set; ``benchmarks/safety_tick.py`` compares it with OSQP and proxsuite on the same
problems). ``last``: ``min_h`` (the smallest predicted barrier of the rows; None without rows),
``rows`` (barrier rows; 0 when the proof needed none), ``intervened``, ``constraint`` (the tightest row's geoms).
A tick costs ``mj_kinematics``, ``mj_collision`` (and ``mj_makeConstraint`` when rows are built)
and 20-45 small numpy calls on preallocated buffers and cached views of MuJoCo's arrays.

Fail closed: an infeasible QP, a solver error, a non-finite input or result, or a solution that
violates the constraints raises :class:`CBFError`; the safety filter then brakes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import mujoco
import numpy as np

from robot_rl.scenes import Scene, get_scene

from .collision import SceneCollisionModel

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
        self._ws = bool(cfg.workspace and scene.workspace_lower is not None)
        ws = (cfg.ee_site, scene.workspace_lower, scene.workspace_upper) if self._ws else None
        self.col = col = SceneCollisionModel(robot_xml, joint_names, scene, 2.0, cfg.self_collision, workspace=ws)
        self.dropped_pairs: list[tuple[str, str]] = []
        if cfg.check_pose is not None and cfg.self_collision:
            self.dropped_pairs = col.exclude_within(np.asarray(cfg.check_pose, float), cfg.self_margin)
        col.use_pairs()
        m = col.model
        # the longest lever of each joint on any point of each geom (the ee's sphere included), for
        # every q: a joint step dq moves a geom's points by at most lever @ |dq| (world geoms: 0)
        self._lever = np.array([self._levers(int(m.geom_bodyid[g]), float(np.linalg.norm(m.geom_pos[g]))
                                             + float(m.geom_rbound[g])) for g in range(m.ngeom)])
        self._lever[col.scene_geoms] = 0.0
        self.activation = 2.0  # m: the detection margin of barriers() (the QP's is set per tick)
        margin_of = np.where(np.isin(np.arange(m.ngeom), col.scene_geoms), cfg.margin, cfg.self_margin)
        self._pair_margin = np.maximum.outer(margin_of, margin_of)  # a pair with the scene: margin
        # the workspace rows: the ee sphere's centre to each plane (h = p_ee - lower, upper - p_ee)
        self._ws_axis = {int(g): i for i, g in enumerate(col.ws_geoms)}
        for g in col.ws_geoms:
            self._pair_margin[g, col.ee_geom] = self._pair_margin[col.ee_geom, g] = -col.EE_RADIUS
        self._key = np.array([m.ngeom, 1])
        self._gname = [col.geom_name(g) for g in range(m.ngeom)]
        self._scene_set = {int(g) for g in col.scene_geoms}

        self._H = np.eye(self.n)
        self._init_fast()
        self.last: dict = {"min_h": None, "constraint": None, "rows": 0, "intervened": False}
        if cfg.check_pose is not None:
            q0 = np.asarray(cfg.check_pose, float)
            dist, sg, rg = col.scene_clearance(q0)
            msg = None
            if dist < cfg.margin:
                msg = (f"{col.geom_name(sg)} is {dist:.3f} m from the robot's {col.geom_name(rg)} (margin "
                       f"{cfg.margin:.3f} m)")
            msg = msg or self.violation(q0)
            if msg:
                raise ValueError(f"scene {scene.name!r} at the home pose: {msg}; an obstacle overlaps the robot's "
                                 "base or links: move or shrink it in the scene, or lower the CBF margin")

    def _init_fast(self) -> None:
        """Constant tables and buffers of the per-tick path."""
        n = self.n
        self._pm_flat = self._pair_margin.ravel()
        # [a ngeom + b, n]: the lever of each joint on the pair's distance. A joint that moves both
        # geoms moves them rigidly together (its gradient entry n . (a_j x (c_b - c_a)) is 0: c_b -
        # c_a is along n); one that moves one of them has that geom's lever
        lev, mask = self._lever, self.col.mask
        ng = len(lev)
        self._pair_lever = (lev[:, None, :] * (1.0 - mask[None, :, :])
                            + lev[None, :, :] * (1.0 - mask[:, None, :])).reshape(ng * ng, n)
        self._all = np.full(n, self.activation)
        # per explicit pair: its margin is exactly what a step needs, lever_ab . step + margin_ab
        pk = self.col.pair_geoms.dot(self._key)
        self._pl_pairs, self._pm_pairs = self._pair_lever[pk], self._pm_flat[pk] + 1e-9
        self._rate_gain = (self.rate + 1e-8) / self.config.gain
        self._neg_rate = -self.rate
        self._lag, self._step = np.zeros(n), np.zeros(n)
        self._lu = np.stack([self.lower, self.upper])
        self._bb, self._bb_t = np.zeros((2, n)), np.zeros((2, n))
        self._u, self._f = np.zeros(n), np.zeros(n)
        self._grow(n + 96)

    def _grow(self, size: int) -> None:
        """(Re)allocate the QP's bound and sense buffers (the rows' upper bounds: none, 1e30)."""
        self._bu, self._bl = np.full(size, 1e30), np.zeros(size)
        self._sense = np.zeros(size, dtype=np.int32)

    def _levers(self, body: int, extent: float) -> np.ndarray:
        """[n] upper bounds of the distance between each configured joint's axis and any point
        within ``extent`` of ``body``'s origin (0 for joints that do not move the body): the
        joint's offset in its body + the link lengths down the chain + extent."""
        m, col = self.col.model, self.col
        chain = []
        b = body
        while b > 0:
            chain.append(b)
            b = int(m.body_parentid[b])
        out = np.zeros(len(col.joint_ids))
        for j, jid in enumerate(col.joint_ids):
            jb = int(m.jnt_bodyid[jid])
            if jb in chain:
                links = sum(float(np.linalg.norm(m.body_pos[c])) for c in chain[: chain.index(jb)])
                out[j] = float(np.linalg.norm(m.jnt_pos[jid])) + links + extent
        return out

    # ------------------------------------------------------------------------------------------
    def _detect(self, q: np.ndarray, step: np.ndarray | None):
        """Kinematics and MuJoCo's collision detection at ``q``: (contacts, key [K] = a ngeom + b,
        h [K]: distance - the pair's margin). Each pair's detection margin is what ``step`` needs,
        ``lever_ab . step + margin_ab`` (+1e-9), so a pair is detected iff its barrier ``h <
        lever_ab . step`` (None: every pair within ``activation``)."""
        col = self.col
        col.set(q)
        pm = col.pair_margin
        if step is None:
            pm[:] = self.activation
        else:
            np.dot(self._pl_pairs, step, out=pm)
            pm += self._pm_pairs
        mujoco.mj_collision(col.model, col.data)
        c = col.data.contact
        key = c.geom.dot(self._key)
        return c, key, c.dist - self._pm_flat.take(key)

    def _rows(self, q: np.ndarray, step: np.ndarray | None = None):
        """Barriers detected at ``q`` (:meth:`_detect`; a pair's second contact has h = inf): h
        [K], unit normals n [K, 3] (h grows with ``n . (v_b - v_a)``), a point p [K, 3] on the line
        between the closest points, geoms [K, 2] (a, b), ``lever_ab . step`` [K], the joint masks
        [ngeom, n] and the geoms again (each row's two sides as rows of the masks)."""
        c, key, h = self._detect(q, step)
        if len(h) > 1:  # a pair's contacts come one after the other (both ends of a capsule)
            dup = (key[1:] == key[:-1]).nonzero()[0]
            h[dup + (h.take(dup + 1) >= h.take(dup))] = np.inf
        near = self._pair_lever.take(key, 0).dot(self._all if step is None else step)
        nrm = c.frame[:, :3]
        p = c.pos - (0.5 * c.dist)[:, None] * nrm
        g = c.geom
        return h, nrm, p, g, near, self.col.mask, g

    def _label(self, g) -> str:
        a, b = int(g[0]), int(g[1])
        w = self._ws_axis.get(a, self._ws_axis.get(b))
        if w is not None:
            return f"the workspace box ({'lower' if w < 3 else 'upper'} {'xyz'[w % 3]}) of {self.config.ee_site!r}"
        kind = "clearance" if a in self._scene_set or b in self._scene_set else "self-clearance"
        return f"the {kind} of {self._gname[a]} and {self._gname[b]}"

    def barriers(self, q, names: bool = False):
        """Values h [M] of every barrier within the detection margin at ``q`` (and the workspace
        rows, last); with ``names`` also their labels."""
        h, _, _, g, _, _, _ = self._rows(np.asarray(q, float))
        ok = np.isfinite(h)  # a pair's second, farther contact is not a barrier
        return (h[ok], [self._label(x) for x in g[ok]]) if names else h[ok]

    def gradients(self, q) -> np.ndarray:
        """[M, n] gradients of :meth:`barriers` w.r.t. q."""
        h = self._rows(np.asarray(q, float))[0]
        return self.col.jacobian(~np.isfinite(h)).copy()

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
        with no lag ``h_p = h(q)``. If ``v_nom`` satisfies every constraint (to 1e-9) it is
        returned as is (the QP's solution) without calling the solver."""
        base = q if q_meas is None else q_meas
        if not math.isfinite(q.dot(q) + v_nom.dot(v_nom) + base.dot(base)):
            raise CBFError("cbf_error", "non-finite commanded / measured position or nominal velocity")
        gain = self.config.gain
        lag, step = self._lag, self._step
        np.subtract(q, base, out=lag)
        bb, t = self._bb, self._bb_t  # [blo; bhi]
        np.subtract(self._lu, q, out=bb)
        bb *= gain
        blo, bhi = bb[0], bb[1]
        np.maximum(blo, self._neg_rate, out=blo)
        np.minimum(bhi, self.rate, out=bhi)
        tol = -1e-9
        np.subtract(v_nom, bb, out=t)
        t[1] *= -1.0  # [v - blo; bhi - v]
        box_ok = t.min() >= tol
        # one detection with the margins of the largest joint step that matters, |lag| + rate / gain
        # (a row binds only if h + grad h . (lag + v / gain) < 0 for some |v| <= rate, which needs
        # h < reach(step); 1e-8 rad/s more than the rate keeps |lag + v_nom / gain| <= step within the
        # box check's 1e-9)
        np.abs(lag, out=step)
        step += self._rate_gain
        c, key, h = self._detect(base, step)
        last = self.last
        # the reach-bound proof that the nominal satisfies every row (module docstring); not tried
        # right after an intervention, when it almost always fails (a choice of speed, not safety)
        if box_ok and not last["intervened"]:
            P = self._pair_lever.take(key, 0)
            u = self._u
            np.divide(v_nom, gain, out=u)
            u += lag
            np.abs(u, out=u)
            if not len(h) or (h - P.dot(u)).min() >= 0.0:
                last["min_h"], last["rows"], last["intervened"], last["constraint"] = None, 0, False, None
                return v_nom
        # every detected pair is a row (its margin is what the step needs); a pair's second, farther
        # contact stays a row with h = 1e6 m, which never binds (the QP's solution is the same)
        ndup = 0
        if len(h) > 1:
            dup = (key[1:] == key[:-1]).nonzero()[0]
            ndup = dup.size
            if ndup:
                dup += h.take(dup + 1) >= h.take(dup)
                h[dup] = 1e6
        A = self.col.jacobian()  # [K, n] the rows, in contact order
        if not A.flags.c_contiguous:  # the model has joints that are not configured (fingers)
            A = np.ascontiguousarray(A)
        R = len(h)
        if A.shape[0] != R:
            raise CBFError("cbf_error", f"{A.shape[0]} constraint rows for {R} barriers")
        hp = A.dot(lag)
        hp += h  # the barriers predicted at the command
        if not math.isfinite(hp.sum() + A.sum()):
            raise CBFError("cbf_error", "non-finite barrier values or gradients")
        last["min_h"] = float(hp.min()) if R else None
        last["rows"], last["intervened"], last["constraint"] = R - ndup, False, None
        # the nominal already satisfies everything (to rounding): it is the QP's solution
        if box_ok:
            if not R:
                return v_nom
            s = A.dot(v_nom)
            s += gain * hp
            if s.min() >= tol:
                return v_nom
        if (blo - bhi).max() > 1e-12:
            j = int(np.argmax(blo - bhi))
            raise CBFError("cbf_infeasible", f"joint {j} cannot stay in its range within the rate limit")
        n = self.n
        if self._bu.size < n + R:
            self._grow(n + R + 32)
        bupper, blower, sense = self._bu[: n + R], self._bl[: n + R], self._sense[: n + R]
        bupper[:n] = bhi
        blower[:n] = blo
        lo_rows = blower[n:]
        np.multiply(hp, -gain, out=lo_rows)
        np.negative(v_nom, out=self._f)
        try:
            x, _, flag, _ = self.solve_qp(self._H, self._f, A, bupper, blower, sense)
        except Exception as e:  # noqa: BLE001 - any solver failure fails closed
            raise CBFError("cbf_error", f"QP solver failed: {e!r}") from None
        if flag == -1:
            i = int(lo_rows.argmax())
            tight = self._label(c.geom[i])
            raise CBFError("cbf_infeasible", f"no safe velocity (tightest: {tight}, h = {-lo_rows[i] / gain:.3f} m)")
        x = np.asarray(x, dtype=np.float64)
        if flag < 1 or x.shape != (n,) or not math.isfinite(x.dot(x)):
            raise CBFError("cbf_error", f"QP solver returned exit flag {flag} or a non-finite solution")
        slack = A.dot(x)
        slack -= lo_rows
        np.subtract(x, bb, out=t)
        t[1] *= -1.0  # [x - blo; bhi - x]
        if t.min() < -1e-6 or (R and slack.min() < -1e-6):
            raise CBFError("cbf_error", "QP solution violates its constraints")
        last["intervened"] = True
        if R:
            a, b = c.geom[slack.argmin()]
            last["constraint"] = (int(a), int(b))
        return x

    def constraint_label(self) -> str | None:
        """The tightest barrier of the last intervention, in words (None if there was none)."""
        c = self.last["constraint"]
        return None if c is None else self._label(c)
