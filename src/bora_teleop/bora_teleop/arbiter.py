"""The command arbiter of one control tick: blend -> safety (pure Python; the node is a thin wrapper).

Per tick (:meth:`Arbiter.tick`):

1. the takeover blender advances beta (linear ramp) and reports START / RECOVERED / END;
2. ``A_final`` = the latest policy command, if not older than ``watchdog_timeout_s``;
3. ``A_human`` = [operator arm target (7), retarget(glove angles)] from inputs not older than
   ``human_timeout_s`` (with ``require_arm_target: false`` the arm part is the policy's arm
   command, i.e. a hand-only glove takeover); after the release, while beta ramps down, the
   operator's last command is blended out if no fresh input arrives (a released glove may stop);
4. ``A_exec = (1 - beta) A_final + beta A_human`` (Algorithm 1 line 17); ``A_final`` is not needed
   at beta = 1 and ``A_human`` not at beta = 0;
5. the safety layer (:mod:`bora_teleop.safety`) clamps / rate limits it or replaces it by a hold:
   ``stale`` (watchdog), ``no_command`` (no policy command yet), ``human_stale``,
   ``bad_command`` (names/shape), ``nan``, ``workspace``, ``estop``, ``no_state``, ``episode_start``,
   ``help_wait`` (``help_hold`` set: the policy asked for help and no one has taken over yet,
   :mod:`bora_teleop.help_wait`; off by default), ``episode_over`` (nothing is sent: see below).

Episode boundaries (:meth:`Arbiter.start_episode`, at an EpisodeEvent START or MarkEpisode START):
the previous episode's commands and its last sent pose are forgotten; until the policy's first command
of the new episode arrives the arbiter holds the *measured* state received after the START and, where
stamps are known, measured at or after it (nothing is sent before one arrives), and the rate limit of that
first command starts from it. Between an episode's outcome (:meth:`Arbiter.end_episode`) and the next START
nothing is sent either (hold ``episode_over``), unless a takeover is under way. Once an episode
START has been seen, policy commands of any other episode are dropped and counted
(``dropped_commands``); before the first START the arbiter follows the policy's episode id.

Takeover requests come from a person or the sim's scripted operator (:mod:`bora_teleop.sources`);
the owner of the takeover decides whose glove and arm target make A_human.

Vectors are ``[arm (7), hand (n_hand)]`` in the order ``arm_joint_names + retarget.robot_joints``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bora_teleop.blend import BlendConfig, TakeoverBlender, blend
from bora_teleop.events import EpisodeTracker, InterventionRewards
from bora_teleop.glove import GloveSample, freshest
from bora_teleop.retarget import RetargetMap
from bora_teleop.safety import SafetyConfig, SafetyLayer
from bora_teleop.sources import OPERATOR, PERSON, TakeoverSources


@dataclass
class ArbiterConfig:
    """control_hz: control rate (the graph's, config/graph.yaml; no default);
    watchdog_timeout_s: max age of the policy command before a hold;
    human_timeout_s: max age of glove / arm-target input during a takeover;
    require_arm_target: the takeover needs the operator's arm target (else hand-only takeover)."""

    control_hz: float
    watchdog_timeout_s: float = 0.2
    human_timeout_s: float = 0.2
    require_arm_target: bool = True
    blend: BlendConfig = field(default_factory=BlendConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    rewards: InterventionRewards = field(default_factory=InterventionRewards)

    def __post_init__(self) -> None:
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")
        for name in ("watchdog_timeout_s", "human_timeout_s"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"{name} must be > 0 s, got {v}")


@dataclass
class PolicyCommand:
    position: np.ndarray | None  # None = the message was malformed (error says why)
    t_recv: float
    episode_id: int = 0
    step: int = 0
    chunk_index: int = 0
    error: str = ""
    seq: int = 0


@dataclass
class TickResult:
    command: np.ndarray | None  # what to send (None: send nothing)
    held: bool
    hold_reason: str
    error: str
    beta: float
    is_intervention: bool
    a_final: np.ndarray | None
    a_human: np.ndarray | None
    episode_id: int
    step: int
    chunk_index: int
    events: list[tuple[str, float]]  # (START|END|RECOVERED, reward)
    clamped: bool = False
    rate_limited: bool = False


class Arbiter:
    def __init__(self, cfg: ArbiterConfig, arm_joint_names: list[str], retarget: RetargetMap):
        if len(arm_joint_names) != 7:
            raise ValueError(f"arm_joint_names: expected 7 names, got {len(arm_joint_names)}")
        self.cfg = cfg
        self.retarget = retarget
        self.arm_joint_names = list(arm_joint_names)
        self.hand_joint_names = list(retarget.robot_joints)
        self.joint_names = self.arm_joint_names + self.hand_joint_names
        self.n = len(self.joint_names)
        scfg = dataclasses.replace(cfg.safety)
        if not scfg.hand_lower and not scfg.hand_upper:
            scfg.hand_lower, scfg.hand_upper = retarget.lower.tolist(), retarget.upper.tolist()
        scfg.control_hz = cfg.control_hz
        self.safety = SafetyLayer(scfg, len(self.hand_joint_names))
        self.blender = TakeoverBlender(cfg.blend)
        self.episode = EpisodeTracker()
        self.policy: PolicyCommand | None = None
        self._policy_used_seq = -1
        self._policy_seq = 0
        self.arm_target: tuple[np.ndarray, float] | None = None
        self.glove_topic: GloveSample | None = None
        self.glove_sources: list[Callable[[], GloveSample | None]] = []
        self.measured_arm: np.ndarray | None = None
        self.measured_hand: np.ndarray | None = None
        self._last_human: np.ndarray | None = None
        self.sources = TakeoverSources()
        self._owner: str | None = None  # whose inputs form A_human (kept while beta ramps down)
        self.operator_glove: GloveSample | None = None
        self.operator_arm_target: tuple[np.ndarray, float] | None = None
        self.started_episode: int | None = None  # id of the last START seen (None: follow the policy)
        self.awaiting_policy = False  # after a START, until the policy's first command of the episode
        self._measured_seq = 0  # +1 per measured arm/hand update
        self._measured_seq_at_start = (0, 0)
        self._arm_seq = self._hand_seq = 0
        self._arm_stamp: float | None = None  # header stamps of the latest measured states (None: unknown)
        self._hand_stamp: float | None = None
        self._start_stamp: float | None = None  # the last START's stamp
        self.episode_over = False  # the current episode's outcome is known: nothing sent until the next START
        self.dropped_commands = 0
        self.help_hold = False  # hold while a help request waits for the operator (help_wait.py)

    # ------------------------------------------------------------------ inputs
    def set_policy(
        self,
        position,
        t_recv: float,
        episode_id: int = 0,
        step: int = 0,
        chunk_index: int = 0,
        error: str = "",
    ) -> str:
        """Store the latest policy command. Returns "" or why it was dropped (a command of another
        episode than the current one, once a START has been seen; the caller counts and logs it)."""
        if self.started_episode is not None and int(episode_id) != self.episode.episode_id:
            self.dropped_commands += 1
            return (
                f"policy command of episode {int(episode_id)} dropped: the current episode is {self.episode.episode_id}"
            )
        self._policy_seq += 1
        pos = None if position is None else np.asarray(position, dtype=np.float64).reshape(-1)
        if pos is not None and pos.shape != (self.n,):
            pos, error = None, f"policy command has {pos.size} positions, expected {self.n}"
        self.policy = PolicyCommand(pos, t_recv, int(episode_id), int(step), int(chunk_index), error, self._policy_seq)
        if pos is not None:
            self.awaiting_policy = False
        return ""

    def start_episode(self, episode_id: int, stamp: float | None = None) -> bool:
        """An episode START (see the module docstring), ``stamp`` its header stamp (s; None: unknown).
        Returns False for a START already applied."""
        episode_id = int(episode_id)
        if self.started_episode == episode_id:
            return False
        self.started_episode = episode_id
        self.episode.observe_start(episode_id)
        self.episode.step = 0
        self.policy = None
        self.awaiting_policy = True
        self.episode_over = False
        self._start_stamp = stamp if stamp else None
        self._measured_seq_at_start = (self._arm_seq, self._hand_seq)
        self.safety.begin_episode()
        return True

    def end_episode(self, episode_id: int) -> bool:
        """The outcome of ``episode_id`` (SUCCESS / FAILURE / ABORT): if it is the current episode, nothing is
        sent until the next START unless a takeover is under way (hold ``episode_over``). Returns whether it
        applied. The driver keeps its last command; the reset that follows an outcome (the simulator's, or a
        person's on the robot) is not fought, and no command of the finished episode reaches the driver after
        it (measured through the graph: the policy's last command, passed on 3-7 ms after the sim's reset,
        moved the reset arm 0.08 rad back towards where the previous episode ended)."""
        if self.started_episode is None or int(episode_id) != self.episode.episode_id:
            return False
        self.episode_over = True
        return True

    def set_arm_target(self, position, t_recv: float, source: str = PERSON) -> None:
        target = (np.asarray(position, dtype=np.float64).reshape(7), t_recv)
        if source == OPERATOR:
            self.operator_arm_target = target
        else:
            self.arm_target = target

    def set_glove(self, sample: GloveSample, source: str = PERSON) -> None:
        if source == OPERATOR:
            self.operator_glove = sample
        else:
            self.glove_topic = sample

    def request_takeover(self, source: str, on: bool, now: float) -> bool:
        """A takeover request or release from ``source`` (:mod:`bora_teleop.sources`); returns whether
        the effective request changed."""
        return self.blender.request(self.sources.request(source, on), now)

    def owner(self) -> str | None:
        """Whose inputs form A_human now (the last owner while beta ramps down after a release)."""
        return self.sources.owner() or self._owner

    def set_measured(self, arm=None, hand=None, stamp: float | None = None) -> None:
        """The measured arm and/or hand state; ``stamp``: its header stamp (s; None or 0: unknown)."""
        if arm is not None:
            self.measured_arm = np.asarray(arm, dtype=np.float64).reshape(7)
            self._arm_seq += 1
            self._arm_stamp = stamp if stamp else None
        if hand is not None:
            self.measured_hand = np.asarray(hand, dtype=np.float64).reshape(len(self.hand_joint_names))
            self._hand_seq += 1
            self._hand_stamp = stamp if stamp else None

    def measured_since_start(self) -> bool:
        """Both arm and hand states arrived after the last START and, where both stamps are known, were
        measured at or after it: a state of the previous episode delivered after the START (DDS orders no
        two topics) is not the new episode's state."""
        a0, h0 = self._measured_seq_at_start
        if not (self._arm_seq > a0 and self._hand_seq > h0):
            return False
        t0 = self._start_stamp
        return t0 is None or all(s is None or s >= t0 for s in (self._arm_stamp, self._hand_stamp))

    def measured(self) -> np.ndarray | None:
        if self.measured_arm is None or self.measured_hand is None:
            return None
        return np.concatenate([self.measured_arm, self.measured_hand])

    # ------------------------------------------------------------------ helpers
    def _fresh_policy(self, now: float) -> PolicyCommand | None:
        p = self.policy
        if p is None or now - p.t_recv > self.cfg.watchdog_timeout_s:
            return None
        return p

    def human_command(self, now: float, a_final: np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """A_human = [arm target, retarget(glove)] from fresh inputs, or (None, why)."""
        if self.owner() == OPERATOR:
            gloves, arm_target, who = [self.operator_glove], self.operator_arm_target, "scripted operator's"
        else:
            gloves, arm_target, who = (
                [self.glove_topic] + [src() for src in self.glove_sources],
                self.arm_target,
                "operator's",
            )
        sample = freshest(gloves, now, self.cfg.human_timeout_s)
        if sample is None:
            return None, f"no fresh {who} glove sample"
        hand = self.retarget.apply(sample.angles)
        if self.cfg.require_arm_target:
            if arm_target is None or now - arm_target[1] > self.cfg.human_timeout_s:
                return None, f"no fresh {who} arm target"
            arm = arm_target[0]
        elif a_final is not None:
            arm = a_final[:7]
        elif self.safety.last_sent is not None:
            arm = self.safety.last_sent[:7]
        else:
            return None, "hand-only takeover without a policy or previous arm command"
        return np.concatenate([arm, hand]), ""

    def end_takeover(self, success: bool = False) -> list[tuple[str, float]]:
        """End any takeover now (its episode is over; ``success``: it ended in success): the (event,
        reward) pairs still owed to it (see ``TakeoverBlender.end_now``)."""
        self._last_human = None
        self.sources.end_now()
        self._owner = None
        return [(k, self.cfg.rewards.reward(k)) for k in self.blender.end_now(success)]

    # ------------------------------------------------------------------ the tick
    def tick(self, now: float) -> TickResult:
        bs = self.blender.update(now)
        beta = bs.beta
        if self.sources.owner() is not None:
            self._owner = self.sources.owner()
        elif beta == 0.0:
            self._owner = None
        pol = self._fresh_policy(now)
        a_final = pol.position if pol is not None else None
        hold, error = "", ""
        if pol is not None and pol.position is None:
            hold, error = "bad_command", pol.error
        a_human = None
        if beta > 0.0:
            a_human, why = self.human_command(now, a_final)
            if a_human is None and not self.blender.requested and self._last_human is not None:
                a_human = self._last_human  # released: the operator's last command is blended out
            if a_human is None and not hold:
                hold, error = "human_stale", why
        self._last_human = a_human if beta > 0.0 else None
        measured = self.measured()
        if self.awaiting_policy:
            if not self.measured_since_start():
                measured = None  # the previous episode's state: send nothing until the new one arrives
            if beta < 1.0 and hold != "bad_command":
                hold = "episode_start"
                error = (
                    f"holding the measured state until the policy's first command of episode {self.episode.episode_id}"
                )
        if self.episode_over and beta == 0.0 and not hold:
            hold = "episode_over"
            error = f"episode {self.episode.episode_id} is over: nothing sent until the next START"
        if beta < 1.0 and not hold and a_final is None:
            hold = "stale" if self.policy is not None else "no_command"
            if self.policy is not None:
                age = now - self.policy.t_recv
                error = f"policy command is {age:.3f} s old (> {self.cfg.watchdog_timeout_s} s)"
        if self.help_hold and beta == 0.0 and not hold:
            hold, error = "help_wait", "the policy asked for help: holding until the operator takes over"
        candidate = None if hold else blend(a_final, a_human, beta)
        out = self.safety.apply(candidate, measured, hold_reason=hold, now=now)
        # Episode / step bookkeeping: follow a new policy command, else advance by one tick.
        if pol is not None and pol.position is not None and pol.seq != self._policy_used_seq:
            self.episode.observe_command(pol.episode_id, pol.step)
            self._policy_used_seq = pol.seq
        else:
            self.episode.tick()
        events = [(k, self.cfg.rewards.reward(k)) for k in bs.events]
        return TickResult(
            out.command,
            out.held,
            out.reason,
            out.error or error,
            beta,
            bs.is_intervention,
            a_final,
            a_human,
            self.episode.episode_id,
            self.episode.step,
            pol.chunk_index if pol is not None else 0,
            events,
            out.clamped,
            out.rate_limited,
        )
