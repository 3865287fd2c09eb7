"""Round accounting of the online phase: what each round really used, and the round-boundary gate.

Algorithm 1 (multi-round) with Table 4's budget: each round collects exactly ``episodes_per_round``
(M) online episodes before its residual is frozen. Through the ROS graph the simulated robot runs
episodes on its own (``auto_reset``) while the trainer updates, so two mechanisms keep the count exact
(both ours; the paper leaves the scheduling to the operator):

* the trainer ingests at most M episodes into a round; an episode that finishes after the round is
  full waits (it is not ingested) and is counted in the next round once that starts
  (:class:`bora_trainer.online.loop.OnlineLoop`);
* the robot waits at a round boundary: the trainer publishes the highest bridge episode id that may
  start (:func:`episode_gate`: the ids above the last one taken in, and the ended episodes below it not yet
  taken in, count as still to come); the bridge does not start a later one. Once a round is full the gate
  stays at the last id seen, and it opens for the next round only when that round's first checkpoint is
  in use by the policy (:class:`RoundGate`), so every episode of round r runs round r's residual.

A round opened by the gate's timeout (the policy never confirmed the new residual) runs its first episodes with
whatever residual the policy has; each episode is therefore labelled by the residual it ran (:func:`ran_round`, from
its ActionChunks' ``residual_version``): ledger ``ran_round`` and ``base_round``, so the rebase folds the right
residuals onto its chunks, and :func:`round_table` counts such episodes of each round (``earlier_residual``).

Everything here is plain Python over the trainer's ledger (``STATE/ingested.json``: one entry per
ingested episode with its ``round``, ``num_steps``, ``intervened_steps``, ``takeovers``, ``outcome``, the
bridge's ``source_episode_id`` and, from recordings, ``ran_round`` and ``residual_versions``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bora_trainer.online")


def load_json(path: Path, default: Any) -> Any:
    """The JSON in ``path``, else ``default`` (absent or unreadable: a state file not yet written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return default


def episode_key(info: dict) -> tuple[str, int] | None:
    """(session_id, source episode id) of an episode or ledger entry; None without a session."""
    sess = info.get("session_id")
    return (str(sess), int(info.get("source_episode_id") or 0)) if sess else None


def intervened_steps(rows: dict[str, np.ndarray]) -> int:
    """Control steps executed under an operator takeover in one episode's chunk transitions.

    Each row holds the chunk's start ``step`` [n] and per-step ``is_intervention`` and ``mask`` [n, k];
    overlapping chunks (replanning before a chunk ends) count each control step once.
    """
    step = np.asarray(rows["step"], np.int64).reshape(-1, 1)
    flag = np.asarray(rows["is_intervention"], bool) & np.asarray(rows["mask"], bool)
    k = flag.shape[1] if flag.ndim == 2 else 0
    if not k:
        return 0
    steps = (step + np.arange(k, dtype=np.int64)[None, :])[flag]
    return int(np.unique(steps).size)


def takeovers(rows: dict[str, np.ndarray]) -> int:
    """Operator takeovers in one episode's chunk transitions: runs of intervened control steps.

    Same rows as :func:`intervened_steps`. Only steps a chunk covers with ``mask`` true are known; a run ends at
    a known step without the flag, so a step no chunk covers (a missing command) does not split a takeover.
    """
    step = np.asarray(rows["step"], np.int64).reshape(-1, 1)
    flag = np.asarray(rows["is_intervention"], bool)
    mask = np.asarray(rows["mask"], bool)
    k = flag.shape[1] if flag.ndim == 2 else 0
    if not k:
        return 0
    steps = (step + np.arange(k, dtype=np.int64)[None, :])[mask]
    known, where = np.unique(steps, return_inverse=True)
    on = np.zeros(known.size, bool)
    np.logical_or.at(on, where, flag[mask])  # overlapping chunks: a step is intervened if any chunk says so
    return int(on[:1].sum() + np.sum(on[1:] & ~on[:-1]))


def ledger_takeovers(trainer_dir: str | Path) -> dict[int, int | None]:
    """Per round, the takeovers of a trainer node's ledger (``trainer_dir/ingested.json``). An entry written
    before takeovers were counted is counted here from its episode's chunk rows, the ingested shard
    ``trainer_dir/online_buffer/<entry name>`` (:func:`takeovers`); a round with an entry that has neither is
    None. Reads only: the recorded run is not changed."""
    trainer_dir = Path(trainer_dir)
    ledger = json.loads((trainer_dir / "ingested.json").read_text())
    out: dict[int, int | None] = {}
    for name, e in ledger.items():
        r = int(e.get("round", 1))
        n = e.get("takeovers")
        shard = trainer_dir / "online_buffer" / name
        if n is None and shard.is_file():
            with np.load(shard) as z:
                n = takeovers({k: z[k] for k in ("step", "is_intervention", "mask")})
        prev = out.get(r, 0)
        out[r] = None if n is None or prev is None else prev + int(n)
    return out


def ran_round(versions: list[str] | None, version_rounds: dict[str, int], current: int) -> tuple[int | None, str]:
    """The round whose residual an episode ran, for the round ``current`` it would be ingested in.

    ``versions``: the ``residual_version`` of its ActionChunks (the converted ``residual_versions``);
    ``version_rounds``: the round of every residual the trainer announced (its sha256's first 16 hex digits, what
    the policy reports);
    an empty version is the policy without a residual, whose base is the pure VLA chunk (round 1). Returns
    ``(round, "")``: it ran that round's residual; ``(None, "")``: unknown (converted before the versions were kept,
    or a version this run never announced), taken as run in ``current`` as before; ``(None, why)``: its chunks ran
    residuals of different rounds (the policy loaded the new round's checkpoint mid-episode), so its rows hold
    different base chunks and none can be rebased as a whole: never to be ingested; ``(round, why)`` with a round
    after ``current``: it waits for that round.
    """
    if not versions:
        return None, ""
    rounds = {1 if not v else version_rounds.get(str(v)) for v in versions}
    if None in rounds:
        return None, ""
    if len(rounds) > 1:
        return None, f"ran the residuals of rounds {sorted(rounds)} (the policy loaded a checkpoint mid-episode)"
    r = int(rounds.pop())
    return r, (f"ran round {r}'s residual: it waits for round {r}" if r > current else "")


def round_table(ledger: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round: episodes, control steps, intervened steps (and their share), successes, takeovers, the
    episodes the operator took over (``taken_over``) and how many of those ended in success (``rescued``:
    issue 14's rescue rate). The three takeover counts are None when an entry predates them in the ledger.
    ``earlier_residual``: the round's episodes that ran an earlier round's residual (:func:`ran_round`; the round
    gate opened on its timeout), whose outcomes are not the round's policy's."""
    out: dict[int, dict[str, Any]] = {}
    for e in ledger.values():
        r = int(e.get("round", 1))
        row = out.setdefault(r, {"round": r, "episodes": 0, "steps": 0, "intervened_steps": 0, "successes": 0,
                                 "takeovers": 0, "taken_over": 0, "rescued": 0, "earlier_residual": 0})
        row["episodes"] += 1
        row["earlier_residual"] += int(e.get("ran_round") is not None and int(e["ran_round"]) < r)
        row["steps"] += int(e.get("num_steps", 0))
        row["intervened_steps"] += int(e.get("intervened_steps", 0))
        success = e.get("outcome") == "success"
        row["successes"] += int(success)
        n = e.get("takeovers")
        for key, add in (("takeovers", n), ("taken_over", n and n > 0), ("rescued", n and n > 0 and success)):
            row[key] = None if n is None or row[key] is None else row[key] + int(add)
    rows = [out[r] for r in sorted(out)]
    for row in rows:
        row["intervened_share"] = row["intervened_steps"] / row["steps"] if row["steps"] else 0.0
    return rows


def last_seen_in_session(ledger: dict, skipped: dict[str, int], session: str | None) -> int:
    """The highest bridge episode id taken in (ingested: ``ledger`` entries; or never to be ingested: ``skipped``,
    session -> id) of the bridge session ``session``, the one running now (None: of every session). Ids restart at
    1 with each bridge session: counted over every session, a restarted bridge saw an old session's higher id as
    its gate and ran past the round boundary (found in review, 2026-12-07)."""
    ids = [int(v.get("source_episode_id", 0)) for v in ledger.values()
           if session is None or str(v.get("session_id") or "") == session]
    return max([*(v for k, v in skipped.items() if session is None or k == session), *ids], default=0)


def waiting_below(ended: set[tuple[str, int]], taken: set[tuple[str, int]], session: str | None,
                  last_seen_id: int) -> int:
    """Episodes of the bridge session ``session`` with an id up to ``last_seen_id`` that have ended (``ended``:
    (session, id) of every episode whose outcome the source has seen; env ros: a recording holds it) and are not
    taken in (``taken``: (session, id) ingested or skipped). Each will still be ingested (or skipped): e.g. one
    whose last steps' messages are awaited (``late_message_wait_s``) while the next one was skipped. 0 without a
    session (recordings made before sessions). An id up to ``last_seen_id`` whose outcome no recording holds is
    not counted: the robot went on past it, so its outcome was lost (ours, as before this count)."""
    if session is None:
        return 0
    return sum(1 for s, i in ended if s == session and int(i) <= last_seen_id and (s, int(i)) not in taken)


def episode_gate(last_seen_id: int, in_round: int, per_round: int, open_: bool = True, waiting: int = 0) -> int:
    """Highest bridge episode id that may start.

    ``last_seen_id``: the highest bridge episode id the trainer has taken in (ingested, or finished but
    not usable: a replacement is then allowed); ``in_round``: episodes ingested into the current round;
    ``waiting``: ended episodes with ids up to ``last_seen_id`` not yet taken in (:func:`waiting_below`).
    Episodes still running or not yet converted have ids above ``last_seen_id``; they and the ``waiting`` ones
    count against the ``per_round - in_round`` still needed, so the gate never lets a round overflow and never
    waits for an episode that will not come. Without ``waiting`` a skipped id above an episode whose ingest was
    still to come set the gate one too high (found in review, 2026-12-08). Closed (``open_`` False, or the round
    full): ``last_seen_id``.
    """
    if last_seen_id < 0 or in_round < 0 or per_round < 1 or waiting < 0:
        raise ValueError(
            f"episode_gate: last_seen_id {last_seen_id}, in_round {in_round} and waiting {waiting} must be >= 0, "
            f"per_round {per_round} >= 1"
        )
    if not open_:
        return int(last_seen_id)
    return int(last_seen_id + max(0, per_round - in_round - waiting))


class RoundGate:
    """The gate the trainer node publishes: closed from the moment a round is full until the next
    round's first checkpoint is in use by the policy (its ``residual_version`` = the announced sha256's
    first 16 hex digits), or ``timeout_s`` after the gate started waiting (a policy that never confirms
    must not stall the run: the episode is then recorded with whatever it runs, and said so). Round 1
    opens once the policy reports at all (it runs the base until the first checkpoint): episodes then
    have policy chunks from their first step."""

    def __init__(self, timeout_s: float = 60.0, wait_for_policy: bool = True):
        if timeout_s < 0:
            raise ValueError(f"RoundGate.timeout_s must be >= 0, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.wait_for_policy = bool(wait_for_policy)
        self.confirmed_round = 0
        self._since: tuple[int, float] | None = None  # (round, time it started waiting)
        self.timed_out: list[int] = []

    def is_open(self, round_: int, expected_version: str, policy_version: str | None, now: float) -> bool:
        """Whether round ``round_`` may start episodes. ``expected_version``: its first checkpoint's;
        ``policy_version``: the policy's current ``residual_version``, None until it reported."""
        if round_ <= self.confirmed_round or not self.wait_for_policy:
            self.confirmed_round = max(self.confirmed_round, round_)
            return True
        if policy_version is not None and (round_ == 1 or (expected_version and policy_version == expected_version)):
            self.confirmed_round = round_
            return True
        if self._since is None or self._since[0] != round_:
            self._since = (round_, now)
        if now - self._since[1] >= self.timeout_s:
            self.timed_out.append(round_)
            self.confirmed_round = round_
            return True
        return False


class StallWatch:
    """Says when a round has waited ``warn_s`` for its next episode and none came in (ours; 0 = off).

    Through the graph the robot waits at the round gate while the trainer waits for the round's last
    episodes, so an episode whose outcome event never reaches the recording (a recorder or bridge that died
    at the wrong moment) would hold both without a line in the log. :meth:`check` returns the seconds waited
    when a warning is due (every ``warn_s`` of one wait), else None; the loop then logs
    :func:`stall_message`. A human between episodes on a real robot is a wait too: the warning is a
    diagnosis, nothing is skipped."""

    def __init__(self, warn_s: float, clock=time.monotonic):
        if warn_s < 0:
            raise ValueError(f"StallWatch.warn_s must be >= 0 seconds (0 = off), got {warn_s}")
        self.warn_s, self._clock = float(warn_s), clock
        self._since: float | None = None
        self._next = 0.0

    def check(self, progressed: bool, waiting: bool) -> float | None:
        """``progressed``: an episode was ingested in this step; ``waiting``: the round still takes episodes."""
        now = self._clock()
        if progressed or not waiting or not self.warn_s:
            self._since = None
            return None
        if self._since is None:
            self._since, self._next = now, now + self.warn_s
            return None
        if now < self._next:
            return None
        self._next = now + self.warn_s
        return now - self._since

    def observe(self, loop, ingested: int) -> None:
        """After a loop's collect: warn (the ``bora_trainer.online`` logger) when a warning is due."""
        waited = self.check(ingested > 0, loop.wanted > 0)
        if waited is not None:
            seen = getattr(loop.source, "unfinished", lambda _loop: [])(loop)  # env ros has it (env_ros.py)
            gate = loop.episode_gate()
            log.warning(stall_message(loop.round, loop.in_round, loop.cfg.episodes_per_round, gate, waited, seen))


def stall_message(round_: int, in_round: int, per_round: int, gate: int, waited_s: float, seen: list[str]) -> str:
    """The warning of :class:`StallWatch`: the round, the gate and what the episode source has seen of the
    episodes it waits for (``seen``: one line each, e.g. from ``RosEpisodes.unfinished``)."""
    what = "; ".join(seen) if seen else "none recorded yet"
    return (
        f"round {round_} has {in_round} of {per_round} episodes and no new one for {waited_s:.0f} s (the gate lets "
        f"episodes up to id {gate} start). Unfinished episodes in the recordings: {what}. If an episode has ended "
        "and is listed here without an outcome, its outcome event was not recorded and the round cannot fill: "
        "check the recorder and the robot's episode events; a recording listed as not convertible holds episodes "
        "the round cannot read until the file is repaired or moved out of the recordings"
    )
