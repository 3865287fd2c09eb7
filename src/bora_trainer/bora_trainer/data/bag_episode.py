"""One recorded episode -> episode arrays, info and chunk transitions (the core of ``bora bag convert``).

See :mod:`bora_trainer.data.bag_convert` for the rules; this module holds the per-episode part:
executed steps and their validity mask, takeovers, outcome, rewards/dones, chunks, observations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bora_policy.common.rewards import RewardConfig, compute_dones, compute_rewards
from bora_policy.runtime.processor import ObservationProcessor, ProcessorConfig
from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_help import help_fields

CONVERTER_VERSION = "1"
EPISODE_KINDS = {0: "start", 1: "success", 2: "failure", 3: "abort"}
INT_START, INT_END, INT_RECOVERED = 0, 1, 2


class ConversionError(ValueError):
    """Recorded messages are inconsistent (shapes, names, types) in a way that cannot be converted."""


@dataclass
class ConvertConfig:
    """Conversion options. ``fps``: None = estimated from the ExecutedCommand stamps (fallback 30)."""

    rewards: RewardConfig = field(default_factory=RewardConfig)
    transitions_only: bool = False
    fps: float | None = None
    only_complete: bool = False  # skip episodes without an outcome (the trainer, while a bag is live)


@dataclass
class Msg:
    key: tuple  # (episode_id, ...) as in bag_convert._key; the session is kept apart
    log_time: int
    raw: bytes
    msg: Any
    session: str = ""
    bag: str = ""  # the bag it was read from (absolute path)


# ------------------------------------------------------------------------------------ one episode
def _image(img: Any, what: str) -> np.ndarray:
    from bora_policy.runtime.image_codec import decode_compressed, is_compressed

    if is_compressed(img):  # image_transport compressed (JPEG/PNG) or compressedDepth (16-bit PNG)
        try:
            return decode_compressed(img)
        except ValueError as e:
            raise ConversionError(f"{what}: {e}") from e
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
            warnings.append(f"intervention event kind={kind} at step {s} is past the episode end ({T}); ignored")
            continue
        if kind == INT_START:
            if open_tk is not None:
                warnings.append(f"takeover START at step {s} while one is open since {open_tk['start']}; ignored")
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


def build_episode(
    src_id: int,
    per_topic: dict[str, list[Msg]],
    cfg: ConvertConfig,
    session: str = "",
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Arrays, info and transitions of one recorded episode (see :mod:`bag_convert`).

    ``session``: the recording session the episode belongs to (its label in messages);
    ``warnings``: what loading already found about this episode (duplicates), kept in its JSON.
    """
    warnings = list(warnings or [])
    label = f"{src_id} of session {session[:12]}" if session else str(src_id)
    cmds = _usable_commands({m.key[1]: m.msg for m in per_topic.get(S.T_EXECUTED, [])}, label, warnings)
    outcome, t_end, ev_meta = _outcome(per_topic.get(S.T_EPISODE, []), warnings)
    if t_end is not None and t_end > 4 * len(cmds) + 1000:  # a damaged step field, not an episode end
        warnings.append(f"episode {label}: terminal event at step {t_end} is implausible (damaged?); ignored")
        outcome, t_end = None, None
    last = max(cmds)
    if t_end is None:
        T = last + 1
        warnings.append(f"episode {label}: no outcome event (SUCCESS/FAILURE/ABORT); kept with outcome null")
    else:
        T = t_end
        late = [s for s in cmds if s >= T]
        if late:
            warnings.append(f"episode {label}: {len(late)} executed step(s) at or after the end step {T} dropped")
        if T <= 0:
            raise ConversionError(f"episode {label}: terminal event at step {T}: empty episode")
    names = list(_majority(tuple(c.command.joint_names) for c in cmds.values()))
    A = len(next(iter(cmds.values())).command.position)
    action = np.zeros((T, A), np.float32)
    is_int = np.zeros(T, bool)
    beta = np.zeros(T, np.float32)
    valid = np.zeros(T, bool)
    held: list[int] = []
    stamps = []
    for s, c in cmds.items():
        if s >= T:
            continue
        action[s] = np.asarray(c.command.position, np.float32)
        is_int[s], beta[s], valid[s] = bool(c.is_intervention), float(c.beta), True
        if c.held:
            held.append(s)
        stamps.append(int(c.command.header.stamp.sec) * 10**9 + int(c.command.header.stamp.nanosec))
    missing = np.flatnonzero(~valid).tolist()
    takeovers = _takeovers(per_topic.get(S.T_INTERVENTION, []), T, warnings)
    if missing:
        warnings.append(
            f"episode {label}: {len(missing)} step(s) without an ExecutedCommand {_ranges(missing)} "
            "(valid = false in the episode file; masked out of every chunk)"
        )
        idx = np.where(valid, np.arange(T), -1)
        idx = np.maximum.accumulate(idx)
        firstv = int(np.flatnonzero(valid)[0])
        idx[idx < 0] = firstv
        action = action[idx]
        _fill_gaps_in_takeovers(valid, is_int, beta, takeovers)
    if not ev_meta["start_recorded"]:
        warnings.append(f"episode {label}: its START event was not recorded (the recording began mid-episode)")
    _check_flags(is_int, valid, takeovers, label, warnings)
    reward, comps = compute_rewards(T, outcome, takeovers, cfg.rewards, return_components=True)
    done = compute_dones(T, outcome)

    arrays: dict[str, np.ndarray] = {
        "valid": valid,
        "action": action,
        "is_intervention": is_int,
        "beta": beta,
        "reward": reward,
        "done": done,
    }
    # --- chunks
    chunks = _usable_chunks([m.msg for m in per_topic.get(S.T_ACTION_CHUNK, []) if m.key[1] < T], A, label, warnings)
    trans = None
    policy_action = np.zeros((T, A), np.float32)
    base_action = np.zeros((T, A), np.float32)
    chunk_start = np.zeros(T, bool)
    covered = np.zeros(T, bool)
    if chunks:
        k = int(chunks[0].chunk_size)
        Z = len(chunks[0].cognition_token)
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
            valid=valid,
        )
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
            warnings.append(f"episode {label}: {int((~covered).sum())} step(s) not covered by any ActionChunk")
    # --- observations
    obs = {m.key[1]: m.msg for m in per_topic.get(S.T_OBSERVATION, []) if m.key[1] < T}
    obs_meta = None
    instruction = ""
    if not cfg.transitions_only:
        if not obs:
            raise ConversionError(
                f"episode {label}: no /bora/observation message (use --transitions-only "
                "to convert without episode files)"
            )
        ref = _majority(_obs_shape(o) for o in obs.values())
        cams, arm_names, hand_names, (H, W) = list(ref[0]), list(ref[1]), list(ref[2]), ref[3]
        if len(arm_names) + len(hand_names) != A:
            raise ConversionError(
                f"episode {label}: Observation has {len(arm_names)}+{len(hand_names)} joints, "
                f"but the ExecutedCommand action_dim is {A}"
            )
        proc = ObservationProcessor(cfg=ProcessorConfig(arm_dim=len(arm_names), hand_dim=len(hand_names)))
        state = np.zeros((T, A), np.float32)
        color = np.zeros((T, len(cams), H, W, 3), np.uint8)
        depth = np.zeros((T, len(cams), H, W), np.float32)
        have = np.zeros(T, bool)
        bad: dict[int, str] = {}
        for s, o in obs.items():
            try:  # one damaged Observation is dropped (the step becomes obs_valid = false), not fatal
                if _obs_shape(o) != ref:
                    raise ConversionError(f"cameras/joints/image size {_obs_shape(o)}, expected {ref}")
                st = proc.state(o.arm.position, o.hand.position)  # [arm q, hand q] float32
                if not np.isfinite(st).all() or np.abs(st).max(initial=0) > 1e6:
                    raise ConversionError("non-finite or absurd joint positions")
                imgs = []
                for i in range(len(cams)):
                    c = _image(o.color[i], f"color[{i}]")
                    d = _image(o.depth[i], f"depth[{i}]")
                    if c.shape[:2] != (H, W) or d.shape != (H, W):
                        raise ConversionError(
                            f"camera {cams[i]} image {c.shape[:2]} / depth {d.shape}, expected {(H, W)}"
                        )
                    imgs.append((c, np.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0)))
            except (ConversionError, ValueError, IndexError) as e:
                bad[s] = str(e)
                continue
            state[s] = st
            for i, (c, d) in enumerate(imgs):
                color[s, i], depth[s, i] = c, d
            have[s] = True
            instruction = instruction or str(o.instruction)
        if bad:
            first = min(bad)
            msg = f"{len(bad)} unusable Observation(s) {_ranges(sorted(bad))}: step {first}: {bad[first]}"
            if not have.any():
                raise ConversionError(f"episode {label}: {msg}")
            warnings.append(f"episode {label}: {msg}; dropped")
        if not have.all():
            lead = int(np.flatnonzero(have)[0])
            warnings.append(
                f"episode {label}: {int((~have).sum())} step(s) without an Observation "
                f"{_ranges(np.flatnonzero(~have).tolist())} (obs_valid = false; filled from the previous "
                + (f"one, the {lead} leading one(s) from the first recorded, step {lead})" if lead else "one)")
            )
            idx = np.maximum.accumulate(np.where(have, np.arange(T), -1))
            idx[idx < 0] = int(np.flatnonzero(have)[0])
            state, color, depth = state[idx], color[idx], depth[idx]
        arrays.update(state=state, color=color, depth=depth, obs_valid=have)
        obs_meta = dict(camera_names=cams, image_size=[H, W], arm_joint_names=arm_names, hand_joint_names=hand_names)
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
        "session_id": session,
        "num_valid_steps": int(valid.sum()),
        "warnings": warnings,
    }
    info.update(help_fields(per_topic, T, warnings, label))  # help requests + critic values (bag_help.py)
    if obs_meta is not None:  # the episode file's own checks, before anything is written
        from bora_policy.common.episodes import _DTYPES, DatasetMeta, EpisodeFormatError, validate_episode

        try:
            validate_episode(
                {k: np.asarray(v, _DTYPES.get(k)) for k, v in arrays.items()}, DatasetMeta(1.0, **obs_meta)
            )
        except EpisodeFormatError as e:
            raise ConversionError(f"episode {label}: {e}") from None
    return {
        "arrays": arrays,
        "info": info,
        "transitions": trans,
        "obs_meta": obs_meta,
        "fps": fps,
        "content_hash": _episode_hash(per_topic),
        "warnings": warnings,
    }


