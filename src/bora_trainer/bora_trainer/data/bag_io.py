"""rosbag2 directories (MCAP or sqlite3) read tolerantly and written crash-safely (no rclpy).

Reading (:func:`read_bag`) does not go through ``metadata.yaml`` or the MCAP summary: it scans
the storage files record by record (:mod:`bag_mcap`) or page by page when SQL cannot read them
(:mod:`bag_sqlite`), so a bag whose recorder was killed (no ``metadata.yaml``, no MCAP footer, a
partial last record) or whose file was damaged afterwards yields every message that can still be
read. Each damaged place is a :class:`Damage` (``BagData.damage``); what was lost is counted per
topic against ``metadata.yaml`` or the MCAP statistics when either survived (``BagData.lost``)
and summarised in one warning. Works for bags from ``ros2 bag record -s mcap`` (chunked,
zstd/lz4), ``-s sqlite3`` and ``bora record``.

Writing (:class:`FlushingWriter`) is rosbags' ``Writer`` with an MCAP storage plugin that writes
every schema, channel and message as its own top-level record (MCAP allows un-chunked data)
and flushes it to the OS at once (fsync every ``fsync_every_s``), instead of buffering 1 MiB
chunks in memory: a kill keeps everything up to the last complete message. A clean ``close()``
adds the summary, footer and ``metadata.yaml`` as usual, so rosbags' own Reader reads the result.
"""

from __future__ import annotations

import io
import os
import struct
import time
from collections import defaultdict
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
class Damage:
    """One damaged place of a storage file: what, where (byte offsets or rowids), what is known lost."""

    file: str
    kind: str
    offset: int
    end: int
    lost: dict[str, int] | None  # topic -> count, None = unknown
    t: tuple | None  # (first, last) log time in ns around it, when known
    note: str = ""
    unit: str = "bytes"  # what offset..end count: "bytes" of the file, or message "rows" (sqlite ids)

    def describe(self) -> str:
        where = f"{self.unit} {self.offset}..{self.end}"
        if self.end <= self.offset:
            where = f"at {self.unit[:-1]} {self.offset}"
        lost = "unknown messages"
        if self.lost is not None:
            lost = ", ".join(f"{t}: {n}" for t, n in self.lost.items()) or "nothing"
        tr = ""
        if self.t and self.t[0] is not None:
            tr = f", log time {self.t[0]}" + (f"..{self.t[1]}" if self.t[1] not in (None, self.t[0]) else "")
        note = f"; {self.note}" if self.note else ""
        return f"{Path(self.file).name}: {self.kind} ({where}{tr}): lost {lost}{note}"


