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
``J`` the positional Jacobians of the closest points ``c_a``, ``c_b``, from MuJoCo's joint axes and
anchors in one matrix product for all rows, ``[p (x) n, n] @ B`` (:meth:`CBF._basis`; the tests
check them against ``mj_jac`` at the closest points and against finite differences). A barrier
farther than its two geoms can approach each other by a joint step ``|q - q_m| + rate / gain``
(from per-joint lever bounds along the kinematic chain) cannot bind this tick: it is not detected
(per-geom MuJoCo margins of twice that reach plus the largest barrier margin) and not in the QP.
Every barrier is evaluated exactly every tick. When the nominal already satisfies every
constraint (to 1e-9) it is the QP's solution and is returned as is, without calling the solver;
otherwise the QP is solved with DAQP (dense active-set; ``benchmarks/safety_tick.py`` compares it
with OSQP and proxsuite on the same problems). The per-tick path (:meth:`CBF.filter`) works in
preallocated buffers on views of MuJoCo's arrays and builds rows only for the barriers that can
bind (about 40 numpy calls and one ``mj_collision`` per tick).

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

from .collision import SceneCollisionModel, moving_joints

__all__ = ["CBFConfig", "CBF", "CBFError"]

# Levi-Civita as a [9, 3] matrix: (a (x) b).ravel() @ _LC = a x b (outer product flattened row-major)
_LC = np.zeros((9, 3))
for (_k, _l, _m), _s in (((0, 1, 2), 1), ((1, 2, 0), 1), ((2, 0, 1), 1), ((0, 2, 1), -1), ((2, 1, 0), -1),
                         ((1, 0, 2), -1)):
    _LC[3 * _k + _l, _m] = _s
