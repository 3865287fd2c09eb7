"""rosbag2 directories (MCAP or sqlite3) read tolerantly and written crash-safely (no rclpy).

Reading (:func:`read_bag`) does not go through ``metadata.yaml`` or the MCAP summary: it scans
the storage files record by record, so a bag whose recorder was killed (no ``metadata.yaml``, no
MCAP footer, a partial last record) yields every complete message before the damage, with a
warning. Works for bags from ``ros2 bag record -s mcap`` (chunked, zstd/lz4), ``-s sqlite3`` and
``bora record``.

Writing (:class:`FlushingWriter`) is rosbags' ``Writer`` with an MCAP storage plugin that writes
every schema, channel and message as its own top-level record (MCAP allows un-chunked data)
and flushes it to the OS at once (fsync every ``fsync_every_s``), instead of buffering 1 MiB
chunks in memory: a kill keeps everything up to the last complete message. A clean ``close()``
adds the summary, footer and ``metadata.yaml`` as usual, so rosbags' own Reader reads the result.
"""

from __future__ import annotations

import io
import os
import sqlite3
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapWriter, write_record

MCAP_MAGIC = b"\x89MCAP0\r\n"


class BagReadError(RuntimeError):
    """A path is not a readable rosbag2 directory or storage file."""


@dataclass
class BagConnection:
    id: int
    topic: str
    msgtype: str  # "pkg/msg/Type"
    fmt: str  # "ros2msg" | "ros2idl" | ""
    msgdef: str


