"""HG-DAgger for the diffusion policy (Kelly et al., "HG-DAgger: Interactive Imitation Learning
with Human Experts"): the person takes over where the policy drifts, only those human-gated steps
become labels, the policy is retrained on demonstrations + corrections, and so on.

```
robot-rl hg-dagger --task panda-peg-insert --operator-budget-s 1800 --num-envs 16 --out runs/peg-hgd
points = run(HgDaggerConfig(...))          # list[CurvePoint], one per round (round 0: the base)
```

One round, read top to bottom in `run`:

1. roll out the current diffusion policy on `num_envs` envs with receding-horizon chunks
   (`robot_rl.residual.BaseChunker`, as the policy node runs it) under a `SimulatedOperator`
   for `round_s` more seconds of operator time; when the person lets go, the policy plans a new
   chunk from where the person left the robot;
2. every finished episode in which the person intervened is appended to the aggregate dataset
   (`robot_rl.hil.aggregate`: LeRobot v3.0, `intervention` column; the demonstrations are its first
   episodes), durably, episode by episode. `action` is what the robot executed: on the gated steps
   the person's command as the device delivered it (`OperatorStep.action`: the expert's action
   plus the person's imprecision) -- the only label a real person gives;
3. fine-tune the policy, warm-started, for `finetune_steps` on the windows of every labelled
   frame (`LabelIndex`: demonstration frames and gated steps; the policy's own steps only as
   observation history), its normalization kept;
4. evaluate it alone (no operator) on `eval_episodes` envs (the same seed every round) and
   append a `CurvePoint`; stop once the operator has watched `operator_budget_s` seconds.

The base is `base` (a `robot-rl train-diffusion` directory whose config.json names its dataset,
or `--dataset`), else trained from `demos` scripted demonstrations (`robot_rl.hil.base`).
`out` receives `aggregate/` (the dataset), `policy/` (the latest policy, `load_policy`),
`curve.json`; an `out` that already holds an aggregate is refused (a new run would start from
the base with another run's corrections in its data).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from robot_rl.hil.curve import CurvePoint, HilRunConfig, autonomous_success
from robot_rl.policies.diffusion import DiffusionConfig


@dataclass
class HgDaggerConfig(HilRunConfig):
    dataset: str = ""
    """Demonstrations to aggregate with (default: the dataset the base's config.json names, or the
    demonstrations recorded for the base)."""
    round_s: float = 180.0
    """Operator seconds (summed over envs) between fine-tunings."""
    finetune_steps: int = 500
    """Gradient steps per round (warm-started)."""
    finetune_lr: float = 1e-4
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """The base's architecture and training when one is trained here (`steps`), the batch size of
    fine-tuning."""
    dr: str = "train"
    """Domain randomization of the supervised and the evaluation envs."""

    def validate(self) -> None:
        if self.num_envs < 1 or self.eval_episodes < 1:
            raise ValueError(f"num_envs and eval_episodes must be >= 1, got {self.num_envs} and {self.eval_episodes}")
        if self.operator_budget_s <= 0 or self.round_s <= 0:
            raise ValueError(f"operator_budget_s and round_s must be > 0, got {self.operator_budget_s} and "
                             f"{self.round_s}")
        if self.finetune_steps < 1:
            raise ValueError(f"finetune_steps must be >= 1, got {self.finetune_steps}")
        self.diffusion.validate()


def as_config(cfg: HilRunConfig) -> HgDaggerConfig:
    if isinstance(cfg, HgDaggerConfig):
        return cfg
    return HgDaggerConfig(**{f.name: getattr(cfg, f.name) for f in fields(HilRunConfig)})


def operator_kwargs(overrides: dict) -> dict:
    """`HilRunConfig.operator` as `SimulatedOperator` keyword arguments; values given as strings
    (the command line: `--operator takeover_s 0.8 reaction_delay_s 0.5`) are converted."""
    import inspect

    from robot_rl.hil.operator import SimulatedOperator

    params = inspect.signature(SimulatedOperator.__init__).parameters
    known = [k for k, p in params.items() if p.kind == p.KEYWORD_ONLY and k != "expert"]
    out = {}
    for k, v in overrides.items():
        if k not in known:
            raise ValueError(f"--operator: unknown setting {k!r}; use any of {', '.join(known)}")
        try:
            out[k] = type(params[k].default)(v)
        except ValueError:
            raise ValueError(f"--operator: {k} must be a number, got {v!r}") from None
    return out


def finetune(model, arrays: dict, cfg: HgDaggerConfig, round_index: int):
    """The policy trained `finetune_steps` more on the labelled windows of `arrays` (a new object)."""
    from robot_rl.diffusion_train import train_diffusion
    from robot_rl.hil.aggregate import FLAG, LabelIndex

    mc = model.cfg
    index = LabelIndex(arrays["episode_index"], arrays[FLAG], mc.obs_horizon, mc.pred_horizon, mc.execution_horizon)
    tcfg = DiffusionConfig.from_dict({**mc.to_dict(), "steps": cfg.finetune_steps, "lr": cfg.finetune_lr,
                                      "batch_size": cfg.diffusion.batch_size,
                                      "warmup_steps": min(cfg.diffusion.warmup_steps, cfg.finetune_steps // 10),
                                      "seed": cfg.seed * 1000 + round_index, "log_interval": cfg.finetune_steps})
    return train_diffusion(arrays, tcfg, log=lambda s: None, init=model, index=index)


def label_loss(model, arrays: dict, labelled: np.ndarray, windows: int = 256, seed: int = 0) -> float:
    """Mean denoising loss of `model` on (up to) `windows` windows of the frames flagged in
    `labelled` (same noise and windows for the same seed): how well it fits those labels."""
    from robot_rl.hil.aggregate import LabelIndex

    mc = model.cfg
    index = LabelIndex(arrays["episode_index"], labelled, mc.obs_horizon, mc.pred_horizon, mc.execution_horizon)
    ids = np.random.default_rng(seed).choice(len(index), min(windows, len(index)), replace=False)
    o, a = index.batch(ids)
    obs, act = torch.from_numpy(arrays["observation.state"]), torch.from_numpy(arrays["action"])
    with torch.no_grad():
        return float(model.loss(obs[torch.from_numpy(o)], act[torch.from_numpy(a)],
                                generator=torch.Generator().manual_seed(seed)))


def evaluate(model, cfg: HgDaggerConfig) -> tuple[float, int]:
    """Autonomous success (no operator) under `cfg.dr`, on the same episodes as the other methods
    (`robot_rl.hil.curve.autonomous_success`)."""
    return autonomous_success(cfg, model, dr=cfg.dr), cfg.eval_episodes


class Episodes:
    """Per-env frames of the episodes in progress; an ended episode with an intervention is
    written to the dataset at once."""

    def __init__(self, n: int, writer, task: str):
        self.buf: list[list[tuple]] = [[] for _ in range(n)]
        self.writer, self.task = writer, task
        self.saved = self.labels = 0

    def add(self, obs: np.ndarray, q: np.ndarray, action: np.ndarray, gated: np.ndarray) -> None:
        for i, b in enumerate(self.buf):
            b.append((obs[i], action[i], q[i], gated[i]))

    def end(self, i: int, success: bool) -> None:
        frames, self.buf[i] = self.buf[i], []
        if not any(f[3] for f in frames):
            return
        try:
            for o, a, q, g in frames:
                self.writer.add_frame({"observation.state": o, "action": a, "observation.joint_pos": q,
                                       "intervention": np.array(bool(g))}, task=self.task)
        except Exception:
            self.writer.discard_episode()
            raise
        self.writer.save_episode(success=success)
        self.saved += 1
        self.labels += int(sum(f[3] for f in frames))


def run(cfg: HilRunConfig, log=print) -> list[CurvePoint]:
    from robot_rl.diffusion_train import save_policy
    from robot_rl.hil.aggregate import load_aggregate, open_aggregate
    from robot_rl.hil.base import ensure_base, load_diffusion
    from robot_rl.hil.operator import SimulatedOperator
    from robot_rl.residual import BaseChunker
    from robot_rl.sim import make_env

    cfg = as_config(cfg)
    cfg.validate()
    torch.set_num_threads(max(1, cfg.torch_threads))
    out = Path(cfg.out or tempfile.mkdtemp(prefix=f"hg-dagger-{cfg.task}-"))
    out.mkdir(parents=True, exist_ok=True)
    if cfg.base:
        base_dir = Path(cfg.base)
        named = json.loads((base_dir / "config.json").read_text()).get("dataset") \
            if (base_dir / "config.json").is_file() else None
        demos = cfg.dataset or named
    else:
        base_dir, recorded = ensure_base(cfg.task, out, cfg.demos, cfg.seed, cfg.diffusion, cfg.nthread, log)
        demos = cfg.dataset or str(recorded)
    if (out / "aggregate" / "meta" / "info.json").is_file():
        raise ValueError(f"{out} already holds an HG-DAgger run (aggregate/, kept as it is); give a new --out")
    if not demos:
        raise ValueError(f"the base {base_dir} names no demonstration dataset; give --dataset DIR "
                         "(the demonstrations it was trained on)")
    env = make_env(cfg.task, cfg.num_envs, dr=cfg.dr, seed=cfg.seed, nthread=cfg.nthread)
    try:
        model = load_diffusion(base_dir, cfg.task, env.num_obs["policy"], env.num_actions)
        writer = open_aggregate(out / "aggregate", env, demos)
        return _loop(cfg, env, model, writer, out, log, SimulatedOperator, BaseChunker, save_policy, load_aggregate)
    finally:
        env.sim.close()


def _loop(cfg, env, model, writer, out, log, SimulatedOperator, BaseChunker, save_policy, load_aggregate):
    n = env.num_envs
    op = SimulatedOperator(env, cfg.seed, **operator_kwargs(cfg.operator))
    episodes = Episodes(n, writer, cfg.task)
    success, eval_n = evaluate(model, cfg)
    curve = [CurvePoint(0.0, 0.0, 0, success, eval_n, 0.0, 0)]
    log(f"round 0  operator 0.0 min  interventions 0  intervention rate -  success {success:.1%} "
        f"({eval_n} episodes, the base)")
    wall, updates, rnd = 0.0, 0, 0
    with torch.inference_mode():
        obs = env.reset()
        op.reset(env, torch.arange(n, device=env.device))
        chunker = BaseChunker(model, n, env.device, seed=cfg.seed)
        chunker.reset(obs["policy"])
    while op.operator_time_s < cfg.operator_budget_s - 1e-9:
        rnd += 1
        t0 = time.perf_counter()
        target = min(cfg.operator_budget_s, op.operator_time_s + cfg.round_s)
        watched0, gated0, takeovers0, ended, supervised_ok = op.watched_steps, op.intervened_steps, op.takeovers, 0, 0
        saved0, labels0 = episodes.saved, episodes.labels
        with torch.inference_mode():
            while op.operator_time_s < target - 1e-9:
                o, q = obs["policy"].cpu().numpy().copy(), env.joint_pos.cpu().numpy().copy()
                step = op.step(env, obs, chunker.action())
                episodes.add(o, q, step.action.cpu().numpy().copy(), step.intervening.cpu().numpy().copy())
                obs, _, terminated, truncated, info = env.step(step.action)
                chunker.idx[step.intervening & (op.hold == 0)] = chunker.H  # let go: plan from here
                chunker.observe(obs["policy"], terminated | truncated)
                ep = info["episode"]
                ids = ep["env_ids"].cpu().tolist()
                for i, s in zip(ids, (ep["success"].cpu().numpy() > 0.5).tolist()):
                    episodes.end(i, s)
                    supervised_ok += int(s)
                ended += len(ids)
                if ids:
                    op.reset(env, torch.as_tensor(ids, device=env.device))
        arrays = load_aggregate(writer.root, env)
        model = finetune(model, arrays, cfg, rnd)
        updates += cfg.finetune_steps
        with torch.inference_mode():
            chunker.base = model
            chunker.idx[:] = chunker.H  # the new policy plans at once
        wall += time.perf_counter() - t0
        save_policy(model, out / "policy")
        success, eval_n = evaluate(model, cfg)
        curve.append(CurvePoint(op.operator_time_s, op.intervention_time_s, op.takeovers, success, eval_n, wall,
                                updates))
        (out / "curve.json").write_text(json.dumps([p.to_dict() for p in curve], indent=2))
        watched, gated = op.watched_steps - watched0, op.intervened_steps - gated0
        log(f"round {rnd}  operator {op.operator_time_s / 60:.1f} min  interventions {op.takeovers} "
            f"(+{op.takeovers - takeovers0} in {ended} episodes, {supervised_ok / max(ended, 1):.0%} succeeded "
            f"supervised)  intervention rate {gated / max(watched, 1):.1%} of the steps  success {success:.1%} "
            f"({eval_n} episodes)  labels +{episodes.labels - labels0} in {episodes.saved - saved0} episodes  "
            f"{wall:.0f} s")
    return curve
