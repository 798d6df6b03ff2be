"""Teacher-student distillation: a privileged teacher (its actor reads the `critic` group with the DR
parameters) is trained by PPO, refused by export, and distilled DAgger-style into a `recurrent`
student that exports as an ordinary artifact; a teacher of another task or robot is refused."""

import json

import numpy as np
import pytest
import torch

import tests.toy_task  # noqa: F401  registers toy-reach
from robot_rl import checkpoint as ckpt
from robot_rl.artifact import PolicyArtifact
from robot_rl.cli import main
from robot_rl.config import EnvConfig, PPOConfig, TrainConfig
from robot_rl.distill import DistillConfig, DistillError, StudentConfig, distill
from robot_rl.evaluate import load_policy
from robot_rl.evaluate_artifact import evaluate_artifact
from robot_rl.export import ExportError, export
from robot_rl.policies import DeterministicActor
from robot_rl.sim import make_env
from robot_rl.sim.randomization import PARAM_NAMES
from robot_rl.train import train


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    cfg = TrainConfig(env=EnvConfig(task="toy-reach", num_envs=64, nthread=1),
                      ppo=PPOConfig(num_steps_per_env=20, init_noise_std=0.5, entropy_coef=0.0, actor_hidden=(32, 32),
                                    critic_hidden=(32, 32), actor_obs="critic"),
                      max_iterations=40, save_interval=20, log_root=str(root), run_name="teacher", progress=False,
                      eval_interval=0)
    return train(cfg), root


@pytest.fixture(scope="module")
def student(teacher):
    r, root = teacher
    cfg = DistillConfig(teacher=str(r.run_dir), num_envs=64, max_iterations=40, num_steps_per_env=20,
                        student=StudentConfig(rnn_hidden=32, actor_hidden=(32, 32)), eval_episodes=64,
                        log_root=str(root), progress=False)
    return distill(cfg)


def test_teacher_actor_reads_the_dr_parameters(teacher):
    r, _ = teacher
    ac, cfg, ck = load_policy(r.checkpoint)
    env = make_env("toy-reach", 16, dr="train", seed=3, nthread=1)
    assert cfg.ppo.actor_obs == "critic" and ac.num_actor_obs == env.num_obs["critic"] == ck["num_obs"]["critic"]
    mass = env.num_obs["critic"] - len(PARAM_NAMES) + PARAM_NAMES.index("mass_scale")
    # the normalizer saw the sampled link-mass scale, U(0.8, 1.2) in the training range
    assert abs(float(ac.actor_norm.mean[mass]) - 1.0) < 0.05 and 0.08 < float(ac.actor_norm.std[mass]) < 0.15
    obs = env.reset()["critic"]
    assert torch.allclose(obs[:, mass], env.dr_params["mass_scale"])
    light, heavy = obs.clone(), obs.clone()
    light[:, mass], heavy[:, mass] = 0.8, 1.2
    actor = DeterministicActor(ac, 16)
    assert actor.obs_group == "critic"
    with torch.no_grad():
        assert (ac.act_step(light, None)[0] - ac.act_step(heavy, None)[0]).abs().max() > 1e-4


def test_exporting_a_privileged_teacher_is_refused(teacher, tmp_path, capsys):
    r, _ = teacher
    with pytest.raises(ExportError, match=r"privileged teacher .* robot-rl distill --teacher"):
        export(r.checkpoint, tmp_path / "art")
    assert not (tmp_path / "art").exists()
    assert main(["export", "--checkpoint", str(r.run_dir), "--out", str(tmp_path / "art")]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "cannot be deployed; distill it" in err[0], err
    assert not list(tmp_path.iterdir()), "a refused export leaves nothing behind"


def test_distillation_brings_the_student_to_the_teacher(teacher, student):
    r, _ = teacher
    assert student.action_mse_final < 0.25 * student.action_mse_initial, (student.action_mse_initial,
                                                                          student.action_mse_final)
    assert student.success["teacher"]["train"] >= 0.8
    assert student.success["student"]["train"] >= student.success["teacher"]["train"] - 0.15, student.success
    ck = ckpt.load(student.checkpoint)
    assert ck["kind"] == "recurrent" and "rnn.weight_hh_l0" in ck["model"]
    assert ck["config"]["ppo"]["actor_obs"] == "policy" and ck["config"]["distill"]["teacher_checkpoint"] == str(r.checkpoint)
    teacher_ck = ckpt.load(r.checkpoint)
    assert torch.equal(ck["model"]["critic.0.weight"], teacher_ck["model"]["critic.0.weight"])  # copied for fine-tuning
    lines = (student.run_dir / "progress.csv").read_text().splitlines()
    assert lines[0].startswith("iteration,steps,wall_s,action_mse") and len(lines) == 41
    summary = json.loads((student.run_dir / "summary.json").read_text())
    assert summary["success"] == student.success


def test_student_exports_as_an_ordinary_recurrent_artifact(student, tmp_path):
    art_dir = export(student.checkpoint, tmp_path / "student")
    assert json.loads((art_dir / "parity.json").read_text())["max_abs_error"] <= 1e-5
    art = PolicyArtifact.load(art_dir)
    assert art.spec["policy"]["kind"] == "recurrent" and art.spec["observation"]["dim"] == art.obs_dim
    env = make_env("toy-reach", 1, dr="train", seed=5, nthread=1)
    obs = env.reset()["policy"]
    for _ in range(5):
        a = art.act(obs[0].numpy()).actions
        assert a.shape == (1, 1) and np.isfinite(a).all()
        obs = env.step(torch.as_tensor(a))[0]["policy"]
    report = evaluate_artifact(art_dir, episodes=64, dr="train", nthread=1)
    assert abs(report["success_rate"] - student.success["student"]["train"]) <= 0.15


def test_a_teacher_of_another_task_or_robot_is_refused(teacher, tmp_path, capsys):
    r, root = teacher
    with pytest.raises(DistillError, match="trained on task 'toy-reach', not 'iiwa-reach'"):
        distill(DistillConfig(teacher=str(r.run_dir), task="iiwa-reach", log_root=str(tmp_path / "runs")))
    assert main(["distill", "--teacher", str(r.run_dir), "--task", "iiwa-reach", "--log-root",
                 str(tmp_path / "runs")]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "not 'iiwa-reach'" in err[0], err
    # same task name, another robot: the sizes do not match
    data = torch.load(r.checkpoint, weights_only=True)
    data["task"] = "cartpole-swingup"
    data["config"] = data["config"].replace('"task": "toy-reach"', '"task": "cartpole-swingup"')
    other = tmp_path / "other.pt"
    torch.save(data, other)
    with pytest.raises(DistillError, match="another robot or version of the task; train a new teacher"):
        distill(DistillConfig(teacher=str(other), num_envs=4, log_root=str(tmp_path / "runs")))
    assert not (tmp_path / "runs").exists(), "a refused distillation must not create a run directory"
