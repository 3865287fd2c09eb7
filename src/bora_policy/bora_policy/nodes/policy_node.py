"""Policy node: observations in, one JointCommand per control tick out; inference off the control thread.

Threads: the control loop (``ControlLoop``: its own thread, absolute deadlines, so a busy executor
cannot delay or drop a control slot) adopts the newest ready chunk and steps the ``ChunkScheduler``
(runtime/chunk_scheduler.py, the replan state machine shared with ``bora eval``); the VLA + residual +
critic run on a dedicated inference thread (``PlanWorker``), planned ahead: the next chunk is started
on the arrival of the observation ``replan_steps`` steps after the executing chunk's (chunk starts exactly
``replan_steps`` apart; off-grid starts are counted and logged), and the control grid is phase-locked to them;
subscriptions, services and checkpoint loading run on ONE executor thread (``SingleThreadedExecutor``:
rclpy's ``MultiThreadedExecutor`` re-polls tasks queued to its pool in a busy loop that holds the GIL,
ros2/rclpy#1452; measured here: its spin thread at ~50 % of a core, and the control thread kept off the
GIL for 150-260 ms, 1-5 skipped slots per 30 s even under SCHED_FIFO; with one executor thread none).
A verified residual is staged by the loader and swapped in at the start of a control tick
(``HotSwapSlot.commit``), so one inference never mixes two checkpoints and a bad file leaves the current
one in place.

Publishes /bora/action_chunk (with z_t), /bora/policy_command, /bora/value, /bora/value_markers
(MarkerArray: the chunk's values as a coloured bar timeline, the current value as text) and timing
statistics on /diagnostics. Services: <ns>/set_mode (SetMode), <ns>/load_checkpoint (LoadCheckpoint).

Faults (issue 20): the commanded episode comes from ``EpisodeGate`` (a START, on /bora/episode or the
latched copy of the current one on ``episode_current_topic``, else an observation of a newer episode,
e.g. after a restart mid-episode; each START resets once, ``EpisodeStarts``; no command after the
episode's outcome or once a newer START is in); /diagnostics is WARN/ERROR while stalls, failed ticks or
inferences or rejected checkpoints happened in the last ``health_window_s`` (``HealthWindow``, with the
last error's text), and while the newest observation is older than ``stale_observation_s`` (no plan, no
command; ``StaleWatch`` warns at its onset and every 5 s while it lasts and logs the recovery once, and warns
every 5 s while no observation came at all); a checkpoint path received over ROS must lie in
``checkpoint_roots`` (``check_checkpoint_path``, nodes/policy_checkpoints.py), else it is refused with the
reason and the residual in use is kept.
"""

from __future__ import annotations

import sys
import threading
import time

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from bora_policy.common.control_loop import ControlLoop
from bora_policy.common.node import StartupError, declare_graph_params, declare_params, run_node
from bora_policy.nodes.policy_checkpoints import CheckpointIntake
from bora_policy.nodes.policy_outputs import chunk_messages, diagnostics_message, marker_message
from bora_policy.nodes.policy_params import SERVICES, SPECS, TOPICS
from bora_policy.runtime.checkpoint_loader import default_checkpoint_roots
from bora_policy.runtime.chunk_executor import ChunkExecutorConfig, require_finite
from bora_policy.runtime.chunk_scheduler import ChunkScheduler, check_replan_steps
from bora_policy.runtime.episode_gate import EpisodeGate
from bora_policy.runtime.episode_starts import EpisodeStarts
from bora_policy.runtime.health import ERROR, WARN, HealthWindow
from bora_policy.runtime.hold_target import HoldTarget
from bora_policy.runtime.observation import (
    episode_step,
    measured_state,
    observation_arrays,
    planned_step,
    stamp_seconds,
)
from bora_policy.runtime.plan_worker import PlanWorker
from bora_policy.runtime.policy_runner import PolicyRunner, PolicyRunnerConfig
from bora_policy.runtime.stale_watch import StaleWatch
from bora_policy.runtime.tick_stats import TickStats