def _ranges(steps: list[int]) -> str:
    """[3, 4, 5, 9] -> "(steps 3-5, 9)"."""
    parts, i = [], 0
    while i < len(steps):
        j = i
        while j + 1 < len(steps) and steps[j + 1] == steps[j] + 1:
            j += 1
        parts.append(str(steps[i]) if i == j else f"{steps[i]}-{steps[j]}")
        i = j + 1
    return f"(step{'s' if len(steps) > 1 else ''} {', '.join(parts)})"


def _fill_gaps_in_takeovers(valid: np.ndarray, is_int: np.ndarray, beta: np.ndarray, takeovers: list[dict]) -> None:
    """A missing step inside a takeover keeps the takeover's flags: is_intervention true, beta of the
    nearest recorded step of the same takeover (the previous one first; 1 when none is recorded)."""
    for tk in takeovers:
        s, e = tk["start"], tk["end"]
        rec = [i for i in range(s, e) if valid[i]]
        for i in range(s, e):
            if valid[i]:
                continue
            prev = [j for j in rec if j < i]
            nxt = [j for j in rec if j > i]
            is_int[i] = True
            beta[i] = beta[prev[-1]] if prev else (beta[nxt[0]] if nxt else 1.0)


def _check_flags(is_int: np.ndarray, valid: np.ndarray, takeovers: list[dict], label: str, warnings: list[str]) -> None:
    """Report is_intervention runs that touch no takeover (START..END, or the ramp-down right after END)."""
    flagged = np.flatnonzero(is_int & valid).tolist()
    runs: list[list[int]] = []
    for s in flagged:
        if runs and s == runs[-1][-1] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    orphan = [
        s for run in runs if not any(run[0] <= tk["end"] and run[-1] + 1 > tk["start"] for tk in takeovers) for s in run
    ]
    if orphan:
        warnings.append(
            f"episode {label}: {len(orphan)} step(s) with is_intervention true but no takeover event "
            f"{_ranges(orphan)} on /bora/intervention (rewards have no r_int / r_rec for them)"
        )


