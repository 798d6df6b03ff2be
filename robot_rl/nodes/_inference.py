"""Policy inference on a worker thread, so that a chunked policy slower than a control period does
not block the node's control ticks (`robot_rl.nodes.policy`, rules in `robot_rl.chunk_executor`).

Jobs run one at a time, in the order given, on one daemon thread that owns the runtime: after the
worker starts, only it calls the runtime (`reset()` is a job too, so it never races an inference
in progress). The node polls for a finished chunk at each tick; an exception raised by the runtime
is re-raised by :meth:`InferenceWorker.poll` in the node's thread (the node then stops with an
error, as it does when inline inference raises).
"""

from __future__ import annotations

import queue
import threading
import time


class InferenceWorker:
    def __init__(self, act, reset, observe=None):
        """``act(obs) -> ActionChunk``, ``reset()`` and (optionally) ``observe(obs)`` of the policy runtime."""
        self._act, self._reset, self._observe = act, reset, observe
        self._jobs: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="policy-inference", daemon=True)
        self._thread.start()

    def submit(self, ticket: int, obs) -> None:
        """Compute the chunk of ``obs``; :meth:`poll` returns it with ``ticket``."""
        self._jobs.put(("act", ticket, obs))

    def observe(self, obs) -> None:
        """Hand the runtime an observation between chunks, after the jobs already submitted."""
        self._jobs.put(("observe", None, obs))

    def reset(self) -> None:
        """Reset the runtime after the jobs already submitted."""
        self._jobs.put(("reset", None, None))

    def poll(self):
        """(ticket, chunk, seconds of inference) of a finished chunk, or None."""
        try:
            ticket, result, dt = self._done.get_nowait()
        except queue.Empty:
            return None
        if isinstance(result, BaseException):
            raise result
        return ticket, result, dt

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            what, ticket, obs = job
            try:
                if what == "reset":
                    self._reset()
                    continue
                if what == "observe":
                    self._observe(obs)
                    continue
                t = time.perf_counter()
                chunk = self._act(obs)
                self._done.put((ticket, chunk, time.perf_counter() - t))
            except Exception as e:  # noqa: BLE001 - handed to the node's thread
                self._done.put((ticket, e, 0.0))
