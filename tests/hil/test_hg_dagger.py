"""HG-DAgger for the diffusion policy on a toy task: rounds append the intervention episodes to the
aggregate dataset (contiguous indices, intervention flag, demonstrations first), only the gated
steps are labels, fine-tuning fits the corrections, the CLI prints one line per round, and a
dataset of another robot is refused with one line."""

import json

import numpy as np
import pytest
import torch

from robot_rl.cli import main as cli_main
from robot_rl.datasets import DatasetError, DatasetWriter, load_dataset
from robot_rl.hil import operator as operator_module
from robot_rl.hil.aggregate import FLAG, LabelIndex, load_aggregate
from robot_rl.hil.hg_dagger import HgDaggerConfig, as_config, finetune, label_loss, operator_kwargs, run
from robot_rl.hil.curve import HilRunConfig
from robot_rl.policies.diffusion import DiffusionConfig
from tests.hil.toy_hil import TASK

TINY = DiffusionConfig(obs_horizon=2, pred_horizon=8, execution_horizon=4, down_dims=(16, 32), step_embed_dim=16,
                       num_train_timesteps=20, num_inference_steps=4, steps=60, batch_size=16, warmup_steps=5)
OPERATOR = {"reaction_delay_s": 0.04, "takeover_s": 0.1, "drift_threshold": 0.15, "drift_smoothing": 0.5}
DEMOS = 6
TINY_FLAGS = ["--diffusion.obs-horizon", "2", "--diffusion.pred-horizon", "8", "--diffusion.execution-horizon", "4",
              "--diffusion.down-dims", "16", "32", "--diffusion.step-embed-dim", "16",
              "--diffusion.num-train-timesteps", "20", "--diffusion.num-inference-steps", "4",
              "--diffusion.steps", "60", "--diffusion.batch-size", "16", "--diffusion.warmup-steps", "5"]


class LoggingOperator(operator_module.SimulatedOperator):
    """Remembers, per observation it saw, the executed action and the flag it returned."""

    seen: dict = {}

    def step(self, env, obs, policy_action):
        s = super().step(env, obs, policy_action)
        for o, a, g in zip(obs["policy"].numpy(), s.action.numpy(), s.intervening.numpy()):
            LoggingOperator.seen[o.tobytes()] = (a.copy(), bool(g))
        return s


@pytest.fixture(scope="module")
def dagger_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hgd")
    LoggingOperator.seen = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(operator_module, "SimulatedOperator", LoggingOperator)
    lines = []
    cfg = HgDaggerConfig(task=TASK, seed=0, demos=DEMOS, operator_budget_s=4 * 0.02 * 40, round_s=4 * 0.02 * 20,
                         num_envs=4, eval_episodes=6, out=str(out), operator=dict(OPERATOR), finetune_steps=15,
                         diffusion=TINY, dr="off")
    try:
        curve = run(cfg, log=lines.append)
    finally:
        mp.undo()
    return out, curve, lines, dict(LoggingOperator.seen)


def test_rounds_report_a_curve(dagger_run):
    out, curve, lines, _ = dagger_run
    assert len(curve) == 3  # the base, then two rounds of 1.6 operator seconds
    assert [p.operator_time_s for p in curve] == pytest.approx([0.0, 1.6, 3.2])
    assert curve[0].interventions == 0 and curve[2].interventions >= curve[1].interventions > 0
    assert all(0 <= p.success <= 1 and p.episodes == 6 for p in curve)
    assert [p.updates for p in curve] == [0, 15, 30]
    assert 0 < curve[1].intervention_time_s <= curve[1].operator_time_s
    assert [json.loads((out / "curve.json").read_text())[i]["operator_time_s"] for i in range(3)] == \
        pytest.approx([0.0, 1.6, 3.2])
    assert lines[-1].startswith("round 2  operator 0.1 min  interventions") and "success" in lines[-1]
    assert (out / "policy" / "policy.safetensors").is_file()


def test_intervention_episodes_are_appended_with_only_gated_steps_labelled(dagger_run):
    out, curve, _, seen = dagger_run
    ds = load_dataset(out / "aggregate")  # checks contiguous episode_index / index
    ds.verify_stats()
    assert ds.num_episodes > DEMOS
    for e in range(DEMOS):
        assert ds.episode(e)[FLAG].all()  # a demonstration is all labels
    gated_total = 0
    for e in range(DEMOS, ds.num_episodes):
        ep = ds.episode(e)
        flags = ep[FLAG].astype(bool)
        assert flags.any() and not flags.all()  # the policy's steps are kept, unflagged
        for o, a, g in zip(ep["observation.state"], ep["action"], flags):
            act, gated = seen[o.astype(np.float32).tobytes()]
            assert gated == g and np.allclose(a, act)  # the executed action, flagged where the person commanded
        gated_total += int(flags.sum())
    assert ds.success()[DEMOS:].min() >= 0  # success labels written
    arrays = load_aggregate(out / "aggregate", _env())
    assert int(arrays[FLAG].sum()) - int((arrays["episode_index"] < DEMOS).sum()) == gated_total
    index = LabelIndex(arrays["episode_index"], arrays[FLAG], 2, 8, 4)
    o, a = index.batch(np.arange(len(index)))
    assert arrays[FLAG][a].all()  # only labels are targets
    assert (arrays["episode_index"][o] == arrays["episode_index"][a[:, :1]]).all()


def _env():
    from robot_rl.sim import make_env

    return make_env(TASK, 1, dr="off", nthread=1)


