"""Automatic domain randomization: the curriculum (`robot_rl.adr`), the env's boundary episodes
(`BatchedEnv.set_dr`) and the training switch (`--adr.enabled`)."""

import dataclasses
import json

import pytest
import torch

import tests.toy_task  # noqa: F401  registers toy-reach
from robot_rl import checkpoint as ckpt
from robot_rl.adr import ADR, adr_parameters, default_bounds
from robot_rl.config import ADRConfig, EnvConfig, PPOConfig, TrainConfig
from robot_rl.sim import make_env
from robot_rl.sim import randomization as R
from robot_rl.sim.dr_boundary import BoundaryPlan
from robot_rl.sim.tasks import make_task, task_names

DR = R.DomainRandomization(mass_scale=(0.8, 1.2), payload_kg=(0.0, 0.5), kp_scale=(0.9, 1.1),
                           action_delay_steps=(0, 1))


def adr(**kw) -> ADR:
    bounds = kw.pop("bounds", {"mass_scale": (0.4, 2.0), "action_delay_steps": (0, 3)})
    return ADR(DR, ADRConfig(**{"enabled": True, "buffer_size": 4, "step": 0.25, "threshold_high": 0.8,
                                "threshold_low": 0.5, **kw}), bounds=bounds)


def feed(a: ADR, pair: tuple[str, str], successes: list[float]) -> None:
    p = a.pairs.index(pair)
    a.update(torch.full((len(successes),), p), torch.tensor(successes))


# -- the curriculum ----------------------------------------------------------------------------
def test_parameters_are_every_per_env_range_of_the_dataclass():
    nominal = R.DomainRandomization()
    expect = [f.name for f in dataclasses.fields(R.DomainRandomization)
              if isinstance(getattr(nominal, f.name), tuple) and f.name in R.PARAM_NAMES]
    assert list(adr_parameters()) == expect and "kp_scale" in expect and "obs_delay_steps" in expect


def test_widens_on_success_narrows_on_failure_and_never_inside_the_training_range():
    a = adr()
    assert a.ranges["mass_scale"] == (0.8, 1.2) and a.dr.mass_scale == (0.8, 1.2)
    feed(a, ("mass_scale", "lo"), [1, 1, 1])  # buffer not full yet: nothing moves
    assert a.ranges["mass_scale"] == (0.8, 1.2)
    feed(a, ("mass_scale", "lo"), [1])
    assert a.ranges["mass_scale"] == pytest.approx((0.7, 1.2))  # 1/4 of the way to 0.4
    assert a.buffers[a.pairs.index(("mass_scale", "lo"))] == []  # a decision clears the buffer
    feed(a, ("mass_scale", "lo"), [1, 0, 1, 0])  # 50 %: at threshold_low (0.5) -> narrows
    assert a.ranges["mass_scale"] == pytest.approx((0.8, 1.2))
    feed(a, ("mass_scale", "lo"), [0] * 8)  # never narrower than the training range
    assert a.ranges["mass_scale"] == (0.8, 1.2)
    a2 = adr(threshold_low=0.25, threshold_high=0.9)
    feed(a2, ("mass_scale", "hi"), [1, 1, 1, 0])  # 75 %: between the thresholds -> holds
    assert a2.ranges["mass_scale"] == (0.8, 1.2) and a2.decisions == 1
    # episodes that evaluated no boundary (-1) are ignored; the other side and parameters stay
    a.update(torch.tensor([-1] * 10), torch.ones(10))
    assert a.ranges == adr().ranges


def test_widening_stops_exactly_at_the_outer_bound():
    a = adr()
    feed(a, ("mass_scale", "hi"), [1] * 40)
    feed(a, ("mass_scale", "lo"), [1] * 40)
    assert a.ranges["mass_scale"] == (0.4, 2.0)  # exact, not 0.4000001
    a.update(torch.tensor([a.pairs.index(("mass_scale", "hi"))] * 4), torch.zeros(4))
    assert a.ranges["mass_scale"] == pytest.approx((0.4, 1.8))


def test_integer_ranges_move_by_whole_steps():
    a = adr()
    assert ("action_delay_steps", "lo") not in a.pairs  # its bound is its training value, 0
    seen = []
    for _ in range(4):
        feed(a, ("action_delay_steps", "hi"), [1] * 4)
        seen.append(a.ranges["action_delay_steps"])
    assert seen == [(0, 2), (0, 3), (0, 3), (0, 3)]
    assert all(isinstance(v, int) for r in seen for v in r)
    assert dict(a.boundary())["action_delay_steps"] == 3 and a.dr.max_action_delay == 3


