"""`robot-rl main`: the whole path on a CPU. Train iiwa-reach with domain randomization, evaluate on
the training range and on the held-out range, export the artifact, deploy it on the robot twin
through the ROS 2 launch file (policy + 1 kHz safety layer + twin, DDS on loopback), and print what
was measured and where everything is."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from robot_rl.config import EnvConfig, TrainConfig, task_defaults
from robot_rl.deploy_check import DeployConfig
from robot_rl.safety.train_artifact_critic import CriticConfig


@dataclass
class MainConfig:
    train: TrainConfig = field(default_factory=lambda: _main_train_defaults())
    eval_episodes: int = 200
    video: bool = True
    """Render an mp4 of one held-out-DR episode."""
    artifact_root: str = "models/policies"
    deploy: bool = True
    """Deploy the exported artifact on the robot twin and measure it."""
    twin: DeployConfig = field(default_factory=DeployConfig)
    critic: bool = True
    """Train the artifact's safety critic after export and deploy with it, if it costs no success
    on the in-process twin check (else it is removed from the artifact and the report says why)."""
    critic_train: CriticConfig = field(default_factory=CriticConfig)
    critic_check_targets: int = 10
    """Reach targets of the in-process twin check with and without the critic."""


def _main_train_defaults() -> TrainConfig:
    """The best method of `benchmarks/twin_transfer.py` that fits the budget: PPO with automatic
    domain randomization for 200 iterations (it keeps widening the ranges after the task is solved,
    so it does not stop at a success rate), at most 330 s."""
    cfg = task_defaults(EnvConfig().task)
    cfg.adr.enabled = True
    cfg.time_budget_s = 330.0
    cfg.stop_at_success = 0.0
    cfg.max_iterations = 200
    cfg.run_name = ""
    return cfg


def run(cfg: MainConfig) -> dict:
    from robot_rl.adr import summarize_moves
    from robot_rl.evaluate import evaluate
    from robot_rl.export import export
    from robot_rl.train import train

    t0 = time.perf_counter()
    steps = (4 if cfg.deploy else 3) + int(cfg.critic)
    adr = " and ADR" if cfg.train.adr.enabled else ""
    print(f"[1/{steps}] training {cfg.train.env.task} with DR '{cfg.train.env.dr}'{adr} on "
          f"{cfg.train.env.num_envs} envs ({cfg.train.max_iterations} iterations, at most "
          f"{cfg.train.time_budget_s:.0f} s)")
    tr = train(cfg.train)
    run_dir = tr.run_dir
    print(f"[2/{steps}] evaluating {cfg.eval_episodes} episodes on the training and the held-out DR range")
    reports = {}
    for dr in ("train", "eval"):
        video = run_dir / f"eval_{dr}.mp4" if (cfg.video and dr == "eval") else None
        reports[dr] = evaluate(tr.checkpoint, cfg.eval_episodes, dr, seed=1, video=video,
                               report=run_dir / f"eval_{dr}.json")
    print(f"[3/{steps}] exporting the policy artifact")
    art = export(tr.checkpoint, Path(cfg.artifact_root) / run_dir.name)
    parity = json.loads((art / "parity.json").read_text())
    critic = _critic_step(cfg, art, steps, run_dir) if cfg.critic else None
    twin = None
    if cfg.deploy:
        from robot_rl.deploy_check import deploy_on_twin

        from robot_rl.sim import make_task

        what = (f"{cfg.twin.targets} targets, {cfg.twin.seconds_per_target:.0f} s each"
                if "target_pos" in make_task(cfg.train.env.task).commands() else f"{cfg.twin.episodes} twin episodes")
        print(f"[{steps}/{steps}] deploying on the robot twin (launch/deploy.launch.xml, DDS on loopback): {what}")
        twin = deploy_on_twin(art, cfg.twin, log_path=run_dir / "deploy.log")
        (run_dir / "deploy_twin.json").write_text(json.dumps(twin, indent=2))
    total = time.perf_counter() - t0
    rows = [
        ("training", f"{tr.total_steps:,} steps in {tr.wall_s:.0f} s "
                     f"({tr.total_steps / max(tr.wall_s, 1e-9):,.0f} steps/s), "
                     f"solved (95%) at {tr.solved_at_s:.0f} s" if tr.solved_at_s else
                     f"{tr.total_steps:,} steps in {tr.wall_s:.0f} s, 95% not reached"),
        *([("adr ranges", summarize_moves(tr.adr, limit=3) + " (all in spec.json: dr.adr)")]
          if tr.adr is not None else []),
        ("success, training DR", f"{reports['train']['success_rate']:.1%} "
                                 f"(return {reports['train']['mean_return']:.1f})"),
        ("success, held-out DR", f"{reports['eval']['success_rate']:.1%} "
                                 f"(return {reports['eval']['mean_return']:.1f})"),
        ("export parity", f"max |onnx - torch| = {parity['max_abs_error']:.1e} over {parity['samples']} observations"),
        ("run directory", str(run_dir)),
        ("tensorboard", f"tensorboard --logdir {run_dir / 'tensorboard'}"),
        ("learning curve", str(run_dir / "learning_curve.png")),
        ("eval reports", f"{run_dir / 'eval_train.json'}, {run_dir / 'eval_eval.json'}"),
    ]
    if cfg.video:
        rows.append(("video", str(run_dir / "eval_eval.mp4")))
    if critic is not None:
        rows.append(("safety critic", critic["summary"]))
    rows.append(("policy artifact", f"{art}/ ({', '.join(sorted(f.name for f in art.iterdir()))})"))
    if twin is not None:
        def pct(d: dict) -> str:
            return f"p50 {d['p50_ms']:.3f} ms, p99 {d['p99_ms']:.3f} ms" if d.get("count") else "no samples"

        period = twin["safety_loop_period"]
        rows += [
            ("success, sim vs twin", f"{reports['train']['success_rate']:.1%} in training simulation, "
                                     f"{twin['success_rate']:.1%} on the twin ({twin['targets']} targets, "
                                     f"mean distance {twin['mean_distance_m'] * 100:.1f} cm)"
             if twin["mode"] == "targets" else
             f"{reports['train']['success_rate']:.1%} in training simulation, {twin['success_rate']:.1%} on the "
             f"twin ({twin['episodes']} episodes)"),
            ("safety interventions", f"{twin['safety_interventions']} "
                                     f"{twin['safety_interventions_by_reason'] or ''}".rstrip()),
            ("policy inference", pct(twin["policy_inference"])),
            ("safety loop period", f"{pct(period)}, max {period.get('max_ms', float('nan')):.3f} ms, "
                                   f"missed ticks {twin['safety_loop_missed']} at {twin['safety_loop_rate_hz']:.0f} Hz"),
            ("command latency", f"policy -> safety -> twin's command topic {pct(twin['command_latency'])}"),
            ("deployment report", str(run_dir / "deploy_twin.json")),
        ]
    rows.append(("total time", f"{total:.0f} s"))
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    return {"train": tr, "reports": reports, "artifact": art, "twin": twin, "critic": critic}


def _critic_step(cfg: MainConfig, art: Path, steps: int, run_dir: Path) -> dict:
    """Train the critic into the artifact; keep it only if the in-process twin check
    (:func:`robot_rl.safety.twin_check.run_on_twin`, same targets and twin) shows no success lost."""
    from dataclasses import replace

    from robot_rl.safety.critic_artifact import remove_critic
    from robot_rl.safety.train_artifact_critic import train_artifact_critic
    from robot_rl.safety.twin_check import run_on_twin

    print(f"[4/{steps}] training the safety critic (the policy's own rollouts, perturbed and rogue commands)")
    from robot_rl.sim import make_task

    if "target_pos" not in make_task(cfg.train.env.task).commands():
        summary = (f"not trained: its twin check sends reach targets and {cfg.train.env.task} has none; "
                   f"train it with robot-rl train-critic --artifact {art} and deploy with critic:=artifact")
        print(f"  safety critic {summary}")
        return {"kept": False, "report": None, "twin": None, "summary": summary}
    rep = train_artifact_critic(replace(cfg.critic_train, artifact=str(art)), log=lambda *_: None)
    cal = rep["calibration"]
    check = {k: run_on_twin(art, params={"critic": k}, targets=cfg.critic_check_targets, twin_seed=cfg.twin.twin_seed,
                            seed=cfg.twin.seed) for k in ("off", "artifact")}
    off, on = check["off"], check["artifact"]
    keep = on["success_rate"] >= off["success_rate"] and cal["target_met"]
    if not keep:
        remove_critic(art)
    summary = (f"{'on' if keep else 'REMOVED'}: threshold {rep['threshold']:.3f}, false alarms "
               f"{cal['false_alarm_rate']:.2%} of held-out nominal ticks, detection {cal['detection_rate']:.0%}; twin "
               f"check success {on['success_rate']:.0%} with vs {off['success_rate']:.0%} without, backup "
               f"{on['backup_share']:.2%} of ticks ({on['backup_entries_per_min']:.1f}/min)")
    (run_dir / "critic_check.json").write_text(json.dumps({"train": rep, "twin": check}, indent=2,
                                                                           default=float))
    print(f"  safety critic {summary}")
    return {"kept": keep, "report": rep, "twin": check, "summary": summary}
