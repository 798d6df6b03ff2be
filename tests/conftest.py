import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def iiwa_model_xml() -> str:
    """The iiwa's kinematic model as an exported artifact carries it (robot.xml)."""
    from robot_rl.kinematics import kinematic_model_xml
    from robot_rl.robots import get_robot

    return kinematic_model_xml(get_robot("iiwa14"))


@pytest.fixture(scope="session")
def iiwa_joints() -> list[str]:
    from robot_rl.robots import get_robot

    return list(get_robot("iiwa14").joint_names)
