"""Numpy forward kinematics and capsule distances for serial (tree) robots.

Two pieces:

* :func:`chain_from_mjmodel` reads the kinematic tree, the chosen sites, the capsule/sphere geoms
  and the joint ranges out of a compiled ``mujoco.MjModel`` into a plain, JSON-serializable dict
  (the "chain"). MuJoCo is only needed here, and only to read attributes of the model it is given;
  this module never imports it.
* :class:`Kinematics` evaluates forward kinematics of such a chain with numpy only, batched over
  any leading axes (no per-sample Python loop; one loop over the bodies). It reproduces MuJoCo's
  ``mj_kinematics`` (body offsets, joint anchors, joint reference positions ``qpos0``) to machine
  precision, and offers capsule geometry queries for proximity features and safety checks:
  :meth:`Kinematics.capsule_segments`, :meth:`Kinematics.self_collision_distance` and
  :meth:`Kinematics.min_distance` (capsule-capsule, capsule-sphere and capsule-box).

This is the robot-side FK: it runs with numpy alone, so a deployed node needs neither torch nor
MuJoCo. Typical use::

    import json, mujoco
    from robot_rl.kinematics import Kinematics, chain_from_mjmodel

    model = mujoco.MjModel.from_xml_path("models/iiwa14/iiwa14.xml")
    chain = chain_from_mjmodel(model, ["ee"])
    json.dump(chain, open("chain.json", "w"))          # ship this next to the policy
    kin = Kinematics(json.load(open("chain.json")))
    ee = kin.fk(q)["sites"]["ee"]                        # q: [..., 7] -> [..., 3]

Chain dict layout (``CHAIN_FORMAT_VERSION`` = 1)::

    {
      "format": "robot_rl.kinematics.chain", "version": 1,
      "bodies": [ {"name", "parent" (index into bodies, -1 = world), "pos" [3], "quat" [4] wxyz,
                   "joint" (name or None), "joint_type" ("hinge" | "slide" | None),
                   "joint_axis" [3] (in the body frame), "joint_pos" [3] (anchor, body frame),
                   "joint_ref" (qpos0 of the joint)}, ... ],   # topological order (parent first)
      "joint_names": [...],            # joints in tree order (the default q order)
      "joint_ranges": {name: [lo, hi] or None (unlimited)},
      "sites": {name: {"body" (index, -1 = world), "pos" [3], "quat" [4]}},
      "geoms": [ {"name" (or None), "body" (index, -1 = world), "type" ("capsule" | "sphere" |
                  "cylinder"), "size" [radius, half_length], "pos" [3], "quat" [4]}, ... ],
    }

Geoms: capsules and spheres are taken as they are; a cylinder is approximated by the capsule
with the same radius and half-length (which contains it, so distances are conservative).
Planes, boxes, ellipsoids and meshes are not part of the robot's distance model and are skipped.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

CHAIN_FORMAT = "robot_rl.kinematics.chain"
CHAIN_FORMAT_VERSION = 1

# mujoco.mjtJoint / mujoco.mjtGeom values (stable across MuJoCo 2.x-4.x); used so that this module
# never has to import mujoco at module level.
_MJ_JNT_FREE, _MJ_JNT_BALL, _MJ_JNT_SLIDE, _MJ_JNT_HINGE = 0, 1, 2, 3
_MJ_GEOM_SPHERE, _MJ_GEOM_CAPSULE, _MJ_GEOM_CYLINDER = 2, 3, 5
_MJ_OBJ_BODY, _MJ_OBJ_JOINT, _MJ_OBJ_GEOM, _MJ_OBJ_SITE = 1, 3, 5, 6

_JOINT_TYPES = {_MJ_JNT_HINGE: "hinge", _MJ_JNT_SLIDE: "slide"}
_GEOM_TYPES = {_MJ_GEOM_SPHERE: "sphere", _MJ_GEOM_CAPSULE: "capsule", _MJ_GEOM_CYLINDER: "cylinder"}


# ---------------------------------------------------------------------------------------------
# Extraction from MuJoCo
# ---------------------------------------------------------------------------------------------


def chain_from_mjmodel(model: Any, site_names: Sequence[str]) -> dict:
    """Describe the kinematic tree of a compiled ``mujoco.MjModel`` as a JSON-serializable dict.

    Args:
        model: a compiled ``mujoco.MjModel``.
        site_names: sites whose positions :meth:`Kinematics.fk` should return (e.g. ``["ee"]``).

    Every body except the world is listed (parent index -1 = world). A body may carry at most one
    joint, which must be a hinge or a slide; free and ball joints, or several joints on one body,
    raise ``ValueError`` (this FK is for fixed-base serial/tree manipulators).
    """
    import mujoco  # lazy: only the extraction needs MuJoCo

    def name_of(objtype: int, idx: int) -> str | None:
        name = mujoco.mj_id2name(model, objtype, idx)
        return name if name else None

    def floats(a) -> list[float]:
        return [float(x) for x in np.asarray(a, dtype=np.float64).ravel()]

    bodies: list[dict] = []
    joint_names: list[str] = []
    joint_ranges: dict[str, list[float] | None] = {}
    for b in range(1, model.nbody):
        bname = name_of(_MJ_OBJ_BODY, b) or f"body_{b}"
        if int(model.body_mocapid[b]) >= 0:
            raise ValueError(
                f"body {bname!r} is a mocap body (its pose comes from data, not from joints); "
                "extract the chain from a model of the robot alone"
            )
        njnt = int(model.body_jntnum[b])
        if njnt > 1:
            raise ValueError(
                f"body {bname!r} has {njnt} joints; Kinematics supports at most one hinge or slide "
                "joint per body. Split the joints onto separate (massless) child bodies."
            )
        entry: dict[str, Any] = {
            "name": bname,
            "parent": int(model.body_parentid[b]) - 1,
            "pos": floats(model.body_pos[b]),
            "quat": floats(model.body_quat[b]),
            "joint": None,
            "joint_type": None,
            "joint_axis": [0.0, 0.0, 1.0],
            "joint_pos": [0.0, 0.0, 0.0],
            "joint_ref": 0.0,
        }
        if njnt == 1:
            j = int(model.body_jntadr[b])
            jtype = int(model.jnt_type[j])
            if jtype not in _JOINT_TYPES:
                kind = {_MJ_JNT_FREE: "free", _MJ_JNT_BALL: "ball"}.get(jtype, str(jtype))
                raise ValueError(
                    f"body {bname!r}: joint type {kind!r} is not supported; only hinge and slide "
                    "joints (fixed-base chains) can be described. Extract the chain from a model "
                    "of the robot alone (without free objects), or model a floating base separately."
                )
            jname = name_of(_MJ_OBJ_JOINT, j) or f"joint_{j}"
            entry.update(
                joint=jname,
                joint_type=_JOINT_TYPES[jtype],
                joint_axis=floats(model.jnt_axis[j]),
                joint_pos=floats(model.jnt_pos[j]),
                joint_ref=float(model.qpos0[model.jnt_qposadr[j]]),
            )
            joint_names.append(jname)
            limited = bool(model.jnt_limited[j])
            joint_ranges[jname] = floats(model.jnt_range[j]) if limited else None
        bodies.append(entry)

    sites: dict[str, dict] = {}
    for s in site_names:
        sid = mujoco.mj_name2id(model, _MJ_OBJ_SITE, s)
        if sid < 0:
            available = [name_of(_MJ_OBJ_SITE, i) for i in range(model.nsite)]
            raise ValueError(f"site {s!r} not found in the model; available sites: {available}")
        sites[s] = {
            "body": int(model.site_bodyid[sid]) - 1,
            "pos": floats(model.site_pos[sid]),
            "quat": floats(model.site_quat[sid]),
        }

    geoms: list[dict] = []
    for g in range(model.ngeom):
        gtype = int(model.geom_type[g])
        if gtype not in _GEOM_TYPES:
            continue
        size = model.geom_size[g]
        half = 0.0 if gtype == _MJ_GEOM_SPHERE else float(size[1])
        geoms.append(
            {
                "name": name_of(_MJ_OBJ_GEOM, g),
                "body": int(model.geom_bodyid[g]) - 1,
                "type": _GEOM_TYPES[gtype],
                "size": [float(size[0]), half],
                "pos": floats(model.geom_pos[g]),
                "quat": floats(model.geom_quat[g]),
            }
        )

    return {
        "format": CHAIN_FORMAT,
        "version": CHAIN_FORMAT_VERSION,
        "bodies": bodies,
        "joint_names": joint_names,
        "joint_ranges": joint_ranges,
        "sites": sites,
        "geoms": geoms,
    }


# ---------------------------------------------------------------------------------------------
# Small numpy helpers
# ---------------------------------------------------------------------------------------------


def quat_to_mat(quat: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion (normalised first, as MuJoCo does)."""
    w, x, y, z = (float(v) for v in quat)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if n == 0.0:
        raise ValueError("zero quaternion")
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def segment_segment_distance(
    p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray, eps: float = 1e-12
) -> np.ndarray:
    """Distance between segments [p0, p1] and [q0, q1], broadcast over leading axes ([..., 3]).

    Degenerate (zero-length) segments are points, so this covers sphere-capsule and sphere-sphere.
    Closest-point algorithm from Ericson, *Real-Time Collision Detection* (5.1.9), vectorised.
    """
    d1 = p1 - p0
    d2 = q1 - q0
    r = p0 - q0
    a = np.einsum("...i,...i->...", d1, d1)
    e = np.einsum("...i,...i->...", d2, d2)
    f = np.einsum("...i,...i->...", d2, r)
    c = np.einsum("...i,...i->...", d1, r)
    b = np.einsum("...i,...i->...", d1, d2)
    a_ok = a > eps
    e_ok = e > eps
    a_safe = np.where(a_ok, a, 1.0)
    e_safe = np.where(e_ok, e, 1.0)
    denom = a * e - b * b
    nonparallel = denom > eps * np.maximum(a * e, eps)
    # general case (both segments proper): s on the infinite lines, clamped (parallel: s = 0);
    # then t for that s, and if t leaves [0, 1], clamp t and recompute s.
    s_gen = np.where(nonparallel, np.clip((b * f - c * e) / np.where(nonparallel, denom, 1.0), 0.0, 1.0), 0.0)
    t_gen = (b * s_gen + f) / e_safe
    s_gen = np.where(
        t_gen < 0.0,
        np.clip(-c / a_safe, 0.0, 1.0),
        np.where(t_gen > 1.0, np.clip((b - c) / a_safe, 0.0, 1.0), s_gen),
    )
    t_gen = np.clip(t_gen, 0.0, 1.0)
    s = np.where(a_ok, np.where(e_ok, s_gen, np.clip(-c / a_safe, 0.0, 1.0)), 0.0)
    t = np.where(a_ok, np.where(e_ok, t_gen, 0.0), np.where(e_ok, np.clip(f / e_safe, 0.0, 1.0), 0.0))
    c1 = p0 + d1 * s[..., None]
    c2 = q0 + d2 * t[..., None]
    return np.linalg.norm(c1 - c2, axis=-1)


