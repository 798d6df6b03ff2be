"""MuJoCo Warp: all `num_envs` worlds of one model stepped as one batch on a GPU (or Warp's CPU device).

One `mujoco_warp` model and one `Data` with `nworld = num_envs` hold every world. Each env has its
own physics parameters (`exact_variants = True`): domain randomization writes rows of *batched*
model fields. A field starts shared by all worlds (leading dimension 1, as `put_model` makes it)
and is expanded to a leading `nworld` dimension the first time `set_physics` writes it; Warp's
kernels read row `worldid % field.shape[0]`, so the expansion needs no other change.

Constants MuJoCo derives from masses and inertias (`mj_setConst`; `mujoco_warp.set_const`, per
world, on batched outputs) are recomputed before the next `step` after DR wrote masses or inertias
(deferred, so that the several fields one reset writes cost one recomputation):

* `derived_constants="fixed"` (default): `body_subtreemass` (set_const group FIXED, two kernel
  launches) after `body_mass` changes.
* `derived_constants="all"`: also the qpos0 inertia quantities (group INERT0: `dof_invweight0`,
  `body_invweight0`, `tendon_invweight0`, `actuator_acc0`) after `body_mass`, `body_inertia`,
  `body_ipos` or `dof_armature` change. These only scale constraint regularization (and muscle
  gains), but INERT0 costs a few hundred kernel launches over all worlds per recomputation: with
  resets at training's steady-state rate it took 30% of an env step (iiwa-reach, 512 worlds, Warp
  CPU device), so it is opt-in. The CPU backend (`mujoco_backend.py`) writes model fields without
  `mj_setConst`, i.e. it keeps the nominal values of all of these: "fixed" matches it in everything
  that affects the dynamics (the subtree mass only moves the reference point of com-based
  quantities; measured agreement under DR is unchanged).

**Snapshot.** As on the CPU backend (`mujoco_backend.py`), the snapshot is the state *before the
last physics substep* together with the sensor readings of that same state: MuJoCo (and MuJoCo
Warp) computes sensors in the forward pass at the start of a step, before integrating, and the RK4
integrator skips sensors in its later stages. `step` copies `qpos`/`qvel` into snapshot buffers just
before the last substep and `sensordata` into its buffer just after it; `frame_pos(site)` reads the
`frame/<site>` framepos sensors of that buffer, `joint_effort` the `effort/<joint>` sensors (or, when
the model has none, the actuator forces `qfrc_actuator` of the robot's dofs from the same forward
pass, captured only once `joint_effort` is first used). Both backends therefore expose the same
instant: agreement tests compare like with like. All snapshot tensors are zero-copy torch views of
Warp arrays on the backend's device (`wp.to_torch`), updated in place by device-side copies.
Resets and pushes write the live state and the snapshot rows of the touched worlds only; the
resetting worlds' sensors are recomputed (kinematics + position sensors when every sensor is a
frame/joint position sensor, a full forward pass otherwise).

**Control.** `step` copies `ctrl` into `Data.ctrl` with a torch op on its zero-copy view (no host
round trip), then runs `mujoco_warp.step` `nsubsteps` times. On CUDA the substeps and snapshot copies
are captured once per `nsubsteps` into a CUDA graph and replayed (re-captured after a model field is
expanded); Warp runs on its own stream, ordered against torch's current stream with stream waits.
The CUDA path is written to Warp's documented API but not tested here (no GPU on the dev machine).
"""

from __future__ import annotations

import copy
import dataclasses

import mujoco
import mujoco_warp as mjw
import numpy as np
import torch
import warp as wp

from robot_rl.sim.backend import PHYSICS_FIELDS, SimBackend, UnsupportedFeature
from robot_rl.sim.model import frame_sensors

_HINT = "use --env.backend mujoco"

