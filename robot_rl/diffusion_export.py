"""Export a `DiffusionPolicy` as a policy artifact (`robot_rl.artifact`), verified before it appears.

`export_diffusion(model, out_dir, spec_base, robot_xml=None, training=None, seed=0) -> spec`:

* `spec_base`: the deploy part of a spec, `robot_rl.export.deploy_spec(env)` for the task's env
  (format, task, robot, observation, action, control); its observation and action dims must be
  the policy's;
* writes `denoiser.onnx` (`sample [B, Tp, A], timestep [B] float32, cond [B, To * D] ->
  model_output [B, Tp, A]`), `robot.xml` (when given) and `spec.json` whose `policy` section is:

  `kind` "diffusion", `onnx`, `inputs`, `outputs`, `objective` ("ddpm" | "flow"),
  `obs_horizon`, `pred_horizon`, `execution_horizon`, `chunk_start` (= obs_horizon - 1: the
  index of the current action in the predicted horizon), `obs_dim`, `action_dim`,
  `normalization` {`mode` "min_max", `range_eps`, `obs_min`, `obs_max`, `action_min`,
  `action_max`}, `sampler` {`scheduler` ("DDIMScheduler" | "FlowMatchEulerDiscreteScheduler"),
  `num_inference_steps`, `num_train_timesteps`, `prediction_type`, `timesteps`, and for DDIM
  `alphas_cumprod`, `alphas_cumprod_prev` (per step), `clip_sample`, `eta`; for flow `sigmas`
  (steps + 1)}, `seed` (the runtime's default noise seed), `config` (the `DiffusionConfig`),
  `parameters`;
* checks, in a temporary directory, that the artifact loaded as a robot loads it
  (`PolicyArtifact.load`, checksums, the numpy/onnxruntime `DiffusionRuntime`) reproduces the
  torch sampler (`DiffusionPolicy.sample_normalized`, diffusers' schedulers) given the same
  initial noise, on normalized actions, to `PARITY_TOL`, and writes the error to `parity.json`;
  only then is the directory moved to `out_dir`.

`export_diffusion_for_env(model, out_dir, env, ...)` builds `spec_base` and `robot.xml` from a
`BatchedEnv` of the task.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robot_rl.artifact import PolicyArtifact
from robot_rl.artifact_writer import write_verified
from robot_rl.policies.diffusion import DiffusionPolicy

PARITY_TOL = 1e-4
"""Largest |runtime - torch| on normalized actions after the whole sampling loop."""


class ExportError(ValueError):
    pass


class _Denoiser(nn.Module):
    def __init__(self, model: DiffusionPolicy):
        super().__init__()
        self.net = model.net

    def forward(self, sample, timestep, cond):
        return self.net(sample, timestep, cond)


def sampler_spec(model: DiffusionPolicy) -> dict:
    """What the numpy sampler needs, read from the diffusers scheduler set to the chosen step count."""
    cfg, sch = model.cfg, model.scheduler
    timesteps, sigmas = model.sampler_timesteps()
    out = {"scheduler": type(sch).__name__, "num_inference_steps": cfg.num_inference_steps,
           "num_train_timesteps": cfg.num_train_timesteps, "timesteps": [float(t) for t in timesteps]}
    if cfg.objective == "ddpm":
        stride = sch.config.num_train_timesteps // sch.num_inference_steps  # as DDIMScheduler.step
        prev = [int(t) - stride for t in timesteps]
        out.update(prediction_type=sch.config.prediction_type, eta=0.0,
                   clip_sample=float(sch.config.clip_sample_range) if sch.config.clip_sample else None,
                   alphas_cumprod=[float(sch.alphas_cumprod[int(t)]) for t in timesteps],
                   alphas_cumprod_prev=[float(sch.alphas_cumprod[p]) if p >= 0 else float(sch.final_alpha_cumprod)
                                        for p in prev])
    else:
        out.update(prediction_type="velocity", sigmas=[float(s) for s in sigmas])
    return out


def policy_spec(model: DiffusionPolicy, seed: int = 0) -> dict:
    cfg = model.cfg
    return {
        "kind": model.kind, "onnx": "denoiser.onnx", "inputs": ["sample", "timestep", "cond"],
        "outputs": ["model_output"], "objective": cfg.objective,
        "obs_horizon": cfg.obs_horizon, "pred_horizon": cfg.pred_horizon, "execution_horizon": cfg.execution_horizon,
        "chunk_start": cfg.obs_horizon - 1, "obs_dim": model.obs_dim, "action_dim": model.action_dim,
        "normalization": {"mode": "min_max", "range_eps": 1e-4, **model.normalization_dict()},
        "sampler": sampler_spec(model), "seed": int(seed), "config": cfg.to_dict(),
        "parameters": sum(p.numel() for p in model.net.parameters()),
    }


def export_onnx(model: DiffusionPolicy, path: Path) -> None:
    """The denoiser as ONNX (opset 17, standard ops; GroupNorm becomes InstanceNormalization with
    reshapes: onnxruntime 1.32's GroupNormalization-21 kernel was 25% slower at batch 1)."""
    cfg = model.cfg
    b = 2
    args = (torch.zeros(b, cfg.pred_horizon, model.action_dim), torch.zeros(b),
            torch.zeros(b, cfg.obs_horizon * model.obs_dim))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Denoiser(model).eval(), args, str(path), input_names=["sample", "timestep", "cond"],
                          output_names=["model_output"],
                          dynamic_axes={n: {0: "batch"} for n in ("sample", "timestep", "cond", "model_output")},
                          opset_version=17, dynamo=False)


