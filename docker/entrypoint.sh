#!/bin/bash
# Source ROS 2 and the workspace, then run the command.
set -e
# shellcheck disable=SC1090
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# franka_ros2 built on the host and mounted at /franka_ws (docker/compose.robot.yaml), when present
if [ -f /franka_ws/install/setup.bash ]; then
  # shellcheck disable=SC1091
  source /franka_ws/install/setup.bash
fi
# shellcheck disable=SC1091
source /bora_ws/install/setup.bash
exec "$@"
