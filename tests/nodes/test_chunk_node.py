"""Policy node with a chunked policy slower than a control period (a fake `fake-chunk` kind whose
inference sleeps): the ticks keep coming, stale actions are dropped, an all-stale chunk is an
overrun. (The timing rules themselves: tests/test_chunk_executor.py.)"""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from _nodes_helpers import Recorder, StatePublisher, diag, fake_chunk_artifact

SCRIPT = Path(__file__).resolve().parent / "_chunk_policy_node.py"
JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
DEFAULT = np.array([0.0, 0.5, 0.0, -1.5, 0.0, 0.6, 0.0])
TARGET = "[0.5, 0.0, 0.5]"


def _period(artifact) -> float:
    return float(json.loads((artifact / "spec.json").read_text())["control"]["period_s"])


def _decode(msg) -> tuple[int, int]:
    """(chunk number, action index) of a published target (see _chunk_policy_node.py)."""
    a = (np.asarray(msg.position) - DEFAULT) / 0.5
    return int(round(a[0] / 0.01)), int(round(a[1] / 0.05))


def _run(graph, artifact, seconds: float, **params):
    from robot_rl.transport import msgs

    node = graph.node
    cmds = Recorder(node, msgs.JointState, "/policy/joint_command")
    dg = Recorder(node, msgs.String, "/policy/diagnostics")
    node.start()
    robot = StatePublisher(node, JOINTS, DEFAULT, rate_hz=200)
    try:
        policy = graph.start("policy", script=SCRIPT, artifact=artifact, state_wait_s=30.0, target_pos=TARGET,
                             **params)
        try:
            dg.wait_for(lambda m: diag(m)["steps"] > 0 or diag(m)["chunk"]["requested"] > 1, 40, "the policy running")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{policy.log()[-3000:]}") from None
        t0 = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
        last = diag(dg.wait_for(lambda m: True, 5, "diagnostics", since=t1))
    finally:
        robot.stop()
    return policy, [m for t, m in list(cmds.items) if t0 <= t < t1], last


def test_slow_chunk_inference_does_not_hold_up_the_ticks(graph, trained_artifact, tmp_path):
    period = _period(trained_artifact)
    sleep = 5.5 * period  # inference takes 5.5 control periods; the chunk covers 16, 8 of them executed
    art = fake_chunk_artifact(trained_artifact, tmp_path / "chunk", sleep_s=sleep, length=16, horizon=8)
    policy, msgs_, d = _run(graph, art, 3.0)
    c = d["chunk"]
    assert c["mode"] == "receding" and c["execution_horizon"] == 8, d
    assert c["overruns"] == 0 and c["stale"] >= 5 * c["received"], d  # the actions due while inferring
    # ticks kept coming: nearly every tick executed an action (only the first chunk's wait and
    # timer slips of a loaded machine leave ticks without one)
    assert c["executed"] >= 0.85 * (c["executed"] + c["starved"] + c["late"]), d
    runs = [_decode(m) for m in msgs_]
    chunks: dict[int, list[int]] = {}
    for n, i in runs:
        chunks.setdefault(n, []).append(i)
    numbers = sorted(chunks)
    assert len(numbers) >= 5 and numbers == list(range(numbers[0], numbers[-1] + 1)), chunks  # none skipped
    for n in numbers[1:-1]:
        idx = chunks[n]
        assert idx == sorted(idx) and len(idx) <= 8, chunks  # in order, at most the execution horizon
        assert idx[0] >= 5, chunks  # the indices due during the 5.5-period inference were dropped as stale
    assert np.mean([len(chunks[n]) for n in numbers[1:-1]]) >= 6, chunks
    # one command per tick: never more commands than ticks in the window
    assert len(runs) <= 3.0 / period + 5
    assert "Traceback" not in policy.log()


def test_ensemble_mode_with_slow_inference_averages_and_keeps_ticking(graph, trained_artifact, tmp_path):
    period = _period(trained_artifact)
    art = fake_chunk_artifact(trained_artifact, tmp_path / "ens", sleep_s=2.5 * period, length=10, horizon=8)
    policy, msgs_, d = _run(graph, art, 2.0, chunk_mode="ensemble", ensemble_decay=0.0)
    c = d["chunk"]
    assert c["mode"] == "ensemble" and c["overruns"] == 0 and c["stale"] >= 2 * c["received"], d
    assert c["executed"] >= 0.85 * (c["executed"] + c["starved"] + c["late"]), d
    # a request whenever the last one arrived (every ~3 ticks; 7 of its 10 actions fresh), so a
    # tick averages the predictions of 2 or 3 consecutive chunks: the chunk-number coordinate is a
    # mean of consecutive integers, n + 0.5 where two predicted the tick (never, in receding mode)
    a0 = np.array([(m.position[0] - DEFAULT[0]) / 0.5 / 0.01 for m in msgs_])
    halves = np.abs(a0 - np.floor(a0) - 0.5) < 0.01
    assert len(a0) > 0.5 * 2.0 / period and halves.mean() > 0.15, a0
    assert np.all(np.diff(a0) > -1e-6), a0  # newer predictions enter: the mean only moves forward


def test_all_stale_chunks_are_overruns_and_nothing_is_published(graph, trained_artifact, tmp_path):
    period = _period(trained_artifact)
    art = fake_chunk_artifact(trained_artifact, tmp_path / "late", sleep_s=12 * period, length=8, horizon=8)
    policy, msgs_, d = _run(graph, art, 1.5)
    assert msgs_ == [] and d["steps"] == 0, d  # the safety node holds, then brakes, on its own timeouts
    assert d["chunk"]["overruns"] >= 2 and d["chunk"]["executed"] == 0, d
    assert "[over_budget] over budget" in policy.log()


@pytest.mark.parametrize("value,expect", [("chunk_mode:=fifo", "chunk_mode"), ("over_budget:=skip", "over_budget")])
def test_bad_chunk_parameters_are_one_line(graph, trained_artifact, tmp_path, value, expect):
    art = fake_chunk_artifact(trained_artifact, tmp_path / "bad", sleep_s=0.0, length=4, horizon=2)
    k, v = value.split(":=")
    policy = graph.start("policy", script=SCRIPT, artifact=art, state_wait_s=1.0, **{k: v})
    assert policy.wait(30) == 2
    errors = [line for line in policy.log().splitlines() if "error" in line]
    assert len(errors) == 1 and f"parameter {expect}=" in errors[0], policy.log()


def test_launch_file_passes_the_chunk_parameters(reach_artifact):
    from _nodes_helpers import REPO

    from robot_rl.launch_runner import build_plan

    plan = build_plan(str(REPO / "launch" / "deploy.launch.xml"),
                      {"artifact": str(reach_artifact), "policy_chunk_mode": "ensemble",
                       "policy_execution_horizon": "4", "policy_over_budget": "last"})
    argv = " ".join(plan.nodes[-1].argv)
    for p in ("chunk_mode:=ensemble", "execution_horizon:=4", "ensemble_decay:=0.01", "action_exec_latency:=0.0",
              "over_budget:=last"):
        assert p in argv, argv
