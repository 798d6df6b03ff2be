"""`robot-rl export`: checkpoint -> policy artifact (`policy.onnx` + `spec.json`), verified.

The artifact is written to a temporary directory next to the target, checked (the ONNX policy must
reproduce the torch policy to 1e-5 on observations from the simulator and on random ones) and only
then moved into place, so a failed export never leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from robot_rl import checkpoint as ckpt
from robot_rl.artifact import FORMAT, PolicyArtifact, sha256_file, spec_checksum
from robot_rl.config import TrainConfig, from_dict
from robot_rl.networks import ExportedPolicy
from robot_rl.networks import build_policy

PARITY_TOL = 1e-5


class ExportError(ValueError):
    pass


def build_spec(env, cfg: TrainConfig, ck: dict) -> dict:
    task, m = env.task, env.model
    jids = [m.joint(n).id for n in task.joint_names]
    act_ids = [int(np.flatnonzero(m.actuator_trnid[:, 0] == j)[0]) for j in jids]
    train_dr = task.dr.get(cfg.env.dr)
    spec = {
        "format": FORMAT,
        "task": task.name,
        "observation": {
            "dim": env.num_obs["policy"],
            "terms": env.observation_spec(),
            "history_length": 1,
        },
        "action": {
            "dim": env.num_actions,
            "names": list(task.joint_names),
            "mode": task.action_mode,
            "scale": task.action_scale,
            "clip": [-1.0, 1.0],
        },
        "joints": {
            "names": list(task.joint_names),
            "default_pose": [float(v) for v in task.default_pose],
            "position_limits": [[float(a), float(b)] for a, b in m.jnt_range[jids]],
            "effort_limits": [[float(a), float(b)] for a, b in m.jnt_actfrcrange[jids]],
        },
        "pd_gains": {
            "kp": [float(m.actuator_gainprm[a, 0]) for a in act_ids],
            "kd": [float(-m.actuator_biasprm[a, 2]) for a in act_ids],
        },
        "control": {
            "period_s": env.control_dt,
            "physics_dt": env.physics_dt,
            "decimation": task.decimation,
        },
        "delays": {
            "action_delay_steps": list(train_dr.action_delay_steps),
            "obs_delay_steps": list(train_dr.obs_delay_steps),
        },
        "training": {
            "config": ck["config"],
            "checkpoint": ck["path"],
            "iteration": ck["iteration"],
            "total_steps": ck["total_steps"],
        },
    }
    try:
        from robot_rl.kinematics import chain_from_mjmodel

        sites = [m.site(i).name for i in range(m.nsite) if m.site(i).name]
        spec["kinematics"] = chain_from_mjmodel(m, sites)
    except ImportError:
        pass
    return spec


def export(checkpoint: str | Path, out_dir: str | Path, num_parity_samples: int = 256) -> Path:
    from robot_rl.sim import make_env

    ck = ckpt.load(checkpoint)
    cfg = from_dict(TrainConfig, ck["config"])
    env = make_env(cfg.env.task, 16, dr=cfg.env.dr, seed=cfg.env.seed + 1)
    ac = build_policy(cfg, env.num_obs, env.num_actions)
    ckpt.load_state(ac, ck["model"], ck["path"])
    ac.eval()
    policy = ExportedPolicy(ac).eval()

    # observations the policy actually sees, plus wide random ones
    obs = [env.reset()["policy"]]
    with torch.no_grad():
        for _ in range(num_parity_samples // 16):
            o, *_ = env.step(policy(obs[-1]))
            obs.append(o["policy"])
    real = torch.cat(obs)
    gen = torch.Generator().manual_seed(0)
    if hasattr(ac.actor_norm, "mean"):  # in-distribution random observations: N(mean, std) of training
        rand = ac.actor_norm.mean + ac.actor_norm.std * torch.randn(real.shape, generator=gen)
    else:
        rand = torch.randn(real.shape, generator=gen)
    samples = torch.cat([real, rand])

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        onnx_path = tmp / "policy.onnx"
        torch.onnx.export(
            policy, (real[:1],), str(onnx_path), input_names=["obs"], output_names=["actions"],
            dynamic_axes={"obs": {0: "batch"}, "actions": {0: "batch"}}, opset_version=17, dynamo=False,
        )
        spec = build_spec(env, cfg, ck)
        spec["files"] = {"policy.onnx": sha256_file(onnx_path)}
        spec["checksum"] = spec_checksum(spec)
        (tmp / "spec.json").write_text(json.dumps(spec, indent=2))
        art = PolicyArtifact.load(tmp)
        with torch.no_grad():
            expected = policy(samples).numpy()
        got = art.act(samples.numpy())
        err = float(np.max(np.abs(got - expected)))
        if err > PARITY_TOL:
            raise ExportError(f"exported policy differs from the training policy by {err:.2e} (> {PARITY_TOL})")
        (tmp / "parity.json").write_text(json.dumps(
            {"max_abs_error": err, "tolerance": PARITY_TOL, "samples": int(samples.shape[0])}, indent=2))
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
