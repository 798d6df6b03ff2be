"""Domain randomization: ranges respected, applied to the physics, seeded, held-out range differs."""

import numpy as np
import pytest
import torch

from robot_rl.sim import make_env, make_task
from robot_rl.sim import randomization as R


def test_samples_respect_ranges():
    dr = make_task("iiwa-reach").dr.train
    s = R.sample(dr, 5000, torch.Generator().manual_seed(0), "cpu")
    for name in R.PARAM_NAMES:
        lo, hi = getattr(dr, name)
        assert s[name].min() >= lo and s[name].max() <= hi, name
        if hi > lo:
            assert s[name].max() - s[name].min() > 0.5 * (hi - lo), f"{name} not spread over its range"
    assert set(s["action_delay_steps"].unique().tolist()) == {0.0, 1.0}


def test_same_seed_same_samples_and_other_seed_differs():
    dr = make_task("iiwa-reach").dr.train
    a = R.sample(dr, 64, torch.Generator().manual_seed(7), "cpu")
    b = R.sample(dr, 64, torch.Generator().manual_seed(7), "cpu")
    c = R.sample(dr, 64, torch.Generator().manual_seed(8), "cpu")
    assert all(torch.equal(a[k], b[k]) for k in R.PARAM_NAMES)
    assert not torch.equal(a["mass_scale"], c["mass_scale"])


@pytest.mark.parametrize("task", ["iiwa-reach", "cartpole-swingup"])
def test_held_out_range_differs_from_training(task):
    presets = make_task(task).dr
    assert presets.eval != presets.train
    g = torch.Generator().manual_seed(0)
    ev = R.sample(presets.eval, 2000, g, "cpu")
    # some parameter's held-out samples lie outside the whole training range
    outside = [k for k in R.PARAM_NAMES
               if ((ev[k] < getattr(presets.train, k)[0]) | (ev[k] > getattr(presets.train, k)[1])).float().mean() > 0.5]
    assert outside, "the eval range must hold values never seen in training"


def test_sampled_values_reach_the_physics_and_info():
    env = make_env("iiwa-reach", 16, dr="train", seed=1, nthread=1)
    env.reset()
    _, _, _, _, info = env.step(torch.zeros(16, 7))
    nom = env.model
    b = nom.body("lbr_iiwa_link_3").id
    pb = nom.body("lbr_iiwa_link_7").id
    for i in range(16):
        m = env.sim.models[i]
        scale = info["dr"]["mass_scale"][i].item()
        assert m.body_mass[b] == pytest.approx(nom.body_mass[b] * scale, rel=1e-6)
        assert m.body_mass[pb] == pytest.approx(nom.body_mass[pb] * scale + info["dr"]["payload_kg"][i].item(), rel=1e-6)
        assert m.dof_damping[0] == pytest.approx(nom.dof_damping[0] * info["dr"]["damping_scale"][i].item(), rel=1e-6)
        kp = nom.actuator_gainprm[0, 0] * info["dr"]["kp_scale"][i].item() * info["dr"]["motor_strength"][i].item()
        assert m.actuator_gainprm[0, 0] == pytest.approx(kp, rel=1e-6)
        assert m.actuator_biasprm[0, 1] == pytest.approx(-kp, rel=1e-6)
    masses = np.array([env.sim.models[i].body_mass[b] for i in range(16)])
    assert masses.std() > 0


def test_dr_off_is_nominal():
    env = make_env("iiwa-reach", 4, dr="off", seed=1, nthread=1)
    env.reset()
    for m in env.sim.models:
        assert np.array_equal(m.body_mass, env.model.body_mass)
        assert np.array_equal(m.actuator_gainprm, env.model.actuator_gainprm)


def test_action_delay_delays_the_action():
    from dataclasses import replace

    task = make_task("iiwa-reach")
    task.dr = R.DRPresets(train=replace(R.NOMINAL, action_delay_steps=(2, 2)))
    env = make_env(task, 1, dr="train", nthread=1)
    env.reset()
    q0 = env.joint_pos.clone()
    a = torch.zeros(1, 7)
    a[0, 0] = 1.0
    env.step(a)
    env.step(torch.zeros(1, 7))
    assert (env.joint_pos - q0).abs().max() < 1e-6, "a 2-step delay must hold the action back 2 steps"
    env.step(torch.zeros(1, 7))
    assert (env.joint_pos - q0)[0, 0] > 1e-3


def test_invalid_range_is_rejected():
    with pytest.raises(ValueError, match="min > max"):
        R.DomainRandomization(mass_scale=(1.2, 0.8)).validate()
    from dataclasses import replace

    task = make_task("iiwa-reach")
    task.dr = R.DRPresets(train=replace(task.dr.train, friction_scale=(2.0, 1.0)))
    with pytest.raises(ValueError, match="friction_scale has min > max"):
        make_env(task, 2, dr="train")
