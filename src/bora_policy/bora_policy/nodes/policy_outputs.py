"""The policy node's output messages, built from its state (split from policy_node.py to keep it short)."""

from __future__ import annotations

import numpy as np

from bora_policy.runtime.observation import planned_step


def chunk_messages(node, obs, arr, res):
    """The ActionChunk of one inference and its ValueEstimate (None without a critic)."""
    r = node.runner
    c = node.msgs["ActionChunk"]()
    c.header.stamp = obs.header.stamp
    c.header.frame_id = obs.header.frame_id
    c.episode_id, c.step, c.session_id = int(obs.episode_id), int(obs.step), str(obs.session_id)
    g = node.gate
    if c.episode_id == 0 and g.t_start is not None:
        # an observation without an episode (its sync node saw no START) planned in the current episode:
        # the chunk carries that episode and the step of the observation's stamp on its time base
        c.episode_id, c.session_id = g.episode_id, node.episodes.session(g.episode_id)
        c.step = planned_step(obs, g.t_start, node.control_hz)
    c.chunk_size, c.action_dim = int(res.final.shape[0]), int(res.final.shape[1])
    c.joint_names = list(arr.joint_names)
    c.base = res.base.astype(np.float32).ravel().tolist()
    c.residual = res.residual.astype(np.float32).ravel().tolist()
    c.final = res.final.astype(np.float32).ravel().tolist()
    c.residual_scale = float(res.residual_scale)
    c.cognition_token = res.z.astype(np.float32).tolist()
    c.proprio_norm = res.proprio_norm.astype(np.float32).tolist()
    c.base_norm = res.base_norm.astype(np.float32).ravel().tolist()
    c.policy_version, c.residual_version = r.policy_version, res.residual_version
    c.normalizer_version = r.normalizer.version
    if res.q is None:
        return c, None
    v = node.msgs["ValueEstimate"]()
    v.header = c.header
    v.episode_id, v.step, v.session_id = c.episode_id, c.step, c.session_id
    v.q, v.v = res.q.astype(np.float32).tolist(), res.v.astype(np.float32).tolist()
    v.advantage = res.advantage.astype(np.float32).tolist()
    v.critic_version = r.critic_version
    return c, v


def marker_message(node, index: int, mode_name: str):
    """The value markers of the executing chunk (its q/v at row ``index``), with the takeover state, the
    scale and history strip and the current help request (bora_policy/nodes/markers.py)."""
    from bora_policy.nodes.markers import value_markers

    res = node._last_value
    return value_markers(
        res.q,
        res.v,
        index,
        node.marker_frame,
        node.get_clock().now().to_msg(),
        mode_name,
        takeover=node._takeover,
        scale=node.marker_state.scale,
        history=node.marker_state.history,
        help_request=node.help.marker(node._now()),
    )


def diagnostics_message(node, mode_name: str):
    """The policy's DiagnosticArray: timing counters, the health level of the last window, episode and
    checkpoint state (docs/interfaces.md)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    s = node.stats.summary(missed=node.control_loop.missed)
    st = DiagnosticStatus(name="bora/policy: control loop", hardware_id="policy")
    # the level of the faults of the last health_window_s: skipped slots, late ticks (an interval over
    # 1.5 periods), failed ticks or inferences, rejected checkpoints (the 600-tick jitter figures are values)
    level, text = node.health.status()
    st.level = bytes([level])  # DiagnosticStatus.level is a byte: OK 0, WARN 1, ERROR 2
    g = node.gate
    st.message = (
        f"{mode_name}, episode {g.episode_id}{' (ended)' if g.ended else ''}, "
        f"{int(s['missed_ticks'])} missed ticks" + (f"; {text}" if text else "")
    )
    vals = {k: f"{v:.3f}" for k, v in s.items()}
    vals.update(
        mode=mode_name,
        residual_version=node.runner.residual_slot.snapshot()[1],
        residual_swaps=str(node.runner.residual_slot.swaps),
        checkpoints_rejected=str(node.ckpt.rejected),
        last_reject=node.ckpt.last_reject[:200],
        control_hz=f"{node.control_hz:g}",
        late_max_ms=f"{node.control_loop.late_max_s * 1e3:.1f}",
        realtime="SCHED_FIFO" if node.control_loop.realtime else "normal",
        critic_version=node.runner.critic_version or "none (no critic loaded)",
        episode_id=str(g.episode_id),
        episode_source=g.source or "none",
        episode_ended=str(g.ended).lower(),
        commands_suppressed=str(node.suppressed),
        observations_stale=str(node.obs_watch.stale).lower(),  # runtime/stale_watch.py
        observation_waiting=str(node.obs_watch.waiting).lower(),  # none yet on observation_topic, for report_s
        observation_topic=node.obs_watch.topic,
        health_window_s=f"{node.health.window_s:g}",
        last_error=node.health.last.text if node.health.last else "",
        faults_total=str(sum(node.health.totals.values())),
        # planned ahead (runtime/chunk_scheduler.py): observation stamp -> chunk ready, and the lead in ticks
        plan_latency_ms=f"{node.sched.plan_latency() * 1e3:.1f}",
        plan_lead_ticks=str(node.sched.lead_ticks()),
        # chunks not planned from the observation replan_steps steps after the previous chunk's (all episodes)
        plan_off_grid=str(node.sched.off_grid),
    )
    st.values = [KeyValue(key=k, value=str(v)) for k, v in vals.items()]
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [st]
    return arr
