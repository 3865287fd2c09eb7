"""A short recording with every stream ``bora viz`` shows (for its tests, the screenshot and docs).

The scripted episodes of :mod:`bora_trainer.data.synthetic_bag` (observations, chunks, executed
commands, takeover and episode events) plus, per chunk, a ``ValueEstimate`` in closed form and one
``CheckpointInfo`` at the start, so a test knows every logged value independently:

* ``q[i] = 0.8 - 0.02 (t0 + i)`` (a falling value), ``v[i] = q[i] - 0.05``, ``advantage[i] = 0.05``;
* the colour frames show a disc moving right one pixel per step over a gradient (something to see).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_io import open_writer
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, scripted_messages

T_VALUE_TOPIC = "/bora/value"
T_CHECKPOINT_TOPIC = "/bora/checkpoint"
CHECKPOINT_PATH = "runs/sample/online/round_001/checkpoint"


def sample_q(t0: int, k: int) -> np.ndarray:
    return (0.8 - 0.02 * (t0 + np.arange(k))).astype(np.float32)


def _picture(h: int, w: int, t: int, cam: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 60 * cam)], -1)
    cx, cy = (4 + t) % w, h // 2
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= (h // 5) ** 2] = (255, 255, 255)
    return img.astype(np.uint8)


def sample_episodes() -> list[ScriptedEpisode]:
    return [
        ScriptedEpisode(0, 24, "success", takeovers=[(8, 14, 12)]),
        ScriptedEpisode(1, 16, "failure"),
    ]


def write_sample_bag(path: str | Path, lay: BagLayout | None = None,
                     episodes: list[ScriptedEpisode] | None = None) -> list[tuple[str, int, object]]:
    """Write the sample recording (MCAP rosbag2) to ``path``; returns its ``(topic, t_ns, msg)`` list."""
    lay = lay or BagLayout(cameras=("left", "front", "right"), image_hw=(48, 64))
    ts = S.build_typestore()
    T = ts.types
    msgs = scripted_messages(episodes or sample_episodes(), lay)
    extra = []
    t_first = msgs[0][1]
    extra.append((T_CHECKPOINT_TOPIC, t_first, T["bora_msgs/msg/CheckpointInfo"](
        header=msgs[0][2].header, path=CHECKPOINT_PATH, sha256="ab" * 32, round=1, update_step=500,
        kind="residual")))
    for topic, t_ns, m in msgs:
        if topic == S.T_OBSERVATION:
            for i, img in enumerate(m.color):
                img.data = _picture(int(img.height), int(img.width), int(m.step), i).reshape(-1)
        if topic == S.T_ACTION_CHUNK:
            q = sample_q(int(m.step), int(m.chunk_size))
            extra.append((T_VALUE_TOPIC, t_ns + 1000, T["bora_msgs/msg/ValueEstimate"](
                header=m.header, episode_id=m.episode_id, session_id=m.session_id, step=m.step,
                q=q, v=q - np.float32(0.05), advantage=np.full_like(q, 0.05), critic_version="sample")))
    msgs = sorted(msgs + extra, key=lambda x: x[1])
    types = dict(S.TOPIC_TYPES, **{T_VALUE_TOPIC: "bora_msgs/msg/ValueEstimate",
                                    T_CHECKPOINT_TOPIC: "bora_msgs/msg/CheckpointInfo"})
    w = open_writer(path, "mcap")
    conns = {topic: w.add_connection(topic, mt, typestore=ts) for topic, mt in types.items()}
    for topic, t_ns, m in msgs:
        w.write(conns[topic], t_ns, bytes(ts.serialize_cdr(m, types[topic])))
    w.close()
    return msgs
