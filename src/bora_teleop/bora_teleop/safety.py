"""Safety layer: the last gate before every driver write (pure Python, no ROS).

Applied, in this order, to the candidate command ``A_exec`` = [arm (7), hand (n_hand)] of each
control tick (:meth:`SafetyLayer.apply`):

1. **E-stop (latched)**: once an e-stop input has been true, every tick is a *hold* until
   :meth:`SafetyLayer.reset_estop` succeeds, which it only does while the e-stop input is false.
   The e-stop input going false alone never clears the latch.
2. **Upstream hold** (the arbiter asks for one: stale policy command = watchdog, missing human
   input during a takeover, no command yet) -> hold with that reason.
3. **NaN / inf** anywhere in the candidate -> hold, reason ``"nan"``, and an error is reported
   (the caller logs it). Nothing derived from the bad values is sent.
4. **Joint position limits**: the candidate is *clamped* into ``[lower, upper]`` (not a hold: a
   policy that saturates at a limit keeps working); clamps are counted.
5. **Velocity limit**: the per-tick change from the previous command actually sent is clamped to
   ``max_velocity * dt`` per joint (rate limiting, not a hold), with ``dt`` the time since that command when
   the caller gives the tick's time (``now``; the arbiter does), at most one period: a late tick followed by an
   early one no longer sends two full steps a fraction of a period apart (found in review, 2026-12-07), and a
   tick whose clock stepped backwards moves nothing.
6. **Workspace box**: the arm's tool point (Franka FK, :mod:`bora_teleop.kinematics`) of the
   rate-limited command must lie inside ``[workspace_min, workspace_max]``; otherwise hold,
   reason ``"workspace"``.

A *hold* sends the last command that passed every check; before any command was sent it sends
the measured joint positions (captured once, so a hold does not follow gravity sag). With
neither, nothing is sent (``command is None``); likewise no command at all is sent before the
first measured joint state (the first step could not be rate limited), reason ``"no_state"``.

A hold never moves the robot (fixed 2026-12-07 after a review): when the robot has moved more than
``RESYNC_STEPS`` ticks of travel on any joint since the last command sent (measured then against measured now; the
hold anchor's own capture when nothing was sent: the simulator's or a person's reset between an episode's outcome
and the next START, hand-guiding under a hardware stop), the hold re-anchors at the measured position and the next
command is rate limited from there (count ``resync``); before, a hold after a reset commanded the previous episode's
final pose in one tick. The distance between the measured position and the command itself is no criterion: in a
grasp the fingers rest short of their command (a first version re-anchored on it and would have opened the grip).
``reset_estop`` and an episode's outcome (``episode_over``) forget the last command for the same reason. A joint
measured outside its position limits is held where it stands and brought back at most one tick's travel per
tick (the limits are widened to the reference of each step), never clamped to the limit in one jump; otherwise
nothing outside the limits is sent. Every limit must be finite (NaN passed the ``lower > upper`` check).
The latched e-stop has two inputs: the topic's value (:meth:`set_estop`) and momentary latches that do not
touch it (:meth:`latch_estop`, the keyboard's ``e``), so a key press never clears an asserted e-stop input.

The safe defaults (:class:`SafetyConfig`) are deliberately slow: arm 0.5 rad/s, hand 1.0 rad/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bora_policy.common.graph_params import graph_default
from bora_teleop.kinematics import panda_tool_position

# Franka Research 3 joint position limits (rad), from Franka's "Robot and interface specifications".
FR3_LOWER = (-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159)
FR3_UPPER = (2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159)
# Franka Emika Panda joint position limits (rad).
PANDA_LOWER = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
PANDA_UPPER = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)

HOLD_REASONS = (
    "estop",
    "nan",
    "stale",
    "no_command",
    "human_stale",
    "bad_command",
    "workspace",
    "no_state",
    "episode_start",
    "episode_over",
)
RESYNC_STEPS = 3.0
"""Ticks of travel (max_step per joint) the robot may move after the last command sent before a hold takes it to
have been moved by something else and re-anchors at the measured position (module docstring). Ours: above what a
position controller catching up with its last command covers (a lag of 0.4-1.7 ticks on the simulated arm, from a
review), far below an episode reset's travel."""