@dataclass
class BagData:
    """Everything readable from one bag: connections, ``(conn_id, log_time_ns, raw_cdr)``, warnings."""

    path: Path
    connections: dict[int, BagConnection] = field(default_factory=dict)
    messages: list[tuple[int, int, bytes]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False
    damage: list[Damage] = field(default_factory=list)
    expected_counts: dict[str, int] = field(default_factory=dict)  # from the MCAP summary statistics
    recorded_types: dict[str, str] = field(default_factory=dict)  # topic -> type in metadata.yaml
    lost: dict[str, int] = field(default_factory=dict)  # topic -> messages known to be lost

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
    """Every readable message of a bag directory (or one storage file); damage salvaged and reported."""
    path = Path(path)
    data = BagData(path)
    if path.is_dir() and not (path / "metadata.yaml").exists():
        data.warnings.append(
            f"{path}: no metadata.yaml (recorder killed before closing?); scanning storage files"
        )
    files = storage_files(path)
    empty = [f for f in files if f.stat().st_size == 0]
    if len(empty) == len(files):
        raise BagReadError(
            f"{path}: {'its storage file is' if len(files) == 1 else 'all its storage files are'} empty "
            "(0 bytes): nothing was recorded; expected an MCAP or sqlite3 rosbag2 with messages"
        )
    for f in files:
        if f in empty:
            data.warnings.append(f"{f}: empty storage file (0 bytes) skipped")
            continue
        try:
            if f.suffix == ".mcap":
                _read_mcap(f, data)
            elif f.suffix == ".db3":
                _read_sqlite(f, data)
            else:
                raise BagReadError(f"{f}: unknown storage format (expected .mcap or .db3)")
        except OSError as e:
            raise BagReadError(f"{f}: cannot read ({e.strerror}); expected a readable storage file") from None
    _account(data)
    return data


def _read_mcap(f: Path, data: BagData) -> None:
    from bora_trainer.data.bag_mcap import McapScan

    try:
        scan = McapScan(f).read()
    except ValueError as e:
        raise BagReadError(str(e)) from None
    chan_map: dict[int, int] = {}
    base = max(data.connections, default=0)
    for cid, (sid, topic, _enc) in sorted(scan.channels.items()):
        name, fmt, text = scan.schemas.get(sid, ("", "", ""))
        chan_map[cid] = _connection(data, base, len(chan_map), topic, name, fmt, text)
    for cid, t_ns, raw in scan.messages:
        data.messages.append((chan_map[cid], t_ns, raw))
    data.truncated |= scan.truncated
    topic_of = {cid: scan.channels[cid][1] for cid in scan.channels}
    for d in scan.damage:
        lost = None if d["lost"] is None else {topic_of.get(c, f"channel {c}"): n for c, n in d["lost"].items()}
        data.damage.append(Damage(str(f), d["kind"], d["offset"], d["end"], lost, d["t"], d["note"]))
    if scan.stats is not None:
        data.expected_counts.update(
            {topic_of[c]: data.expected_counts.get(topic_of[c], 0) + n for c, n in scan.stats.items() if c in topic_of}
        )


def _connection(data: BagData, base: int, i: int, topic: str, msgtype: str, fmt: str, text: str) -> int:
    """The global connection id of (topic, type), created if new."""
    gid = next((c.id for c in data.connections.values() if c.topic == topic and c.msgtype == msgtype), None)
    if gid is None:
        gid = base + i + 1
        while gid in data.connections:
            gid += 1
        data.connections[gid] = BagConnection(gid, topic, msgtype, fmt, text)
    return gid


def _read_sqlite(f: Path, data: BagData) -> None:
    from bora_trainer.data.bag_sqlite import read_sqlite

    try:
        res = read_sqlite(f)
    except ValueError as e:
        raise BagReadError(str(e)) from None
    base = max(data.connections, default=0)
    local: dict[int, int] = {}
    for tid, (name, typ, fmt, text) in sorted(res.topics.items()):
        local[tid] = _connection(data, base, len(local), name, typ, fmt, text)
    for tid, ts, blob in res.messages:
        if tid in local:
            data.messages.append((local[tid], ts, blob))
    data.truncated |= res.truncated
    for d in res.damage:
        data.damage.append(
            Damage(str(f), d["kind"], d["offset"], d["end"], None, d["t"], d["note"], d.get("unit", "bytes"))
        )


def _metadata_topics(path: Path) -> tuple[dict[str, int], dict[str, str]]:
    """(topic -> message count, topic -> type) from metadata.yaml (what the recorder wrote); empty when
    there is none or it is unreadable."""
    try:
        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        entries = info.get("topics_with_message_count", [])
        counts = {str(t["topic_metadata"]["name"]): int(t["message_count"]) for t in entries}
        types = {str(t["topic_metadata"]["name"]): str(t["topic_metadata"]["type"]) for t in entries}
        return counts, types
    except Exception:  # noqa: BLE001 - no or damaged metadata.yaml: the storage files decide
        return {}, {}


def _account(data: BagData) -> None:
    """Per topic: messages the recording says it has (metadata.yaml or the MCAP statistics) minus
    what was read = lost, with the time range of the gap around the damage; one warning per bag."""
    counts: dict[str, int] = defaultdict(int)
    times: dict[str, list[int]] = defaultdict(list)
    for cid, t_ns, _ in data.messages:
        counts[data.connections[cid].topic] += 1
        times[data.connections[cid].topic].append(t_ns)
    expected, data.recorded_types = _metadata_topics(data.path) if data.path.is_dir() else ({}, {})
    expected = expected or data.expected_counts
    lost = {t: n - counts.get(t, 0) for t, n in expected.items() if n > counts.get(t, 0)}
    # add what the damage records themselves know (message indexes) when no totals are known
    if not expected:
        for d in data.damage:
            for t, n in (d.lost or {}).items():
                lost[t] = lost.get(t, 0) + n
    data.lost = lost
    if lost or data.damage:
        ranges = []
        for t, n in sorted(lost.items()):
            known = [(d.t[0], d.t[1]) for d in data.damage if d.lost and t in d.lost and d.t]
            tr = f" at {min(a for a, _ in known)}..{max(b for _, b in known)} ns" if known else ""
            ranges.append(f"{t}: {n}{tr}")
        known = expected or all(d.lost is not None for d in data.damage)
        unknown = "" if known else " (plus an unknown number in unreadable bytes)"
        dated = [
            f"{d.t[0] or '?'}..{d.t[1] or 'end'}" for d in data.damage if d.lost is None and d.t and any(d.t)
        ]
        data.warnings.append(
            f"{data.path}: damaged ({len(data.damage)} place(s)); kept {len(data.messages)} message(s), lost "
            + (", ".join(ranges) if ranges else "0 known")
            + unknown
            + (f" (unreadable parts between log times {', '.join(dated)} ns)" if dated else "")
            + (
                f"; {crc} chunk(s) failed their CRC: their messages are kept but may carry damaged bytes"
                if (crc := sum(d.kind == "chunk CRC mismatch" for d in data.damage))
                else ""
            )
            + "; see `bora bag info`"
        )


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