AUTONOMOUS, PAUSED, HOLD = 0, 1, 2
MODE_NAMES = {AUTONOMOUS: "autonomous", PAUSED: "paused", HOLD: "hold"}


class PolicyNode(Node):
    def __init__(self, **kw):
        super().__init__("policy", **kw)
        graph = declare_graph_params(self)  # control_hz, chunk_size, residual_scale: config/graph.yaml
        P = declare_params(self, SPECS)  # nodes/policy_params.py: descriptions and ranges
        self.graph = graph
        self.vla_path = str(P["vla_path"])
        residual_path, critic_path = str(P["residual_path"]), str(P["critic_path"])
        # earlier rounds' residuals folded into the base (Algorithm 1 lines 8-12), PATH or PATH@LAMBDA;
        # [""] = none (an empty list would not tell rclpy the parameter's type)
        frozen_paths = [str(x) for x in P["frozen_residual_paths"] if str(x).strip()]
        self.control_hz = graph.control_hz
        self.replan_steps = int(P["replan_steps"])
        exec_cfg = ChunkExecutorConfig(
            control_hz=self.control_hz,
            chunk_hz=float(P["chunk_hz"]),
            blend_steps=int(P["blend_steps"]),
            max_delta=float(P["max_delta"]),
            max_velocity=tuple(float(v) for v in P["max_joint_velocity"]) if any(P["max_joint_velocity"]) else (),
        )
        try:  # replan_steps in 1 .. the ticks a chunk lasts (runtime/chunk_scheduler.py)
            check_replan_steps(self.replan_steps, graph.chunk_size, self.control_hz, exec_cfg.chunk_hz)
        except ValueError as e:
            raise StartupError(f"policy: parameter {e}") from e
        steps = int(P["num_inference_steps"])
        run_cfg = PolicyRunnerConfig(
            residual_scale=graph.residual_scale,
            num_inference_steps=steps or None,
            deterministic=bool(P["deterministic"]),
            device=str(P["device"]),
        )
        self.stale_s = float(P["stale_observation_s"])
        self.publish_markers = bool(P["publish_markers"])
        self.marker_frame = str(P["marker_frame"])
        from bora_policy.nodes.markers import ValueMarkerState

        # value bars on a fixed (adapt 0) or slowly adapting scale, and the v(z_t, 0) history strip
        self.marker_state = ValueMarkerState(
            lo=float(P["marker_value_min"]),
            hi=float(P["marker_value_max"]),
            adapt=float(P["marker_scale_adapt"]),
            history=int(P["marker_history"]),
        )
        torch_threads = int(P["torch_threads"])
        # SCHED_FIFO priority of the control-loop thread (0: normal scheduling), as ros2_control_node's
        # thread_priority; needs CAP_SYS_NICE or an rtprio limit, else normal scheduling with a warning
        control_priority = int(P["control_thread_priority"])
        initial_mode = str(P["initial_mode"])
        topics = {k: str(P[f"{k}_topic"]) for k, _, _ in TOPICS}
        services = {k: str(P[f"{k}_service"]) for k, _, _ in SERVICES}
        diag_period = float(P["diagnostics_period_s"])
        # /diagnostics is WARN/ERROR while a stall, a missed tick, a failed inference or tick, or a
        # rejected checkpoint happened in the last health_window_s seconds (ours)
        health_window = float(P["health_window_s"])
        # directories a checkpoint path received over ROS may lie in ([""]: the run directory of
        # vla_path and the directories of residual_path and critic_path; runtime/checkpoint_loader.py)
        roots = [str(x) for x in P["checkpoint_roots"] if str(x).strip()]
        if not self.vla_path:
            raise StartupError(
                "policy: parameter vla_path is required (a VLAPolicy directory or a run with policy/)"
            )

        import torch

        torch.set_num_threads(max(1, torch_threads))
        from diagnostic_msgs.msg import DiagnosticArray
        from visualization_msgs.msg import MarkerArray

        from bora_msgs.msg import (
            ActionChunk,
            CheckpointInfo,
            EpisodeEvent,
            ExecutedCommand,
            JointCommand,
            Observation,
            ValueEstimate,
        )
        from bora_msgs.srv import LoadCheckpoint, SetMode

        self.msgs = {"ActionChunk": ActionChunk, "JointCommand": JointCommand, "ValueEstimate": ValueEstimate}
        from bora_policy.models.export import choose_critic

        critic_path, self.critic_note = choose_critic(self.vla_path, critic_path)
        t0 = time.perf_counter()
        self.runner = PolicyRunner.from_paths(
            self.vla_path, residual_path, critic_path, run_cfg, frozen_residual_paths=frozen_paths
        )
        if self.runner.chunk_size != graph.chunk_size:
            raise StartupError(
                f"policy: parameter chunk_size = {graph.chunk_size} ({graph.source}): the VLA at {self.vla_path} "
                f"has chunk_size {self.runner.chunk_size}"
            )
        self.get_logger().info(
            f"policy: loaded VLA {self.vla_path} (version {self.runner.policy_version}) in "
            f"{time.perf_counter() - t0:.1f} s on {self.runner.device}; residual "
            f"{self.runner.residual_slot.snapshot()[1] or 'none'}; critic "
            f"{self.runner.critic_version or 'none'} ({self.critic_note}); frozen residuals {len(self.runner.frozen)}"
        )
        if not self.runner.critic_version:
            self.get_logger().warning(
                f"policy: no critic loaded ({self.critic_note}): /bora/value is not published and the value "
                "markers say 'no critic loaded'"
            )
        # the replan state machine, planned ahead (runtime/chunk_scheduler.py); shared with bora eval
        self.sched = ChunkScheduler(exec_cfg, self.replan_steps, ahead=True)
        self.mode = {v: k for k, v in MODE_NAMES.items()}[initial_mode]
        self.stats = TickStats(1.0 / self.control_hz)
        self.hold = HoldTarget(2.0 / self.control_hz)  # where HOLD holds (runtime/hold_target.py)
        self.health = HealthWindow(health_window)
        self.obs_watch = StaleWatch(self.stale_s, self.health)  # a stale observation stream: WARN, logged
        roots = roots or [str(r) for r in default_checkpoint_roots(self.vla_path, residual_path, critic_path)]
        self.ckpt = CheckpointIntake(self, roots)  # checkpoints over ROS: checked, staged or refused with the reason
        self.get_logger().info(f"policy: checkpoints are loaded only from {roots}")

        self._lock = threading.Lock()  # the newest observation, the scheduler, the ready chunk
        self._latest_obs = None
        self._pending_result = None  # (obs, arrays, result, plan generation) of the chunk ready for adoption
        self._joint_names: list[str] = []  # the names of the commands sent in AUTONOMOUS
        self._step = 0  # commands sent before any episode is known (their step field)
        self.gate = EpisodeGate(self.control_hz)  # the commanded episode (runtime/episode_gate.py)
        # STARTs from both topics, each applied once, and each recent episode's session (runtime/episode_starts.py)
        self.episodes = EpisodeStarts(self.gate)
        self._awaiting_first_obs = False
        self.suppressed = 0  # commands not sent: their episode had ended or a newer one had begun
        self._last_value = None

        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_chunk = self.create_publisher(ActionChunk, topics["action_chunk"], rel)
        self.pub_cmd = self.create_publisher(JointCommand, topics["command"], rel)
        self.pub_value = self.create_publisher(ValueEstimate, topics["value"], rel)
        self.pub_markers = self.create_publisher(MarkerArray, topics["markers"], 5)
        from bora_policy.nodes.policy_help import HelpOutput

        self.help = HelpOutput(self, rel)  # help requests on /bora/help_request (runtime/help_monitor.py)
        self.pub_diag = self.create_publisher(DiagnosticArray, topics["diagnostics"], 10)
        self.obs_watch.topic = self.create_subscription(  # its resolved name (remaps, namespace): named in warnings
            Observation,
            topics["observation"],
            self._on_observation,
            QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        ).topic_name
        self._takeover = None
        self.create_subscription(
            ExecutedCommand, topics["executed"], self._on_executed, 10
        )
        self.create_subscription(
            EpisodeEvent, topics["episode"], self._on_episode, 10
        )
        if topics["episode_current"]:  # the current episode's START, latched: this node may connect after it
            latched = QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
            )
            self.create_subscription(EpisodeEvent, topics["episode_current"], self._on_current_episode, latched)
        self.create_subscription(
            CheckpointInfo,
            topics["checkpoint"],
            self.ckpt.on_checkpoint,
            # latched like the trainer's announcement: a policy (re)started later still gets the newest
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        )
        self.create_service(SetMode, services["set_mode"], self._srv_set_mode)
        self.create_service(
            LoadCheckpoint, services["load_checkpoint"], self.ckpt.srv_load
        )
        self.create_timer(diag_period, self._publish_diagnostics)
        self.worker = PlanWorker(self._infer, self._on_planned, self._on_plan_error)  # runtime/plan_worker.py
        self.control_loop = ControlLoop(
            1.0 / self.control_hz,
            self._on_tick,
            name="bora-control",
            on_error=self._on_control_error,
            on_stall=self._on_control_stall,
            priority=control_priority,
        )
        self.control_loop.start()  # (assigned first: the tick asks it for phase corrections)
        if self.control_loop.realtime:
            self.get_logger().info(
                f"policy: control loop at {self.control_hz:g} Hz, SCHED_FIFO priority {control_priority}"
            )
        elif control_priority > 0:
            self.get_logger().warning(
                f"policy: control loop at {self.control_hz:g} Hz: {self.control_loop.realtime_error}. On the robot "
                "PC grant it (e.g. `@realtime - rtprio 99` in /etc/security/limits.conf, as libfranka needs anyway); "
                "control_thread_priority:=0 silences this"
            )

    def _on_control_stall(self, stall) -> None:
        self.health.report("stall", stall.describe(), WARN, count=stall.skipped)
        self.get_logger().warning(f"policy: {stall.describe()}", throttle_duration_sec=2.0)

    def _on_control_error(self, e: BaseException) -> None:
        if not self.context.ok():
            self.control_loop.stop()  # shutting down (SIGINT): the publishers are gone, stop quietly
            return
        self.health.report("tick_error", f"control tick failed: {type(e).__name__}: {e}", ERROR)
        self.get_logger().error(f"policy: control tick failed: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ inputs
    def _on_observation(self, msg) -> None:
        with self._lock:
            self._latest_obs = msg
            step = planned_step(msg, self.gate.t_start, self.control_hz)  # the grid's step (chunk_scheduler.py)
            due = self.mode != PAUSED and self.sched.on_observation(stamp_seconds(msg.header.stamp), self._now(), step)
            if due and self.mode == AUTONOMOUS:  # the grid observation (or a newer one, when it was missed)
                self._request_plan(msg)  # plan now (only in AUTONOMOUS: _request_plan)

    def _on_executed(self, msg) -> None:
        self._takeover = (bool(msg.is_intervention), float(msg.beta), bool(msg.held))
        if msg.beta > 0.0:  # a takeover moves the robot: a HOLD after it holds where it was left
            self.hold.forget()

    def _on_current_episode(self, ev) -> None:
        """The latched copy of the current episode's START: applied when new (runtime/episode_starts.py)."""
        if ev.kind == ev.START:
            self.episodes.start(ev.session_id, ev.episode_id, stamp_seconds(ev.header.stamp), latched=True)

    def _on_episode(self, ev) -> None:
        if ev.kind == ev.START:
            # applied by the control loop at its next tick (the tick never sees the new episode id
            # without the reset, so no command of the old chunk carries the new id); until then no
            # command is sent (EpisodeGate.may_command); once per episode (runtime/episode_starts.py)
            self.episodes.start(ev.session_id, ev.episode_id, stamp_seconds(ev.header.stamp))
        elif ev.kind in (ev.SUCCESS, ev.FAILURE, ev.ABORT):
            self.gate.outcome(int(ev.episode_id))  # the episode is over: none of its commands after this

    def _srv_set_mode(self, req, res):
        if req.mode not in MODE_NAMES:
            res.success, res.message = False, f"unknown mode {req.mode}; use 0 (AUTONOMOUS), 1 (PAUSED), 2 (HOLD)"
            return res
        with self._lock:  # mode and reset together: a tick between them stepped the chunk left at the switch
            resumed, self.mode = self.mode != AUTONOMOUS and req.mode == AUTONOMOUS, int(req.mode)
            if self.mode != AUTONOMOUS:  # no plan outside AUTONOMOUS (_on_tick); the one in flight is discarded
                self.sched.suspend()
                self._pending_result = None
            elif resumed:  # the chunk it left is stale: plan at once (runtime/chunk_scheduler.py, resume)
                t = self._now()
                last = self.hold.target(t)  # the last command while its stream is unbroken (in HOLD: the target)
                self._pending_result = None
                self._awaiting_first_obs = not self.sched.resume(None if last is None else last[0], t)
                if last is not None:  # held, the first chunk cross-fades from it; else the next measured state
                    self._joint_names = last[1]
        res.success, res.message = True, f"mode={MODE_NAMES[self.mode]}"
        self.get_logger().info(f"policy: {res.message}")
        return res

    # ------------------------------------------------------------------ planning (inference thread)
    def _infer(self, item):
        arr = observation_arrays(item[0])  # item: (observation, plan generation), from _request_plan
        require_finite(arr.state, "the observation's joint state")  # raised: a failed plan (health ERROR)
        res = self.runner.infer(arr.color, arr.state, arr.instruction)
        self.stats.inference.append(res.timing_ms["total"])
        require_finite(res.final, "the model's chunk")  # never published nor adopted (planning went on)
        return arr, res

    def _on_planned(self, item, out) -> None:
        (obs, gen), (arr, res) = item, out
        with self._lock:
            stale = not self.sched.ready(self._now(), gen)
            if not stale and not self.gate.accepts(arr.episode_id, arr.stamp):
                self.sched.failed(gen)  # its episode ended (or a newer one began) during the inference: unused
                return
            if not stale:
                self._pending_result = (obs, arr, res, gen)
        if stale:  # requested before a mode switch or an episode start (chunk_scheduler.py, plan generations)
            self.get_logger().info(f"policy: chunk planned from step {arr.step} discarded: requested before "
                                   f"the latest mode switch or episode start (mode now {MODE_NAMES[self.mode]})")
            return
        self._publish_chunk(obs, arr, res)

    def _on_plan_error(self, item, e: BaseException) -> None:
        with self._lock:
            self.sched.failed(item[1])
        self.health.report("inference_error", f"inference failed: {type(e).__name__}: {e}", ERROR)
        self.get_logger().error(f"policy: inference failed: {type(e).__name__}: {e}")

    def _request_plan(self, obs) -> None:
        """Plan from ``obs`` (the newest observation; called with ``_lock`` held). Only in AUTONOMOUS (ours; found
        in review): HOLD planned at every tick, an ERROR a tick when planning failed and CPU spent on chunks
        nothing executes (the markers, the help monitor and the commands use AUTONOMOUS chunks only; a recorded
        chunk of HOLD would be a chunk start that never ran), and a resume plans at once anyway."""
        if self.obs_watch.too_old(self._now(), stamp_seconds(obs.header.stamp)):
            return  # no fresh observation (e.g. the sync node restarts): no plan, no command (the tick reports it)
        if not self.gate.accepts(int(obs.episode_id), stamp_seconds(obs.header.stamp)):
            return  # an observation of another episode (or of none, before its START), or it is over
        if int(obs.episode_id) == 0 and self.gate.known:
            self.health.report(
                "observation_without_episode",
                "observations carry no episode id (the sync node saw no START); planned as episode "
                f"{self.gate.episode_id}",
                WARN,
            )
        if self.worker.submit((obs, self.sched.generation)):  # a plan of a later generation is stale
            step = planned_step(obs, self.gate.t_start, self.control_hz)
            if note := self.sched.requested(stamp_seconds(obs.header.stamp), self._now(), step):  # off the grid
                self.get_logger().warning(f"policy: {note}", throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ control tick
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_tick(self) -> None:
        t_start = time.perf_counter()
        t = self._now()
        late = self.stats.tick(t)
        # a late slot (served < 1 period late: interval < 2 periods); longer gaps are skipped slots, which
        # the ControlLoop has just reported as a stall with its cause
        if late is not None and late < 2.0 / self.control_hz:
            self.health.report("late_tick", f"control tick {late * 1e3:.0f} ms after the previous one", WARN)
        if self.runner.residual_slot.commit():
            self.get_logger().info(f"policy: residual {self.runner.residual_slot.snapshot()[1]} now in use")
        with self._lock:
            obs = self._latest_obs
        if obs is not None:  # an observation of a newer episode than any known: its START was missed
            self.episodes.observe(obs.episode_id, obs.step, stamp_seconds(obs.header.stamp), obs.session_id)
        start = self.gate.take_pending()
        with self._lock:
            obs = self._latest_obs
            newest = None if obs is None else stamp_seconds(obs.header.stamp)
            if start is not None:
                # a new episode: drop the previous episode's chunk (no blending across the reset) and send
                # nothing until its first observation arrives; then hold that state and plan from it
                if start[2] == "observation":
                    self.get_logger().info(
                        f"policy: episode {start[0]} adopted from the observations (its START was not received)"
                    )
                self._step = 0
                self.sched.begin_episode(None, t)
                self.help.reset()
                self.hold.forget()  # the previous episode's pose: HOLD captures the new episode's measured state
                self._awaiting_first_obs = True
            if self._awaiting_first_obs and obs is not None and self.gate.belongs(obs.episode_id, newest):
                state, names = measured_state(obs)
                if require_finite(state, "", raise_=False):  # a NaN reading held would poison every later command
                    self.sched.hold(state, t)  # sent with the observation's joint names (before: those of the
                    self._joint_names = names  # previous episode's last chunk, none in the first episode)
                    self._awaiting_first_obs = False
            pending, self._pending_result = self._pending_result, None
            if pending is not None and (
                self.sched.stale(pending[3]) or not self.gate.belongs(pending[1].episode_id, pending[1].stamp)
            ):  # requested before this tick's episode start, or planned from the previous episode: discard
                self.sched.failed(pending[3])
                pending = None
            if pending is not None:  # the chunk planned ahead is ready: switch to it at this tick
                _, arr, res, _ = pending
                if not self.sched.has_command:
                    self.sched.hold(arr.state, t)
                self.sched.adopt(res.final, arr.stamp, t)
                self._awaiting_first_obs = False
                self._joint_names, self._chunk_obs_stamp, self._latency_pending = arr.joint_names, arr.stamp, True
                self._last_value = res
                self.marker_state.observe(getattr(res, "q", None), getattr(res, "v", None))
            if self.mode == AUTONOMOUS and self.sched.on_tick(newest):  # no plan in HOLD (_request_plan)
                self._request_plan(obs)
            # phase lock: the tick falls just after a chunk planned from the newest observation is ready
            self.control_loop.shift(self.sched.phase_shift(t, newest))
            cmd = self.sched.step(t) if self.mode == AUTONOMOUS else None
        if (note := self.obs_watch.update(t, newest)) is not None:  # stale or none yet: every 5 s; recovery once
            if self.obs_watch.stale or self.obs_watch.waiting:
                self.get_logger().warning(f"policy: {note}")
            else:  # another call site: rclpy refuses a second severity at one ("severity cannot be changed")
                self.get_logger().info(f"policy: {note}")
        if self.mode == HOLD and not self.obs_watch.too_old(t, newest):  # stale: nothing, the arbiter holds
            measured = measured_state(obs) if self.gate.belongs(obs.episode_id, newest) else None
            if (target := self.hold.target(t, measured)) is not None:  # the last command, else measured
                self._publish_command(target[0], target[1], 0)
        elif self.mode == AUTONOMOUS:
            if cmd is not None and not self.obs_watch.too_old(t, newest):
                self._publish_command(
                    cmd.position, self._joint_names, max(cmd.chunk_index, 0)
                )
                if getattr(self, "_latency_pending", False):
                    self.stats.latencies.append(self._now() - self._chunk_obs_stamp)
                    self._latency_pending = False
                if self.publish_markers and self._last_value is not None:
                    self.pub_markers.publish(marker_message(self, max(cmd.chunk_index, 0), MODE_NAMES[self.mode]))
                g = self.gate
                if cmd.chunk_index >= 0:  # a chunk of this episode executes (not the hold at its START)
                    self.help.tick(
                        self._last_value, cmd.chunk_index, g.episode_id, self.episodes.session(g.episode_id),
                        self._step if g.t_start is None else episode_step(t, g.t_start, self.control_hz), t,
                    )
        self.stats.durations.append(time.perf_counter() - t_start)

    def _publish_command(self, position, names, chunk_index: int) -> None:
        # checked right before sending: an outcome or a newer START received during this tick stops it
        if not self.gate.may_command():
            self.suppressed += 1
            return
        m = self.msgs["JointCommand"]()
        m.header.stamp = self.get_clock().now().to_msg()
        # the episode's control step of this command (one time base with the observations' steps and
        # the episode events; before any episode is known, a count of commands)
        g = self.gate
        step = self._step if g.t_start is None else episode_step(self._now(), g.t_start, self.control_hz)
        m.episode_id, m.step, m.chunk_index = g.episode_id, step, int(chunk_index)
        m.session_id = self.episodes.session(g.episode_id)
        m.joint_names = list(names)
        m.position = [float(x) for x in position]
        self.pub_cmd.publish(m)
        self.hold.sent(self._now(), m.position, m.joint_names)
        self._step += 1

    # ------------------------------------------------------------------ outputs
    def _publish_chunk(self, obs, arr, res) -> None:
        chunk, value = chunk_messages(self, obs, arr, res)
        self.pub_chunk.publish(chunk)
        if value is not None:
            self.pub_value.publish(value)

    def _publish_diagnostics(self) -> None:
        self.pub_diag.publish(diagnostics_message(self, MODE_NAMES[self.mode]))

    def destroy_node(self):
        self.control_loop.stop()
        self.worker.stop()
        return super().destroy_node()


def main(args=None) -> int:
    """Console-script entry (bora_policy.common.node.run_node). A thread waiting for the GIL gets it after at
    most 1 ms (default 5 ms): the control loop's wake-up latency while the inference and executor threads run
    Python code. ``hard_exit``: with torch loaded, Python's final garbage collection was seen to hang after
    rclpy had shut down (the supervisor then needs SIGKILL); everything is flushed and closed by then."""
    sys.setswitchinterval(0.001)
    return run_node(PolicyNode, args, hard_exit=True)


if __name__ == "__main__":
    main()
