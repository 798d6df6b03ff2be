"""The pybullet world. One pybullet client in DIRECT mode holds `num_envs` copies of the robot
(fixed base, no self-collision), `SPACING` apart on a grid with collisions filtered out, so they
never interact; a second client, never stepped, holds one *shadow* copy per env for the gravity
compensation (`actuators.Actuators.gravcomp`). The copies carry no visual geometry (loading the
meshes costs ~40 ms per copy; rendering goes through MuJoCo) and collision geometry only where the
robot can touch a floor (`contacts`), which then becomes a pybullet plane."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import mujoco
import numpy as np
import pybullet as pb

from robot_rl.sim.backend import UnsupportedFeature
from robot_rl.sim.pybullet.contacts import Plane
from robot_rl.sim.pybullet.mjmodel import body_id, moves

SPACING = 4.0
"""Metres between two robot copies (collisions are filtered out as well)."""


class World:
    """The two pybullet clients and the robot copies in them: `bodies[i]` simulates env `i` (its
    base at `offsets[i]` plus the model's base pose), `shadows[i]` is its shadow. The URDF's root
    link is MuJoCo's world (fused by MuJoCo's URDF importer) or the model body `root_body`
    (fixed: a floating base is an `UnsupportedFeature`)."""

    def __init__(self, model: mujoco.MjModel, urdf: str, num_envs: int, plane: Plane | None):
        self.tmp = Path(tempfile.mkdtemp(prefix="robot_rl_pybullet_"))
        self.client = self.shadow_client = -1
        try:
            self._load(model, urdf, num_envs, plane)
        except BaseException:
            self.close()
            raise

    def _load(self, m: mujoco.MjModel, text: str, n: int, plane: Plane | None) -> None:
        urdf = self.tmp / "robot.urdf"
        urdf.write_text(text)
        self.client = pb.connect(pb.DIRECT)
        self.shadow_client = pb.connect(pb.DIRECT)
        c, s = self.client, self.shadow_client
        gravity = [0.0, 0.0, 0.0] if m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_GRAVITY else list(m.opt.gravity)
        for cid in (c, s):
            pb.setGravity(*gravity, physicsClientId=cid)
        self.gravity = np.asarray(gravity)

        # the base: the URDF's root link is MuJoCo's world (fused by the URDF importer) or a body
        flags = pb.URDF_USE_INERTIA_FROM_FILE
        probe = pb.loadURDF(str(urdf), useFixedBase=True, flags=flags, physicsClientId=s)
        self.root_name = pb.getBodyInfo(probe, physicsClientId=s)[0].decode()
        pb.removeBody(probe, physicsClientId=s)
        root_body = body_id(m, self.root_name)
        if root_body is None or root_body == 0:
            root_body = 0
            base_pos, base_quat = np.zeros(3), np.array([1.0, 0, 0, 0])
        else:
            if moves(m, root_body):
                raise UnsupportedFeature(f"the URDF's root link {self.root_name!r} moves in the model (a floating "
                                         "base); the pybullet backend loads robots with a fixed base")
            d = mujoco.MjData(m)
            mujoco.mj_kinematics(m, d)
            base_pos, base_quat = d.xpos[root_body].copy(), d.xquat[root_body].copy()
        self.root_body = root_body
        cols = max(1, math.ceil(math.sqrt(n)))
        self.offsets = np.array([[SPACING * (i % cols), SPACING * (i // cols), 0.0] for i in range(n)])
        orn = [base_quat[1], base_quat[2], base_quat[3], base_quat[0]]
        self.bodies = [pb.loadURDF(str(urdf), (self.offsets[i] + base_pos).tolist(), orn, useFixedBase=True,
                                   flags=flags, physicsClientId=c) for i in range(n)]
        self.shadows = [pb.loadURDF(str(urdf), base_pos.tolist(), orn, useFixedBase=True, flags=flags,
                                    physicsClientId=s) for _ in range(n)]

        # no damping of pybullet's own (the backend adds MuJoCo's), no collisions between copies
        njoint = pb.getNumJoints(self.bodies[0], physicsClientId=c)
        for cid, bodies in ((c, self.bodies), (s, self.shadows)):
            for b in bodies:
                for link in range(-1, njoint):
                    pb.changeDynamics(b, link, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
                                      physicsClientId=cid)
                    pb.setCollisionFilterGroupMask(b, link, 0, 0, physicsClientId=cid)
        if plane is not None:  # the robot's links (group 1) collide with the plane (group 2) only
            shape = pb.createCollisionShape(pb.GEOM_PLANE, planeNormal=plane.normal.tolist(), physicsClientId=c)
            floor = pb.createMultiBody(0, shape, basePosition=plane.pos.tolist(), physicsClientId=c)
            pb.changeDynamics(floor, -1, lateralFriction=float(m.geom_friction[plane.geom, 0]), physicsClientId=c)
            pb.setCollisionFilterGroupMask(floor, -1, 2, 1, physicsClientId=c)
            for b in self.bodies:
                for link in range(-1, njoint):
                    pb.setCollisionFilterGroupMask(b, link, 1, 2, physicsClientId=c)

    def set_time_step(self, h: float) -> None:
        for cid in (self.client, self.shadow_client):
            pb.setTimeStep(h, physicsClientId=cid)

    def close(self) -> None:
        for attr in ("client", "shadow_client"):
            cid = getattr(self, attr)
            if cid is not None and cid >= 0:
                try:
                    pb.disconnect(physicsClientId=cid)
                except pb.error:
                    pass
                setattr(self, attr, -1)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