@dataclass
class SafetyConfig:
    """Limits of the safety layer. Every field has a safe (conservative) default.

    arm_lower / arm_upper: arm joint position limits (rad), default FR3.
    hand_lower / hand_upper: hand joint limits (rad); empty = taken from the retarget map.
    arm_max_velocity: per-joint arm speed limit (rad/s) -> max change per tick = v * dt.
    hand_max_velocity: per-joint hand speed limit (rad/s).
    control_hz: control rate, dt = 1 / control_hz for the per-tick velocity limit (the arbiter sets it to
    its own, the graph's control_hz).
    workspace_check: enable the workspace box check of the arm's tool point.
    workspace_min / workspace_max: box corners (m) in the arm base frame.
    joint_offsets: added to the arm angles before the Franka DH chain (model zero offsets).
    tool_offset: the checked point in the flange frame (m).
    """

    arm_lower: list[float] = field(default_factory=lambda: list(FR3_LOWER))
    arm_upper: list[float] = field(default_factory=lambda: list(FR3_UPPER))
    hand_lower: list[float] = field(default_factory=list)
    hand_upper: list[float] = field(default_factory=list)
    arm_max_velocity: float | list[float] = 0.5
    hand_max_velocity: float | list[float] = 1.0
    control_hz: float = field(default_factory=lambda: graph_default("control_hz"))  # config/graph.yaml
    workspace_check: bool = True
    workspace_min: list[float] = field(default_factory=lambda: [0.2, -0.5, 0.02])
    workspace_max: list[float] = field(default_factory=lambda: [0.8, 0.5, 0.8])
    joint_offsets: list[float] = field(default_factory=lambda: [0.0] * 7)
    tool_offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])


@dataclass
class SafetyOutput:
    """Result of one tick: what to send (None = send nothing), whether it is a hold and why."""

    command: np.ndarray | None
    held: bool
    reason: str = ""
    error: str = ""
    clamped: bool = False
    rate_limited: bool = False


