"""`robot-rl`: the command line. Each subcommand's options come from a typed dataclass (tyro).

    robot-rl train [TASK] [--env.num-envs N --ppo.learning-rate X ...]
    robot-rl distill --teacher RUN_OR_FILE [--time-budget-s 90 ...]   # teacher: train --ppo.actor-obs critic
    robot-rl eval --checkpoint RUN_OR_FILE [--dr eval --episodes 100 --video out.mp4]
    robot-rl eval --artifact DIR [--env.backend pybullet --dr eval --episodes 100]
    robot-rl cross-sim --artifact DIR [--backends mujoco pybullet --episodes 100 --dr eval --out DIR]
    robot-rl export --checkpoint RUN_OR_FILE [--out models/policies/NAME]
    robot-rl record [TASK] [--demos N --out DIR --expert models/policies/NAME]
    robot-rl train-diffusion --dataset DIR [--out DIR --export models/policies/NAME]
    robot-rl export-mcap --root DIR --episode I --out FILE.mcap
    robot-rl train-critic --artifact DIR [--envs 64 --steps 500 --false-alarm-rate 0.01]
    robot-rl hg-dagger [--task panda-peg-insert --base DIR --operator-budget-s 1800 --out DIR]
    robot-rl hil-serl|rlif [--run.base DIR --run.operator-budget-s 1800 ...]   # learn from a simulated operator
    robot-rl main        # the whole path on the CPU: train, evaluate, export
    robot-rl tasks       # list tasks
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from typing import Literal

# DR ranges and published stress twins (robot_rl.sim.twins.STRESS_TWINS) an evaluation can run on
EvalDR = Literal["train", "eval", "off", "heavy-tool", "weak-gains", "stiff-gains", "large-latency",
                 "biased-encoders", "gravity-model", "all"]

os.environ.setdefault("MUJOCO_GL", "egl")

USAGE = """usage: robot-rl {train,distill,eval,export,train-critic,cross-sim,record,train-diffusion,residual-pipeline,export-mcap,hg-dagger,hil-serl,rlif,main,node,launch,teleop-check,tasks} ...

  train [TASK]   train a policy with PPO (`robot-rl tasks` lists them); `--ppo.actor-obs critic`
                 trains a privileged teacher (it sees the DR parameters) for `distill`
  distill        distill a privileged teacher into a deployable recurrent student (DAgger):
                 robot-rl distill --teacher RUN
  eval           evaluate a checkpoint, or an exported artifact (--artifact DIR) on any simulator
                 (--env.backend mujoco|warp|pybullet): JSON report, optional mp4
  export         write the deployable policy artifact (policy.onnx + spec.json)
  train-critic   train the safety critic of an artifact (its own policy's rollouts, perturbed and
                 rogue commands) and write it into the artifact, checksummed: --artifact DIR
  cross-sim      evaluate an artifact zero-shot in several simulators (mujoco, pybullet):
                 cross_sim.json + cross_sim.png
  record [TASK]  collect demonstrations (the task's scripted expert, or --expert ARTIFACT_DIR)
                 into a LeRobotDataset v3.0: robot-rl record TASK --demos 50 --out data/demos
  train-diffusion  a diffusion policy from demonstrations: --dataset DIR --out DIR
                 [--export models/policies/NAME]; residual RL on it: robot-rl train TASK
                 --ppo.policy residual --residual.base DIR
  residual-pipeline  demos -> diffusion base -> residual RL -> export -> deploy on the twin,
                 success at each stage (default task panda-peg-insert)
  hil-serl, rlif  learn from a simulated operator's takeovers (SAC + RLPD, actor and learner over
                 ZeroMQ on loopback): residual over a diffusion base, --run.base DIR; one status line per round
  export-mcap    one recorded episode as a ROS 2 MCAP log: --root DIR --episode 0 --out ep0.mcap
  hg-dagger      HG-DAgger: a diffusion policy corrected by a simulated operator, retrained on the
                 corrections each round; one line per round (operator time, interventions, success)
  main           train iiwa-reach with DR, evaluate on train and held-out DR, export
  node NAME      run one deployment node: policy, safety, twin, arbiter, teleop or recorder (ROS 2 args after it)
  launch FILE    run a ROS 2 launch file (XML/YAML) without ROS 2: robot-rl launch launch/deploy.launch.xml
  teleop-check   open a teleop device and print its samples live: --device gamepad [k=v ...]
  tasks          list the available tasks

