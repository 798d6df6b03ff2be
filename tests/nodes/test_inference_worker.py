"""The policy node's inference worker: jobs (act, observe, reset) run one at a time in the order
given, on one thread that owns the runtime; a runtime error reaches the node's thread."""

import time

import pytest

from robot_rl.nodes._inference import InferenceWorker


def _poll(worker, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = worker.poll()
        if done is not None:
            return done
        time.sleep(0.001)
    raise AssertionError("no chunk from the worker")


def test_jobs_run_in_order_on_the_worker_thread():
    log = []

    def act(obs):
        time.sleep(0.02)  # an observation submitted meanwhile waits behind this inference
        log.append(("act", obs))
        return f"chunk{obs}"

    w = InferenceWorker(act, lambda: log.append(("reset", None)), lambda obs: log.append(("observe", obs)))
    try:
        w.submit(1, 10)
        w.observe(11)
        w.observe(12)
        w.reset()
        w.submit(2, 13)
        assert _poll(w)[:2] == (1, "chunk10")
        assert _poll(w)[:2] == (2, "chunk13")
        assert log == [("act", 10), ("observe", 11), ("observe", 12), ("reset", None), ("act", 13)]
    finally:
        w.stop()


def test_a_runtime_error_is_raised_in_the_callers_thread():
    def act(obs):
        raise RuntimeError("onnx failed")

    w = InferenceWorker(act, lambda: None)
    try:
        w.submit(1, 0)
        with pytest.raises(RuntimeError, match="onnx failed"):
            _poll(w)
    finally:
        w.stop()
