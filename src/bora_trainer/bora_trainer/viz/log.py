"""BORA messages and episode files as Rerun entities on one timeline (no rclpy).

Timelines (every entity is logged on all that apply):

* ``step``: the control step over the whole recording. Each (session, episode) gets its own
  block, placed after everything seen before it (:class:`StepClock`), so consecutive episodes
  do not overlap; within an episode it is ``base + message.step``.
* ``episode_step``: the message's own ``step`` (0 at the episode's START).
* ``time``: wall time of the message (bag log time, or receive time live); episode files have
  ``time`` = step / fps as a duration instead.

Entities (the names the blueprint and the tests use, :data:`ENTITIES`):

* ``cameras/<name>/color`` (Image) and ``cameras/<name>/depth`` (DepthImage, metres);
* ``value/q``, ``value/v``, ``value/advantage``: the executing chunk's per-step values from
  ``ValueEstimate`` (entry i at step t0 + i, t0 = the chunk's step); ``value/v0``: v(z_t, 0), one
  point per chunk (the history); ``value/chunk_q``: the whole chunk's q as a bar chart at t0;
* ``residual/magnitude``: ||r_i||_2 of the chunk's residual row i (``ActionChunk.residual``, before
  scaling) at t0 + i; ``residual/alpha``: ``ActionChunk.residual_scale`` (the residual's scale alpha
  in a_final = a_base + alpha r);
* ``takeover/beta`` and ``takeover/intervention`` (0/1) from ``ExecutedCommand``;
  ``events/takeover``: START / END / RECOVERED (``InterventionEvent``) as text log entries;
* ``events/episode``: START / SUCCESS / FAILURE / ABORT; ``episode/outcome``: +1 success,
  0 failure, -1 abort (one point at the terminal step);
* ``events/checkpoint``: each ``CheckpointInfo`` (a policy/critic/residual load);
* ``robot/state``: the measured arm + hand positions;
* ``events/help``: each help request of the policy (``HelpRequest``, issue 19) as a WARN text entry, and
  ``help/request``: its value (one point at the request's step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import rerun as rr

T_OBS = "bora_msgs/msg/Observation"
T_CHUNK = "bora_msgs/msg/ActionChunk"
T_VALUE = "bora_msgs/msg/ValueEstimate"
T_EXEC = "bora_msgs/msg/ExecutedCommand"
T_INTERVENTION = "bora_msgs/msg/InterventionEvent"
T_EPISODE = "bora_msgs/msg/EpisodeEvent"
T_CHECKPOINT = "bora_msgs/msg/CheckpointInfo"
T_HELP = "bora_msgs/msg/HelpRequest"
T_IMAGE = "sensor_msgs/msg/Image"
# message types with a view; anything else recorded is listed as "not shown", never an error
VIEWED_TYPES = (T_OBS, T_CHUNK, T_VALUE, T_EXEC, T_INTERVENTION, T_EPISODE, T_CHECKPOINT, T_IMAGE, T_HELP)

TAKEOVER_KINDS = {0: "START", 1: "END", 2: "RECOVERED"}
EPISODE_KINDS = {0: "START", 1: "SUCCESS", 2: "FAILURE", 3: "ABORT"}
OUTCOME_VALUE = {1: 1.0, 2: 0.0, 3: -1.0}

ENTITIES = (
    "value/q", "value/v", "value/advantage", "value/v0", "value/chunk_q",
    "residual/magnitude", "residual/alpha", "takeover/beta", "takeover/intervention",
    "events/takeover", "events/episode", "episode/outcome", "events/checkpoint", "robot/state",
    "events/help", "help/request",
)


class VizInputError(ValueError):
    """A message or array that cannot be shown (named in the message)."""


def camera_from_topic(topic: str) -> tuple[str, str] | None:
    """``/cameras/<cam>/color/image_raw`` -> (cam, "color"); ``.../aligned_depth_to_color/...`` -> depth."""
    parts = topic.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "cameras":
        if parts[2] == "color":
            return parts[1], "color"
        if "depth" in parts[2]:
            return parts[1], "depth"
    return None


def image_array(img) -> np.ndarray:
    """A ``sensor_msgs/Image`` as an array: HxWx3 uint8 (rgb8/bgr8/rgba8/mono8) or HxW float32 metres
    (also a ``sensor_msgs/CompressedImage``: image_transport compressed / compressedDepth, image_codec)."""
    from bora_policy.runtime.image_codec import decode_compressed, is_compressed

    if is_compressed(img):
        try:
            return decode_compressed(img)
        except ValueError as e:
            raise VizInputError(f"compressed image ({img.format!r}): {e}") from e
    h, w, step, enc = int(img.height), int(img.width), int(img.step), str(img.encoding).lower()
    layouts = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
               "mono8": (np.uint8, 1), "32fc1": (np.float32, 1), "16uc1": (np.uint16, 1), "mono16": (np.uint16, 1)}
    if enc not in layouts:
        raise VizInputError(f"image encoding {img.encoding!r}: expected one of {sorted(layouts)}")
    dtype, ch = layouts[enc]
    row = w * ch * np.dtype(dtype).itemsize
    buf = np.frombuffer(memoryview(img.data).cast("B"), np.uint8)
    if h * w == 0 or step < row or len(buf) < h * step - (step - row):
        raise VizInputError(f"image {w}x{h} {img.encoding}: {len(buf)} data bytes, step {step}; expected >= {h * row}")
    buf = np.pad(buf, (0, max(0, h * step - len(buf))))[: h * step].reshape(h, step)[:, :row]
    a = buf.copy().view(np.dtype(dtype).newbyteorder(">" if img.is_bigendian else "<")).reshape(h, w, ch)
    if enc.startswith("bgr"):
        a = a[..., [2, 1, 0] + ([3] if ch == 4 else [])]
    if enc in ("16uc1", "mono16"):
        return a[..., 0].astype(np.float32) / 1000.0  # millimetres (RealSense convention) -> metres
    return a[..., 0] if ch == 1 else a[..., :3]


@dataclass
class StepClock:
    """The ``step`` timeline: one block of steps per (session, episode), in order of appearance."""

    bases: dict[tuple[str, int], int] = field(default_factory=dict)
    last: int = -1  # the highest step handed out
    current: tuple[str, int] | None = None
    episode_step: int = 0  # the latest message's own step

    def at(self, session: str, episode: int, step: int) -> int:
        key = (str(session), int(episode))
        if key not in self.bases:
            self.bases[key] = self.last + 1
        self.current = key
        self.episode_step = max(int(step), 0)
        g = self.bases[key] + self.episode_step
        self.last = max(self.last, g)
        return g

    def now(self) -> int:
        """The latest step, for streams without one (raw camera topics)."""
        return max(self.last, 0)


class VizLogger:
    """Logs BORA messages into one Rerun recording stream (see the module docstring for entities)."""

    def __init__(self, rec: rr.RecordingStream, image_every: int = 1, observation_images: bool = True):
        self.rec = rec
        self.observation_images = observation_images  # False: images from the raw camera topics only
        self.clock = StepClock()
        self.image_every = max(int(image_every), 1)
        self._image_count: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        rec.log("episode/outcome", rr.SeriesPoints(markers="diamond", marker_sizes=8.0), static=True)
        rec.log("value/v0", rr.SeriesLines(names="v(z_t,0)", widths=2.0), static=True)

    # ------------------------------------------------------------------ timeline
    def _time(self, session: str, episode: int, step: int, t_ns: int | None) -> int:
        g = self.clock.at(session, episode, step)
        self._set(g, int(step), t_ns)
        return g

    def _set(self, g: int, step: int, t_ns: int | None, duration_s: float | None = None) -> None:
        self.rec.set_time("step", sequence=g)
        self.rec.set_time("episode_step", sequence=step)
        if t_ns is not None:
            self.rec.set_time("time", timestamp=np.datetime64(int(t_ns), "ns"))
        elif duration_s is not None:
            self.rec.set_time("time", duration=float(duration_s))

    def _series(self, path: str, base: int, values, t_ns: int | None, step0: int) -> None:
        for i, x in enumerate(np.asarray(values, dtype=np.float64).ravel()):
            self.rec.set_time("step", sequence=base + i)
            self.rec.set_time("episode_step", sequence=step0 + i)
            if t_ns is not None:
                self.rec.set_time("time", timestamp=np.datetime64(int(t_ns), "ns"))
            self.rec.log(path, rr.Scalars(float(x)))

    # ------------------------------------------------------------------ dispatch
    def log_message(self, msgtype: str, msg, t_ns: int | None, topic: str = "") -> bool:
        """Log one message; False if its type has no view."""
        handler = {
            T_OBS: self.observation, T_CHUNK: self.action_chunk, T_VALUE: self.value,
            T_EXEC: self.executed, T_INTERVENTION: self.intervention, T_EPISODE: self.episode,
            T_CHECKPOINT: self.checkpoint, T_HELP: self.help_request,
        }.get(msgtype)
        if handler is not None:
            handler(msg, t_ns)
        elif msgtype == T_IMAGE:
            cam = camera_from_topic(topic)
            if cam is None:
                return False
            self.raw_image(cam[0], cam[1], msg, t_ns)
        else:
            return False
        self.counts[msgtype] = self.counts.get(msgtype, 0) + 1
        return True

    def _keep_image(self, key: str) -> bool:
        n = self._image_count.get(key, 0)
        self._image_count[key] = n + 1
        return n % self.image_every == 0

    def _camera(self, name: str, kind: str, arr: np.ndarray) -> None:
        if kind == "color":
            self.rec.log(f"cameras/{name}/color", rr.Image(arr))
        else:
            self.rec.log(f"cameras/{name}/depth", rr.DepthImage(np.asarray(arr, np.float32), meter=1.0))

    def observation(self, m, t_ns) -> None:
        self._time(m.session_id, m.episode_id, m.step, t_ns)
        pos = list(m.arm.position) + list(m.hand.position)
        if pos:
            self.rec.log("robot/state", rr.Scalars(np.asarray(pos, np.float64)))
        if not self.observation_images or not self._keep_image("obs"):
            return
        for i, name in enumerate(m.camera_names):
            if i < len(m.color):
                self._camera(name, "color", image_array(m.color[i]))
            if i < len(m.depth):
                self._camera(name, "depth", image_array(m.depth[i]))

    def raw_image(self, cam: str, kind: str, img, t_ns) -> None:
        if not self._keep_image(f"{cam}/{kind}"):
            return
        self._set(self.clock.now(), self.clock.episode_step, t_ns)
        self._camera(cam, kind, image_array(img))

    def action_chunk(self, m, t_ns) -> None:
        k, a = int(m.chunk_size), int(m.action_dim)
        res = np.asarray(m.residual, np.float64)
        base = self._time(m.session_id, m.episode_id, m.step, t_ns)
        self.rec.log("residual/alpha", rr.Scalars(float(m.residual_scale)))
        if k and a and res.size == k * a:
            self._series("residual/magnitude", base, np.linalg.norm(res.reshape(k, a), axis=1), t_ns, int(m.step))
        elif res.size:
            raise VizInputError(f"ActionChunk residual: {res.size} values, expected chunk_size*action_dim={k * a}")

    def value(self, m, t_ns) -> None:
        base = self._time(m.session_id, m.episode_id, m.step, t_ns)
        q, v = np.asarray(m.q, np.float64), np.asarray(m.v, np.float64)
        if len(v):
            self.rec.log("value/v0", rr.Scalars(float(v[0])))
        if len(q):
            self.rec.log("value/chunk_q", rr.BarChart(q))
        for path, vals in (("value/q", q), ("value/v", v), ("value/advantage", m.advantage)):
            self._series(path, base, vals, t_ns, int(m.step))

    def executed(self, m, t_ns) -> None:
        c = m.command
        self._time(c.session_id, c.episode_id, c.step, t_ns)
        self.rec.log("takeover/beta", rr.Scalars(float(m.beta)))
        self.rec.log("takeover/intervention", rr.Scalars(1.0 if m.is_intervention else 0.0))

    def intervention(self, m, t_ns) -> None:
        self._time(m.session_id, m.episode_id, m.step, t_ns)
        kind = TAKEOVER_KINDS.get(int(m.kind), f"kind {m.kind}")
        text = f"takeover {kind} (episode {m.episode_id}, step {m.step})" + (f": {m.reason}" if m.reason else "")
        self.rec.log("events/takeover", rr.TextLog(text, level="WARN" if kind == "START" else "INFO"))

    def episode(self, m, t_ns) -> None:
        self._time(m.session_id, m.episode_id, m.step, t_ns)
        kind = EPISODE_KINDS.get(int(m.kind), f"kind {m.kind}")
        extra = " ".join(x for x in (m.task, m.object_set, m.note) if x)
        self.rec.log("events/episode", rr.TextLog(
            f"episode {m.episode_id} {kind} at step {m.step}" + (f" ({extra})" if extra else ""),
            level={"SUCCESS": "INFO", "START": "DEBUG"}.get(kind, "ERROR")))
        if int(m.kind) in OUTCOME_VALUE:
            self.rec.log("episode/outcome", rr.Scalars(OUTCOME_VALUE[int(m.kind)]))

    def help_request(self, m, t_ns) -> None:
        self._time(m.session_id, m.episode_id, m.step, t_ns)
        n = int(m.predicted_steps_to_failure)
        self.rec.log("events/help", rr.TextLog(
            f"HELP REQUESTED (episode {m.episode_id}, step {m.step}): {m.reason} {float(m.value):+.3f} < "
            f"{float(m.threshold):+.3f}" + (f", failure predicted in {n} steps" if n >= 0 else ""), level="WARN"))
        self.rec.log("help/request", rr.Scalars(float(m.value)))

    def checkpoint(self, m, t_ns) -> None:
        self._set(self.clock.now(), 0, t_ns)
        self.rec.log("events/checkpoint", rr.TextLog(
            f"checkpoint loaded: {m.kind} round {m.round} update {m.update_step} {m.path} "
            f"(sha256 {str(m.sha256)[:12]})", level="INFO"))

    # ------------------------------------------------------------------ episode files
    def episode_arrays(self, arrays: dict, info: dict, camera_names: list[str], fps: float) -> int:
        """One episode file (``bora_policy.common.episodes``) on the timeline; returns its T."""
        T = len(arrays["action"])
        eid = int(info.get("episode_id", 0))
        sess = str(info.get("session_id", "") or f"dataset-episode-{eid}")
        color, depth = arrays.get("color"), arrays.get("depth")
        value = arrays.get("value")
        resid = None
        if "policy_action" in arrays and "base_action" in arrays:  # a_policy - a_base = alpha r
            resid = np.linalg.norm(arrays["policy_action"] - arrays["base_action"], axis=1)
        prev = False
        for t in range(T):
            g = self.clock.at(sess, eid, t)
            self._set(g, t, None, duration_s=t / max(float(fps), 1e-9))
            if t == 0:
                self.rec.log("events/episode", rr.TextLog(
                    f"episode {eid} START ({info.get('task', '')})", level="DEBUG"))
            self.rec.log("robot/state", rr.Scalars(arrays["state"][t].astype(np.float64)))
            self.rec.log("takeover/beta", rr.Scalars(float(arrays["beta"][t])))
            inter = bool(arrays["is_intervention"][t])
            self.rec.log("takeover/intervention", rr.Scalars(1.0 if inter else 0.0))
            if inter != prev:
                self.rec.log("events/takeover", rr.TextLog(
                    f"takeover {'START' if inter else 'END'} (episode {eid}, step {t})",
                    level="WARN" if inter else "INFO"))
                prev = inter
            if value is not None:
                row = np.asarray(value[t], np.float64).ravel()
                self.rec.log("value/v", rr.Scalars(float(row[0])))
            if resid is not None:
                self.rec.log("residual/magnitude", rr.Scalars(float(resid[t])))
            if color is not None and self._keep_image("episode"):
                for c, name in enumerate(camera_names):
                    self._camera(name, "color", color[t, c])
                    if depth is not None:
                        self._camera(name, "depth", depth[t, c])
        outcome = info.get("outcome")
        g = self.clock.at(sess, eid, T)
        self._set(g, T, None, duration_s=T / max(float(fps), 1e-9))
        kind = {"success": 1, "failure": 2, "abort": 3, "timeout": 3}.get(str(outcome))
        self.rec.log("events/episode", rr.TextLog(
            f"episode {eid} {EPISODE_KINDS.get(kind, 'no outcome')} at step {T} ({outcome})",
            level="INFO" if kind == 1 else "ERROR"))
        if kind is not None:
            self.rec.log("episode/outcome", rr.Scalars(OUTCOME_VALUE[kind]))
        return T
