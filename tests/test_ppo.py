"""PPO learns a small task; checkpoints resume exactly; bad checkpoints give clear errors."""

import json

import pytest
import torch

import tests.toy_task  # noqa: F401  registers toy-reach
from robot_rl import checkpoint as ckpt
from robot_rl.config import EnvConfig, PPOConfig, TrainConfig
from robot_rl.evaluate import evaluate
from robot_rl.train import train


def toy_config(tmp_path, **kw) -> TrainConfig:
    base = dict(
        env=EnvConfig(task="toy-reach", num_envs=64, nthread=1),
        ppo=PPOConfig(num_steps_per_env=20, init_noise_std=0.5, entropy_coef=0.0, actor_hidden=(32, 32),
                      critic_hidden=(32, 32)),
        max_iterations=40, save_interval=20, log_root=str(tmp_path), run_name="toy", progress=False,
        eval_interval=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_ppo_learns_toy_reach(tmp_path):
    untrained = evaluate(*_untrained_checkpoint(tmp_path), episodes=128, dr="train")
    r = train(toy_config(tmp_path))
    report = evaluate(r.checkpoint, episodes=128, dr="train")
    assert report["success_rate"] >= 0.8, report["success_rate"]
    assert report["mean_return"] > untrained["mean_return"] + 1.0
    run = r.run_dir
    for f in ("config.json", "command.txt", "progress.csv", "learning_curve.png", "summary.json"):
        assert (run / f).is_file(), f
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((run / "config.json").read_text())
    assert saved["ppo"]["num_steps_per_env"] == 20 and saved["env"]["task"] == "toy-reach"


def _untrained_checkpoint(tmp_path):
    r = train(toy_config(tmp_path / "u", max_iterations=1))
    return (r.checkpoint,)


def test_resume_continues_from_checkpoint(tmp_path):
    full = train(toy_config(tmp_path / "a", max_iterations=4, save_interval=2))
    part = train(toy_config(tmp_path / "b", max_iterations=2, save_interval=2))
    resumed = train(toy_config(tmp_path / "b", max_iterations=4, save_interval=2, resume=str(part.run_dir)))
    assert resumed.iterations == 4 and resumed.run_dir == part.run_dir
    a = ckpt.load(full.checkpoint)
    b = ckpt.load(resumed.checkpoint)
    assert b["iteration"] == 4 and b["total_steps"] == a["total_steps"]
    # resuming restores weights, optimizer and normalizer: training goes on, not from scratch
    first = ckpt.load(part.checkpoint)
    w0, w1 = first["model"]["actor.0.weight"], b["model"]["actor.0.weight"]
    assert not torch.equal(w0, w1)
    assert b["model"]["actor_norm.count"] > first["model"]["actor_norm.count"]
    lines = (part.run_dir / "progress.csv").read_text().splitlines()
    assert [ln.split(",")[0] for ln in lines[1:]] == ["1", "2", "3", "4"]


def test_checkpoint_errors(tmp_path):
    r = train(toy_config(tmp_path, max_iterations=1))
    with pytest.raises(ckpt.CheckpointError, match="trained on task 'toy-reach', not 'iiwa-reach'"):
        ckpt.load(r.checkpoint, task="iiwa-reach")
    data = torch.load(r.checkpoint, weights_only=True)
    del data["model"]["actor.0.weight"]
    broken = tmp_path / "broken.pt"
    torch.save(data, broken)
    with pytest.raises(ckpt.CheckpointError, match="missing tensors"):
        evaluate(broken, episodes=4)
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(r.checkpoint.read_bytes()[:200])
    with pytest.raises(ckpt.CheckpointError, match="damaged"):
        ckpt.load(truncated)
    with pytest.raises(ckpt.CheckpointError, match="no run directory"):
        ckpt.load(tmp_path / "nope")
    with pytest.raises(ValueError, match="already exists"):
        train(toy_config(tmp_path, max_iterations=1))


def test_recurrent_ppo_learns_toy_reach_and_resets_memory_at_episode_ends(tmp_path):
    """The recurrent kind (GRU actor, memory carried through rollouts, cleared at episode ends)
    learns the toy task (it needs about twice the MLP's iterations); evaluation clears memory per env
    as episodes end."""
    cfg = toy_config(tmp_path, max_iterations=80)
    cfg.ppo.policy, cfg.ppo.rnn_hidden = "recurrent", 32
    r = train(cfg)
    report = evaluate(r.checkpoint, episodes=128, dr="train")
    assert report["success_rate"] >= 0.8, report["success_rate"]
    ck = ckpt.load(r.checkpoint)
    assert ck["kind"] == "recurrent" and "rnn.weight_hh_l0" in ck["model"]


def test_recurrent_memory_is_cleared_exactly_for_finished_envs():
    from robot_rl.config import PPOConfig
    from robot_rl.policies.recurrent import RecurrentActorCritic

    ac = RecurrentActorCritic(5, 6, 2, PPOConfig(policy="recurrent", rnn_hidden=8))
    mem = torch.ones(1, 4, 8)
    out = ac.reset_memory(mem, torch.tensor([False, True, False, True]))
    assert out[0, 1].abs().sum() == 0 and out[0, 3].abs().sum() == 0
    assert torch.equal(out[0, 0], mem[0, 0]) and torch.equal(out[0, 2], mem[0, 2])
    # the sequence used by PPO's update equals step-by-step execution with the same resets
    _assert_sequence_equals_steps(ac, torch.randn(6, 4, 5), torch.randn(1, 4, 8), restart=(3, 1))


def _assert_sequence_equals_steps(ac, obs, m0, restart):
    """`sequence_mean` over `obs` [T, B, D] from memory `m0`, with an episode restarting at
    (step, env) `restart`, equals `act_step` run step by step with the same resets."""
    starts = torch.zeros(obs.shape[:2], dtype=torch.bool)
    starts[restart] = True
    seq = ac.sequence_mean(obs, m0, starts)
    m = m0
    for t in range(obs.shape[0]):
        m = ac.reset_memory(m, starts[t])
        mean, m = ac.act_step(obs[t], m)
        assert torch.allclose(mean, seq[t], atol=1e-6)


def test_history_actor_sees_a_window_of_the_last_observations():
    """`rnn_type="history"`: the memory holds the previous history_length - 1 observations; the head
    sees [oldest .. current]; the PPO sequence equals stepwise execution with the same resets."""
    from robot_rl.config import PPOConfig
    from robot_rl.policies.recurrent import RecurrentActorCritic

    ac = RecurrentActorCritic(3, 4, 2, PPOConfig(policy="recurrent", rnn_type="history", history_length=3,
                                                 normalize_obs=False))
    assert ac.memory_rows == 2 and ac.hidden == 3 and ac.actor[0].in_features == 9
    m = ac.initial_memory(1)
    windows = []
    for t in range(4):
        obs = torch.full((1, 3), float(t + 1))
        out, m = ac._rnn(obs.unsqueeze(0), m)
        windows.append(out[0, 0, ::3].tolist())  # first feature of each of the 3 observations
    assert windows == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]  # zeros before the episode's first
    _assert_sequence_equals_steps(ac, torch.randn(5, 4, 3), torch.randn(2, 4, 3), restart=(2, 0))


def test_the_best_evaluated_policy_is_kept(tmp_path):
    r = train(toy_config(tmp_path, max_iterations=6, eval_interval=2, eval_episodes=16))
    rows = [ln.split(",") for ln in (r.run_dir / "progress.csv").read_text().splitlines()[1:]]
    evals = {int(x[0]): float(x[7]) for x in rows if x[7]}
    assert sorted(evals) == [2, 4, 6]
    best_it = max(evals, key=lambda k: (evals[k], -k))  # the first of equal bests is kept
    assert r.best_iteration == best_it and r.best_eval_success == pytest.approx(evals[best_it], abs=1e-4)
    assert r.best_checkpoint == r.run_dir / "checkpoints" / "best.pt"
    assert ckpt.load(r.best_checkpoint)["iteration"] == best_it
    assert ckpt.latest(r.run_dir).name == "model_6.pt"  # `latest` still means the last iteration
