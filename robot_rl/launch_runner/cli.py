"""``robot-rl launch``: run a ROS 2 XML/YAML launch file without a ROS 2 installation."""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import socket
import sys
from pathlib import Path

from . import ament
from .errors import LaunchError
from .evaluate import build_plan
from .frontend import load_launch_file, parts_source, static_args
from .supervisor import DEFAULT_SIGKILL_TIMEOUT, DEFAULT_SIGTERM_TIMEOUT, Supervisor

PROG = "robot-rl launch"

_DESCRIPTION = """\
Run a ROS 2 launch file (XML or YAML front end) without ROS 2 installed. The same file works
with `ros2 launch`. Launch arguments are given as NAME:=VALUE after the file.

  robot-rl launch launch/deploy.launch.xml robot:=ur5 use_twin:=true
  robot-rl launch robot_rl deploy.launch.xml          # file from robot_rl's share/launch
  robot-rl launch --show-args launch/deploy.launch.xml
  robot-rl launch launch/deploy.launch.xml artifact:=... __ns:=/arm1   # whole graph under /arm1

`__ns:=/NS` pushes a ROS namespace around the whole file, like including it inside
<group><push-ros-namespace namespace="/NS"/></group> (ros2 launch has no such argument).

Exit codes: 0 clean stop (SIGINT/SIGTERM, or all nodes finished cleanly), 1 a node failed,
2 invalid launch file or arguments (nothing was started).
"""

_EXIT_HELP = """\
when any node exits on its own, stop all the others and exit non-zero (default: on). A half-running
control graph (e.g. a policy without its safety layer) is unsafe on a robot. With
--no-exit-on-any-death the runner behaves like ros2 launch: other nodes keep running, and only
nodes marked on_exit="shutdown" end the launch."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=_DESCRIPTION,
                                usage=f"{PROG} [options] FILE | PACKAGE FILE [NAME:=VALUE ...]",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("items", nargs="+", metavar="ITEM",
                   help="launch file path (or package name and file name), then NAME:=VALUE launch "
                        "arguments")
    p.add_argument("--exit-on-any-death", dest="exit_on_any_death", action="store_true", default=True,
                   help=_EXIT_HELP)
    p.add_argument("--no-exit-on-any-death", dest="exit_on_any_death", action="store_false",
                   help="ros2 launch behaviour: a node exiting does not stop the others")
    p.add_argument("-s", "--show-args", "--show-arguments", dest="show_args", action="store_true",
                   help="print the launch arguments the file declares and exit")
    p.add_argument("-p", "--print", "--dry-run", dest="dry_run", action="store_true",
                   help="validate and print the command of every node, start nothing")
    p.add_argument("--sigterm-timeout", type=float, default=DEFAULT_SIGTERM_TIMEOUT, metavar="S",
                   help="seconds from SIGINT to SIGTERM on shutdown (default %(default)s)")
    p.add_argument("--sigkill-timeout", type=float, default=DEFAULT_SIGKILL_TIMEOUT, metavar="S",
                   help="seconds from SIGTERM to SIGKILL on shutdown (default %(default)s)")
    p.add_argument("--log-dir", default=None, metavar="DIR",
                   help="where launch.log is written (default: $ROS_LOG_DIR, $ROS_HOME/log or "
                        "~/.ros/log, in a new <date>-<host>-<pid> folder)")
    return p


def _find_in_package(package: str, file_name: str) -> str:
    """Like ros2launch's get_share_file_path_from_package: find ``file_name`` below the share dir."""
    share = Path(ament.find_package_share(package))
    roots = [share / "launch"] if package == ament.PACKAGE and ament.find_package_prefix(package) is None \
        else [share]
    matches: list[Path] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if file_name in filenames:
                matches.append(Path(dirpath) / file_name)
    if not matches:
        raise LaunchError(f"file '{file_name}' was not found in the share directory of package "
                          f"'{package}' ({share})", fix="check the file name, or pass the file's path")
    if len(matches) > 1:
        raise LaunchError(f"file '{file_name}' was found more than once in the share directory of "
                          f"package '{package}': {', '.join(map(str, matches))}",
                          fix="pass the file's path instead")
    return str(matches[0])


def _split_items(items: list[str]) -> tuple[str, list[str]]:
    first = items[0]
    rest = items[1:]
    if ":=" in first:
        raise LaunchError(f"expected a launch file before the arguments, got {first!r}",
                          fix=f"usage: {PROG} FILE [NAME:=VALUE ...]")
    if not os.path.isfile(first) and rest and ":=" not in rest[0]:  # PACKAGE FILE_NAME [args]
        return _find_in_package(first, rest[0]), rest[1:]
    if not os.path.exists(first):
        raise LaunchError(f"launch file not found: {first}",
                          fix=f"pass a path, or a package and a file name: {PROG} robot_rl FILE")
    if os.path.isdir(first):
        raise LaunchError(f"{first} is a directory", fix="pass the launch file inside it")
    return first, rest


def default_log_dir(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    base = env.get("ROS_LOG_DIR")
    if not base:
        home = env.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros")
        base = os.path.join(home, "log")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")
    return os.path.join(os.path.expanduser(base), f"{stamp}-{socket.gethostname()}-{os.getpid()}")


def _show_args(path: str) -> None:
    lf = load_launch_file(os.path.abspath(path))
    decls = static_args(lf)
    if not decls:
        print("No arguments.")
        return
    print("Arguments (pass arguments as '<name>:=<value>'):\n")
    seen = set()
    for decl, conditional in decls:
        if decl.name in seen:
            continue
        seen.add(decl.name)
        print(f"    '{decl.name}':")
        print(f"        {decl.description or 'no description given'}")
        if decl.choices:
            print(f"        Valid choices are: {decl.choices}")
        if decl.default is not None:
            print(f"        (default: '{parts_source(decl.default)}')")
        elif conditional:
            print("        (required when its condition holds)")
        print()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``robot-rl launch``; returns the exit code (see ``--help``)."""
    try:
        args = _parser().parse_intermixed_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help, or a usage error (already printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        path, cli_args = _split_items(args.items)
        if args.show_args:
            _show_args(path)
            return 0
        plan = build_plan(path, cli_args)
    except LaunchError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before anything was started
        return 130
    for w in plan.warnings:
        print(f"[WARNING] [launch]: {w}", file=sys.stderr)
    if args.dry_run:
        for n in plan.nodes:
            print(f"[{n.label}] {shlex.join(n.argv)}")
        return 0
    if not plan.nodes:
        print(f"[INFO] [launch]: {os.path.basename(path)} starts no nodes", file=sys.stderr)
        return 0
    sup = Supervisor(
        plan.nodes,
        exit_on_any_death=args.exit_on_any_death,
        sigterm_timeout=args.sigterm_timeout,
        sigkill_timeout=args.sigkill_timeout,
        log_dir=args.log_dir or default_log_dir(),
    )
    return sup.run()
