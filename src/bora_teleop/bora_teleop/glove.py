"""Glove input: human hand joint angles from a ROS topic or a UDP stream (pure Python).

Both sources produce :class:`GloveSample` (angles in the order of the retarget map's
``human_joints``, rad) with the local receive time; a sample older than ``timeout_s`` is stale and
is not used (a takeover without fresh human input holds position).

UDP packet format (one datagram = one sample), version 1, little-endian::

    offset size  field
    0      4     magic   b"BGLV"
    4      1     version uint8 = 1
    5      1     n       uint8, number of angles
    6      2     flags   uint16 (bit 0: left hand; others reserved, 0)
    8      4     seq     uint32, +1 per packet (wraps at 2**32)
    12     8     stamp   float64, sender clock (s)
    20     4*n   angles  float32[n] (rad), in the receiver's ``human_joints`` order

or a UTF-8 JSON object (first byte ``{``)::

    {"seq": 17, "stamp": 12.5, "angles": [...], "names": [...optional...]}

With ``names`` the angles are reordered by name. Packets with a seq not newer than the last
accepted one (duplicates, reordering) are dropped, unless the stream was silent for longer than
``timeout_s`` (a restarted sender). Malformed packets are counted and dropped, never raise.
The receiver binds 127.0.0.1 by default; bind another address only on a trusted network.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

MAGIC = b"BGLV"
VERSION = 1
HEADER = struct.Struct("<4sBBHId")  # 20 bytes
FLAG_LEFT = 1


class PacketError(ValueError):
    """A glove packet that cannot be decoded (the message says which field)."""


@dataclass
class GloveSample:
    angles: np.ndarray
    seq: int
    stamp: float
    t_recv: float
    source: str = "topic"


def encode_packet(angles, seq: int, stamp: float, flags: int = 0) -> bytes:
    """Binary packet (format in the module docstring)."""
    a = np.asarray(angles, dtype="<f4").reshape(-1)
    if a.size > 255:
        raise PacketError(f"angles: at most 255 values per packet, got {a.size}")
    return HEADER.pack(MAGIC, VERSION, a.size, flags, seq & 0xFFFFFFFF, float(stamp)) + a.tobytes()


def encode_json_packet(angles, seq: int, stamp: float, names: list[str] | None = None) -> bytes:
    d = {"seq": int(seq), "stamp": float(stamp), "angles": [float(x) for x in angles]}
    if names is not None:
        d["names"] = list(names)
    return json.dumps(d).encode()


def decode_packet(data: bytes, names: list[str] | None = None) -> tuple[np.ndarray, int, float]:
    """-> (angles float64 [n], seq, stamp). ``names``: expected joint order (for JSON with names)."""
    if data[:1] == b"{":
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PacketError(f"JSON packet: {e}") from e
        if not isinstance(d, dict):
            raise PacketError("JSON packet: expected an object")
        for key in ("seq", "stamp", "angles"):
            if key not in d:
                raise PacketError(f"JSON packet: missing field '{key}'")
        try:
            angles = np.asarray(d["angles"], dtype=np.float64).reshape(-1)
            seq, stamp = int(d["seq"]), float(d["stamp"])
        except (TypeError, ValueError) as e:
            raise PacketError(f"JSON packet: bad field type ({e})") from e
        if "names" in d and names is not None:
            angles = reorder(list(d["names"]), angles, names)
        return angles, seq, stamp
    if len(data) < HEADER.size:
        raise PacketError(f"binary packet: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, n, _flags, seq, stamp = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError(f"binary packet: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PacketError(f"binary packet: version {version}, expected {VERSION}")
    if len(data) != HEADER.size + 4 * n:
        raise PacketError(
            f"binary packet: header says n={n} angles ({HEADER.size + 4 * n} bytes), got {len(data)} bytes"
        )
    angles = np.frombuffer(data, dtype="<f4", count=n, offset=HEADER.size).astype(np.float64)
    return angles, int(seq), float(stamp)


def reorder(names: list[str], values, expected: list[str]) -> np.ndarray:
    """Values given per ``names`` -> the ``expected`` order. Extra names are ignored; missing ones raise."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(names) != values.size:
        raise ValueError(f"{len(names)} joint names but {values.size} values")
    if list(names) == list(expected):
        return values.copy()
    idx = {n: i for i, n in enumerate(names)}
    missing = [n for n in expected if n not in idx]
    if missing:
        raise ValueError(f"missing joints {missing} (got {list(names)})")
    return values[[idx[n] for n in expected]]


