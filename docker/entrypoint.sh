#!/bin/bash
# Source ROS 2 and the workspace, then run the command.
set -e
# shellcheck disable=SC1090
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck disable=SC1091
source /bora_ws/install/setup.bash
exec "$@"
