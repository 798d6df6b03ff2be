"""Task registry: one file per task; `make_task(name)` returns a fresh task instance.

Built-in tasks are listed in `_BUILTIN`; `register(name, cls)` adds one from user code (tests,
a user's own package) without touching this file.
"""

from __future__ import annotations

import importlib

from robot_rl.sim.task import Task

_BUILTIN = {
    "cartpole-swingup": "robot_rl.sim.tasks.cartpole_swingup:CartpoleSwingup",
    "iiwa-reach": "robot_rl.sim.tasks.iiwa_reach:IiwaReach",
    "panda-peg-insert": "robot_rl.sim.tasks.panda_peg_insert:PandaPegInsert",
    "panda-reach": "robot_rl.sim.tasks.panda_reach:PandaReach",
}
_EXTRA: dict[str, type] = {}


def register(name: str, cls: type) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register({name!r}, ...) needs a Task subclass, got {cls!r}")
    _EXTRA[name] = cls


def task_names() -> list[str]:
    return sorted({*_BUILTIN, *_EXTRA})


def make_task(name: str) -> Task:
    if name in _EXTRA:
        return _EXTRA[name]()
    if name not in _BUILTIN:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(task_names())}")
    module, cls = _BUILTIN[name].split(":")
    return getattr(importlib.import_module(module), cls)()
