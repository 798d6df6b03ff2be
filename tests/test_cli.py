"""Bad input on the command line: one clear error line, exit code 2, no run directory left."""

import subprocess
import sys

import pytest


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["train", "no-such-task"], "unknown task 'no-such-task'; available tasks:"),
    (["train", "--env.backend", "gazebo"], "unknown backend 'gazebo'; available backends: mujoco"),
    (["train", "--env.num-envs", "abc"], "--env.num-envs"),
    (["train", "--env.num-envs", "0"], "env.num_envs must be >= 1"),
    (["train", "--max-iterations", "1.5"], "--max-iterations"),
    (["train", "--env.dr", "wide"], "--env.dr"),
    (["eval", "--checkpoint", "runs/missing"], "no run directory or checkpoint at runs/missing"),
    (["export", "--checkpoint", "runs/missing"], "no run directory or checkpoint"),
    (["fly"], "unknown command 'fly'"),
    (["node", "planner"], "unknown node 'planner'; use one of: policy, safety, twin"),
    (["train", "--ppo.policy", "transformer"], "unknown policy kind 'transformer'; known kinds: diffusion, mlp, recurrent"),
    (["train", "--ppo.policy", "diffusion"], "ppo.policy 'diffusion' is trained by demonstrations, not PPO; use one of mlp, recurrent"),
    (["train", "--env.device", "tpu"], "--env.device tpu: use cpu or cuda"),
    (["train", "--adr.enabled", "--adr.threshold-low", "0.9"], "adr thresholds need 0 <= threshold_low < threshold_high"),
    (["train", "--env.dr", "off", "--adr.enabled", "--env.num-envs", "4"], "no DR range can widen"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    out = cli(*args, "--log-root", str(tmp_path / "runs"), cwd=tmp_path) if args[0] == "train" else cli(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert message in lines[0]
    assert not (tmp_path / "runs").exists(), "a rejected command must not create a run directory"


def test_tasks_lists_builtin_tasks(tmp_path):
    out = cli("tasks", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.split() == ["cartpole-swingup", "iiwa-reach", "panda-peg-insert", "panda-reach"]


def test_train_eval_export_from_the_command_line(tmp_path):
    run = tmp_path / "runs" / "tiny"
    out = cli("train", "cartpole-swingup", "--env.num-envs", "16", "--max-iterations", "2", "--eval-interval", "0",
              "--ppo.num-steps-per-env", "8", "--log-root", str(tmp_path / "runs"), "--run-name", "tiny",
              "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (run / "summary.json").is_file() and (run / "checkpoints" / "model_2.pt").is_file()
    out = cli("eval", "--checkpoint", str(run), "--episodes", "4", "--dr", "eval",
              "--video", str(tmp_path / "ep.mp4"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "dr=eval" in out.stdout and (run / "eval_eval.json").is_file()
    assert (tmp_path / "ep.mp4").stat().st_size > 1000
    out = cli("export", "--checkpoint", str(run), "--out", str(tmp_path / "art"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "art" / "policy.onnx").is_file() and (tmp_path / "art" / "spec.json").is_file()


def test_cuda_without_a_gpu_and_warp_without_its_package_are_one_clear_line(tmp_path, monkeypatch, capsys):
    import torch

    from robot_rl import cli as cli_mod

    monkeypatch.chdir(tmp_path)
    if not torch.cuda.is_available():
        assert cli_mod.main(["train", "--env.backend", "warp", "--env.device", "cuda"]) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and "no CUDA GPU is available" in err[0], err
    monkeypatch.setitem(sys.modules, "mujoco_warp", None)  # as if mujoco-warp were not installed
    monkeypatch.delitem(sys.modules, "robot_rl.sim.warp_backend", raising=False)
    assert cli_mod.main(["train", "--env.backend", "warp"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "pip install 'robot-rl[warp]'" in err[0], err
    assert not (tmp_path / "runs").exists(), "nothing is written before the error"
