"""Intervention-driven reward (Sec. 3.2, Algorithm 1 line 22), recomputable from recorded events.

    r_t = r_env,t + r_int,t + r_rec,t

* ``r_env``: sparse task reward = a terminal success reward on the last step of a successful
  episode (optionally a failure reward on the last step of a failed one) plus a per-step time
  penalty (Sec. 3.1 "terminal success reward and a step-wise time penalty").
* ``r_int``: an instant penalty on the first step of every takeover (Algorithm 1 line 17).
* ``r_rec``: a bonus on the step where a human correction completes with the task recovered
  (Algorithm 1 line 22: ``is_int and info.recovered``), i.e. the last step under human control.

The paper gives no values for these constants; the defaults below are ours (documented in
``RewardConfig``) and live in config so a reward change never needs new robot time: the sim, the
bag converter and the trainer all call :func:`compute_rewards` on the recorded events.

Event conventions (episode JSON, docs/interfaces.md): ``interventions`` is a list of
``{"start": s, "end": e, "recovered": bool | int}``; ``start`` is the first step with the human in
control, ``end`` is *exclusive* (``is_intervention[s:e]`` is true; ``end = None`` means the
takeover lasted until the episode ended).  ``recovered`` is either a bool (bonus on step
``end - 1``) or the integer step index at which the correction completed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

OUTCOMES = ("success", "failure", "timeout", "abort")
TERMINAL_OUTCOMES = ("success", "failure")
# EpisodeEvent has no TIMEOUT kind: a recording says "timeout" (a truncation: no terminal, bootstrapped) with an
# ABORT whose note starts with this prefix (bora_trainer.data.bag_records.outcome_of); the sim bridge's time limit
TIMEOUT_NOTE_PREFIX = "timeout"
TIMEOUT_NOTE = f"{TIMEOUT_NOTE_PREFIX}: time limit"


@dataclass
class RewardConfig:
    """Reward constants (the paper fixes the form, not the values; these are our defaults).

    success_reward: terminal reward on the last step of a successful episode (r_env).
    failure_reward: terminal reward on the last step of a failed episode (r_env; 0 = plain sparse).
    time_penalty: subtracted on every step (r_env), so faster successes are worth more.
    intervention_penalty: r_int, added on the first step of each takeover (negative).
    recovery_bonus: r_rec, added when a human correction completes with the task recovered (>= 0).
    """

    success_reward: float = 1.0
    failure_reward: float = 0.0
    time_penalty: float = 0.002
    intervention_penalty: float = -0.3
    recovery_bonus: float = 0.2

    def __post_init__(self) -> None:
        if self.time_penalty < 0:
            raise ValueError(
                f"RewardConfig.time_penalty must be >= 0 (it is subtracted), got {self.time_penalty}"
            )
        if self.intervention_penalty > 0:
            raise ValueError(
                f"RewardConfig.intervention_penalty is r_int, a penalty: expected <= 0, "
                f"got {self.intervention_penalty}"
            )
        if self.recovery_bonus < 0:
            raise ValueError(
                f"RewardConfig.recovery_bonus is r_rec, a bonus: expected >= 0, got {self.recovery_bonus}"
            )


# The simulator's own per-step reward (the gym ``step`` reward and the ``reward`` array of collected
# demonstrations) keeps the 0.01 time penalty it has always used (ours); episodes recomputed from events
# (bag conversion, online rollouts) use the ``RewardConfig()`` defaults above. Both live here, one source.
SIM_REWARD = RewardConfig(time_penalty=0.01)


def step_task_reward(cfg: RewardConfig, terminated: bool) -> float:
    """r_env of one step as the simulator emits it online: ``-time_penalty`` (+ ``success_reward`` on the
    step the success predicate becomes true, which terminates the episode)."""
    return -cfg.time_penalty + (cfg.success_reward if terminated else 0.0)


@dataclass
class Takeover:
    """One human takeover: steps ``[start, end)`` under human control; ``recovered_step`` or None."""

    start: int
    end: int
    recovered_step: int | None


def parse_interventions(interventions: Iterable[Mapping[str, Any]] | None, num_steps: int) -> list[Takeover]:
    """Validate the episode's ``interventions`` events into :class:`Takeover` records."""
    out: list[Takeover] = []
    for j, ev in enumerate(interventions or []):
        if "start" not in ev:
            raise ValueError(f"interventions[{j}]: missing field 'start' (first step under human control)")
        start = int(ev["start"])
        end = ev.get("end")
        end = num_steps if end is None else int(end)
        if not 0 <= start < num_steps:
            raise ValueError(f"interventions[{j}].start={start} outside the episode [0, {num_steps})")
        if not start < end <= num_steps:
            raise ValueError(
                f"interventions[{j}].end={end}: expected start < end <= num_steps "
                f"({start} < end <= {num_steps}); "
                "'end' is exclusive"
            )
        rec = ev.get("recovered", False)
        if rec is None or rec is False:
            rec_step = None
        elif rec is True:
            rec_step = end - 1
        elif isinstance(rec, (int, np.integer)):
            rec_step = int(rec)
            if not start <= rec_step < end:
                raise ValueError(
                    f"interventions[{j}].recovered={rec_step}: a recovery step must lie in the takeover "
                    f"[{start}, {end})"
                )
        else:
            raise ValueError(f"interventions[{j}].recovered: expected bool or step index, got {rec!r}")
        out.append(Takeover(start, end, rec_step))
    return out