def test_generic_bounds_are_physical_for_every_task_and_any_factor():
    for name in task_names():
        dr = make_task(name).dr.train
        for factor in (1.0, 3.0, 100.0):
            for param in adr_parameters():
                init = getattr(dr, param)
                lo, hi = default_bounds(param, init, factor)
                assert lo <= init[0] and hi >= init[1], (name, param)
                if param in R.SIGNED:  # payload positions, the gravity-model error
                    assert param != "gravcomp_error" or -1 <= lo <= hi <= 1, (name, param, lo, hi)
                else:
                    assert lo > 0 if param.endswith("_scale") and init[0] > 0 else lo >= 0, (name, param, lo)
    # unrandomized parameters (lo == hi) stay fixed; a multiplier widens about its centre
    assert default_bounds("kp_scale", (1.0, 1.0), 3.0) == (1.0, 1.0)
    assert default_bounds("kp_scale", (0.9, 1.1), 3.0) == (0.7, 1.3)
    assert default_bounds("obs_delay_steps", (1, 2), 3.0) == (0, 3)


def test_every_parameter_and_side_is_evaluated():
    a = adr()
    movable = {("mass_scale", "lo"), ("mass_scale", "hi"), ("payload_kg", "hi"), ("kp_scale", "lo"),
               ("kp_scale", "hi"), ("action_delay_steps", "hi")}
    assert set(a.pairs) == movable and len(a.pairs) == len(movable)
    plan = BoundaryPlan(64, "cpu")
    plan.set(a.boundary(), 0.5, a.dr)
    gen = torch.Generator().manual_seed(0)
    drawn = []
    for _ in range(20):
        plan.draw(torch.arange(64), gen)
        drawn.append(plan.env_pair.clone())
    drawn = torch.cat(drawn)
    assert set(drawn[drawn >= 0].tolist()) == set(range(len(a.pairs)))
    assert 0.4 < float((drawn >= 0).float().mean()) < 0.6  # the boundary fraction


@pytest.mark.parametrize("bounds, message", [
    ({"mass_scale": (0.9, 1.5)}, "mass_scale=(0.9, 1.5) lies inside the training range (0.8, 1.2)"),
    ({"kp_scale": (0.0, 2.0)}, "kp_scale=(0.0, 2.0) is not physical: kp_scale is a multiplier and must stay > 0"),
    ({"payload_kg": (-1.0, 2.0)}, "payload_kg=(-1.0, 2.0) is not physical: payload_kg cannot be negative"),
    ({"action_delay_steps": (0, 2.5)}, "must be whole numbers of control steps"),
    ({"gravity": (0, 1)}, "unknown parameter(s) gravity"),
])
def test_bad_bounds_are_one_clear_line(bounds, message):
    with pytest.raises(ValueError) as e:
        ADR(DR, ADRConfig(enabled=True), bounds=bounds)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_nothing_to_widen_is_refused():
    with pytest.raises(ValueError, match="no DR range can widen"):
        ADR(R.NOMINAL, ADRConfig(enabled=True))


def test_state_round_trip_and_mismatch():
    a = adr()
    feed(a, ("kp_scale", "hi"), [1] * 4)
    feed(a, ("mass_scale", "lo"), [1, 1])
    b = adr()
    b.load_state_dict(a.state_dict())
    assert b.ranges == a.ranges and b.buffers == a.buffers and b.state_dict() == a.state_dict()
    with pytest.raises(ValueError, match="made for other DR ranges"):
        adr(step=0.5).load_state_dict(a.state_dict())


# -- the env's boundary episodes ---------------------------------------------------------------
@pytest.mark.parametrize("variants", [4, 0])  # a shared bank (reserved variants) and one per env
def test_boundary_envs_get_exactly_the_boundary_value(variants):
    env = make_env("toy-reach", 32, seed=1, physics_variants=variants, nthread=1)
    a = ADR(DR, ADRConfig(enabled=True), bounds={"mass_scale": (0.4, 2.0), "action_delay_steps": (0, 3)})
    a.levels = list(a.num_levels)  # every side at its outer bound
    env.set_dr(a.dr, a.boundary(), 1.0)
    nominal_mass = env.sim.nominal("body_mass")
    block = env.model.body("block").id
    checked = set()
    for it in range(6):
        env.reset()
        pair = env.boundary.env_pair
        for i in (pair >= 0).nonzero().flatten().tolist():
            name, side = a.pairs[pair[i]]
            value = a.value(int(pair[i]))
            assert float(env.dr_params[name][i]) == pytest.approx(value), (name, side)
            if name == "mass_scale":  # the model env i simulates has it, not only the record
                mass = env.sim.models[i].body_mass[block]
                payload = float(env.dr_params["payload_kg"][i])
                assert mass == pytest.approx(nominal_mass[block] * value + payload, rel=1e-6)
            if name == "kp_scale":
                assert env.sim.models[i].actuator_gainprm[0, 0] == pytest.approx(50.0 * value, rel=1e-6)
            checked.add((name, side))
        # the others are sampled from the (widened) ranges
        for name, (lo, hi) in a.ranges.items():
            v = env.dr_params[name][pair < 0]
            assert bool(((v >= lo - 1e-6) & (v <= hi + 1e-6)).all()), name
    if variants == 0:  # one variant per env: every pair comes up
        assert checked == set(a.pairs)
    else:  # a shared bank has one reserved variant here: episode parameters and some physics ones
        assert ("action_delay_steps", "hi") in checked and len(checked) >= 3, checked


