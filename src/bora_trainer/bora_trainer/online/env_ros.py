"""env ros: the online loop's episodes come from rosbag2 recordings of the ROS graph.

:class:`RosEpisodes` is the :class:`bora_trainer.online.loop.EpisodeSource` the trainer node
(``nodes/trainer_node.py``) gives the one loop. Each poll **watches** ``recordings``: every rosbag2
directory in it (a bag being recorded included) is converted with
:func:`bora_trainer.data.bag_convert.convert` (transitions only) into ``STATE/converted``; while a bag is
still open (no ``metadata.yaml``) only episodes with an outcome are converted, a closed bag gives its
unfinished episodes too (flagged, no terminal reward). An episode is named by (``session_id``, bridge
episode id); the converter reads every bag that holds a part of it (a recorder killed and restarted
mid-episode: ``OUT/pending.json``) and replaces a converted version by a more complete one. A bag is read again
when its size changes, and at a round's start when it holds an episode the full round left for the next one; a
bag being recorded is converted again only when its episode events changed (:func:`event_digest`, ours: between
two events no episode of it can have become complete, and the conversion decodes every message of the bag).

**Rule (ours): an episode is ingested once, when it is complete** (an outcome and a recorded START; from
a bag still being recorded, also its last step's command recorded, or ``late_message_wait_s`` passed without
a change: the outcome's message can reach the file before the last steps' messages of other topics; a gap
before a recorded command is final, :meth:`RosEpisodes._settled`). An
unfinished one (no outcome: the recording stopped mid-episode) waits in ``STATE/converted`` until the
recording's continuation completes it, so its rows never enter the buffer twice (a partial version, then
the merged one). One whose START was not recorded (the live recording began mid-episode: the trainer was
started during it) or without ActionChunks (not a policy rollout) is never ingested; the round gate may
replace it. The loop refuses a later differing version of an ingested (session, episode): updates may
already have used its rows. Rows keep the recorded base chunk (an ActionChunk's ``base_norm``: the base
of the round in which it was recorded; the rebase rule in checkpoints.py). Each poll gives the loop the (session, id)
of every episode whose outcome a recording holds (``loop.ended_keys``): the round gate counts those not yet taken in
as still to come (``rounds.waiting_below``).

With ``episode_ends`` set (the live trainer node, which is the recorder, fills it from the latched
``/bora/episode/ended``: :mod:`bora_trainer.online.episode_ends`), an episode that ended (an explicit outcome) while
nothing recorded its outcome (the trainer was down) is skipped after each poll, one line each, so the round gate lets
another replace it instead of waiting for it for good; its recorded part, if any, stays in the recordings. An episode
whose outcome has not come (running) is never skipped this way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from bora_policy.runtime.processor import ActionProcessor
from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_convert import ConvertConfig, convert, read_transitions
from bora_trainer.data.bag_io import read_bag
from bora_trainer.data.replay import ChunkReplayBuffer, ReplaySpec, chunk_returns
from bora_trainer.online import rounds as R
from bora_trainer.online.config import TrainerConfig
from bora_trainer.online.episode_ends import EpisodeEnds
from bora_trainer.online.loop import OnlineLoop
from bora_trainer.online.source import Episode

log = logging.getLogger("bora_trainer.online")

REPLAY_FIELDS = (
    "z",
    "proprio",
    "vla",
    "base",
    "reward",
    "done",
    "mask",
    "is_intervention",
    "beta",
    "next_z",
    "next_proprio",
    "next_vla",
    "next_base",
    "next_valid",
    "n_steps",
    "episode",
    "step",
)


def find_bags(root: Path) -> list[Path]:
    """rosbag2 directories under ``root`` (directories holding a .mcap or .db3 file), sorted."""
    if not root.is_dir():
        return []
    out = set()
    for f in list(root.rglob("*.mcap")) + list(root.rglob("*.db3")):
        out.add(f.parent)
    return sorted(out)


def event_digest(bag: Path) -> str:
    """A digest of the episode events (``/bora/episode``) recorded in ``bag``, read without decoding any message
    (the bag's storage is walked, its raw bytes hashed): a live bag's episode can only become complete, and so
    ingestible, when an event of it is recorded (its outcome, or a START that a restarted recording continues)."""
    d = read_bag(bag)
    h = hashlib.sha256()
    for cid, t_ns, raw in d.messages:
        if d.connections[cid].topic == S.T_EPISODE:
            h.update(int(t_ns).to_bytes(8, "little", signed=True) + hashlib.sha256(raw).digest())
    return h.hexdigest()


def replay_rows(
    arrays: dict[str, np.ndarray], normalizer, action_clip: float = 0.0, gamma: float | None = None
) -> dict[str, np.ndarray]:
    """Replay rows of one converted episode: its transition fields and the executed action normalised, clipped to
    +-``action_clip`` (0 = off) as the simulated loop and D_offline clip theirs (``OnlineRunConfig.action_clip``).
    ``gamma``: with the Monte-Carlo ``returns`` of the episode's full ``episode_reward``/``episode_done`` (steps no
    ActionChunk covers included: data/replay.py); a conversion older than those arrays gives rows without them."""
    rows = {k: arrays[k] for k in REPLAY_FIELDS if k in arrays}  # n_steps: derived when absent
    rows["action"] = ActionProcessor(normalizer).normalize(arrays["action_physical"], action_clip)  # processor.py
    if gamma is not None and "episode_reward" in arrays and "episode_done" in arrays:
        k = np.asarray(arrays["reward"]).shape[1]
        rows["returns"] = chunk_returns(arrays["episode_reward"], arrays["episode_done"], arrays["step"], k, gamma)
        rows["returns_gamma"] = np.full(len(rows["returns"]), gamma, np.float64)
    return rows


class RosEpisodes:
    """Complete episodes of the recordings in ``cfg.recordings`` (module docstring)."""

    def __init__(self, cfg: TrainerConfig, clock=time.monotonic):
        self.recordings = Path(cfg.recordings)
        self.converted = Path(cfg.state_dir) / "converted"
        self.rewards = cfg.rewards
        self.action_clip = cfg.action_clip
        self.gamma = cfg.online.gamma  # of the rows' stored Monte-Carlo returns
        self.late_message_wait_s = cfg.late_message_wait_s
        self._clock = clock
        self._bag_sizes: dict[str, int] = {}
        self._gappy_since: dict[str, float] = {}  # content hash -> when a live bag's version with gaps was seen
        self._gappy_seen: set[str] = set()  # the hashes of those looked at in this poll (the rest are dropped)
        self._round = 0
        self._no_outcome: dict[str, list[tuple[str, int, int]]] = {}  # bag -> (session, id, steps) without outcome
        self._failed: dict[str, str] = {}  # bag -> why its last conversion failed (retried when it changes)
        self._returned: dict[str, str] = {}  # content hash -> the bag key of an episode poll returned this round
        self._events: dict[str, str] = {}  # bag key -> event_digest of a live bag when it was last converted
        self._last_session: dict[str, str] = {}  # bag -> the bridge session of its last recorded episode
        self._ends: set[tuple[str, int]] = set()  # (session, id) of every episode whose outcome a recording holds
        self.episode_ends: EpisodeEnds | None = None  # set by the live trainer node (module docstring)

    def poll(self, loop: OnlineLoop, wanted: int) -> list[Episode]:
        if loop.round != self._round:
            # rescan the bags of episodes returned but not ingested (the round was full: they go into this one);
            # a bag whose episodes all went in, or were skipped or deferred for good, is not read again
            again = {key for h, key in self._returned.items() if h not in loop.ingested_hashes}
            self._bag_sizes = {k: v for k, v in self._bag_sizes.items() if k not in again}
            self._events = {k: v for k, v in self._events.items() if k not in again}
            self._round, self._returned = loop.round, {}
        out: list[Episode] = []
        self._gappy_seen = set()
        bags = find_bags(self.recordings)
        for bag in bags:
            closed = (bag / "metadata.yaml").exists()
            size = sum(f.stat().st_size for f in bag.iterdir() if f.is_file())
            key = f"{bag}|{closed}"
            if self._bag_sizes.get(key) == size:
                continue
            try:
                events = None if closed else event_digest(bag)
                if events is not None and self._events.get(key) == events:
                    self._bag_sizes[key] = size  # it grew, but no episode of it can have become complete
                    continue
                rep = convert(
                    [bag],
                    self.converted,
                    ConvertConfig(rewards=self.rewards, transitions_only=True, only_complete=not closed,
                                  raise_if_none_converted=False),
                )
            except Exception as e:  # noqa: BLE001 - a bad recording must not stop the trainer
                log.error("cannot convert %s: %s", bag, e)
                self._bag_sizes[key] = size
                self._failed[str(bag)] = f"{type(e).__name__}: {e}".splitlines()[0]
                continue
            self._bag_sizes[key] = size
            if events is not None:
                self._events[key] = events
            self._failed.pop(str(bag), None)
            self._no_outcome[str(bag)] = [
                (e.session_id, e.source_episode_id, e.num_steps) for e in rep.episodes if e.outcome is None
            ]
            if rep.episodes and rep.episodes[-1].session_id:
                self._last_session[str(bag)] = str(rep.episodes[-1].session_id)
            self._ends |= {(str(e.session_id), int(e.source_episode_id)) for e in rep.episodes if e.outcome}
            waiting = len(self._gappy_seen)
            for ep in rep.episodes:
                if ep.status in ("failed", "no-commands"):
                    self._unusable(loop, ep, live=not closed)
                    continue
                if ep.status == "incomplete-skipped" or ep.episode_id is None:
                    continue
                if ep.content_hash not in loop.ingested_hashes:
                    got = self._episode(loop, ep.episode_id, live=not closed)
                    if got is not None:
                        out.append(got)
                        self._returned[got.info["content_hash"]] = key
            if len(self._gappy_seen) > waiting:
                # an episode of this bag waits for late messages: look again next poll, even if the bag no longer
                # grows. Keyed by the converted version's hash, not the report's: a later read that adds messages
                # but no recorded step is "kept-previous" (the report's hash is new, the converted file's is not)
                self._bag_sizes.pop(key, None)
                self._events.pop(key, None)
        # a version still waiting is looked at in every poll (its bag is re-read), so an entry not looked at in
        # this one belongs to a version that was ingested or replaced by a more complete one
        self._gappy_since = {h: t for h, t in self._gappy_since.items() if h in self._gappy_seen}
        # the bridge session running now: that of the newest recorded episode (the round gate counts its ids only)
        newest = [self._last_session[str(b)] for b in bags if str(b) in self._last_session]
        if newest:
            loop.current_session = newest[-1]
        loop.ended_keys = set(self._ends)  # the gate counts those not yet taken in as still to come
        self._skip_unrecorded(loop)
        return out

    def _skip_unrecorded(self, loop: OnlineLoop) -> None:
        """Skip the episodes that ended while nothing recorded their outcome (module docstring); none while a
        recording cannot be converted (it may hold their outcomes)."""
        if self.episode_ends is None or self._failed:
            return
        seen = lambda sess: R.last_seen_in_session(loop.ledger, loop.skipped_ids, sess)  # noqa: E731
        for sess, i in self.episode_ends.unrecorded(seen, self._ends | loop.ingested_keys):
            info = {"content_hash": f"unrecorded:{sess}:{i}", "source_episode_id": i, "session_id": sess}
            loop.skip(info, f"(session {sess[:12]}, id {i}) ended but no recording holds its outcome (it ended while "
                      "the trainer was down, or its outcome was not recorded); its recorded part, if any, stays in "
                      "the recordings")

    def unfinished(self, loop: OnlineLoop) -> list[str]:
        """The recordings' episodes without an outcome event that the loop has neither ingested nor skipped, one
        line each (running ones, and any whose outcome was lost), then each recording whose last conversion failed
        (none of its episodes can be read until it changes): what a stalled round waits for (``rounds.StallWatch``).
        A skipped one (e.g. ended while nothing recorded its outcome: :meth:`_skip_unrecorded`) is left out: the
        round no longer waits for it. The steps are those of the bag's last conversion; the next poll converts the
        bags again, so a later call is current."""
        self._events = {}
        out, taken = {}, loop.ingested_keys | loop.skipped_keys
        for sess, src, steps in (e for eps in self._no_outcome.values() for e in eps):
            if (str(sess), int(src)) not in taken and (sess, src) not in out:
                out[(sess, src)] = f"id {src} of session {str(sess)[:12]} ({steps} steps recorded, no outcome event)"
        # ended but not taken in below the last id taken in: the round gate counts them as still to come
        # (rounds.waiting_below), so one that never went in would hold the round: said here, not silent
        last = loop.last_seen_id
        for sess, src in loop.ended_keys - taken:
            if sess == loop.current_session and int(src) <= last and (sess, src) not in out:
                out[(sess, src)] = (f"id {src} of session {str(sess)[:12]} (ended, not yet taken in: the round gate "
                                    "counts it as still to come)")
        lines = [out[k] for k in sorted(out, key=lambda k: (str(k[0]), int(k[1])))]
        return lines + [f"recording {b} cannot be converted ({why})" for b, why in sorted(self._failed.items())]

    def _episode(self, loop: OnlineLoop, converted_id: int, live: bool = False) -> Episode | None:
        """The converted episode if it is complete; else None (skipped for good, or waiting)."""
        arrays, info = read_transitions(self.converted, converted_id)
        if info["content_hash"] in loop.ingested_hashes:
            return None
        if live and not self._settled(loop, info):
            return None
        if not info.get("has_transitions"):
            loop.skip(info, "has no ActionChunk (not a policy rollout)")
            return None
        if info.get("start_recorded") is False:
            # its beginning is missing: its data stays in the bag, but it is not one of the round's
            # episodes and its return would be wrong
            loop.skip(info, "its START was not recorded (the recording began mid-episode)")
            return None
        if info.get("outcome_missing") or info.get("outcome") is None:
            # unfinished: waits for a more complete version; not a skip for the gate
            loop.defer(
                info,
                f"no outcome (session {info.get('session_id')}, id {info.get('source_episode_id')}: its "
                "recording stopped mid-episode): not ingested until a continuation of the recording completes it",
            )
            return None
        return Episode(replay_rows(arrays, loop.normalizer, self.action_clip, self.gamma), info)

    def _unusable(self, loop: OnlineLoop, ep, live: bool) -> None:
        """An episode the converter could not make into one (no ExecutedCommand recorded: it ended before its first
        command, as an abort at step 0 through the graph does; or a conversion error, e.g. an outcome at step 0).
        Once it has ended (an outcome) it is skipped, so the round gate lets another episode replace it; otherwise
        the round's last episode would hold the round and the robot at the gate for good. From a live bag only
        after ``late_message_wait_s`` (its commands could still be on their way)."""
        if ep.outcome is None or (str(ep.session_id), int(ep.source_episode_id)) in loop.ingested_keys:
            return
        h = f"unusable:{ep.session_id}:{ep.source_episode_id}"
        if live and not self._waited_for_late_messages(h):
            return
        why = "no ExecutedCommand recorded" if ep.status == "no-commands" else "; ".join(ep.warnings)
        info = {"content_hash": h, "source_episode_id": ep.source_episode_id, "session_id": str(ep.session_id or "")}
        loop.skip(info, f"(session {str(ep.session_id)[:12]}, id {ep.source_episode_id}) ended ({ep.outcome}) "
                  f"but cannot be converted: {why}")

    def _waited_for_late_messages(self, key: str) -> bool:
        """Whether ``late_message_wait_s`` has passed since the version ``key`` of a live bag's episode was first seen
        incomplete; while not, its bag is read again at the next poll (``_gappy_seen``)."""
        since = self._gappy_since.setdefault(key, self._clock())
        if self._clock() - since >= self.late_message_wait_s:
            return True
        self._gappy_seen.add(key)
        return False

    def _settled(self, loop: OnlineLoop, info: dict) -> bool:
        """Whether a live bag's version of an episode may be ingested: its last step's command is recorded (a gap
        before it is final: one arbiter publishes the commands and DDS delivers one writer's messages in order, so
        a missing earlier one was lost, not late; in the graph every episode's step 0 has none, the policy's first
        chunk being still on its way), it has no outcome yet (the rules below defer it), or its gaps at the end
        have stayed for ``late_message_wait_s``."""
        h = info["content_hash"]
        valid, total = int(info.get("num_valid_steps", info["num_steps"])), int(info["num_steps"])
        missing = info.get("missing_steps")
        tail_recorded = missing is not None and (total - 1) not in set(missing)
        if valid >= total or tail_recorded or info.get("outcome_missing") or info.get("outcome") is None:
            return True
        if self._waited_for_late_messages(h):
            return True
        loop.defer(
            info,
            f"{valid} of {total} steps recorded so far (session {info.get('session_id')}, id "
            f"{info.get('source_episode_id')}; the recording is live): waits up to {self.late_message_wait_s:g} s "
            "for late messages",
        )
        return False


def ros_loop(cfg: TrainerConfig, announce=None, **kw) -> OnlineLoop:
    """The one online loop fed by the recordings of ``cfg`` (what the trainer node runs)."""
    return OnlineLoop(cfg, RosEpisodes(cfg), announce=announce, **kw)


def build_offline_buffer(
    converted_dir: str | Path, out: str | Path, normalizer, episodes: list[int] | None = None,
    gamma: float | None = None,
) -> ChunkReplayBuffer:
    """D_offline from converted episodes (``bora bag convert`` output): a persisted ChunkReplayBuffer whose spec
    records the episodes' reward definition (``None`` when a conversion predates recording it); episodes
    converted with different definitions are refused (one reward scale per buffer). ``gamma``: :func:`replay_rows`."""
    tmeta = json.loads((Path(converted_dir) / "transitions" / "meta.json").read_text())
    ids = (
        episodes
        if episodes is not None
        else sorted(int(p.stem.split("_")[1]) for p in (Path(converted_dir) / "transitions").glob("episode_*.json"))
    )
    loaded = [read_transitions(converted_dir, eid) for eid in ids]
    defs = {json.dumps(info.get("reward_config"), sort_keys=True) for arrays, info in loaded if arrays}
    if len(defs) > 1:
        raise ValueError(
            f"{converted_dir}: its episodes were converted with {len(defs)} reward definitions ({sorted(defs)}): "
            "expected one (re-convert them with one --rewards config)"
        )
    reward = json.loads(defs.pop()) if defs else None
    spec = ReplaySpec(
        tmeta["z_dim"], tmeta["state_dim"], tmeta["action_dim"], tmeta["chunk_size"], normalizer.version, reward
    )
    buf = ChunkReplayBuffer(spec, out)
    for arrays, _info in loaded:
        if arrays:
            buf.add(replay_rows(arrays, normalizer, gamma=gamma))
    buf.flush()
    return buf