def parity_inputs(model: DiffusionPolicy, batch: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Observation histories spread over (and 10% past) the training range, and initial noise."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = model.obs_min, model.obs_max
    span = (hi - lo).clamp_min(1e-3)
    u = torch.rand(batch, model.cfg.obs_horizon, model.obs_dim, generator=g) * 1.2 - 0.1
    obs = lo + u * span
    noise = torch.randn(batch, model.cfg.pred_horizon, model.action_dim, generator=g)
    return obs, noise


def parity_error(art: PolicyArtifact, model: DiffusionPolicy, obs: torch.Tensor, noise: torch.Tensor) -> float:
    """Largest |runtime - torch| on normalized actions, batched and one observation at a time."""
    with torch.inference_mode():
        want = model.sample_normalized(model.normalize_obs(obs).flatten(1), noise).numpy()
    rt = art.runtime
    got = rt.sample_normalized(obs.numpy(), noise.numpy())
    err = float(np.max(np.abs(got - want)))
    for i in range(min(4, obs.shape[0])):  # the robot's path: batch 1
        one = rt.sample_normalized(obs[i : i + 1].numpy(), noise[i : i + 1].numpy())
        err = max(err, float(np.max(np.abs(one - want[i : i + 1]))))
    return err


def export_diffusion(model: DiffusionPolicy, out_dir: str | Path, spec_base: dict, robot_xml: str | None = None,
                     training: dict | None = None, seed: int = 0) -> dict:
    """Write the verified artifact to `out_dir` (replacing it); returns its spec. `model` is not
    modified (a CPU copy is exported)."""
    model = copy.deepcopy(model).cpu().eval()
    obs_dim, act_dim = int(spec_base["observation"]["dim"]), int(spec_base["action"]["dim"])
    if (obs_dim, act_dim) != (model.obs_dim, model.action_dim):
        raise ExportError(f"the policy takes {model.obs_dim} observations and gives {model.action_dim} actions, the "
                          f"task {spec_base.get('task')!r} has {obs_dim} and {act_dim}; export it with the task it "
                          "was trained on")
    if robot_xml is None and spec_base.get("robot", {}).get("model"):
        raise ExportError(f"spec_base names the robot model {spec_base['robot']['model']!r} but no robot_xml was "
                          "given; pass kinematic_model_xml(env.robot) or use export_diffusion_for_env")
    def write_files(tmp: Path) -> None:
        export_onnx(model, tmp / "denoiser.onnx")
        if robot_xml is not None:
            (tmp / spec_base["robot"]["model"]).write_text(robot_xml)

    def verify(art: PolicyArtifact) -> dict:
        obs, noise = parity_inputs(model, seed=seed)
        err = parity_error(art, model, obs, noise)
        if not err <= PARITY_TOL:
            raise ExportError(f"the exported diffusion sampler differs from the torch sampler by {err:.2e} "
                              f"(> {PARITY_TOL}) on normalized actions; the artifact was not written")
        return {"max_abs_error": err, "tolerance": PARITY_TOL, "on": "normalized actions after the full sampling loop",
                "samples": int(obs.shape[0])}

    spec = {**spec_base, "policy": policy_spec(model, seed), **({"training": training} if training else {})}
    write_verified(out_dir, write_files, spec, verify)
    return spec


def export_diffusion_for_env(model: DiffusionPolicy, out_dir: str | Path, env, training: dict | None = None,
                             seed: int = 0) -> dict:
    """`export_diffusion` with the spec's deploy part and `robot.xml` taken from a `BatchedEnv` of the task."""
    from robot_rl.export import deploy_spec
    from robot_rl.kinematics import kinematic_model_xml

    return export_diffusion(model, out_dir, deploy_spec(env), kinematic_model_xml(env.robot), training, seed)
