"""Helpers for the launch runner tests: a fake node executable and process inspection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]

# A stand-in for a ROS node: records its argv and pid (and its child's pid) in --state-dir, prints
# to stdout and stderr, optionally ignores SIGINT/SIGTERM, spawns a grandchild, exits after a delay.
FAKE_NODE = r'''#!{python}
import argparse, json, os, signal, subprocess, sys, time

own, ros = sys.argv[1:], []
if "--ros-args" in own:
    i = own.index("--ros-args")
    own, ros = own[:i], own[i:]
p = argparse.ArgumentParser()
p.add_argument("--state-dir", required=True)
p.add_argument("--exit-after", type=float, default=None)
p.add_argument("--rc", type=int, default=0)
p.add_argument("--ignore", action="append", default=[], choices=["INT", "TERM"])
p.add_argument("--grandchild", action="store_true")
a = p.parse_args(own)
name = next((r.split(":=", 1)[1] for r in ros if r.startswith("__node:=")), os.path.basename(sys.argv[0]))

for s in a.ignore:
    signal.signal(getattr(signal, "SIG" + s), signal.SIG_IGN)
if "INT" not in a.ignore:
    def on_int(*_):
        print(f"{{name}} got SIGINT", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGINT, on_int)

gpid = None
if a.grandchild:
    # ignores SIGINT, so only the SIGTERM sent to the whole process group stops it
    g = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(120)"])
    gpid = g.pid
state = {{"pid": os.getpid(), "pgid": os.getpgid(0), "grandchild": gpid, "argv": sys.argv[1:],
         "env_probe": os.environ.get("LAUNCH_TEST_PROBE")}}
tmp = os.path.join(a.state_dir, f".{{name}}.tmp")
with open(tmp, "w") as f:
    json.dump(state, f)
os.replace(tmp, os.path.join(a.state_dir, f"{{name}}.json"))
print(f"{{name}} says hello on stdout", flush=True)
print(f"{{name}} says hello on stderr", file=sys.stderr, flush=True)
t0 = time.monotonic()
while a.exit_after is None or time.monotonic() - t0 < a.exit_after:
    time.sleep(0.02)
sys.exit(a.rc)
'''


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A directory with fake node executables (use it as ROBOT_RL_LAUNCH_EXEC_PATH)."""
    d = tmp_path / "bin"
    d.mkdir()
    text = FAKE_NODE.format(python=sys.executable)
    for name in ("talker", "listener", "crasher", "stubborn", "spawner", "policy", "safety"):
        p = d / name
        p.write_text(text)
        p.chmod(0o755)
    return d


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


def fake_resolver(package, executable, env):
    """Resolver for plan tests: deterministic command, no file system lookups."""
    return [f"/fake/{package}/{executable}"]


def read_state(state_dir: Path, name: str) -> dict:
    return json.loads((state_dir / f"{name}.json").read_text())


def wait_for(cond, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def children_of(pid: int) -> list[int]:
    """Live (non-zombie) direct children of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[1]) == pid and rest[0] not in "ZX":
            out.append(int(entry))
    return out


def runner_env(fake_bin: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["ROBOT_RL_LAUNCH_EXEC_PATH"] = str(fake_bin)
    env["ROS_LOG_DIR"] = str(tmp_path / "log")
    env.pop("OVERRIDE_LAUNCH_PROCESS_OUTPUT", None)
    env.update(extra)
    return env


def start_runner(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "robot_rl.launch_runner", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
        start_new_session=True,
    )


@pytest.fixture
def reaper():
    """Kill anything a failing test left behind (by pid, only processes the test recorded)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
