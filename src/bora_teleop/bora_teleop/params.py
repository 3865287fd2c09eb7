"""Teleop node parameters (names, safe defaults) and the arbiter built from them (no rclpy).

Every hardware-facing value has a conservative default: arm 0.5 rad/s and hand 1.0 rad/s rate
limits, 0.2 s policy watchdog and human-input timeout, FR3 joint limits, a small workspace box,
UDP off (and loopback-only when on), e-stop latched until the reset service.

Joint limits: the YAML ``arm_lower``/``arm_upper``/``arm_max_velocity`` (and the retarget map's hand
limits), tightened by the robot description when ``robot_description_file`` or
``robot_description_topic`` is set (the stricter of both, :mod:`bora_teleop.urdf_limits`).
Hand driver: ``hand_driver_file`` (:mod:`bora_teleop.hand_adapter`) sets the driver's message type,
joint names and order; empty = sensor_msgs/JointState with the retarget map's joint names.
"""

from __future__ import annotations

from pathlib import Path

from bora_teleop.arbiter import Arbiter, ArbiterConfig
from bora_teleop.blend import BlendConfig
from bora_teleop.events import R_INT_DEFAULT, R_REC_DEFAULT, InterventionRewards
from bora_teleop.hand_adapter import HandAdapter
from bora_teleop.retarget import RetargetMap
from bora_teleop.safety import FR3_LOWER, FR3_UPPER, SafetyConfig
from bora_teleop.urdf_limits import load_robot_description, parse_urdf, tighten, urdf_joint_limits

# The node's own parameters (descriptions and ranges: param_docs.py). The arbiter's rate is the graph-wide
# control_hz of config/graph.yaml, passed to build_arbiter in P["control_hz"] (no default here).
PARAMS = {
    # SCHED_FIFO priority of the arbiter's control-loop thread where permitted (0: normal scheduling)
    "control_thread_priority": 50,
    # move the arbiter's ticks to just after the policy's commands arrive (delay-only: no interval between
    # two driver commands is shorter than the period); false: a free-running grid (up to a period of delay)
    "phase_lock": True,
    "arm_joint_names": [f"fr3_joint{i}" for i in range(1, 8)],
    "retarget_file": "",
    "hand_joint_names": [""],  # only without retarget_file (identity map, glove in robot joint space)
    "hand_lower": [0.0],
    "hand_upper": [0.0],
    "arm_command_type": "forward",
    "hand_driver_file": "",  # config/hand_*.yaml: driver message type + joint order; "" = JointState, our names
    "robot_description_file": "",  # URDF file: joint limits tightened to it (the stricter of both)
    "robot_description_topic": "",  # e.g. /robot_description (latched String of robot_state_publisher)
    "robot_description_timeout_s": 10.0,  # wait this long for the topic at start, then refuse to start
    "policy_command_topic": "/bora/policy_command",
    "arm_joint_states_topic": "/franka/joint_states",
    "hand_joint_states_topic": "/hand/joint_states",
    "glove_topic": "/glove/joint_states",
    "arm_target_topic": "/teleop/arm_target",
    "takeover_topic": "/bora/takeover",
    "recovered_topic": "/bora/recovered",
    "estop_topic": "/bora/estop",
    "arm_command_topic": "/arm_controller/commands",
    "hand_command_topic": "/hand/command",
    "executed_topic": "/bora/executed_command",
    "intervention_topic": "/bora/intervention",
    "episode_topic": "/bora/episode",
    "episode_current_topic": "/bora/episode/current",  # the current START, latched ("" : off)
    # each outcome it publishes, latched (the last ENDED_DEPTH): a restarted live trainer learns what ended ("": off)
    "episode_ended_topic": "/bora/episode/ended",
    # ExecutedCommand records (not the driver commands) are held back this long while no episode is known:
    # the latched START arrives a moment after the first joint states (another DDS endpoint to match)
    "episode_wait_s": 2.0,
    "diagnostics_topic": "/diagnostics",
    # help requests of the policy (issue 19, bora_teleop/help_wait.py): shown (bell + line, /diagnostics);
    # help_hold_policy: the arbiter holds the robot while one waits for the operator (off by default)
    "help_request_topic": "/bora/help_request",
    "help_hold_policy": False,
    "help_wait_timeout_s": 10.0,
    "mark_episode_service": "/bora/mark_episode",
    "set_takeover_service": "/bora/teleop/set_takeover",
    "reset_estop_service": "/bora/teleop/reset_estop",
    "mark_recovered_service": "/bora/teleop/mark_recovered",
    "watchdog_timeout_s": 0.2,
    "human_timeout_s": 0.2,
    "ramp_time_s": 0.5,
    "release_on_recovered": False,
    "require_arm_target": True,
    "arm_lower": list(FR3_LOWER),
    "arm_upper": list(FR3_UPPER),
    "arm_max_velocity": [0.5] * 7,
    "hand_max_velocity": 1.0,
    "workspace_check": True,
    "workspace_min": [0.2, -0.5, 0.02],
    "workspace_max": [0.8, 0.5, 0.8],
    "joint_offsets": [0.0] * 7,
    "tool_offset": [0.0, 0.0, 0.0],
    "udp_port": 0,
    "udp_host": "127.0.0.1",
    # HMAC-SHA256 key file of signed glove packets (bora_teleop/glove_auth.py); required off loopback
    "udp_key_file": "",
    "udp_allowed_sources": [""],  # source IP addresses of the glove stream; empty = any
    # the sim's scripted operator (bora_sim): its own topics; a person's request wins (bora_teleop/sources.py)
    "operator_takeover_topic": "/bora/operator/takeover",
    "operator_glove_topic": "/bora/operator/glove",
    "operator_arm_target_topic": "/bora/operator/arm_target",
    "operator_recovered_topic": "/bora/operator/recovered",
    # /diagnostics is WARN / ERROR while faults (malformed inputs, holds, stalls) happened in this window
    "diagnostics_window_s": 10.0,
    "keyboard": True,  # read operator keys when stdin is a terminal
    "intervention_penalty": R_INT_DEFAULT,
    "recovery_bonus": R_REC_DEFAULT,
    "task": "",
    "object_set": "",
}