def _majority(values):
    """The most common value (the first seen among equals): the episode's reference against damage."""
    from collections import Counter

    return Counter(values).most_common(1)[0][0]


def _obs_shape(o: Any) -> tuple:
    hw = (int(o.color[0].height), int(o.color[0].width)) if len(o.color) else (0, 0)
    return tuple(o.camera_names), tuple(o.arm.name), tuple(o.hand.name), hw


def _usable_commands(cmds: dict[int, Any], label: str, warnings: list[str]) -> dict[int, Any]:
    """ExecutedCommands that can be used: the episode's joint count (majority), finite values and a step
    within reach of the others (a damaged step field would make the episode absurdly long)."""
    if not cmds:
        raise ConversionError(f"episode {label}: no ExecutedCommand")
    A = _majority(len(c.command.position) for c in cmds.values())
    bound = 4 * len(cmds) + 1000
    bad: dict[int, str] = {}
    for s, c in cmds.items():
        pos = np.asarray(c.command.position, np.float64)
        if s > bound:
            bad[s] = f"step {s} far beyond the {len(cmds)} recorded"
        elif len(pos) != A:
            bad[s] = f"{len(pos)} joint values, expected {A}"
        elif not (np.isfinite(pos).all() and np.isfinite(c.beta)) or np.abs(pos).max(initial=0) > 1e6:
            bad[s] = "non-finite or absurd values"
    if bad:
        first = min(bad)
        warnings.append(
            f"episode {label}: {len(bad)} unusable ExecutedCommand(s) {_ranges(sorted(bad))} dropped "
            f"(step {first}: {bad[first]})"
        )
    out = {s: c for s, c in cmds.items() if s not in bad}
    if not out:
        raise ConversionError(f"episode {label}: no usable ExecutedCommand (step {min(bad)}: {bad[min(bad)]})")
    return out


