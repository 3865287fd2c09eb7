# Source this file (bash) to use the workspace: venv, ROS 2 from the venv, the built workspace,
# loopback-only DDS and headless rendering.  `. scripts/env.sh`
_BORA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VIRTUAL_ENV=$_BORA_ROOT/.venv
export PATH=$VIRTUAL_ENV/bin:$PATH
export AMENT_PREFIX_PATH=$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
export CMAKE_PREFIX_PATH=$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
# DDS discovery stays on this machine unless the user says otherwise (multi-PC deployments
# set ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET themselves).
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( ($$ % 100) + 100 ))}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export MUJOCO_GL=${MUJOCO_GL:-egl}
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
if [ -f "$_BORA_ROOT/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$_BORA_ROOT/install/setup.bash"
fi
