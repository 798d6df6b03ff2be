"""The `diffusion` policy kind: the FiLM U-Net, EMA, normalization, training windows, training on a
toy task (DDPM and flow matching), the artifact (ONNX denoiser + numpy sampler) matching the torch
sampler given the same noise, checksums, the runtime's history and chunk, and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from robot_rl.artifact import FORMAT, ArtifactError, PolicyArtifact, spec_checksum
from robot_rl.diffusion_export import ExportError, export_diffusion, export_diffusion_for_env
from robot_rl.diffusion_train import SequenceIndex, load_policy, save_policy, train_diffusion
from robot_rl.policies.diffusion import EMA, DiffusionConfig, DiffusionPolicy
from robot_rl.policies.diffusion_net import ConditionalUnet1D

torch.set_num_threads(1)
TINY = dict(down_dims=(32, 64), kernel_size=3, step_embed_dim=32, pred_horizon=8, execution_horizon=4)


def spec_base(obs_dim, action_dim):
    return {"format": FORMAT, "task": "toy", "robot": {"name": "toy", "joint_names": ["j0"]},
            "observation": {"dim": obs_dim}, "action": {"dim": action_dim, "clip": [-1.0, 1.0]},
            "control": {"period_s": 0.05}}


def toy_arrays(episodes=30, length=20, seed=0):
    """obs = [c, phase, wiggle], c fixed per episode; action = [0.8 c, -0.5 c + 0.3 phase] (deterministic)."""
    rng = np.random.default_rng(seed)
    obs, act, ep = [], [], []
    for e in range(episodes):
        c, t = rng.uniform(-1, 1), np.arange(length)
        obs.append(np.stack([np.full(length, c), t / length, 0.1 * np.sin(t)], 1))
        act.append(np.stack([np.full(length, 0.8 * c), -0.5 * c + 0.3 * t / length], 1))
        ep.append(np.full(length, e))
    return {"observation.state": np.concatenate(obs).astype(np.float32),
            "action": np.concatenate(act).astype(np.float32), "episode_index": np.concatenate(ep)}


def toy_error(model, seed=0):
    """Median |sampled - true| over the whole predicted horizon, for held-out episode constants."""
    c = torch.linspace(-0.9, 0.9, 24)
    phase = torch.full_like(c, 0.5)
    obs = torch.stack([c, phase, torch.zeros_like(c)], 1)[:, None].repeat(1, model.cfg.obs_horizon, 1)
    a = model.sample(obs, generator=torch.Generator().manual_seed(seed))
    steps = torch.arange(model.cfg.pred_horizon) - (model.cfg.obs_horizon - 1)
    want0 = (0.8 * c)[:, None].expand(-1, model.cfg.pred_horizon)
    want1 = (-0.5 * c)[:, None] + 0.3 * (phase[:, None] + steps[None] / 20)
    return float(torch.cat([(a[..., 0] - want0).abs(), (a[..., 1] - want1).abs()]).median())


@pytest.fixture(scope="module")
def trained():
    out = {}
    for objective, steps in (("ddpm", 200), ("flow", 150)):
        cfg = DiffusionConfig(**TINY, objective=objective, steps=steps, batch_size=32, lr=3e-3, warmup_steps=10,
                              log_interval=50)
        logs = []
        out[objective] = (train_diffusion(toy_arrays(), cfg, log=logs.append), logs)
    return out


@pytest.fixture(scope="module")
def artifacts(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusion")
    return {k: (m, root / k, export_diffusion(m, root / k, spec_base(3, 2), seed=3)) for k, (m, _) in trained.items()}


def test_unet_shapes_and_film_conditioning():
    torch.manual_seed(0)
    net = ConditionalUnet1D(action_dim=7, cond_dim=2 * 30).eval()
    x, t = torch.randn(4, 16, 7), torch.full((4,), 10.0)
    cond = torch.randn(4, 60)
    y = net(x, t, cond)
    assert y.shape == (4, 16, 7)
    assert not torch.allclose(y, net(x, t, cond + 1.0), atol=1e-3), "the condition must change the output"
    assert not torch.allclose(y, net(x, torch.full((4,), 50.0), cond), atol=1e-3), "so must the diffusion step"
    # rows are independent: one row's condition does not leak into another (GroupNorm is per sample)
    c2 = cond.clone()
    c2[1] += 1.0
    y2 = net(x, t, c2)
    assert torch.allclose(y2[0], y[0], atol=1e-6) and not torch.allclose(y2[1], y[1], atol=1e-3)
    with pytest.raises(ValueError, match="divisible by 4"):
        DiffusionConfig(pred_horizon=10, down_dims=(32, 64, 128)).validate()


def test_ema_follows_diffusion_policy_schedule():
    model = torch.nn.Linear(3, 1)
    ema = EMA(model, power=0.75, max_value=0.9999)
    assert ema.get_decay(0) == 0.0 and ema.get_decay(1) == 0.0
    assert ema.get_decay(11) == pytest.approx(1 - 11 ** -0.75)
    assert ema.get_decay(10**9) == 0.9999
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay 0: a copy
    assert torch.equal(ema.model.weight, model.weight)
    ema.step_count = 11
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)
    d = 1 - 11 ** -0.75
    assert torch.allclose(ema.model.weight, torch.full_like(model.weight, d * 1.0 + (1 - d) * 3.0))


def test_normalization_round_trip_and_range():
    m = DiffusionPolicy(3, 2, DiffusionConfig(**TINY))
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(500, 3, generator=g) * torch.tensor([5.0, 0.1, 0.0]) + 2.0  # last dim constant
    act = torch.rand(500, 2, generator=g) * 0.6 - 0.2
    m.set_normalization(obs, act)
    n_obs, n_act = m.normalize_obs(obs), m.normalize_action(act)
    assert n_obs[:, :2].min() == pytest.approx(-1.0) and n_obs[:, :2].max() == pytest.approx(1.0)
    assert torch.all(n_obs[:, 2] == 0.0), "a constant dimension maps to 0"
    assert n_act.min() == pytest.approx(-1.0) and n_act.max() == pytest.approx(1.0)
    assert torch.allclose(m.unnormalize_action(n_act), act, atol=1e-6)
    with pytest.raises(ValueError, match="the policy has 3 / 2"):
        m.set_normalization(obs[:, :2], act)


def test_sequence_windows_pad_by_repeating_edge_frames():
    ep = np.array([0] * 5 + [1] * 3)
    idx = SequenceIndex(ep, obs_horizon=2, pred_horizon=4, execution_horizon=2)
    # starts -1..(5-4+1)=2 for episode 0 (4 windows), -1..(3-4+1)=0 for episode 1 (2 windows)
    assert len(idx) == 6
    frames = idx.frames(np.arange(6))
    assert frames[0].tolist() == [0, 0, 1, 2]  # the first window's current observation is frame 0
    assert frames[3].tolist() == [2, 3, 4, 4]  # the end padded with the last frame
    assert frames[4].tolist() == [5, 5, 6, 7] and frames[5].tolist() == [5, 6, 7, 7]
    with pytest.raises(ValueError, match="not contiguous"):
        SequenceIndex(np.array([0, 0, 1, 1, 0]), 2, 4, 2)
    bad = toy_arrays(episodes=2, length=4)
    bad["action"][5, 1] = np.nan
    with pytest.raises(ValueError, match="action has NaN or inf values \\(first at frame 5, episode 1\\)"):
        train_diffusion(bad, DiffusionConfig(**TINY, steps=1))


@pytest.mark.parametrize("objective", ["ddpm", "flow"])
def test_training_approaches_the_data(trained, objective):
    model, logs = trained[objective]
    losses = [float(line.split("loss ")[1].split()[0]) for line in logs if line.startswith("step ")]
    assert losses[-1] < 0.6 * losses[0], logs
    untrained = DiffusionPolicy(3, 2, model.cfg)
    untrained.load_state_dict({k: v for k, v in model.state_dict().items() if "min" in k or "max" in k}, strict=False)
    err, before = toy_error(model), toy_error(untrained)
    assert err < 0.15 and err < 0.4 * before, (err, before)


def test_checkpoint_round_trip(trained, tmp_path):
    model = trained["flow"][0]
    save_policy(model, tmp_path / "ck")
    again = load_policy(tmp_path / "ck")
    obs, noise = torch.rand(3, 2, 3), torch.randn(3, 8, 2)
    assert torch.equal(again.sample(obs, noise), model.sample(obs, noise))
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["config"]["objective"] == "flow"


@pytest.mark.parametrize("objective", ["ddpm", "flow"])
def test_artifact_sampler_matches_torch_with_the_same_noise(artifacts, objective):
    model, path, spec = artifacts[objective]
    parity = json.loads((path / "parity.json").read_text())
    assert parity["max_abs_error"] <= 1e-5
    p = spec["policy"]
    assert p["kind"] == "diffusion" and p["objective"] == objective and p["execution_horizon"] == 4
    assert p["sampler"]["scheduler"] == {"ddpm": "DDIMScheduler", "flow": "FlowMatchEulerDiscreteScheduler"}[objective]
    assert len(p["sampler"]["timesteps"]) == 10
    art = PolicyArtifact.load(path)
    g = torch.Generator().manual_seed(5)
    obs, noise = torch.rand(6, 2, 3, generator=g) * 2 - 1, torch.randn(6, 8, 2, generator=g)
    want = model.sample(obs, noise).clamp(-1, 1).numpy()
    assert np.max(np.abs(art.runtime.sample(obs.numpy(), noise.numpy()) - want)) <= 1e-5
    # act_batch: each row its own fresh history; the action at index To - 1
    got = art.runtime.act_batch(obs[:, -1].numpy(), noise=noise.numpy())
    hist = obs[:, -1:].repeat(1, 2, 1)
    assert np.max(np.abs(got - model.sample(hist, noise)[:, 1].clamp(-1, 1).numpy())) <= 1e-5


def test_runtime_history_reset_and_chunk(artifacts):
    model, path, spec = artifacts["ddpm"]
    rt = PolicyArtifact.load(path).runtime
    o1, o2 = np.array([0.3, 0.1, 0.0], np.float32), np.array([-0.4, 0.2, 0.05], np.float32)
    noise = np.random.default_rng(0).standard_normal((1, 8, 2)).astype(np.float32)
    first = rt.act(o1, noise=noise)
    assert first.actions.shape == (8 - 2 + 1, 2)
    assert np.allclose(first.offsets_s, np.arange(7) * 0.05)
    assert np.allclose(first.actions, rt.sample(np.stack([o1, o1])[None], noise)[0, 1:])  # first obs repeated
    second = rt.act(o2, noise=noise)
    assert np.allclose(second.actions, rt.sample(np.stack([o1, o2])[None], noise)[0, 1:])  # [previous, current]
    torch_chunk = model.chunk(model.sample(torch.from_numpy(np.stack([o1, o2])[None]), torch.from_numpy(noise)))
    assert np.max(np.abs(second.actions - torch_chunk[0].clamp(-1, 1).numpy())) <= 1e-5
    rt.reset()
    assert np.allclose(rt.act(o1, noise=noise).actions, first.actions)
    # without noise=, the runtime's own seeded generator: reproducible from the spec's seed
    a = PolicyArtifact.load(path).act(o1).actions
    b = PolicyArtifact.load(path).act(o1).actions
    assert np.array_equal(a, b) and spec["policy"]["seed"] == 3
    assert np.all(np.abs(a) <= 1.0)


def test_default_artifact_on_a_real_robot_spec(tmp_path):
    """Chi et al.'s defaults on the panda-reach env's deploy spec: robot.xml, chunk of 15, execute 8."""
    from robot_rl.sim import make_env

    env = make_env("panda-reach", 1, dr="off", nthread=1)
    model = DiffusionPolicy(env.num_obs["policy"], env.num_actions)
    g = torch.Generator().manual_seed(0)
    model.set_normalization(torch.randn(64, model.obs_dim, generator=g), torch.rand(64, model.action_dim, generator=g))
    spec = export_diffusion_for_env(model, tmp_path / "art", env)
    art = PolicyArtifact.load(tmp_path / "art")
    assert set(spec["files"]) == {"denoiser.onnx", "robot.xml", "spec.json", "parity.json"} - {"spec.json"}
    assert art.joint_names == spec["robot"]["joint_names"] and spec["policy"]["execution_horizon"] == 8
    chunk = art.act(np.zeros(model.obs_dim, np.float32))
    assert chunk.actions.shape == (15, model.action_dim) and chunk.offsets_s[1] == pytest.approx(env.control_dt)
    assert json.loads((tmp_path / "art" / "parity.json").read_text())["max_abs_error"] <= 1e-5


def test_edited_denoiser_is_refused(artifacts, tmp_path):
    import shutil

    _, path, _ = artifacts["flow"]
    copy = tmp_path / "edited"
    shutil.copytree(path, copy)
    data = bytearray((copy / "denoiser.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "denoiser.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="denoiser.onnx was modified or truncated"):
        PolicyArtifact.load(copy)


def test_normalization_that_does_not_fit_the_policy_is_one_clear_line(artifacts, tmp_path):
    import shutil

    model, path, _ = artifacts["ddpm"]
    copy = tmp_path / "mismatch"
    shutil.copytree(path, copy)
    spec = json.loads((copy / "spec.json").read_text())
    spec["policy"]["normalization"]["obs_min"] = spec["policy"]["normalization"]["obs_min"][:2]
    spec["checksum"] = spec_checksum(spec)  # consistent checksums: the stats themselves are wrong
    (copy / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError) as e:
        PolicyArtifact.load(copy)
    assert "normalization obs_min has 2 values but the observation has 3" in str(e.value)
    assert len(str(e.value).splitlines()) == 1
    with pytest.raises(ExportError, match="the policy takes 3 observations and gives 2 actions, the task 'toy' has 4"):
        export_diffusion(model, tmp_path / "wrong", spec_base(4, 2))
    assert not (tmp_path / "wrong").exists()


def test_registry_and_robot_side_imports():
    from robot_rl.config import PPOConfig
    from robot_rl.policy_kinds import get_kind, kind_names, runtime_class, training_class

    assert get_kind("diffusion").trained_by == "demonstrations" and "diffusion" not in kind_names("ppo")
    assert training_class("diffusion") is DiffusionPolicy
    with pytest.raises(ValueError, match="policy kind 'diffusion' is trained by demonstrations, not ppo"):
        training_class("diffusion", trained_by="ppo")
    with pytest.raises(ValueError, match="ppo.policy 'diffusion' is trained by demonstrations, not PPO"):
        PPOConfig(policy="diffusion").validate()
    assert runtime_class("diffusion").__name__ == "DiffusionRuntime"
    code = ("import sys, robot_rl.runtimes.diffusion, robot_rl.artifact; "
            "bad = [m for m in ('torch', 'diffusers') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
