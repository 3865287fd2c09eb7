"""The node graph, in one table read by the launch files and by ``bora up`` (so they never drift).

Each entry: the node name (= its section in config/sim.yaml and config/deploy.yaml), the package
and console-script executable, and where it runs: ``sim`` (the simulated graph), ``deploy``
(the real robot graph), ``optional`` (started only when asked, e.g. the trainer). The real
drivers (realsense2_camera x3, franka_ros2, the hand driver) are not ours and are listed in
``DRIVERS`` for the deploy launch file only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeSpec:
    name: str
    package: str
    executable: str
    module: str
    sim: bool = True
    deploy: bool = True
    optional: bool = False
    description: str = ""


NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        "sim_bridge",
        "bora_sim",
        "sim_bridge",
        "bora_sim.nodes.bridge_node",
        sim=True,
        deploy=False,
        description="simulated robot: cameras, arm and hand states, scripted operator, episodes",
    ),
    NodeSpec(
        "sync",
        "bora_policy",
        "sync_node",
        "bora_policy.nodes.sync_node",
        description="cameras + joint states -> /bora/observation",
    ),
    NodeSpec(
        "policy",
        "bora_policy",
        "policy_node",
        "bora_policy.nodes.policy_node",
        description="VLA + residual + critic -> /bora/policy_command",
    ),
    NodeSpec(
        "teleop",
        "bora_teleop",
        "teleop_node",
        "bora_teleop.nodes.teleop_node",
        description="command arbiter: takeover blending + safety, the only writer to the drivers",
    ),
    NodeSpec(
        "trainer",
        "bora_trainer",
        "trainer_node",
        "bora_trainer.nodes.trainer_node",
        optional=True,
        description="online residual training from live topics; writes checkpoints for hot reload",
    ),
)

# Real-robot drivers started by launch/deploy.launch.py: (package, executable, node name, namespace).
CAMERAS: tuple[str, ...] = ("left", "front", "right")
DRIVERS = {
    "camera": ("realsense2_camera", "realsense2_camera_node"),
    "franka": ("franka_bringup", "franka.launch.py"),
    "hand": ("bora_hand_driver", "hand_driver"),
}


def nodes_for(mode: str, with_optional: tuple[str, ...] = ()) -> list[NodeSpec]:
    """The nodes of the ``sim`` or ``deploy`` graph, plus the named optional ones."""
    if mode not in ("sim", "deploy"):
        raise ValueError(f"graph: mode must be 'sim' or 'deploy', got {mode!r}")
    out = []
    for n in NODES:
        if not getattr(n, mode):
            continue
        if n.optional and n.name not in with_optional:
            continue
        out.append(n)
    return out
