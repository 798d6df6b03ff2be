"""Helpers shared by the transport tests (importable because this folder is on sys.path)."""

import itertools
import os
import subprocess
import sys
import threading
import queue
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MAIN_PYTHON = sys.executable
_counter = itertools.count()


def next_domain_id() -> int:
    """A ROS domain id for one test: spread by process id so parallel test runs on one machine
    use different domains, and stepped per test so tests of one run never see each other."""
    return 1 + (os.getpid() * 37 + next(_counter) * 7) % 230


def ros_python() -> str:
    """Python of the separate ROS 2 environment (scripts/setup_ros.sh); fails the test if absent."""
    candidates = []
    if os.environ.get("ROS_VENV"):
        candidates.append(Path(os.environ["ROS_VENV"]))
    candidates += [REPO / ".ros-venv", Path("/work/main/.ros-venv")]
    for venv in candidates:
        py = venv / "bin" / "python"
        if py.exists():
            return str(py)
    pytest.fail(
        "the rclpy interop tests need the ROS 2 environment, which was not found at "
        f"{', '.join(str(c) for c in candidates)}: run `bash scripts/setup_ros.sh` "
        "(or set ROS_VENV to its location)", pytrace=False)


def subprocess_env(**extra) -> dict:
    """Environment for helper processes: the tested source tree first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class LineProcess:
    """A subprocess whose stdout lines are collected by a thread (so reads can time out)."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=str(REPO))
        self.lines: "queue.Queue[str]" = queue.Queue()
        self._err: list = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._err.append), daemon=True).start()

    @staticmethod
    def _pump(stream, sink):
        try:
            for line in stream:
                sink(line.rstrip("\n"))
        except (OSError, ValueError):  # closed under us by close()
            pass

    def read_line(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output from {self.proc.args[1]} within {timeout} s; "
                                 f"stderr:\n{self.stderr()}") from None

    def send(self, text: str) -> None:
        try:
            self.proc.stdin.write(text)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def stderr(self) -> str:
        return "\n".join(self._err[-40:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
