"""``python -m robot_rl.launch_runner FILE [NAME:=VALUE ...]`` (same as ``robot-rl launch``)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
