"""The simulator backend contract: everything that touches a simulator's model and data.

The batched env (`env.py`), domain randomization, tasks, export and the twin use a backend only
through this interface; one task file runs unchanged on every backend. A backend simulates
`num_envs` worlds of one model:

```
sim = make_backend("mujoco", model, robot, num_envs=1024, device="cpu", nthread=2, num_variants=256)
sim.qpos, sim.qvel                       # [N, nq], [N, nv] torch tensors on sim.device (snapshot)
sim.frame_pos("ee")                      # [N, 3] world position of a site, same snapshot
sim.step(ctrl, nsubsteps=2)              # ctrl [N, nu] torch, held for nsubsteps physics steps
sim.set_joint_state(ids, qpos, qvel)     # reset envs `ids` (LongTensor) to full qpos/qvel rows
sim.set_physics("body_mass", variants, values)   # per-variant physics parameters by name
```

* **Model.** Every backend is built from the task's compiled `mujoco.MjModel` (the robot's MJCF
  plus the task's scene) and the robot declaration; it reads names, indices and nominal values
  from the model and simulates the same joints, actuators and sites. A model feature a backend
  cannot simulate raises `UnsupportedFeature` naming it, at construction or when a physics
  parameter it cannot change is set to a non-nominal value; never a silent difference.
* **State.** `qpos`, `qvel`, `joint_effort` and `frame_pos(site)` are one consistent snapshot
  (positions, velocities and site positions of the same instant), updated by `step`,
  `set_joint_state` and `add_joint_velocity`. They are torch tensors on `device`; callers must
  treat them as read-only views that change in place (zero-copy where the simulator allows).
* **Control.** `step(ctrl, nsubsteps)` holds `ctrl` (one value per actuator, MuJoCo's actuator
  order and semantics: position targets for position actuators, normalized force for motors) for
  `nsubsteps` physics steps in every world.
* **Physics variants.** Domain randomization writes physical parameters per *variant*, a model
  instance that envs simulate. `num_variants` variants exist; `use_variants(env_ids, variants)`
  says which one each env simulates from its next step on. A backend with per-world parameters
  (MuJoCo Warp, PyBullet) has one variant per env (`exact_variants = True`, `use_variants` checks
  the identity); MuJoCo on CPU shares a bank of models (see `physics_bank.py`).
  `PHYSICS_FIELDS` names the parameters, with MuJoCo's field names and shapes
  (`body_mass [nbody]`, `actuator_gainprm [nu, 10]`...); `nominal(field)` returns the model's value.
* **Rendering.** `render(env_id, camera, height, width, sites)` returns an RGB image of one world,
  after moving visual-only sites (e.g. a target marker) to the given positions.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import ClassVar, Mapping

import numpy as np
import torch

PHYSICS_FIELDS = (
    "body_mass",
    "body_inertia",
    "body_ipos",
    "body_gravcomp",
    "geom_friction",
    "dof_frictionloss",
    "dof_damping",
    "dof_armature",
    "actuator_gainprm",
    "actuator_biasprm",
    "geom_size",
    "geom_rbound",
    "geom_aabb",
)
"""Physics parameters a backend can set per variant (MuJoCo `MjModel` field names and shapes). The
geometry fields (`geom_size` with the broad phase's `geom_rbound` and `geom_aabb`) are written only
for a task with toleranced geoms; a backend that cannot resize a collision shape raises
`UnsupportedFeature` for non-nominal values."""


class BackendUnavailable(ImportError, ValueError):
    """A backend whose simulator package is not installed (the message says how to install it)."""


class UnsupportedFeature(ValueError):
    """A model feature or parameter this backend cannot simulate (the message names it and what
    to do instead)."""


class SimBackend(ABC):
    name: ClassVar[str]
    exact_variants: ClassVar[bool] = True
    moves_com: ClassVar[bool] = True
    """Whether `set_physics("body_ipos", ...)` can move a link's centre of mass."""
    """True when every env has its own physics parameters (num_variants == num_envs)."""

    def __init__(self, model, robot, num_envs: int, device: str | torch.device = "cpu"):
        self.model = model
        """The task's compiled `mujoco.MjModel`: names, indices and nominal values (read-only)."""
        self.robot = robot
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.num_variants = self.num_envs

    # -- description (from the model; the same for every backend) ---------------------------------
    @property
    def nq(self) -> int:
        return int(self.model.nq)

    @property
    def nv(self) -> int:
        return int(self.model.nv)

    @property
    def nu(self) -> int:
        return int(self.model.nu)

    @property
    def physics_dt(self) -> float:
        return float(self.model.opt.timestep)

    def joint_qpos_index(self, names) -> list[int]:
        return [int(self.model.jnt_qposadr[self.model.joint(n).id]) for n in names]

    def joint_dof_index(self, names) -> list[int]:
        return [int(self.model.jnt_dofadr[self.model.joint(n).id]) for n in names]

    def joint_actuator_index(self, names) -> list[int]:
        """The actuator driving each named joint (raises if a joint has none)."""
        m = self.model
        out = []
        for n in names:
            jid = m.joint(n).id
            hits = np.flatnonzero((m.actuator_trntype == 0) & (m.actuator_trnid[:, 0] == jid))
            if not len(hits):
                raise ValueError(f"joint {n!r} has no actuator in the model")
            out.append(int(hits[0]))
        return out

    def nominal(self, field: str) -> np.ndarray:
        if field not in PHYSICS_FIELDS:
            raise ValueError(f"unknown physics field {field!r}; known: {', '.join(PHYSICS_FIELDS)}")
        return np.array(getattr(self.model, field))

    # -- state -------------------------------------------------------------------------------------
    qpos: torch.Tensor
    qvel: torch.Tensor
    diverged: torch.Tensor | None = None
    """After `step`: bool [N] marking worlds whose physics became invalid during the step and that
    the simulator reset on its own (MuJoCo does on NaN/huge accelerations), or None when none did.
    The env also checks the state for NaN/Inf itself."""
    joint_effort: torch.Tensor
    """[N, len(robot.joint_names)]: the actuator torque/force on each of the robot's joints."""

    _frames: dict[str, slice]
    _sensors: torch.Tensor

    def frame_pos(self, site: str) -> torch.Tensor:
        """[N, 3] world position of `site` in the current snapshot. By default read from the
        `frame/<site>` sensors (`self._frames`: site -> columns of `self._sensors`, the snapshot's
        sensor readings); a backend without MuJoCo sensors overrides it."""
        sl = self._frames.get(site)
        if sl is None:
            raise UnsupportedFeature(f"site {site!r} has no frame sensor; declare it in the robot's frames "
                                     "or the task's `frames` so that the model gets a `frame/<site>` sensor")
        return self._sensors[:, sl]

    def frame_jacobian(self, site: str) -> torch.Tensor:
        """[N, 3, nv] positional Jacobian of `site` in the current snapshot (for end-effector
        actions); backends that cannot compute it raise `UnsupportedFeature`."""
        raise UnsupportedFeature(f"the {self.name} backend does not compute site Jacobians (needed by an "
                                 "end-effector action term); use --env.backend mujoco")

    # -- control and resets --------------------------------------------------------------------------
    @abstractmethod
    def step(self, ctrl: torch.Tensor, nsubsteps: int) -> None:
        """Hold `ctrl` [N, nu] for `nsubsteps` physics steps in every world."""

    @abstractmethod
    def set_joint_state(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Reset worlds `env_ids` to `qpos` [k, nq], `qvel` [k, nv] (actuator state cleared) and
        refresh their snapshot."""

    @abstractmethod
    def add_joint_velocity(self, env_ids: torch.Tensor, dqvel: torch.Tensor) -> None:
        """Add `dqvel` [k, nv] to the velocities of worlds `env_ids` (a push)."""

    # -- physics parameters (domain randomization) ---------------------------------------------------
    @abstractmethod
    def set_physics(self, field: str, variant_ids: np.ndarray, values: np.ndarray) -> None:
        """Write `values[k]` (the field's per-model shape) into variant `variant_ids[k]`."""

    def use_variants(self, env_ids: torch.Tensor, variant_ids: torch.Tensor) -> None:
        """Env `env_ids[k]` simulates variant `variant_ids[k]` from its next step on."""
        if self.exact_variants and not torch.equal(env_ids, variant_ids):
            raise ValueError(f"the {self.name} backend has one physics variant per env")

    # -- rendering -----------------------------------------------------------------------------------
    def render(self, env_id: int, camera: str, height: int, width: int,
               sites: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """RGB image [height, width, 3] of world `env_id` from MuJoCo's renderer; visual-only
        `sites` are moved to the given positions first."""
        import mujoco

        m, d = self.render_data(env_id)
        for name, pos in (sites or {}).items():
            m.site(name).pos[:] = np.asarray(pos, dtype=np.float64)
        mujoco.mj_forward(m, d)
        key = (height, width)
        if getattr(self, "_renderer_key", None) != key:
            self._renderer = mujoco.Renderer(m, height, width)
            self._renderer_key = key
        self._renderer.update_scene(d, camera=camera)
        return self._renderer.render().copy()

    def render_data(self, env_id: int):
        """(MjModel, MjData) of world `env_id` for MuJoCo's renderer (a copy of the model)."""
        raise UnsupportedFeature(f"the {self.name} backend cannot render")

    def close(self) -> None:
        """Release simulator resources."""


# -- registry --------------------------------------------------------------------------------------
_BUILTIN = {
    "mujoco": "robot_rl.sim.mujoco_backend:MujocoBackend",
    "warp": "robot_rl.sim.warp_backend:WarpBackend",
    "pybullet": "robot_rl.sim.pybullet_backend:PybulletBackend",
}
BACKENDS = tuple(_BUILTIN)


def backend_class(name: str) -> type[SimBackend]:
    if name not in _BUILTIN:
        raise ValueError(f"unknown backend {name!r}; available backends: {', '.join(BACKENDS)}")
    module, cls = _BUILTIN[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"the {name} backend needs {e.name or 'a package that is not installed'}: "
                          f"{_INSTALL_HINT.get(name, 'install it')} ({e})") from None
    return getattr(mod, cls)


_INSTALL_HINT = {
    "warp": "pip install 'robot-rl[warp]' (mujoco-warp)",
    "pybullet": "pip install pybullet",
}


def make_backend(name: str, model, robot, num_envs: int, device: str = "cpu", nthread: int | None = None,
                 num_variants: int = 0) -> SimBackend:
    """A backend by name; `num_variants` is the physics bank size the env asks for (backends with
    per-world parameters ignore it and use one variant per env)."""
    return backend_class(name)(model, robot, num_envs, device=device, nthread=nthread, num_variants=num_variants)
