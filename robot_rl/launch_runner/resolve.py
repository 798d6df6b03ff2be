"""Find the command that runs ``<node pkg=... exec=...>``.

Order (first match wins):

1. ``ROBOT_RL_LAUNCH_EXEC_PATH`` (``os.pathsep``-separated directories): an executable file
   ``<dir>/<exec>``; for development and tests (fake nodes), any package.
2. ``pkg="robot_rl"``: the console script ``robot-rl-<exec>`` next to ``sys.executable``
   (``_`` in the name may be written ``-``), else the module ``robot_rl.nodes.<exec>`` run as
   ``sys.executable -m robot_rl.nodes.<exec>``.
3. Any package in the ament index (``AMENT_PREFIX_PATH``): ``<prefix>/lib/<pkg>/<exec>``, which is
   what launch_ros does.
4. No ``pkg``: ``exec`` is a path or a command on ``PATH`` (launch_ros semantics).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

from .ament import PACKAGE, find_package_prefix, node_executables
from .errors import LaunchError

EXEC_PATH_ENV = "ROBOT_RL_LAUNCH_EXEC_PATH"

# (package or None, executable, environment) -> command prefix
Resolver = Callable[[str | None, str, dict[str, str]], list[str]]

__all__ = ["EXEC_PATH_ENV", "Resolver", "resolve_executable"]


def _is_exe(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_executable(package: str | None, executable: str, env: dict[str, str]) -> list[str]:
    """Default resolver; raises :class:`LaunchError` naming what was searched."""
    if not executable:
        raise LaunchError("empty 'exec' attribute", fix="name the executable to run")
    for d in env.get(EXEC_PATH_ENV, "").split(os.pathsep):
        if d and "/" not in executable and _is_exe(Path(d) / executable):
            return [str(Path(d) / executable)]

    if package == PACKAGE:
        bindir = Path(sys.executable).parent
        for script in dict.fromkeys([f"robot-rl-{executable}", f"robot-rl-{executable.replace('_', '-')}"]):
            if _is_exe(bindir / script):
                return [str(bindir / script)]
        module = f"robot_rl.nodes.{executable}"
        if executable.isidentifier() and _module_exists(module):
            return [sys.executable, "-m", module]

    if package:
        prefix = find_package_prefix(package, env)
        if prefix is not None:
            cand = Path(prefix) / "lib" / package / executable
            if _is_exe(cand):
                return [str(cand)]
        if package == PACKAGE:
            available = node_executables()
            raise LaunchError(
                f"unknown executable '{executable}' in package '{package}': no module "
                f"robot_rl.nodes.{executable} and no robot-rl-{executable} script",
                fix=(f"available: {', '.join(available)}" if available
                     else f"create robot_rl/nodes/{executable}.py with a main()"),
            )
        if prefix is None:
            raise LaunchError(
                f"package '{package}' not found (executable '{executable}'): it is not in the "
                "ament index (AMENT_PREFIX_PATH)",
                fix=f"source the ROS 2 workspace that provides '{package}', or set {EXEC_PATH_ENV}",
            )
        raise LaunchError(
            f"executable '{executable}' not found in package '{package}' "
            f"({Path(prefix) / 'lib' / package})",
            fix="check the exec attribute (ros2 pkg executables " + package + ")",
        )

    # no package: a path or a command on PATH
    if "/" in executable:
        if _is_exe(Path(executable)):
            return [os.path.abspath(executable)]
        raise LaunchError(f"executable '{executable}' does not exist or is not executable",
                          fix="fix the path, or give pkg=\"...\"")
    found = shutil.which(executable, path=env.get("PATH", os.defpath))
    if found:
        return [found]
    raise LaunchError(f"executable '{executable}' not found on PATH",
                      fix="give pkg=\"...\" or the full path of the executable")
