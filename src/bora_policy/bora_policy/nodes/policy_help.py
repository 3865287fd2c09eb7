"""The policy node's help requests (issue 19; thin rclpy glue, the decision is
``bora_policy.runtime.help_monitor.HelpMonitor``).

Parameters (declared here, on the policy node):
  * ``help_calibration``: a file written by ``bora help calibrate`` ("" = none);
  * ``help_task``: its task entry ("" = the only task of the file);
  * ``help_threshold``: a threshold given by hand (NaN = from the calibration; neither: no requests);
  * ``help_hysteresis`` / ``help_min_interval_s`` / ``help_persist_steps`` / ``help_grace_steps`` /
    ``help_signal`` (q, v, q_ahead): override the calibration's values when set (NaN / -1 / "" = keep);
  * ``help_request_topic`` (/bora/help_request), ``help_marker_s`` (how long RViz shows a request, 5 s).
"""

from __future__ import annotations

import math

from bora_policy.common.graph_params import ParamSpec
from bora_policy.runtime.help_monitor import HelpDecision, HelpMonitor, HelpMonitorConfig


def _only_task(path: str) -> str:
    import json
    from pathlib import Path

    import yaml

    p = Path(path)
    data = json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text())
    tasks = sorted((data or {}).get("tasks") or {})
    if len(tasks) != 1:
        raise ValueError(f"policy: help_calibration {path} has tasks {tasks}: set help_task to one of them")
    return tasks[0]


def monitor_config(control_hz: float, calibration: str = "", task: str = "", threshold: float = math.nan,
                   **overrides) -> HelpMonitorConfig:
    """The monitor's configuration from the node's parameters (module docstring)."""
    def given(v) -> bool:  # NaN / -1 / "" = not set
        return not (v is None or v == "" or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, int) and v < 0))

    over = {k: v for k, v in overrides.items() if given(v)}
    over["control_hz"] = float(control_hz)
    if not math.isnan(threshold):
        over["threshold"] = float(threshold)
    if calibration:
        from bora_policy.runtime.help_calibration import load_monitor_config

        return load_monitor_config(calibration, task or _only_task(calibration), **over)
    return HelpMonitorConfig(**over)


HELP_SPECS = (
    ParamSpec("help_calibration", "", "help-request calibration file of `bora help calibrate` ('': none)"),
    ParamSpec("help_task", "", "the calibration file's task entry ('': its only task)"),
    ParamSpec("help_threshold", math.nan, "help-request threshold by hand (NaN: from help_calibration; neither: off)"),
    ParamSpec("help_hysteresis", math.nan, "re-arm margin above the threshold (NaN: the calibration's)"),
    ParamSpec("help_min_interval_s", math.nan, "at most one request per this many seconds (NaN: the calibration's)"),
    ParamSpec("help_persist_steps", -1, "ticks below the threshold before asking (-1: the calibration's)",
              range=(-1, 1000)),
    ParamSpec("help_grace_steps", -1, "no request in an episode's first steps (-1: the calibration's)",
              range=(-1, 100000)),
    ParamSpec("help_signal", "", "the monitored value ('': the calibration's)", choices=("", "q", "v", "q_ahead")),
    ParamSpec("help_request_topic", "/bora/help_request", "help requests out (bora_msgs/HelpRequest)"),
    ParamSpec("help_marker_s", 5.0, "how long RViz shows a request (s)", range=(0.0, 3600.0)),
)


class HelpOutput:
    """Declares the parameters, owns the monitor and publishes its requests for the node."""

    def __init__(self, node, qos):
        from bora_msgs.msg import HelpRequest
        from bora_policy.common.node import declare_params

        P = declare_params(node, HELP_SPECS)
        self.node, self._msg = node, HelpRequest
        cfg = monitor_config(
            node.control_hz,
            str(P["help_calibration"]),
            str(P["help_task"]),
            float(P["help_threshold"]),
            hysteresis=float(P["help_hysteresis"]),
            min_interval_s=float(P["help_min_interval_s"]),
            persist_steps=int(P["help_persist_steps"]),
            grace_steps=int(P["help_grace_steps"]),
            signal=str(P["help_signal"]),
        )
        self.marker_s = float(P["help_marker_s"])
        self.monitor = HelpMonitor(cfg)
        self.pub = node.create_publisher(HelpRequest, str(P["help_request_topic"]), qos)
        self.last: tuple[HelpDecision, float] | None = None
        if cfg.threshold is None:
            node.get_logger().info("policy: help requests off (no help_calibration, no help_threshold)")
        else:
            node.get_logger().info(
                f"policy: help requests on /bora/help_request when {cfg.signal} < {cfg.threshold:+.4f} for "
                f"{cfg.persist_steps} step(s) (hysteresis {cfg.hysteresis:g}, at most one per {cfg.min_interval_s:g} s)"
            )

    def reset(self) -> None:
        self.monitor.reset()
        self.last = None

    def tick(self, res, index: int, episode_id: int, session_id: str, step: int, now: float) -> None:
        """One control tick of the executing chunk ``res`` (a ChunkResult) at chunk ``index``; nothing while the
        arbiter reports a takeover (the node's ``_takeover`` from /bora/executed_command)."""
        if res is None:
            return
        takeover = getattr(self.node, "_takeover", None)  # (is_intervention, beta, held) of the arbiter
        if takeover is not None and takeover[0]:
            return  # the operator is in control: nobody needs calling; those steps are not monitored
        d = self.monitor.update(step, res.q, res.v, index, res.advantage)
        if d is None:
            return
        m = self._msg(
            episode_id=int(episode_id), session_id=str(session_id), step=int(d.step), reason=d.reason,
            value=float(d.value), threshold=float(d.threshold),
            predicted_steps_to_failure=int(d.predicted_steps_to_failure),
        )
        m.header.stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(m)
        self.last = (d, now)
        self.node.get_logger().warning(
            f"policy: HELP requested at step {d.step} of episode {episode_id}: {d.reason} "
            f"{d.value:+.3f} < {d.threshold:+.3f}"
            + (f", failure predicted in {d.predicted_steps_to_failure} steps"
               if d.predicted_steps_to_failure >= 0 else "")
        )

    def marker(self, now: float) -> HelpDecision | None:
        """The request RViz still shows (for ``help_marker_s`` after it), else None."""
        if self.last is None or now - self.last[1] > self.marker_s:
            return None
        return self.last[0]
