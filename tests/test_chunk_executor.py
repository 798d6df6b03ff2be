"""ChunkExecutor: the timing rules of chunked execution on an injected clock (no threads, no sleeps).

Each fake chunk encodes (chunk number, action index) in its action values, so an executed action
says exactly which prediction ran at which tick."""

import numpy as np
import pytest

from robot_rl.chunk_executor import ChunkConfig, ChunkExecutor
from robot_rl.runtimes import ActionChunk

DT = 0.05


def chunk(n: int, length: int = 16, dt: float = DT) -> ActionChunk:
    """Chunk number ``n``: action i = [n, i] (2-D actions), due i * dt after the observation."""
    return ActionChunk(np.stack([np.full(length, float(n)), np.arange(length, dtype=float)], 1),
                       np.arange(length) * dt)


def drive(ex: ChunkExecutor, ticks: int, latency_ticks: int = 0, length: int = 16, jitter: float = 0.0,
          seed: int = 0, make=None):
    """Run ``ticks`` control ticks; a requested chunk is picked up ``latency_ticks`` ticks later
    (0: inline, in the same tick). Returns (per tick: action or None, request ticks)."""
    rng = np.random.default_rng(seed)
    make = make or (lambda n: chunk(n, length))
    out, requests, pending = [], [], None
    for k in range(ticks):
        t = 10.0 + k * DT + (rng.uniform(-jitter, jitter) * DT if jitter else 0.0)
        if pending is not None and k >= pending[1]:
            ex.receive(pending[0], make(len(requests) - 1), t)
            pending = None
        if ex.wants_chunk(t):
            ticket = ex.request(t)
            requests.append(k)
            if latency_ticks == 0:
                ex.receive(ticket, make(len(requests) - 1), t)
            else:
                pending = (ticket, k + latency_ticks)
        out.append(ex.tick(t))
    return out, requests


def test_receding_horizon_executes_exactly_h_actions_per_chunk_at_their_due_ticks():
    ex = ChunkExecutor(ChunkConfig(DT, execution_horizon=8))
    out, requests = drive(ex, 40)
    assert requests == [0, 8, 16, 24, 32]  # re-plan from a fresh observation every 8 ticks
    for k, a in enumerate(out):
        n = requests.index(k - k % 8)
        assert a.tolist() == [n, k - requests[n]]  # action i of a chunk runs at its request tick + i
    assert ex.counts["executed"] == 40 and ex.counts["starved"] == 0 and ex.counts["stale"] == 0


def test_whole_chunk_when_horizon_is_zero():
    ex = ChunkExecutor(ChunkConfig(DT, execution_horizon=0))
    out, requests = drive(ex, 30, length=10)
    assert requests == [0, 10, 20] and all(a is not None for a in out)
    assert [a[1] for a in out[:12]] == [*range(10), 0, 1]


def test_single_action_at_offset_zero_runs_at_the_tick_that_asked_for_it():
    """An MLP or recurrent runtime (one action, offset 0, inline): one inference and its action per
    tick, as the node did before chunk execution existed."""
    ex = ChunkExecutor(ChunkConfig(DT))
    out, requests = drive(ex, 20, length=1, jitter=0.4)
    assert requests == list(range(20))
    assert [a[0] for a in out] == list(range(20))
    assert ex.counts["stale"] == 0 and ex.counts["starved"] == 0


def test_slow_inference_drops_stale_actions_and_the_lead_hides_the_latency():
    """Inference takes 3 ticks: the actions predicted for those ticks are stale; the next chunk is
    requested 3 ticks before the queue runs out, so after the first chunk no tick goes without."""
    ex = ChunkExecutor(ChunkConfig(DT, execution_horizon=8))
    out, requests = drive(ex, 43, latency_ticks=3)
    assert out[:3] == [None, None, None]  # waiting for the first chunk
    assert all(a is not None for a in out[3:])
    assert [a[1] for a in out[3:11]] == list(range(3, 11))  # indices 0-2 were due while inferring
    assert requests == [0, 8, 16, 24, 32, 40]  # the last one is still in flight at the end
    for k in range(3, 43):
        n, i = out[k]
        assert requests[int(n)] + i == k  # every action at its due tick
    assert ex.counts["stale"] == 3 * 5 and ex.counts["starved"] == 3 and ex.counts["overruns"] == 0
    assert ex.lead_s == pytest.approx(3 * DT)


def test_jittered_ticks_still_execute_one_action_per_tick_in_order():
    ex = ChunkExecutor(ChunkConfig(DT, execution_horizon=6))
    out, requests = drive(ex, 60, latency_ticks=2, jitter=0.2, seed=3)  # ticks within 0.2 periods of nominal
    executed = [(int(a[0]), int(a[1])) for a in out if a is not None]
    assert len(executed) == 58 and len(set(executed)) == 58
    due = [requests[n] + i for n, i in executed]
    assert due == list(range(2, 60))


def test_action_exec_latency_makes_more_actions_stale():
    ex = ChunkExecutor(ChunkConfig(DT, execution_horizon=8, action_exec_latency=2 * DT))
    out, _ = drive(ex, 12, latency_ticks=1)
    assert out[0] is None and out[1] is None and out[2] is None
    assert out[3].tolist() == [0, 3]  # picked up at tick 1; ticks 1 and 2 are within the latency


