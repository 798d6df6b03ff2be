"""Task registry: one file per task; `make_task(name)` returns a fresh task instance."""

from __future__ import annotations

from robot_rl.sim.task import Task


def _registry() -> dict[str, type]:
    from robot_rl.sim.tasks.cartpole_swingup import CartpoleSwingup
    from robot_rl.sim.tasks.iiwa_reach import IiwaReach

    return {"cartpole-swingup": CartpoleSwingup, "iiwa-reach": IiwaReach}


def task_names() -> list[str]:
    return sorted(_registry())


def make_task(name: str) -> Task:
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(sorted(reg))}")
    return reg[name]()