def _vec(name: str, values, n: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 1 and n != 1:
        arr = np.full(n, float(arr[0]))
    if arr.shape != (n,):
        raise ValueError(f"SafetyConfig.{name}: expected {n} values (or one scalar), got {arr.size}")
    return arr


class SafetyLayer:
    """Stateful gate: limits, rate limit, workspace box, latched e-stop, hold target."""

    def __init__(self, cfg: SafetyConfig, n_hand: int):
        self.cfg = cfg
        self.n_arm, self.n_hand = 7, int(n_hand)
        if len(cfg.hand_lower) != self.n_hand or len(cfg.hand_upper) != self.n_hand:
            raise ValueError(
                f"SafetyConfig.hand_lower/hand_upper: expected {self.n_hand} values each, "
                f"got {len(cfg.hand_lower)} and {len(cfg.hand_upper)}"
            )
        self.lower = np.concatenate(
            [_vec("arm_lower", cfg.arm_lower, 7), _vec("hand_lower", cfg.hand_lower, n_hand)]
        )
        self.upper = np.concatenate(
            [_vec("arm_upper", cfg.arm_upper, 7), _vec("hand_upper", cfg.hand_upper, n_hand)]
        )
        for name, arr in (("arm_lower/hand_lower", self.lower), ("arm_upper/hand_upper", self.upper)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"SafetyConfig.{name}: every joint limit must be finite, got {arr.tolist()}")
        if np.any(self.lower > self.upper):
            bad = np.flatnonzero(self.lower > self.upper).tolist()
            raise ValueError(f"SafetyConfig: lower > upper for joint indices {bad}")
        if cfg.control_hz <= 0:
            raise ValueError(f"SafetyConfig.control_hz must be > 0, got {cfg.control_hz}")
        vmax = np.concatenate(
            [
                _vec("arm_max_velocity", cfg.arm_max_velocity, 7),
                _vec("hand_max_velocity", cfg.hand_max_velocity, n_hand),
            ]
        )
        if not np.all(np.isfinite(vmax)) or np.any(vmax <= 0):
            raise ValueError("SafetyConfig.*_max_velocity must be > 0")
        self.max_step = vmax / cfg.control_hz
        self.ws_min = _vec("workspace_min", cfg.workspace_min, 3)
        self.ws_max = _vec("workspace_max", cfg.workspace_max, 3)
        if not (np.all(np.isfinite(self.ws_min)) and np.all(np.isfinite(self.ws_max))) or np.any(
            self.ws_min >= self.ws_max
        ):
            raise ValueError(
                f"SafetyConfig.workspace_min {self.ws_min} must be < workspace_max {self.ws_max}"
            )
        self.joint_offsets = _vec("joint_offsets", cfg.joint_offsets, 7)
        self.tool_offset = _vec("tool_offset", cfg.tool_offset, 3)
        self.estop_latched = False
        self.estop_input = False
        self.last_sent: np.ndarray | None = None
        self._t_sent: float | None = None  # the tick time of last_sent (when the caller gives one)
        self._measured_at_send: np.ndarray | None = None  # the measured position when last_sent was sent
        self._hold_anchor: np.ndarray | None = None
        self.counts = {r: 0 for r in HOLD_REASONS} | {"clamped": 0, "rate_limited": 0, "sent": 0, "resync": 0}

    def begin_episode(self) -> None:
        """A new episode: forget the last sent command and the hold anchor, so the next hold captures
        the measured state of the new episode and the next command is rate limited from it."""
        self.last_sent = None
        self._hold_anchor = None

    # ------------------------------------------------------------------ e-stop
    def set_estop(self, active: bool) -> None:
        """E-stop input (topic value). True latches; False only records the input."""
        self.estop_input = bool(active)
        if active:
            self.estop_latched = True

    def latch_estop(self) -> None:
        """A momentary e-stop (a key press): latches, leaves the topic's input as it is."""
        self.estop_latched = True

    def reset_estop(self) -> tuple[bool, str]:
        """Clear the latch; refused while the e-stop input is still true."""
        if self.estop_input:
            return False, "e-stop input is still active: release the e-stop first"
        was = self.estop_latched
        self.estop_latched = False
        if was:  # the robot may have been moved while stopped: the next command starts from the measured state
            self.last_sent = None
            self._hold_anchor = None
        return True, "e-stop reset" if was else "e-stop was not latched"

    # ------------------------------------------------------------------ checks
    def tool_position(self, arm_q) -> np.ndarray:
        return panda_tool_position(arm_q, self.joint_offsets, self.tool_offset)

    def in_workspace(self, arm_q) -> bool:
        p = self.tool_position(arm_q)
        return bool(np.all(p >= self.ws_min) and np.all(p <= self.ws_max))

    def _hold(self, reason: str, measured: np.ndarray | None, error: str = "") -> SafetyOutput:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if reason == "episode_over":  # between an outcome and the next START: the driver keeps its last command,
            # and the robot may be reset meanwhile: whatever is sent next starts from the measured state
            self.last_sent = None
            self._hold_anchor = None
            return SafetyOutput(None, True, reason, error)
        ok = measured is not None and np.all(np.isfinite(measured))
        target = self.last_sent if self.last_sent is not None else self._hold_anchor
        ref = self._measured_at_send if self.last_sent is not None else self._hold_anchor  # where the robot was
        moved = ok and ref is not None and np.any(np.abs(measured - ref) > RESYNC_STEPS * self.max_step)
        if target is not None and moved:
            self.counts["resync"] += 1  # moved by something else: hold where it is (module docstring)
            self.last_sent, self._measured_at_send, target = None, None, None
        if target is None and ok:
            self._hold_anchor = np.asarray(measured, np.float64).copy()  # where it stands, even outside the limits
            target = self._hold_anchor
        if target is None:
            return SafetyOutput(None, True, reason, error)
        return SafetyOutput(target.copy(), True, reason, error)

    def apply(
        self,
        candidate: np.ndarray | None,
        measured: np.ndarray | None = None,
        hold_reason: str = "",
        now: float | None = None,
    ) -> SafetyOutput:
        """Gate one tick's command; returns what to send. See the module docstring for the order. ``now``: the
        tick's time in seconds (the velocity limit then scales with the time since the last command sent)."""
        n = self.n_arm + self.n_hand
        if measured is not None:
            measured = np.asarray(measured, dtype=np.float64).reshape(-1)
            if measured.shape != (n,):
                measured = None
        if self.estop_latched:
            return self._hold("estop", measured)
        if hold_reason:
            return self._hold(hold_reason, measured)
        if candidate is None:
            return self._hold("no_command", measured)
        cand = np.asarray(candidate, dtype=np.float64).reshape(-1)
        if cand.shape != (n,):
            return self._hold("nan", measured, f"command has {cand.size} values, expected {n}")
        if not np.all(np.isfinite(cand)):
            bad = np.flatnonzero(~np.isfinite(cand)).tolist()
            return self._hold("nan", measured, f"non-finite command values at joint indices {bad}")
        out = np.clip(cand, self.lower, self.upper)
        clamped = bool(np.any(out != cand))
        ref = (
            self.last_sent
            if self.last_sent is not None
            else (self._hold_anchor if self._hold_anchor is not None else measured)
        )
        if ref is None:
            # Without the measured position nothing can be rate limited: send nothing.
            return self._hold("no_state", measured)
        delta = out - ref
        step = self.max_step
        if now is not None and self._t_sent is not None and ref is self.last_sent:
            step = step * min(1.0, max(0.0, (now - self._t_sent) * self.cfg.control_hz))
        lim = np.clip(delta, -step, step)
        rate_limited = bool(np.any(lim != delta))
        # a reference outside the limits (a joint measured there) comes back one step a tick, never in one jump
        out = np.clip(ref + lim, np.minimum(self.lower, ref), np.maximum(self.upper, ref))
        if self.cfg.workspace_check and not self.in_workspace(out[:7]):
            p = self.tool_position(out[:7])
            return self._hold(
                "workspace", measured, f"tool point {np.round(p, 3).tolist()} outside the workspace box"
            )
        self.counts["clamped"] += int(clamped)
        self.counts["rate_limited"] += int(rate_limited)
        self.counts["sent"] += 1
        self.last_sent = out.copy()
        self._t_sent = now
        self._measured_at_send = measured.copy() if measured is not None and np.all(np.isfinite(measured)) else None
        return SafetyOutput(out, False, "", "", clamped, rate_limited)