# derived model fields `set_const` writes per world (they must be batched like the fields they follow)
_CONST_FIXED = ("body_subtreemass",)
_CONST_INERT0 = ("dof_invweight0", "body_invweight0", "tendon_invweight0", "actuator_acc0")
# which `set_const` groups a physics field invalidates
_CONST_GROUPS = {
    "all": {
        "body_mass": mjw.SetConstGroup.FIXED | mjw.SetConstGroup.INERT0,
        "body_inertia": mjw.SetConstGroup.INERT0,
        "body_ipos": mjw.SetConstGroup.INERT0,
        "dof_armature": mjw.SetConstGroup.INERT0,
    },
    "fixed": {"body_mass": mjw.SetConstGroup.FIXED},
}
# sensors whose value needs kinematics only (a reset refreshes them without a full forward pass)
_KINEMATIC_SENSORS = {
    int(mujoco.mjtSensor.mjSENS_FRAMEPOS), int(mujoco.mjtSensor.mjSENS_FRAMEQUAT),
    int(mujoco.mjtSensor.mjSENS_FRAMEXAXIS), int(mujoco.mjtSensor.mjSENS_FRAMEYAXIS),
    int(mujoco.mjtSensor.mjSENS_FRAMEZAXIS), int(mujoco.mjtSensor.mjSENS_JOINTPOS),
}


@wp.kernel
def _gather_columns(src: wp.array2d(dtype=wp.float32), cols: wp.array(dtype=wp.int32),
                    dst: wp.array2d(dtype=wp.float32)):
    w, j = wp.tid()
    dst[w, j] = src[w, cols[j]]


def _batchable_fields() -> set[str]:
    """Model fields whose spec has a leading world dimension in this mujoco_warp version."""
    out = set()
    for f in dataclasses.fields(mjw.Model):
        shape = getattr(f.type, "shape", None)
        if shape and shape[0] == "*":
            out.add(f.name)
    return out


def _warp_device(device: torch.device) -> tuple[str, torch.device]:
    if device.type == "cpu":
        return "cpu", torch.device("cpu")
    if device.type == "cuda":
        if not wp.is_cuda_available():
            raise ValueError(f"the warp backend cannot use {device}: Warp finds no CUDA device on this machine "
                             "(use --env.device cpu for Warp's CPU device)")
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{idx}", torch.device("cuda", idx)
    raise UnsupportedFeature(f"the warp backend runs on cpu or cuda[:index], not {device}")


def check_structural_change(model: mujoco.MjModel, field: str, values: np.ndarray) -> None:
    """Raise `UnsupportedFeature` when new values of `field` would change what `put_model` derived
    once from the nominal model (a code path chosen at load time), so that MuJoCo Warp would
    silently simulate something else than CPU MuJoCo. `values` has shape [k, *field shape]."""
    m = model
    if field in ("actuator_gainprm", "actuator_biasprm") and m.opt.integrator == mujoco.mjtIntegrator.mjINT_DISCRETE:
        # `has_efm_actuator` (an affine gain/bias with length/velocity terms, or a muscle/dc-motor
        # actuator) selects the discrete integrator's effective-metric solve when the model is loaded
        gain_affine = np.asarray(m.actuator_gaintype) == int(mujoco.mjtGain.mjGAIN_AFFINE)
        bias_affine = np.asarray(m.actuator_biastype) == int(mujoco.mjtBias.mjBIAS_AFFINE)
        other = ~gain_affine & (np.asarray(m.actuator_gaintype) != int(mujoco.mjtGain.mjGAIN_FIXED)) | (
            ~bias_affine & (np.asarray(m.actuator_biastype) != int(mujoco.mjtBias.mjBIAS_NONE)))
        was = bool(np.any(other) or np.any(gain_affine & np.any(m.actuator_gainprm[:, 1:3] != 0, axis=-1))
                   or np.any(bias_affine & np.any(m.actuator_biasprm[:, 1:3] != 0, axis=-1)))
        affine = gain_affine if field == "actuator_gainprm" else bias_affine
        if not was and np.any(affine[None] & np.any(values[..., 1:3] != 0, axis=-1)):
            raise UnsupportedFeature(
                f"{field}: making the length/velocity terms of an affine actuator non-zero is not supported by "
                "the warp backend with the discrete integrator (mujoco_warp picks that code path from the "
                f"nominal values when it loads the model); {_HINT}")
    if field == "dof_frictionloss" and _is_sparse(m):
        nominal = np.asarray(m.dof_frictionloss)
        if np.any((nominal[None] == 0) & (values != 0)):
            raise UnsupportedFeature(
                "dof_frictionloss: turning on friction loss on a dof whose nominal friction loss is zero is not "
                "supported by the warp backend for a sparse model (mujoco_warp sizes the constraint Jacobian "
                f"when it loads the model); give the dof a non-zero nominal frictionloss or {_HINT}")