def _usable_chunks(chunks: list[Any], A: int, label: str, warnings: list[str]) -> list[Any]:
    """ActionChunks of the episode's shape (majority chunk size, token and proprio lengths) with finite values."""
    if not chunks:
        return chunks
    k = _majority(int(c.chunk_size) for c in chunks)
    Z = _majority(len(c.cognition_token) for c in chunks)
    Sd = _majority(len(c.proprio_norm) for c in chunks)
    fields = ("base", "residual", "final", "base_norm", "cognition_token", "proprio_norm")
    bad: dict[int, str] = {}
    for c in chunks:
        want = {
            "base": k * A,
            "residual": k * A,
            "final": k * A,
            "base_norm": k * A,
            "cognition_token": Z,
            "proprio_norm": Sd,
        }
        if int(c.chunk_size) != k or int(c.action_dim) != A:
            bad[int(c.step)] = f"chunk_size {c.chunk_size} / action_dim {c.action_dim}, expected {k} / {A}"
        elif any(len(getattr(c, f)) != want[f] for f in fields):
            bad[int(c.step)] = "array lengths " + ", ".join(f"{f} {len(getattr(c, f))}" for f in fields)
        elif not all(np.isfinite(np.asarray(getattr(c, f), np.float64)).all() for f in fields) or not np.isfinite(
            c.residual_scale
        ):
            bad[int(c.step)] = "non-finite values"
    if bad:
        first = min(bad)
        warnings.append(
            f"episode {label}: {len(bad)} unusable ActionChunk(s) at steps {sorted(bad)} dropped ({bad[first]})"
        )
    return [c for c in chunks if int(c.step) not in bad]
