"""SAC + RLPD (robot_rl.hil.sac) and the reward labels of HIL-SERL / RLIF (robot_rl.hil.learner)."""

import torch

from robot_rl.hil.learner import label_rewards
from robot_rl.hil.sac import SAC, RLPDBuffers, SACConfig


def _point_task(agent, steps: int, gen: torch.Generator, buf: RLPDBuffers | None = None, learn: bool = True):
    """1-D: state s in [-1, 1]; the action moves it by 0.25 a; reward -|s|; episodes of 10 steps.
    Returns the mean reward of the deterministic policy from fixed starts."""
    n = 16
    s = torch.rand(n, 1, generator=gen) * 2 - 1
    t = 0
    for _ in range(steps):
        a = agent.act(s)
        s2 = (s + 0.25 * a).clamp(-1, 1)
        r = -s2.abs().squeeze(1)
        t += 1
        done = torch.zeros(n)
        buf.add(s, a, r, s2, done)
        s = s2
        if t % 10 == 0:
            s = torch.rand(n, 1, generator=gen) * 2 - 1
        if learn and buf.online.size >= 256:
            agent.update(buf)
    return evaluate(agent)


@torch.no_grad()
def evaluate(agent) -> float:
    s = torch.linspace(-1, 1, 21)[:, None]
    total = 0.0
    for _ in range(10):
        s = (s + 0.25 * agent.act(s, deterministic=True)).clamp(-1, 1)
        total += float(-s.abs().mean())
    return total / 10


def test_sac_learns_a_1d_task():
    torch.manual_seed(0)
    cfg = SACConfig(hidden=64, batch_size=64, utd=2, lr=1e-3, gamma=0.9, seed=0)
    agent = SAC(cfg, 1, 1)
    before = evaluate(agent)
    gen = torch.Generator().manual_seed(0)
    after = _point_task(agent, 300, gen, RLPDBuffers(1, 1, 10_000))
    # doing nothing from uniform starts scores about -0.5; driving s to 0 scores near 0
    assert before < -0.3
    assert after > -0.2 and after > before + 0.2, (before, after)


def test_rlpd_batch_is_half_offline_half_online():
    buf = RLPDBuffers(3, 2, 1000)
    n = 100
    o, a, r, d = torch.randn(n, 3), torch.randn(n, 2), torch.zeros(n), torch.zeros(n)
    off = torch.arange(n) < 30
    r[off] = 1.0  # tag the offline rows through their reward
    buf.add(o, a, r, o, d, offline=off)
    assert (buf.offline.size, buf.online.size) == (30, 70)
    b = buf.sample(256, torch.Generator().manual_seed(0))
    assert int(b["offline"].sum()) == 128
    assert torch.equal(b["rew"] == 1.0, b["offline"])
    only_offline = RLPDBuffers(3, 2, 100)
    only_offline.add(o[:10], a[:10], r[:10], o[:10], d[:10], offline=True)
    assert only_offline.sample(64, torch.Generator()).get("offline").all()


def test_rlif_and_hil_serl_reward_labels():
    tr = {"success": torch.tensor([False, False, True, False]), "penalty": torch.tensor([False, True, False, False])}
    assert label_rewards("hil-serl", tr).tolist() == [0.0, 0.0, 1.0, 0.0]
    assert label_rewards("rlif", tr).tolist() == [0.0, -1.0, 0.0, 0.0]


def test_residual_actor_starts_at_the_base():
    agent = SAC(SACConfig(residual_scale=0.2, hidden=32), obs_dim=5 + 3, act_dim=3)
    x = torch.randn(50, 8)
    x[:, -3:] = torch.rand(50, 3) * 2 - 1  # the base action, the input's tail
    assert torch.equal(agent.act(x, deterministic=True), x[:, -3:])
    sampled = agent.act(x)
    assert (sampled - x[:, -3:]).abs().max() <= 0.2 + 1e-6  # exploration stays within the residual's range


def test_state_roundtrip():
    a = SAC(SACConfig(hidden=32, seed=1), 4, 2)
    b = SAC(SACConfig(hidden=32, seed=2), 4, 2)
    b.load(a.state())
    x = torch.randn(7, 4)
    assert torch.equal(a.act(x, True), b.act(x, True))