def test_widened_delay_is_applied_and_ended_episodes_report_their_pair():
    env = make_env("toy-reach", 4, seed=0, physics_variants=0, nthread=1)
    dr = dataclasses.replace(env.dr, action_delay_steps=(3, 3))  # wider than the line was built for
    env.set_dr(dr, [("action_delay_steps", 3)], 1.0)
    env.reset()
    assert env.boundary.env_pair.tolist() == [0, 0, 0, 0]
    ctrl = []
    for _ in range(5):
        env.step(torch.ones(4, 1))
        ctrl.append(float(env.ctrl[0, 0]))
    assert ctrl == [0.0, 0.0, 0.0, 0.5, 0.5]  # the action takes effect 3 control steps later
    steps = env.max_episode_length - 5
    for _ in range(steps):
        _, _, _, trunc, info = env.step(torch.zeros(4, 1))
    assert bool(trunc.all()) and info["episode"]["dr_boundary"].tolist() == [0, 0, 0, 0]
    # moving a boundary: running episodes at the old value no longer count for it
    env.set_dr(dataclasses.replace(dr, action_delay_steps=(2, 2)), [("action_delay_steps", 2)], 1.0)
    assert env.boundary.env_pair.tolist() == [-1, -1, -1, -1]
    with pytest.raises(ValueError, match="outside its DR range"):
        env.set_dr(dr, [("action_delay_steps", 5)], 1.0)


def test_set_dr_without_boundaries_samples_as_before():
    a = make_env("toy-reach", 16, seed=3, physics_variants=4, nthread=1)
    b = make_env("toy-reach", 16, seed=3, physics_variants=4, nthread=1)
    b.set_dr(b.dr)
    for env in (a, b):
        env.reset()
        for _ in range(30):
            env.step(torch.zeros(16, 1))
    assert torch.equal(a.dr_values, b.dr_values) and torch.equal(a.state.joint_pos, b.state.joint_pos)


# -- the training switch ----------------------------------------------------------------------
def test_train_with_adr_logs_checkpoints_exports_and_resumes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from robot_rl.export import export
    from robot_rl.train import train

    cfg = TrainConfig(
        env=EnvConfig(task="toy-reach", num_envs=32, nthread=1, physics_variants=8),
        ppo=PPOConfig(num_steps_per_env=20, init_noise_std=0.5, entropy_coef=0.0, actor_hidden=(16, 16),
                      critic_hidden=(16, 16)),
        adr=ADRConfig(enabled=True, boundary_fraction=0.5, buffer_size=2, threshold_high=0.4, threshold_low=0.0),
        max_iterations=10, save_interval=5, log_root=str(tmp_path), run_name="adr", progress=False,
        eval_interval=0)
    r = train(cfg)
    assert r.adr["initial"] == {"mass_scale": [0.8, 1.2]} and r.adr["bounds"] == {"mass_scale": [0.4, 1.6]}
    lo, hi = r.adr["reached"]["mass_scale"]
    assert 0.4 <= lo <= 0.8 and 1.2 <= hi <= 1.6 and (lo, hi) != (0.8, 1.2), r.adr
    ck = ckpt.load(r.checkpoint)
    assert ck["adr"]["reached"] == r.adr["reached"]
    ev = EventAccumulator(str(r.run_dir / "tensorboard"))
    ev.Reload()
    assert {"adr/mass_scale/lo", "adr/mass_scale/hi"} <= set(ev.Tags()["scalars"])
    assert ev.Scalars("adr/mass_scale/lo")[-1].value == pytest.approx(lo)
    spec = json.loads((export(r.checkpoint, tmp_path / "art", parity_steps=8) / "spec.json").read_text())
    assert spec["dr"]["adr"] == {k: r.adr[k] for k in ("initial", "bounds", "reached")}
    # resuming restores the curriculum (no further iteration: the state saved again is the same)
    resumed = train(dataclasses.replace(cfg, resume=str(r.checkpoint)))
    assert ckpt.load(resumed.checkpoint)["adr"] == ck["adr"]
