"""The online trainer's loop without ROS: recordings -> online buffer -> RLPD updates -> checkpoints.

:class:`OnlineTrainerLoop` (driven by ``nodes/trainer_node.py``, testable without rclpy):

1. **Watch** ``recordings``: every rosbag2 directory in it (a bag being recorded included) is
   converted with :func:`bora_trainer.data.bag_convert.convert` (transitions only) into
   ``STATE/converted``; while a bag is still open (no ``metadata.yaml``) only episodes with an
   outcome are converted, a closed bag gives its unfinished episodes too (flagged, no terminal reward).
   An episode is named by (``session_id``, bridge episode id); the converter reads every bag that holds
   a part of it (a recorder killed and restarted mid-episode: ``OUT/pending.json``) and replaces a
   converted version by a more complete one under the same id (``OUT/ledger.jsonl``).
   **Rule (ours): an episode is ingested once, when it is complete** (an outcome and a recorded START);
   an unfinished one (no outcome: the recording stopped mid-episode) waits in ``STATE/converted`` until
   the recording's continuation completes it, so its rows never enter the buffer twice (a partial version,
   then the merged one). Once (session, episode) is in the ledger, a later differing version of it is not
   ingested (a warning): updates may already have used its rows, so they are not replaced.
2. **Ingest** each converted episode not yet in the ledger: executed actions normalised with the
   run's :class:`Normalizer`, rows appended to the on-disk :class:`ChunkReplayBuffer`
   ``STATE/online_buffer`` and flushed as ONE shard; then the ledger ``STATE/ingested.json``
   (shard -> episode content hash) is replaced atomically. A shard the ledger does not name (a
   crash between the two writes) is deleted at start-up, so its episode is ingested again exactly
   once: no ingested data is lost and no episode is ingested twice.
3. **Update** (Algorithm 1 lines 24-27): once the online buffer holds ``n_start`` rows, RLPD
   updates (:class:`OnlineLearner`, 1:1 offline/online batches from :class:`MixedSampler`) run until
   ``update_step`` reaches ``utd_ratio * ingested control steps`` (one update per environment step
   in the paper), capped by ``max_updates`` (Table 3: 15k).
4. **Checkpoint** every ``checkpoint_every`` updates, at the end of a round and when the update
   budget is reached: :func:`bora_trainer.checkpoint.save_checkpoint` (temporary directory, fsync,
   rename, sha256 per file, then ``latest``); the announcement (path of ``residual.safetensors``,
   its sha256, round, update_step) goes to the callback the node turns into ``CheckpointInfo``.
5. **Rounds** (Algorithm 1's outer iteration, lines 8-12; Table 4: 10 online trajectories per round):
   round r ends when ``episodes_per_round`` episodes of it are ingested and its update budget
   (``utd_ratio`` x control steps ingested in round r, capped by ``online.max_updates`` per round) is
   done. Then (a) round r's final stack is archived in ``STATE/rounds/round_RR`` (kept, never pruned)
   and announced with round r; (b) its residual is frozen with lambda_r = its final alpha_t and folded
   into the base, ``B_{r+1} = B_r + lambda_r pi_r(s, B_r, z)``; (c) a fresh residual (seed
   ``online.seed + r``) and a fresh :class:`OnlineLearner` start, inheriting round r's critic (the
   offline critic stays the regulariser's anchor), as ``bora train online`` does; (d) the buffers'
   base chunks are recomputed (rule below); (e) the round r+1 checkpoint (frozen + fresh residual) is
   written at the same ``update_step`` and announced. ``update_step`` counts all rounds' updates.

Checkpoints hold ``residual`` (the current actor, for resume and the single-file form), ``residual_1
.. residual_R`` (R = round, the last = current) and ``meta.json`` ``extra`` =
:func:`bora_policy.models.residual.residual_checkpoint_extra` (lambdas: frozen ones' final alpha, the
current one's alpha_t) plus the loop's state. Announced path: round 1 (no frozen residual) the file
``residual.safetensors`` (alpha in its safetensors metadata), from round 2 on the checkpoint DIRECTORY
(the multi-round form ``PolicyRunner.load_residual`` folds), with the sha256 of ``residual_R.safetensors``.

Rebase rule (which base chunks may be recomputed): an ActionChunk carries ``base_norm``, the base the
policy actually used (its ``vla`` and ``base`` fields both hold it), not the pure VLA chunk. A row
recorded while round r' was deployed therefore stores ``B_{r'}``; in round r its base is recomputed as
``B_r = fold(frozen residuals r' .. r-1, starting from the stored chunk)``, never re-folding the
residuals it already contains. D_offline rows count as r' = 1 (recorded without residuals: their chunk is
the pure A_VLA, so all frozen residuals are folded, as ``ChunkReplayBuffer.rebase`` does in
``bora train online``); online rows take r' = the round in which they were ingested (ledger ``round``).
Rows of round r are never changed in round r. The buffers on disk keep the recorded chunks; the
recomputation is redone in memory at every round start and on resume. Known limit: an episode recorded
before the policy loaded round r's checkpoint but ingested in round r is treated as a round-r row.

Resume: the learner (weights, optimisers, ``update_step``), the round and the frozen residuals with
their lambdas come from ``RUN/latest``; the buffer from its shards (then rebased as above). A kill at
any moment therefore resumes at the last checkpoint with the same update count (updates after it are
redone on the same data; a kill inside a round change redoes the change).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bora_policy.common.rewards import RewardConfig
from bora_policy.models.residual import (
    FrozenResidual,
    ResidualChunkActor,
    ResidualPolicy,
    residual_checkpoint_extra,
)
from bora_trainer.algorithms.online import OnlineConfig
from bora_trainer.checkpoint import atomic_write_text, latest_checkpoint, load_checkpoint, save_checkpoint
from bora_trainer.data.bag_convert import ConvertConfig, convert, read_transitions
from bora_trainer.data.replay import ChunkReplayBuffer, ReplaySpec
from bora_trainer.rounds import episode_gate, intervened_steps, round_table

log = logging.getLogger("bora_trainer.ingest")

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


@dataclass
class TrainerConfig:
    """Trainer node / loop settings (online phase defaults: Table 3 in ``online``; the rest ours).

    recordings: directory watched for rosbag2 recordings. state_dir: where the buffer, ledger,
    converted episodes and checkpoints (``state_dir/run``) live. offline_buffer: D_offline, a
    ChunkReplayBuffer directory (1:1 RLPD batches). offline_run: offline run directory whose latest
    checkpoint holds the ``critic`` (critic inheritance); empty = a fresh critic (demos, tests).
    normalizer: normalizer.json of the deployed policy (empty: ``offline_run/normalizer.json``).
    utd_ratio: updates per ingested control step (Algorithm 1: 1). checkpoint_every: updates between
    checkpoints. episodes_per_round: M of Algorithm 1 (Table 4: 10); a round ends once M episodes of it
    are ingested and its updates (``utd_ratio`` x its control steps, at most ``online.max_updates``
    per round) are done. poll_interval_s: watch period. rounds: the run's number of rounds (0 = no
    limit): once they are done the round gate (rounds.py) lets no further episode start.
    """

    recordings: str = "recordings"
    state_dir: str = "runs/online"
    offline_buffer: str = ""
    offline_run: str = ""
    normalizer: str = ""
    utd_ratio: float = 1.0
    checkpoint_every: int = 500
    episodes_per_round: int = 10
    rounds: int = 0
    keep_checkpoints: int = 3
    poll_interval_s: float = 2.0
    critic_hidden_dim: int = 256
    critic_pos_dim: int = 32
    device: str = ""
    rewards: RewardConfig = field(default_factory=RewardConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)

    def __post_init__(self) -> None:
        if self.utd_ratio <= 0:
            raise ValueError(f"TrainerConfig.utd_ratio must be > 0, got {self.utd_ratio}")
        if self.checkpoint_every < 1:
            raise ValueError(f"TrainerConfig.checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.rounds < 0:
            raise ValueError(f"TrainerConfig.rounds must be >= 0 (0 = no limit), got {self.rounds}")
        if self.episodes_per_round < 1:
            raise ValueError(f"TrainerConfig.episodes_per_round must be >= 1, got {self.episodes_per_round}")


@dataclass
class Announcement:
    """What a checkpoint announcement (bora_msgs/CheckpointInfo) carries."""

    path: str
    sha256: str
    round: int
    update_step: int
    kind: str = "residual"


def find_bags(root: Path) -> list[Path]:
    """rosbag2 directories under ``root`` (directories holding a .mcap or .db3 file), sorted."""
    if not root.is_dir():
        return []
    out = set()
    for f in list(root.rglob("*.mcap")) + list(root.rglob("*.db3")):
        out.add(f.parent)
    return sorted(out)


def _load_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return default


class OnlineTrainerLoop:
    """See the module docstring. ``announce`` receives an :class:`Announcement` per checkpoint."""

    def __init__(
        self,
        cfg: TrainerConfig,
        announce: Callable[[Announcement], None] | None = None,
        learner_factory: Callable[[ReplaySpec], Any] | None = None,
    ):
        from bora_policy.models.normalizer import Normalizer

        self.cfg = cfg
        self.announce = announce or (lambda a: None)
        self.state = Path(cfg.state_dir)
        self.state.mkdir(parents=True, exist_ok=True)
        self.run_dir = self.state / "run"
        self.converted = self.state / "converted"
        self.ledger_path = self.state / "ingested.json"
        if not cfg.offline_buffer:
            raise ValueError("TrainerConfig.offline_buffer is required: RLPD samples 1:1 from D_offline")
        self.offline = ChunkReplayBuffer.open(cfg.offline_buffer)
        spec = self.offline.spec
        norm_path = cfg.normalizer or (
            str(Path(cfg.offline_run) / "normalizer.json") if cfg.offline_run else ""
        )
        if not norm_path:
            raise ValueError("TrainerConfig.normalizer (or offline_run with a normalizer.json) is required")
        self.normalizer = Normalizer.load(norm_path)
        if spec.normalizer_version != self.normalizer.version:
            raise ValueError(
                f"offline buffer {cfg.offline_buffer} uses normaliser {spec.normalizer_version!r}, "
                f"the run's is {self.normalizer.version!r}"
            )
        self.spec = spec
        # --- the online buffer and its ledger (crash consistency: see module docstring)
        self.ledger: dict[str, dict] = _load_json(self.ledger_path, {})
        buf_dir = self.state / "online_buffer"
        if (buf_dir / "meta.json").exists():
            known = set(self.ledger)
            for shard in sorted(buf_dir.glob("shard_*.npz")):
                if shard.name not in known:
                    log.warning(
                        "removing %s: written but not in the ledger (crash before the ledger update)", shard
                    )
                    shard.unlink()
            self.online = ChunkReplayBuffer.open(buf_dir, expect=spec)
        else:
            self.online = ChunkReplayBuffer(spec, buf_dir)
        self.ingested_hashes = {v["content_hash"] for v in self.ledger.values()}
        self.ingested_keys = {self._episode_key(v) for v in self.ledger.values()} - {None}
        self._skipped_logged: set[str] = set()  # episodes not ingested (no chunks, no START): reported once
        self.max_skipped_id = 0  # highest bridge episode id of an episode that will never be ingested
        self._deferred_logged: set[str] = set()
        # --- round state and learner, resumed from the latest checkpoint
        self.round = 1
        self.round_start_episodes = 0
        self.round_start_updates = 0  # update_step at the start of the round (learner.step counts from 0)
        self.round_start_steps = 0  # ingested control steps at the start of the round
        self.frozen: list[FrozenResidual] = []  # residuals of rounds < self.round, lambda = final alpha
        self.last_checkpoint: Announcement | None = None
        self._factory = learner_factory or self._default_learner
        ck = latest_checkpoint(self.run_dir) if self.run_dir.exists() else None
        data = load_checkpoint(ck) if ck is not None else None
        if data is not None:
            extra = data["meta"].get("extra", {})
            self.round = int(extra.get("round", 1))
            self.round_start_episodes = int(extra.get("round_start_episodes", 0))
            self.round_start_updates = int(extra.get("round_start_updates", 0))
            self.round_start_steps = int(extra.get("round_start_steps", 0))
        self.learner = self._factory(spec)
        if data is not None:
            ts = data["trainer_state"] or {}
            self.learner.load_state(data["modules"], ts.get("learner"))
            self.frozen = self._frozen_from_checkpoint(data)
            n = len(self.frozen) + 1
            self.last_checkpoint = self._announcement(ck, data["meta"], n, self.round, int(data["step"]))
            log.info("resumed at update %d (round %d) from %s", self.update_step, self.round, ck)
        self.resumed_at = self.update_step
        self.observe_episodes()
        self._sampler = None
        self._bag_sizes: dict[str, int] = {}
        self.rebase_buffers()

    # ------------------------------------------------------------------------ construction
    @staticmethod
    def _episode_key(info: dict) -> tuple[str, int] | None:
        """(session_id, bridge episode id) of a converted episode or ledger entry; None without a session
        (ledger entries written before sessions: those are matched by content hash only)."""
        sess = info.get("session_id")
        return (str(sess), int(info.get("source_episode_id") or 0)) if sess else None

    def _default_learner(self, spec: ReplaySpec):
        import torch

        from bora_policy.models.critic import ChunkCritic
        from bora_trainer.algorithms.online import OnlineLearner

        # round r's fresh residual: seed online.seed + r - 1 (round 1: online.seed, as before rounds)
        online = dataclasses.replace(self.cfg.online, seed=self.cfg.online.seed + self.round - 1)
        torch.manual_seed(online.seed)
        critic = ChunkCritic(
            spec.z_dim, spec.action_dim, spec.chunk_size, self.cfg.critic_hidden_dim, self.cfg.critic_pos_dim
        )
        critic_version = None
        if self.cfg.offline_run:
            off = load_checkpoint(self.cfg.offline_run)
            if "critic" not in off["modules"]:
                raise ValueError(f"{self.cfg.offline_run}: the latest checkpoint has no 'critic' module")
            critic.load_state_dict(off["modules"]["critic"])
            critic_version = off["meta"].get("extra", {}).get("normalizer_version", spec.normalizer_version)
        return OnlineLearner(
            critic,
            spec.state_dim,
            spec.action_dim,
            spec.chunk_size,
            spec.z_dim,
            online,
            normalizer_version=spec.normalizer_version,
            critic_normalizer_version=critic_version,
            device=self.cfg.device or None,
        )

    # ------------------------------------------------------------------------ properties
    @property
    def update_step(self) -> int:
        """Updates of all rounds (the learner's own ``step`` restarts at 0 with each round's residual)."""
        return int(self.round_start_updates + self.learner.step)

    @property
    def ingested_steps(self) -> int:
        return int(sum(v["num_steps"] for v in self.ledger.values()))

    @property
    def num_episodes(self) -> int:
        return len(self.ledger)

    @property
    def in_round(self) -> int:
        """Episodes ingested into the current round (at most ``episodes_per_round``)."""
        return self.num_episodes - self.round_start_episodes

    @property
    def last_seen_id(self) -> int:
        """Highest bridge episode id taken in: ingested, or finished but never to be ingested."""
        ids = [int(v.get("source_episode_id", 0)) for v in self.ledger.values()]
        return max([self.max_skipped_id, *ids])

    def episode_gate(self, open_: bool = True) -> int:
        """Highest bridge episode id that may start now (:func:`bora_trainer.rounds.episode_gate`);
        closed once the configured ``rounds`` are done."""
        done = bool(self.cfg.rounds) and self.round > self.cfg.rounds
        return episode_gate(self.last_seen_id, self.in_round, self.cfg.episodes_per_round, open_ and not done)

    def update_budget(self) -> int:
        """update_step to reach: this round's ``utd_ratio`` x its ingested control steps, at most
        ``online.max_updates`` per round (Table 3: 15k), on top of the earlier rounds' updates."""
        own = np.floor(self.cfg.utd_ratio * (self.ingested_steps - self.round_start_steps))
        return int(self.round_start_updates + min(self.cfg.online.max_updates, max(own, 0)))

    def status(self) -> dict:
        return {
            "update_step": self.update_step,
            "buffer_size": len(self.online),
            "episodes": self.num_episodes,
            "ingested_steps": self.ingested_steps,
            "round": self.round,
            "in_round": self.in_round,
            "rounds": round_table(self.ledger),
            "frozen_lambdas": [float(f.lam) for f in self.frozen],
            "round_start_updates": self.round_start_updates,
            "budget": self.update_budget(),
            "resumed_at": self.resumed_at,
            "last_checkpoint": None if self.last_checkpoint is None else self.last_checkpoint.__dict__,
        }

    def write_status(self) -> None:
        atomic_write_text(self.state / "status.json", json.dumps(self.status(), indent=2))

    # ------------------------------------------------------------------------ 1-2: watch and ingest
    def scan(self) -> int:
        """Convert new recordings and ingest their new episodes; returns the number ingested."""
        n = 0
        for bag in find_bags(Path(self.cfg.recordings)):
            closed = (bag / "metadata.yaml").exists()
            size = sum(f.stat().st_size for f in bag.iterdir() if f.is_file())
            key = f"{bag}|{closed}"
            if self._bag_sizes.get(key) == size:
                continue
            try:
                rep = convert(
                    [bag],
                    self.converted,
                    ConvertConfig(rewards=self.cfg.rewards, transitions_only=True, only_complete=not closed),
                )
            except Exception as e:  # noqa: BLE001 - a bad recording must not stop the trainer
                log.error("cannot convert %s: %s", bag, e)
                self._bag_sizes[key] = size
                continue
            self._bag_sizes[key] = size
            for ep in rep.episodes:
                if ep.status == "incomplete-skipped" or ep.episode_id is None:
                    continue
                if ep.content_hash not in self.ingested_hashes:
                    n += self.ingest(ep.episode_id)
        return n

    def ingest(self, converted_id: int) -> int:
        """Append one converted episode to the online buffer (one shard) and record it in the ledger."""
        arrays, info = read_transitions(self.converted, converted_id)
        h = info["content_hash"]
        if h in self.ingested_hashes:
            return 0
        skip = ""
        if not info.get("has_transitions"):
            skip = "has no ActionChunk (not a policy rollout)"
        elif info.get("start_recorded") is False:
            # its beginning is missing (the live recording started mid-episode: e.g. the trainer was
            # started or restarted during it): its data stays in the bag, but it is not one of the round's
            # episodes and its return would be wrong
            skip = "its START was not recorded (the recording began mid-episode)"
        elif info.get("outcome_missing") or info.get("outcome") is None:
            # unfinished (module docstring, item 1): waits for a more complete version; not a skip for the gate
            if h not in self._deferred_logged:
                self._deferred_logged.add(h)
                log.warning(
                    "episode %s (session %s, id %s) has no outcome (its recording stopped mid-episode): "
                    "not ingested until a continuation of the recording completes it",
                    h[:12],
                    info.get("session_id"),
                    info.get("source_episode_id"),
                )
            return 0
        elif self._episode_key(info) is not None and self._episode_key(info) in self.ingested_keys:
            skip = "is another version of an episode already ingested (kept as ingested)"
        if skip:
            self.max_skipped_id = max(self.max_skipped_id, int(info.get("source_episode_id") or 0))
            if h not in self._skipped_logged:  # a live bag is converted again as it grows: say it once
                self._skipped_logged.add(h)
                log.warning("episode %s %s: not ingested", h[:12], skip)
            return 0
        vers = info.get("normalizer_versions", [])
        if vers and vers != [self.normalizer.version]:
            self.max_skipped_id = max(self.max_skipped_id, int(info.get("source_episode_id") or 0))
            log.error(
                "episode %s was recorded with normaliser(s) %s, the run's is %s: not ingested",
                h[:12],
                vers,
                self.normalizer.version,
            )
            return 0
        if self.in_round >= self.cfg.episodes_per_round:
            # the round is full (rounds.py): this episode waits and is counted in the next round
            if h not in self._deferred_logged:
                self._deferred_logged.add(h)
                log.info("episode %s: round %d is full; it goes into round %d", h[:12], self.round, self.round + 1)
            return 0
        rows = {k: arrays[k] for k in REPLAY_FIELDS if k in arrays}  # n_steps: derived when absent
        rows["action"] = self.normalizer.normalize_action(arrays["action_physical"])
        rows["episode"] = np.full(len(rows["z"]), self.num_episodes, np.int64)
        self.online.add(rows)
        shard = self.online.flush()
        entry = {
            "content_hash": h,
            "num_steps": int(info["num_steps"]),
            "rows": int(len(rows["z"])),
            "outcome": info.get("outcome"),
            "round": self.round,
            "intervened_steps": intervened_steps(rows),
            "source_episode_id": int(info.get("source_episode_id") or 0),
            "session_id": str(info.get("session_id") or ""),
            "time": time.time(),
        }
        self.ledger[shard.name] = entry
        atomic_write_text(self.ledger_path, json.dumps(self.ledger, indent=1))
        self.ingested_hashes.add(h)
        if self._episode_key(entry) is not None:
            self.ingested_keys.add(self._episode_key(entry))
        self.observe_episodes([self.num_episodes - 1])
        log.info(
            "ingested episode %s: %d chunk transitions (buffer %d)", h[:12], entry["rows"], len(self.online)
        )
        return 1

    # ------------------------------------------------------------------------ 3-5: update, checkpoint, rounds
    def _sampler_for(self):
        from bora_trainer.data.replay import MixedSampler

        if self._sampler is None:
            self._sampler = MixedSampler(
                self.offline,
                self.online,
                self.cfg.online.batch_size,
                seed=self.cfg.online.seed + self.update_step,
                device=self.learner.device,
            )
        return self._sampler

    def train(self, max_updates: int | None = None, should_stop: Callable[[], bool] | None = None) -> int:
        """Run updates up to the budget (or ``max_updates`` of them); returns how many ran."""
        if len(self.online) < self.cfg.online.n_start:
            return 0
        done = 0
        budget = self.update_budget()
        prog = getattr(self, "_progress", None)
        if prog is None or prog.name != f"online trainer round {self.round}":
            from bora_trainer.progress import ProgressLog  # updates/s, losses, ETA at a steady interval

            prog = self._progress = ProgressLog(f"online trainer round {self.round}", budget, start=self.update_step)
        prog.total = budget  # the budget grows with every ingested episode
        while self.update_step < budget and (max_updates is None or done < max_updates):
            if should_stop is not None and should_stop():
                break
            info = self.learner.update(self._sampler_for().sample())
            done += 1
            prog.update(self.update_step, info)
            if self.update_step % self.cfg.checkpoint_every == 0:
                self.checkpoint()
        if done and self.update_step >= budget:
            self.checkpoint()
        self.maybe_end_round()
        return done

    def maybe_end_round(self) -> bool:
        """End the round when its episodes and updates are done (module docstring, item 5)."""
        if not (
            self.num_episodes - self.round_start_episodes >= self.cfg.episodes_per_round
            and self.update_step >= self.update_budget()
        ):
            return False
        self.checkpoint()  # RUN/latest = round r's final state (resume redoes the steps below)
        final = self._save_round_final()
        rt = [r for r in round_table(self.ledger) if r["round"] == self.round]
        log.info(
            "round %d done: %d episodes, %d control steps (%d intervened), %d updates, alpha %.4f, checkpoint %s",
            self.round,
            self.num_episodes - self.round_start_episodes,
            rt[0]["steps"] if rt else 0,
            rt[0]["intervened_steps"] if rt else 0,
            self.update_step,
            self.learner.alpha(),
            final.path,
        )
        self._start_next_round()
        self.checkpoint()
        return True

    # ------------------------------------------------------------------------ rounds: freeze, fold, rebase
    def _start_next_round(self) -> None:
        """Algorithm 1 lines 8-12: freeze pi_r with lambda_r = its final alpha_t, fresh pi_{r+1}."""
        old = self.learner
        actor = copy.deepcopy(old.actor).eval().requires_grad_(False)
        self.frozen = self.frozen + [FrozenResidual(actor, float(old.alpha()))]
        self.round_start_updates = self.update_step
        self.round_start_episodes = self.num_episodes
        self.round_start_steps = self.ingested_steps
        self.round += 1
        self._bag_sizes = {}  # rescan: episodes that waited for this round are ingested now
        new = self._factory(self.spec)  # fresh residual and optimisers, anchor = the offline critic
        old_mods = old.modules()
        for name, m in new.modules().items():  # critic inheritance from round r (bora train online)
            if name != "residual" and name in old_mods:
                m.load_state_dict(old_mods[name].state_dict())
        self.learner = new
        self.observe_episodes()
        self._sampler = None
        self.rebase_buffers()

    def observe_episodes(self, episodes: list[int] | None = None) -> None:
        """Tell the learner's objective the outcome and takeover steps of ingested episodes (all, or
        ``episodes``): HABC labels online rows by them (``observe_episode``; a no-op for the others).
        Episode ``e`` is the e-th ledger entry (shard order), as in the rows' ``episode`` field."""
        from bora_trainer.algorithms.habc_labels import episode_success
        from bora_trainer.data.replay import episode_takeovers

        entries = [self.ledger[name] for name in sorted(self.ledger)]
        if not entries:
            return
        eps = self.online.arrays()["episode"]
        for e in range(len(entries)) if episodes is None else episodes:
            rows = self.online.arrays(np.flatnonzero(eps == e))
            is_int = episode_takeovers(rows, int(entries[e]["num_steps"]))
            self.learner.objective.observe_episode(e, episode_success(entries[e]), is_int)

    def _frozen_from_checkpoint(self, data: dict) -> list[FrozenResidual]:
        """Residuals 1 .. R-1 of a checkpoint with their lambdas (empty for round 1 / old checkpoints)."""
        entries = data["meta"].get("extra", {}).get("residuals") or []
        out = []
        for e in entries[:-1]:
            if e["name"] not in data["modules"]:
                raise ValueError(f"{data['path']}: frozen residual {e['name']} in meta.json has no file")
            actor = self._new_actor()
            actor.load_state_dict(data["modules"][e["name"]])
            actor = actor.to(self.learner.device).eval().requires_grad_(False)
            out.append(FrozenResidual(actor, float(e["lambda"])))
        if len(out) != self.round - 1:
            raise ValueError(
                f"{data['path']}: round {self.round} needs {self.round - 1} frozen residual(s), "
                f"meta.json lists {len(out)}"
            )
        return out

    def _new_actor(self) -> ResidualChunkActor:
        sp = self.spec
        return ResidualChunkActor(
            sp.state_dim, sp.action_dim, sp.chunk_size, sp.z_dim, copy.deepcopy(self.learner.actor.cfg)
        )

    def _row_rounds(self) -> np.ndarray:
        """Round in which each online-buffer row was recorded (ledger ``round`` of its shard), [N]."""
        rounds = [
            np.full(int(self.ledger[name]["rows"]), int(self.ledger[name].get("round", 1)), np.int64)
            for name in sorted(self.ledger)
        ]
        out = np.concatenate(rounds) if rounds else np.zeros(0, np.int64)
        if len(out) != len(self.online):
            raise ValueError(
                f"ingested ledger lists {len(out)} rows, the online buffer holds {len(self.online)}: "
                "cannot tell which rows' base chunks may be recomputed"
            )
        return out

    def rebase_buffers(self, batch: int = 4096) -> int:
        """Recompute base chunks for the current round (the rebase rule in the module docstring).

        Returns the number of rows changed. Offline rows: all frozen residuals folded onto their stored
        (pure VLA) chunk; online rows recorded in round r' < current: residuals r' .. current-1 folded
        onto their stored B_{r'}; rows of the current round: unchanged.
        """
        if not self.frozen:
            return 0
        from bora_trainer.train_online import rebase_fn

        dev = self.learner.device
        full = ResidualPolicy.from_normalizer(self.normalizer, self.frozen).to(dev)
        self.offline.rebase(rebase_fn(full, dev), batch)
        n = len(self.offline)
        rounds = self._row_rounds()
        for r_rec in range(1, self.round):
            idx = np.flatnonzero(rounds == r_rec)
            if not idx.size:
                continue
            pol = ResidualPolicy.from_normalizer(self.normalizer, self.frozen[r_rec - 1 :]).to(dev)
            fn = rebase_fn(pol, dev)
            # contiguous runs of rows (shards are whole episodes): write through the buffer's views
            cuts = np.flatnonzero(np.diff(idx) != 1) + 1
            for run in np.split(idx, cuts):
                for s0 in range(int(run[0]), int(run[-1]) + 1, batch):
                    d = self.online.arrays(slice(s0, min(int(run[-1]) + 1, s0 + batch)))
                    d["base"][:] = fn(d["proprio"], d["vla"], d["z"])
                    d["next_base"][:] = fn(d["next_proprio"], d["next_vla"], d["next_z"])
            n += idx.size
        log.info(
            "round %d: base chunks recomputed for %d rows (lambdas %s)",
            self.round,
            n,
            [round(f.lam, 4) for f in self.frozen],
        )
        return n

    # ------------------------------------------------------------------------ checkpoints
    def _stack(self) -> list[FrozenResidual]:
        """frozen residuals + the current one with its alpha_t (the deployed stack)."""
        return self.frozen + [FrozenResidual(self.learner.actor, float(self.learner.alpha()))]

    def _stack_modules(self) -> tuple[dict, dict]:
        mods, meta = {}, {}
        for i, f in enumerate(self._stack()):
            mods[f"residual_{i + 1}"] = f.actor.state_dict()
            meta[f"residual_{i + 1}"] = {"lambda": repr(float(f.lam))}
        return mods, meta

    def _extra(self) -> dict:
        extra = residual_checkpoint_extra(self._stack(), self.normalizer.version)
        extra.update(
            {
                "round": self.round,
                "round_start_episodes": self.round_start_episodes,
                "round_start_updates": self.round_start_updates,
                "round_start_steps": self.round_start_steps,
                "episodes": self.num_episodes,
                "alpha": float(self.learner.alpha()),
            }
        )
        return extra

    def _residual_header(self) -> dict[str, str]:
        """Safetensors header of the current residual: its blend weight alpha_t (the policy node applies
        it on hot reload, Algorithm 1 line 15) and the normaliser it was trained with (checked there)."""
        return {"alpha": repr(float(self.learner.alpha())), "normalizer_version": self.normalizer.version}

    @staticmethod
    def _announcement(path: Path, meta: dict, n_residuals: int, rnd: int, step: int) -> Announcement:
        """Round 1: ``residual.safetensors`` (single-file form); later: the checkpoint directory."""
        if n_residuals <= 1:
            f = "residual.safetensors"
            return Announcement(str((path / f).resolve()), meta["files"].get(f, ""), rnd, step)
        last = f"residual_{n_residuals}.safetensors"
        return Announcement(str(path.resolve()), meta["files"][last], rnd, step)

    def _save_round_final(self) -> Announcement:
        """Archive round r's final stack (+ critic) in ``STATE/rounds/round_RR`` and announce it."""
        mods, meta = self._stack_modules()
        mods["residual"] = self.learner.actor.state_dict()
        meta["residual"] = self._residual_header()
        mods["critic"] = self.learner.critic.state_dict()
        path = save_checkpoint(
            self.state / "rounds" / f"round_{self.round:02d}",
            self.update_step,
            mods,
            extra=self._extra(),
            keep_last=None,
            metadata=meta,
        )
        m = json.loads((path / "meta.json").read_text())
        ann = self._announcement(path, m, len(self.frozen) + 1, self.round, self.update_step)
        self.announce(ann)
        return ann

    def checkpoint(self) -> Announcement:
        if (
            self.last_checkpoint is not None
            and self.last_checkpoint.update_step == self.update_step
            and self.last_checkpoint.round == self.round
        ):
            return self.last_checkpoint
        mods, meta = self._stack_modules()
        meta["residual"] = self._residual_header()
        path = save_checkpoint(
            self.run_dir,
            self.update_step,
            {**self.learner.state_dicts(), **mods},
            trainer_state={"learner": self.learner.trainer_state()},
            extra=self._extra(),
            keep_last=self.cfg.keep_checkpoints,
            metadata=meta,
        )
        m = json.loads((path / "meta.json").read_text())
        ann = self._announcement(path, m, len(self.frozen) + 1, self.round, self.update_step)
        self.last_checkpoint = ann
        self.announce(ann)
        self.write_status()
        return ann

    def step(self, should_stop: Callable[[], bool] | None = None, max_updates: int | None = None) -> dict:
        """One watch -> ingest -> train iteration (the node calls this in its loop)."""
        n = self.scan()
        u = self.train(max_updates=max_updates, should_stop=should_stop)
        self.write_status()
        return {"ingested": n, "updates": u, **self.status()}


def _asdict(x: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x


def build_offline_buffer(
    converted_dir: str | Path, out: str | Path, normalizer, episodes: list[int] | None = None
) -> ChunkReplayBuffer:
    """D_offline from converted episodes (``bora bag convert`` output): a persisted ChunkReplayBuffer."""
    tmeta = json.loads((Path(converted_dir) / "transitions" / "meta.json").read_text())
    spec = ReplaySpec(
        tmeta["z_dim"], tmeta["state_dim"], tmeta["action_dim"], tmeta["chunk_size"], normalizer.version
    )
    buf = ChunkReplayBuffer(spec, out)
    ids = (
        episodes
        if episodes is not None
        else sorted(
            int(p.stem.split("_")[1]) for p in (Path(converted_dir) / "transitions").glob("episode_*.json")
        )
    )
    for eid in ids:
        arrays, info = read_transitions(converted_dir, eid)
        if not arrays:
            continue
        rows = {k: arrays[k] for k in REPLAY_FIELDS if k in arrays}  # n_steps: derived when absent
        rows["action"] = normalizer.normalize_action(arrays["action_physical"])
        buf.add(rows)
    buf.flush()
    return buf
