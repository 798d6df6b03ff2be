"""Scenes, declared once: the table and obstacles around a robot, read by the twin, the safety
layer (the CBF filter) and the safety critic's training.

A scene is a tuple of primitive shapes in the robot base frame (the robot model's world frame),
each with a role (``table`` or ``obstacle``), plus an optional workspace box for the robot's ``ee``
frame. A robot names its default scene (``Robot.scene``); nodes take a ``scene`` parameter.

```
from robot_rl.scenes import get_scene, scene_for_robot, scene_geometry, add_scene_to_spec, check_scene
scene = scene_for_robot(robot)          # the robot's default scene (None if it declares none)
scene_geometry(scene)                   # plain dicts (kind, role, pos, size, ...) for the critic
add_scene_to_spec(spec, scene)          # adds colliding geoms to a robot's mujoco.MjSpec (the twin)
check_scene(scene, robot)               # ValueError (one line) if an obstacle overlaps the robot at home
```

Shapes (metres): ``box`` (``pos`` centre, ``size`` half-extents, axis-aligned), ``sphere``
(``pos``, ``size=(radius,)``), ``capsule`` (``pos`` one end, ``to`` the other end,
``size=(radius,)``). This module imports numpy and (lazily) mujoco only: it runs on the robot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Shape", "Scene", "get_scene", "scene_names", "register_scene", "scene_for_robot", "resolve_scene",
           "scene_geometry", "add_scene_to_spec", "check_scene", "SceneError", "SCENE_CONTYPE", "ROBOT_CONTYPE"]

KINDS = ("box", "sphere", "capsule")
ROLES = ("table", "obstacle")
# collision bits: scene geoms collide with the robot's links and fingers, the robot's link capsules
# only with the scene (self-contacts stay off in the simulated dynamics; distances measure them)
SCENE_CONTYPE, SCENE_CONAFFINITY = 1, 3
ROBOT_CONTYPE = 2


class SceneError(ValueError):
    pass


def _vec(name: str, v, n: int) -> tuple[float, ...]:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (n,) or not np.isfinite(a).all():
        raise SceneError(f"{name}: expected {n} finite numbers, got {v!r}")
    return tuple(float(x) for x in a)


@dataclass(frozen=True)
class Shape:
    """One primitive of a scene (module docstring for the fields)."""

    name: str
    kind: str
    pos: tuple[float, ...]
    size: tuple[float, ...]
    role: str = "obstacle"
    to: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SceneError(f"shape {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.role not in ROLES:
            raise SceneError(f"shape {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        object.__setattr__(self, "pos", _vec(f"shape {self.name!r} pos", self.pos, 3))
        object.__setattr__(self, "size", _vec(f"shape {self.name!r} size", self.size, 3 if self.kind == "box" else 1))
        if min(self.size) <= 0:
            raise SceneError(f"shape {self.name!r}: sizes must be > 0, got {self.size}")
        if self.kind == "capsule":
            if self.to is None:
                raise SceneError(f"capsule {self.name!r} needs `to` (its second end point)")
            object.__setattr__(self, "to", _vec(f"shape {self.name!r} to", self.to, 3))
        elif self.to is not None:
            raise SceneError(f"shape {self.name!r}: only a capsule has `to`")


@dataclass(frozen=True)
class Scene:
    """A named set of shapes in the robot base frame, and an optional ``ee`` workspace box."""

    name: str
    shapes: tuple[Shape, ...]
    workspace_lower: tuple[float, float, float] | None = None
    workspace_upper: tuple[float, float, float] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", tuple(self.shapes))
        names = [s.name for s in self.shapes]
        if len(set(names)) != len(names) or not all(names):
            raise SceneError(f"scene {self.name!r}: shape names must be distinct and non-empty, got {names}")
        if (self.workspace_lower is None) != (self.workspace_upper is None):
            raise SceneError(f"scene {self.name!r}: give both workspace_lower and workspace_upper, or neither")
        if self.workspace_lower is not None:
            lo = _vec(f"scene {self.name!r} workspace_lower", self.workspace_lower, 3)
            hi = _vec(f"scene {self.name!r} workspace_upper", self.workspace_upper, 3)
            if any(a >= b for a, b in zip(lo, hi)):
                raise SceneError(f"scene {self.name!r}: workspace_lower must be < workspace_upper on every axis")
            object.__setattr__(self, "workspace_lower", lo)
            object.__setattr__(self, "workspace_upper", hi)


# -- registry ------------------------------------------------------------------------------------
TABLETOP = Scene(
    name="tabletop",
    shapes=(
        # table top at z = 0.10 m in front of the robot (its near edge 0.30 m from the base axis)
        Shape("table", "box", pos=(0.70, 0.0, 0.05), size=(0.40, 0.70, 0.05), role="table"),
        # a post standing on the table, beside the reach targets
        Shape("post", "capsule", pos=(0.50, 0.50, 0.10), to=(0.50, 0.50, 0.60), size=(0.04,)),
        # a ball hanging on the other side
        Shape("ball", "sphere", pos=(0.45, -0.50, 0.45), size=(0.07,)),
    ),
    workspace_lower=(-0.9, -0.9, 0.0),
    workspace_upper=(0.9, 0.9, 1.3),
    description="a table in front of the arm, a post on its left and a ball on its right",
)

PEG_TABLE = Scene(
    name="peg-table",
    shapes=(
        # the insertion task's table (top at z = 0, sim/tasks/panda_peg_insert.py); the block with
        # the hole is the task's own object, which the peg must touch, so it is not an obstacle
        Shape("table", "box", pos=(0.55, 0.0, -0.05), size=(0.30, 0.40, 0.05), role="table"),
    ),
    workspace_lower=(-0.9, -0.9, -0.05),
    workspace_upper=(0.9, 0.9, 1.3),
    description="the peg-insertion table in front of the arm",
)

_SCENES: dict[str, Scene] = {s.name: s for s in (TABLETOP, PEG_TABLE)}


def register_scene(scene: Scene) -> None:
    """Add a scene from user code (a test, a user's own package)."""
    if not isinstance(scene, Scene):
        raise TypeError(f"register_scene needs a Scene, got {scene!r}")
    _SCENES[scene.name] = scene


def scene_names() -> list[str]:
    return sorted(_SCENES)


def get_scene(name: str) -> Scene:
    if name not in _SCENES:
        raise SceneError(f"unknown scene {name!r}; registered scenes: {', '.join(scene_names())} "
                         "(declare it in robot_rl/scenes.py or call robot_rl.scenes.register_scene)")
    return _SCENES[name]


def scene_for_robot(robot) -> Scene | None:
    """The robot's default scene (``Robot.scene``), or None when it declares none."""
    name = getattr(robot, "scene", "")
    return get_scene(name) if name else None


def resolve_scene(value, robot) -> Scene | None:
    """A scene from a parameter: a Scene, a name, "default" (the robot's), or ""/"none" (none)."""
    if isinstance(value, Scene):
        return value
    if value is None or value == "default":
        return scene_for_robot(robot)
    if value in ("", "none"):
        return None
    return get_scene(str(value))


def scene_geometry(scene: Scene) -> list[dict]:
    """The scene's shapes as plain dicts (``name, kind, role, pos, size[, to]``), e.g. for the
    safety critic's features and training labels."""
    out = []
    for s in scene.shapes:
        d = {"name": s.name, "kind": s.kind, "role": s.role, "pos": list(s.pos), "size": list(s.size)}
        if s.to is not None:
            d["to"] = list(s.to)
        out.append(d)
    return out


# -- MuJoCo --------------------------------------------------------------------------------------
def _capsule_frame(p0, p1):
    """(centre, quaternion w x y z, half-length) of a capsule from p0 to p1 (z axis along it)."""
    p0, p1 = np.asarray(p0), np.asarray(p1)
    d = p1 - p0
    half = 0.5 * float(np.linalg.norm(d))
    z = d / (2 * half) if half > 0 else np.array([0.0, 0.0, 1.0])
    axis = np.cross([0.0, 0.0, 1.0], z)
    s, c = float(np.linalg.norm(axis)), float(z[2])
    if s < 1e-12:
        quat = [1.0, 0.0, 0.0, 0.0] if c > 0 else [0.0, 1.0, 0.0, 0.0]
    else:
        ang = np.arctan2(s, c)
        axis = axis / s
        quat = [np.cos(ang / 2), *(np.sin(ang / 2) * axis)]
    return 0.5 * (p0 + p1), quat, half


def add_scene_to_spec(spec, scene: Scene, robot_contacts: bool = True, prefix: str = "scene/") -> list[str]:
    """Add the scene's shapes as world geoms of ``spec`` (a robot's ``mujoco.MjSpec``), named
    ``prefix + shape.name``; returns those names. With ``robot_contacts`` the contact flag is
    enabled and every link capsule that collides with nothing (``contype = conaffinity = 0``) is
    made to collide with the scene (``ROBOT_CONTYPE``), so a link really hits the table."""
    import mujoco

    names = []
    for s in scene.shapes:
        g = spec.worldbody.add_geom()
        g.name = prefix + s.name
        if s.kind == "box":
            g.type, g.pos, g.size = mujoco.mjtGeom.mjGEOM_BOX, list(s.pos), list(s.size)
        elif s.kind == "sphere":
            g.type, g.pos, g.size = mujoco.mjtGeom.mjGEOM_SPHERE, list(s.pos), [s.size[0], 0, 0]
        else:
            c, q, half = _capsule_frame(s.pos, s.to)
            g.type, g.pos, g.quat, g.size = mujoco.mjtGeom.mjGEOM_CAPSULE, list(c), list(q), [s.size[0], half, 0]
        g.contype, g.conaffinity = SCENE_CONTYPE, SCENE_CONAFFINITY
        g.rgba = [0.55, 0.4, 0.25, 1.0] if s.role == "table" else [0.2, 0.6, 0.3, 0.8]
        names.append(g.name)
    if robot_contacts:
        spec.option.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
        for g in spec.geoms:
            if g.name in names or g.type == mujoco.mjtGeom.mjGEOM_PLANE:
                continue
            if g.contype == 0 and g.conaffinity == 0 and g.type == mujoco.mjtGeom.mjGEOM_CAPSULE:
                g.contype = ROBOT_CONTYPE
    return names


def check_scene(scene: Scene, robot, clearance: float = 0.0, pose=None) -> None:
    """Raise :class:`SceneError` (one line naming the shape, the link and the fix) if a shape of
    ``scene`` comes closer than ``clearance`` to a collision geom of ``robot`` (a
    ``robot_rl.robots.Robot``) in its ``pose`` (default: the home pose), the base included."""
    import mujoco

    spec = robot.load_spec()
    names = add_scene_to_spec(spec, scene, robot_contacts=False)
    m = spec.compile()
    d = mujoco.MjData(m)
    q = np.asarray(robot.default_pose if pose is None else pose, dtype=np.float64)
    for j, v in zip(robot.joint_names, q):
        d.qpos[m.jnt_qposadr[m.joint(j).id]] = v
    mujoco.mj_kinematics(m, d)
    ids = [m.geom(n).id for n in names]
    kinds = {int(k) for k in (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_SPHERE,
                              mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CYLINDER)}
    robot_geoms = [g for g in range(m.ngeom) if g not in ids and int(m.geom_type[g]) in kinds]
    fromto = np.zeros(6)
    for sid, shape in zip(ids, scene.shapes):
        for g in robot_geoms:
            dist = mujoco.mj_geomDistance(m, d, sid, g, 1.0, fromto)
            if dist < clearance:
                body = m.body(m.geom_bodyid[g]).name or "base (world)"
                where = "base" if m.geom_bodyid[g] == 0 or m.body_parentid[m.geom_bodyid[g]] == 0 else "link"
                raise SceneError(
                    f"scene {scene.name!r}: {shape.role} {shape.name!r} overlaps the robot {robot.name!r}'s {where} "
                    f"{body!r} at its home pose (distance {dist:.3f} m < {clearance:.3f} m); move or shrink "
                    f"{shape.name!r} in the scene declaration")

