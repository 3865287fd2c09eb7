"""When to plan the next action chunk, from which observation, and when to switch to it (no rclpy, no torch).

The one replan state machine of the policy node (``bora_policy/nodes/policy_node.py``) and of evaluation
(``bora_trainer/evaluate.py``, ``evaluate_vec.py``). It owns a :class:`ChunkExecutor` and counts control
ticks since the executing chunk was adopted (``since``); a new chunk is adopted every ``replan_steps``
ticks (Algorithm 1's chunked execution: the first ``replan_steps`` rows of each chunk are executed).

Synchronous use (evaluation: inference takes no simulated time)::

    sched.begin_episode(state, t)                   # hold the measured state, plan at once
    if sched.plan_due(): sched.adopt(chunk_from(obs), t_obs=t, t=t)
    cmd = sched.step(t)                             # the command of this tick

Planned ahead (the node; issue 17, "real-time chunking" after Black et al. 2025, arXiv:2506.07339): the
chunk must be READY when the executing one has run ``replan_steps`` ticks, and be computed from the
NEWEST observation. ``plan_latency`` (seconds from an observation's stamp to its chunk being ready when
planned on its arrival: the median transport, stamp -> arrival, plus the 90th percentile of the inference
time, request -> ready, of the last 20) sets the lead ``d = ceil(latency / dt)`` ticks:

* ``since >= replan_steps - d`` arms the plan; it starts on the first observation newer than the newest
  one at the arming tick (:meth:`on_observation`, called as each observation arrives), so the chunk is
  computed from the newest observation that can still be ready at the switch;
* ``since >= replan_steps`` with nothing requested (no fresh observation came), or no command at all:
  plan now on the newest observation (:meth:`on_tick`), as an unplanned replan;
* a ready chunk is adopted at the next tick (:meth:`adopt`); the executor indexes it by time from the
  observation's stamp, so the rows whose time passed during inference are skipped, and cross-fades from
  the executing chunk over the overlap (``ChunkExecutor``: the output-space form of RTC's soft mask).

Phase lock (ours): the command is computed from an observation at the first tick after the chunk is
ready. When observations come once per control period (the simulated graph; a camera at the control rate),
:func:`phase_correction` moves the control grid so that the tick falls ``latency + margin`` (margin 10 % of
a period) after the phase by which 90 % of the recent observations' stamps have come (:func:`late_phase`,
modulo the period), at most ``max_shift`` of a period per tick; the latency from an observation to the
first command computed from it is then about ``latency + margin`` instead of up to a period more.
``ControlLoop.shift`` applies it.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from bora_policy.common.control_loop import late_phase
from bora_policy.runtime.chunk_executor import ChunkExecutor, ChunkExecutorConfig, Command


def phase_correction(
    t_tick: float, obs_stamp: float, target: float, period: float, gain: float = 0.5, max_shift: float = 0.05
) -> float:
    """Seconds to move the next control deadlines (positive: later) so that ticks fall ``target`` seconds
    after an observation's stamp, modulo ``period``: ``-gain * e`` with the phase error ``e`` wrapped into
    ``[-period/2, period/2)``, clipped to ``max_shift * period``."""
    e = (t_tick - obs_stamp - target) % period
    if e >= period / 2:
        e -= period
    lim = max_shift * period
    return float(np.clip(-gain * e, -lim, lim))


def check_replan_steps(replan_steps: int, chunk_size: int, control_hz: float, chunk_hz: float) -> int:
    """``replan_steps`` when a chunk lasts that many control ticks, else a one-line ValueError naming it.

    A chunk of ``k = chunk_size`` rows at ``chunk_hz`` has targets for the ticks ``i`` (at ``control_hz``)
    with ``i / control_hz <= (k - 1) / chunk_hz``: ``H = floor((k - 1) * control_hz / chunk_hz) + 1`` ticks,
    ``k`` when the two rates are equal. A switch after more than ``H`` ticks would hold the chunk's last row
    for the rest (``ChunkExecutor`` clamps past the end), so ``replan_steps`` must lie in ``1 .. H``
    (found in review: only ``>= 1`` was checked)."""
    n, k = int(replan_steps), int(chunk_size)
    if k < 1 or not (control_hz > 0 and chunk_hz > 0):
        raise ValueError(
            f"check_replan_steps: expected chunk_size >= 1 and rates > 0, got {k}, {control_hz}, {chunk_hz}"
        )
    horizon = math.floor((k - 1) * float(control_hz) / float(chunk_hz) + 1e-9) + 1
    if not 1 <= n <= horizon:
        raise ValueError(
            f"replan_steps = {n} is out of range: expected in [1, {horizon}] (a chunk of {k} rows at chunk_hz "
            f"{chunk_hz:g} lasts {horizon} control ticks at control_hz {control_hz:g})"
        )
    return n


class ChunkScheduler:
    """Replan state machine over a :class:`ChunkExecutor` (module docstring).

    replan_steps: ticks between chunk switches. ahead: plan ahead (the node) or synchronously (evaluation).
    """

    def __init__(self, exec_cfg: ChunkExecutorConfig, replan_steps: int, ahead: bool = False):
        if int(replan_steps) < 1:
            raise ValueError(f"ChunkScheduler: replan_steps must be >= 1, got {replan_steps}")
        self.cfg = exec_cfg
        self.dt = 1.0 / exec_cfg.control_hz
        self.replan_steps = int(replan_steps)
        self.ahead = bool(ahead)
        self.executor = ChunkExecutor(exec_cfg)
        self.latencies: deque[float] = deque(maxlen=20)  # plan requested -> chunk ready (s)
        self.transport: deque[float] = deque(maxlen=20)  # observation stamp -> its arrival here (s)
        self.obs_intervals: deque[float] = deque(maxlen=20)
        self.obs_stamps: deque[float] = deque(maxlen=20)
        self._t_requested = 0.0
        self._last_obs_stamp: float | None = None
        self.plans = 0
        self.begin_episode(None, 0.0)

    # ------------------------------------------------------------------ episode and synchronous use
    def begin_episode(self, state, t: float) -> None:
        """A new episode: forget the previous one's chunks, hold ``state`` (if given), plan at once."""
        self.executor.reset()
        if state is not None:
            self.executor.hold(state, t)
        self.since = self.replan_steps
        self.in_flight = False
        self.planned_from: float | None = None  # stamp of the observation of the requested plan
        self._armed_after: float | None = None  # newest stamp at the arming tick (None: not armed)
        self.plans = 0

    def hold(self, state, t: float) -> None:
        self.executor.hold(state, t)

    @property
    def has_command(self) -> bool:
        return self.executor.has_command

    def plan_due(self) -> bool:
        """The executing chunk has run ``replan_steps`` ticks, or nothing is executing: plan now."""
        return self.since >= self.replan_steps or not self.executor.has_command

    def adopt(self, chunk, t_obs: float, t: float) -> int:
        """Switch to ``chunk`` (computed from the observation stamped ``t_obs``) at the tick at ``t``."""
        cid = self.executor.set_chunk(chunk, t_obs, t)
        self.since, self.in_flight, self._armed_after = 0, False, None
        self.plans += 1
        return cid

    def step(self, t: float) -> Command | None:
        """The command of the tick at ``t`` (None before any hold or chunk); counts the tick."""
        cmd = self.executor.step(t)
        self.since += 1
        return cmd

    # ------------------------------------------------------------------ planned ahead (the node)
    def plan_latency(self) -> float:
        """Observation stamp -> chunk ready when planned on arrival: median transport + 90th percentile of the
        recent inference times (0 before any plan)."""
        if not self.latencies:
            return 0.0
        tr = float(np.median(self.transport)) if self.transport else 0.0
        return tr + float(np.percentile(self.latencies, 90))

    def lead_ticks(self) -> int:
        """Ticks before the switch at which planning starts: ``ceil(latency / dt)``, in [1, replan_steps]."""
        d = math.ceil(self.plan_latency() / self.dt - 1e-9) if self.latencies else 1
        return int(min(max(d, 1), self.replan_steps))

    def on_tick(self, newest_stamp: float | None) -> bool:
        """At a control tick, before :meth:`step`: True when a plan must start now on the newest
        observation (stamp ``newest_stamp``; None: none yet)."""
        if self.in_flight or newest_stamp is None:
            return False
        if self.plan_due():
            return True
        if self.since >= self.replan_steps - self.lead_ticks() and self._armed_after is None:
            self._armed_after = newest_stamp  # wait for the next observation (on_observation)
        return False

    def on_observation(self, stamp: float, t_arrival: float | None = None) -> bool:
        """An observation stamped ``stamp`` arrived at ``t_arrival``: True when the armed plan should start
        on it now."""
        if t_arrival is not None:
            self.transport.append(max(0.0, t_arrival - stamp))
        if self._last_obs_stamp is not None and stamp > self._last_obs_stamp:
            self.obs_intervals.append(stamp - self._last_obs_stamp)
            self.obs_stamps.append(stamp)
        self._last_obs_stamp = stamp if self._last_obs_stamp is None else max(stamp, self._last_obs_stamp)
        return (
            self.ahead
            and not self.in_flight
            and self._armed_after is not None
            and stamp > self._armed_after
        )

    def requested(self, stamp: float, t: float | None = None) -> None:
        """A plan on the observation stamped ``stamp`` was handed to the inference at ``t``."""
        self.in_flight, self.planned_from = True, float(stamp)
        self._t_requested = float(stamp if t is None else t)

    def ready(self, t_ready: float) -> None:
        """The requested chunk is ready at ``t_ready`` (measures the inference time)."""
        self.latencies.append(max(0.0, t_ready - self._t_requested))

    def failed(self) -> None:
        """The requested plan produced nothing (an error, or its episode ended): plan again when due."""
        self.in_flight = False

    def phase_shift(self, t_tick: float, newest_stamp: float | None, margin: float | None = None) -> float:
        """The control-grid correction of this tick (module docstring; 0 unless planning ahead, with plan
        latencies measured and observations arriving once per control period, within 10 %)."""
        if not self.ahead or newest_stamp is None or not self.latencies or len(self.obs_intervals) < 3:
            return 0.0
        if abs(float(np.median(self.obs_intervals)) - self.dt) > 0.1 * self.dt:
            return 0.0
        margin = 0.1 * self.dt if margin is None else margin
        target = (self.plan_latency() + margin) % self.dt
        return phase_correction(t_tick, late_phase(self.obs_stamps, self.dt), target, self.dt)
