"""The policy node's parameters (names, defaults, descriptions, ranges), declared by ``PolicyNode`` with
``bora_policy.common.node.declare_params``. The graph-wide ``control_hz``, ``chunk_size`` and
``residual_scale`` are not here: they come from config/graph.yaml (``declare_graph_params``)."""

from __future__ import annotations

from bora_policy.common.graph_params import ParamSpec

MODES = ("autonomous", "paused", "hold")
# the teleop arbiter's default limits (bora_teleop.params: arm_max_velocity x 7, hand_max_velocity; a test
# checks they agree): the policy's commands never step further per tick than the arbiter lets through
MAX_JOINT_VELOCITY = (0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0)

TOPICS = (
    ("observation", "/bora/observation", "observations in (bora_msgs/Observation)"),
    ("action_chunk", "/bora/action_chunk", "each planned chunk with z_t (bora_msgs/ActionChunk)"),
    ("command", "/bora/policy_command", "one JointCommand per control tick"),
    ("value", "/bora/value", "the critic's value estimates"),
    ("markers", "/bora/value_markers", "value markers for RViz (MarkerArray)"),
    ("diagnostics", "/diagnostics", "timing and health statistics"),
    ("episode", "/bora/episode", "episode events in"),
    ("episode_current", "/bora/episode/current", "the current episode's START, latched ('': off)"),
    ("checkpoint", "/bora/checkpoint", "announced residual checkpoints (hot reload)"),
    ("executed", "/bora/executed_command", "the arbiter's executed commands (takeover state)"),
)
SERVICES = (
    ("set_mode", "/bora/policy/set_mode", "bora_msgs/SetMode: autonomous, paused, hold"),
    ("load_checkpoint", "/bora/policy/load_checkpoint", "bora_msgs/LoadCheckpoint: stage a residual"),
)

SPECS = (
    ParamSpec("vla_path", "", "VLAPolicy directory (save_vla) or a run directory with policy/ (required)"),
    ParamSpec("residual_path", "", "residual actor checkpoint to start with ('': none)"),
    ParamSpec("critic_path", "", "chunk critic ('': the critic of vla_path's run if it has one; 'none': none)"),
    ParamSpec(
        "frozen_residual_paths",
        [""],
        "earlier rounds' residuals folded into the base (Algorithm 1 lines 8-12), PATH or PATH@LAMBDA; [\"\"]: none",
    ),
    ParamSpec("replan_steps", 8, "control ticks between two inference requests", range=(1, 1024)),
    ParamSpec("chunk_hz", 10.0, "rate of the actions in a chunk (the VLA's training rate, Hz)", range=(0.1, 1000.0)),
    ParamSpec("blend_steps", 2, "ticks over which a new chunk is blended in", range=(0, 1024)),
    ParamSpec("max_delta", 0.0, "largest joint change per tick (rad); 0: unlimited", range=(0.0, 10.0)),
    ParamSpec(
        "max_joint_velocity", list(MAX_JOINT_VELOCITY),
        "per-joint speed limit of the commands (rad/s; the last value for the remaining joints; [0.0]: off): "
        "chunk switches blend long enough and every tick is clipped (the arbiter's arm/hand limits)",
        range=(0.0, 100.0),
    ),
    ParamSpec("num_inference_steps", 0, "denoising steps; 0: the expert's default", range=(0, 1000)),
    ParamSpec("deterministic", True, "deterministic sampling of the action expert"),
    ParamSpec("device", "auto", "torch device (auto, cpu, cuda, cuda:N)"),
    ParamSpec("stale_observation_s", 1.0, "no command when the newest observation is older (s)", range=(0.01, 60.0)),
    ParamSpec("publish_markers", True, "publish the value markers"),
    ParamSpec("marker_frame", "base", "frame of the value markers"),
    ParamSpec("marker_value_min", -0.5, "value at the bottom of the marker scale", range=(-1e6, 1e6)),
    ParamSpec("marker_value_max", 1.0, "value at the top of the marker scale", range=(-1e6, 1e6)),
    ParamSpec(
        "marker_scale_adapt", 0.0, "0: fixed scale; > 0: move toward each chunk's min/max by this fraction",
        range=(0.0, 1.0),
    ),
    ParamSpec("marker_history", 60, "chunks of v(z_t, 0) in the history strip", range=(0, 100000)),
    ParamSpec("torch_threads", 1, "torch intra-op threads", range=(1, 1024)),
    ParamSpec(
        "control_thread_priority", 50, "SCHED_FIFO priority of the control loop where permitted (0: normal)",
        range=(0, 99),
    ),
    ParamSpec("initial_mode", "autonomous", "mode at start", choices=MODES),
    *(ParamSpec(f"{k}_topic", d, desc) for k, d, desc in TOPICS),
    *(ParamSpec(f"{k}_service", d, desc) for k, d, desc in SERVICES),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics (s)", range=(0.05, 3600.0)),
    ParamSpec(
        "health_window_s", 10.0, "/diagnostics is WARN/ERROR while a fault happened in this window (s)",
        range=(0.1, 86400.0),
    ),
    ParamSpec(
        "checkpoint_roots",
        [""],
        "directories a checkpoint path received over ROS may lie in ([\"\"]: the run directory of vla_path and "
        "the directories of residual_path and critic_path)",
    ),
)