def resolve_path(path: str, param: str = "retarget_file") -> Path:
    """A config path: absolute, relative to the working directory or the repository, or in the
    installed share/bora_policy/config."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for base in [Path.cwd(), *Path(__file__).resolve().parents]:
        if (base / p).is_file():
            return base / p
    try:
        from ament_index_python.packages import get_package_share_directory

        cand = Path(get_package_share_directory("bora_policy")) / "config" / p.name
        if cand.is_file():
            return cand
    except Exception:  # noqa: BLE001 - package index not available
        pass
    hint = (
        "; calibrate one with `python -m bora_teleop.retarget fit --pairs PAIRS.npz "
        "--template config/retarget_hand.yaml --out FILE`"
        if param == "retarget_file"
        else ""
    )
    raise FileNotFoundError(
        f"parameter {param}={path!r}: file not found (searched the working directory, the "
        f"repository and share/bora_policy/config){hint}"
    )


def load_retarget(P: dict) -> RetargetMap:
    """The retarget map of a parameter dict: ``retarget_file`` or the identity over ``hand_joint_names``."""
    if P["retarget_file"]:
        return RetargetMap.load(resolve_path(P["retarget_file"]))
    names = [n for n in P["hand_joint_names"] if n]
    if not names:
        raise ValueError("parameter retarget_file is empty and hand_joint_names is not set: give one of them")
    return RetargetMap.identity(names, P["hand_lower"], P["hand_upper"])


def build_hand_adapter(P: dict, rmap: RetargetMap) -> HandAdapter:
    """The hand-driver adapter (``hand_driver_file``), checked against the retarget map's joints."""
    P = {**PARAMS, **P}
    if not P["hand_driver_file"]:
        return HandAdapter.identity(list(rmap.robot_joints))
    return HandAdapter.load(resolve_path(P["hand_driver_file"], "hand_driver_file"), list(rmap.robot_joints))


