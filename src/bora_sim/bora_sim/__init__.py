"""bora_sim: MuJoCo Franka + dexterous hand, the five BORA tasks, scripted experts and operator.

``MUJOCO_GL`` must be chosen before mujoco is first imported: headless EGL unless the user set it.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