def compute_rewards(
    num_steps: int,
    outcome: str | None,
    interventions: Iterable[Mapping[str, Any]] | None = None,
    cfg: RewardConfig | None = None,
    return_components: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-step rewards [T] float32 of one episode from its recorded events.

    ``outcome`` is one of ``success | failure | timeout | abort`` (or None = unknown: no terminal
    reward). With ``return_components`` also returns ``{"env", "int", "rec"}`` arrays.
    """
    cfg = cfg or RewardConfig()
    if num_steps <= 0:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES} or None")
    r_env = np.full(num_steps, -cfg.time_penalty, dtype=np.float64)
    if outcome == "success":
        r_env[-1] += cfg.success_reward
    elif outcome == "failure":
        r_env[-1] += cfg.failure_reward
    r_int = np.zeros(num_steps)
    r_rec = np.zeros(num_steps)
    for tk in parse_interventions(interventions, num_steps):
        r_int[tk.start] += cfg.intervention_penalty
        if tk.recovered_step is not None:
            r_rec[tk.recovered_step] += cfg.recovery_bonus
    total = (r_env + r_int + r_rec).astype(np.float32)
    if return_components:
        comps = {
            "env": r_env.astype(np.float32),
            "int": r_int.astype(np.float32),
            "rec": r_rec.astype(np.float32),
        }
        return total, comps
    return total


def compute_dones(num_steps: int, outcome: str | None) -> np.ndarray:
    """Terminal flags [T]: true on the last step of a success or failure; timeouts/aborts are truncations."""
    done = np.zeros(num_steps, dtype=bool)
    if outcome in TERMINAL_OUTCOMES:
        done[-1] = True
    return done


def intervention_mask(num_steps: int, interventions: Iterable[Mapping[str, Any]] | None) -> np.ndarray:
    """``is_intervention`` [T] bool implied by the takeover events."""
    mask = np.zeros(num_steps, dtype=bool)
    for tk in parse_interventions(interventions, num_steps):
        mask[tk.start : tk.end] = True
    return mask


def interventions_from_mask(
    is_intervention: np.ndarray, recovered: Iterable[bool] | None = None
) -> list[dict]:
    """Inverse of :func:`intervention_mask`: runs of true steps -> events (``recovered`` per run)."""
    m = np.asarray(is_intervention, dtype=bool)
    edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    rec = list(recovered) if recovered is not None else [False] * len(starts)
    if len(rec) != len(starts):
        raise ValueError(f"recovered has {len(rec)} entries for {len(starts)} takeovers")
    return [{"start": int(s), "end": int(e), "recovered": bool(r)} for s, e, r in zip(starts, ends, rec)]


def blend_takeover(a_final: np.ndarray, a_human: np.ndarray, beta: float | np.ndarray) -> np.ndarray:
    """Executed action during a takeover (Algorithm 1 line 17): ``(1 - beta) A_final + beta A_human``."""
    beta = np.asarray(beta, dtype=np.float32)
    if np.any((beta < 0) | (beta > 1)):
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    if beta.ndim == 1 and np.ndim(a_final) == 2:
        beta = beta[:, None]
    return ((1.0 - beta) * np.asarray(a_final, np.float32) + beta * np.asarray(a_human, np.float32)).astype(
        np.float32
    )


def returns_to_go(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted return-to-go of every step, ``G_j = r_j + gamma (1 - d_j) G_{j+1}``, ``G_T = 0``: the sum stops
    at a terminal and at the recorded end (a time limit is summed to, not bootstrapped past). float64 [T]."""
    r = np.asarray(rewards, dtype=np.float64)
    d = np.asarray(dones, dtype=bool)
    out = np.zeros(len(r), dtype=np.float64)
    acc = 0.0
    for j in range(len(r) - 1, -1, -1):
        acc = r[j] + (0.0 if d[j] else gamma * acc)
        out[j] = acc
    return out
