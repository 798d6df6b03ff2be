"""Residual RL on a frozen diffusion base (issue 10): demonstrations -> diffusion base -> residual
PPO -> one artifact. On a one-joint toy task so the whole path runs in seconds:

* base + residual == base when training starts (zero-initialised last layer);
* the base runs with receding horizon in training (`BaseChunker`) exactly as the artifact's
  runtime runs it (same noise -> same actions, re-planned every `execution_horizon` steps);
* the exported artifact (base + residual) is verified and runs one action per call;
* bad input: a base of another task, an artifact instead of the training directory, a residual
  run without a base.
"""

import json

import numpy as np
import pytest
import torch

import tests.test_record  # noqa: F401  (registers toy-reach-expert, a toy task with a scripted expert)
from robot_rl.artifact import PolicyArtifact
from robot_rl.cli import main as cli_main
from robot_rl.config import TrainConfig
from robot_rl.imitation import TrainDiffusionConfig, train_diffusion_run
from robot_rl.policies.diffusion import DiffusionConfig
from robot_rl.record import RecordConfig, record
from robot_rl.residual import BaseChunker, ResidualEnv, ResidualError, load_base
from robot_rl.sim import make_env
from robot_rl.train import train

TINY = dict(down_dims=(16, 32), pred_horizon=8, execution_horizon=4, step_embed_dim=16, n_groups=4,
            num_inference_steps=4, num_train_timesteps=20)
TASK = "toy-reach-expert"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("residual")
    r = record(RecordConfig(task=TASK, demos=6, out=str(root / "demos"), num_envs=3, dr="off"), log=lambda s: None)
    out = root / "base"
    res = train_diffusion_run(TrainDiffusionConfig(
        dataset=str(r.root), out=str(out), eval_episodes=8,
        diffusion=DiffusionConfig(**TINY, steps=150, batch_size=32, lr=3e-3, warmup_steps=10, log_interval=1000)),
        log=lambda s: None)
    assert res["demos"] == 6 and 0.0 <= res["eval"]["success_rate"] <= 1.0
    assert json.loads((out / "config.json").read_text())["task"] == TASK
    return out


def _residual_cfg(base_dir, tmp_path, **kw):
    cfg = TrainConfig()
    cfg.env.task, cfg.env.num_envs, cfg.env.dr, cfg.env.nthread = TASK, 16, "off", 1
    cfg.ppo.policy, cfg.ppo.num_steps_per_env, cfg.ppo.init_noise_std = "residual", 8, 0.5
    cfg.residual.base = str(base_dir)
    cfg.max_iterations, cfg.eval_interval, cfg.eval_episodes = 2, 1, 4  # evaluation between iterations too
    cfg.progress, cfg.torch_threads = False, 1
    cfg.log_root, cfg.run_name = str(tmp_path), "res"
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_residual_starts_as_the_base(base_dir):
    from robot_rl.policies import DeterministicActor, build_actor_critic

    env = ResidualEnv(make_env(TASK, 5, dr="off", seed=3, nthread=1), load_base(base_dir), scale=0.1, seed=3)
    cfg = _residual_cfg(base_dir, "/tmp")
    ac = build_actor_critic(cfg, env.num_obs, env.num_actions)
    actor = DeterministicActor(ac, env.num_envs)
    obs = env.reset()
    d = env.env.num_obs["policy"]
    applied = []
    orig = env.env.step
    env.env.step = lambda a: (applied.append(a.clone()), orig(a))[1]
    for _ in range(6):
        base = env.base_action.clone()
        assert torch.equal(obs["policy"][:, d:], base)  # the residual sees the base action
        res = actor(obs["policy"])
        assert torch.all(res == 0)
        obs, *_ = env.step(res)
        assert torch.equal(applied[-1], base.clamp(-1, 1))


def test_chunker_replans_every_execution_horizon_and_at_episode_starts(base_dir):
    base = load_base(base_dir)
    ch = BaseChunker(base, 3, seed=0)
    calls = []
    sample = base.sample
    base.sample = lambda h, n: (calls.append(len(h)), sample(h, n))[1]
    obs = torch.zeros(3, base.obs_dim)
    ch.reset(obs)
    for t in range(9):
        ch.action()
        ch.observe(obs + t, torch.tensor([t == 1, False, False]))
    # step 0: all plan; env 0's episode restarts after step 1, so it plans at steps 2 and 6,
    # envs 1 and 2 at steps 4 and 8
    assert calls == [3, 1, 2, 1, 2]
    base.sample = sample


