"""Shared fixtures for the safety-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

IIWA_XML = Path(__file__).resolve().parents[2] / "models" / "iiwa14" / "iiwa14.xml"


@pytest.fixture(scope="session")
def iiwa_chain():
    mujoco = pytest.importorskip("mujoco")
    from robot_rl.kinematics import chain_from_mjmodel

    return chain_from_mjmodel(mujoco.MjModel.from_xml_path(str(IIWA_XML)), ["ee"])
