"""Recorded streams of one episode, read and checked (``bora bag convert``, :mod:`.bag_episode`).

Images off the wire (raw encodings or image_transport compressed), the outcome and the takeovers from
the recorded event messages, and which ExecutedCommands / ActionChunks are usable (the episode's
majority shapes, finite values, a plausible step); gap filling inside takeovers and the report of
intervention flags that no takeover event explains. Every problem is a warning naming the episode and
steps, or a :class:`ConversionError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bora_policy.common.rewards import TIMEOUT_NOTE_PREFIX

EPISODE_KINDS = {0: "start", 1: "success", 2: "failure", 3: "abort"}
INT_START, INT_END, INT_RECOVERED = 0, 1, 2


class ConversionError(ValueError):
    """Recorded messages are inconsistent (shapes, names, types) in a way that cannot be converted."""


@dataclass
class Msg:
    key: tuple  # (episode_id, ...) as in bag_convert._key; the session is kept apart
    log_time: int
    raw: bytes
    msg: Any
    session: str = ""
    bag: str = ""  # the bag it was read from (absolute path)


def decode_image(img: Any, what: str) -> np.ndarray:
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


def outcome_of(events: list[Msg], warnings: list[str]) -> tuple[str | None, int | None, dict]:
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
    if kind == "abort" and str(first.note).lower().startswith(TIMEOUT_NOTE_PREFIX):
        kind = "timeout"
    meta["note"] = str(first.note)
    return kind, int(first.step), meta


def takeovers_of(events: list[Msg], T: int, warnings: list[str]) -> list[dict]:
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


def step_ranges(steps: list[int]) -> str:
    """[3, 4, 5, 9] -> "(steps 3-5, 9)"."""
    parts, i = [], 0
    while i < len(steps):
        j = i
        while j + 1 < len(steps) and steps[j + 1] == steps[j] + 1:
            j += 1
        parts.append(str(steps[i]) if i == j else f"{steps[i]}-{steps[j]}")
        i = j + 1
    return f"(step{'s' if len(steps) > 1 else ''} {', '.join(parts)})"


def fill_gaps_in_takeovers(valid: np.ndarray, is_int: np.ndarray, beta: np.ndarray, takeovers: list[dict]) -> None:
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


def check_flags(is_int: np.ndarray, valid: np.ndarray, takeovers: list[dict], label: str, warnings: list[str]) -> None:
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
            f"{step_ranges(orphan)} on /bora/intervention (rewards have no r_int / r_rec for them)"
        )


def majority(values):
    """The most common value (the first seen among equals): the episode's reference against damage."""
    from collections import Counter

    return Counter(values).most_common(1)[0][0]


def obs_shape(o: Any) -> tuple:
    hw = (int(o.color[0].height), int(o.color[0].width)) if len(o.color) else (0, 0)
    return tuple(o.camera_names), tuple(o.arm.name), tuple(o.hand.name), hw


def usable_commands(cmds: dict[int, Any], label: str, warnings: list[str]) -> dict[int, Any]:
    """ExecutedCommands that can be used: the episode's joint count (majority), finite values and a step
    within reach of the others (a damaged step field would make the episode absurdly long)."""
    if not cmds:
        raise ConversionError(f"episode {label}: no ExecutedCommand")
    A = majority(len(c.command.position) for c in cmds.values())
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
            f"episode {label}: {len(bad)} unusable ExecutedCommand(s) {step_ranges(sorted(bad))} dropped "
            f"(step {first}: {bad[first]})"
        )
    out = {s: c for s, c in cmds.items() if s not in bad}
    if not out:
        raise ConversionError(f"episode {label}: no usable ExecutedCommand (step {min(bad)}: {bad[min(bad)]})")
    return out


def usable_chunks(chunks: list[Any], A: int, label: str, warnings: list[str]) -> list[Any]:
    """ActionChunks of the episode's shape (majority chunk size, token and proprio lengths) with finite values."""
    if not chunks:
        return chunks
    k = majority(int(c.chunk_size) for c in chunks)
    Z = majority(len(c.cognition_token) for c in chunks)
    Sd = majority(len(c.proprio_norm) for c in chunks)
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
