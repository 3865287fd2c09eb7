"""``bora bag convert BAG... --out DIR``: rosbag2 recordings -> episodes -> chunk transitions.

Per episode (messages grouped by (``session_id``, ``episode_id``) over all given bags; episode ids
restart at 1 in every recording session, so the session (a UUID of the teleop / sim bridge run that
numbered the episodes) is part of the name. Bags recorded before ``session_id`` existed, and
messages with an empty one, get the bag as their session: ``bag:<directory name>@<first log time>``):

* executed steps from ``/bora/executed_command`` (``A_exec``, ``is_intervention``, ``beta``, ``held``),
  keyed by ``command.step``; the episode length T is the ``step`` of its terminal EpisodeEvent
  (SUCCESS / FAILURE / ABORT; ABORT with a note starting "timeout" = timeout), or the last
  recorded step + 1 when there is none: such an episode is kept with ``outcome: null`` and
  ``outcome_missing: true`` (flagged, never guessed: no terminal reward, no done). An episode whose
  START event is in none of the bags (the recording began mid-episode) is flagged
  ``start_recorded: false``; the online trainer does not ingest those.
* takeovers from ``/bora/intervention`` (START s .. END e, exclusive; RECOVERED r attaches to the
  open or most recent takeover, clamped into it); rewards and dones are recomputed with
  :func:`bora_policy.common.rewards.compute_rewards` and the configured :class:`RewardConfig`.
* observations (``/bora/observation``: state = arm + hand positions, colour, depth) for the
  episode files; ``--transitions-only`` does without them.
* chunks (``/bora/action_chunk``): z_t, normalised proprio, base chunk (``base_norm``), base /
  residual / final in physical units -> chunk transitions with the k executed steps
  (:func:`bora_trainer.data.replay.chunk_transitions`), per-step ``is_intervention``/``beta``,
  rewards, dones and validity masks (steps whose ExecutedCommand is missing are masked out).

Robustness: duplicated messages (same key) are dropped (identical ones silently; differing
ones keep the first received, with a warning kept in the episode's JSON), out-of-order arrival is
irrelevant (everything is keyed by step), a damaged bag keeps every message that can be read
(:mod:`bag_io`: what was lost is reported by topic, count and time range), missing topics raise
:class:`MissingTopicsError` listing them, and a required topic recorded with another type is an
error even when it has no message (the types come from the recording's connections). A step
without its ExecutedCommand is a gap: ``valid`` is false there in the episode file and every
reader masks it out; inside a takeover it keeps the takeover's flags. ``is_intervention`` runs
that touch no takeover event are reported. A message that decodes but is unusable (damaged: another
joint count or camera set than the episode's majority, non-finite values, an image it cannot read,
a step far beyond the others) is dropped with a warning (its step becomes a gap); an episode with
nothing usable fails alone (status ``failed``); only when nothing is convertible is it an error.

Output (:mod:`bag_output`: staged and renamed, so an error leaves OUT as it was; idempotent per
episode: the same messages again are skipped, a changed reward config rewrites them in place
under the same id, and a more complete version of an episode replaces the converted one under
its id, the old version kept in ``OUT/replaced/`` and recorded in ``OUT/ledger.jsonl``; an episode
converted (or skipped while incomplete, ``OUT/pending.json``) from other bags before is converted
from all its parts, so a recorder restarted mid-episode loses nothing):

```
DIR/meta.json, DIR/episodes/episode_XXXXXX.{npz,json}     bora-episodes/1 (docs/interfaces.md)
DIR/transitions/meta.json                                   {"format": "bora-bag-transitions/1", ...}
DIR/transitions/episode_XXXXXX.npz                          chunk transitions (fields below)
DIR/transitions/episode_XXXXXX.json                         info + content_hash (written last)
```
Transition fields (n chunks): ``z`` [n,Z], ``proprio`` [n,S] (normalised), ``vla``/``base`` [n,k,A]
(``base_norm``), ``base_physical``/``residual``/``final`` [n,k,A], ``residual_scale`` [n],
``action_physical`` [n,k,A] (executed), ``reward``/``done``/``mask``/``is_intervention``/``beta``
[n,k], ``next_z``/``next_proprio``/``next_vla``/``next_base``, ``next_valid`` [n], ``episode``,
``step`` [n]; ``episode_reward``/``episode_done`` [T]: the whole episode's (new 2026-12-08: the trainer's
Monte-Carlo returns count the steps no chunk covers; older files lack them). The trainer normalises
``action_physical`` with its run's normaliser on ingest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bora_policy.common.episodes import DatasetMeta, _atomic_write_bytes, write_episode
from bora_policy.common.rewards import RewardConfig
from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_episode import CONVERTER_VERSION, ConvertConfig, build_episode
from bora_trainer.data.bag_help import TYPES as HELP_TYPES
from bora_trainer.data.bag_io import BagData, BagReadError, read_bag
from bora_trainer.data.bag_output import OutputDir, OutputError, completeness, write_json
from bora_trainer.data.bag_records import EPISODE_KINDS, ConversionError, Msg, outcome_of

__all__ = [
    "BagReadError",
    "CONVERTER_VERSION",
    "EPISODE_KINDS",
    "ConversionError",
    "ConvertConfig",
    "ConvertReport",
    "EpisodeResult",
    "MissingTopicsError",
    "Msg",
    "OutputError",
    "build_episode",
    "convert",
    "load_bags",
    "main",
    "read_transitions",
]

TRANSITIONS_FORMAT = "bora-bag-transitions/1"


class MissingTopicsError(ValueError):
    """The bags lack topics the conversion needs."""

    def __init__(self, missing: list[str], bags: list[str]):
        self.missing = missing
        super().__init__(
            f"missing topic(s) {missing} in {bags}: record them (config/record_topics.yaml, group "
            f"'bora'); /bora/intervention must be recorded even when nobody takes over"
        )


@dataclass
class EpisodeResult:
    source_episode_id: int
    content_hash: str
    # "written" | "rewritten" | "replaced" | "skipped" | "kept-previous" | "incomplete-skipped" | "failed"
    # | "no-commands" (episode events but no ExecutedCommand: nothing to convert)
    status: str
    episode_id: int | None = None
    num_steps: int = 0
    num_chunks: int = 0
    outcome: str | None = None
    warnings: list[str] = field(default_factory=list)
    session_id: str = ""


@dataclass
class ConvertReport:
    episodes: list[EpisodeResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # bags with lost data (see the warnings)

    def summary(self) -> str:
        by = defaultdict(int)
        for e in self.episodes:
            by[e.status] += 1
        return ", ".join(f"{v} {k}" for k, v in sorted(by.items())) or "no episodes"


# ------------------------------------------------------------------------------------ message keys
def _key(topic: str, m: Any) -> tuple:
    if topic == S.T_EXECUTED:
        return (int(m.command.episode_id), int(m.command.step))
    if topic == S.T_INTERVENTION:
        return (int(m.episode_id), int(m.step), int(m.kind))
    if topic == S.T_EPISODE:
        return (int(m.episode_id), int(m.kind), int(m.step))
    return (int(m.episode_id), int(m.step))


def _session(topic: str, m: Any) -> str:
    src = m.command if topic == S.T_EXECUTED else m
    return str(getattr(src, "session_id", "") or "")


def bag_session(d: BagData) -> str:
    """The session standing in for messages without a session id: the bag and its first log time."""
    first = min((t for _, t, _ in d.messages), default=0)
    return f"bag:{d.path.name}@{first}"


def _norm(msgtype: str) -> str:
    try:
        return S.normalize_type(msgtype)
    except S.BagSchemaError:
        return msgtype


def check_types(datas: list[BagData], need: list[str]) -> None:
    """Every connection of a needed topic has the expected type (messages or not); all needed are present."""
    present = set()
    for d in datas:
        # the storage's connections and metadata.yaml's topic list (a connection record may be lost to damage)
        recorded = [(c.topic, c.msgtype) for c in d.connections.values()] + list(d.recorded_types.items())
        for topic, msgtype in recorded:
            want = S.TOPIC_TYPES.get(topic)
            if (topic in need or topic == S.T_OBSERVATION) and _norm(msgtype) != want:
                raise ConversionError(f"{d.path}: topic {topic} is recorded with type {msgtype}, expected {want}")
            present.add(topic)
    missing = [t for t in need if t not in present]
    if missing:
        raise MissingTopicsError(missing, [str(d.path) for d in datas])


def load_bags(
    bags: list[str | Path], transitions_only: bool = False
) -> tuple[dict[str, list[Msg]], list[str], list[str], dict[tuple[str, int], list[str]]]:
    """Decode the needed topics of all bags, deduplicated per (session, key).

    Returns (topic -> msgs, warnings, truncated bags, (session, episode) -> that episode's warnings).
    """
    datas: list[BagData] = [read_bag(b) for b in bags]
    need = list(S.REQUIRED_TOPICS) + ([] if transitions_only else list(S.EPISODE_TOPICS))
    check_types(datas, need)
    warnings = [w for d in datas for w in d.warnings]
    truncated = [str(d.path) for d in datas if d.truncated]
    wanted = set(need) | {S.T_OBSERVATION} | set(HELP_TYPES)  # help requests, values: optional (bag_help.py)
    groups: dict[str, dict[tuple, list[Msg]]] = defaultdict(lambda: defaultdict(list))
    ep_warn: dict[tuple[str, int], list[str]] = defaultdict(list)
    for d in datas:
        ts = S.typestore_for_definitions({c.msgtype: (c.fmt, c.msgdef) for c in d.connections.values()})
        fallback = bag_session(d)
        for cid, t_ns, raw in d.messages:
            conn = d.connections[cid]
            if conn.topic not in wanted:
                continue
            try:
                m = ts.deserialize_cdr(raw, conn.msgtype)
            except Exception as e:  # noqa: BLE001 - one undecodable message must not sink the bag
                warnings.append(f"{d.path}: undecodable {conn.topic} message at {t_ns} dropped ({e})")
                continue
            k = _key(conn.topic, m)
            sess = _session(conn.topic, m) or fallback
            # canonical bytes (re-serialised): DDS may add trailing CDR padding that a direct write lacks
            msg = Msg(k, t_ns, bytes(ts.serialize_cdr(m, conn.msgtype)), m, sess, str(d.path))
            groups[conn.topic][(sess, *k)].append(msg)
    out: dict[str, list[Msg]] = {}
    for topic, by_key in groups.items():
        kept = []
        ndup: dict[tuple[str, int], int] = defaultdict(int)
        for k, ms in by_key.items():
            ms.sort(key=lambda x: x.log_time)
            if len(ms) > 1:
                ndup[k[:2]] += len(ms) - 1
                if any(x.raw != ms[0].raw for x in ms[1:]):
                    ep_warn[k[:2]].append(
                        f"{topic}: {len(ms)} differing messages for key {k[1:]}; kept the first received"
                    )
            kept.append(ms[0])
        for ek, n in sorted(ndup.items()):
            ep_warn[ek].append(f"{topic}: {n} duplicated message(s) dropped")
        if ndup:
            warnings.append(f"{topic}: {sum(ndup.values())} duplicated message(s) dropped")
        kept.sort(key=lambda x: (x.session, x.key))
        out[topic] = kept
    for t in need:
        out.setdefault(t, [])
    return out, warnings, truncated, ep_warn


# ------------------------------------------------------------------------------------ conversion
def _reward_hash(cfg: RewardConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    _atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def convert(
    bags: list[str | Path], out: str | Path, cfg: ConvertConfig | None = None, progress: bool = False
) -> ConvertReport:
    """Convert ``bags`` into ``out`` (see module docstring); returns what happened per episode.

    Raises :class:`OutputError` (output side) or BagReadError / MissingTopicsError /
    ConversionError (input side; an episode that cannot be converted is reported ``failed``, the error is raised
    only when no episode of the bags converts and ``cfg.raise_if_none_converted``); either way ``out`` is left as it
    was.
    """
    cfg = cfg or ConvertConfig()
    od = OutputDir(out)  # checks the output before any bag is read
    bags = [Path(b).resolve() for b in bags]
    msgs, warnings, truncated, ep_warn = load_bags(bags, cfg.transitions_only)
    report = ConvertReport(warnings=warnings, truncated=truncated)
    per_ep = _group(msgs)
    # an episode already converted from other bags (the recorder was restarted during it, or the
    # recording was split): read those bags again, so the new version is the union of its parts
    extra = sorted({str(Path(b).resolve()) for k in per_ep for b in od.parts(k)} - {str(b) for b in bags})
    extra = [Path(b) for b in extra if Path(b).exists()]
    if extra:
        keys = set(per_ep)
        msgs, _, _, ep_warn = load_bags(bags + extra, cfg.transitions_only)
        per_ep = {k: v for k, v in _group(msgs).items() if k in keys}
        report.warnings.append(
            f"episode(s) {sorted(k[1] for k in keys if od.parts(k))} also read from {[str(b) for b in extra]} "
            "(converted from there before): each is converted from all its parts"
        )
    rhash = _reward_hash(cfg.rewards)
    mode = "transitions" if cfg.transitions_only else "episodes"
    # sessions in order of their first message, episodes by id within a session
    first: dict[str, int] = {}
    for (s, _), per_topic in per_ep.items():
        t0 = min(m.log_time for ms in per_topic.values() for m in ms)
        first[s] = min(first.get(s, t0), t0)
    keys = sorted(per_ep, key=lambda k: (first[k[0]], k[0], k[1]))
    it = keys
    if progress:
        from tqdm import tqdm

        it = tqdm(keys, desc="episodes", unit="ep")
    reasons: dict[int, str] = {}
    failed: list[ConversionError] = []
    try:
        for sess, src in it:
            per_topic = per_ep[(sess, src)]
            if not per_topic.get(S.T_EXECUTED):
                msg = f"episode {src} of session {sess}: events but no ExecutedCommand; skipped"
                outcome = outcome_of(per_topic.get(S.T_EPISODE, []), [])[0]
                report.episodes.append(
                    EpisodeResult(src, "", "no-commands", outcome=outcome, warnings=[msg], session_id=sess)
                )
                continue
            try:
                ep = build_episode(src, per_topic, cfg, session=sess, warnings=ep_warn.get((sess, src)))
            except ConversionError as e:  # this episode only (e.g. every Observation of it damaged)
                failed.append(e)
                outcome = outcome_of(per_topic.get(S.T_EPISODE, []), [])[0]
                report.episodes.append(
                    EpisodeResult(src, "", "failed", outcome=outcome, warnings=[str(e)], session_id=sess)
                )
                continue
            res = EpisodeResult(
                src,
                ep["content_hash"],
                "written",
                warnings=ep["warnings"],
                num_steps=ep["info"]["num_steps"],
                outcome=ep["info"]["outcome"],
                session_id=sess,
            )
            report.episodes.append(res)
            if cfg.only_complete and ep["info"]["outcome_missing"]:
                res.status = "incomplete-skipped"
                od.pending[(sess, src)] = sorted({m.bag for ms in per_topic.values() for m in ms})
                continue
            prev = od.previous(sess, src, ep["content_hash"])
            replaced = None
            if prev is not None:
                res.episode_id = int(prev["episode_id"])
                if prev.get("content_hash") == ep["content_hash"]:
                    if prev.get("reward_config_hash") == rhash and prev.get("mode") == mode:
                        res.status = "skipped"
                        res.num_chunks = int(prev.get("num_chunks", 0))
                        continue
                    res.status = "rewritten"
                elif completeness(ep["info"]) > completeness(prev):
                    res.status, replaced = "replaced", prev
                    reasons[res.episode_id] = (
                        f"more complete: outcome {ep['info']['outcome']}, {ep['info']['num_valid_steps']} "
                        f"recorded steps (was {prev.get('outcome')}, "
                        f"{prev.get('num_valid_steps', prev.get('num_steps'))})"
                    )
                    res.warnings.append(
                        f"episode {src} of session {sess}: replaces converted episode {res.episode_id} "
                        f"({str(prev.get('content_hash'))[:12]}, less complete; kept in replaced/, see ledger.jsonl)"
                    )
                else:
                    res.status = "kept-previous"
                    res.num_chunks = int(prev.get("num_chunks", 0))
                    res.warnings.append(
                        f"episode {src} of session {sess}: differs from converted episode {res.episode_id} "
                        f"({str(prev.get('content_hash'))[:12]}), which is as or more complete; kept that one"
                    )
                    continue
            else:
                res.episode_id = od.new_id()
            _stage_episode(od, res, ep, cfg, bags, rhash, mode, per_topic, replaced)
        nothing = failed and len(failed) == sum(e.status != "no-commands" for e in report.episodes)
        if nothing and cfg.raise_if_none_converted:
            raise failed[0]
    except BaseException:
        od.abort()
        raise
    od.commit(reasons)
    od.save_pending()
    return report


def _group(msgs: dict[str, list[Msg]]) -> dict[tuple[str, int], dict[str, list[Msg]]]:
    """(session, episode) -> topic -> messages; episode id 0 (no episode running) left out."""
    per_ep: dict[tuple[str, int], dict[str, list[Msg]]] = defaultdict(lambda: defaultdict(list))
    for topic, ms in msgs.items():
        for m in ms:
            if m.key[0] != 0:
                per_ep[(m.session, m.key[0])][topic].append(m)
    return per_ep


def _stage_episode(od: OutputDir, res: EpisodeResult, ep: dict, cfg: ConvertConfig, bags, rhash: str,
                   mode: str, per_topic: dict[str, list[Msg]], replaced: dict | None) -> None:
    eid = res.episode_id
    trans = ep["transitions"]
    if trans is not None:
        n, k, A = trans["base"].shape
        tmeta = {
            "format": TRANSITIONS_FORMAT,
            "chunk_size": int(k),
            "action_dim": int(A),
            "state_dim": int(trans["proprio"].shape[1]),
            "z_dim": int(trans["z"].shape[1]),
        }
        od.check_tmeta(tmeta)
    meta = None
    if not cfg.transitions_only:
        meta = od.check_meta(
            DatasetMeta(
                fps=float(cfg.fps or ep["fps"] or 30.0),
                tasks=[ep["info"]["task"]] if ep["info"]["task"] else [],
                reward=dataclasses.asdict(cfg.rewards),
                **ep["obs_meta"],
            )
        )
    stage = od.staging()
    tdir = stage / "transitions"
    try:
        if trans is not None:
            write_json(tdir / "meta.json", od.tmeta)
            trans = dict(trans, episode=np.full(n, eid, np.int64))
            _save_npz(tdir / f"episode_{eid:06d}.npz", trans)
            res.num_chunks = int(n)
        if meta is not None:
            info = dict(
                ep["info"], content_hash=ep["content_hash"], reward_config=dataclasses.asdict(cfg.rewards)
            )
            write_episode(stage, eid, ep["arrays"], info, meta)
        tinfo = {
            "episode_id": eid,
            "content_hash": ep["content_hash"],
            "reward_config_hash": rhash,
            "reward_config": dataclasses.asdict(cfg.rewards),
            "mode": mode,
            "num_chunks": res.num_chunks,
            "num_steps": ep["info"]["num_steps"],
            "num_valid_steps": ep["info"]["num_valid_steps"],
            "outcome": ep["info"]["outcome"],
            "outcome_missing": ep["info"]["outcome_missing"],
            "start_recorded": ep["info"]["start_recorded"],
            "session_id": res.session_id,
            "source_episode_id": res.source_episode_id,
            "bags": sorted({m.bag for ms in per_topic.values() for m in ms}),
            "has_transitions": trans is not None,
            "normalizer_versions": sorted(
                {str(m.msg.normalizer_version) for m in per_topic.get(S.T_ACTION_CHUNK, [])}
            ),
            # the residual(s) the policy ran (the online trainer labels the episode's round by them: rounds.py)
            "residual_versions": sorted({str(m.msg.residual_version) for m in per_topic.get(S.T_ACTION_CHUNK, [])}),
            "task": ep["info"]["task"],
            "missing_steps": ep["info"]["missing_steps"],
            "warnings": ep["warnings"],
        }
        write_json(tdir / f"episode_{eid:06d}.json", tinfo)
    except OSError as e:
        raise OutputError(
            f"{e.filename or stage}: cannot write ({e.strerror}); expected a writable directory"
        ) from None
    od.add(eid, tinfo, replaced)


def read_transitions(out: str | Path, episode_id: int) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, info)`` of one converted episode's chunk transitions (arrays empty if it had no chunk)."""
    tdir = Path(out) / "transitions"
    info = json.loads((tdir / f"episode_{episode_id:06d}.json").read_text())
    arrays: dict[str, np.ndarray] = {}
    if info.get("has_transitions"):
        with np.load(tdir / f"episode_{episode_id:06d}.npz") as z:
            arrays = {k: z[k] for k in z.files}
    return arrays, info


# ------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    """``bora bag`` (:mod:`bora_trainer.data.bag_cli`)."""
    from bora_trainer.data.bag_cli import main as cli_main

    return cli_main(argv)
