"""The simulated operator: it takes over when a policy drifts (from the expert's actions, or, with a
task that gives its distance to done, when the robot stops making progress or goes away), after its
reaction delay, commands for its takeover time, hands back, caps takeovers per episode, counts
operator and intervention time, and is deterministic for a seed."""

from types import SimpleNamespace

import pytest
import torch

from robot_rl.hil.operator import SimulatedOperator

DT = 0.02


class ConstExpert:
    def __init__(self, value: float, dim: int = 2):
        self.value, self.dim, self.resets = value, dim, 0

    def reset(self, env, ids):
        self.resets += len(ids)

    def act(self, env, obs):
        return torch.full((env.num_envs, self.dim), self.value)


def fake_env(n=4):
    return SimpleNamespace(num_envs=n, device="cpu", control_dt=DT)


def drive(op, env, policy_value: float, steps: int, dim: int = 2):
    acts, gated, starts = [], [], []
    for _ in range(steps):
        s = op.step(env, {}, torch.full((env.num_envs, dim), policy_value))
        acts.append(s.action)
        gated.append(s.intervening)
        starts.append(s.takeover_start)
    return torch.stack(acts), torch.stack(gated), torch.stack(starts)


def make(seed=0, **kw):
    env = fake_env()
    args = dict(drift_threshold=0.1, drift_smoothing=1.0, reaction_delay_s=0.2, takeover_s=0.4, correction_noise=0.05,
                max_takeovers=3)
    args.update(kw)
    op = SimulatedOperator(env, seed, expert=ConstExpert(0.5), **args)
    op.reset(env, torch.arange(env.num_envs))
    return op, env


def test_zero_policy_is_taken_over_after_the_reaction_delay_then_handed_back():
    op, env = make()
    acts, gated, starts = drive(op, env, 0.0, 200)
    mean_react, mean_hold = 0.2 / DT, 0.4 / DT  # 10 and 20 steps, each drawn in [0.5, 1.5] x the mean
    for i in range(env.num_envs):
        g = gated[:, i]
        first = int(g.nonzero()[0])
        assert round(0.5 * mean_react) <= first <= round(1.5 * mean_react)
        assert (acts[:first, i] == 0).all()  # the policy keeps control while the person reacts
        assert starts[first, i] and starts[:, i].sum() == 3  # max_takeovers
        # each takeover: the expert's action with the person's noise, for 10-30 steps
        runs = torch.diff(torch.cat([torch.zeros(1), g.float(), torch.zeros(1)])).nonzero().flatten().view(-1, 2)
        assert len(runs) == 3
        for a, b in runs.tolist():
            assert round(0.5 * mean_hold) <= b - a <= round(1.5 * mean_hold)
            assert (acts[a:b, i] - 0.5).abs().max() < 0.3 and (acts[a:b, i] != 0.5).any()
            assert (acts[b:min(b + 5, 200), i] == 0).all()  # handed back: the policy again (reaction delay >= 5)
        assert not g[runs[-1, 1]:].any()  # after max_takeovers the person stops intervening
    assert op.takeovers == 12 == int(starts.sum())
    assert op.intervened_steps == int(gated.sum())
    assert op.operator_time_s == pytest.approx(200 * env.num_envs * DT)
    assert op.intervention_time_s == pytest.approx(int(gated.sum()) * DT)


def test_a_policy_close_to_the_expert_is_left_alone():
    op, env = make(drift_smoothing=0.3)
    acts, gated, _ = drive(op, env, 0.47, 200)
    assert not gated.any() and op.takeovers == 0 and (acts == 0.47).all()
    assert op.operator_time_s == pytest.approx(200 * env.num_envs * DT) and op.intervention_time_s == 0


def test_drift_is_smoothed_before_the_person_notices():
    # gap 0.5, threshold 0.3, smoothing 0.3: drift 0.15, 0.255, 0.33 -> noticed at the third step
    op, env = make(drift_threshold=0.3, drift_smoothing=0.3, reaction_delay_s=0.0)
    _, gated, _ = drive(op, env, 0.0, 4)
    assert not gated[:2].any() and gated[2].all()


def test_reset_restarts_an_env_and_its_takeover_count():
    op, env = make()
    drive(op, env, 0.0, 200)
    op.reset(env, torch.tensor([1]))
    _, gated, starts = drive(op, env, 0.0, 40)
    assert starts[:, 1].sum() >= 1 and starts[:, [0, 2, 3]].sum() == 0