def test_finetuning_fits_the_corrections(dagger_run):
    out, *_ = dagger_run
    from robot_rl.diffusion_train import load_policy

    base = load_policy(out / "base")
    arrays = load_aggregate(out / "aggregate", _env())
    corrections = arrays[FLAG] & (arrays["episode_index"] >= DEMOS)
    before = label_loss(base, arrays, corrections, seed=1)
    cfg = HgDaggerConfig(task=TASK, seed=0, finetune_steps=60, finetune_lr=1e-3, diffusion=TINY)
    tuned = finetune(base, arrays, cfg, 1)
    after = label_loss(tuned, arrays, corrections, seed=1)
    assert after < 0.8 * before
    assert torch.equal(base.obs_min, tuned.obs_min)  # normalization kept (warm start)


def test_label_index_windows():
    ep = np.array([0] * 6 + [1] * 12)
    lab = np.zeros(18, dtype=bool)
    lab[2:4] = True  # a short takeover in episode 0
    lab[6:18] = True  # a demonstration
    idx = LabelIndex(ep, lab, 2, 8, 4)
    cur = idx.rows[:, 0]
    assert set(cur[cur < 6]) == {2}  # run 2..3: max(first, last - 3) -> only its first frame
    assert list(cur[cur >= 6]) == list(range(6, 15))  # 6..17: up to 17 - 3
    o, a = idx.batch(np.arange(len(idx)))
    assert o[0].tolist() == [1, 2] and a[0].tolist() == [2, 2, 3, 3, 3, 3, 3, 3]
    assert o[1].tolist() == [6, 6] and a[1].tolist() == [6] * 2 + list(range(7, 13))


def test_a_dataset_of_another_robot_is_refused(dagger_run, tmp_path, capsys):
    out, *_ = dagger_run
    other = tmp_path / "arm_demos"
    w = DatasetWriter(other, 50, {"observation.state": {"dtype": "float32", "shape": [2], "names": None},
                                  "action": {"dtype": "float32", "shape": [1], "names": None},
                                  "observation.joint_pos": {"dtype": "float32", "shape": [1], "names": None}},
                      robot_info={"robot": "panda", "joint_names": ["j1"], "task": TASK})
    w.add_frame({"observation.state": np.zeros(2), "action": np.zeros(1), "observation.joint_pos": np.zeros(1)},
                task="x")
    w.save_episode(True)
    cfg = HgDaggerConfig(task=TASK, base=str(out / "base"), dataset=str(other), out=str(tmp_path / "run"),
                         num_envs=2, eval_episodes=2, operator_budget_s=0.1, diffusion=TINY)
    with pytest.raises(DatasetError, match="recorded on robot 'panda'"):
        run(cfg, log=lambda s: None)
    rc = cli_main(["hg-dagger", "--task", TASK, "--base", str(out / "base"), "--dataset", str(other),
                   "--out", str(tmp_path / "run2"), "--num-envs", "2", "--eval-episodes", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "robot 'panda'" in err[0] and "give the demonstrations of toy-slider" in err[0]


def test_cli_runs_rounds_from_a_base(dagger_run, tmp_path, capsys):
    out, *_ = dagger_run
    rc = cli_main(["hg-dagger", "--task", TASK, "--base", str(out / "base"), "--out", str(tmp_path / "cli"),
                   "--num-envs", "2", "--eval-episodes", "2", "--operator-budget-s", "0.8", "--round-s", "0.8",
                   "--finetune-steps", "5", "--dr", "off",
                   "--operator", "takeover_s", "0.1", "reaction_delay_s", "0.04"]
                  + TINY_FLAGS)
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0, lines
    assert lines[0].startswith("round 0") and lines[1].startswith("round 1  operator 0.0 min")
    assert "intervention rate" in lines[1] and "success" in lines[1]
    assert load_dataset(tmp_path / "cli" / "aggregate").num_episodes >= DEMOS  # the base's demos, then more


def test_an_earlier_run_is_not_mixed_in(dagger_run):
    out, *_ = dagger_run
    with pytest.raises(ValueError, match="already holds an HG-DAgger run"):
        run(HgDaggerConfig(task=TASK, base=str(out / "base"), out=str(out), diffusion=TINY), log=lambda s: None)


def test_a_plain_hil_config_runs_with_defaults():
    cfg = as_config(HilRunConfig(task=TASK, seed=3, num_envs=5))
    assert isinstance(cfg, HgDaggerConfig) and cfg.seed == 3 and cfg.num_envs == 5 and cfg.finetune_steps == 500
    with pytest.raises(ValueError, match="round_s"):
        HgDaggerConfig(round_s=0).validate()
    assert operator_kwargs({"takeover_s": "0.5", "max_takeovers": "2"}) == {"takeover_s": 0.5, "max_takeovers": 2}
    with pytest.raises(ValueError, match="unknown setting 'reaction_s'"):
        operator_kwargs({"reaction_s": 1})


def test_every_method_evaluates_a_seed_on_the_same_episodes(dagger_run):
    from robot_rl.hil import serl
    from robot_rl.hil.curve import autonomous_success
    from robot_rl.hil.hg_dagger import evaluate
    from robot_rl.residual import load_base

    out, curve, *_ = dagger_run
    base = load_base(out / "base", TASK)
    assert evaluate(base, HgDaggerConfig(task=TASK, seed=0, eval_episodes=6, dr="off"))[0] == curve[0].success
    for seed in (1, 2):  # HG-DAgger used to evaluate every seed on seed 0's episodes
        cfg = HgDaggerConfig(task=TASK, seed=seed, eval_episodes=6, dr="off")
        assert cfg.eval_seed() == HilRunConfig(seed=seed).eval_seed() == 1000 + seed
        assert evaluate(base, cfg)[0] == autonomous_success(HilRunConfig(task=TASK, seed=seed, eval_episodes=6), base,
                                                            dr="off")
    assert serl.autonomous_success is autonomous_success  # HIL-SERL and RLIF evaluate with the same function