def test_runtime_matches_training_chunker_given_the_same_noise(base_dir, tmp_path):
    cfg = _residual_cfg(base_dir, tmp_path)
    result = train(cfg)
    out = tmp_path / "artifact"
    assert cli_main(["export", "--checkpoint", str(result.run_dir), "--out", str(out)]) == 0
    art = PolicyArtifact.load(out)
    spec = art.spec
    assert spec["policy"]["kind"] == "residual" and spec["policy"]["base"]["kind"] == "diffusion"
    assert {"denoiser.onnx", "residual.onnx", "parity.json"} <= set(spec["files"])
    parity = json.loads((out / "parity.json").read_text())
    assert parity["max_abs_error"] <= 1e-4

    base = load_base(base_dir)
    rt = art.runtime
    ch = BaseChunker(base, 1, seed=0)
    gen = np.random.default_rng(0)
    x = gen.uniform(-0.5, 0.5, (12, base.obs_dim)).astype(np.float32)
    rt.reset()
    ch.reset(torch.from_numpy(x[:1]))
    noise = gen.standard_normal((12, base.cfg.pred_horizon, base.action_dim)).astype(np.float32)
    for t in range(12):
        if t:
            ch.observe(torch.from_numpy(x[t:t + 1]), torch.tensor([False]))
        want = ch.action(torch.from_numpy(noise[t:t + 1])).numpy()[0]
        got = rt.base_action(x[t], noise[t:t + 1])
        np.testing.assert_allclose(got, want, atol=2e-4)
    chunk = rt.act(x[0])
    assert chunk.actions.shape == (1, base.action_dim) and chunk.offsets_s.tolist() == [0.0]
    with pytest.raises(ValueError, match="observation has"):
        rt.act(np.zeros(base.obs_dim + 1))


def test_bad_bases_are_refused_in_one_line(base_dir, tmp_path):
    meta = json.loads((base_dir / "config.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    for f in ("policy.safetensors",):
        (other / f).write_bytes((base_dir / f).read_bytes())
    (other / "config.json").write_text(json.dumps({**meta, "task": "panda-reach"}))
    with pytest.raises(ResidualError, match="trained on task 'panda-reach', not 'toy-reach-expert'"):
        train(_residual_cfg(other, tmp_path))
    art = tmp_path / "art"
    art.mkdir()
    (art / "spec.json").write_text("{}")
    with pytest.raises(ResidualError, match="exported artifact"):
        load_base(art)
    cfg = _residual_cfg(base_dir, tmp_path)
    cfg.residual.base = ""
    with pytest.raises(ValueError, match="needs --residual.base"):
        cfg.validate()


def test_artifact_evaluation_runs_a_diffusion_policy_with_receding_horizon(base_dir, tmp_path):
    """In simulation (`robot-rl eval --artifact`) as on the robot: a chunk every `execution_horizon`
    steps, and every other step's observation handed to the runtime's history."""
    from robot_rl.diffusion_export import export_diffusion_for_env
    from robot_rl.evaluate_artifact import ArtifactPolicy

    env = make_env(TASK, 2, dr="off", seed=0, nthread=1)
    export_diffusion_for_env(load_base(base_dir), tmp_path / "dp", env)
    policy = ArtifactPolicy(PolicyArtifact.load(tmp_path / "dp"), 2)
    calls = {"act": 0, "observe": 0}
    for rt in policy.runtimes:
        for name in calls:
            fn = getattr(rt, name)
            setattr(rt, name, lambda *a, _fn=fn, _n=name, **k: (calls.__setitem__(_n, calls[_n] + 1), _fn(*a, **k))[1])
    obs = env.reset()["policy"]
    for _ in range(10):  # execution horizon 4: chunks at steps 0, 4, 8
        obs, *_ = env.step(policy(obs))
        obs = obs["policy"]
    # act() pushes its own observation through observe(): every step's observation enters the
    # history exactly once (10 steps x 2 envs), 3 of them with a new chunk
    assert calls == {"act": 2 * 3, "observe": 2 * 10}
