"""When to plan the next action chunk, from which observation, and when to switch to it (no rclpy, no torch).

The one replan state machine of the policy node (``bora_policy/nodes/policy_node.py``) and of evaluation
(``bora_trainer/evaluate.py``, ``evaluate_vec.py``). It owns a :class:`ChunkExecutor` and counts control
ticks since the executing chunk was adopted (``since``). Synchronously a new chunk is adopted every
``replan_steps`` ticks (Algorithm 1's chunked execution: the first ``replan_steps`` rows of each chunk are
executed); planned ahead, each chunk is planned from the observation ``replan_steps`` steps after the
previous one's (below).

Synchronous use (evaluation: inference takes no simulated time)::

    sched.begin_episode(state, t)                   # hold the measured state, plan at once
    if sched.plan_due(): sched.adopt(chunk_from(obs), t_obs=t, t=t)
    cmd = sched.step(t)                             # the command of this tick

Planned ahead (the node; issue 17, "real-time chunking" after Black et al. 2025, arXiv:2506.07339): the
next chunk is computed on the inference thread while the executing one runs. ``plan_latency`` (seconds from an
observation's stamp to its chunk being ready when planned on its arrival: the median transport, stamp ->
arrival, plus the 90th percentile of the inference time, request -> ready, of the last 20) gives the lead
``d = ceil(latency / dt)`` ticks.

On the grid (ours; the node passes each observation's step, ``runtime/observation.py`` ``planned_step``):
each chunk is planned from the observation whose step is exactly ``replan_steps`` after the step of the
observation the executing chunk was planned from (its ``anchor``; :meth:`grid_target`), as soon as that
observation arrives (:meth:`on_observation`), and adopted at the first tick after it is ready (:meth:`adopt`).
A recording's chunk start is the step of the observation a chunk was planned from (``nodes/policy_outputs.py``,
``chunk_messages``), so on the grid starts are exactly ``replan_steps`` apart whatever the inference time;
the time a chunk executes varies instead (from its adoption to the next one's): the executor indexes a chunk
by time from its observation's stamp, so the rows whose time passed during inference are skipped, and
cross-fades from the executing chunk (``ChunkExecutor``: the output-space form of RTC's soft mask).
(Before, the next plan was armed ``replan_steps - d`` ticks after the tick a chunk was ADOPTED, so each
inference's jitter moved every later start: through the ROS graph starts came 7-10 steps apart at
``replan_steps`` 8, and 10-27 % of the online replay rows had no chunk start ``k`` steps on, losing their last
step's bootstrap target.) The grid holds while ``d <= replan_steps`` (one plan runs at a time). When the
chunk has fewer rows than ``replan_steps + d`` ticks (k = replan_steps, as in config/demo.yaml and
evidence.yaml: Algorithm 1 executes every row of a chunk), a chunk from the grid step cannot be ready before the
executing one's last row: the executor holds that row until the switch, about ``d`` ticks per chunk (ours: the
rule before the grid held it too, 1-2 ticks at random, and moved the starts; measured in a demo's online runs:
44 of 66 spacings 8, the rest 9-10). Regular starts are what the online critic's n-step targets need.

Off the grid (counted in ``off_grid``; :meth:`requested` returns a one-line note the node logs; the only
source of irregular starts):

* an observation newer than the grid's arrives and none at the grid step was planned from (dropped, its step
  skipped by a camera slower than the control rate, planning still busy, or its plan refused or failed):
  plan on it at once; the grid goes on from its step;
* no observation at or after the grid step has come by the tick at least one period after the grid step
  from which a later plan could no longer be ready by the executing chunk's last row: plan at that tick on
  the newest observation (:meth:`on_tick`);
* the lead is over ``replan_steps`` (one plan runs at a time), or no steps are given: planning as before the
  grid, from the
  adoption tick: ``since >= replan_steps - d`` arms the plan, which starts on the first observation newer
  than the newest one at the arming tick; ``since >= replan_steps`` with nothing requested: plan now on the
  newest observation.

Nothing is counted for the first plan of an episode (or after a resume), planned at once at a tick on the
newest observation: it sets the grid. Synchronous use (``plan_due``, ``adopt``, ``step``) is unchanged.

Plan generations (ours; found in review): a plan still running on the inference thread when an episode
begins, the node leaves AUTONOMOUS (:meth:`suspend`) or returns to it (:meth:`resume`) belongs to what came
before: its chunk is indexed from its observation's stamp, so one planned before a long HOLD made the executor
jump deep into it at the resume. Each of these starts a new ``generation``; the caller captures the generation
when it hands a plan to the inference and passes it to :meth:`ready` / :meth:`failed`. A plan of an older
generation is stale: ``ready`` returns False (its chunk is neither published nor adopted) and ``failed`` changes
nothing (a plan of the current generation may be in flight by then), so the first plan after the switch is
always requested after it.

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
        self.off_grid = 0  # planned-ahead chunks not planned from the grid observation (all episodes)
        self.last_off_grid = ""  # the note of the latest one
        self.generation = 0  # plans requested before the latest episode start, suspend or resume are stale
        self.begin_episode(None, 0.0)

    # ------------------------------------------------------------------ episode and synchronous use
    def begin_episode(self, state, t: float) -> None:
        """A new episode: forget the previous one's chunks, hold ``state`` (if given), plan at once (a plan
        still in flight is stale: module docstring, plan generations)."""
        self.generation += 1
        self.executor.reset()
        if state is not None:
            self.executor.hold(state, t)
        self.since = self.replan_steps
        self.in_flight = False
        self.planned_from: float | None = None  # stamp of the observation of the requested plan
        self._armed_after: float | None = None  # newest stamp at the arming tick (None: not armed)
        self.plans = 0
        self.anchor: int | None = None  # step of the observation the executing chunk was planned from
        self._req_step: int | None = None  # that of the requested plan
        self._why = ""  # why the start just signalled may be off the grid
        self._elapsed0 = 0.0  # ticks from the executing chunk's observation stamp to its adoption
        self._last_row = 0.0  # ticks from that stamp to its last row

    def resume(self, last_command, t: float) -> bool:
        """Back to AUTONOMOUS at ``t`` after HOLD or PAUSED: the chunk left at the switch is stale, so it is
        forgotten and a plan starts at once, as at an episode's start. ``last_command``: the position the node
        last published while its command stream is still unbroken (``runtime/hold_target.py``; in HOLD the
        hold target), else None. It is held until the first chunk, which then cross-fades from it as at a
        chunk boundary (``ChunkExecutor``). Before (found in review), the resumed node held the measured state
        of its next observation, with nothing to blend from: the command stepped from the hold target to the
        measured state (a gravity sag, a grasp's short fingers), then blended into the chunk from there.
        Returns True when it holds ``last_command``; False: nothing is held (the caller holds the measured
        state of the next fresh observation, as at an episode's start)."""
        self.begin_episode(last_command, t)
        return last_command is not None

    def suspend(self) -> None:
        """AUTONOMOUS -> HOLD or PAUSED: nothing is planned until :meth:`resume` (the node plans only in
        AUTONOMOUS), and the plan in flight is stale (module docstring): a chunk nothing executes is neither
        published nor adopted."""
        self.generation += 1
        self.in_flight, self._req_step = False, None

    def stale(self, generation: int | None) -> bool:
        """A plan requested at ``generation`` (None: the current one) came before the latest episode start,
        suspend or resume: never adopted."""
        return generation is not None and int(generation) != self.generation

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
        self.anchor, self._req_step = self._req_step, None  # None unless requested with a step (the node)
        self._elapsed0 = (float(t) - float(t_obs)) / self.dt
        self._last_row = (len(chunk) - 1) * self.cfg.control_hz / self.cfg.chunk_hz
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
        return int(min(max(self._lead(), 1), self.replan_steps))

    def _lead(self) -> int:
        return math.ceil(self.plan_latency() / self.dt - 1e-9) if self.latencies else 1

    def grid_target(self) -> int | None:
        """The step of the observation the next chunk is planned from (module docstring): the anchor +
        ``replan_steps``; None off the grid (synchronous, no step given, no chunk planned yet this episode, or
        a lead over ``replan_steps``: one plan runs at a time)."""
        if not self.ahead or self.anchor is None or self._lead() > self.replan_steps:
            return None
        return self.anchor + self.replan_steps

    def _in_time(self, ticks: float) -> bool:
        """A plan started ``ticks`` after the executing chunk's observation stamp is ready by its last row."""
        return ticks + self._lead() <= self._last_row + 1e-9

    def _too_slow(self) -> str:
        if not self.ahead or self.anchor is None:
            return ""
        return (
            f"plan latency {self.plan_latency() * 1e3:.0f} ms ({self._lead()} ticks): a chunk from step "
            f"{self.anchor + self.replan_steps} would start after the next grid step"
        )

    def on_tick(self, newest_stamp: float | None) -> bool:
        """At a control tick, before :meth:`step`: True when a plan must start now on the newest
        observation (stamp ``newest_stamp``; None: none yet)."""
        if self.in_flight or newest_stamp is None:
            return False
        target = self.grid_target()
        if target is not None:  # wait for the grid observation (on_observation) while it can still be in time
            elapsed = self._elapsed0 + self.since  # ticks since the executing chunk's observation stamp
            if elapsed >= self.replan_steps + 1 - 1e-9 and not self._in_time(elapsed + 1):
                self._why = f"no observation at or after step {target} came in time"
                return True
            return False
        if self.plan_due():
            self._why = self._too_slow()
            return True
        if self.since >= self.replan_steps - self.lead_ticks() and self._armed_after is None:
            self._armed_after = newest_stamp  # wait for the next observation (on_observation)
        return False

    def on_observation(self, stamp: float, t_arrival: float | None = None, step: int | None = None) -> bool:
        """An observation stamped ``stamp`` (at control step ``step``; None: unknown) arrived at ``t_arrival``:
        True when the next plan should start on it now."""
        if t_arrival is not None:
            self.transport.append(max(0.0, t_arrival - stamp))
        if self._last_obs_stamp is not None and stamp > self._last_obs_stamp:
            self.obs_intervals.append(stamp - self._last_obs_stamp)
            self.obs_stamps.append(stamp)
        self._last_obs_stamp = stamp if self._last_obs_stamp is None else max(stamp, self._last_obs_stamp)
        if not self.ahead or self.in_flight:
            return False
        target = self.grid_target()
        if target is not None and step is not None:
            self._why = f"no plan from step {target} (its observation dropped, or planning busy, refused or failed)"
            return int(step) >= target
        self._why = self._too_slow()
        return self._armed_after is not None and stamp > self._armed_after

    def requested(self, stamp: float, t: float | None = None, step: int | None = None) -> str | None:
        """A plan on the observation stamped ``stamp`` (at step ``step``) was handed to the inference at ``t``.
        Returns a one-line note when the planned-ahead start is off the grid (counted in ``off_grid``)."""
        self.in_flight, self.planned_from = True, float(stamp)
        self._t_requested = float(stamp if t is None else t)
        self._req_step = None if step is None else int(step)
        why, self._why = self._why, ""
        if not self.ahead or step is None or self.anchor is None or int(step) == self.anchor + self.replan_steps:
            return None
        self.off_grid += 1
        self.last_off_grid = (
            f"chunk planned from step {int(step)}, {int(step) - self.anchor} steps after the executing chunk's "
            f"{self.anchor} instead of replan_steps {self.replan_steps}: {why or 'off the grid'} "
            f"({self.off_grid} off-grid starts so far)"
        )
        return self.last_off_grid

    def ready(self, t_ready: float, generation: int | None = None) -> bool:
        """The chunk requested at ``generation`` (the value of ``generation`` when it was handed to the
        inference; None: the current one) is ready at ``t_ready``: True, and its inference time is measured;
        False for a stale plan (:meth:`stale`), which the caller discards (nothing changes here)."""
        if self.stale(generation):
            return False
        self.latencies.append(max(0.0, t_ready - self._t_requested))
        return True

    def failed(self, generation: int | None = None) -> None:
        """The plan requested at ``generation`` (None: the current one) produced nothing (an error, or its
        episode ended): plan again when due. Nothing changes for a stale plan (the current generation's
        request may be in flight)."""
        if not self.stale(generation):
            self.in_flight, self._req_step = False, None

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
