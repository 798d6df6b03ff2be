"""The twin applies every term of its DR sample (delays, encoder bias, noise and bias of the
readings, pushes, payload, gains), takes measured values in place of sampled ones, and offers the
published stress twins by name; the env simulates the same stress twins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.hardware.twin import RobotTwin, TwinError
from robot_rl.sim import make_env, make_task
from robot_rl.sim.twins import STRESS_TWINS, stress_dr


def _settle(twin, target, seconds=2.0):
    twin.set_command(target)
    twin.advance_to(twin.sim_time + seconds, max_steps=10**6)


def test_command_takes_effect_after_the_command_latency():
    t = RobotTwin("iiwa-reach", seed=0, dr="off", command_delay_s=0.05)
    q0 = t.command.copy()
    t.set_command(q0 + 0.2)
    t.advance_to(0.049, max_steps=10**6)
    np.testing.assert_array_equal(t.command, q0)  # not yet
    t.advance_to(0.052, max_steps=10**6)
    np.testing.assert_allclose(t.command, q0 + 0.2)


def test_encoder_bias_moves_the_arm_off_its_measured_target():
    bias = np.array([0.01, -0.01, 0.01, -0.01, 0.01, -0.01, 0.01])
    t = RobotTwin("iiwa-reach", seed=0, dr="off", encoder_bias=bias)
    target = np.asarray(t.robot.default_pose) + 0.1
    _settle(t, target, 3.0)
    measured = t.read(noisy=False)[0][:7]
    true = t.data.qpos[t._qadr][:7]
    np.testing.assert_allclose(measured, target, atol=2e-3)  # the controller servos the reading
    np.testing.assert_allclose(true, target - bias, atol=2e-3)  # the joints are off by the bias


def test_measured_values_replace_sampled_ones_and_change_the_dynamics():
    base = RobotTwin("iiwa-reach", seed=0, dr="off")
    heavy = RobotTwin("iiwa-reach", seed=0, dr="off", overrides={"payload_kg": 4.0, "payload_pos": [0, 0, 0.2],
                                                               "kp_scale": 0.8})
    assert heavy.dr_params["payload_kg"] == pytest.approx(4.0) and heavy.dr_params["kp_scale"] == pytest.approx(0.8)
    assert heavy.dr_params["payload_pos_z_m"] == pytest.approx(0.2)
    target = np.asarray(base.robot.default_pose)
    for t in (base, heavy):
        _settle(t, target, 2.0)
    sag = np.abs(heavy.site_pos() - base.site_pos()).max()
    assert sag > 0.005, f"a 4 kg tool under weaker gains moved the flange by only {sag * 1000:.1f} mm"


def test_pushes_and_reading_noise_follow_the_range():
    t = RobotTwin("iiwa-reach", seed=3, dr="eval")
    t.advance_to(5.0, max_steps=10**6)
    lo, hi = t.drange.push_interval_s
    assert int(5.0 / hi) <= t.pushes <= int(5.0 / lo) + 1
    assert t.position_noise > 0 and np.abs(t._read_bias_q).max() > 0
    off = RobotTwin("iiwa-reach", seed=3, dr="off")
    off.advance_to(5.0, max_steps=10**6)
    assert off.pushes == 0 and off.position_noise == 0 and off.command_delay_s == 0


@pytest.mark.parametrize("name", list(STRESS_TWINS))
def test_stress_twins_lie_beyond_the_held_out_range_and_run_in_the_env(name):
    task = make_task("iiwa-reach")
    held, stress = task.dr.get("eval"), stress_dr(task, name)
    beyond = [k for k in ("payload_kg", "kp_scale", "kd_scale", "action_delay_steps", "encoder_bias_rad",
                          "gravcomp_error", "payload_pos_z_m")
              if not (getattr(held, k)[0] <= getattr(stress, k)[0] and getattr(stress, k)[1] <= getattr(held, k)[1])]
    assert beyond, f"{name} lies inside the held-out range"
    twin = RobotTwin("iiwa-reach", seed=0, dr=name)
    env = make_env("iiwa-reach", 2, dr=name, seed=0)
    env.reset()
    for k in beyond:
        lo, hi = getattr(stress, k)
        if lo == hi:  # the stress value itself, in the twin and in the env
            assert twin.dr_params[k] == pytest.approx(lo) and torch.allclose(env.dr_params[k], torch.tensor(float(lo)))


@pytest.mark.parametrize("kwargs,match", [
    ({"dr": "no-such-twin"}, "unknown DR mode 'no-such-twin'.*heavy-tool"),
    ({"overrides": {"payload_kg": -1.0}}, "payload_kg must be non-negative"),
    ({"overrides": {"mass_scale": 0.0}}, "mass_scale must be > 0"),
    ({"overrides": {"kp_scale": 0.0}}, "kp_scale must be > 0"),
    ({"overrides": {"payload_pos": [0.0, 0.1]}}, r"payload_pos needs \[x, y, z\]"),
    ({"command_delay_s": 7.0}, r"command_delay_s=7.0 s must lie in \[0, 6.0\)"),
    ({"obs_delay_s": -0.01}, "obs_delay_s=-0.01"),
    ({"encoder_bias": [0.5] * 7}, "above 0.2 rad"),
    ({"encoder_bias": [0.001] * 6}, "encoder_bias needs 7"),
])
def test_overrides_outside_physical_sense_give_one_clear_error(kwargs, match):
    with pytest.raises(TwinError, match=match):
        RobotTwin("iiwa-reach", seed=0, **kwargs)


def test_the_cli_offers_every_stress_twin():
    from typing import get_args

    from robot_rl.cli import EvalDR

    assert set(get_args(EvalDR)) == {"train", "eval", "off", *STRESS_TWINS}
