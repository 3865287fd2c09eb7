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
    12     8     stamp   float64, sender clock (s), finite
    20     4*n   angles  float32[n] (rad), in the receiver's ``human_joints`` order

or a UTF-8 JSON object (first byte ``{``)::

    {"seq": 17, "stamp": 12.5, "angles": [...], "names": [...optional...]}

with ``seq`` an integer in [0, 2**32), ``stamp`` a finite number (|stamp| < 1e15), ``angles`` a list of
at most 255 numbers (|angle| < 1e6) and ``names`` (optional) as many distinct strings of at most 64
characters; other keys are ignored. A datagram is at most ``MAX_PACKET`` bytes. With ``names`` the
angles are reordered by name. With a key (``udp_key_file``) every datagram is the HMAC-SHA256
envelope of :mod:`bora_teleop.glove_auth` around such a packet; the sender side is
:class:`bora_teleop.glove_sender.GloveSender` (``python -m bora_teleop.glove_sender``).

Packets with a seq not newer than the last accepted one (duplicates, reordering) are dropped, unless
the stream was silent for longer than ``timeout_s`` (a restarted sender; with a key, the envelope's
counter must still increase, so a replay is never accepted). Every bad datagram (too large, malformed,
non-finite, from a source not in ``allowed_sources``, wrong or missing signature, replayed) is dropped,
counted in ``stats`` by kind, kept in ``last_error`` and reported to ``on_fault`` (the node logs it,
rate-limited, and publishes it on /diagnostics); nothing a datagram holds can raise past
:meth:`UdpGloveReceiver.handle`, and the receiver thread catches anything else at its boundary
(``stats["internal_error"]``) and keeps running. The receiver binds 127.0.0.1 by default; any other
address requires a key (the unauthenticated mode is loopback only). A port inside the DDS (RTPS) port range
of the node's ROS_DOMAIN_ID is refused (:func:`dds_port_range`): discovery and topic traffic of that domain
would arrive on the glove socket; an RTPS datagram that arrives anyway is named as such in the fault text.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bora_teleop.glove_auth import AuthError, is_loopback, parse_sources, verify

MAGIC = b"BGLV"
VERSION = 1
HEADER = struct.Struct("<4sBBHId")  # 20 bytes
FLAG_LEFT = 1
MAX_ANGLES = 255
MAX_NAME_LEN = 64
MAX_PACKET = 16384  # bytes: 255 named angles in JSON fit; binary v1 is at most 20 + 4 * 255
MAX_ABS_ANGLE = 1e6
MAX_ABS_STAMP = 1e15
FAULT_KINDS = (
    "malformed",
    "out_of_order",
    "nonfinite",
    "wrong_source",
    "bad_signature",
    "replayed",
    "internal_error",
)


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
    if a.size > MAX_ANGLES:
        raise PacketError(f"angles: at most {MAX_ANGLES} values per packet, got {a.size}")
    return HEADER.pack(MAGIC, VERSION, a.size, flags, seq & 0xFFFFFFFF, float(stamp)) + a.tobytes()


def encode_json_packet(angles, seq: int, stamp: float, names: list[str] | None = None) -> bytes:
    d = {"seq": int(seq), "stamp": float(stamp), "angles": [float(x) for x in angles]}
    if names is not None:
        d["names"] = list(names)
    return json.dumps(d).encode()


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _json_seq(v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**32:
        raise PacketError(f"JSON packet: field 'seq': expected an integer in [0, 2**32), got {_short(v)}")
    return int(v)


def _json_stamp(v) -> float:
    if not _is_number(v) or (isinstance(v, int) and abs(v) >= MAX_ABS_STAMP):
        raise PacketError(f"JSON packet: field 'stamp': expected a finite number, got {_short(v)}")
    f = float(v)
    if not math.isfinite(f) or abs(f) >= MAX_ABS_STAMP:
        raise PacketError(f"JSON packet: field 'stamp': expected a finite number below 1e15, got {_short(v)}")
    return f


def _json_angles(v) -> np.ndarray:
    if not isinstance(v, list):
        raise PacketError(f"JSON packet: field 'angles': expected a list of numbers, got {type(v).__name__}")
    if len(v) > MAX_ANGLES:
        raise PacketError(f"JSON packet: field 'angles': at most {MAX_ANGLES} values, got {len(v)}")
    out = np.empty(len(v), dtype=np.float64)
    for i, x in enumerate(v):
        # ints are bounded before float(): a 400-digit integer must not raise OverflowError
        if not _is_number(x) or (isinstance(x, int) and abs(x) >= MAX_ABS_ANGLE):
            raise PacketError(f"JSON packet: field 'angles'[{i}]: expected a number, got {_short(x)}")
        out[i] = float(x)  # NaN / inf pass here and are counted as non-finite by the receiver
    if np.any(np.abs(out[np.isfinite(out)]) >= MAX_ABS_ANGLE):
        raise PacketError(f"JSON packet: field 'angles': values must be below {MAX_ABS_ANGLE:g} rad")
    return out


def _json_names(v, n: int) -> list[str]:
    if not isinstance(v, list) or len(v) != n:
        got = f"a list of {len(v)}" if isinstance(v, list) else type(v).__name__
        raise PacketError(f"JSON packet: field 'names': expected a list of {n} strings, got {got}")
    for i, s in enumerate(v):
        if not isinstance(s, str) or not 0 < len(s) <= MAX_NAME_LEN:
            raise PacketError(
                f"JSON packet: field 'names'[{i}]: expected a string of 1..{MAX_NAME_LEN} characters"
            )
    if len(set(v)) != len(v):
        raise PacketError("JSON packet: field 'names': duplicate joint names")
    return list(v)


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def decode_packet(data: bytes, names: list[str] | None = None) -> tuple[np.ndarray, int, float]:
    """-> (angles float64 [n], seq, stamp). ``names``: expected joint order (for JSON with names).
    Raises only :class:`PacketError` (the message names the field and what was expected)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PacketError(f"packet: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_PACKET:
        raise PacketError(f"packet: {len(data)} bytes, at most {MAX_PACKET}")
    if data[:1] == b"{":
        try:
            d = json.loads(data.decode("utf-8"))
        except RecursionError:
            raise PacketError("JSON packet: nested too deeply") from None
        except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
            raise PacketError(f"JSON packet: {str(e)[:80]}") from None
        if not isinstance(d, dict):
            raise PacketError("JSON packet: expected an object")
        for key in ("seq", "stamp", "angles"):
            if key not in d:
                raise PacketError(f"JSON packet: missing field '{key}'")
        seq, stamp, angles = _json_seq(d["seq"]), _json_stamp(d["stamp"]), _json_angles(d["angles"])
        if "names" in d:
            got = _json_names(d["names"], angles.size)
            if names is not None:
                try:
                    angles = reorder(got, angles, names)
                except ValueError as e:
                    raise PacketError(f"JSON packet: field 'names': {str(e)[:120]}") from None
        return angles, seq, stamp
    if len(data) < HEADER.size:
        raise PacketError(f"binary packet: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, n, _flags, seq, stamp = HEADER.unpack_from(data)
    if magic != MAGIC:
        if magic == b"RTPS":
            raise PacketError("binary packet: an RTPS (DDS) datagram, not a glove packet (udp_port shared with DDS?)")
        raise PacketError(f"binary packet: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PacketError(f"binary packet: version {version}, expected {VERSION}")
    if len(data) != HEADER.size + 4 * n:
        raise PacketError(
            f"binary packet: header says n={n} angles ({HEADER.size + 4 * n} bytes), got {len(data)} bytes"
        )
    if not math.isfinite(stamp):
        raise PacketError(f"binary packet: field 'stamp': expected a finite number, got {stamp}")
    with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf are counted by the receiver
        angles = np.frombuffer(data, dtype="<f4", count=n, offset=HEADER.size).astype(np.float64)
    return angles, int(seq), float(stamp)


def reorder(names: list[str], values, expected: list[str]) -> np.ndarray:
    """Values given per ``names`` -> the ``expected`` order. Extra names are ignored; missing ones raise."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(names) != values.size:
        raise ValueError(f"{len(names)} joint names but {values.size} values")
    if len(set(names)) != len(names):
        raise ValueError("duplicate joint names")
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


# RTPS 2.x section 9.6.1.1: the well-known ports of domain d are PB + DG * d + {d0, d1, d2, d3} + PG * participant,
# PB = 7400, DG = 250, PG = 2 (d0 = 0, d2 = 1 multicast; d1 = 10, d3 = 11 unicast), so all of a domain's lie in
# [PB + DG * d, PB + DG * (d + 1)). Fast DDS and Cyclone DDS both use these defaults.
RTPS_PB, RTPS_DG = 7400, 250


def dds_port_range(domain_id: int) -> range:
    """The UDP ports DDS participants of ROS_DOMAIN_ID ``domain_id`` may bind or send to (RTPS defaults)."""
    lo = RTPS_PB + RTPS_DG * int(domain_id)
    return range(lo, lo + RTPS_DG)


class UdpGloveReceiver:
    """Background UDP receiver keeping the newest valid sample (thread-safe).

    ``clock``: the time base of ``t_recv`` (default ``time.monotonic``; the node passes its ROS
    clock so staleness is measured on one clock). ``key``: HMAC-SHA256 key (bytes) of the signed
    envelope (:mod:`bora_teleop.glove_auth`); None = unauthenticated, allowed only when ``host`` is a
    loopback address (else ValueError). ``allowed_sources``: source IP addresses accepted (empty: any).
    ``on_fault(kind, text)``: called for every dropped datagram (from the receiver thread); default:
    a rate-limited ``logging`` warning. ``dds_domain_id``: the ROS_DOMAIN_ID of the process; a ``port``
    inside its :func:`dds_port_range` is refused (ValueError), None skips the check.
    """

    def __init__(
        self,
        n_angles: int,
        names: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_s: float = 0.2,
        clock=time.monotonic,
        key: bytes | None = None,
        allowed_sources=(),
        on_fault: Callable[[str, str], None] | None = None,
        dds_domain_id: int | None = None,
    ):
        if dds_domain_id is not None and int(port) in (dds := dds_port_range(dds_domain_id)):
            raise ValueError(
                f"parameter udp_port={port}: inside DDS's port range {dds.start}..{dds.stop - 1} of ROS_DOMAIN_ID "
                f"{dds_domain_id} (its discovery and topic traffic would arrive there); pick a port outside it"
            )
        self.n_angles, self.names, self.timeout_s, self.clock = int(n_angles), names, float(timeout_s), clock
        if key is None and not is_loopback(host):
            raise ValueError(
                f"parameter udp_host={host!r}: the unauthenticated glove stream is allowed only on a loopback "
                "address; set udp_key_file (HMAC-SHA256 key, bora_teleop/glove_auth.py) to bind another address"
            )
        self.key = key
        self.allowed_sources = parse_sources(allowed_sources)
        self.on_fault = on_fault if on_fault is not None else _default_fault_log()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, int(port)))
        except OSError as e:
            self.sock.close()
            raise ValueError(f"parameters udp_host/udp_port: cannot bind {host}:{port} ({e.strerror or e})") from None
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self._lock = threading.Lock()
        self._latest: GloveSample | None = None
        self._counter = -1  # last accepted envelope counter (authenticated mode)
        self.stats = {"received": 0, "accepted": 0} | {k: 0 for k in FAULT_KINDS}
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.address[1])

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _fault(self, kind: str, text: str) -> bool:
        self.stats[kind] += 1
        self.last_error = text
        try:
            self.on_fault(kind, text)
        except Exception:  # noqa: BLE001 - a failing callback must not stop the receiver
            pass
        return False

    def handle(self, data: bytes, source: str | None = None) -> bool:
        """Check, decode and maybe accept one datagram from ``source`` (IP; None = unknown, refused when
        ``allowed_sources`` is set). Returns accepted. Never raises: anything unexpected is counted as
        ``internal_error`` (a last resort: every known bad input has its own check)."""
        try:
            with self._lock:
                return self._handle(data, source)
        except Exception as e:  # noqa: BLE001 - the boundary: nothing a datagram holds may escape
            return self._fault("internal_error", f"glove packet handling failed: {_short(repr(e))}")

    def _handle(self, data: bytes, source: str | None) -> bool:
        now = self.clock()
        self.stats["received"] += 1
        if self.allowed_sources and source not in self.allowed_sources:
            return self._fault("wrong_source", f"glove packet from {source}, not in udp_allowed_sources")
        counter = None
        if self.key is not None:
            try:
                counter, data = verify(bytes(data), self.key)
            except AuthError as e:
                return self._fault("bad_signature", f"{e} (from {source})")
            if counter <= self._counter:
                return self._fault(
                    "replayed", f"signed packet counter {counter} not above the last accepted {self._counter}"
                )
        try:
            angles, seq, stamp = decode_packet(data, self.names)
            if angles.size != self.n_angles:
                raise PacketError(f"{angles.size} angles, expected {self.n_angles}")
        except PacketError as e:
            return self._fault("malformed", str(e))
        if not np.all(np.isfinite(angles)):
            bad = np.flatnonzero(~np.isfinite(angles)).tolist()
            return self._fault("nonfinite", f"non-finite glove angles at indices {bad[:8]}")
        last = self._latest
        if last is not None and now - last.t_recv <= self.timeout_s:
            ahead = (seq - last.seq) & 0xFFFFFFFF
            if ahead == 0 or ahead >= 0x80000000:
                return self._fault("out_of_order", f"glove packet seq {seq} not after {last.seq}")
        if counter is not None:
            self._counter = counter
        self._latest = GloveSample(angles, seq, stamp, now, "udp")
        self.stats["accepted"] += 1
        return True

    def _receive_one(self) -> bool:
        """Receive and handle one datagram; False when the socket is closed."""
        try:
            data, addr = self.sock.recvfrom(65536)
        except TimeoutError:
            return True
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return not self._stop.is_set() and self.sock.fileno() >= 0
        self.handle(data, addr[0] if addr else None)
        return True

    def poll(self, max_packets: int = 1000) -> int:
        """Drain the socket without blocking (when no thread runs). Returns packets read."""
        self.sock.setblocking(False)
        k = 0
        try:
            while k < max_packets:
                try:
                    data, addr = self.sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                self.handle(data, addr[0] if addr else None)
                k += 1
        finally:
            self.sock.settimeout(0.05)
        return k

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._receive_one():
                    break
            except Exception as e:  # noqa: BLE001 - the thread boundary: count, report, keep receiving
                self._fault("internal_error", f"udp_glove receive loop: {_short(repr(e))}")
                time.sleep(0.001)

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


def _default_fault_log() -> Callable[[str, str], None]:
    from bora_teleop.health import RateLimitedLog

    logger = logging.getLogger("bora_teleop.glove")
    limited = RateLimitedLog(lambda level, text: logger.warning(text), time.monotonic, 1.0)
    return lambda kind, text: limited(kind, "warning", f"udp glove: {kind}: {text}")


def freshest(samples, now: float, timeout_s: float) -> GloveSample | None:
    """The most recently received sample that is not older than ``timeout_s``, else None."""
    ok = [s for s in samples if s is not None and now - s.t_recv <= timeout_s + 1e-9]
    return max(ok, key=lambda s: s.t_recv) if ok else None