def test_ensemble_averages_overlapping_predictions_with_acts_weights():
    m = 0.3
    ex = ChunkExecutor(ChunkConfig(DT, mode="ensemble", ensemble_decay=m))
    length = 5
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, length, 3))
    make = lambda n: ActionChunk(values[n], np.arange(length) * DT)  # noqa: E731
    out, requests = drive(ex, 30, make=make)
    assert requests == list(range(30))  # re-plan every tick
    for k in (0, 2, 4, 17, 29):
        preds = [values[n, k - n] for n in range(max(0, k - length + 1), k + 1)]  # oldest first
        w = np.exp(-m * np.arange(len(preds)))
        np.testing.assert_allclose(out[k], (w / w.sum()) @ np.stack(preds), rtol=1e-12)
    # ACT's convention: the oldest prediction weighs most (a large m keeps only it); m = 0 is the plain mean
    oldest = ChunkExecutor(ChunkConfig(DT, mode="ensemble", ensemble_decay=50.0))
    np.testing.assert_allclose(drive(oldest, 18, make=make)[0][17], values[13, 4], atol=1e-12)
    plain = ChunkExecutor(ChunkConfig(DT, mode="ensemble", ensemble_decay=0.0))
    out0, _ = drive(plain, 10, make=make)
    np.testing.assert_allclose(out0[6], values[[2, 3, 4, 5, 6], [4, 3, 2, 1, 0]].mean(0), rtol=1e-12)


def test_ensemble_with_slow_inference_uses_only_fresh_predictions():
    ex = ChunkExecutor(ChunkConfig(DT, mode="ensemble", ensemble_decay=0.0))
    length = 8
    make = lambda n: chunk(n, length)  # noqa: E731
    out, requests = drive(ex, 20, latency_ticks=2, make=make)
    assert requests == list(range(0, 20, 2))  # a request whenever the previous one has arrived
    assert out[0] is None and out[1] is None
    # tick 9: fresh predictions from the chunks asked at ticks 2, 4, 6 (tick 8's arrives at 10)
    contributors = [n for n, r in enumerate(requests) if r + 2 <= 9 and r + length - 1 >= 9]
    assert [requests[n] for n in contributors] == [2, 4, 6]
    np.testing.assert_allclose(out[9], [np.mean(contributors), np.mean([9 - requests[n] for n in contributors])])


@pytest.mark.parametrize("mode", ["receding", "ensemble"])
def test_all_stale_chunk_is_an_overrun_and_nothing_runs(mode):
    ex = ChunkExecutor(ChunkConfig(DT, mode=mode, execution_horizon=4))
    out, requests = drive(ex, 30, latency_ticks=6, length=5)  # inference longer than the whole chunk
    assert all(a is None for a in out)
    assert ex.counts["overruns"] == len(requests) - 1 == 4  # the last request is still in flight
    assert requests == [0, 6, 12, 18, 24]  # a new chunk is asked for at once after an overrun


def test_over_budget_last_runs_the_chunks_last_action_like_diffusion_policy():
    ex = ChunkExecutor(ChunkConfig(DT, execution_horizon=4, over_budget="last"))
    out, requests = drive(ex, 13, latency_ticks=6, length=5)
    assert [k for k, a in enumerate(out) if a is not None] == [6, 12]
    assert out[6].tolist() == [0, 4] and out[12].tolist() == [1, 4]
    assert ex.counts["overruns"] == 2


def test_reset_clears_the_queue_and_discards_the_chunk_in_flight():
    ex = ChunkExecutor(ChunkConfig(DT, execution_horizon=8))
    t = 1.0
    ex.receive(ex.request(t), chunk(0), t)
    assert ex.tick(t) is not None and ex.queued() == 7
    ticket = ex.request(t + DT)  # in flight when the joint state drops out
    ex.reset()
    assert ex.queued() == 0 and ex.tick(t + 5 * DT) is None
    assert not ex.wants_chunk(t + 6 * DT)  # the old request still occupies the runtime
    assert ex.receive(ticket, chunk(1), t + 6 * DT) == "discarded"
    assert ex.counts["discarded"] == 1 and ex.queued() == 0
    assert ex.wants_chunk(t + 7 * DT)
    ex.receive(ex.request(t + 7 * DT), chunk(2), t + 7 * DT)
    assert ex.tick(t + 7 * DT).tolist() == [2, 0]


def test_one_command_per_tick_even_when_ticks_bunch_up():
    ex = ChunkExecutor(ChunkConfig(DT, execution_horizon=8))
    t = 3.0
    ex.receive(ex.request(t), chunk(0), t)
    got = [ex.tick(t + d) for d in (0.0, 0.001, 0.002, 2 * DT)]  # a timer that fired twice, then caught up
    assert [a[1] for a in got] == [0, 1, 2, 3]  # a tick never runs a slot twice, nor two actions
    assert ex.tick(t + 3 * DT + 0.001)[1] == 4
    assert ex.tick(t + 6 * DT)[1] == 6 and ex.counts["late"] == 1  # a missed tick's action is dropped


def test_bad_configuration_and_chunks_are_one_clear_error():
    with pytest.raises(ValueError, match="chunk mode 'fifo' is unknown; use one of receding, ensemble"):
        ChunkConfig(DT, mode="fifo")
    with pytest.raises(ValueError, match="execution_horizon=-1 must be an integer >= 0"):
        ChunkConfig(DT, execution_horizon=-1)
    with pytest.raises(ValueError, match="over_budget 'skip' is unknown"):
        ChunkConfig(DT, over_budget="skip")
    ex = ChunkExecutor(ChunkConfig(DT))
    with pytest.raises(ValueError, match="one offset per action"):
        ex.receive(ex.request(0.0), ActionChunk(np.zeros((3, 2)), np.zeros(2)), 0.0)
    with pytest.raises(RuntimeError, match="was not requested"):
        ex.receive(99, chunk(0), 0.0)