@dataclass
class BagData:
    """Everything readable from one bag: connections, ``(conn_id, log_time_ns, raw_cdr)``, warnings."""

    path: Path
    connections: dict[int, BagConnection] = field(default_factory=dict)
    messages: list[tuple[int, int, bytes]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def topics(self) -> dict[str, str]:
        return {c.topic: c.msgtype for c in self.connections.values()}


# ---------------------------------------------------------------------------------------- reading
def storage_files(path: str | Path) -> list[Path]:
    """Storage files of a bag directory (metadata.yaml order when present) or a single file."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BagReadError(f"{path}: no such bag directory or file")
    meta = path / "metadata.yaml"
    files: list[Path] = []
    if meta.exists():
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            files = [path / p for p in info.get("relative_file_paths", [])]
        except Exception:  # noqa: BLE001 - a damaged metadata.yaml: fall back to globbing
            files = []
    found = sorted(list(path.glob("*.mcap")) + list(path.glob("*.db3")))
    files = [f for f in files if f.exists()] + [f for f in found if f not in files]
    if not files:
        raise BagReadError(f"{path}: no .mcap or .db3 storage file (is it a rosbag2 directory?)")
    return files


def read_bag(path: str | Path) -> BagData:
    """All complete messages of a bag directory (or one storage file), tolerant of truncation."""
    path = Path(path)
    data = BagData(path)
    if path.is_dir() and not (path / "metadata.yaml").exists():
        data.warnings.append(
            f"{path}: no metadata.yaml (recorder killed before closing?); scanning storage files"
        )
    for f in storage_files(path):
        if f.suffix == ".mcap":
            _read_mcap(f, data)
        elif f.suffix == ".db3":
            _read_sqlite(f, data)
        else:
            raise BagReadError(f"{f}: unknown storage format (expected .mcap or .db3)")
    return data


class _Trunc(Exception):
    pass


def _take(buf: memoryview, pos: int, n: int) -> tuple[memoryview, int]:
    if pos + n > len(buf):
        raise _Trunc
    return buf[pos : pos + n], pos + n


def _u(buf: memoryview, pos: int, fmt: str) -> tuple[int, int]:
    size = struct.calcsize(fmt)
    b, pos = _take(buf, pos, size)
    return struct.unpack(fmt, b)[0], pos


def _str(buf: memoryview, pos: int) -> tuple[str, int]:
    n, pos = _u(buf, pos, "<I")
    b, pos = _take(buf, pos, n)
    return bytes(b).decode("utf-8"), pos


def _decompress(comp: str, payload: bytes, size: int) -> bytes:
    if comp == "":
        return payload
    if comp == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(payload, max_output_size=size)
    if comp == "lz4":
        import lz4.frame

        return lz4.frame.decompress(payload)
    raise BagReadError(f"unsupported MCAP chunk compression {comp!r}")


def _read_mcap(f: Path, data: BagData) -> None:
    raw = f.read_bytes()
    if len(raw) < 8 or raw[:8] != MCAP_MAGIC:
        if len(raw) == 0:
            data.warnings.append(f"{f}: empty storage file")
            data.truncated = True
            return
        raise BagReadError(f"{f}: not an MCAP file (bad magic)")
    schemas: dict[int, tuple[str, str, str]] = {}
    chan_map: dict[int, int] = {}  # file-local channel id -> global connection id
    base = max(data.connections, default=0)

    def records(buf: memoryview, start: int, top: bool) -> None:
        pos = start
        while pos < len(buf):
            rec_start = pos
            try:
                op, pos = _u(buf, pos, "<B")
                n, pos = _u(buf, pos, "<Q")
                body, pos = _take(buf, pos, n)
            except _Trunc:
                if top:
                    data.truncated = True
                    data.warnings.append(
                        f"{f}: truncated after byte {rec_start} of {len(buf)} (partial last record dropped); "
                        "everything before it is kept"
                    )
                    return
                raise BagReadError(f"{f}: corrupt chunk (record overruns it)") from None
            if op == 0x02 or op == 0x0F:  # footer / data end: the data section is over
                return
            try:
                _record(op, body)
            except _Trunc:
                raise BagReadError(f"{f}: malformed record (opcode {op:#x}) at byte {rec_start}") from None

    def _record(op: int, body: memoryview) -> None:
        if op == 0x03:  # Schema
            sid, p = _u(body, 0, "<H")
            name, p = _str(body, p)
            enc, p = _str(body, p)
            n, p = _u(body, p, "<I")
            text, p = _take(body, p, n)
            schemas[sid] = (name, enc, bytes(text).decode("utf-8", "replace"))
        elif op == 0x04:  # Channel
            cid, p = _u(body, 0, "<H")
            sid, p = _u(body, p, "<H")
            topic, p = _str(body, p)
            _enc, p = _str(body, p)
            if cid in chan_map:
                return
            name, fmt, text = schemas.get(sid, ("", "", ""))
            gid = next(
                (c.id for c in data.connections.values() if c.topic == topic and c.msgtype == name), None
            )
            if gid is None:
                gid = base + len(chan_map) + 1
                while gid in data.connections:
                    gid += 1
                data.connections[gid] = BagConnection(gid, topic, name, fmt, text)
            chan_map[cid] = gid
        elif op == 0x05:  # Message
            cid, p = _u(body, 0, "<H")
            _seq, p = _u(body, p, "<I")
            log_time, p = _u(body, p, "<Q")
            _pub, p = _u(body, p, "<Q")
            if cid not in chan_map:
                data.warnings.append(f"{f}: message on unknown channel {cid} dropped")
                return
            data.messages.append((chan_map[cid], log_time, bytes(body[p:])))
        elif op == 0x06:  # Chunk
            _s, p = _u(body, 0, "<Q")
            _e, p = _u(body, p, "<Q")
            usize, p = _u(body, p, "<Q")
            crc, p = _u(body, p, "<I")
            comp, p = _str(body, p)
            n, p = _u(body, p, "<Q")
            payload, p = _take(body, p, n)
            inner = _decompress(comp, bytes(payload), usize)
            if crc and zlib.crc32(inner) != crc:
                data.warnings.append(f"{f}: chunk with a bad CRC dropped")
                return
            records(memoryview(inner), 0, top=False)

    records(memoryview(raw), 8, top=True)


def _read_sqlite(f: Path, data: BagData) -> None:
    try:
        con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise BagReadError(f"{f}: not a readable sqlite3 bag ({e})") from e
    if not {"topics", "messages"} <= tables:
        raise BagReadError(f"{f}: sqlite3 file without topics/messages tables (not a rosbag2 bag)")
    defs: dict[str, tuple[str, str]] = {}
    if "message_definitions" in tables:
        for t, enc, text in con.execute(
            "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
        ):
            defs[t] = (enc, text)
    local: dict[int, int] = {}
    base = max(data.connections, default=0)
    for tid, name, typ in con.execute("SELECT id, name, type FROM topics ORDER BY id"):
        gid = next((c.id for c in data.connections.values() if c.topic == name and c.msgtype == typ), None)
        if gid is None:
            gid = base + len(local) + 1
            while gid in data.connections:
                gid += 1
            fmt, text = defs.get(typ, ("", ""))
            data.connections[gid] = BagConnection(gid, name, typ, fmt, text)
        local[tid] = gid
    try:
        for tid, ts, blob in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            if tid in local:
                data.messages.append((local[tid], int(ts), bytes(blob)))
    except sqlite3.DatabaseError as e:
        data.truncated = True
        data.warnings.append(f"{f}: database damaged while reading messages ({e}); rows before it are kept")
    finally:
        con.close()


# ---------------------------------------------------------------------------------------- writing
class FlushingMcapWriter(McapWriter):
    """rosbags MCAP storage that writes every record un-chunked and flushes it immediately."""

    fsync_every_s = 1.0

    def __init__(self, path: Path, compression) -> None:
        super().__init__(path, compression)
        self.bio.flush()
        self._last_sync = time.monotonic()

    def _drain(self) -> None:
        # schema/channel records were written into the pending chunk buffer by the parent: move them out
        self.bio.write(self.chunk.bio.getvalue())
        self.chunk.bio = io.BytesIO()
        self._sync(force=True)

    def _sync(self, force: bool = False) -> None:
        self.bio.flush()
        now = time.monotonic()
        if force or now - self._last_sync >= self.fsync_every_s:
            os.fsync(self.bio.fileno())
            self._last_sync = now

    def add_msgtype(self, connection) -> None:
        super().add_msgtype(connection)
        self._drain()

    def add_connection(self, connection, offered_qos_profiles: str) -> None:
        super().add_connection(connection, offered_qos_profiles)
        self._drain()

    def write(self, connection, timestamp: int, data) -> None:
        self.message_start_time = min(timestamp, self.message_start_time)
        self.message_end_time = max(timestamp, self.message_end_time)
        self.channel_stats[connection.id] += 1
        rec = io.BytesIO()
        rec.write(struct.pack("<HIQQ", connection.id, 0, timestamp, timestamp))
        rec.write(data)
        write_record(self.bio, 0x05, rec)
        self._sync()

    def close(self, version: int, metadata: str) -> None:
        super().close(version, metadata)  # no chunks: summary = schemas, channels, statistics


class FlushingWriter(Writer):
    """rosbags ``Writer`` whose MCAP storage is :class:`FlushingMcapWriter` (sqlite3 unchanged)."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: FlushingMcapWriter}


def open_writer(path: str | Path, storage: str = "mcap", flushing: bool = True) -> Writer:
    """An opened rosbag2 writer (version 9) for ``mcap`` or ``sqlite3`` storage."""
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
    if plugin is None:
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    cls = FlushingWriter if flushing else Writer
    w = cls(path, version=9, storage_plugin=plugin)
    w.open()
    return w