def build_arbiter(P: dict, robot_description: str | None = None) -> Arbiter:
    """The arbiter for a parameter dict (``PARAMS`` keys); errors name the parameter.

    ``robot_description``: URDF text (e.g. received on ``robot_description_topic``); without it,
    ``robot_description_file`` is read when set. The URDF's limits tighten the YAML ones.
    """
    unknown = sorted(set(P) - set(PARAMS) - {"control_hz"})
    if unknown:
        raise ValueError(f"unknown teleop parameters {unknown}; known: {sorted(PARAMS)} + control_hz")
    if "control_hz" not in P:
        raise ValueError("parameter control_hz: missing (the graph-wide control rate of config/graph.yaml)")
    P = {**PARAMS, **P}
    if P["arm_command_type"] not in ("forward", "trajectory"):
        raise ValueError(
            f"parameter arm_command_type: expected 'forward' or 'trajectory', got {P['arm_command_type']!r}"
        )
    rmap = load_retarget(P)
    arm_lower, arm_upper, arm_vel = list(P["arm_lower"]), list(P["arm_upper"]), P["arm_max_velocity"]
    hand_lower: list[float] = []
    hand_upper: list[float] = []
    hand_vel = P["hand_max_velocity"]
    where = "robot_description_topic"
    if robot_description is None and P["robot_description_file"]:
        robot_description = load_robot_description(P["robot_description_file"])
        where = f"robot_description_file {P['robot_description_file']}"
    if robot_description is not None:
        arm_names = list(P["arm_joint_names"])
        lims = urdf_joint_limits(robot_description, arm_names, where=where)
        arm_lower, arm_upper, arm_vel = tighten(arm_lower, arm_upper, arm_vel, [lims[n] for n in arm_names])
        # hand joints that the description also holds (a combined arm + hand URDF) are tightened too
        in_urdf = {j.get("name") for j in parse_urdf(robot_description, where).findall("joint")}
        present = [n for n in rmap.robot_joints if n in in_urdf]
        if present:
            hl = urdf_joint_limits(robot_description, present, where=where)
            hand_lower, hand_upper = rmap.lower.tolist(), rmap.upper.tolist()
            vel = list(hand_vel) if isinstance(hand_vel, (list, tuple)) else [float(hand_vel)] * rmap.n_robot
            for i, n in enumerate(rmap.robot_joints):
                if n in hl:
                    (hand_lower[i],), (hand_upper[i],), (vel[i],) = tighten(
                        [hand_lower[i]], [hand_upper[i]], [vel[i]], [hl[n]]
                    )
            hand_vel = vel
    cfg = ArbiterConfig(
        control_hz=float(P["control_hz"]),
        watchdog_timeout_s=float(P["watchdog_timeout_s"]),
        human_timeout_s=float(P["human_timeout_s"]),
        require_arm_target=bool(P["require_arm_target"]),
        blend=BlendConfig(float(P["ramp_time_s"]), bool(P["release_on_recovered"])),
        safety=SafetyConfig(
            arm_lower=arm_lower,
            arm_upper=arm_upper,
            hand_lower=hand_lower,
            hand_upper=hand_upper,
            arm_max_velocity=list(arm_vel) if isinstance(arm_vel, (list, tuple)) else float(arm_vel),
            hand_max_velocity=list(hand_vel) if isinstance(hand_vel, (list, tuple)) else float(hand_vel),
            workspace_check=bool(P["workspace_check"]),
            workspace_min=list(P["workspace_min"]),
            workspace_max=list(P["workspace_max"]),
            joint_offsets=list(P["joint_offsets"]),
            tool_offset=list(P["tool_offset"]),
        ),
        rewards=InterventionRewards(float(P["intervention_penalty"]), float(P["recovery_bonus"])),
    )
    return Arbiter(cfg, list(P["arm_joint_names"]), rmap)
