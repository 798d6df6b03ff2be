"""The physics-variant bank: envs share at most `physics_variants` models, a variant never changes
under an env that uses it, the bank keeps re-sampling, and small batches stay exact per env."""

import numpy as np
import pytest
import torch

from robot_rl.sim import make_env
from robot_rl.sim import randomization as R
from robot_rl.sim.physics_bank import PhysicsBank


def _model_matches_dr(env, i: int, dr: dict) -> bool:
    nom = env.model
    m = env.sim.models[i]
    b = nom.body("lbr_iiwa_link_3").id
    pb = nom.body("lbr_iiwa_link_7").id
    kp = nom.actuator_gainprm[0, 0] * dr["kp_scale"][i].item() * dr["motor_strength"][i].item()
    return (
        np.isclose(m.body_mass[b], nom.body_mass[b] * dr["mass_scale"][i].item(), rtol=1e-6)
        and np.isclose(m.body_mass[pb], nom.body_mass[pb] * dr["mass_scale"][i].item() + dr["payload_kg"][i].item(),
                       rtol=1e-6)
        and np.isclose(m.dof_damping[0], nom.dof_damping[0] * dr["damping_scale"][i].item(), rtol=1e-6)
        and np.isclose(m.actuator_gainprm[0, 0], kp, rtol=1e-6)
    )


def test_envs_share_a_bounded_bank_that_matches_info_and_never_changes_under_a_live_env():
    n, variants = 32, 4
    env = make_env("iiwa-reach", n, dr="train", seed=3, nthread=1, physics_variants=variants)
    env.max_episode_length = 7  # many resets in a short test
    env.reset()
    env.randomize_episode_start()
    gen = torch.Generator().manual_seed(0)
    prev = None
    seen_mass = set()
    for _ in range(120):
        _, _, term, trunc, info = env.step(torch.rand(n, 7, generator=gen) * 2 - 1)
        dr = info["dr"]
        assert len({id(m) for m in env.sim.models}) <= variants
        for i in range(n):
            assert _model_matches_dr(env, i, dr), f"env {i}: model differs from info['dr']"
        if prev is not None:
            running = ~(term | trunc)
            for k in R.PHYSICS_PARAMS:
                assert torch.equal(dr[k][running], prev[k][running]), f"{k} changed under a running env"
        prev = {k: v.clone() for k, v in dr.items()}
        seen_mass.update(dr["mass_scale"].tolist())
    # continually re-sampled: far more distinct physics samples over time than the bank holds
    assert len(seen_mass) > 4 * variants, len(seen_mass)
    lo, hi = env.dr.mass_scale
    assert min(seen_mass) >= lo and max(seen_mass) <= hi


def test_bank_as_large_as_the_batch_is_exact_per_env_sampling():
    for variants in (0, 8, 100):
        env = make_env("iiwa-reach", 8, dr="train", seed=1, nthread=1, physics_variants=variants)
        assert env.bank.exact and env.bank.num_variants == 8
        env.reset()
        assert len({id(m) for m in env.sim.models}) == 8
        first = env.dr_params["mass_scale"].clone()
        env.reset()  # every env re-samples its own physics at each reset
        assert not torch.equal(first, env.dr_params["mass_scale"])


def test_bank_bookkeeping_counts_users_keeps_a_quarter_draining_and_re_samples():
    n, s = 40, 8
    bank = PhysicsBank(n, s, torch.Generator().manual_seed(0), "cpu")
    assert bank.draining == 2
    variants, refresh = bank.assign(torch.arange(n))
    assert sorted(refresh.tolist()) == list(range(s))  # all variants sampled at the first reset
    gen = torch.Generator().manual_seed(1)
    refreshed = 0
    for _ in range(300):  # random episode ends (terminations), 5 envs at a time
        ids = torch.randperm(n, generator=gen)[:5]
        holders = torch.from_numpy(bank.env_variant.copy())
        closed_before = ~bank.open.copy()
        variants, refresh = bank.assign(ids)
        for v in refresh.tolist():
            # only a closed variant whose every user just left is re-sampled
            assert closed_before[v]
            assert set((holders == v).nonzero().flatten().tolist()) <= set(ids.tolist())
        refreshed += len(refresh)
        assert bank.open[variants.numpy()].all(), "envs draw open variants only"
        assert np.array_equal(np.bincount(bank.env_variant, minlength=s), bank.users)
        assert int(bank.open.sum()) >= s - bank.draining
    assert refreshed > 2 * s


@pytest.mark.parametrize("bad", [-1, 1])
def test_bad_bank_size_is_rejected(bad):
    with pytest.raises(ValueError, match="physics_variants must be 0"):
        make_env("iiwa-reach", 2, physics_variants=bad)
