"""Scripted BORA recordings: rosbag2 bags of known episodes, written without ROS (rosbags).

Used by the tests of the converter and the trainer node and by benchmarks: every value is a
closed-form function of (episode, step), so expectations can be computed independently:

* executed action ``a[t, j] = episode + 0.01 t + 0.1 j`` (``exec_value``), ``is_intervention``
  and ``beta = 1`` inside takeovers;
* a chunk every ``chunk_size`` steps with ``base_norm[i, j] = 0.001 (t + i) - 0.01 j``,
  ``base = base_norm * 2 + 0.5``, ``residual = 0.1``, ``final = base + residual_scale * residual``,
  ``cognition_token[m] = t + 0.5 m``, ``proprio_norm[m] = -t - m``;
* observations with state ``s[t, j] = exec_value(t - 1, j)`` (last command, 0 at t = 0) and
  colour pixel values ``(t + cam) % 256``, depth ``0.5 + 0.01 t`` metres (32FC1).
Events: START at step 0; intervention START at s, END at e, RECOVERED at the given step; the
terminal event (SUCCESS / FAILURE / ABORT, ABORT + note "timeout") at step T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bora_policy.common.rewards import TIMEOUT_NOTE
from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_io import open_writer

KIND = {"success": 1, "failure": 2, "abort": 3, "timeout": 3}


@dataclass
class ScriptedEpisode:
    """One scripted episode. ``takeovers``: (start, end exclusive or None = to the end, recovered or None)."""

    episode_id: int
    num_steps: int
    outcome: str | None = "success"
    takeovers: list[tuple[int, int | None, int | None]] = field(default_factory=list)
    task: str = "pick_plush_toy"
    object_set: str = "standard"
    start_recorded: bool = True  # False: no START event (a recording that began mid-episode)
    session_id: str = "00000000-0000-4000-8000-00000000000a"  # the recording session (see bora_msgs)
    drop_steps: tuple[int, ...] = ()  # steps whose ExecutedCommand is not recorded (a gap)
    extra_flags: tuple[int, ...] = ()  # steps with is_intervention true but no takeover event
    drop_obs: tuple[int, ...] = ()  # steps whose Observation is not recorded
    residual_version: str = "res0"  # the ActionChunks' residual_version (the residual the policy ran)
    residual_from: tuple[int, str] | None = None  # (step, version): chunks from that step on carry this version


@dataclass
class BagLayout:
    chunk_size: int = 4
    arm_joints: int = 7
    hand_joints: int = 2
    z_dim: int = 8
    cameras: tuple[str, ...] = ("left", "front")
    image_hw: tuple[int, int] = (4, 6)
    dt_ns: int = 33_333_333
    normalizer_version: str = "normv1"

    @property
    def action_dim(self) -> int:
        return self.arm_joints + self.hand_joints


def exec_value(ep: int, t: int | np.ndarray, j: int | np.ndarray) -> np.ndarray:
    return np.asarray(ep + 0.01 * np.asarray(t) + 0.1 * np.asarray(j), dtype=np.float64)


def in_takeover(ep: ScriptedEpisode, t: int) -> bool:
    return any(s <= t < (ep.num_steps if e is None else e) for s, e, _ in ep.takeovers)


class _Msgs:
    def __init__(self, ts: Any, lay: BagLayout):
        self.ts, self.lay = ts, lay
        self.T = ts.types

    def header(self, t_ns: int, frame: str = "base"):
        Time = self.T["builtin_interfaces/msg/Time"]
        return self.T["std_msgs/msg/Header"](
            stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id=frame
        )

    def joint_state(self, t_ns: int, names: list[str], pos: np.ndarray):
        f = np.asarray(pos, np.float64)
        return self.T["sensor_msgs/msg/JointState"](
            header=self.header(t_ns),
            name=names,
            position=f,
            velocity=np.zeros_like(f),
            effort=np.zeros(0, np.float64),
        )

    def image(self, t_ns: int, arr: np.ndarray, enc: str):
        h, w = arr.shape[:2]
        data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), np.uint8)
        return self.T["sensor_msgs/msg/Image"](
            header=self.header(t_ns),
            height=h,
            width=w,
            encoding=enc,
            is_bigendian=0,
            step=len(data) // h,
            data=data,
        )

    def camera_info(self, t_ns: int):
        h, w = self.lay.image_hw
        T = self.T
        roi = T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        return T["sensor_msgs/msg/CameraInfo"](
            header=self.header(t_ns),
            height=h,
            width=w,
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=np.array([5.0, 0, w / 2, 0, 5.0, h / 2, 0, 0, 1]),
            r=np.eye(3).ravel(),
            p=np.zeros(12),
            binning_x=0,
            binning_y=0,
            roi=roi,
        )


def arm_names(lay: BagLayout) -> list[str]:
    return [f"fr3_joint{j + 1}" for j in range(lay.arm_joints)]


def hand_names(lay: BagLayout) -> list[str]:
    return [f"hand_j{j}" for j in range(lay.hand_joints)]


def episode_messages(ep: ScriptedEpisode, lay: BagLayout, ts: Any, t0_ns: int) -> list[tuple[str, int, Any]]:
    """``(topic, log_time_ns, message)`` of one scripted episode, in recording order."""
    M = _Msgs(ts, lay)
    T = ts.types
    A, k = lay.action_dim, lay.chunk_size
    names = arm_names(lay) + hand_names(lay)
    out: list[tuple[str, int, Any]] = []

    def ev(kind: int, step: int, t_ns: int, note: str = ""):
        out.append(
            (
                S.T_EPISODE,
                t_ns,
                T["bora_msgs/msg/EpisodeEvent"](
                    header=M.header(t_ns),
                    episode_id=ep.episode_id,
                    session_id=ep.session_id,
                    kind=kind,
                    step=step,
                    task=ep.task,
                    object_set=ep.object_set,
                    note=note,
                ),
            )
        )

    if ep.start_recorded:
        ev(0, 0, t0_ns)
    for t in range(ep.num_steps):
        tn = t0_ns + (t + 1) * lay.dt_ns
        state = exec_value(ep.episode_id, t - 1, np.arange(A)) if t > 0 else np.zeros(A)
        h, w = lay.image_hw
        cams = list(lay.cameras)
        color = [M.image(tn, np.full((h, w, 3), (t + i) % 256, np.uint8), "rgb8") for i in range(len(cams))]
        depth = [M.image(tn, np.full((h, w), 0.5 + 0.01 * t, np.float32), "32FC1") for i in range(len(cams))]
        out.append(
            (
                S.T_OBSERVATION,
                tn,
                T["bora_msgs/msg/Observation"](
                    header=M.header(tn),
                    camera_names=cams,
                    color=color,
                    depth=depth,
                    camera_info=[M.camera_info(tn) for _ in cams],
                    arm=M.joint_state(tn, arm_names(lay), state[: lay.arm_joints]),
                    hand=M.joint_state(tn, hand_names(lay), state[lay.arm_joints :]),
                    instruction=f"do {ep.task}",
                    episode_id=ep.episode_id,
                    session_id=ep.session_id,
                    step=t,
                ),
            )
        )
        if t % k == 0:
            switch = ep.residual_from
            i = np.arange(k)[:, None]
            j = np.arange(A)[None]
            base_norm = (0.001 * (t + i) - 0.01 * j).astype(np.float32)
            base = base_norm * 2 + 0.5
            residual = np.full((k, A), 0.1, np.float32)
            scale = 0.2
            out.append(
                (
                    S.T_ACTION_CHUNK,
                    tn + 1000,
                    T["bora_msgs/msg/ActionChunk"](
                        header=M.header(tn),
                        episode_id=ep.episode_id,
                        session_id=ep.session_id,
                        step=t,
                        chunk_size=k,
                        action_dim=A,
                        joint_names=names,
                        base=base.ravel(),
                        residual=residual.ravel(),
                        final=(base + scale * residual).ravel(),
                        residual_scale=scale,
                        cognition_token=(t + 0.5 * np.arange(lay.z_dim)).astype(np.float32),
                        proprio_norm=(-t - np.arange(A)).astype(np.float32),
                        base_norm=base_norm.ravel(),
                        policy_version="vla0",
                        residual_version=switch[1] if switch and t >= switch[0] else ep.residual_version,
                        normalizer_version=lay.normalizer_version,
                    ),
                )
            )
        for s, e, rec in ep.takeovers:
            # (offset ns, kind, reward, reason): START with r_int, RECOVERED with r_rec, END
            for hit, dt, kind, reward, reason in (
                (t == s, 2000, 0, -0.3, "scripted"),
                (rec is not None and t == rec, 2500, 2, 0.2, "recovered"),
                (e is not None and t == e, 2600, 1, 0.0, ""),
            ):
                if hit:
                    event = T["bora_msgs/msg/InterventionEvent"](
                        header=M.header(tn), episode_id=ep.episode_id, session_id=ep.session_id, step=t,
                        kind=kind, reward=reward, reason=reason,
                    )
                    out.append((S.T_INTERVENTION, tn + dt, event))
        cmd = T["bora_msgs/msg/JointCommand"](
            header=M.header(tn),
            episode_id=ep.episode_id,
            session_id=ep.session_id,
            step=t,
            chunk_index=t % k,
            joint_names=names,
            position=exec_value(ep.episode_id, t, np.arange(A)),
            velocity=np.zeros(0, np.float64),
        )
        ti = in_takeover(ep, t) or t in ep.extra_flags
        if t in ep.drop_steps:
            continue
        out.append(
            (
                S.T_EXECUTED,
                tn + 3000,
                T["bora_msgs/msg/ExecutedCommand"](
                    command=cmd, is_intervention=ti, beta=1.0 if ti else 0.0, held=False, hold_reason=""
                ),
            )
        )
    tend = t0_ns + (ep.num_steps + 1) * lay.dt_ns
    if ep.outcome is not None:
        ev(KIND[ep.outcome], ep.num_steps, tend, note=TIMEOUT_NOTE if ep.outcome == "timeout" else "")
    return [x for x in out if not (x[0] == S.T_OBSERVATION and x[2].step in ep.drop_obs)]


def scripted_messages(
    episodes: list[ScriptedEpisode], lay: BagLayout | None = None, t0_ns: int = 1_700_000_000 * 10**9
) -> list[tuple[str, int, Any]]:
    """``(topic, log_time_ns, message)`` of consecutive scripted episodes (rosbags message objects)."""
    lay = lay or BagLayout()
    ts = S.build_typestore()
    msgs: list[tuple[str, int, Any]] = []
    t0 = t0_ns
    for ep in episodes:
        msgs += episode_messages(ep, lay, ts, t0)
        t0 += (ep.num_steps + 5) * lay.dt_ns
    return msgs


def write_scripted_bag(
    path: str | Path,
    episodes: list[ScriptedEpisode],
    lay: BagLayout | None = None,
    storage: str = "mcap",
    skip_topics: tuple[str, ...] = (),
    duplicate_every: int = 0,
    shuffle_seed: int | None = None,
    t0_ns: int = 1_700_000_000 * 10**9,
    legacy: bool = False,
    flushing: bool = True,
    keep: Callable[[str, Any], bool] | None = None,
) -> list[tuple[str, int, bytes]]:
    """Write the episodes into a new bag; returns the written ``(topic, log_time, raw)`` list.

    ``duplicate_every``: write every n-th message twice; ``shuffle_seed``: write in a shuffled
    order (out-of-order arrival); ``skip_topics``: topics not recorded at all (no connection);
    ``legacy``: the message definitions from before ``session_id`` existed (an old recording);
    ``flushing=False``: rosbags' stock writer (chunked MCAP with message indexes); ``keep``: only the
    messages for which ``keep(topic, message)`` is true (a live recording that has not received the rest).
    """
    lay = lay or BagLayout()
    ts = legacy_typestore() if legacy else S.build_typestore()
    msgs = scripted_messages(episodes, lay, t0_ns)
    if keep is not None:
        msgs = [(topic, t, m) for topic, t, m in msgs if keep(topic, m)]
    if legacy:
        msgs = [(topic, t, _to_legacy(m, ts)) for topic, t, m in msgs]
    raws = [(topic, t, bytes(ts.serialize_cdr(m, S.TOPIC_TYPES[topic]))) for topic, t, m in msgs]
    if duplicate_every:
        raws = [r for i, r in enumerate(raws) for _ in range(2 if i % duplicate_every == 0 else 1)]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(raws))
        raws = [raws[i] for i in order]
    w = open_writer(path, storage, flushing=flushing)
    conns = {
        topic: w.add_connection(topic, msgtype, typestore=ts)
        for topic, msgtype in S.TOPIC_TYPES.items()
        if topic not in skip_topics
    }
    for topic, t, raw in raws:
        if topic in conns:
            w.write(conns[topic], t, raw)
    w.close()
    return raws


def legacy_typestore():
    """Stock types + the ``bora_msgs`` definitions without ``session_id`` (recordings made before it)."""
    import re

    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for f in sorted(S.find_msg_dir().glob("*.msg")):
        text = re.sub(r"(?m)^string session_id\n", "", f.read_text() + "\n")
        types.update(get_types_from_msg(text, f"{S.BORA_PKG}/msg/{f.stem}"))
    ts.register(types)
    return ts


def _to_legacy(m: Any, ts: Any) -> Any:
    """The same message without its (nested) ``session_id`` fields."""
    name = getattr(m, "__msgtype__", "")
    if not name.startswith(f"{S.BORA_PKG}/"):
        return m
    cls = ts.types[name]
    fields = [f for f in cls.__dataclass_fields__ if f != "__msgtype__"]
    return cls(**{f: _to_legacy(getattr(m, f), ts) for f in fields})