def point_box_signed_distance(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Signed distance from points ``p`` (box frame, [..., 3]) to an axis-aligned box centred at
    the origin with half extents ``half`` (negative inside)."""
    d = np.abs(p) - half
    outside = np.linalg.norm(np.maximum(d, 0.0), axis=-1)
    inside = np.minimum(d.max(axis=-1), 0.0)
    return outside + inside


def segment_box_signed_distance(
    p0: np.ndarray, p1: np.ndarray, half: np.ndarray, iters: int = 60
) -> np.ndarray:
    """Signed distance from segments [p0, p1] (box frame, [..., 3]) to a centred box.

    The signed distance to a convex set is a convex function of the point, hence of the segment
    parameter; a vectorised golden-section search finds its minimum (``iters`` = 60 narrows the
    parameter to 1e-12 of the segment length).
    """
    invphi = (math.sqrt(5.0) - 1.0) / 2.0
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    shape = np.broadcast_shapes(p0.shape[:-1], p1.shape[:-1])
    d = p1 - p0

    def f(t):
        return point_box_signed_distance(p0 + d * t[..., None], half)

    lo = np.zeros(shape)
    hi = np.ones(shape)
    xc = hi - invphi * (hi - lo)
    xd = lo + invphi * (hi - lo)
    fc, fd = f(xc), f(xd)
    for _ in range(iters):
        left = fc <= fd  # minimum lies in [lo, xd]
        hi = np.where(left, xd, hi)
        lo = np.where(left, lo, xc)
        new_c = np.where(left, hi - invphi * (hi - lo), xd)
        new_d = np.where(left, xc, lo + invphi * (hi - lo))
        fx = f(np.where(left, new_c, new_d))
        fc, fd = np.where(left, fx, fd), np.where(left, fc, fx)
        xc, xd = new_c, new_d
    ends = np.minimum(f(np.zeros(shape)), f(np.ones(shape)))
    return np.minimum(np.minimum(fc, fd), ends)


# ---------------------------------------------------------------------------------------------
# Kinematics
# ---------------------------------------------------------------------------------------------


class Kinematics:
    """Batched numpy forward kinematics of a chain dict (see :func:`chain_from_mjmodel`).

    Args:
        chain: the chain dict (also as loaded back from JSON).
        joint_names: order of the joints in ``q``; defaults to ``chain["joint_names"]`` (tree
            order). It must name every joint of the chain exactly once.
        self_collision_exclude: extra body-name pairs to ignore in
            :meth:`self_collision_distance` (adjacent bodies, parent and child, are always
            ignored; the world counts as the parent of root bodies and is named ``"world"``).

    Attributes:
        joint_names, body_names, site_names, lower, upper (joint ranges in ``joint_names`` order;
        -inf/inf where unlimited), nq.
    """

    def __init__(
        self,
        chain: Mapping[str, Any],
        joint_names: Sequence[str] | None = None,
        self_collision_exclude: Iterable[tuple[str, str]] = (),
    ):
        if chain.get("format", CHAIN_FORMAT) != CHAIN_FORMAT:
            raise ValueError(f"not a kinematic chain dict (format={chain.get('format')!r})")
        if int(chain.get("version", CHAIN_FORMAT_VERSION)) > CHAIN_FORMAT_VERSION:
            raise ValueError(
                f"chain format version {chain.get('version')} is newer than this code supports "
                f"({CHAIN_FORMAT_VERSION}); update robot_rl."
            )
        bodies = list(chain["bodies"])
        self.body_names: list[str] = [b["name"] for b in bodies]
        nb = len(bodies)
        tree_joints = [b["joint"] for b in bodies if b.get("joint")]
        if joint_names is None:
            joint_names = list(chain.get("joint_names", tree_joints))
        joint_names = list(joint_names)
        if sorted(joint_names) != sorted(tree_joints) or len(set(joint_names)) != len(joint_names):
            raise ValueError(
                f"joint_names {joint_names} must list every joint of the chain exactly once; "
                f"the chain has {tree_joints}"
            )
        self.joint_names: list[str] = joint_names
        self.nq = len(joint_names)
        jidx = {n: i for i, n in enumerate(joint_names)}

        self._parent = np.array([int(b["parent"]) for b in bodies], dtype=np.int64)
        for i, p in enumerate(self._parent):
            if not (-1 <= p < i):
                raise ValueError(
                    f"body {self.body_names[i]!r}: parent index {p} must refer to an earlier body "
                    "(bodies must be listed parent-first)"
                )
        self._pos = np.array([b["pos"] for b in bodies], dtype=np.float64).reshape(nb, 3)
        self._rot = np.array([quat_to_mat(b["quat"]) for b in bodies]).reshape(nb, 3, 3)
        self._jtype: list[str | None] = []
        self._qidx: list[int] = []
        self._jref = np.zeros(nb)
        self._jpos = np.zeros((nb, 3))
        self._jaxis = np.zeros((nb, 3))
        # Rodrigues pieces per hinge: R(theta) = cos*(I - a a^T) + sin*[a]x + a a^T
        self._aaT = np.zeros((nb, 3, 3))
        self._K = np.zeros((nb, 3, 3))
        for i, b in enumerate(bodies):
            jt = b.get("joint_type") if b.get("joint") else None
            if jt not in (None, "hinge", "slide"):
                raise ValueError(f"body {b['name']!r}: unsupported joint type {jt!r}")
            self._jtype.append(jt)
            self._qidx.append(jidx[b["joint"]] if jt else -1)
            if jt:
                axis = np.asarray(b["joint_axis"], dtype=np.float64)
                n = np.linalg.norm(axis)
                if n == 0:
                    raise ValueError(f"joint {b['joint']!r} has a zero axis")
                axis = axis / n
                self._jaxis[i] = axis
                self._jpos[i] = np.asarray(b.get("joint_pos", [0, 0, 0]), dtype=np.float64)
                self._jref[i] = float(b.get("joint_ref", 0.0))
                self._aaT[i] = np.outer(axis, axis)
                x, y, z = axis
                self._K[i] = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])

        # All local transforms at once as 4x4 matrices: Tloc = cos*A0 + sin*A1 + d*B1 + A2,
        # with d = q - ref the joint displacement, so FK is a handful of array ops plus one
        # matmul per body.
        M0 = self._rot @ (np.eye(3) - self._aaT)
        M1 = self._rot @ self._K
        M2 = self._rot @ self._aaT
        hinge = np.array([jt == "hinge" for jt in self._jtype], dtype=bool)
        slide = np.array([jt == "slide" for jt in self._jtype], dtype=bool)
        A0 = np.zeros((nb, 4, 4))
        A1 = np.zeros((nb, 4, 4))
        A2 = np.zeros((nb, 4, 4))
        B1 = np.zeros((nb, 4, 4))
        A2[:, 3, 3] = 1.0
        for i in range(nb):
            if hinge[i]:
                jp = self._jpos[i]
                A0[i, :3, :3] = M0[i]
                A0[i, :3, 3] = -(M0[i] @ jp)
                A1[i, :3, :3] = M1[i]
                A1[i, :3, 3] = -(M1[i] @ jp)
                A2[i, :3, :3] = M2[i]
                A2[i, :3, 3] = self._pos[i] + (self._rot[i] - M2[i]) @ jp
            else:
                A2[i, :3, :3] = self._rot[i]
                A2[i, :3, 3] = self._pos[i]
                if slide[i]:
                    B1[i, :3, 3] = self._rot[i] @ self._jaxis[i]
        self._A0, self._A1, self._A2, self._B1 = A0, A1, A2, B1
        self._has_slide = bool(slide.any())
        self._jbodies = np.array([i for i in range(nb) if self._jtype[i]], dtype=np.int64)
        self._jcols = np.array([self._qidx[i] for i in self._jbodies], dtype=np.int64)
        self._parent_list = [int(p) for p in self._parent]

        ranges = chain.get("joint_ranges", {}) or {}
        self.lower = np.full(self.nq, -np.inf)
        self.upper = np.full(self.nq, np.inf)
        for n, i in jidx.items():
            r = ranges.get(n)
            if r is not None:
                self.lower[i], self.upper[i] = float(r[0]), float(r[1])

        sites = chain.get("sites", {}) or {}
        self.site_names: list[str] = list(sites)
        self._site_body = np.array([int(sites[s]["body"]) for s in self.site_names], dtype=np.int64)
        self._site_pos = np.array([sites[s]["pos"] for s in self.site_names], dtype=np.float64).reshape(-1, 3)
        self._site_rot = np.array([quat_to_mat(sites[s]["quat"]) for s in self.site_names]).reshape(-1, 3, 3)

        geoms = list(chain.get("geoms", []) or [])
        self.geom_body = np.array([int(g["body"]) for g in geoms], dtype=np.int64)
        self.geom_type: list[str] = [g["type"] for g in geoms]
        self.geom_radius = np.array([float(g["size"][0]) for g in geoms], dtype=np.float64)
        self._geom_half = np.array(
            [0.0 if g["type"] == "sphere" else float(g["size"][1]) for g in geoms], dtype=np.float64
        )
        self._geom_pos = np.array([g["pos"] for g in geoms], dtype=np.float64).reshape(-1, 3)
        self._geom_zaxis = np.array([quat_to_mat(g["quat"])[:, 2] for g in geoms]).reshape(-1, 3)

        # self-collision pairs: geoms on different, non-adjacent bodies (world = index -1)
        names = {-1: "world", **{i: n for i, n in enumerate(self.body_names)}}
        excl = {frozenset(p) for p in self_collision_exclude}
        for p in excl:
            for n in p:
                if n not in names.values():
                    raise ValueError(f"self_collision_exclude names unknown body {n!r}")
        pairs = []
        ng = len(geoms)
        for a in range(ng):
            for b in range(a + 1, ng):
                ba, bb = int(self.geom_body[a]), int(self.geom_body[b])
                if ba == bb:
                    continue
                if (ba >= 0 and self._parent[ba] == bb) or (bb >= 0 and self._parent[bb] == ba):
                    continue
                if frozenset((names[ba], names[bb])) in excl:
                    continue
                pairs.append((a, b))
        self.self_collision_pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)

    # -- forward kinematics --------------------------------------------------------------------

    def _check_q(self, q) -> tuple[np.ndarray, tuple[int, ...]]:
        q = np.asarray(q, dtype=np.float64)
        if q.ndim == 0 or q.shape[-1] != self.nq:
            raise ValueError(f"q must have shape [..., {self.nq}] (joints {self.joint_names}); got {q.shape}")
        batch = q.shape[:-1]
        return q.reshape(-1, self.nq), batch

    def _transforms(self, q2: np.ndarray) -> np.ndarray:
        """World transforms [n, nbody, 4, 4] for joint positions q2 [n, nq]."""
        n = q2.shape[0]
        nb = len(self.body_names)
        disp = np.zeros((n, nb, 1, 1))
        disp[:, self._jbodies, 0, 0] = q2[:, self._jcols] - self._jref[self._jbodies]
        loc = np.cos(disp) * self._A0
        loc += np.sin(disp) * self._A1
        loc += self._A2
        if self._has_slide:
            loc += disp * self._B1
        T = np.empty((n, nb, 4, 4))
        for i, p in enumerate(self._parent_list):
            if p < 0:
                T[:, i] = loc[:, i]
            else:
                np.matmul(T[:, p], loc[:, i], out=T[:, i])
        return T

    def _body_frames(self, q2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        T = self._transforms(q2)
        return T[:, :, :3, 3], T[:, :, :3, :3]

    def fk(self, q) -> dict[str, Any]:
        """Forward kinematics for joint positions ``q`` [..., nq] (order = ``joint_names``).

        Returns a dict:
            ``"sites"``: {site name: world position [..., 3]},
            ``"site_rot"``: {site name: world rotation matrix [..., 3, 3]},
            ``"body_pos"``: body frame origins [..., nbody, 3] (order = ``body_names``),
            ``"body_rot"``: body frame rotations [..., nbody, 3, 3].
        """
        q2, batch = self._check_q(q)
        pos, rot = self._body_frames(q2)
        sites, site_rot = {}, {}
        for k, name in enumerate(self.site_names):
            b = self._site_body[k]
            if b < 0:
                sp = np.broadcast_to(self._site_pos[k], (q2.shape[0], 3)).copy()
                sr = np.broadcast_to(self._site_rot[k], (q2.shape[0], 3, 3)).copy()
            else:
                sp = pos[:, b] + rot[:, b] @ self._site_pos[k]
                sr = rot[:, b] @ self._site_rot[k]
            sites[name] = sp.reshape(*batch, 3)
            site_rot[name] = sr.reshape(*batch, 3, 3)
        nb = len(self.body_names)
        return {
            "sites": sites,
            "site_rot": site_rot,
            "body_pos": pos.reshape(*batch, nb, 3),
            "body_rot": rot.reshape(*batch, nb, 3, 3),
        }

    def site_pos(self, q, site: str) -> np.ndarray:
        """World position [..., 3] of one site."""
        if site not in self.site_names:
            raise KeyError(f"site {site!r} is not in the chain; chain sites: {self.site_names}")
        return self.fk(q)["sites"][site]

    # -- geometry ------------------------------------------------------------------------------

    def capsule_segments(self, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World-frame capsule axes of all robot geoms.

        Returns ``(p0, p1, radius)``: endpoints [..., ngeom, 3] each and radii [ngeom]. Spheres
        have ``p0 == p1``. Geom ``k`` belongs to body ``geom_body[k]`` (-1 = world).
        """
        q2, batch = self._check_q(q)
        pos, rot = self._body_frames(q2)
        p0, p1 = self._segments(pos, rot)
        ng = len(self.geom_type)
        return p0.reshape(*batch, ng, 3), p1.reshape(*batch, ng, 3), self.geom_radius.copy()

    def _segments(self, pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = pos.shape[0]
        ng = len(self.geom_type)
        center = np.empty((n, ng, 3))
        axis = np.empty((n, ng, 3))
        world = self.geom_body < 0
        if world.any():
            center[:, world] = self._geom_pos[world]
            axis[:, world] = self._geom_zaxis[world]
        moving = ~world
        if moving.any():
            b = self.geom_body[moving]
            R = rot[:, b]  # [n, g, 3, 3]
            center[:, moving] = pos[:, b] + np.einsum("ngij,gj->ngi", R, self._geom_pos[moving])
            axis[:, moving] = np.einsum("ngij,gj->ngi", R, self._geom_zaxis[moving])
        h = self._geom_half[None, :, None]
        return center - h * axis, center + h * axis

    def self_collision_distance(self, q, return_pairs: bool = False):
        """Minimum surface distance [...] between capsules of non-adjacent bodies (negative =
        penetration depth along the axes). With ``return_pairs`` also the per-pair distances
        [..., npairs] (pairs in ``self_collision_pairs``, geom indices). +inf if no pairs."""
        q2, batch = self._check_q(q)
        pairs = self.self_collision_pairs
        if len(pairs) == 0:
            d = np.full(batch, np.inf)
            return (d, np.zeros((*batch, 0))) if return_pairs else d
        pos, rot = self._body_frames(q2)
        p0, p1 = self._segments(pos, rot)
        a, b = pairs[:, 0], pairs[:, 1]
        dist = segment_segment_distance(p0[:, a], p1[:, a], p0[:, b], p1[:, b])
        dist = dist - self.geom_radius[a] - self.geom_radius[b]
        dmin = dist.min(axis=-1).reshape(batch)
        if return_pairs:
            return dmin, dist.reshape(*batch, len(pairs))
        return dmin

    def min_distance(self, q, obstacles: Sequence[Mapping[str, Any]], include_world_geoms: bool = False) -> np.ndarray:
        """Minimum surface distance [...] from the robot's capsules to world-fixed obstacles.

        Each obstacle is a dict, positions in the world frame:
            ``{"type": "sphere", "pos": [3], "radius": r}``
            ``{"type": "capsule", "from": [3], "to": [3], "radius": r}``
            ``{"type": "box", "pos": [3], "half_size": [3], "quat": [4] (optional, wxyz)}``
        Negative values mean penetration. Geoms fixed to the world (the robot's base) are left
        out unless ``include_world_geoms``. Returns +inf when there is nothing to compare.
        """
        q2, batch = self._check_q(q)
        pos, rot = self._body_frames(q2)
        p0, p1 = self._segments(pos, rot)
        sel = np.ones(len(self.geom_type), dtype=bool) if include_world_geoms else self.geom_body >= 0
        p0, p1, rad = p0[:, sel], p1[:, sel], self.geom_radius[sel]
        best = np.full(q2.shape[0], np.inf)
        if rad.size == 0:
            return best.reshape(batch)
        for ob in obstacles:
            kind = ob.get("type")
            if kind == "sphere":
                c = np.asarray(ob["pos"], dtype=np.float64)
                d = segment_segment_distance(p0, p1, c, c) - rad - float(ob["radius"])
            elif kind == "capsule":
                a = np.asarray(ob["from"], dtype=np.float64)
                b = np.asarray(ob["to"], dtype=np.float64)
                d = segment_segment_distance(p0, p1, a, b) - rad - float(ob["radius"])
            elif kind == "box":
                c = np.asarray(ob["pos"], dtype=np.float64)
                half = np.asarray(ob["half_size"], dtype=np.float64)
                Rb = quat_to_mat(ob.get("quat", (1.0, 0.0, 0.0, 0.0)))
                # into the box frame: x_local = R^T (x - c)
                l0 = (p0 - c) @ Rb
                l1 = (p1 - c) @ Rb
                d = segment_box_signed_distance(l0, l1, half) - rad
            else:
                raise ValueError(
                    f"obstacle type {kind!r} not supported; use 'sphere', 'capsule' or 'box' ({ob})"
                )
            best = np.minimum(best, d.min(axis=-1))
        return best.reshape(batch)
