"""Runs one teleop device for whoever polls it (the `teleop` node, `robot-rl teleop-check`): opens
it, checks and numbers its samples, and when it fails (missing, unplugged, input closed, bad
data) logs one line, yields nothing (a silent device: the arbiter holds) and reopens it every
`retry_s`. Clock-injected: `tick(now)` does one step.

    runner = DeviceRunner("gamepad", lambda: build_config("gamepad", params), logger)
    sample = runner.tick(time.monotonic())     # TeleopSample or None
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from robot_rl.teleop.device import TeleopError, TeleopSample, check_sample, make_device


class DeviceRunner:
    def __init__(self, name: str, make_config: Callable[[], Any], logger: logging.Logger, retry_s: float = 1.0):
        self.name, self.make_config, self.logger, self.retry_s = name, make_config, logger, float(retry_s)
        self.device = None
        self.seq = 0
        self.failures = 0
        self.error: str | None = None
        """The last failure, until the device answers again (None while it works)."""
        self.n_joints: int | None = None
        self._next_open = float("-inf")
        self._last_bad = ""
        self._opened_once = False

    @property
    def alive(self) -> bool:
        return self.device is not None

    def _fail(self, now: float, e: BaseException) -> None:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if msg != self.error:  # one line per distinct problem, not one per retry
            self.logger.error("teleop device %s unavailable: %s (not publishing; retrying every %.0f s)",
                              self.name, msg, self.retry_s)
        self.error, self.failures = msg, self.failures + 1
        self._next_open = now + self.retry_s
        if self.device is not None:
            try:
                self.device.close()
            except Exception:  # noqa: BLE001 - a broken device may fail to close; it is dropped anyway
                pass
            self.device = None

    def tick(self, now: float) -> TeleopSample | None:
        """Open the device if due, poll it, and return its checked sample (seq numbered here)."""
        if self.device is None:
            if now < self._next_open:
                return None
            try:
                self.device = make_device(self.name, self.make_config())
            except (TeleopError, OSError) as e:
                self._fail(now, e)
                return None
            if not self._opened_once:
                self.logger.info("teleop device %s open (%s, scale %s)", self.name, self.device.mode, self.device.scale)
                self._opened_once = True
        try:
            sample = self.device.poll(now)
        except (TeleopError, OSError) as e:
            self._fail(now, e)
            return None
        if self.error is not None:  # open and answering again after a failure
            self.logger.info("teleop device %s is back (publishing again)", self.name)
            self.error = None
        if sample is None:
            return None
        try:
            if sample.mode == "ee_twist" or self.n_joints is not None:
                check_sample(sample, self.device.scale, self.n_joints or 0)
        except TeleopError as e:
            if str(e) != self._last_bad:
                self.logger.warning("dropped a sample of %s: %s", self.name, e)
                self._last_bad = str(e)
            return None
        self.seq += 1
        return dataclasses.replace(sample, seq=self.seq, device=self.name)

    def show_state(self, state: dict[str, Any]) -> None:
        names = state.get("joint_names")
        if names:
            self.n_joints = len(names)
        if self.device is not None:
            try:
                self.device.show_state(state)
            except (TeleopError, OSError) as e:
                self.logger.warning("teleop device %s could not show the state: %s", self.name, e)

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
            self.device = None
