"""The ONE online loop (Sec. 3.2, Algorithm 1 multi-round) for both environments.

:class:`OnlineLoop` takes complete episodes from an :class:`EpisodeSource` - the in-process simulated
robot (:mod:`bora_trainer.online.env_sim`) or recordings of the ROS graph
(:mod:`bora_trainer.online.env_ros`, fed by ``nodes/trainer_node.py``) - and runs, per
:meth:`OnlineLoop.step`:

1. **Collect**: the source's ready episodes (chunk transitions, executed actions normalised) are
   ingested **once each, when complete**: rows appended to the on-disk :class:`ChunkReplayBuffer`
   (``STATE/online_buffer``) and flushed as ONE shard; then the ledger ``STATE/ingested.json`` (shard ->
   content hash, session and source episode id, round, steps, intervened steps, outcome, the round whose
   residual it ran) is replaced atomically. A shard the ledger does not name (a crash between the two
   writes) is deleted at start-up, so its episode is ingested again exactly once. An episode whose
   (session, id) or content is in the ledger is not ingested again; one recorded with another normaliser,
   or whose chunks ran the residuals of several rounds (``rounds.ran_round``), is refused.
2. **Exact rounds**: at most ``episodes_per_round`` episodes enter a round (``rounds.py``; the gate counts the
   running bridge session's ids); a later one waits and is counted in the next round.
3. **Update** (Algorithm 1 lines 24-27): once the online buffer holds ``n_start`` rows, RLPD updates
   (the learner of the configured method, 1:1 offline/online batches from :class:`MixedSampler`) run
   until ``update_step`` reaches ``utd_ratio`` x the round's control steps (one update per environment
   step in the paper), at most ``online.max_updates`` per round (Table 3: 15k).
4. **Checkpoint** every ``checkpoint_every`` updates and when the budget is reached (atomic, sha256 per
   file; :mod:`bora_trainer.online.checkpoints`); each is announced (the node publishes
   ``CheckpointInfo``, the policy hot-reloads it).
5. **Rounds** (lines 8-12): round r ends when its episodes are in and its update budget is done: (a)
   its final stack is archived in ``STATE/rounds/round_RR`` and announced; (b) its residual is frozen
   with lambda_r = its final alpha_t and folded into the base, ``B_{r+1} = B_r + lambda_r pi_r(s, B_r,
   z)``; (c) a fresh residual (seed ``online.seed + r`` through the default factory) and learner start,
   inheriting round r's critic (the offline critic stays the regulariser's anchor); (d) the buffers'
   base chunks are recomputed (rebase rule in checkpoints.py); (e) round r+1's first checkpoint is
   written at the same ``update_step``. After the configured ``rounds`` the loop is ``finished``.
   HABC's labels: every ingested episode's outcome and takeovers go to the learner's
   ``observe_episode`` (after each ingest, at each round start and on resume).

Resume: the learner (weights, optimisers, ``update_step``), the round and the frozen residuals with
their lambdas come from ``RUN/latest``; the buffer from its shards (then rebased). A kill at any moment
resumes at the last checkpoint with the same update count (updates after it are redone on the same
data; a kill inside a round change redoes the change).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bora_policy.models.residual import FrozenResidual
from bora_trainer.checkpoint import atomic_write_text, latest_checkpoint, load_checkpoint
from bora_trainer.data.replay import ChunkReplayBuffer, ReplayError, ReplaySpec
from bora_trainer.online import rounds as R
from bora_trainer.online.checkpoints import CheckpointsMixin, announcement
from bora_trainer.online.config import Announcement, TrainerConfig, check_offline_reward
from bora_trainer.online.source import Episode, EpisodeSource

log = logging.getLogger("bora_trainer.online")
_load_json, _episode_key = R.load_json, R.episode_key


class OnlineLoop(CheckpointsMixin):
    """See the module docstring. ``announce`` receives an :class:`Announcement` per checkpoint;
    ``learner_factory(spec, round)`` builds round ``round``'s fresh learner; ``run_dir``: checkpoints
    (default ``STATE/run``); ``buffer_dir``: the online buffer (default ``STATE/online_buffer``);
    ``extra_meta``: added to every checkpoint's ``extra``; ``on_round_end(loop)``: a dict of figures
    added to the round's log (env sim: its evaluation episodes); ``logger``: a
    :class:`bora_trainer.checkpoint.RunLogger` for the update metrics (every 10th update)."""

    def __init__(
        self,
        cfg: TrainerConfig,
        source: EpisodeSource,
        announce: Callable[[Announcement], None] | None = None,
        learner_factory: Callable[[ReplaySpec, int], Any] | None = None,
        offline: ChunkReplayBuffer | None = None,
        run_dir: str | Path | None = None,
        buffer_dir: str | Path | None = None,
        extra_meta: dict[str, Any] | None = None,
        on_round_end: Callable[[OnlineLoop], dict] | None = None,
        logger: Any = None,
    ):
        from bora_policy.models.normalizer import Normalizer

        self.cfg, self.source = cfg, source
        self.announce = announce or (lambda a: None)
        self.extra_meta = dict(extra_meta or {})
        self.on_round_end, self.logger = on_round_end, logger
        self.state = Path(cfg.state_dir)
        self.state.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(run_dir) if run_dir is not None else self.state / "run"
        self.ledger_path = self.state / "ingested.json"
        if offline is None:
            if not cfg.offline_buffer:
                raise ValueError("TrainerConfig.offline_buffer is required: RLPD samples 1:1 from D_offline")
            offline = ChunkReplayBuffer.open(cfg.offline_buffer)
        self.offline = offline
        spec = self.offline.spec
        norm_path = cfg.normalizer or (str(Path(cfg.offline_run) / "normalizer.json") if cfg.offline_run else "")
        if not norm_path:
            raise ValueError("TrainerConfig.normalizer (or offline_run with a normalizer.json) is required")
        self.normalizer = Normalizer.load(norm_path)
        if spec.normalizer_version != self.normalizer.version:
            raise ValueError(
                f"offline buffer {cfg.offline_buffer} uses normaliser {spec.normalizer_version!r}, "
                f"the run's is {self.normalizer.version!r}"
            )
        spec = dataclasses.replace(spec, reward=check_offline_reward(spec.reward, cfg))
        self.spec = spec
        # --- the online buffer and its ledger (crash consistency: module docstring)
        self.ledger: dict[str, dict] = _load_json(self.ledger_path, {})
        buf_dir = Path(buffer_dir) if buffer_dir is not None else self.state / "online_buffer"
        if (buf_dir / "meta.json").exists():
            for shard in sorted(buf_dir.glob("shard_*.npz")):
                if shard.name not in self.ledger:
                    log.warning("removing %s: written but not in the ledger (crash before the ledger update)", shard)
                    shard.unlink()
            self.online = ChunkReplayBuffer.open(buf_dir)
            if self.online.spec.reward is None and self.online.spec == dataclasses.replace(spec, reward=None):
                log.warning("%s records no reward definition (an older version): its rows are taken to use "
                            "TrainerConfig.rewards", buf_dir)
                self.online.spec = spec
            elif self.online.spec != spec:
                raise ReplayError(f"{buf_dir}: stored spec {self.online.spec} differs from the expected {spec}")
        else:
            self.online = ChunkReplayBuffer(spec, buf_dir)
        self.ingested_hashes = {v["content_hash"] for v in self.ledger.values()}
        self.ingested_keys = {_episode_key(v) for v in self.ledger.values()} - {None}
        self._skipped_logged: set[str] = set()  # episodes never to be ingested: reported once
        self._deferred_logged: set[str] = set()
        self.stall = R.StallWatch(cfg.stall_warn_s)  # a round that waits long for an episode is said (rounds.py)
        self.skipped_ids: dict[str, int] = {}  # session -> highest source id of an episode never to be ingested
        self.skipped_keys: set[tuple[str, int]] = set()  # (session, source id) of each of those episodes
        self.current_session: str | None = None  # the bridge session of the newest recorded episode (the source's)
        self.ended_keys: set[tuple[str, int]] = set()  # (session, id) of the ended episodes the source has seen
        self.round_log: dict[str, dict] = _load_json(self.state / "round_log.json", {})
        # --- round state and learner, resumed from the latest checkpoint
        self.round = 1
        self.round_start_episodes = self.round_start_updates = self.round_start_steps = 0
        self.frozen: list[FrozenResidual] = []  # residuals of rounds < self.round, lambda = final alpha
        self.last_checkpoint: Announcement | None = None
        self._factory = learner_factory or self._default_learner
        ck = latest_checkpoint(self.run_dir) if self.run_dir.exists() else None
        data = load_checkpoint(ck) if ck is not None else None
        if data is not None:
            extra = data["meta"].get("extra", {})
            self.round = int(extra.get("round", 1))
            for name in ("round_start_episodes", "round_start_updates", "round_start_steps"):
                setattr(self, name, int(extra.get(name, 0)))
        self.learner = self._factory(spec, self.round)
        if data is not None:
            self.learner.load_state(data["modules"], (data["trainer_state"] or {}).get("learner"))
            self.frozen = self._frozen_from_checkpoint(data)
            n = len(self.frozen) + 1
            self.last_checkpoint = announcement(ck, data["meta"], n, self.round, int(data["step"]))
            log.info("resumed at update %d (round %d) from %s", self.update_step, self.round, ck)
        self.resumed_at = self.update_step
        self.observe_episodes()
        self._sampler = None
        self._update_sums: dict[str, list[float]] = {}
        self._round_t0 = time.time()
        self.rebase_buffers()

    def _default_learner(self, spec: ReplaySpec, round_: int):
        """Round ``round_``'s learner with a fresh residual (seed ``online.seed + round_ - 1``) and the
        offline run's critic (a fresh one without ``offline_run``)."""
        import torch

        from bora_policy.models.critic import ChunkCritic
        from bora_trainer.algorithms.online_learner import OnlineLearner

        online = dataclasses.replace(self.cfg.online, seed=self.cfg.online.seed + round_ - 1)
        torch.manual_seed(online.seed)
        critic = ChunkCritic(
            spec.z_dim, spec.action_dim, spec.chunk_size, self.cfg.critic_hidden_dim, self.cfg.critic_pos_dim
        )
        critic_version = None
        if self.cfg.offline_run:  # critic inheritance: RUN/critic, else the deployed checkpoint's (checkpoints.py)
            from bora_trainer.online.checkpoints import inherited_critic

            state, meta = inherited_critic(self.cfg.offline_run)
            critic.load_state_dict(state)
            critic_version = meta.get("extra", {}).get("normalizer_version", spec.normalizer_version)
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
    def finished(self) -> bool:
        """The configured ``rounds`` are done (their last round archived); never with ``rounds`` 0."""
        r = self.cfg.rounds
        return bool(r) and self.round >= r and latest_checkpoint(self.round_dir(r)) is not None

    @property
    def wanted(self) -> int:
        """Episodes the current round still takes."""
        return 0 if self.finished else max(0, self.cfg.episodes_per_round - self.in_round)

    @property
    def last_seen_id(self) -> int:
        """Highest source episode id of the current bridge session taken in (rounds.last_seen_in_session)."""
        return R.last_seen_in_session(self.ledger, self.skipped_ids, self.current_session)

    def episode_gate(self, open_: bool = True) -> int:
        """Highest source episode id that may start now (:func:`bora_trainer.online.rounds.episode_gate`, with the
        ended episodes below the last id taken in still to come: ``rounds.waiting_below``); closed once the
        configured ``rounds`` are done."""
        per_round, open_, last = self.cfg.episodes_per_round, open_ and not self.finished, self.last_seen_id
        waiting = R.waiting_below(self.ended_keys, self.ingested_keys | self.skipped_keys, self.current_session, last)
        return R.episode_gate(last, self.in_round, per_round, open_, waiting)

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
            "finished": self.finished,
            "rounds": R.round_table(self.ledger),
            "frozen_lambdas": [float(f.lam) for f in self.frozen],
            "round_start_updates": self.round_start_updates,
            "budget": self.update_budget(),
            "resumed_at": self.resumed_at,
            "last_checkpoint": None if self.last_checkpoint is None else self.last_checkpoint.__dict__,
        }

    def write_status(self) -> None:
        atomic_write_text(self.state / "status.json", json.dumps(self.status(), indent=2))

    def summary(self) -> list[dict]:
        """Per round: what it really used (episodes, control steps, intervened steps and share, successes,
        each episode's ledger entry) and its log (updates, their means, seconds, archive, evaluation)."""
        entries = [self.ledger[name] for name in sorted(self.ledger)]
        out = []
        for row in R.round_table(self.ledger):
            r = row["round"]
            eps = [{**e, "steps": e["num_steps"]} for e in entries if int(e.get("round", 1)) == r]
            out.append({**row, "num_episodes": row["episodes"], "episodes": eps, **self.round_log.get(str(r), {})})
        return out

    # ------------------------------------------------------------------------ 1-2: collect and ingest
    def skip(self, info: dict, reason: str) -> None:
        """An episode that will never be ingested (said once): the round gate may replace it."""
        sess = str(info.get("session_id") or "")
        self.skipped_ids[sess] = max(self.skipped_ids.get(sess, 0), int(info.get("source_episode_id") or 0))
        self.skipped_keys.add((sess, int(info.get("source_episode_id") or 0)))
        h = info["content_hash"]
        if h not in self._skipped_logged:  # a live bag is converted again as it grows: say it once
            self._skipped_logged.add(h)
            log.warning("episode %s %s: not ingested", h[:12], reason)

    def defer(self, info: dict, message: str) -> None:
        """An episode that waits (for its completion, or for the next round): said once."""
        h = info["content_hash"]
        if h not in self._deferred_logged:
            self._deferred_logged.add(h)
            log.info("episode %s: %s", h[:12], message)

    def collect(self) -> int:
        """Ingest the episodes the source has ready; returns the number ingested."""
        return sum(self.ingest(ep) for ep in self.source.poll(self, self.wanted))

    def ingest(self, ep: Episode) -> int:
        """Append one complete episode to the online buffer (one shard) and record it in the ledger."""
        info = ep.info
        h = info["content_hash"]
        if h in self.ingested_hashes:
            return 0
        if _episode_key(info) is not None and _episode_key(info) in self.ingested_keys:
            self.skip(info, "is another version of an episode already ingested (kept as ingested)")
            return 0
        vers = info.get("normalizer_versions") or []
        if vers and vers != [self.normalizer.version]:
            self.skip(info, f"was recorded with normaliser(s) {vers}, the run's is {self.normalizer.version}")
            return 0
        ran, why = R.ran_round(info.get("residual_versions"), self.version_rounds, self.round)
        if why:  # it ran the residuals of several rounds (never ingested) or of a later round (waits for it)
            (self.skip if ran is None else self.defer)(info, why)
            return 0
        if self.wanted <= 0:  # the round is full (rounds.py): this episode is counted in the next round
            self.defer(info, f"round {self.round} is full; it goes into round {self.round + 1}")
            return 0
        rows, n0 = dict(ep.rows), len(self.online)
        rows["episode"] = np.full(len(rows["z"]), self.num_episodes, np.int64)
        self.online.add(rows)
        shard = self.online.flush()
        if ran is not None and ran < self.round:  # the gate opened on its timeout: its base is recomputed
            log.warning("episode %s ran round %d's residual; counted in round %d", h[:12], ran, self.round)
            self.rebase_rows(slice(n0, len(self.online)), ran)
        entry = {
            "content_hash": h,
            "num_steps": int(info["num_steps"]),
            "rows": int(len(rows["z"])),
            "outcome": info.get("outcome"),
            "round": self.round,
            "base_round": int(ran or ep.base_round or self.round),
            "ran_round": ran,  # the round whose residual it ran (rounds.ran_round; None: not known)
            "residual_versions": info.get("residual_versions"),
            "intervened_steps": R.intervened_steps(rows),
            "takeovers": R.takeovers(rows),
            "source_episode_id": int(info.get("source_episode_id") or 0),
            "session_id": str(info.get("session_id") or ""),
            "time": time.time(),
            **ep.extra,
        }
        self.ledger[shard.name] = entry
        atomic_write_text(self.ledger_path, json.dumps(self.ledger, indent=1))
        self.ingested_hashes.add(h)
        if _episode_key(entry) is not None:
            self.ingested_keys.add(_episode_key(entry))
        self.observe_episodes([self.num_episodes - 1])
        log.info("ingested episode %s: %d chunk transitions (buffer %d)", h[:12], entry["rows"], len(self.online))
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
                returns_gamma=self.cfg.online.gamma if self.cfg.online.critic_mc_weight > 0 else None,
            )
        return self._sampler

    def train(self, max_updates: int | None = None, should_stop: Callable[[], bool] | None = None) -> int:
        """Run updates up to the budget (or ``max_updates`` of them); returns how many ran."""
        if len(self.online) < self.cfg.online.n_start:
            self.maybe_end_round()  # a full round below n_start ends without updates
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
            for key, v in info.items():  # the round's mean of every update metric (its log)
                self._update_sums.setdefault(key, []).append(float(v))
            done += 1
            prog.update(self.update_step, info)
            if self.logger is not None and self.update_step % 10 == 0:
                self.logger.scalars(self.update_step, info)
            if self.update_step % self.cfg.checkpoint_every == 0:
                self.checkpoint()
        if done and self.update_step >= budget:
            self.checkpoint()
        self.maybe_end_round()
        return done

    def maybe_end_round(self) -> bool:
        """End the round when its episodes and updates are done (module docstring, item 5). Updates wait
        for ``n_start`` online rows (Algorithm 1); a full round whose buffer is still below it ends
        without them (ours: it would otherwise wait for episodes the round no longer takes)."""
        below_start = len(self.online) < self.cfg.online.n_start
        if self.finished or not (
            self.in_round >= self.cfg.episodes_per_round and (below_start or self.update_step >= self.update_budget())
        ):
            return False
        if below_start:
            log.warning(
                "round %d ends without updates: the online buffer holds %d rows, n_start is %d",
                self.round, len(self.online), self.cfg.online.n_start,
            )
        self.checkpoint()  # RUN/latest = round r's final state (resume redoes the steps below)
        entry = {
            "updates": self.update_step - self.round_start_updates,
            "update_means": {k: float(np.mean(v)) for k, v in sorted(self._update_sums.items())},
            "seconds": time.time() - self._round_t0,
            "alpha": float(self.learner.alpha()),
        }
        if self.on_round_end is not None:
            entry.update(self.on_round_end(self))
        final = self._save_round_final()
        entry["checkpoint"] = final.path
        self.round_log[str(self.round)] = entry
        atomic_write_text(self.state / "round_log.json", json.dumps(self.round_log, indent=1))
        rt = [r for r in R.round_table(self.ledger) if r["round"] == self.round]
        log.info(
            "round %d done: %d episodes, %d control steps (%d intervened), %d updates, alpha %.4f, checkpoint %s",
            self.round,
            self.in_round,
            rt[0]["steps"] if rt else 0,
            rt[0]["intervened_steps"] if rt else 0,
            self.update_step,
            self.learner.alpha(),
            final.path,
        )
        if self.finished:
            self.write_status()
            return True
        self._start_next_round()
        self.checkpoint()
        return True

    def _start_next_round(self) -> None:
        """Algorithm 1 lines 8-12: freeze pi_r with lambda_r = its final alpha_t, fresh pi_{r+1}."""
        old = self.learner
        actor = copy.deepcopy(old.actor).eval().requires_grad_(False)
        self.frozen = self.frozen + [FrozenResidual(actor, float(old.alpha()))]
        self.round_start_updates = self.update_step
        self.round_start_episodes = self.num_episodes
        self.round_start_steps = self.ingested_steps
        self.round += 1
        new = self._factory(self.spec, self.round)  # fresh residual and optimisers, anchor = the offline critic
        old_mods = old.modules()
        for name, m in new.modules().items():  # critic inheritance from round r
            if name != "residual" and name in old_mods:
                m.load_state_dict(old_mods[name].state_dict())
        self.learner = new
        self.observe_episodes()
        self._sampler = None
        self._update_sums = {}
        self._round_t0 = time.time()
        self.rebase_buffers()

    def observe_episodes(self, episodes: list[int] | None = None) -> None:
        """Tell the learner's objective the outcome and takeover steps of ingested episodes (all, or
        ``episodes``): HABC labels online rows by them (``observe_episode``; a no-op for the others).
        Episode ``e`` is the e-th ledger entry (shard order), as in the rows' ``episode`` field."""
        from bora_trainer.algorithms.habc.labels import episode_success
        from bora_trainer.data.replay import episode_takeovers

        entries = [self.ledger[name] for name in sorted(self.ledger)]
        if not entries:
            return
        eps = self.online.arrays()["episode"]
        for e in range(len(entries)) if episodes is None else episodes:
            rows = self.online.arrays(np.flatnonzero(eps == e))
            is_int = episode_takeovers(rows, int(entries[e]["num_steps"]))
            self.learner.objective.observe_episode(e, episode_success(entries[e]), is_int)

    # ------------------------------------------------------------------------ driving the loop
    def step(self, should_stop: Callable[[], bool] | None = None, max_updates: int | None = None) -> dict:
        """One collect -> train iteration (the trainer node calls this in its loop)."""
        n = self.collect()
        self.stall.observe(self, n)
        u = self.train(max_updates=max_updates, should_stop=should_stop)
        self.write_status()
        return {"ingested": n, "updates": u, **self.status()}

    def run(self, should_stop: Callable[[], bool] | None = None, idle_wait_s: float = 0.0) -> None:
        """Step until the configured rounds are done (``rounds`` must be > 0) or ``should_stop``."""
        if not self.cfg.rounds:
            raise ValueError("OnlineLoop.run: TrainerConfig.rounds must be > 0 (0 runs until stopped)")
        while not self.finished and not (should_stop is not None and should_stop()):
            info = self.step(should_stop=should_stop)
            if not info["ingested"] and not info["updates"] and idle_wait_s:
                time.sleep(idle_wait_s)