_LCT, _NLC = np.ascontiguousarray(_LC.T), -_LC


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
        self.col = col = SceneCollisionModel(robot_xml, joint_names, scene, 2.0, cfg.self_collision)
        self.dropped_pairs: list[tuple[str, str]] = []
        if cfg.check_pose is not None and cfg.self_collision:
            self.dropped_pairs = col.exclude_within(np.asarray(cfg.check_pose, float), cfg.self_margin)
        m = col.model
        # the longest lever of each joint on any point of each geom (and the ee), for every q: a
        # joint step dq moves a geom's points by at most lever @ |dq|
        self._lever = np.array([self._levers(int(m.geom_bodyid[g]), float(np.linalg.norm(m.geom_pos[g]))
                                             + float(m.geom_rbound[g])) for g in range(m.ngeom)])
        self._lever[col.scene_geoms] = 0.0
        self.activation = 2.0  # m: the detection margin of barriers() (the QP's is set per tick)
        margin_of = np.where(np.isin(np.arange(m.ngeom), col.scene_geoms), cfg.margin, cfg.self_margin)
        self._pair_margin = np.maximum.outer(margin_of, margin_of)  # a pair with the scene: margin
        self._key = np.array([m.ngeom, 1])
        self._gname = [col.geom_name(g) for g in range(m.ngeom)]
        self._scene_set = {int(g) for g in col.scene_geoms}
        self._ws = bool(cfg.workspace and scene.workspace_lower is not None)
        if self._ws:
            self._site = m.site(cfg.ee_site).id
            body = int(m.site_bodyid[self._site])
            self._ee_mask = moving_joints(m, col.joint_ids, body)
            self._ee_lever = self._levers(body, float(np.linalg.norm(m.site_pos[self._site])))
            self._ws_lo, self._ws_hi = np.array(scene.workspace_lower), np.array(scene.workspace_upper)
            self._ws_n = np.concatenate([np.eye(3), -np.eye(3)])
            self._ws_masks = np.stack([np.zeros(self.n), self._ee_mask])
            self._ws_g = np.stack([np.full(6, -1), np.arange(6)], 1)
            self._ws_side = np.tile([-2, -1], (6, 1))  # mask rows of the two sides: fixed, the ee

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
        col, n = self.col, self.n
        ng = col.model.ngeom
        # MuJoCo detects a pair within the larger of its geoms' margins: with 2 * reach + the largest
        # barrier margin per geom, max(2 r_a, 2 r_b) + pad >= r_a + r_b + margin_ab for every pair
        self._pad = max(self.config.margin, self.config.self_margin)
        self._reach_all = self._lever @ np.full(n, self.activation)
        self._pm_flat = self._pair_margin.ravel()
        self._dmask = (col.mask[None, :, :] - col.mask[:, None, :]).reshape(ng * ng, n)  # [a ng + b]: b - a
        self._slide = col.slide.copy()
        self._any_slide = bool(self._slide.any())
        self._B = np.zeros((n, 12))
        self._axan = np.zeros((n, 9))
        self._axan3 = self._axan.reshape(n, 3, 3)
        self._grow(64)
        self._rate_gain = self.rate / self.config.gain
        self._neg_rate = -self.rate
        self._lag, self._step = np.zeros(n), np.zeros(n)
        self._lu = np.stack([self.lower, self.upper])
        self._bb, self._bb_t = np.zeros((2, n)), np.zeros((2, n))
        self._hw = np.zeros(6)

    def _grow(self, rows: int) -> None:
        """(Re)allocate the row buffers W [rows, 12] (and its [rows, 3, 3] view of the outer
        products), h [rows] and joint masks [rows, n]."""
        self._W, self._hr, self._dm = np.zeros((rows, 12)), np.zeros(rows), np.zeros((rows, self.n))
        self._W3 = self._W[:, :9].reshape(rows, 3, 3)
        if not np.shares_memory(self._W3, self._W):
            raise RuntimeError("numpy copied the row buffer's view")

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
        """Kinematics and MuJoCo's collision detection at ``q`` with the margins ``step`` needs
        (:meth:`_rows`): (contacts, g [K, 2], key [K] = a ngeom + b, h [K], near [K])."""
        col = self.col
        col.set(q)
        reach = self._reach_all if step is None else self._lever.dot(step)
        gm = col.geom_margin
        np.multiply(reach, 2.0, out=gm)
        gm += self._pad
        np.minimum(gm, self.activation, out=gm)
        mujoco.mj_collision(col.model, col.data)
        c = col.data.contact
        g = c.geom
        key = g.dot(self._key)
        dist = c.dist
        h = dist - self._pm_flat.take(key)
        if len(h) > 1:  # a pair's contacts come one after the other: the farther gets h = inf
            dup = (key[1:] == key[:-1]).nonzero()[0]
            if dup.size:
                h[np.where(dist[dup + 1] >= dist[dup], dup + 1, dup)] = np.inf
        return c, g, key, h, reach.take(g).sum(1)

    def _rows(self, q: np.ndarray, step: np.ndarray | None = None):
        """Barriers detected at ``q``: h [M], unit normals n [M, 3] (h grows with ``n . (v_b -
        v_a)``), a point p [M, 3] on the line between the closest points, labels [M, 2] (geom a,
        geom b; -1: the ee's workspace rows, b = axis 0..5), the farthest each row's two sides can
        approach within ``step`` [M], the joint masks (rows -2, -1: fixed, the ee) and each row's
        two sides as rows of those masks [M, 2].

        ``step`` [n]: the largest joint motion that matters (None: ``activation`` for every geom).
        Each geom's detection margin is twice the distance ``step`` can move it plus the largest
        barrier margin (MuJoCo takes the larger margin of a pair, so every pair within the sum of
        both reaches plus its barrier margin is detected). A capsule-box pair reports two contacts:
        the farther one gets h = inf. Workspace rows are added when ``step`` can reach them."""
        c, g, _, h, near = self._detect(q, step)
        nrm = c.frame[:, :3]
        p = c.pos - (0.5 * c.dist)[:, None] * nrm
        mask, side = self.col.mask, g
        if self._ws:
            pe = self.col.site_xpos[self._site]
            hw = np.concatenate([pe - self._ws_lo, self._ws_hi - pe])
            ee_reach = np.inf if step is None else float(self._ee_lever @ step)
            w = np.flatnonzero(hw < ee_reach)
            if w.size:
                h = np.concatenate([h, hw[w]])
                nrm = np.concatenate([nrm, self._ws_n[w]])
                p = np.concatenate([p, pe[None].repeat(w.size, 0)])
                g = np.concatenate([g, self._ws_g[w]])
                side = np.concatenate([side, self._ws_side[w]])
                near = np.concatenate([near, np.full(w.size, ee_reach)])
                mask = np.concatenate([mask, self._ws_masks])  # index -2: fixed, -1: the ee
        return h, nrm, p, g, near, mask, side

    def _basis(self) -> np.ndarray:
        """[n, 12] gradient basis at the current kinematics: a row with unit normal n and a point
        p on the line between its closest points has ``grad = ([p (x) n, n] @ B.T) * (mask_b -
        mask_a)``. For a hinge j with axis a_j through anchor o_j both closest points give ``n .
        (a_j x (c - o_j)) = a_j . (p x n) - n . (a_j x o_j)`` (they differ by a multiple of n):
        ``B[j] = [eps a_j, -(a_j x o_j)]``; a slide joint's is ``[0, a_j]`` (``n . a_j``)."""
        col, B = self.col, self._B
        ax = col.xaxis[col.jnt_idx]
        np.matmul(ax, _LCT, out=B[:, :9])
        np.multiply(ax[:, :, None], col.xanchor[col.jnt_idx][:, None, :], out=self._axan3)
        np.matmul(self._axan, _NLC, out=B[:, 9:])
        if self._any_slide:
            B[self._slide, :9] = 0.0
            B[self._slide, 9:] = ax[self._slide]
        return B

    def _grads(self, nrm, p, side, mask) -> np.ndarray:
        """[R, n] barrier gradients ``n . (J(c_b) - J(c_a))`` (``side`` [R, 2]: the mask rows of a
        and b), from :meth:`_basis`."""
        W = np.concatenate([(p[:, :, None] * nrm[:, None, :]).reshape(-1, 9), nrm], 1)
        return (W @ self._basis().T) * (mask[side[:, 1]] - mask[side[:, 0]])

    def _label(self, g) -> str:
        a, b = int(g[0]), int(g[1])
        if a < 0:
            return f"the workspace box ({'lower' if b < 3 else 'upper'} {'xyz'[b % 3]}) of {self.config.ee_site!r}"
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
        h, nrm, p, _, _, mask, side = self._rows(np.asarray(q, float))
        ok = np.isfinite(h)
        return self._grads(nrm[ok], p[ok], side[ok], mask)

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
        # a row binds only if h + grad h . (lag + v / gain) < 0 for some |v| <= rate, which needs
        # h < the distance its two sides can approach by a joint step |lag| + rate / gain
        np.abs(lag, out=step)
        step += self._rate_gain
        c, g, key, h, near = self._detect(base, step)
        near += 1e-9
        act = (h < near).nonzero()[0]
        k = act.size
        w = None
        if self._ws:  # the ee's workspace rows its step can reach, after the contacts
            hw, pe = self._hw, self.col.site_xpos[self._site]
            np.subtract(pe, self._ws_lo, out=hw[:3])
            np.subtract(self._ws_hi, pe, out=hw[3:])
            ee_reach = self._ee_lever.dot(step)
            if hw.min() < ee_reach:
                w = (hw < ee_reach).nonzero()[0]
        R = k if w is None else k + w.size
        if self._W.shape[0] < R:
            self._grow(R + 32)
        # rows [p (x) n, n] of the barriers that can bind (p x n = pos x n: both lie on one line along n),
        # their values and joint masks (mask_b - mask_a)
        W, hr, dm = self._W[:R], self._hr[:R], self._dm[:R]
        nrm = c.frame.take(act, 0)[:, :3]
        np.multiply(c.pos.take(act, 0)[:, :, None], nrm[:, None, :], out=self._W3[:k])
        W[:k, 9:] = nrm
        h.take(act, out=hr[:k])
        self._dmask.take(key.take(act), 0, out=dm[:k])
        if w is not None:
            n_w = self._ws_n[w]
            np.multiply(pe[None, :, None], n_w[:, None, :], out=self._W3[k:R])
            W[k:, 9:] = n_w
            hr[k:] = hw[w]
            dm[k:] = self._ee_mask
        A = W.dot(self._basis().T)
        A *= dm
        hp = A.dot(lag)
        hp += hr  # the barriers predicted at the command
        if not math.isfinite(hp.sum() + A.sum()):
            raise CBFError("cbf_error", "non-finite barrier values or gradients")
        bb, t = self._bb, self._bb_t  # [blo; bhi]
        np.subtract(self._lu, q, out=bb)
        bb *= gain
        blo, bhi = bb[0], bb[1]
        np.maximum(blo, self._neg_rate, out=blo)
        np.minimum(bhi, self.rate, out=bhi)
        last = self.last
        last["min_h"] = float(hp.min()) if R else None
        last["rows"], last["intervened"], last["constraint"] = R, False, None
        # the nominal already satisfies everything (to rounding): it is the QP's solution
        tol = -1e-9
        np.subtract(v_nom, bb, out=t)
        t[1] *= -1.0  # [v - blo; bhi - v]
        if t.min() >= tol:
            if not R:
                return v_nom
            s = A.dot(v_nom)
            s += gain * hp
            if s.min() >= tol:
                return v_nom
        lo_rows = -gain * hp
        if (blo > bhi + 1e-12).any():
            j = int(np.argmax(blo - bhi))
            raise CBFError("cbf_infeasible", f"joint {j} cannot stay in its range within the rate limit")
        bupper = np.concatenate([bhi, np.full(R, 1e30)])
        blower = np.concatenate([blo, lo_rows])
        try:
            x, _, flag, _ = self.solve_qp(self._H, -v_nom, A, bupper, blower, np.zeros(bupper.size, dtype=np.int32))
        except Exception as e:  # noqa: BLE001 - any solver failure fails closed
            raise CBFError("cbf_error", f"QP solver failed: {e!r}") from None
        labels = g[act] if w is None else np.concatenate([g[act], self._ws_g[w]])
        if flag == -1:
            i = int(np.argmax(lo_rows))
            raise CBFError("cbf_infeasible", f"no safe velocity (tightest: {self._label(labels[i])}, "
                                             f"h = {-lo_rows[i] / gain:.3f} m)")
        x = np.asarray(x, dtype=np.float64)
        if flag < 1 or x.shape != (self.n,) or not np.isfinite(x).all():
            raise CBFError("cbf_error", f"QP solver returned exit flag {flag} or a non-finite solution")
        slack = A @ x - lo_rows
        if (x < blo - 1e-6).any() or (x > bhi + 1e-6).any() or (slack < -1e-6).any():
            raise CBFError("cbf_error", "QP solution violates its constraints")
        last["intervened"] = True
        if R:
            last["constraint"] = tuple(int(v) for v in labels[int(np.argmin(slack))])
        return x

    def constraint_label(self) -> str | None:
        """The tightest barrier of the last intervention, in words (None if there was none)."""
        c = self.last["constraint"]
        return None if c is None else self._label(c)
