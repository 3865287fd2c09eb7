"""Descriptions and ranges of the teleop node's parameters (the defaults are ``bora_teleop.params.PARAMS``).

:func:`specs` joins both into ``ParamSpec`` s for ``bora_policy.common.node.declare_params``; every
``PARAMS`` key must have an entry here (test_params.py checks it), so ``ros2 param describe /teleop NAME``
says what each one does. The graph-wide ``control_hz`` (the arbiter's rate) comes from config/graph.yaml.
Ranges: the safe defaults lie inside; the bounds only refuse values that cannot be meant (a negative
timeout, a 100 rad/s joint). No rclpy here.
"""

from __future__ import annotations

from bora_policy.common.graph_params import ParamSpec

_T = "topic: "
DOCS: dict[str, tuple[str, dict]] = {
    "control_thread_priority": ("SCHED_FIFO priority of the arbiter's loop where permitted (0: normal)",
                                {"range": (0, 99)}),
    "phase_lock": ("tick just after the policy's commands arrive (delays ticks only; false: free-running grid)",
                   {}),
    "arm_joint_names": ("the arm's 7 joint names, in the driver's order", {}),
    "retarget_file": ("glove -> hand retarget map (config/retarget_*.yaml)", {}),
    "hand_joint_names": ("hand joints of the identity map (only without retarget_file)", {}),
    "hand_lower": ("hand lower limits of the identity map (rad)", {}),
    "hand_upper": ("hand upper limits of the identity map (rad)", {}),
    "arm_command_type": ("arm driver command: forward (Float64MultiArray) or trajectory (JointTrajectory)",
                         {"choices": ("forward", "trajectory")}),
    "hand_driver_file": ("hand driver message type + joint order (config/hand_*.yaml; '': JointState)", {}),
    "robot_description_file": ("URDF whose joint limits tighten the YAML limits ('': none)", {}),
    "robot_description_topic": ("latched URDF topic waited for at start ('': none)", {}),
    "robot_description_timeout_s": ("wait this long for robot_description_topic, then refuse to start (s)",
                                    {"range": (0.0, 600.0)}),
    "policy_command_topic": (_T + "the policy's JointCommand", {}),
    "arm_joint_states_topic": (_T + "measured arm joint states", {}),
    "hand_joint_states_topic": (_T + "measured hand joint states", {}),
    "glove_topic": (_T + "a person's glove angles (JointState)", {}),
    "arm_target_topic": (_T + "a person's arm target (JointState)", {}),
    "takeover_topic": (_T + "a person's takeover trigger (Bool, a change requests / releases)", {}),
    "recovered_topic": (_T + "task recovered (Bool true, once per takeover)", {}),
    "estop_topic": (_T + "e-stop (Bool, latched until reset_estop_service)", {}),
    "arm_command_topic": (_T + "arm driver command (the only writer)", {}),
    "hand_command_topic": (_T + "hand driver command (the only writer)", {}),
    "executed_topic": (_T + "ExecutedCommand records", {}),
    "intervention_topic": (_T + "InterventionEvent (r_int, r_rec)", {}),
    "episode_topic": (_T + "EpisodeEvent in and out", {}),
    "episode_current_topic": (_T + "the current episode's START, latched ('': off)", {}),
    "episode_ended_topic": (_T + "each outcome it publishes again, latched, the last 100 ('': off)", {}),
    "episode_wait_s": ("ExecutedCommand records without an episode are held back this long (s)",
                       {"range": (0.0, 60.0)}),
    "diagnostics_topic": (_T + "diagnostics", {}),
    "help_request_topic": (_T + "the policy's help requests (HelpRequest)", {}),
    "help_hold_policy": ("hold the robot while a help request waits for the operator", {}),
    "help_wait_timeout_s": ("how long a help request waits for the operator (s)", {"range": (0.0, 3600.0)}),
    "mark_episode_service": ("service: MarkEpisode", {}),
    "set_takeover_service": ("service: SetBool takeover", {}),
    "reset_estop_service": ("service: Trigger, clears the latched e-stop (input false)", {}),
    "mark_recovered_service": ("service: Trigger, task recovered", {}),
    "watchdog_timeout_s": ("hold when the policy command is older than this (s)", {"range": (0.01, 10.0)}),
    "human_timeout_s": ("hold when a takeover has no fresh glove / arm target input (s)", {"range": (0.01, 10.0)}),
    "ramp_time_s": ("linear beta ramp of a takeover, both ways (s)", {"range": (0.0, 60.0)}),
    "release_on_recovered": ("release the takeover when recovered is marked", {}),
    "require_arm_target": ("a takeover needs an arm target (false: glove-only, arm from the policy)", {}),
    "arm_lower": ("arm lower joint limits (rad), tightened by the URDF", {}),
    "arm_upper": ("arm upper joint limits (rad), tightened by the URDF", {}),
    "arm_max_velocity": ("arm rate limit per joint (rad/s; per tick: v / control_hz)", {"range": (0.0, 10.0)}),
    "hand_max_velocity": ("hand rate limit (rad/s)", {"range": (0.0, 20.0)}),
    "workspace_check": ("hold when the checked tool point leaves the workspace box", {}),
    "workspace_min": ("workspace box minimum, base frame (m)", {"range": (-5.0, 5.0)}),
    "workspace_max": ("workspace box maximum, base frame (m)", {"range": (-5.0, 5.0)}),
    "joint_offsets": ("joint zero offsets against the FR3 DH convention (rad)", {"range": (-6.3, 6.3)}),
    "tool_offset": ("checked tool point in the flange frame (m)", {"range": (-1.0, 1.0)}),
    "udp_port": ("UDP glove port (0: off); not in DDS's 7400 + 250 * ROS_DOMAIN_ID .. +249", {"range": (0, 65535)}),
    "udp_host": ("UDP bind address (off loopback: udp_key_file required)", {}),
    "udp_key_file": ("HMAC-SHA256 key file of signed glove packets", {}),
    "udp_allowed_sources": ("source IP addresses of the glove stream ([\"\"]: any)", {}),
    "operator_takeover_topic": (_T + "the sim's scripted operator's takeover (a level)", {}),
    "operator_glove_topic": (_T + "the scripted operator's glove angles", {}),
    "operator_arm_target_topic": (_T + "the scripted operator's arm target", {}),
    "operator_recovered_topic": (_T + "the scripted operator's recovered flag", {}),
    "diagnostics_window_s": ("/diagnostics is WARN / ERROR while a fault happened in this window (s)",
                             {"range": (0.1, 86400.0)}),
    "keyboard": ("read operator keys when stdin is a terminal", {}),
    "intervention_penalty": ("r_int at a takeover START (a penalty, <= 0)", {"range": (-100.0, 0.0)}),
    "recovery_bonus": ("r_rec at RECOVERED (>= 0)", {"range": (0.0, 100.0)}),
    "task": ("task name written into episode events", {}),
    "object_set": ("object set written into episode events", {}),
}


def specs(params: dict) -> list[ParamSpec]:
    """``ParamSpec`` s of ``params`` (name -> default); a name without an entry in ``DOCS`` is an error."""
    missing = sorted(set(params) - set(DOCS))
    if missing:
        raise ValueError(f"teleop parameters without a description in bora_teleop/param_docs.py: {missing}")
    return [ParamSpec(k, v, DOCS[k][0], **DOCS[k][1]) for k, v in params.items()]
