"""Gamepad teleop (`gamepad`) through pygame's joystick API, headless (no window, no display).

Default layout: an Xbox-style pad as SDL's Linux (evdev) joystick driver numbers it; every index
is a config field, so another pad is one remap away (`robot-rl teleop-check --device gamepad`
shows what each stick does).

| input | command |
|---|---|
| left stick up/down (axis 1) | +x / -x |
| left stick left/right (axis 0) | +y / -y |
| right stick up/down (axis 4) | +z / -z |
| right stick left/right (axis 3) | +wz / -wz (yaw) |
| d-pad left/right, up/down (hat 0) | -wx / +wx (roll), +wy / -wy (pitch) |
| RB (button 5) **held** | clutch: hold to intervene, let go to hand back |
| right trigger (axis 5) | gripper: released 0 (open) .. squeezed 1 (closed) |
| Y (3) / A (0) / X (2) | `success` / `failure` / `reset` (once per press) |

Sticks go through a per-axis `deadzone` (rescaled, no jump at its edge), then `scale_twist`.
`poll` returns a sample on every call while the pad is attached; when SDL reports it removed it
raises `DeviceUnavailable` (the node stops publishing and retries opening it every second).
pygame is optional (`pip install 'robot-rl[teleop]'`): without it, opening the device is one
error line.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.teleop.axes import DeviceUnavailable, Edges, deadzone, scale_twist
from robot_rl.teleop.device import DeviceConfig, TeleopError, TeleopSample, register_device


@dataclass
class GamepadConfig(DeviceConfig):
    index: int = 0
    """Which joystick (SDL's device index)."""
    deadzone: float = 0.1
    """Fraction of full stick travel that reads as zero."""
    axis_x: int = 1
    axis_y: int = 0
    axis_z: int = 4
    axis_yaw: int = 3
    hat: int = 0
    """Hat (d-pad) for roll and pitch; -1: none."""
    gripper_axis: int = 5
    """Trigger axis for the gripper (rests at -1 = open); -1: no gripper command."""
    clutch_button: int = 5
    success_button: int = 3
    failure_button: int = 0
    reset_button: int = 2


def import_pygame():
    """pygame, headless (dummy video and audio drivers), or one clear error line."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_JOYSTICK_HIDAPI", "0")  # the kernel's (evdev) button and axis numbering
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError:
        raise TeleopError("the gamepad device needs pygame: pip install 'robot-rl[teleop]' (or pip install pygame)") \
            from None
    if not pygame.display.get_init():
        pygame.display.init()  # the event pump (hotplug, joystick state) needs the (dummy) video subsystem
    if not pygame.joystick.get_init():
        pygame.joystick.init()
        pygame.event.set_blocked(None)  # queue nothing but hotplug events; joystick state updates anyway
        pygame.event.set_allowed([pygame.JOYDEVICEADDED, pygame.JOYDEVICEREMOVED])
    return pygame


class Gamepad:
    mode = "ee_twist"

    def __init__(self, cfg: GamepadConfig):
        if not 0 <= cfg.deadzone < 1:
            raise TeleopError(f"gamepad deadzone={cfg.deadzone} must be in [0, 1), e.g. 0.1")
        self.cfg, self.scale, self.name = cfg, cfg.scale, "gamepad"
        self.pg = pg = import_pygame()
        pg.event.pump()
        n = pg.joystick.get_count()
        if cfg.index >= n:
            raise DeviceUnavailable(f"no gamepad at index {cfg.index} (SDL sees {n} joystick(s)); plug one in and "
                                    "check that /dev/input/event* is readable by this user")
        self.js = pg.joystick.Joystick(cfg.index)
        self.js.init()
        self.instance_id = self.js.get_instance_id()
        self.label = self.js.get_name()
        na, nb, nh = self.js.get_numaxes(), self.js.get_numbuttons(), self.js.get_numhats()
        axes = [cfg.axis_x, cfg.axis_y, cfg.axis_z, cfg.axis_yaw] + ([cfg.gripper_axis] if cfg.gripper_axis >= 0 else [])
        buttons = [cfg.clutch_button, cfg.success_button, cfg.failure_button, cfg.reset_button]
        if max(axes) >= na or max(buttons) >= nb or cfg.hat >= nh:
            raise TeleopError(f"gamepad {self.label!r} has {na} axes, {nb} buttons, {nh} hats; the config asks for "
                              f"axes {axes}, buttons {buttons}, hat {cfg.hat}: set the gamepad's axis_*/*_button "
                              "indices for this pad")
        self._edges = Edges()
        self._edges.rising(self._read()[1])  # a button already held when the pad opens is no press
        self._seq = 0

    def _check_attached(self) -> None:
        for e in self.pg.event.get([self.pg.JOYDEVICEREMOVED, self.pg.JOYDEVICEADDED]):
            if e.type == self.pg.JOYDEVICEREMOVED and e.instance_id == self.instance_id:
                raise DeviceUnavailable(f"gamepad {self.label!r} was unplugged; plug it back in (retrying)")

    def _read(self) -> tuple[np.ndarray, set, float | None]:
        pg, js, cfg = self.pg, self.js, self.cfg
        try:
            pg.event.pump()
            self._check_attached()
            ax = lambda i: float(js.get_axis(i))  # noqa: E731
            sticks = deadzone([-ax(cfg.axis_x), -ax(cfg.axis_y), -ax(cfg.axis_z), -ax(cfg.axis_yaw)], cfg.deadzone)
            hx, hy = js.get_hat(cfg.hat) if cfg.hat >= 0 else (0, 0)
            held = {name for name, b in (("clutch", cfg.clutch_button), ("success", cfg.success_button),
                                         ("failure", cfg.failure_button), ("reset", cfg.reset_button))
                    if js.get_button(b)}
            grip = None if cfg.gripper_axis < 0 else float(np.clip((ax(cfg.gripper_axis) + 1.0) / 2.0, 0.0, 1.0))
        except pg.error as e:
            raise DeviceUnavailable(f"gamepad {self.label!r} stopped answering ({e}); plug it back in") from None
        return np.array([sticks[0], sticks[1], sticks[2], -hx, hy, sticks[3]], dtype=np.float64), held, grip

    def poll(self, now: float | None = None) -> TeleopSample:
        now = time.monotonic() if now is None else now
        raw, held, grip = self._read()
        events = self._edges.rising(held - {"clutch"})
        self._seq += 1
        return TeleopSample(stamp=now, mode=self.mode, values=scale_twist(raw, self.scale), clutch="clutch" in held,
                            events=events, gripper=grip, device=self.name, seq=self._seq)

    def show_state(self, state: dict[str, Any]) -> None:
        """A gamepad has no display: the state is not shown (a rumble could go here)."""

    def close(self) -> None:
        try:
            self.js.quit()
        except self.pg.error:
            pass


register_device("gamepad", GamepadConfig, Gamepad)
