"""``bora bag convert BAG... --out DIR``: rosbag2 recordings -> episodes -> chunk transitions.

Per episode (messages grouped by ``episode_id`` over all given bags):

* executed steps from ``/bora/executed_command`` (``A_exec``, ``is_intervention``, ``beta``, ``held``),
  keyed by ``command.step``; the episode length T is the ``step`` of its terminal EpisodeEvent
  (SUCCESS / FAILURE / ABORT; ABORT with a note starting "timeout" = timeout), or the last
  recorded step + 1 when there is none: such an episode is kept with ``outcome: null`` and
  ``outcome_missing: true`` (flagged, never guessed: no terminal reward, no done). An episode whose
  START event is in none of the bags (the recording began mid-episode) is flagged
  ``start_recorded: false``; the online trainer does not ingest those.
* takeovers from ``/bora/intervention`` (START s .. END e, exclusive; RECOVERED r attaches to the
  open or most recent takeover, clamped into it); rewards and dones are recomputed with
  :func:`bora_trainer.rewards.compute_rewards` and the configured :class:`RewardConfig`.
* observations (``/bora/observation``: state = arm + hand positions, colour, depth) for the
  episode files; ``--transitions-only`` does without them.
* chunks (``/bora/action_chunk``): z_t, normalised proprio, base chunk (``base_norm``), base /
  residual / final in physical units -> chunk transitions with the k executed steps
  (:func:`bora_trainer.data.replay.chunk_transitions`), per-step ``is_intervention``/``beta``,
  rewards, dones and validity masks (steps whose ExecutedCommand is missing are masked out).

Robustness: duplicated messages (same key) are dropped (identical ones silently; differing
ones keep the first received, with a warning), out-of-order arrival is irrelevant (everything is
keyed by step), a truncated bag keeps every complete message (warning), missing topics raise
:class:`MissingTopicsError` listing them.

Output (idempotent: a sha256 over each episode's messages names it; converting the same bags
again skips known episodes, and a changed reward config rewrites them in place under the same id):

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
``step`` [n]. The trainer normalises ``action_physical`` with its run's normaliser on ingest.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_io import BagData, BagReadError, read_bag
from bora_trainer.data.episodes import DatasetMeta, _atomic_write_bytes, write_episode
from bora_trainer.rewards import RewardConfig, compute_dones, compute_rewards

TRANSITIONS_FORMAT = "bora-bag-transitions/1"
CONVERTER_VERSION = "1"
EPISODE_KINDS = {0: "start", 1: "success", 2: "failure", 3: "abort"}
INT_START, INT_END, INT_RECOVERED = 0, 1, 2


class MissingTopicsError(ValueError):
    """The bags lack topics the conversion needs."""

    def __init__(self, missing: list[str], bags: list[str]):
        self.missing = missing
        super().__init__(
            f"missing topic(s) {missing} in {bags}: record them (config/record_topics.yaml, group "
            f"'bora'); /bora/intervention must be recorded even when nobody takes over"
        )


class ConversionError(ValueError):
    """Recorded messages are inconsistent (shapes, names) in a way that cannot be converted."""


@dataclass
class ConvertConfig:
    """Conversion options. ``fps``: None = estimated from the ExecutedCommand stamps (fallback 30)."""

    rewards: RewardConfig = field(default_factory=RewardConfig)
    transitions_only: bool = False
    fps: float | None = None
    only_complete: bool = False  # skip episodes without an outcome (the trainer, while a bag is live)


@dataclass
class Msg:
    key: tuple
    log_time: int
    raw: bytes
    msg: Any


@dataclass
class EpisodeResult:
    source_episode_id: int
    content_hash: str
    status: str  # "written" | "rewritten" | "skipped" | "incomplete-skipped"
    episode_id: int | None = None
    num_steps: int = 0
    num_chunks: int = 0
    outcome: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ConvertReport:
    episodes: list[EpisodeResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

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


def load_bags(
    bags: list[str | Path], transitions_only: bool = False
) -> tuple[dict[str, list[Msg]], list[str], list[str]]:
    """Decode the needed topics of all bags, deduplicated. Returns (topic -> msgs, warnings, truncated)."""
    datas: list[BagData] = []
    for b in bags:
        datas.append(read_bag(b))
    present = set().union(*(d.topics for d in datas)) if datas else set()
    need = list(S.REQUIRED_TOPICS) + ([] if transitions_only else list(S.EPISODE_TOPICS))
    missing = [t for t in need if t not in present]
    if missing:
        raise MissingTopicsError(missing, [str(b) for b in bags])
    warnings = [w for d in datas for w in d.warnings]
    truncated = [str(d.path) for d in datas if d.truncated]
    wanted = set(need) | {S.T_OBSERVATION}
    groups: dict[str, dict[tuple, list[Msg]]] = defaultdict(lambda: defaultdict(list))
    for d in datas:
        ts = S.typestore_for_definitions({c.msgtype: (c.fmt, c.msgdef) for c in d.connections.values()})
        for cid, t_ns, raw in d.messages:
            conn = d.connections[cid]
            if conn.topic not in wanted:
                continue
            if conn.msgtype != S.TOPIC_TYPES[conn.topic]:
                raise ConversionError(
                    f"{d.path}: topic {conn.topic} has type {conn.msgtype}, "
                    f"expected {S.TOPIC_TYPES[conn.topic]}"
                )
            try:
                m = ts.deserialize_cdr(raw, conn.msgtype)
            except Exception as e:  # noqa: BLE001 - one undecodable message must not sink the bag
                warnings.append(f"{d.path}: undecodable {conn.topic} message at {t_ns} dropped ({e})")
                continue
            k = _key(conn.topic, m)
            # canonical bytes (re-serialised): DDS may add trailing CDR padding that a direct write lacks
            groups[conn.topic][k].append(Msg(k, t_ns, bytes(ts.serialize_cdr(m, conn.msgtype)), m))
    out: dict[str, list[Msg]] = {}
    for topic, by_key in groups.items():
        kept = []
        ndup = 0
        for k, ms in by_key.items():
            ms.sort(key=lambda x: x.log_time)
            if len(ms) > 1:
                ndup += len(ms) - 1
                if any(x.raw != ms[0].raw for x in ms[1:]):
                    warnings.append(
                        f"{topic}: {len(ms)} differing messages for key {k}; kept the first received"
                    )
            kept.append(ms[0])
        if ndup:
            warnings.append(f"{topic}: {ndup} duplicated message(s) dropped")
        kept.sort(key=lambda x: x.key)
        out[topic] = kept
    for t in need:
        out.setdefault(t, [])
    return out, warnings, truncated


# ------------------------------------------------------------------------------------ one episode
def _image(img: Any, what: str) -> np.ndarray:
    h, w, enc = int(img.height), int(img.width), str(img.encoding)
    buf = np.frombuffer(bytes(img.data), dtype=np.uint8)
    if enc in ("rgb8", "bgr8"):
        a = buf.reshape(h, int(img.step))[:, : w * 3].reshape(h, w, 3)
        return a[..., ::-1].copy() if enc == "bgr8" else a.copy()
    if enc == "32FC1":
        return (
            np.frombuffer(bytes(img.data), dtype="<f4" if not img.is_bigendian else ">f4")
            .reshape(h, int(img.step) // 4)[:, :w]
            .astype(np.float32)
        )
    if enc == "16UC1":
        mm = np.frombuffer(bytes(img.data), dtype="<u2" if not img.is_bigendian else ">u2").reshape(
            h, int(img.step) // 2
        )[:, :w]
        return mm.astype(np.float32) / 1000.0
    raise ConversionError(f"{what}: image encoding {enc!r} not supported (rgb8, bgr8, 32FC1, 16UC1)")


def _outcome(events: list[Msg], warnings: list[str]) -> tuple[str | None, int | None, dict]:
    terms = sorted((e for e in events if int(e.msg.kind) in (1, 2, 3)), key=lambda e: e.log_time)
    start = next((e.msg for e in sorted(events, key=lambda e: e.log_time) if int(e.msg.kind) == 0), None)
    first = terms[0].msg if terms else None
    meta = {"task": "", "object_set": "", "note": "", "start_recorded": start is not None}
    for m in (start, first):
        if m is not None:
            meta["task"] = meta["task"] or str(m.task)
            meta["object_set"] = meta["object_set"] or str(m.object_set)
    if not terms:
        return None, None, meta
    if len({(int(e.msg.kind), int(e.msg.step)) for e in terms}) > 1:
        warnings.append(
            f"several terminal events {[(EPISODE_KINDS[int(e.msg.kind)], int(e.msg.step)) for e in terms]}"
            "; the first received decides"
        )
    kind = EPISODE_KINDS[int(first.kind)]
    if kind == "abort" and str(first.note).lower().startswith("timeout"):
        kind = "timeout"
    meta["note"] = str(first.note)
    return kind, int(first.step), meta


def _takeovers(events: list[Msg], T: int, warnings: list[str]) -> list[dict]:
    order = {INT_RECOVERED: 0, INT_END: 1, INT_START: 2}
    evs = sorted(events, key=lambda e: (int(e.msg.step), order.get(int(e.msg.kind), 3)))
    tks: list[dict] = []
    open_tk: dict | None = None
    for e in evs:
        s, kind = int(e.msg.step), int(e.msg.kind)
        if s > T or (s == T and kind == INT_START):
            warnings.append(
                f"intervention event kind={kind} at step {s} is past the episode end ({T}); ignored"
            )
            continue
        if kind == INT_START:
            if open_tk is not None:
                warnings.append(
                    f"takeover START at step {s} while one is open since {open_tk['start']}; ignored"
                )
                continue
            open_tk = {"start": s, "end": None, "rec": None}
            tks.append(open_tk)
        elif kind == INT_END:
            if open_tk is None:
                warnings.append(f"takeover END at step {s} without a START; ignored")
                continue
            open_tk["end"] = max(s, open_tk["start"] + 1)
            open_tk = None
        elif kind == INT_RECOVERED:
            tgt = open_tk or (tks[-1] if tks else None)
            if tgt is None:
                warnings.append(f"RECOVERED at step {s} without a takeover; ignored")
                continue
            tgt["rec"] = s
    out = []
    for tk in tks:
        end = T if tk["end"] is None else min(tk["end"], T)
        rec = tk["rec"]
        out.append(
            {
                "start": tk["start"],
                "end": end,
                "recovered": None if rec is None else int(min(max(rec, tk["start"]), end - 1)),
            }
        )
    return [dict(d, recovered=(d["recovered"] if d["recovered"] is not None else False)) for d in out]


def _episode_hash(per_topic: dict[str, list[Msg]]) -> str:
    h = hashlib.sha256(f"bora-bag-episode/{CONVERTER_VERSION}".encode())
    for topic in sorted(per_topic):
        for m in sorted(per_topic[topic], key=lambda x: x.key):
            h.update(topic.encode() + b"|" + repr(m.key).encode() + b"|")
            h.update(hashlib.sha256(m.raw).digest())
    return h.hexdigest()


def build_episode(src_id: int, per_topic: dict[str, list[Msg]], cfg: ConvertConfig) -> dict[str, Any]:
    """Arrays, info and transitions of one recorded episode (see module docstring)."""
    warnings: list[str] = []
    cmds = {m.key[1]: m.msg for m in per_topic.get(S.T_EXECUTED, [])}
    if not cmds:
        raise ConversionError(f"episode {src_id}: no ExecutedCommand")
    outcome, t_end, ev_meta = _outcome(per_topic.get(S.T_EPISODE, []), warnings)
    last = max(cmds)
    if t_end is None:
        T = last + 1
        warnings.append(f"episode {src_id}: no outcome event (SUCCESS/FAILURE/ABORT); kept with outcome null")
    else:
        T = t_end
        late = [s for s in cmds if s >= T]
        if late:
            warnings.append(
                f"episode {src_id}: {len(late)} executed step(s) at or after the end step {T} dropped"
            )
        if T <= 0:
            raise ConversionError(f"episode {src_id}: terminal event at step {T}: empty episode")
    first = cmds[min(cmds)]
    names = list(first.command.joint_names)
    A = len(first.command.position)
    action = np.zeros((T, A), np.float32)
    is_int = np.zeros(T, bool)
    beta = np.zeros(T, np.float32)
    valid = np.zeros(T, bool)
    held: list[int] = []
    stamps = []
    for s, c in cmds.items():
        if s >= T:
            continue
        if len(c.command.position) != A:
            raise ConversionError(
                f"episode {src_id} step {s}: ExecutedCommand.command.position has "
                f"{len(c.command.position)} values, expected action_dim={A}"
            )
        action[s] = np.asarray(c.command.position, np.float32)
        is_int[s], beta[s], valid[s] = bool(c.is_intervention), float(c.beta), True
        if c.held:
            held.append(s)
        stamps.append(int(c.command.header.stamp.sec) * 10**9 + int(c.command.header.stamp.nanosec))
    missing = np.flatnonzero(~valid).tolist()
    if missing:
        warnings.append(f"episode {src_id}: {len(missing)} step(s) without an ExecutedCommand (masked out)")
        idx = np.where(valid, np.arange(T), -1)
        idx = np.maximum.accumulate(idx)
        firstv = int(np.flatnonzero(valid)[0])
        idx[idx < 0] = firstv
        action = action[idx]
    takeovers = _takeovers(per_topic.get(S.T_INTERVENTION, []), T, warnings)
    reward, comps = compute_rewards(T, outcome, takeovers, cfg.rewards, return_components=True)
    done = compute_dones(T, outcome)

    arrays: dict[str, np.ndarray] = {
        "action": action,
        "is_intervention": is_int,
        "beta": beta,
        "reward": reward,
        "done": done,
    }
    # --- chunks
    chunks = [m.msg for m in per_topic.get(S.T_ACTION_CHUNK, []) if m.key[1] < T]
    trans = None
    policy_action = np.zeros((T, A), np.float32)
    base_action = np.zeros((T, A), np.float32)
    chunk_start = np.zeros(T, bool)
    covered = np.zeros(T, bool)
    if chunks:
        k = int(chunks[0].chunk_size)
        Z, Sd = len(chunks[0].cognition_token), len(chunks[0].proprio_norm)
        for c in chunks:
            for name, got, want in (
                ("chunk_size", int(c.chunk_size), k),
                ("action_dim", int(c.action_dim), A),
                ("cognition_token length", len(c.cognition_token), Z),
                ("proprio_norm length", len(c.proprio_norm), Sd),
            ):
                if got != want:
                    raise ConversionError(
                        f"episode {src_id} chunk at step {c.step}: {name} is {got}, expected {want}"
                    )
            for fld in ("base", "residual", "final", "base_norm"):
                if len(getattr(c, fld)) != k * A:
                    raise ConversionError(
                        f"episode {src_id} chunk at step {c.step}: {fld} has "
                        f"{len(getattr(c, fld))} values, expected chunk_size*action_dim={k * A}"
                    )
        starts = np.array([int(c.step) for c in chunks], np.int64)
        rs = lambda f: np.stack([np.asarray(getattr(c, f), np.float32).reshape(k, A) for c in chunks])  # noqa: E731
        base_norm, base_phys, residual, final = rs("base_norm"), rs("base"), rs("residual"), rs("final")
        z = np.stack([np.asarray(c.cognition_token, np.float32) for c in chunks])
        prop = np.stack([np.asarray(c.proprio_norm, np.float32) for c in chunks])
        for j, s in enumerate(starts):
            e = min(T, s + k, starts[j + 1] if j + 1 < len(starts) else T)
            policy_action[s:e] = final[j, : e - s]
            base_action[s:e] = base_phys[j, : e - s]
            covered[s:e] = True
        chunk_start[starts] = True
        from bora_trainer.data.replay import chunk_transitions

        trans = chunk_transitions(
            action,
            reward,
            done,
            starts,
            z,
            prop,
            base_norm,
            k,
            base=base_norm,
            is_intervention=is_int,
            beta=beta,
            episode=src_id,
        )
        stepidx = np.minimum(starts[:, None] + np.arange(k)[None], T - 1)
        trans["mask"] &= valid[stepidx]
        trans["action_physical"] = trans.pop("action")
        trans.update(
            base_physical=base_phys,
            residual=residual,
            final=final,
            residual_scale=np.array([c.residual_scale for c in chunks], np.float32),
        )
        arrays["policy_action"] = policy_action
        arrays["base_action"] = base_action
        arrays["chunk_start"] = chunk_start
        zfull = np.zeros((T, Z), np.float32)
        zfull[starts] = z
        arrays["z"] = zfull
        if not covered.all():
            warnings.append(
                f"episode {src_id}: {int((~covered).sum())} step(s) not covered by any ActionChunk"
            )
    # --- observations
    obs = {m.key[1]: m.msg for m in per_topic.get(S.T_OBSERVATION, []) if m.key[1] < T}
    obs_meta = None
    instruction = ""
    if not cfg.transitions_only:
        if not obs:
            raise ConversionError(
                f"episode {src_id}: no /bora/observation message (use --transitions-only "
                "to convert without episode files)"
            )
        o0 = obs[min(obs)]
        cams = list(o0.camera_names)
        H, W = (int(o0.color[0].height), int(o0.color[0].width)) if cams else (0, 0)
        arm_names, hand_names = list(o0.arm.name), list(o0.hand.name)
        if len(arm_names) + len(hand_names) != A:
            raise ConversionError(
                f"episode {src_id}: Observation has {len(arm_names)}+{len(hand_names)} joints, "
                f"but the ExecutedCommand action_dim is {A}"
            )
        state = np.zeros((T, A), np.float32)
        color = np.zeros((T, len(cams), H, W, 3), np.uint8)
        depth = np.zeros((T, len(cams), H, W), np.float32)
        have = np.zeros(T, bool)
        for s, o in obs.items():
            if list(o.camera_names) != cams:
                raise ConversionError(
                    f"episode {src_id} step {s}: camera_names {list(o.camera_names)} != {cams}"
                )
            state[s] = np.concatenate(
                [np.asarray(o.arm.position, np.float32), np.asarray(o.hand.position, np.float32)]
            )
            for i in range(len(cams)):
                c = _image(o.color[i], f"episode {src_id} step {s} color[{i}]")
                d = _image(o.depth[i], f"episode {src_id} step {s} depth[{i}]")
                if c.shape[:2] != (H, W) or d.shape != (H, W):
                    raise ConversionError(
                        f"episode {src_id} step {s}: camera {cams[i]} image {c.shape[:2]} / depth "
                        f"{d.shape}, expected {(H, W)}"
                    )
                color[s, i], depth[s, i] = c, np.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0)
            have[s] = True
            instruction = instruction or str(o.instruction)
        if not have.all():
            warnings.append(
                f"episode {src_id}: {int((~have).sum())} step(s) without an Observation "
                "(filled from the previous one)"
            )
            idx = np.maximum.accumulate(np.where(have, np.arange(T), -1))
            idx[idx < 0] = int(np.flatnonzero(have)[0])
            state, color, depth = state[idx], color[idx], depth[idx]
        arrays.update(state=state, color=color, depth=depth)
        obs_meta = dict(
            camera_names=cams, image_size=[H, W], arm_joint_names=arm_names, hand_joint_names=hand_names
        )
    fps = cfg.fps
    if fps is None and len(stamps) > 2:
        dt = np.median(np.diff(np.sort(np.asarray(stamps)))) / 1e9
        fps = float(round(1.0 / dt, 3)) if dt > 0 else None
    info = {
        "task": ev_meta["task"],
        "instruction": instruction,
        "object_set": ev_meta["object_set"],
        "seed": None,
        "success": None if outcome is None else outcome == "success",
        "outcome": outcome,
        "outcome_missing": outcome is None,
        # False: the recording began after the episode's START (its beginning is missing)
        "start_recorded": ev_meta["start_recorded"],
        "num_steps": T,
        "interventions": takeovers,
        "source": "policy" if chunks else "operator",
        "quality": {},
        "reward_components": {k: float(v.sum()) for k, v in comps.items()},
        "missing_steps": missing,
        "held_steps": held,
        "joint_names": names,
        "source_episode_id": src_id,
        "warnings": warnings,
    }
    return {
        "arrays": arrays,
        "info": info,
        "transitions": trans,
        "obs_meta": obs_meta,
        "fps": fps,
        "content_hash": _episode_hash(per_topic),
        "warnings": warnings,
    }


# ------------------------------------------------------------------------------------ the output dir
def _known(out: Path) -> dict[str, dict]:
    """content_hash -> transitions info of the episodes already in ``out``."""
    known = {}
    for js in sorted((out / "transitions").glob("episode_*.json")):
        try:
            d = json.loads(js.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        known[d["content_hash"]] = d
    return known


def _next_id(out: Path) -> int:
    ids = [int(p.stem.split("_")[1]) for p in (out / "transitions").glob("episode_*.json")]
    ids += [int(p.stem.split("_")[1]) for p in (out / "episodes").glob("episode_*.json")]
    return max(ids) + 1 if ids else 0


def _reward_hash(cfg: RewardConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:16]


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    _atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def convert(
    bags: list[str | Path], out: str | Path, cfg: ConvertConfig | None = None, progress: bool = False
) -> ConvertReport:
    """Convert ``bags`` into ``out`` (see module docstring); returns what happened per episode."""
    cfg = cfg or ConvertConfig()
    out = Path(out)
    msgs, warnings, truncated = load_bags(bags, cfg.transitions_only)
    report = ConvertReport(warnings=warnings, truncated=truncated)
    per_ep: dict[int, dict[str, list[Msg]]] = defaultdict(lambda: defaultdict(list))
    for topic, ms in msgs.items():
        for m in ms:
            per_ep[m.key[0]][topic].append(m)
    per_ep.pop(0, None)  # episode_id 0 = no episode running
    known = _known(out)
    rhash = _reward_hash(cfg.rewards)
    ids = sorted(per_ep)
    it = ids
    if progress:
        from tqdm import tqdm

        it = tqdm(ids, desc="episodes", unit="ep")
    for src in it:
        per_topic = per_ep[src]
        if not per_topic.get(S.T_EXECUTED):
            report.warnings.append(f"episode {src}: events but no ExecutedCommand; skipped")
            continue
        ep = build_episode(src, per_topic, cfg)
        res = EpisodeResult(
            src,
            ep["content_hash"],
            "written",
            warnings=ep["warnings"],
            num_steps=ep["info"]["num_steps"],
            outcome=ep["info"]["outcome"],
        )
        if cfg.only_complete and ep["info"]["outcome_missing"]:
            res.status = "incomplete-skipped"
            report.episodes.append(res)
            continue
        prev = known.get(ep["content_hash"])
        mode = "transitions" if cfg.transitions_only else "episodes"
        if prev is not None:
            res.episode_id = int(prev["episode_id"])
            if prev.get("reward_config_hash") == rhash and prev.get("mode") == mode:
                res.status = "skipped"
                report.episodes.append(res)
                continue
            res.status = "rewritten"
        else:
            res.episode_id = _next_id(out)
        eid = res.episode_id
        trans = ep["transitions"]
        tdir = out / "transitions"
        tmeta_path = tdir / "meta.json"
        if trans is not None:
            n, k, A = trans["base"].shape
            tmeta = {
                "format": TRANSITIONS_FORMAT,
                "chunk_size": int(k),
                "action_dim": int(A),
                "state_dim": int(trans["proprio"].shape[1]),
                "z_dim": int(trans["z"].shape[1]),
            }
            if tmeta_path.exists():
                old = json.loads(tmeta_path.read_text())
                for key in ("chunk_size", "action_dim", "state_dim", "z_dim"):
                    if old.get(key) != tmeta[key]:
                        raise ConversionError(
                            f"{tmeta_path}: {key}={old.get(key)} but episode {src} has {tmeta[key]}"
                        )
            else:
                payload = json.dumps(tmeta, indent=2).encode()
                _atomic_write_bytes(tmeta_path, lambda f, p=payload: f.write(p))
            trans = dict(trans, episode=np.full(n, eid, np.int64))
            _save_npz(tdir / f"episode_{eid:06d}.npz", trans)
            res.num_chunks = int(n)
        if not cfg.transitions_only:
            om = ep["obs_meta"]
            meta = DatasetMeta(
                fps=float(cfg.fps or ep["fps"] or 30.0),
                tasks=[ep["info"]["task"]] if ep["info"]["task"] else [],
                **om,
            )
            if (out / "meta.json").exists():
                meta.fps = json.loads((out / "meta.json").read_text()).get("fps", meta.fps)
            info = dict(
                ep["info"], content_hash=ep["content_hash"], reward_config=dataclasses.asdict(cfg.rewards)
            )
            write_episode(out, eid, ep["arrays"], info, meta)
        tinfo = {
            "episode_id": eid,
            "content_hash": ep["content_hash"],
            "reward_config_hash": rhash,
            "mode": mode,
            "num_chunks": res.num_chunks,
            "num_steps": ep["info"]["num_steps"],
            "outcome": ep["info"]["outcome"],
            "outcome_missing": ep["info"]["outcome_missing"],
            "start_recorded": ep["info"]["start_recorded"],
            "source_episode_id": src,
            "bags": [str(b) for b in bags],
            "has_transitions": trans is not None,
            "normalizer_versions": sorted(
                {str(m.msg.normalizer_version) for m in per_topic.get(S.T_ACTION_CHUNK, [])}
            ),
            "task": ep["info"]["task"],
            "warnings": ep["warnings"],
        }
        payload = json.dumps(tinfo, indent=2).encode()
        _atomic_write_bytes(tdir / f"episode_{eid:06d}.json", lambda f, p=payload: f.write(p))
        known[ep["content_hash"]] = tinfo
        report.episodes.append(res)
    return report


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
def _reward_cfg(path: str | None) -> RewardConfig:
    if not path:
        return RewardConfig()
    from bora_trainer.config_io import load_config, read_yaml

    data = read_yaml(path)
    section = "rewards" if "rewards" in data else None
    return load_config(RewardConfig, data, section=section)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bora bag", description="rosbag2 recordings of the BORA topics -> data.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="<verb>")
    c = sub.add_parser(
        "convert",
        help="bags -> episodes (bora-episodes/1) + chunk transitions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("bags", nargs="+", help="rosbag2 directories (MCAP or sqlite3) or single .mcap/.db3 files")
    c.add_argument("--out", required=True, help="output directory (created; existing episodes are kept)")
    c.add_argument(
        "--rewards", help="YAML with reward constants (a 'rewards' section, e.g. config/trainer.yaml)"
    )
    c.add_argument(
        "--transitions-only", action="store_true", help="no episode files (no /bora/observation needed)"
    )
    c.add_argument(
        "--fps", type=float, help="control rate (default: estimated from the ExecutedCommand stamps)"
    )
    c.add_argument(
        "--strict", action="store_true", help="exit 1 on any warning (truncation, duplicates, ...)"
    )
    i = sub.add_parser("info", help="topics, types and message counts of bags (tolerant of truncation)")
    i.add_argument("bags", nargs="+")
    args = p.parse_args(argv)
    try:
        if args.verb == "info":
            for b in args.bags:
                d = read_bag(b)
                counts: dict[int, int] = defaultdict(int)
                for cid, _, _ in d.messages:
                    counts[cid] += 1
                print(f"{b}: {len(d.messages)} messages{' (TRUNCATED)' if d.truncated else ''}")
                for cid, conn in sorted(d.connections.items(), key=lambda x: x[1].topic):
                    print(f"  {conn.topic:48s} {conn.msgtype:36s} {counts[cid]}")
                for w in d.warnings:
                    print(f"  warning: {w}")
            return 0
        cfg = ConvertConfig(
            rewards=_reward_cfg(args.rewards), transitions_only=args.transitions_only, fps=args.fps
        )
        rep = convert(args.bags, args.out, cfg, progress=sys.stderr.isatty())
    except (MissingTopicsError, ConversionError, BagReadError) as e:
        print(f"bora bag {args.verb}: error: {e}", file=sys.stderr)
        return 2
    for w in rep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in rep.episodes:
        for w in e.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(
            f"episode {e.source_episode_id} -> {e.episode_id}: {e.status}, {e.num_steps} steps, "
            f"{e.num_chunks} chunks, outcome {e.outcome}, {e.content_hash[:12]}"
        )
    print(f"{args.out}: {rep.summary()}")
    n_warn = len(rep.warnings) + sum(len(e.warnings) for e in rep.episodes)
    return 1 if args.strict and n_warn else 0