`robot-rl <command> --help` lists every option."""


class UsageError(ValueError):
    pass


@dataclass
class EvalEnvConfig:
    backend: str = ""
    """Simulator: mujoco, warp or pybullet (default: a checkpoint's training backend; mujoco for an artifact)."""
    device: str = ""
    """Torch/simulator device, cpu or cuda[:i] (default: cpu)."""


@dataclass
class EvalConfig:
    checkpoint: str = ""
    """Run directory (its latest checkpoint) or checkpoint file."""
    artifact: str = ""
    """Exported policy artifact directory (`robot-rl export`), evaluated with its ONNX runtime
    instead of a checkpoint."""
    env: EvalEnvConfig = field(default_factory=EvalEnvConfig)
    episodes: int = 100
    dr: EvalDR = "eval"
    seed: int = 1
    report: str = ""
    """JSON report path (default: <run>/eval_<dr>.json; <artifact>_eval_<backend>_<dr>.json
    next to an artifact)."""
    video: str = ""
    """Write an mp4 of the first episode here."""


@dataclass
class CrossSimConfig:
    artifact: str
    """Exported policy artifact directory (`robot-rl export`)."""
    backends: tuple[str, ...] = ("mujoco", "pybullet")
    """Simulators to evaluate in; the first is the reference (the training simulator)."""
    episodes: int = 100
    """Episodes per simulator."""
    dr: EvalDR = "eval"
    seed: int = 1
    out: str = ""
    """Report directory (default: <artifact>_cross_sim next to the artifact)."""
    device: str = "cpu"


@dataclass
class ExportConfig:
    checkpoint: str
    """Run directory (its latest checkpoint) or checkpoint file."""
    out: str = ""
    """Artifact directory (default: models/policies/<run name>)."""


def _parse(cls, args: list[str], prog: str, default=None):
    """tyro, with its error box reduced to one line (the full help stays on --help)."""
    import tyro

    if any(a in ("-h", "--help") for a in args):
        return tyro.cli(cls, args=args, prog=prog, default=default)
    err = io.StringIO()
    try:
        with redirect_stderr(err), redirect_stdout(err):
            return tyro.cli(cls, args=args, prog=prog, default=default)
    except SystemExit:
        first = _first_message(err.getvalue())
        raise UsageError(f"{first}; see `{prog} --help`") from None


def _first_message(text: str) -> str:
    """The message of tyro's error box (with or without box drawing), on one line."""
    chunks: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip().strip("│╭╮╰╯").strip().strip("─").strip()
        if not line or set(line) <= set("─-"):
            if chunks[-1]:
                chunks.append([])
            continue
        chunks[-1].append(line)
    chunks = [c for c in chunks if c]
    if not chunks:
        return "invalid arguments"
    msg = " ".join(chunks[1] if len(chunks) > 1 else chunks[0])
    return msg.rstrip(".")


def _train(args: list[str]) -> None:
    from robot_rl.config import EnvConfig, TrainConfig, task_defaults
    from robot_rl.sim import task_names

    task = EnvConfig().task
    if args and not args[0].startswith("-"):
        task = args.pop(0)
        if task not in task_names():
            raise UsageError(f"unknown task {task!r}; available tasks: {', '.join(task_names())}")
    cfg = _parse(TrainConfig, args, "robot-rl train", default=task_defaults(task))
    from robot_rl.train import train

    r = train(cfg)
    print(f"run:        {r.run_dir}")
    print(f"checkpoint: {r.checkpoint}")
    print(f"steps:      {r.total_steps:,} in {r.wall_s:.0f} s; success {r.success:.2%}, return {r.mean_return:.2f}")
    if r.adr is not None:
        from robot_rl.adr import summarize_moves

        print(f"adr:        {summarize_moves(r.adr)}")
    if cfg.ppo.actor_obs != "policy":
        print(f"privileged teacher (not deployable): distill it with robot-rl distill --teacher {r.run_dir}")


def _distill(args: list[str]) -> None:
    from robot_rl.distill import DistillConfig, distill, success_table

    r = distill(_parse(DistillConfig, args, "robot-rl distill"))
    print(f"run:        {r.run_dir}")
    print(f"checkpoint: {r.checkpoint} (recurrent student; robot-rl export --checkpoint {r.run_dir})")
    print(f"distilled:  {r.iterations} iterations, {r.total_steps:,} steps in {r.wall_s:.0f} s; action error to "
          f"the teacher (MSE) {r.action_mse_initial:.4f} -> {r.action_mse_final:.4f}")
    if r.success:
        print(success_table(r))


def _check_backend(name: str) -> None:
    """An unknown backend or one whose simulator package is missing: one clear error line."""
    from robot_rl.sim.backend import backend_class

    try:
        backend_class(name)
    except ImportError as e:
        raise UsageError(str(e)) from None


def _eval(args: list[str]) -> None:
    from pathlib import Path

    cfg = _parse(EvalConfig, args, "robot-rl eval")
    if bool(cfg.checkpoint) == bool(cfg.artifact):
        raise UsageError("give either --checkpoint RUN_OR_FILE or --artifact DIR")
    if cfg.artifact:
        return _eval_artifact(cfg)
    if cfg.env.backend:
        _check_backend(cfg.env.backend)
    from robot_rl import checkpoint as ckpt
    from robot_rl.evaluate import evaluate

    path = ckpt.latest(cfg.checkpoint)
    report = cfg.report or str(path.parent.parent / f"eval_{cfg.dr}.json")
    r = evaluate(path, cfg.episodes, cfg.dr, cfg.seed, video=cfg.video or None, report=report,
                 backend=cfg.env.backend or None, device=cfg.env.device or "cpu")
    print(f"{r['task']} dr={r['dr']}: success {r['success_rate']:.2%}, return {r['mean_return']:.2f} "
          f"± {r['std_return']:.2f}, length {r['mean_episode_length']:.0f} steps over {r['episodes']} episodes")
    print(f"report: {Path(report)}" + (f"\nvideo:  {r['video']}" if cfg.video else ""))


def _eval_artifact(cfg: EvalConfig) -> None:
    from pathlib import Path

    backend = cfg.env.backend or "mujoco"
    _check_backend(backend)
    from robot_rl.evaluate_artifact import evaluate_artifact

    art = Path(cfg.artifact)
    report = cfg.report or str(art.parent / f"{art.name}_eval_{backend}_{cfg.dr}.json")
    r = evaluate_artifact(art, cfg.episodes, cfg.dr, cfg.seed, backend=backend, device=cfg.env.device or "cpu",
                          report=report, video=cfg.video or None)
    print(f"{r['task']} on {backend} dr={r['dr']}: success {r['success_rate']:.2%}, return {r['mean_return']:.2f} "
          f"± {r['std_return']:.2f}, length {r['mean_episode_length']:.0f} steps over {r['episodes']} episodes; "
          f"report: {Path(report)}" + (f", video: {r['video']}" if cfg.video else ""))


def _cross_sim(args: list[str]) -> None:
    cfg = _parse(CrossSimConfig, args, "robot-rl cross-sim")
    for b in cfg.backends:
        _check_backend(b)
    from robot_rl.cross_sim import cross_sim_report

    r = cross_sim_report(cfg.artifact, cfg.backends, cfg.episodes, cfg.dr, cfg.seed, cfg.out or None,
                         device=cfg.device)
    for name, s in r["simulators"].items():
        gap = r["gap_to_reference"][name]
        print(f"{r['task']} on {name:<8} dr={r['dr']}: success {s['success_rate']:.2%}, return "
              f"{s['mean_return']:.2f} ± {s['std_return']:.2f} over {r['episodes']} episodes"
              + ("" if name == r["reference"] else
                 f" (vs {r['reference']}: success {gap['success_rate']:+.2%}, return {gap['mean_return']:+.2f})"))
    print(f"report: {r['json']}, {r['png']}")


def _export(args: list[str]) -> None:
    from pathlib import Path

    cfg = _parse(ExportConfig, args, "robot-rl export")
    from robot_rl import checkpoint as ckpt
    from robot_rl.export import export

    path = ckpt.latest(cfg.checkpoint)
    out = cfg.out or str(Path("models") / "policies" / path.parent.parent.name)
    d = export(path, out)
    print(f"artifact: {d} (policy.onnx, spec.json)")


@dataclass
class McapConfig:
    root: str
    """Dataset root (robot-rl record --out)."""
    out: str
    """MCAP file to write."""
    episode: int = 0


def _record(args: list[str]) -> None:
    from robot_rl.record import RecordConfig, record

    task = ""
    if args and not args[0].startswith("-"):
        from robot_rl.sim import task_names

        task = args.pop(0)
        if task not in task_names():
            raise UsageError(f"unknown task {task!r}; available tasks: {', '.join(task_names())}")
    cfg = _parse(RecordConfig, args, "robot-rl record")
    if task:
        cfg.task = task
    r = record(cfg)
    print(f"dataset: {r.root} (episodes {r.first_episode}..{r.first_episode + r.saved - 1})")


def _train_diffusion(args: list[str]) -> None:
    from robot_rl.imitation import TrainDiffusionConfig, train_diffusion_run

    r = train_diffusion_run(_parse(TrainDiffusionConfig, args, "robot-rl train-diffusion"))
    print(f"diffusion policy: {r['out']} ({r['demos']} demonstrations, {r['frames']} frames, {r['train_s']:.0f} s)")
    if "eval" in r:
        e = r["eval"]
        print(f"success in simulation: {e['success_rate']:.1%} over {e['episodes']} episodes (DR {e['dr']})")
    if "artifact" in r:
        print(f"artifact: {r['artifact']}")


def _residual_pipeline(args: list[str]) -> None:
    from robot_rl.residual_pipeline import PipelineConfig, run

    task = args.pop(0) if args and not args[0].startswith("-") else ""
    cfg = _parse(PipelineConfig, args, "robot-rl residual-pipeline")
    if task:
        cfg.task = task
    run(cfg)


def _hil(method: str):
    def command(args: list[str]) -> None:
        from robot_rl.hil.serl import SerlCliConfig, run

        cfg = _parse(SerlCliConfig, args, f"robot-rl {method}")
        curve = run(cfg.run, method=method, opts=cfg.opts)
        if curve:
            p = curve[-1]
            print(f"{method}: {p.success:.1%} success after {p.operator_time_s / 60:.1f} min of operator time, "
                  f"{p.interventions} interventions")
    return command


def _export_mcap(args: list[str]) -> None:
    cfg = _parse(McapConfig, args, "robot-rl export-mcap")
    from robot_rl.datasets.mcap_export import export_episode_mcap

    print(f"mcap: {export_episode_mcap(cfg.root, cfg.episode, cfg.out)}")


def _train_critic(args: list[str]) -> None:
    from robot_rl.safety.train_artifact_critic import CriticConfig, train_artifact_critic

    cfg = _parse(CriticConfig, args, "robot-rl train-critic")
    cfg.validate()
    r = train_artifact_critic(cfg)
    cal = r["calibration"]
    print(f"critic: {cfg.artifact}/critic.onnx threshold {r['threshold']:.3f}, false alarms "
          f"{cal['false_alarm_rate']:.2%} (target {cal['false_alarm_rate_target']:.2%}), detection "
          f"{cal['detection_rate']:.1%} of {cal['violation_onsets']} violation onsets, {r['total_s']:.0f} s")


def _hg_dagger(args: list[str]) -> None:
    from robot_rl.hil.hg_dagger import HgDaggerConfig, run

    cfg = _parse(HgDaggerConfig, args, "robot-rl hg-dagger")
    run(cfg)


def _main_job(args: list[str]) -> None:
    from robot_rl.main_job import MainConfig, run

    run(_parse(MainConfig, args, "robot-rl main"))


NODES = ("policy", "safety", "twin", "arbiter", "teleop", "recorder")


def _node(args: list[str]) -> int:
    if not args or args[0] not in NODES:
        got = repr(args[0]) if args else "nothing"
        raise UsageError(f"unknown node {got}; use one of: {', '.join(NODES)} "
                         "(e.g. robot-rl node twin --ros-args -p seed:=3)")
    import importlib

    return importlib.import_module(f"robot_rl.nodes.{args[0]}").main(args[1:])


def _launch(args: list[str]) -> int:
    from robot_rl.launch_runner import main as launch_main

    return launch_main(args)


def _teleop_check(args: list[str]) -> int:
    from robot_rl.teleop.check import main as check_main

    return check_main(args)


def _tasks(args: list[str]) -> None:
    from robot_rl.sim import task_names

    print("\n".join(task_names()))


COMMANDS = {"train": _train, "distill": _distill, "eval": _eval, "export": _export, "train-critic": _train_critic,
            "cross-sim": _cross_sim, "record": _record,
            "train-diffusion": _train_diffusion,
            "residual-pipeline": _residual_pipeline, "export-mcap": _export_mcap, "hg-dagger": _hg_dagger,
            "hil-serl": _hil("hil-serl"), "rlif": _hil("rlif"),
            "main": _main_job, "node": _node, "launch": _launch, "teleop-check": _teleop_check, "tasks": _tasks}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, args = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"robot-rl: error: unknown command {cmd!r}; use one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from robot_rl.artifact import ArtifactError
    from robot_rl.checkpoint import CheckpointError

    try:
        rc = COMMANDS[cmd](args)
    except (UsageError, CheckpointError, ArtifactError, ValueError, FileNotFoundError) as e:
        print(f"robot-rl {cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robot-rl {cmd}: interrupted", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