def test_deterministic_for_a_seed():
    a = drive(make(seed=3)[0], fake_env(), 0.0, 100)
    b = drive(make(seed=3)[0], fake_env(), 0.0, 100)
    c = drive(make(seed=4)[0], fake_env(), 0.0, 100)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="drift_smoothing"):
        make(drift_smoothing=0.0)
    with pytest.raises(ValueError, match="takeover_s"):
        make(takeover_s=0.0)


def test_on_a_real_env_with_the_tasks_expert():
    from robot_rl.sim import make_env
    from tests.hil.toy_hil import TASK  # noqa: F401 (registers the task)

    env = make_env(TASK, 3, dr="off", seed=0, nthread=1)
    try:
        op = SimulatedOperator(env, 0, reaction_delay_s=0.04, takeover_s=0.1, drift_threshold=0.2, drift_smoothing=1.0)
        obs = env.reset()
        op.reset(env, torch.arange(3))
        gated = 0
        for _ in range(60):
            s = op.step(env, obs, torch.zeros(3, 1))
            gated += int(s.intervening.sum())
            obs, _, term, trunc, _ = env.step(s.action)
            done = (term | trunc).nonzero().flatten()
            if len(done):
                op.reset(env, done)
        assert op.takeovers > 0 and op.intervened_steps == gated > 0
        assert op.operator_time_s == pytest.approx(60 * 3 * env.control_dt)
    finally:
        env.sim.close()


class Distance:
    """A task whose distance to done the test sets per env ([n] tensor)."""

    def __init__(self, n):
        self.d = torch.full((n,), 0.05)

    def distance(self, env):
        return self.d.clone()


def progress_env(n=3):
    return SimpleNamespace(num_envs=n, device="cpu", control_dt=DT, task=Distance(n))


def test_with_a_task_distance_the_person_watches_progress_not_actions():
    """Env 0 keeps closing in (3 mm per step) with actions far from the expert's: left alone. Env 1
    stalls: noticed after `patience_s` without `min_progress`, taken over after the reaction delay.
    Env 2 goes away by more than `backoff`: noticed at once."""
    env = progress_env()
    op = SimulatedOperator(env, 0, expert=ConstExpert(0.5), reaction_delay_s=0.0, takeover_s=0.2, patience_s=0.2,
                           min_progress=0.002, backoff=0.01, max_takeovers=1)
    assert op.watch_progress
    op.reset(env, torch.arange(3))
    gated = []
    for t in range(30):
        env.task.d = torch.tensor([0.05 - 0.0015 * t, 0.05 - 0.0001 * t, 0.05 + (0.02 if t >= 5 else 0.0)])
        gated.append(op.step(env, {}, torch.full((3, 2), -1.0)).intervening)
    g = torch.stack(gated)
    assert not g[:, 0].any()
    patience = round(0.2 / DT)  # 10 steps
    assert int(g[:, 1].nonzero()[0]) == patience and not g[:patience, 1].any()
    assert int(g[:, 2].nonzero()[0]) == 5
    assert op.takeovers == 2


def test_after_a_takeover_the_person_judges_progress_afresh():
    """Released at a distance worse than the episode's best: no immediate second takeover."""
    env = progress_env(1)
    op = SimulatedOperator(env, 0, expert=ConstExpert(0.5), reaction_delay_s=0.0, takeover_s=0.1, patience_s=0.2,
                           backoff=0.01, max_takeovers=3)
    op.reset(env, torch.arange(1))
    gated = []
    for t in range(40):
        env.task.d = torch.tensor([0.03 if t < 2 else 0.045 - 0.003 * (t - 2)])
        gated.append(bool(op.step(env, {}, torch.zeros(1, 2)).intervening[0]))
    assert gated[2] and op.takeovers == 1  # went 1.5 cm away from its best: taken over
    assert not any(gated[10:])  # then closing in from where it was handed back: left alone


def test_progress_watching_can_be_turned_off_and_needs_a_task_distance():
    env = progress_env(2)  # closing in steadily, actions far from the expert's
    op = SimulatedOperator(env, 0, expert=ConstExpert(0.5), reaction_delay_s=0.0, drift_threshold=0.1,
                           drift_smoothing=1.0, watch_progress=False)
    op.reset(env, torch.arange(2))
    for t in range(5):
        env.task.d = torch.full((2,), 0.05 - 0.005 * t)
        op.step(env, {}, torch.full((2, 2), -1.0))
    assert not op.watch_progress and op.takeovers == 2  # judged by its actions
    with pytest.raises(ValueError, match="distance"):
        SimulatedOperator(fake_env(), 0, expert=ConstExpert(0.5), watch_progress=True)
