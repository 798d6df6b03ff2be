"""`robot-rl teleop-check --device NAME [k=v ...]`: open a device and print its samples live, one
line per sample (a user's first test of a gamepad or SpaceMouse; no robot, no arbiter).

    robot-rl teleop-check --device gamepad deadzone=0.15
    robot-rl teleop-check --device keyboard --rate-hz 10
    robot-rl teleop-check --device spacemouse --seconds 5

Options: `--device` (required), `--rate-hz` (20), `--seconds` (0: until Ctrl-C), `--changes` (print
a sample only when it differs from the one before); `k=v` set device parameters (as the node's `-p`).
Exit code 0; 2 with one line for a bad device or parameter. A device that fails is retried every
second, as in the node; the failure is printed once.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np


def format_sample(s) -> str:
    vals = " ".join(f"{v:+.3f}" for v in np.asarray(s.values))
    grip = "" if s.gripper is None else f" gripper {s.gripper:.2f}"
    ev = f" events {','.join(sorted(s.events))}" if s.events else ""
    return f"{s.stamp:12.3f} #{s.seq:<6d} {s.mode} [{vals}] clutch {'ON ' if s.clutch else 'off'}{grip}{ev}"


def _parse(args: list[str]) -> tuple[dict, dict]:
    opts = {"device": "", "rate-hz": "20", "seconds": "0", "changes": False}
    params: dict[str, str] = {}
    it = iter(args)
    for a in it:
        if a == "--changes":
            opts["changes"] = True
        elif a.startswith("--") and a[2:].split("=")[0] in opts:
            k, _, v = a[2:].partition("=")
            opts[k] = v if _ else next(it, "")
        elif "=" in a and not a.startswith("-"):
            k, _, v = a.partition("=")
            params[k] = v
        else:
            raise ValueError(f"teleop-check: unknown argument {a!r}; usage: robot-rl teleop-check --device NAME "
                             "[--rate-hz 20] [--seconds 0] [--changes] [param=value ...]")
    return opts, params


def main(args: list[str], out=None) -> int:
    from robot_rl.teleop.device import TeleopError
    from robot_rl.teleop.devices import build_config, load_devices
    from robot_rl.teleop.runner import DeviceRunner

    out = out or sys.stdout
    opts, params = _parse(args)
    names = load_devices()
    if opts["device"] not in names:
        raise ValueError(f"teleop-check: --device {opts['device']!r} is unknown; use one of {', '.join(names)}")
    try:
        rate, seconds = float(opts["rate-hz"]), float(opts["seconds"])
    except ValueError:
        raise ValueError("teleop-check: --rate-hz and --seconds take numbers") from None
    if rate <= 0:
        raise ValueError("teleop-check: --rate-hz must be > 0")
    try:
        build_config(opts["device"], params)
    except TeleopError as e:
        raise ValueError(f"teleop-check: {e}") from None
    logging.basicConfig(level=logging.INFO, format="[teleop-check] %(message)s")
    runner = DeviceRunner(opts["device"], lambda: build_config(opts["device"], params), logging.getLogger("teleop-check"))
    t_end = time.monotonic() + seconds if seconds > 0 else float("inf")
    last = None
    try:
        while time.monotonic() < t_end:
            s = runner.tick(time.monotonic())
            if s is not None:
                key = (tuple(np.round(s.values, 4)), s.clutch, s.gripper, s.events)
                if not opts["changes"] or key != last or s.events:
                    print(format_sample(s), file=out, flush=True)
                last = key
            time.sleep(1.0 / rate)
    except KeyboardInterrupt:
        pass
    finally:
        runner.close()
    return 0
