"""Fixtures for the launch runner tests (helpers live in launch_helpers.py)."""

from launch_helpers import fake_bin, reaper, state_dir  # noqa: F401  (pytest fixtures)
