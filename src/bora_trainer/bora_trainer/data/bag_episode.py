"""One recorded episode -> episode arrays, info and chunk transitions (the core of ``bora bag convert``).

See :mod:`bora_trainer.data.bag_convert` for the rules; this module holds the per-episode part:
executed steps and their validity mask, takeovers, outcome, rewards/dones, chunks, observations. Reading
and checking the recorded streams (images, events, usable commands and chunks) is
:mod:`bora_trainer.data.bag_records`.
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
from bora_trainer.data.bag_records import (
    ConversionError,
    Msg,
    check_flags,
    decode_image,
    fill_gaps_in_takeovers,
    majority,
    obs_shape,
    outcome_of,
    step_ranges,
    takeovers_of,
    usable_chunks,
    usable_commands,
)

CONVERTER_VERSION = "1"


@dataclass
class ConvertConfig:
    """Conversion options. ``fps``: None = estimated from the ExecutedCommand stamps (fallback 30)."""

    rewards: RewardConfig = field(default_factory=RewardConfig)
    transitions_only: bool = False
    fps: float | None = None
    only_complete: bool = False  # skip episodes without an outcome (the trainer, while a bag is live)
    # True: a bag none of whose episodes converts is an input error (``bora bag convert``: exit 2). False: its
    # episodes are reported "failed" like any other (the trainer: the round skips them and a replacement runs)
    raise_if_none_converted: bool = True


# ------------------------------------------------------------------------------------ one episode
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
    cmds = usable_commands({m.key[1]: m.msg for m in per_topic.get(S.T_EXECUTED, [])}, label, warnings)
    outcome, t_end, ev_meta = outcome_of(per_topic.get(S.T_EPISODE, []), warnings)
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
    names = list(majority(tuple(c.command.joint_names) for c in cmds.values()))
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
    takeovers = takeovers_of(per_topic.get(S.T_INTERVENTION, []), T, warnings)
    if missing:
        warnings.append(
            f"episode {label}: {len(missing)} step(s) without an ExecutedCommand {step_ranges(missing)} "
            "(valid = false in the episode file; masked out of every chunk)"
        )
        idx = np.where(valid, np.arange(T), -1)
        idx = np.maximum.accumulate(idx)
        firstv = int(np.flatnonzero(valid)[0])
        idx[idx < 0] = firstv
        action = action[idx]
        fill_gaps_in_takeovers(valid, is_int, beta, takeovers)
    if not ev_meta["start_recorded"]:
        warnings.append(f"episode {label}: its START event was not recorded (the recording began mid-episode)")
    check_flags(is_int, valid, takeovers, label, warnings)
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
    chunks = usable_chunks([m.msg for m in per_topic.get(S.T_ACTION_CHUNK, []) if m.key[1] < T], A, label, warnings)
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
            # the whole episode's [T] rewards and terminals: the trainer's Monte-Carlo returns count the steps
            # no chunk covers (data/replay.py; found in review 2026-12-08)
            episode_reward=np.asarray(reward, np.float32),
            episode_done=np.asarray(done, bool),
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
        ref = majority(obs_shape(o) for o in obs.values())
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
                if obs_shape(o) != ref:
                    raise ConversionError(f"cameras/joints/image size {obs_shape(o)}, expected {ref}")
                st = proc.state(o.arm.position, o.hand.position)  # [arm q, hand q] float32
                if not np.isfinite(st).all() or np.abs(st).max(initial=0) > 1e6:
                    raise ConversionError("non-finite or absurd joint positions")
                imgs = []
                for i in range(len(cams)):
                    c = decode_image(o.color[i], f"color[{i}]")
                    d = decode_image(o.depth[i], f"depth[{i}]")
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
            msg = f"{len(bad)} unusable Observation(s) {step_ranges(sorted(bad))}: step {first}: {bad[first]}"
            if not have.any():
                raise ConversionError(f"episode {label}: {msg}")
            warnings.append(f"episode {label}: {msg}; dropped")
        if not have.all():
            lead = int(np.flatnonzero(have)[0])
            warnings.append(
                f"episode {label}: {int((~have).sum())} step(s) without an Observation "
                f"{step_ranges(np.flatnonzero(~have).tolist())} (obs_valid = false; filled from the previous "
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