def _is_sparse(m: mujoco.MjModel) -> bool:
    if m.opt.jacobian == mujoco.mjtJacobian.mjJAC_AUTO:
        return m.nv > 32
    return bool(mujoco.mj_isSparse(m))


class WarpBackend(SimBackend):
    """`num_envs` worlds of one MuJoCo model in one MuJoCo Warp batch, one physics variant per env."""

    name = "warp"
    exact_variants = True

    def __init__(self, model: mujoco.MjModel, robot, num_envs: int, device="cpu", nthread: int | None = None,
                 num_variants: int = 0, graph: bool | None = None, nconmax: int | None = None,
                 njmax: int | None = None, derived_constants: str = "fixed"):
        super().__init__(model, robot, num_envs, device)
        if derived_constants not in _CONST_GROUPS:
            raise ValueError(f"derived_constants must be one of {list(_CONST_GROUPS)}, got {derived_constants!r}")
        self._const_groups = _CONST_GROUPS[derived_constants]
        self._wdev, self.device = _warp_device(self.device)
        self._cuda = self.device.type == "cuda"
        self.num_variants = self.num_envs  # per-world parameters: `num_variants` (a bank size) is ignored
        self.use_graph = self._cuda if graph is None else bool(graph and self._cuda)
        self._stream = wp.get_stream(self._wdev) if self._cuda else None
        try:
            with wp.ScopedDevice(self._wdev):
                self.m = mjw.put_model(model)
                self.d = mjw.make_data(model, nworld=self.num_envs, nconmax=nconmax, njmax=njmax)
        except (NotImplementedError, ValueError) as e:
            raise UnsupportedFeature(f"the warp backend (mujoco_warp {mjw.__version__}) cannot simulate this "
                                     f"model: {e}; {_HINT}") from None
        d = self.d
        # zero-copy torch views of the live state
        self._qpos_d = wp.to_torch(d.qpos)
        self._qvel_d = wp.to_torch(d.qvel)
        self._ctrl_d = wp.to_torch(d.ctrl) if model.nu else None
        self._time_d = wp.to_torch(d.time)
        # cleared by a reset (as mujoco_warp.reset_data does): solver warm start, applied forces, and
        # the controls, so that the fresh snapshot's actuator forces are those of ctrl = 0 as on the
        # CPU backend (the next `step` writes the controls again)
        self._zero_on_reset = [wp.to_torch(d.qacc_warmstart), wp.to_torch(d.qacc), wp.to_torch(d.qfrc_applied)]
        if model.nu:
            self._zero_on_reset.append(self._ctrl_d)
        if model.na:
            self._zero_on_reset += [wp.to_torch(d.act), wp.to_torch(d.act_dot)]
        # the snapshot: state before the last substep and the sensors of that state
        self._snap_qpos = wp.zeros_like(d.qpos)
        self._snap_qvel = wp.zeros_like(d.qvel)
        self._snap_sensor = wp.zeros_like(d.sensordata) if model.nsensordata else None
        self.qpos = wp.to_torch(self._snap_qpos)
        self.qvel = wp.to_torch(self._snap_qvel)
        self._sensors = wp.to_torch(self._snap_sensor) if self._snap_sensor is not None else None
        self._sensor_d = wp.to_torch(d.sensordata) if model.nsensordata else None
        self._frames = frame_sensors(model)
        self._kinematic_sensors = all(
            int(t) in _KINEMATIC_SENSORS and int(r) == int(mujoco.mjtObj.mjOBJ_UNKNOWN)
            for t, r in zip(model.sensor_type, model.sensor_reftype))
        # joint efforts (lazy): sensor columns of the snapshot, or qfrc_actuator of the robot's dofs
        self._effort = None
        self._effort_src = None  # (warp source array, warp int32 columns) gathered after each step
        self._effort_buf = None
        # batched model fields: name -> torch view [N, ...] of the per-world Warp array
        self._batchable = _batchable_fields()
        self._fields: dict[str, torch.Tensor] = {}
        self._pending_const = mjw.SetConstGroup.NONE
        self._graphs: dict[int, object] = {}
        self._eager_done: set[int] = set()

        q0 = torch.as_tensor(np.asarray(model.qpos0), dtype=torch.float32, device=self.device)
        self._qpos_d[:] = q0
        self._qvel_d.zero_()
        self._run(lambda: mjw.forward(self.m, self.d))
        self._snapshot_rows(None)

    # -- device and stream plumbing ---------------------------------------------------------------
    def _run(self, fn) -> None:
        """Run Warp work `fn` on the backend's device, ordered after and before torch's current stream."""
        if not self._cuda:
            with wp.ScopedDevice(self._wdev):
                fn()
            return
        torch_stream = wp.stream_from_torch(torch.cuda.current_stream(self.device))
        self._stream.wait_stream(torch_stream)
        with wp.ScopedStream(self._stream):
            fn()
        torch_stream.wait_stream(self._stream)

    # -- state -------------------------------------------------------------------------------------
    @property
    def joint_effort(self) -> torch.Tensor:
        if self._effort is None:
            self._effort = self._make_effort()
        return self._effort

    def _make_effort(self) -> torch.Tensor:
        m, joints = self.model, self.robot.joint_names
        adr = []
        for j in joints:
            try:
                adr.append(int(m.sensor_adr[m.sensor(f"effort/{j}").id]))
            except KeyError:
                adr = None
                break
        if adr is not None:  # `effort/<joint>` sensors: columns of the sensor snapshot
            if adr == list(range(adr[0], adr[0] + len(adr))):
                return self._sensors[:, adr[0]: adr[0] + len(adr)]
            src = self._snap_sensor
            cols = adr
        else:  # actuator forces of the robot's dofs, from the forward pass of the snapshot state
            if m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4:
                raise UnsupportedFeature("joint efforts with the RK4 integrator need `effort/<joint>` sensors on the "
                                         "warp backend (qfrc_actuator is overwritten by the later RK4 stages); build "
                                         "the model with robot_rl.sim.model.build_model for a task observing efforts")
            src = self.d.qfrc_actuator
            cols = self.joint_dof_index(joints)
        self._effort_buf = wp.zeros((self.num_envs, len(cols)), dtype=wp.float32, device=self._wdev)
        self._effort_cols = wp.array(np.asarray(cols, dtype=np.int32), dtype=wp.int32, device=self._wdev)
        self._effort_cols_t = torch.as_tensor(cols, device=self.device)
        if src is self.d.qfrc_actuator:
            # exact initial value: the forward pass of the snapshot state (d's derived quantities are
            # recomputed by the next step, so leaving them at the snapshot state is harmless)
            live_q, live_v = self._qpos_d.clone(), self._qvel_d.clone()
            self._qpos_d.copy_(self.qpos)
            self._qvel_d.copy_(self.qvel)
            self._run(lambda: mjw.forward(self.m, self.d))
            self._run(lambda: self._gather_effort(src))
            self._qpos_d.copy_(live_q)
            self._qvel_d.copy_(live_v)
        else:
            self._run(lambda: self._gather_effort(src))
        self._effort_src = src
        self._graphs.clear()  # the captured step must now gather efforts as well
        return wp.to_torch(self._effort_buf)

    def _gather_effort(self, src) -> None:
        wp.launch(_gather_columns, dim=self._effort_buf.shape, inputs=[src, self._effort_cols],
                  outputs=[self._effort_buf])

    def _snapshot_rows(self, ids: torch.Tensor | None) -> None:
        """Snapshot of worlds `ids` (all when None) := their live state and its sensors."""
        sel = slice(None) if ids is None else ids
        self.qpos[sel] = self._qpos_d[sel]
        self.qvel[sel] = self._qvel_d[sel]
        if self._sensors is not None:
            self._sensors[sel] = self._sensor_d[sel]
        if self._effort_src is self.d.qfrc_actuator:
            eff = wp.to_torch(self._effort_buf)
            eff[sel] = wp.to_torch(self.d.qfrc_actuator)[sel][:, self._effort_cols_t]

    # -- physics -----------------------------------------------------------------------------------
    def _substeps(self, nsubsteps: int) -> None:
        m, d = self.m, self.d
        for _ in range(nsubsteps - 1):
            mjw.step(m, d)
        wp.copy(self._snap_qpos, d.qpos)
        wp.copy(self._snap_qvel, d.qvel)
        mjw.step(m, d)
        if self._snap_sensor is not None:
            wp.copy(self._snap_sensor, d.sensordata)
        if self._effort_src is not None:  # (after the sensor copy when it gathers sensor columns)
            self._gather_effort(self._effort_src)

    def step(self, ctrl: torch.Tensor, nsubsteps: int) -> None:
        if nsubsteps < 1:
            raise ValueError(f"nsubsteps must be >= 1, got {nsubsteps}")
        self._flush_const()
        if self._ctrl_d is not None:
            self._ctrl_d.copy_(ctrl.detach())
        if not self.use_graph or nsubsteps not in self._eager_done:
            # (the first step of each length runs eagerly: it loads every kernel module it needs, so
            # that none is loaded during a later capture)
            self._run(lambda: self._substeps(nsubsteps))
            self._eager_done.add(nsubsteps)
            return
        graph = self._graphs.get(nsubsteps)
        if graph is None:  # UNTESTED (no GPU on the dev machine): capture the substeps once, replay after
            def capture():
                with wp.ScopedCapture(device=self._wdev, stream=self._stream) as cap:
                    self._substeps(nsubsteps)
                self._graphs[nsubsteps] = cap.graph
            self._run(capture)
            graph = self._graphs[nsubsteps]
        self._run(lambda: wp.capture_launch(graph, stream=self._stream))

    def set_joint_state(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        ids = env_ids.to(self.device, torch.long)
        if not len(ids):
            return
        self._qpos_d[ids] = qpos.detach().to(self.device, torch.float32)
        self._qvel_d[ids] = qvel.detach().to(self.device, torch.float32)
        self._time_d[ids] = 0.0
        for t in self._zero_on_reset:  # controls, activations, solver warm start, applied forces
            t[ids] = 0.0
        self._refresh(ids)

    def _refresh(self, ids: torch.Tensor) -> None:
        """Recompute the sensors of worlds `ids` from their live state and snapshot them. Kernels run
        over every world; only the rows of `ids` are copied into the snapshot."""
        if self._kinematic_sensors and self._effort_src is not self.d.qfrc_actuator:
            def fn():
                mjw.kinematics(self.m, self.d)
                if self.model.nsensor:
                    mjw.sensor_pos(self.m, self.d)
        else:
            def fn():
                mjw.forward(self.m, self.d)
        self._run(fn)
        self._snapshot_rows(ids)
        if self._effort_src is self._snap_sensor and self._effort_src is not None:
            self._run(lambda: self._gather_effort(self._snap_sensor))

    def add_joint_velocity(self, env_ids: torch.Tensor, dqvel: torch.Tensor) -> None:
        ids = env_ids.to(self.device, torch.long)
        dq = dqvel.detach().to(self.device, torch.float32)
        self._qvel_d[ids] += dq
        self.qvel[ids] += dq

    # -- physics variants (domain randomization) -----------------------------------------------
    def set_physics(self, field: str, variant_ids: np.ndarray, values: np.ndarray) -> None:
        if field not in PHYSICS_FIELDS:
            raise ValueError(f"unknown physics field {field!r}; known: {', '.join(PHYSICS_FIELDS)}")
        vids = np.asarray(variant_ids, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.float64)
        shape = np.shape(getattr(self.model, field))
        if values.shape != (len(vids), *shape):
            raise ValueError(f"{field}: values must have shape {(len(vids), *shape)}, got {values.shape}")
        if len(vids) and (vids.min() < 0 or vids.max() >= self.num_envs):
            raise IndexError(f"{field}: variant ids must be in [0, {self.num_envs}), got {vids.tolist()}")
        check_structural_change(self.model, field, values)
        groups = self._const_groups.get(field, mjw.SetConstGroup.NONE)
        view = self._batched(field)
        for name in (_CONST_FIXED if groups & mjw.SetConstGroup.FIXED else ()) + (
                _CONST_INERT0 if groups & mjw.SetConstGroup.INERT0 else ()):
            self._batched(name)
        # MuJoCo Warp may split a field's last axis (geom_aabb [ngeom, 6] is [ngeom, 2, 3]: centre, half sizes)
        vals = torch.as_tensor(values, dtype=torch.float32).reshape(len(vids), *view.shape[1:])
        view[torch.as_tensor(vids, device=self.device)] = vals.to(self.device)
        self._pending_const |= groups

    def _batched(self, field: str) -> torch.Tensor:
        """Torch view [N, ...] of the per-world copy of model field `field` (expanded on first use)."""
        view = self._fields.get(field)
        if view is not None:
            return view
        if field not in self._batchable:
            raise UnsupportedFeature(f"{field} cannot be set per world by mujoco_warp {mjw.__version__} (not a "
                                     f"batched model field); {_HINT}")
        arr = getattr(self.m, field)
        if arr.shape[0] != self.num_envs:
            shared = wp.to_torch(arr)
            per_world = shared[:1].expand(self.num_envs, *shared.shape[1:]).clone()
            new = wp.from_torch(per_world, dtype=arr.dtype)
            new._is_batched = True
            setattr(self.m, field, new)
            self._graphs.clear()  # captured graphs hold the old array
            arr = new
        view = self._fields[field] = wp.to_torch(arr)
        return view

    def _flush_const(self) -> None:
        """Recompute mass/inertia-derived constants of every world after DR wrote masses or inertias.
        `d` serves as scratch (qpos is restored; derived quantities are recomputed by the next step)."""
        if not self._pending_const:
            return
        groups, self._pending_const = self._pending_const, mjw.SetConstGroup.NONE
        self._run(lambda: mjw.set_const(self.m, self.d, groups=groups, restore=False))

    # -- rendering -----------------------------------------------------------------------------
    def render_data(self, env_id: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
        m = copy.copy(self.model)
        for field, view in self._fields.items():  # world env_id's parameters (cosmetic for rendering)
            getattr(m, field)[...] = view[env_id].detach().cpu().double().numpy()
        d = mujoco.MjData(m)
        d.qpos[:] = self._qpos_d[env_id].detach().cpu().double().numpy()
        d.qvel[:] = self._qvel_d[env_id].detach().cpu().double().numpy()
        d.time = float(self._time_d[env_id])
        if m.nu:
            d.ctrl[:] = self._ctrl_d[env_id].detach().cpu().double().numpy()
        if m.na:
            d.act[:] = wp.to_torch(self.d.act)[env_id].detach().cpu().double().numpy()
        return m, d

    def close(self) -> None:
        self._graphs.clear()
