"""Errors raised while loading or validating a launch file."""

from __future__ import annotations


class LaunchError(Exception):
    """A launch file or its command line is invalid.

    ``str(err)`` is one line: where (file and line when known), what is wrong and how to fix it.
    The CLI prints it and exits with code 2; no process has been started when it is raised.
    """

    def __init__(self, problem: str, *, fix: str | None = None, where: str | None = None):
        self.problem = problem
        self.fix = fix
        self.where = where
        super().__init__(self._format())

    def _format(self) -> str:
        msg = self.problem
        if self.where:
            msg = f"{self.where}: {msg}"
        if self.fix:
            msg = f"{msg}; {self.fix}"
        return " ".join(msg.split("\n"))

    def located(self, where: str | None) -> "LaunchError":
        """Return this error with a location, unless it already has one."""
        if self.where or not where:
            return self
        return LaunchError(self.problem, fix=self.fix, where=where)