def sample_from_joint_state(
    names: list[str], positions, expected: list[str], t_recv: float, stamp: float = 0.0, seq: int = 0
) -> GloveSample:
    """Topic adapter: a sensor_msgs/JointState's (name, position) -> GloveSample in ``expected`` order.
    An empty name list means the positions are already in ``expected`` order."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    if not names:
        if pos.size != len(expected):
            raise ValueError(
                f"glove joint state: {pos.size} positions without names, expected {len(expected)}"
            )
        angles = pos.copy()
    else:
        angles = reorder(list(names), pos, expected)
    return GloveSample(angles, seq, stamp, t_recv, "topic")


class UdpGloveReceiver:
    """Background UDP receiver keeping the newest valid sample (thread-safe).

    ``clock``: the time base of ``t_recv`` (default ``time.monotonic``; the node passes its ROS
    clock so staleness is measured on one clock).
    """

    def __init__(
        self,
        n_angles: int,
        names: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_s: float = 0.2,
        clock=time.monotonic,
    ):
        self.n_angles, self.names, self.timeout_s, self.clock = int(n_angles), names, float(timeout_s), clock
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, int(port)))
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self._lock = threading.Lock()
        self._latest: GloveSample | None = None
        self.stats = {"received": 0, "accepted": 0, "malformed": 0, "out_of_order": 0, "nonfinite": 0}
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.address[1])

    def handle(self, data: bytes) -> bool:
        """Decode and maybe accept one datagram (also used directly by tests). Returns accepted."""
        now = self.clock()
        with self._lock:
            self.stats["received"] += 1
            try:
                angles, seq, stamp = decode_packet(data, self.names)
                if angles.size != self.n_angles:
                    raise PacketError(f"{angles.size} angles, expected {self.n_angles}")
            except (PacketError, ValueError) as e:
                self.stats["malformed"] += 1
                self.last_error = str(e)
                return False
            if not np.all(np.isfinite(angles)):
                self.stats["nonfinite"] += 1
                self.last_error = "non-finite glove angles"
                return False
            last = self._latest
            if last is not None and now - last.t_recv <= self.timeout_s:
                ahead = (seq - last.seq) & 0xFFFFFFFF
                if ahead == 0 or ahead >= 0x80000000:
                    self.stats["out_of_order"] += 1
                    return False
            self._latest = GloveSample(angles, seq, stamp, now, "udp")
            self.stats["accepted"] += 1
            return True

    def poll(self, max_packets: int = 1000) -> int:
        """Drain the socket without blocking (when no thread runs). Returns packets read."""
        self.sock.setblocking(False)
        k = 0
        try:
            while k < max_packets:
                try:
                    data = self.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                self.handle(data)
                k += 1
        finally:
            self.sock.settimeout(0.05)
        return k

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            self.handle(data)

    def start(self) -> UdpGloveReceiver:
        self._thread = threading.Thread(target=self._run, name="udp_glove", daemon=True)
        self._thread.start()
        return self

    def latest(self) -> GloveSample | None:
        with self._lock:
            return self._latest

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self.sock.close()


def freshest(samples, now: float, timeout_s: float) -> GloveSample | None:
    """The most recently received sample that is not older than ``timeout_s``, else None."""
    ok = [s for s in samples if s is not None and now - s.t_recv <= timeout_s + 1e-9]
    return max(ok, key=lambda s: s.t_recv) if ok else None
