"""pybullet's internal step.

MuJoCo steps the PD law implicitly (implicitfast) at `model.opt.timestep`; pybullet integrates
explicit torques (semi-implicit Euler), stable only while `h * lambda < 2` for
`lambda = max eig(M^-1 Kd)` (measured: damping-only iiwa at `h * lambda` = 1.83 decays, 2.29
oscillates at the torque limits). pybullet therefore steps at `physics_dt / substeps`, the torque
(and the gravity compensation) recomputed every internal step, so that `step(ctrl, n)` advances
exactly `n * model.opt.timestep` seconds. `substeps="auto"` takes `lambda` and
`omega = sqrt(max eig(M^-1 Kp))` with pybullet's own mass matrix (the armature on the links,
`actuators`), the largest over the default pose and `POSE_SAMPLES` poses within 1 rad of it, and
asks `h * max(lambda, omega) <= 1` (`SUBSTEP_MARGIN`), with `h <= 2 ms` (`MAX_INTERNAL_DT`) for
accuracy: iiwa 11 substeps (0.91 ms), Panda 32 (0.31 ms: kd 450 on links of 0.1 kg m^2),
cartpole 5 (2 ms). At 11 substeps the iiwa tracks a random walk of joint targets within 0.008 rad
of MuJoCo (mean 0.001); 5 substeps give the same agreement, 4 or fewer diverge. The internal step
only ever shrinks: a DR variant whose `h * lambda` exceeds 1.5 (`STABILITY_LIMIT`) refines it for
every env. A world that still blows up (pybullet clamps joint speeds at 100 instead of producing
NaN) is reported in `diverged`.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from robot_rl.sim.pybullet.actuators import Actuators
from robot_rl.sim.pybullet.mapping import RobotMap
from robot_rl.sim.pybullet.mjmodel import HINGE

SUBSTEP_MARGIN = 1.0
"""`h * lambda` and `h * omega` bound for the internal step chosen from the nominal model
(semi-implicit Euler on explicit damping is stable for `h * lambda < 2`)."""
STABILITY_LIMIT = 1.5
"""A variant (DR) whose `h * lambda` exceeds this refines the internal step (measured on the iiwa,
damping only: 1.83 still decays, 2.29 oscillates at the torque limits)."""
MAX_INTERNAL_DT = 0.002
"""The internal step is at most this (s), for accuracy (pybullet's own default is 1/240 s)."""
MAX_SUBSTEPS = 100
POSE_SAMPLES = 24
"""Random poses (besides the default one) where the stiffest mode is looked for."""
STEP_FIELDS = ("actuator_gainprm", "actuator_biasprm", "dof_damping", "dof_armature")
"""The physics fields whose per-env values are checked against the internal step."""


class StepRule:
    """The number of internal steps per physics step for the robot's PD + damping law."""

    def __init__(self, model: mujoco.MjModel, robot, qidx: list[int], rmap: RobotMap, act: Actuators):
        self._model, self._robot, self._qidx = model, robot, qidx
        self._map, self._act = rmap, act
        self._dt = float(model.opt.timestep)
        self._mass0 = self._rotor = None  # `_mass_model`, on first use

    def _poses(self) -> np.ndarray:
        """[P, nq] configurations where the stiffest mode is looked for: the default pose and
        `POSE_SAMPLES` poses within +-1 rad (or m) of it, inside the joint limits (fixed seed);
        `qidx` are the qpos addresses of the robot's joints."""
        m = self._model
        rng = np.random.default_rng(0)
        lim = self._robot.position_limits(m)
        base = np.asarray(self._robot.default_pose)
        out = np.tile(m.qpos0, (POSE_SAMPLES + 1, 1))
        out[:, self._qidx] = base
        out[1:, self._qidx] = np.clip(base + rng.uniform(-1.0, 1.0, (POSE_SAMPLES, len(self._qidx))),
                                      lim[:, 0], lim[:, 1])
        return out

    def _mass_model(self) -> None:
        """Per pose: MuJoCo's joint-space mass matrix without armature (`_mass0` [P, n, n]) and
        what a unit armature on each hinge adds in pybullet, where the rotor inertia sits on the
        child link (`_rotor` [P, n, n, n]: J_w^T axis axis^T J_w, reaching every joint whose axis
        is not perpendicular to it, where MuJoCo adds `a` to the diagonal only)."""
        m = self._model
        d = mujoco.MjData(m)
        idx = self._map.mj_dof_a
        poses = self._poses()
        n = self._map.ndof
        self._mass0 = np.zeros((len(poses), n, n))
        self._rotor = np.zeros((len(poses), n, n, n))
        full = np.zeros((m.nv, m.nv))
        jacr = np.zeros((3, m.nv))
        for p, q in enumerate(poses):
            d.qpos[:] = q
            mujoco.mj_forward(m, d)
            mujoco.mj_fullM(m, d, full)
            self._mass0[p] = full[np.ix_(idx, idx)] - np.diag(m.dof_armature[idx])
            for k in range(n):
                if self._map.dof_type[k] != HINGE:
                    continue
                j = int(m.dof_jntid[idx[k]])
                mujoco.mj_jacBody(m, d, None, jacr, int(m.jnt_bodyid[j]))
                row = d.xaxis[j] @ jacr[:, idx]
                self._rotor[p, k] = np.outer(row, row)

    def mode_rates(self, bias: np.ndarray, damping: np.ndarray, armature: np.ndarray) -> tuple[float, float]:
        """(lambda, omega): the fastest damping rate `max eig(M^-1 Kd)` and natural frequency
        `sqrt(max eig(M^-1 Kp))` of the joint-space PD + damping law (`actuator_biasprm` [nu, 10],
        `dof_damping` and `dof_armature` [nv]), with pybullet's mass matrix (nominal masses, the
        given armature on the links), the largest over `_poses()`."""
        if not self._map.ndof:
            return 0.0, 0.0
        if self._mass0 is None:
            self._mass_model()
        idx, act = self._map.mj_dof_a, self._act
        mass = self._mass0 + np.einsum("k,pkij->pij", np.asarray(armature)[idx], self._rotor)
        kd = np.diag(np.asarray(damping)[idx])
        kp = np.diag(act.stiffness)
        for a in range(self._model.nu):
            if act.bias_affine[a]:
                arm = np.outer(act.moment[a], act.moment[a])
                kp = kp + arm * max(0.0, -bias[a, 1])
                kd = kd + arm * max(0.0, -bias[a, 2])
        lam = float(np.abs(np.linalg.eigvals(np.linalg.solve(mass, np.broadcast_to(kd, mass.shape)))).max())
        w2 = float(np.abs(np.linalg.eigvals(np.linalg.solve(mass, np.broadcast_to(kp, mass.shape)))).max())
        return lam, math.sqrt(w2)

    def needed(self, params: dict[str, np.ndarray], ids, bound: float) -> int:
        """Substeps for which `h * max(lambda, omega) <= bound` in every env of `ids` (per-env
        `params`)."""
        need = 1
        seen = set()
        for i in ids:
            key = b"".join(params[f][i].tobytes() for f in STEP_FIELDS)
            if key in seen:
                continue
            seen.add(key)
            lam, omega = self.mode_rates(params["actuator_biasprm"][i], params["dof_damping"][i],
                                         params["dof_armature"][i])
            need = max(need, math.ceil(self._dt * max(lam, omega) / bound - 1e-9))
        return min(need, MAX_SUBSTEPS)

    def initial(self, substeps: int | str, params: dict[str, np.ndarray]) -> int:
        """The substeps to start with: `substeps`, or for "auto" those of env 0's (nominal)
        `params` within `SUBSTEP_MARGIN` and `MAX_INTERNAL_DT`."""
        if substeps == "auto":
            return max(self.needed(params, [0], SUBSTEP_MARGIN), math.ceil(self._dt / MAX_INTERNAL_DT - 1e-9))
        n = int(substeps)
        if n < 1:
            raise ValueError(f"substeps must be >= 1 or 'auto', got {substeps!r}")
        return n
