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
    assert label_rewards("hil-serl", tr, takeover_penalty=0.5).tolist() == [0.0, -0.5, 1.0, 0.0]


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


def _offline_only(n: int = 512, seed: int = 0) -> RLPDBuffers:
    """Offline transitions of the 1-D task whose action is the expert's -s, all with reward 0."""
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, 1, generator=g) * 2 - 1
    buf = RLPDBuffers(1, 1, 1000)
    buf.add(s, -s, torch.zeros(n), s, torch.zeros(n), offline=True)
    return buf


def _bc_error(bc_weight: float, updates: int = 150) -> float:
    agent = SAC(SACConfig(hidden=32, batch_size=64, utd=1, lr=1e-3, seed=0, bc_weight=bc_weight), 1, 1)
    buf = _offline_only()
    for _ in range(updates):
        agent.update(buf)
    s = torch.linspace(-0.9, 0.9, 19)[:, None]
    return float((agent.act(s, deterministic=True) + s).abs().mean())


def test_bc_term_pulls_the_actor_to_the_offline_actions():
    # rewards are all 0: without the BC term nothing points at -s; with it the actor imitates
    plain, bc = _bc_error(0.0), _bc_error(1.0)
    assert bc < 0.5 * plain and bc < 0.2, (plain, bc)


def test_bc_term_skips_offline_actions_the_critic_rates_lower():
    agent = SAC(SACConfig(hidden=32, batch_size=64, seed=0, bc_weight=1.0), 1, 1)
    b = _offline_only(64).sample(64, torch.Generator().manual_seed(0))
    a, _ = agent.actor(b["obs"])
    # a critic that rates every action by -|a + 10|: the actor's (in [-1, 1]) vs the offline (-s)
    agent.critic.forward = lambda o, act: (-(act + 10.0).abs()).squeeze(-1).expand(2, -1)
    q_pi = agent.critic(b["obs"], a).mean(0)
    worse = b["act"].squeeze(-1) > a.detach().squeeze(-1)  # further from -10 than the actor's: filtered out
    assert 0 < int(worse.sum()) < 64
    loss = agent._bc(b, q_pi)
    keep = ~worse
    mean_act = agent.actor(b["obs"][keep], deterministic=True)[0]
    assert torch.allclose(loss, ((mean_act - b["act"][keep]) ** 2).sum(-1).mean())
    agent.critic.forward = lambda o, act: torch.full((2, len(o)), -100.0) + 100.0 * (act is a)
    assert float(agent._bc(b, agent.critic(b["obs"], a).mean(0))) == 0.0  # no offline action rated higher


def test_residual_actor_starting_noise_follows_init_std():
    x = torch.zeros(4000, 8)
    x[:, -3:] = 0.1  # the base action, away from the clip at +-1
    for scale, init_std in ((1.0, 0.2), (0.2, 1.0)):
        agent = SAC(SACConfig(residual_scale=scale, init_std=init_std, hidden=32, seed=0), obs_dim=8, act_dim=3)
        assert torch.equal(agent.act(x, deterministic=True), x[:, -3:])  # the mean is the base whatever the std
        spread = float((agent.act(x) - x[:, -3:]).std())
        # tanh of N(0, 0.2) ~ 0.2 wide; tanh of N(0, 1) ~ 0.63, times 0.2 = 0.13
        assert abs(spread - (0.196 if init_std == 0.2 else 0.127)) < 0.01, (scale, init_std, spread)


def test_learner_labels_with_its_takeover_penalty(tmp_path):
    import socket

    from robot_rl.hil.learner import Learner, LearnerConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = LearnerConfig(obs_dim=2, act_dim=1, out=str(tmp_path), address=f"tcp://127.0.0.1:{port}",
                        sac=SACConfig(hidden=16), takeover_penalty=0.25)
    learner = Learner(cfg, log=lambda s: None)
    try:
        n = 4
        learner._add({"obs": torch.zeros(n, 2), "act": torch.zeros(n, 1), "next_obs": torch.zeros(n, 2),
                      "terminated": torch.tensor([0, 0, 1, 0]), "success": torch.tensor([False, False, True, False]),
                      "penalty": torch.tensor([True, False, False, False]),
                      "intervening": torch.tensor([False, False, False, True])})
        assert learner.buffers.online.data["rew"][:3].tolist() == [-0.25, 0.0, 1.0]
        assert learner.buffers.offline.data["rew"][:1].tolist() == [0.0]
    finally:
        learner.link.close()
