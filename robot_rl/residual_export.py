"""Export a residual run (`--ppo.policy residual`) as ONE artifact: the frozen diffusion base
(`denoiser.onnx`) and the residual MLP (`residual.onnx`), run by `robot_rl.runtimes.residual`.

Verified before the directory appears (`robot_rl.artifact_writer`), as every kind:

* the base: the numpy/onnxruntime sampler against the torch sampler (diffusers' scheduler) from
  the same initial noise (`robot_rl.diffusion_export.parity_error`);
* base + residual: along trajectories of the training env (the base executed with receding
  horizon, the residual's mean), the runtime's `clip(base + scale * residual([obs, base]))`
  against torch's, and on wide random inputs.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from robot_rl import checkpoint as ckpt
from robot_rl.artifact import PolicyArtifact
from robot_rl.artifact_writer import write_verified
from robot_rl.kinematics import kinematic_model_xml
from robot_rl.policies import DeterministicActor, build_actor_critic

PARITY_TOL = 1e-4
"""On actions: the base's sampling loop is the looser part (`robot_rl.diffusion_export.PARITY_TOL`)."""


def export_residual(ck: dict, cfg, out_dir: str | Path, parity_envs: int = 4, parity_steps: int = 48) -> Path:
    from robot_rl import diffusion_export as dx
    from robot_rl.export import ExportError, _export_onnx, _trajectories, build_spec
    from robot_rl.residual import ResidualEnv, load_base
    from robot_rl.sim import make_env

    env = make_env(cfg.env.task, parity_envs, dr=cfg.env.dr, seed=cfg.env.seed + 1, nthread=1)
    base = load_base(cfg.residual.base, cfg.env.task, env.num_obs["policy"], env.num_actions)
    renv = ResidualEnv(env, base, cfg.residual.scale, seed=cfg.env.seed + 1)
    ac = build_actor_critic(cfg, renv.num_obs, env.num_actions)
    ckpt.load_state(ac, ck["model"], ck["path"])
    ac.eval()
    obs, _ = _trajectories(renv, DeterministicActor(ac, env.num_envs), parity_steps)
    aug = torch.cat(obs)  # [steps * envs, D + A]: observation, base action
    gen = torch.Generator().manual_seed(0)
    rand = ac.actor_norm.mean + ac.actor_norm.std * torch.randn((128, aug.shape[1]), generator=gen)
    rand[:, -env.num_actions:] = rand[:, -env.num_actions:].clamp(-1, 1)
    d = env.num_obs["policy"]

    def write_files(tmp: Path) -> None:
        dx.export_onnx(base.cpu(), tmp / "denoiser.onnx")
        _export_onnx(ac, tmp, aug[:1])
        (tmp / "policy.onnx").rename(tmp / "residual.onnx")
        (tmp / "robot.xml").write_text(kinematic_model_xml(env.robot))

    def verify(art: PolicyArtifact) -> dict:
        rt = art.runtime
        base_err = dx.parity_error(SimpleNamespace(runtime=rt.base), base, *dx.parity_inputs(base))
        err = 0.0
        for x in (aug, rand):
            with torch.no_grad():
                want = (x[:, d:] + cfg.residual.scale * ac.action_mean(x)).clamp(-1, 1).numpy()
            got = rt.correct(x[:, :d].numpy(), x[:, d:].numpy())
            err = max(err, float(np.max(np.abs(got - want))))
        if not (base_err <= dx.PARITY_TOL and err <= PARITY_TOL):
            raise ExportError(f"the exported residual policy differs from training: base sampler {base_err:.2e} "
                              f"(> {dx.PARITY_TOL}?), base + residual {err:.2e} (> {PARITY_TOL}?)")
        return {"max_abs_error": max(err, base_err), "base_sampler_error": base_err, "residual_error": err,
                "tolerance": PARITY_TOL, "samples": int(aug.shape[0] + rand.shape[0])}

    policy = {"kind": "residual", "onnx": "residual.onnx", "inputs": ["obs"], "outputs": ["actions"],
              "scale": cfg.residual.scale, "base": dx.policy_spec(base), "base_dir": str(cfg.residual.base)}
    write_verified(out_dir, write_files, build_spec(env, cfg, ck, policy), verify)
    return Path(out_dir)
