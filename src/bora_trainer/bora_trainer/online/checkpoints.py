"""The online loop's checkpoints, round archives and the rebase of base chunks (a mixin of
:class:`bora_trainer.online.loop.OnlineLoop`; the attributes it uses are set there).

Checkpoints hold ``residual`` (the current actor, for resume and the single-file form), ``residual_1
.. residual_R`` (R = round, the last = current) and ``meta.json`` ``extra`` =
:func:`bora_policy.models.residual.residual_checkpoint_extra` (lambdas: frozen ones' final alpha, the
current one's alpha_t) plus the loop's state. Announced path: round 1 (no frozen residual) the file
``residual.safetensors`` (alpha in its safetensors metadata), from round 2 on the checkpoint DIRECTORY
(the multi-round form ``PolicyRunner.load_residual`` folds), with the sha256 of ``residual_R.safetensors``.

Rebase rule (which base chunks may be recomputed): a row's stored ``vla`` chunk holds the base of the
round its ledger entry names as ``base_round``: through the ROS graph an ActionChunk carries
``base_norm``, the base the policy actually used, so a row recorded while round r' was deployed stores
``B_{r'}`` (``base_round`` = r', told by the ActionChunks' ``residual_version``; the round it was ingested in
where the version is not known); the in-process robot stores the pure A_VLA
(``base_round`` 1). In round r its base is recomputed as ``B_r = fold(frozen residuals r' .. r-1,
starting from the stored chunk)``, never re-folding the residuals it already contains. D_offline rows
count as r' = 1 (their chunk is the pure A_VLA). The buffers on disk keep the recorded chunks; the
recomputation is redone in memory at every round start and on resume, and when an episode ingested in round r
ran an earlier round's residual (env ros: the round gate opened on its timeout, before the policy loaded round r's
checkpoint; :func:`bora_trainer.online.rounds.ran_round`): its rows are rebased as they are ingested
(:meth:`CheckpointsMixin.rebase_rows`). For that every announced residual's round is kept in
``STATE/residual_versions.json`` (sha256 prefix -> round).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np

from bora_policy.models.residual import (
    FrozenResidual,
    ResidualChunkActor,
    ResidualPolicy,
    residual_checkpoint_extra,
)
from bora_trainer.checkpoint import atomic_write_text, save_checkpoint
from bora_trainer.online.config import Announcement

log = logging.getLogger("bora_trainer.online")


def rebase_fn(policy: ResidualPolicy, device):
    """numpy (proprio, vla, z) -> base chunk of ``policy`` (Algorithm 1 lines 8-12), for buffer rebasing."""
    import torch

    def fn(p, v, z):
        with torch.no_grad():
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
            return policy.base_chunk(t(z), t(p), t(v)).cpu().numpy()

    return fn


def online_critic_of(path: Path) -> Path | None:
    """The online critic saved beside a residual checkpoint: ``critic.safetensors`` of ``path`` (a checkpoint
    directory) or of ``path/checkpoints/<latest>`` (an online run, or one round's archive
    ``trainer/rounds/round_NN``); None where it has none. A round's residual is valued by that round's critic."""
    if (path / "latest").is_file():
        path = path / "checkpoints" / (path / "latest").read_text().strip()
    f = path / "critic.safetensors"
    return f if f.is_file() else None


def inherited_critic(offline_run: str | Path, deployed: dict | None = None) -> tuple[dict, dict]:
    """``(critic state dict, the deployed checkpoint's meta)`` that the online stage inherits from an offline run:
    ``RUN/critic`` when the run exported one (the refitted critic after ``critic_refit_updates``, which checkpoints
    do not hold; after ``bora select`` the deployed one: that refit when the last checkpoint was chosen, else the chosen
    checkpoint's, ``selection.json``'s ``critic``), else the deployed checkpoint's ``critic`` module.
    ``deployed``: that checkpoint when the caller has loaded it (``select.load_deployed``), else it is loaded here.
    Both environments read it: env ros's learner (``OnlineLoop._default_learner``) and env sim's, through
    ``FrozenVLA.critic``. Until 2026-12-07 it always read the checkpoint, so a refit never reached the online stage;
    env sim's ``FrozenVLA`` kept doing so until 2026-12-08 (both found in review)."""
    from bora_policy.models.critic import CRITIC_WEIGHTS, ChunkCritic
    from bora_trainer.select import load_deployed

    off = load_deployed(offline_run) if deployed is None else deployed
    exported = Path(offline_run) / "critic"
    if (exported / CRITIC_WEIGHTS).is_file():
        return ChunkCritic.load(exported).state_dict(), off["meta"]
    if "critic" not in off["modules"]:
        raise ValueError(f"{offline_run}: the deployed checkpoint has no 'critic' module (and no RUN/critic)")
    return off["modules"]["critic"], off["meta"]


def announcement(path: Path, meta: dict, n_residuals: int, rnd: int, step: int) -> Announcement:
    """Round 1: ``residual.safetensors`` (single-file form); later: the checkpoint directory."""
    if n_residuals <= 1:
        f = "residual.safetensors"
        return Announcement(str((path / f).resolve()), meta["files"].get(f, ""), rnd, step)
    last = f"residual_{n_residuals}.safetensors"
    return Announcement(str(path.resolve()), meta["files"][last], rnd, step)


VERSIONS = "residual_versions.json"  # STATE/: the round of every announced residual (module docstring)


class CheckpointsMixin:
    """Checkpoints, round archives, frozen residuals from a checkpoint, and the buffers' rebase."""

    @property
    def version_rounds(self) -> dict[str, int]:
        """The round of every residual announced in this state directory, by the first 16 hex digits of its sha256
        (the policy's ``residual_version``): ``STATE/residual_versions.json``, and the resumed checkpoint's."""
        if getattr(self, "_version_rounds", None) is None:
            try:
                stored = json.loads((self.state / VERSIONS).read_text())
                self._version_rounds = {str(k): int(v) for k, v in stored.items()}
            except (OSError, ValueError, AttributeError):
                self._version_rounds = {}
            ck = self.last_checkpoint
            if ck is not None and ck.sha256:
                self._version_rounds.setdefault(ck.sha256[:16], int(ck.round))
        return self._version_rounds

    def _announce(self, ann: Announcement) -> None:
        """Keep the announced residual's round (:attr:`version_rounds`, written before the policy can run it), then
        announce it."""
        if ann.sha256 and self.version_rounds.get(ann.sha256[:16]) != int(ann.round):
            self.version_rounds[ann.sha256[:16]] = int(ann.round)
            atomic_write_text(self.state / VERSIONS, json.dumps(self.version_rounds, indent=1, sort_keys=True))
        self.announce(ann)

    # ------------------------------------------------------------------------ the residual stack
    def stack(self) -> list[FrozenResidual]:
        """frozen residuals + the current one with its alpha_t (the deployed stack)."""
        return self.frozen + [FrozenResidual(self.learner.actor, float(self.learner.alpha()))]

    def policy(self) -> ResidualPolicy:
        """The policy of the current round: frozen residuals folded into the base + the current residual."""
        return ResidualPolicy.from_normalizer(self.normalizer, self.frozen, self.learner.actor).to(self.learner.device)

    def _stack_modules(self) -> tuple[dict, dict]:
        mods, meta = {}, {}
        for i, f in enumerate(self.stack()):
            mods[f"residual_{i + 1}"] = f.actor.state_dict()
            meta[f"residual_{i + 1}"] = {"lambda": repr(float(f.lam))}
        return mods, meta

    def _extra(self) -> dict:
        extra = residual_checkpoint_extra(self.stack(), self.normalizer.version)
        extra.update(self.extra_meta)
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

    def round_dir(self, r: int) -> Path:
        return self.state / "rounds" / f"round_{r:02d}"

    def _save_round_final(self) -> Announcement:
        """Archive round r's final stack (+ critic) in ``STATE/rounds/round_RR`` and announce it."""
        mods, meta = self._stack_modules()
        mods["residual"] = self.learner.actor.state_dict()
        meta["residual"] = self._residual_header()
        mods["critic"] = self.learner.critic.state_dict()
        path = save_checkpoint(
            self.round_dir(self.round), self.update_step, mods, extra=self._extra(), keep_last=None, metadata=meta
        )
        m = json.loads((path / "meta.json").read_text())
        ann = announcement(path, m, len(self.frozen) + 1, self.round, self.update_step)
        self._announce(ann)
        return ann

    def checkpoint(self) -> Announcement:
        """Write (and announce) the run's checkpoint at ``update_step``, unless it already exists."""
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
            keep_last=self.cfg.keep_checkpoints or None,
            metadata=meta,
        )
        m = json.loads((path / "meta.json").read_text())
        ann = announcement(path, m, len(self.frozen) + 1, self.round, self.update_step)
        self.last_checkpoint = ann
        self._announce(ann)
        self.write_status()
        return ann

    # ------------------------------------------------------------------------ resume
    def _frozen_from_checkpoint(self, data: dict) -> list[FrozenResidual]:
        """Residuals 1 .. R-1 of a checkpoint with their lambdas (empty for round 1 / old checkpoints)."""
        from bora_policy.runtime.residual_meta import stack_entries

        extra = data["meta"].get("extra", {})
        entries = stack_entries(extra, f"{data['path']}/meta.json") if extra.get("residuals") else []
        out = []
        for name, lam in entries[:-1]:
            if name not in data["modules"]:
                raise ValueError(f"{data['path']}: frozen residual {name} in meta.json has no file")
            sp = self.spec
            actor = ResidualChunkActor(
                sp.state_dim, sp.action_dim, sp.chunk_size, sp.z_dim, copy.deepcopy(self.learner.actor.cfg)
            )
            actor.load_state_dict(data["modules"][name])
            actor = actor.to(self.learner.device).eval().requires_grad_(False)
            out.append(FrozenResidual(actor, lam))
        if len(out) != self.round - 1:
            raise ValueError(
                f"{data['path']}: round {self.round} needs {self.round - 1} frozen residual(s), "
                f"meta.json lists {len(out)}"
            )
        return out

    # ------------------------------------------------------------------------ rebase
    def _row_base_rounds(self) -> np.ndarray:
        """The round whose base each online-buffer row's stored chunk holds (ledger ``base_round``,
        else the ``round`` it was ingested in), [N]."""
        rounds = [
            np.full(int(e["rows"]), int(e.get("base_round") or e.get("round", 1)), np.int64)
            for e in (self.ledger[name] for name in sorted(self.ledger))
        ]
        out = np.concatenate(rounds) if rounds else np.zeros(0, np.int64)
        if len(out) != len(self.online):
            raise ValueError(
                f"ingested ledger lists {len(out)} rows, the online buffer holds {len(self.online)}: "
                "cannot tell which rows' base chunks may be recomputed"
            )
        return out

    def rebase_rows(self, rows: slice, base_round: int) -> None:
        """Online-buffer rows ``rows`` (an episode just ingested) whose stored chunks hold round ``base_round``'s base
        (< the current round: it ran that round's residual, module docstring): their ``base`` and ``next_base``
        become the current round's, residuals ``base_round`` .. current-1 folded onto the stored ``vla`` chunks, in
        memory as at a round start (its shard keeps the recorded chunks)."""
        dev = self.learner.device
        fn = rebase_fn(ResidualPolicy.from_normalizer(self.normalizer, self.frozen[base_round - 1 :]).to(dev), dev)
        d = self.online.arrays(rows)
        d["base"][:] = fn(d["proprio"], d["vla"], d["z"])
        d["next_base"][:] = fn(d["next_proprio"], d["next_vla"], d["next_z"])

    def rebase_buffers(self, batch: int = 4096) -> int:
        """Recompute base chunks for the current round (the rebase rule in the module docstring).

        Returns the number of rows changed. Offline rows: all frozen residuals folded onto their stored
        (pure VLA) chunk; online rows whose stored chunk is B_{r'} with r' < current: residuals
        r' .. current-1 folded onto it; rows holding the current round's base: unchanged.
        """
        if not self.frozen:
            return 0
        dev = self.learner.device
        full = ResidualPolicy.from_normalizer(self.normalizer, self.frozen).to(dev)
        self.offline.rebase(rebase_fn(full, dev), batch)
        n = len(self.offline)
        rounds = self._row_base_rounds()
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
