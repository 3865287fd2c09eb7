"""Scripted operator: the stand-in for the human in the loop.

It watches a running policy through the env ``info`` and privileged sim state (task progress,
task-specific signals, the hand's distance to the part it must reach), detects failure-prone states,
takes over through the task's scripted expert, and reports each intervention ``{"start", "end",
"recovered", "reason"}``, within a budget of interventions per episode. During a takeover the blend
weight ``beta`` ramps linearly from 0 to 1 (``A_exec = (1 - beta) A_policy + beta A_human``, a hard
switch is ``ramp_steps=0``).

Failure-prone states (``_failure_prone``): a task-specific failure signal (the object slipping out of
the hand, the lid falling back, the finger on the housing, the tissue slipping), no progress for
``patience_s`` (neither task progress nor the hand's approach to its target improved: a policy that is
still approaching is not stuck; before the hand first approaches, moving away from the target restarts
the clock; on the pick tasks a held object moving ``carry_gain`` is progress too, and a drop over the basket
is a placement, not a slip), or time running out (the task is not under way and the time left is
just what the operator needs to do it: ``deadline_margin_s`` plus its plan's duration).

Rescue (ours; the paper's human corrects and hands back): once in control the operator keeps it until
the task succeeds (``recovery_s = 0``, the default) -- it stands in for a competent human, so the
episodes it takes over end in success and intervention rewards do not teach failure. With
``recovery_s > 0`` it hands back after that long if the segment gained ``recovered_gain`` progress.
A competent human also tries again (``max_replans``, ours): while in control the operator plans afresh from
the current state when a pick object it was carrying is back on the table out of the hand, or when its plan
has ended ``replan_wait_s`` ago without success (an object released beside the basket, a grasp that closed
on nothing). Measured on pick_and_place's demo build (BORA-Offline, 30 seeds in process): without it 27/30
takeovers ended in success, each failure a plan carried on with an empty hand.

Modes (``OperatorConfig.mode``): ``privileged`` (the default, above) decides from privileged sim state, which a
real operator does not have. ``requested`` (issue 19) takes over only when the policy asks for help
(:meth:`ScriptedOperator.request_help`, from ``/bora/help_request``), ``reaction_s`` after the request (a
person's reaction time), within the same budget; it never looks at task progress, failure signals or the
deadline to decide (once in control it acts like the privileged one: it sees the scene, and hands back on
success). A request while it is in control, or over budget, is ignored; one request, one takeover.

Its hand commands come out as a data glove would give them: human hand joint angles
(``GLOVE_JOINT_NAMES``, radians), which ``RetargetMap.retarget`` maps to the robot hand's joint
targets. The map is plain data (matrix + offset + names, ``to_dict``) so the teleop package can
load and reuse it (both in ``bora_sim.glove``, re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bora_sim.experts import PLANNERS, ExpertKnobs, ScriptedExpert
from bora_sim.glove import GLOVE_JOINT_NAMES, RetargetMap, shadow_glove_map, shadow_retarget_map

HELD_HEIGHT = 0.015
"""m: a pick object this high and touched by the hand is held; a takeover then continues from the lift."""
CARRY_PHASES = ("lift", "transport", "lower")
"""Plan segments of the pick tasks in which the hand carries the object (a retry when it is back on the table)."""
GRASP_REACH = 0.03
"""m: a grasp site this close to a pick object the hand touches is at the grasp; a takeover closes the hand."""
LID_LIFTED = 0.35
"""rad: open_box's lid this far open with the hand on it is being lifted (above the initial angles, 0-0.3 rad,
which fall shut within 4 s); a takeover carries on lifting from there (``open``)."""
LID_UP = 1.1
"""rad: open_box's lid this far open with the hand on it is near the plan's lift target (1.25 rad); a takeover
lets go, moves behind it and pushes it over (``release``)."""


OPERATOR_MODES = ("privileged", "requested")


@dataclass(frozen=True)
class OperatorConfig:
    """Scripted operator behaviour."""

    budget: int = 3
    """Maximum interventions per episode."""
    grace_s: float = 2.0
    """No takeover in the first seconds of an episode."""
    patience_s: float = 2.5
    """Take over when neither task progress nor the hand's approach to its target improved for this long."""
    approach_gain: float = 0.01
    """A decrease of the hand-to-target distance (m) that counts as progress (0 = task progress only)."""
    carry_gain: float = 0.01
    """Pick tasks: a held object (touched by the hand, ``HELD_HEIGHT`` off the table) that moved this far (m) since
    the stall clock last restarted counts as progress, and so does the grasp that first lifts it (0 = off). Ours:
    the tasks' progress signals do not see a lift (pick_and_place's is the package's xy distance to the basket),
    so a policy carrying the package up or lowering it into the basket looked stalled; before this rule (and
    ``over_basket``) the online configs' operator would have taken over all 54 autonomous successes of four trained
    pick_and_place policies, after it 5 of them (bench/results/operator_shadow.md)."""
    deadline_margin_s: float = 1.5
    """Take over when the task is not under way and less than the operator's plan duration plus this
    margin is left (negative = no deadline takeover)."""
    recovery_s: float = 0.0
    """0: a takeover lasts until success (or the episode's end). > 0: hand back after this long if the
    segment recovered (progress gain >= ``recovered_gain``); it also ends on success."""
    ramp_steps: int = 2
    """Control steps of the linear beta ramp at takeover (0 = hard switch)."""
    glove_noise: float = 0.02
    """Std of the glove's joint-angle noise (rad)."""
    speed: float = 1.3
    """Pace of the operator's motions relative to the demonstrations' expert (segment durations / speed;
    ours: at 1.3 the operator controlled 39-71% of the steps of a 55%-success policy's episodes instead of
    48-82% at 1.0, rescuing 90-100% at both; bench/results/operator.md). config/online_tiny.yaml: 2.0, open_box
    1.3 (through the graph 33.4% of the online steps instead of 42.1%, 89-100% rescued; operator_speed.md)."""
    recovered_gain: float = 0.2
    """Progress gain over the segment that counts as recovered (or success)."""
    max_replans: int = 2
    """Fresh plans from the current state within one takeover when the attempt failed (module docstring; 0 =
    carry the first plan through)."""
    replan_wait_s: float = 1.0
    """How long the operator waits after its plan ended without success before it plans again (s)."""
    mode: str = "privileged"
    """``privileged``: takeovers from privileged sim state; ``requested``: only on help requests (module docstring)."""
    reaction_s: float = 0.3
    """``requested`` mode: delay from a help request to the takeover (s; ours, a person's reaction time)."""
    task_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-task field overrides, task name -> {field: value} (ours), e.g. ``{"pull_tissue": {"patience_s": 2.5}}``:
    the operator on that task runs with :meth:`for_task`'s config. None by default. Measured candidates
    (bench/results/operator_deadline_margin.md): on pick_plush_toy ``deadline_margin_s`` 0.5 s and 0 s took over 3
    and 1 of 14 autonomous successes in shadow instead of 12, but through the ROS graph rescued 16 of 26 and 16 of 28
    online takeovers instead of 36 of 38; on pull_tissue ``patience_s`` 2.5 with ``deadline_margin_s`` 0 took over
    5 of 29 successes instead of 18, online 21-25% of the steps instead of 45-49% (16 of 16 rescued, -1.0 [-3, +1])."""

    def __post_init__(self) -> None:
        if self.mode not in OPERATOR_MODES:
            raise ValueError(f"operator mode must be one of {OPERATOR_MODES}, got {self.mode!r}")
        if not self.reaction_s >= 0:
            raise ValueError(f"operator reaction_s must be >= 0 s, got {self.reaction_s}")
        if self.max_replans < 0:
            raise ValueError(f"operator max_replans must be >= 0, got {self.max_replans}")
        if not self.replan_wait_s >= 0:
            raise ValueError(f"operator replan_wait_s must be >= 0 s, got {self.replan_wait_s}")
        self._check_task_overrides()

    def _check_task_overrides(self) -> None:
        if not isinstance(self.task_overrides, dict):
            raise ValueError(
                f"operator task_overrides must be a mapping task -> {{field: value}}, got {self.task_overrides!r}"
            )
        fields = {n: f for n, f in self.__dataclass_fields__.items() if n != "task_overrides"}
        for task, over in self.task_overrides.items():
            if task not in PLANNERS:
                raise ValueError(f"operator task_overrides: unknown task {task!r}; expected one of {sorted(PLANNERS)}")
            if not isinstance(over, dict):
                raise ValueError(f"operator task_overrides[{task!r}] must be a mapping field -> value, got {over!r}")
            bad = sorted(set(over) - set(fields))
            if bad:
                raise ValueError(
                    f"operator task_overrides[{task!r}]: unknown field(s) {bad}; expected some of {sorted(fields)}"
                )
            for name, value in over.items():  # the field's kind: an int field takes an integer, a float one any number
                kinds = {int: ("an integer", int), float: ("a number", (int, float)), str: ("a string", str)}
                want = kinds.get(type(fields[name].default))
                if want and (isinstance(value, bool) or not isinstance(value, want[1])):
                    raise ValueError(f"operator task_overrides[{task!r}][{name!r}] must be {want[0]}, got {value!r}")

    def for_task(self, task: str) -> OperatorConfig:
        """This config with ``task_overrides[task]`` applied (itself when the task has none); the overridden
        values are checked as the fields themselves are."""
        over = self.task_overrides.get(task)
        return replace(self, **over) if over else self


def operator_config(overrides: dict[str, Any] | None = None, **fields: Any) -> OperatorConfig:
    """``OperatorConfig`` from a dict of overrides (an online config's ``operator``, the bridge's
    ``operator_overrides``) plus keyword fields; an unknown or doubly given field is a one-line ValueError."""
    over = dict(overrides or {})
    known = set(OperatorConfig.__dataclass_fields__)
    bad = sorted(set(over) - known)
    if bad:
        raise ValueError(f"operator: unknown field(s) {bad}; expected some of {sorted(known)}")
    both = sorted(set(over) & set(fields))
    if both:
        raise ValueError(f"operator: field(s) {both} given twice (the overrides and their own parameter)")
    return OperatorConfig(**over, **fields)


def operator_from_params(overrides_json: str, mode: str, reaction_s: float) -> OperatorConfig:
    """The sim bridge's operator from its parameters: ``operator_overrides`` (a JSON object of OperatorConfig
    fields other than mode and reaction_s; '' = none), ``operator_mode`` and ``operator_reaction_s``."""
    import json

    try:
        over = json.loads(overrides_json) if overrides_json.strip() else {}
    except ValueError as e:
        raise ValueError(f"operator_overrides: expected a JSON object of OperatorConfig fields ({e})") from e
    if not isinstance(over, dict):
        raise ValueError(f"operator_overrides: expected a JSON object of OperatorConfig fields, got {overrides_json!r}")
    return operator_config(over, mode=mode, reaction_s=float(reaction_s))


@dataclass
class TakeoverDecision:
    takeover: bool
    reason: str = ""
    beta: float = 0.0


@dataclass
class _Segment:
    start: int
    reason: str
    progress0: float
    end: int | None = None
    recovered: bool = False
    replans: int = 0  # fresh plans after a failed attempt (OperatorConfig.max_replans)
    done_step: int | None = None  # the step at which the current plan was found finished


class ScriptedOperator:
    """Watches ``env`` (through its info dict), decides takeovers, and drives the expert when in control."""

    def __init__(
        self,
        env,
        cfg: OperatorConfig | None = None,
        knobs: ExpertKnobs | None = None,
        seed: int | None = None,
    ):
        self.env = env.unwrapped
        self.cfg = (cfg or OperatorConfig()).for_task(self.env.task_name)  # task_overrides applied
        self.rng = np.random.default_rng(seed)
        self.expert = ScriptedExpert(self.env, knobs=knobs or ExpertKnobs(), seed=seed, speed=self.cfg.speed)
        self.retarget_map = shadow_retarget_map(self.env.hand_joint_names)
        self.reset()

    def reset(self) -> None:
        self.segments: list[_Segment] = []
        self.active: _Segment | None = None
        self.best_progress = 0.0
        self.best_step = 0
        self.best_dist = float("inf")
        self.approaching = False  # the hand got closer to its target by approach_gain at least once
        self.retreating = False  # before that, it moved away from it by 3 x approach_gain
        self.prev: dict[str, Any] = {}
        self.peak: dict[str, float] = {}
        self.carry_anchor: np.ndarray | None = None  # the held pick object's position when the clock last restarted
        self._plan_s: list[tuple[str, float]] | None = None
        self.help_request: tuple[int, str] | None = None  # (step, reason) of a request not acted on yet
        self.help_requests = 0

    def request_help(self, step: int, reason: str = "help request") -> bool:
        """The policy asked for help at ``step`` (``requested`` mode acts on it after ``reaction_s``).
        Returns False when it is ignored: in control already, over budget, or one is already pending."""
        if self.active is not None or len(self.segments) >= self.cfg.budget or self.help_request is not None:
            return False
        self.help_request = (int(step), str(reason))
        self.help_requests += 1
        return True

    # --- privileged state ------------------------------------------------------------------------
    def target_distance(self) -> float:
        """Distance (m) from the grasp site to the part the hand must reach (object, handle, cap, tab)."""
        env = self.env
        task, d = env.task, env.data
        name = env.task_name
        if name in ("pick_plush_toy", "pick_and_place"):
            p = task.object_pos(d)
        elif name == "open_box":
            p = d.geom_xpos[task.handle_id]
        elif name == "press_button":
            p = task.cap_top(d)
        elif name == "pull_tissue":
            p = d.xpos[task.tab_id]
        else:
            return float("inf")
        site, _ = env.grasp_site_pose()
        return float(np.linalg.norm(np.asarray(site) - np.asarray(p)))

    def plan_seconds(self, resume: str | None = None) -> float:
        """Nominal time (s) the operator needs to succeed from a fresh plan: its plan's segment durations
        up to the last one the success predicate needs (trailing ``hold`` segments, and a ``retreat`` after
        a ``hold``, left out; from segment ``resume`` on if given) at the operator's ``speed``, plus the
        task's success hold and its measured ``rescue_slack_s`` (``tasks/base.py``). The plan's segments are
        cached per episode (their durations are constants)."""
        if self._plan_s is None:
            plan = PLANNERS[self.env.task_name](self.env, self.expert)
            while plan and plan[-1].label == "hold":
                plan = plan[:-1]
            if len(plan) > 1 and plan[-1].label == "retreat" and plan[-2].label == "hold":
                plan = plan[:-2]  # press_button: pressed and held, then retreats (pick_and_place needs its retreat)
            self._plan_s = [(w.label, float(w.duration)) for w in plan]
        segs = self._plan_s
        labels = [lab for lab, _ in segs]
        if resume in labels:
            segs = segs[labels.index(resume) :]
        hold = getattr(self.env.task, "hold_steps", 1) / self.env.control_hz
        slack = float(getattr(self.env.task, "rescue_slack_s", 0.0))
        return float(sum(d for _, d in segs) / self.cfg.speed + hold + slack)

    def _resume_label(self, info: dict[str, Any]) -> str | None:
        """The plan segment a takeover starts from, given how far the policy got (privileged state):
        pick tasks -- the object off the table in the hand: ``lift``; the hand at the object (within
        ``GRASP_REACH``) and touching it: ``close``; pull_tissue -- the tab pinched: ``pull``; open_box -- the hand
        on the lid and the lid ``LID_UP`` open: ``release``, ``LID_LIFTED`` open: ``open`` (its arc is planned
        from the current angle); else the whole plan (None)."""
        task = self.env.task_name
        if task in ("pick_plush_toy", "pick_and_place") and info.get("hand_contacts", 0) > 0:
            if info.get("object_height", 0.0) > HELD_HEIGHT:
                return "lift"
            if self.target_distance() < GRASP_REACH:
                return "close"
        if task == "pull_tissue" and info.get("pinched", False):
            return "pull"
        if task == "open_box" and info.get("hand_contacts", 0) > 0:
            lid = float(info.get("lid_angle", 0.0))
            if lid >= LID_UP:
                return "release"
            if lid >= LID_LIFTED:
                return "open"
        return None

    def _over_goal(self) -> bool:
        """pick_and_place: the package's centre is over the basket's inner floor -- a drop there is the
        placement (the policy let go over the basket), not an object slipping out of the hand."""
        over = getattr(self.env.task, "over_basket", None)
        return bool(over(self.env.data)) if over is not None else False

    def _carry_progress(self, info: dict[str, Any], step: int) -> None:
        """Pick tasks: the held object's motion restarts the stall clock (``carry_gain``)."""
        if self.env.task_name not in ("pick_plush_toy", "pick_and_place"):
            return
        held = info.get("hand_contacts", 0) > 0 and info.get("object_height", 0.0) > HELD_HEIGHT
        if not held:
            self.carry_anchor = None
            return
        pos = np.asarray(self.env.task.object_pos(self.env.data), np.float64)
        if self.carry_anchor is None or np.linalg.norm(pos - self.carry_anchor) >= self.cfg.carry_gain:
            self.carry_anchor = pos
            self.best_step = max(self.best_step, step)

    # --- detection -----------------------------------------------------------------------------
    def _failure_prone(self, info: dict[str, Any]) -> str:
        task, step, hz = self.env.task_name, int(info["step"]), self.env.control_hz
        reason = ""
        if task in ("pick_plush_toy", "pick_and_place"):
            h = info.get("object_height", 0.0)
            if (
                self.peak.get("height", 0.0) > 0.03
                and h < self.peak["height"] - 0.02
                and info.get("hand_contacts", 0) == 0
                and not self._over_goal()
            ):
                reason = "object slipping"
            self.peak["height"] = max(self.peak.get("height", 0.0), h)
        elif task == "press_button":
            # the hand on the housing while NOT on the cap: a press next to the button (while the finger is on the
            # cap, other fingers brushing the housing is part of a normal press: it fired 1-2 steps before
            # every success of a trained policy, bench/results/critic_data.md)
            if info.get("housing_contacts", 0) > 0 and not info.get("finger_on_cap", False):
                reason = "finger off the button"
        elif task == "open_box":
            a = info.get("lid_angle", 0.0)
            if self.peak.get("lid", 0.0) > 0.3 and a < self.peak["lid"] - 0.15:
                reason = "lid contact missed"
            self.peak["lid"] = max(self.peak.get("lid", 0.0), a)
        elif task == "pull_tissue":
            if (
                info.get("extraction", 0.0) > 0.01
                and not info.get("pinched", False)
                and info.get("extraction", 0.0) <= self.prev.get("extraction", 0.0)
            ):
                reason = "tissue slipping"
        if not reason and (step - self.best_step) / hz >= self.cfg.patience_s:
            reason = "no progress"
        if not reason and self.cfg.deadline_margin_s >= 0 and float(info.get("task_progress", 0.0)) < 0.5:
            left = (self.env.max_steps - step) / hz
            if left <= self.plan_seconds(self._resume_label(info)) + self.cfg.deadline_margin_s:
                reason = "time running out"
        self.prev = dict(info)
        return reason

    def observe(self, info: dict[str, Any]) -> TakeoverDecision:
        """Update with the latest step's info; return whether the operator is (now) in control."""
        step, hz = int(info["step"]), self.env.control_hz
        prog = float(info.get("task_progress", 0.0))
        if prog > self.best_progress + 0.02:
            self.best_progress, self.best_step = prog, step
        if self.cfg.approach_gain > 0 and self.active is None and self.cfg.mode == "privileged":
            dist = self.target_distance()
            if dist < self.best_dist - self.cfg.approach_gain:
                self.approaching = self.approaching or self.best_dist < float("inf")  # closer than before
                self.best_dist, self.best_step = dist, max(self.best_step, step)
            elif not self.approaching and (
                dist > self.best_dist + 3 * self.cfg.approach_gain or (self.retreating and dist > self.best_dist)
            ):
                # before its approach the hand may first move AWAY from the target (press_button's demonstrated
                # motion lifts it 5 cm over the first 1.2 s): that is motion, not a stall; once it moved away by
                # 3 x approach_gain the clock follows it until it approaches (a frozen arm sags less: open_box's
                # held arm drifts 1.8 cm from its target, and the clock runs)
                self.retreating = True
                self.best_dist, self.best_step = dist, max(self.best_step, step)
        if self.cfg.carry_gain > 0 and self.active is None and self.cfg.mode == "privileged":
            self._carry_progress(info, step)
        if self.active is not None:
            seg = self.active
            gained = prog >= seg.progress0 + self.cfg.recovered_gain
            over = bool(info.get("success", False)) or (
                self.cfg.recovery_s > 0 and (step - seg.start) / hz >= self.cfg.recovery_s and gained
            )
            if over:
                seg.end = step
                seg.recovered = bool(info.get("success", False) or gained)
                self.active = None
                self.best_step = step  # give the policy time after handing back
                self.best_dist = float("inf")
                return TakeoverDecision(False, "handback", 0.0)
            self._retry_if_failed(seg, step, info)
            k = step - seg.start + 1
            beta = 1.0 if self.cfg.ramp_steps <= 0 else min(1.0, k / self.cfg.ramp_steps)
            return TakeoverDecision(True, seg.reason, beta)
        if self.cfg.mode == "requested":  # only a help request, never privileged state, starts a takeover
            req = self.help_request
            waited = req is not None and (step - req[0]) / hz >= self.cfg.reaction_s - 1e-9
            if not waited or len(self.segments) >= self.cfg.budget:
                return TakeoverDecision(False)
            self.help_request = None
            return self._take_over(step, f"help request: {req[1]}", prog, info)
        if step / hz < self.cfg.grace_s or len(self.segments) >= self.cfg.budget:
            self._failure_prone(info)
            return TakeoverDecision(False)
        reason = self._failure_prone(info)
        if reason:
            return self._take_over(step, reason, prog, info)
        return TakeoverDecision(False)

    def _take_over(self, step: int, reason: str, prog: float, info: dict[str, Any]) -> TakeoverDecision:
        seg = _Segment(start=step, reason=reason, progress0=prog)
        self.segments.append(seg)
        self.active = seg
        self._plan_from_here(info)
        beta = 1.0 if self.cfg.ramp_steps <= 0 else 1.0 / self.cfg.ramp_steps
        return TakeoverDecision(True, reason, beta)

    def _plan_from_here(self, info: dict[str, Any]) -> None:
        """Plan from the current state; the policy (or the last attempt) got this far: carry on from there."""
        self.expert.reset()
        resume = self._resume_label(info)
        labels = [w.label for w in self.expert.plan]
        if resume in labels:
            self.expert.idx = labels.index(resume)

    def _attempt_failed(self, seg: _Segment, step: int, info: dict[str, Any]) -> bool:
        """In control: the carried pick object is back on the table out of the hand, or the plan ended
        ``replan_wait_s`` ago without success."""
        if self.env.task_name in ("pick_plush_toy", "pick_and_place") and self.expert.phase in CARRY_PHASES:
            if info.get("hand_contacts", 0) == 0 and info.get("object_height", 0.0) < HELD_HEIGHT:
                return True
        if not self.expert.done:
            seg.done_step = None
            return False
        if seg.done_step is None:
            seg.done_step = step
        return (step - seg.done_step) / self.env.control_hz >= self.cfg.replan_wait_s - 1e-9

    def _retry_if_failed(self, seg: _Segment, step: int, info: dict[str, Any]) -> None:
        if seg.replans < self.cfg.max_replans and self._attempt_failed(seg, step, info):
            seg.replans += 1
            seg.done_step = None
            self._plan_from_here(info)

    # --- acting ---------------------------------------------------------------------------------
    def command(self) -> tuple[np.ndarray, np.ndarray]:
        """The operator's command: (arm joint targets [7], glove angles [n_glove])."""
        a = self.expert.act().astype(np.float64)
        glove = self.retarget_map.from_robot(a[7:])
        glove = glove + self.rng.normal(0, self.cfg.glove_noise, glove.shape)
        return a[:7], glove

    def human_action(self) -> np.ndarray:
        """Operator command in the robot's action space, through the glove retargeting path."""
        arm, glove = self.command()
        return np.concatenate([arm, self.retarget_map.retarget(glove)]).astype(np.float32)

    def interventions(self) -> list[dict[str, Any]]:
        out = []
        for s in self.segments:
            end = s.end if s.end is not None else int(self.env.steps)
            out.append(
                {"start": int(s.start), "end": int(end), "recovered": bool(s.recovered), "reason": s.reason}
            )
        return out

    def close_open_segment(self, success: bool) -> None:
        if self.active is not None:
            self.active.end = int(self.env.steps)
            self.active.recovered = bool(success)
            self.active = None


__all__ = [
    "GLOVE_JOINT_NAMES",
    "OperatorConfig",
    "RetargetMap",
    "ScriptedOperator",
    "TakeoverDecision",
    "operator_config",
    "operator_from_params",
    "shadow_glove_map",
    "shadow_retarget_map",
    "field",
]
