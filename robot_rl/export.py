"""`robot-rl export`: checkpoint -> policy artifact (ONNX + `robot.xml` + `spec.json`), verified.

The artifact is written to a temporary directory next to the target and checked before it is
moved into place, so a failed export never leaves a directory that looks complete. The check runs
the artifact exactly as a robot would (`PolicyArtifact.load`, the kind's runtime) against the
training policy (its deterministic actor), to `PARITY_TOL`:

* along trajectories from the simulator, one observation at a time with the runtime's state
  carried (recurrent memory), reset where an episode starts;
* on a batch of wide random observations (no state).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from robot_rl import checkpoint as ckpt
from robot_rl.artifact import FORMAT, PolicyArtifact
from robot_rl.artifact_writer import write_verified
from robot_rl.config import TrainConfig, from_dict
from robot_rl.kinematics import kinematic_model_xml
from robot_rl.policies import DeterministicActor, build_actor_critic

PARITY_TOL = 1e-5


class ExportError(ValueError):
    pass


def deploy_spec(env) -> dict:
    """What the robot side needs to rebuild the env's state, observation and actions: the robot,
    the observation (state joints, terms, commands), the action terms and the control timing."""
    task, robot = env.task, env.robot
    return {
        "format": FORMAT,
        "task": task.name,
        "robot": {**robot.describe(env.model), "model": "robot.xml", "scene": task.scene_name()},
        "observation": {
            "dim": env.num_obs["policy"],
            "state_joints": list(env.state_joints),
            "terms": env.observation_spec(),
            "commands": {k: c.to_dict() for k, c in task.commands().items()},
        },
        "action": {"dim": env.num_actions, "terms": env.action_spec(), "clip": [-1.0, 1.0]},
        "control": {"period_s": env.control_dt, "physics_dt": env.physics_dt, "decimation": task.decimation},
    }


def build_spec(env, cfg: TrainConfig, ck: dict, policy: dict) -> dict:
    train_dr = env.task.dr.get(cfg.env.dr)
    return {
        **deploy_spec(env),
        "policy": policy,
        "delays": {
            "action_delay_steps": list(train_dr.action_delay_steps),
            "obs_delay_steps": list(train_dr.obs_delay_steps),
        },
        **({"dr": {"mode": cfg.env.dr, "adr": {k: ck["adr"][k] for k in ("initial", "bounds", "reached")}}}
           if ck.get("adr") is not None else {}),
        "training": {
            "config": ck["config"],
            "checkpoint": ck["path"],
            "iteration": ck["iteration"],
            "total_steps": ck["total_steps"],
        },
    }


def _trajectories(env, actor: DeterministicActor, steps: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Observations along `steps` control steps of every env, and where episodes start."""
    obs, starts = [env.reset()["policy"]], [torch.ones(env.num_envs, dtype=torch.bool)]
    with torch.no_grad():
        for _ in range(steps - 1):
            o, _, term, trunc, _ = env.step(actor(obs[-1]))
            done = term | trunc
            actor.reset(done)
            obs.append(o["policy"])
            starts.append(done)
    return obs, starts


def parity_error(art: PolicyArtifact, ac, obs: list[torch.Tensor], starts: list[torch.Tensor],
                 rand: torch.Tensor) -> tuple[float, int]:
    """Largest |runtime - torch| over the trajectories (state carried) and the random batch."""
    n = obs[0].shape[0]
    expected = DeterministicActor(ac, n)
    err, count = 0.0, 0
    with torch.no_grad():
        want = []
        for o, s in zip(obs, starts):  # memory cleared where an episode starts, as the runtime's reset()
            expected.reset(s)
            want.append(expected(o).numpy())
        rand_want = DeterministicActor(ac, rand.shape[0])(rand).numpy()
    for i in range(n):
        for t, o in enumerate(obs):
            if starts[t][i]:
                art.reset()
            got = art.act(o[i].numpy()).actions[0]
            err = max(err, float(np.max(np.abs(got - want[t][i]))))
            count += 1
    got = art.act_batch(rand.numpy())
    err = max(err, float(np.max(np.abs(got - rand_want))))
    return err, count + rand.shape[0]


def _export_onnx(ac, out_dir: Path, example_obs: torch.Tensor) -> dict:
    with warnings.catch_warnings():  # the legacy exporter warns on every call (RNN batch sizes, tracing)
        warnings.simplefilter("ignore")
        return ac.export_onnx(out_dir, example_obs)


def export(checkpoint: str | Path, out_dir: str | Path, parity_envs: int = 4, parity_steps: int = 64) -> Path:
    from robot_rl.sim import make_env

    ck = ckpt.load(checkpoint)
    cfg = from_dict(TrainConfig, ck["config"])
    if cfg.ppo.policy == "residual":
        from robot_rl.residual_export import export_residual

        return export_residual(ck, cfg, out_dir, parity_envs, parity_steps)
    if cfg.ppo.actor_obs != "policy":
        run = Path(ck["path"]).parent.parent
        raise ExportError(f"{ck['path']} is a privileged teacher (its actor reads the {cfg.ppo.actor_obs!r} "
                          "observation group with the simulator's DR parameters, which a robot does not "
                          f"have) and cannot be deployed; distill it into a student first: "
                          f"robot-rl distill --teacher {run}, then export the student")
    env = make_env(cfg.env.task, parity_envs, dr=cfg.env.dr, seed=cfg.env.seed + 1, nthread=1)
    ac = build_actor_critic(cfg, env.num_obs, env.num_actions)
    ckpt.load_state(ac, ck["model"], ck["path"])
    ac.eval()

    # observations the policy actually sees, plus wide random ones
    obs, starts = _trajectories(env, DeterministicActor(ac, env.num_envs), parity_steps)
    gen = torch.Generator().manual_seed(0)
    shape = (128, env.num_obs["policy"])
    if hasattr(ac.actor_norm, "mean"):  # in-distribution random observations: N(mean, std) of training
        rand = ac.actor_norm.mean + ac.actor_norm.std * torch.randn(shape, generator=gen)
    else:
        rand = torch.randn(shape, generator=gen)

    def write_files(tmp: Path) -> None:
        policy.update(_export_onnx(ac, tmp, obs[0]))
        (tmp / "robot.xml").write_text(kinematic_model_xml(env.robot))

    def verify(art: PolicyArtifact) -> dict:
        err, samples = parity_error(art, ac, obs, starts, rand)
        if err > PARITY_TOL:
            raise ExportError(f"exported policy differs from the training policy by {err:.2e} (> {PARITY_TOL})")
        return {"max_abs_error": err, "tolerance": PARITY_TOL, "samples": samples}

    policy: dict = {}
    spec = build_spec(env, cfg, ck, policy)
    write_verified(out_dir, write_files, spec, verify)
    return Path(out_dir)
