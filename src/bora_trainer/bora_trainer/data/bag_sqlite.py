"""sqlite3 rosbag2 storage files read with salvage (no rclpy).

First through SQL (``topics``, ``message_definitions``, ``messages ORDER BY id``). When SQL fails
part-way (a damaged page: "database disk image is malformed") or the file is shorter than its
header says (a cut file), the file is also read page by page: every table-leaf page is parsed
(the sqlite3 file format, https://www.sqlite.org/fileformat2.html: cell pointer array, varint
records, overflow chains), rows that look like ``messages`` rows ``(id, topic_id, timestamp,
data)`` or ``topics`` rows are collected, and the union with what SQL returned is kept. A row is
lost only when its own page (or one of its overflow pages) is unreadable. Lost rows are counted
from the gaps in the message ids (rosbag2 numbers them 1, 2, ...), with the log times around them.
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SqliteRead:
    topics: dict[int, tuple[str, str, str, str]] = field(default_factory=dict)  # id -> (name, type, fmt, def)
    messages: list[tuple[int, int, bytes]] = field(default_factory=list)  # (topic_id, timestamp, data)
    damage: list[dict] = field(default_factory=list)
    truncated: bool = False


def read_sqlite(f: Path) -> SqliteRead:
    raw = f.read_bytes()
    if len(raw) == 0:
        raise ValueError(f"{f}: empty storage file (0 bytes): nothing was recorded in it")
    if raw[:16] != b"SQLite format 3\x00":
        raise ValueError(f"{f}: not a sqlite3 file (bad header); expected a rosbag2 .db3")
    res = SqliteRead()
    page_size = struct.unpack_from(">H", raw, 16)[0]
    page_size = 65536 if page_size == 1 else page_size
    header_pages = struct.unpack_from(">I", raw, 28)[0]
    if header_pages and len(raw) < header_pages * page_size:
        res.truncated = True
        res.damage.append(
            dict(
                kind="truncated file",
                offset=len(raw),
                end=header_pages * page_size,
                t=None,
                note=f"{len(raw)} of {header_pages * page_size} bytes "
                f"({header_pages - len(raw) // page_size} page(s) missing)",
            )
        )
    rows: dict[int, tuple[int, int, bytes]] = {}
    bad_rows = 0
    sql_error = None
    defs: dict[str, tuple[str, str]] = {}
    try:
        con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{f}: not a readable sqlite3 bag ({e})") from None
    try:
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            tables, sql_error = {"topics", "messages"}, str(e)
        if not sql_error and not {"topics", "messages"} <= tables:
            raise ValueError(f"{f}: sqlite3 file without topics/messages tables (not a rosbag2 bag)")
        try:
            if "message_definitions" in tables:
                for t, enc, text in con.execute(
                    "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
                ):
                    if isinstance(t, str) and isinstance(text, str):
                        defs[t] = (str(enc or ""), text)
            for tid, name, typ in con.execute("SELECT id, name, type FROM topics ORDER BY id"):
                if isinstance(tid, int) and isinstance(name, str) and isinstance(typ, str):
                    res.topics[tid] = (name, typ, *defs.get(typ, ("", "")))
            for rid, tid, ts, blob in con.execute("SELECT id, topic_id, timestamp, data FROM messages ORDER BY id"):
                if isinstance(tid, int) and isinstance(ts, int) and isinstance(blob, bytes):
                    rows[int(rid)] = (tid, ts, blob)
                else:  # a damaged row (wrong types): lost, counted by the id gaps below
                    bad_rows += 1
        except sqlite3.DatabaseError as e:
            sql_error = str(e)
    finally:
        con.close()
    if sql_error or res.truncated:
        scan = _PageScan(raw, page_size)
        scan.run()
        added = 0
        for rid, row in scan.messages.items():
            if rid not in rows:
                rows[rid] = row
                added += 1
        for tid, (name, typ) in scan.topics.items():
            if tid not in res.topics:
                res.topics[tid] = (name, typ, *defs.get(typ, scan.defs.get(typ, ("", ""))))
        if sql_error:
            res.damage.append(
                dict(
                    kind="damaged database",
                    offset=0,
                    end=0,
                    t=None,
                    note=f"SQL stopped ({sql_error}); {added} more row(s) read page by page, "
                    f"{scan.bad_pages} unreadable page(s)",
                )
            )
    ids = sorted(rows)
    res.messages = [rows[i] for i in ids]
    # gaps in the ids = lost rows (rosbag2 numbers messages 1, 2, ... and never deletes)
    prev = 0
    for i in ids + ([] if not res.truncated else []):
        if i > prev + 1:
            t0 = rows[prev][1] if prev in rows else None
            res.damage.append(
                dict(
                    kind="rows lost",
                    offset=prev + 1,
                    end=i - 1,
                    t=(t0, rows[i][1]),
                    unit="rows",
                    note=f"{i - prev - 1} message row(s) (ids {prev + 1}..{i - 1}) unreadable",
                )
            )
        prev = i
    return res


def _varint(b: bytes, p: int) -> tuple[int, int]:
    v = 0
    for i in range(9):
        if p >= len(b):
            raise IndexError
        c = b[p]
        p += 1
        if i == 8:
            return (v << 8) | c, p
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, p
    return v, p


class _PageScan:
    """Table-leaf cells of every page, decoded as records (see module docstring)."""

    def __init__(self, raw: bytes, page_size: int):
        self.raw, self.ps = raw, page_size
        reserved = raw[20] if len(raw) > 20 else 0
        self.U = page_size - reserved
        self.messages: dict[int, tuple[int, int, bytes]] = {}
        self.topics: dict[int, tuple[str, str]] = {}
        self.defs: dict[str, tuple[str, str]] = {}
        self.bad_pages = 0

    def page(self, n: int) -> bytes | None:
        a = (n - 1) * self.ps
        if n < 1 or a + self.ps > len(self.raw):
            return None
        return self.raw[a : a + self.ps]

    def run(self) -> None:
        npages = (len(self.raw) + self.ps - 1) // self.ps
        for n in range(1, npages + 1):
            a = (n - 1) * self.ps
            pg = self.raw[a : a + self.ps]
            hdr = 100 if n == 1 else 0
            if len(pg) <= hdr + 8:
                continue
            kind = pg[hdr]
            if kind != 0x0D:
                if kind == 0 and not any(pg[hdr : hdr + 8]):
                    self.bad_pages += pg.count(0) == len(pg)
                continue
            try:
                ncells = struct.unpack_from(">H", pg, hdr + 3)[0]
            except struct.error:
                continue
            for i in range(ncells):
                try:
                    off = struct.unpack_from(">H", pg, hdr + 8 + 2 * i)[0]
                    self._cell(pg, off)
                except (IndexError, struct.error, ValueError, UnicodeDecodeError):
                    continue

    def _cell(self, pg: bytes, off: int) -> None:
        P, p = _varint(pg, off)
        rowid, p = _varint(pg, p)
        X = self.U - 35
        if P <= X:
            local = P
        else:
            M = ((self.U - 12) * 32 // 255) - 23
            K = M + ((P - M) % (self.U - 4))
            local = K if K <= X else M
        if p + local > len(pg):
            raise IndexError
        payload = pg[p : p + local]
        if local < P:
            nxt = struct.unpack_from(">I", pg, p + local)[0]
            chunks = [payload]
            have = local
            seen = set()
            while have < P:
                if nxt in seen:
                    raise ValueError("overflow loop")
                seen.add(nxt)
                op = self.page(nxt)
                if op is None:
                    raise ValueError("overflow page missing")
                take = min(P - have, self.U - 4)
                chunks.append(op[4 : 4 + take])
                have += take
                nxt = struct.unpack_from(">I", op, 0)[0]
            payload = b"".join(chunks)
        vals = _record(payload)
        if (
            len(vals) == 4
            and vals[0] is None
            and all(isinstance(v, int) for v in vals[1:3])
            and isinstance(vals[3], bytes)
        ):
            self.messages[rowid] = (vals[1], vals[2], vals[3])
        elif (
            len(vals) in (5, 6)
            and vals[0] is None
            and isinstance(vals[1], str)
            and vals[1].startswith("/")
            and isinstance(vals[2], str)
            and "/" in vals[2]
        ):
            self.topics[rowid] = (vals[1], vals[2])
        elif (
            len(vals) == 5
            and vals[0] is None
            and isinstance(vals[1], str)
            and isinstance(vals[3], str)
            and vals[2] in ("ros2msg", "ros2idl", "unknown", "")
        ):
            self.defs[vals[1]] = (vals[2], vals[3])


def _record(b: bytes) -> list:
    hsize, p = _varint(b, 0)
    types = []
    while p < hsize:
        t, p = _varint(b, p)
        types.append(t)
    vals: list = []
    q = hsize
    for t in types:
        if t == 0:
            vals.append(None)
        elif 1 <= t <= 6:
            n = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}[t]
            if q + n > len(b):
                raise IndexError
            vals.append(int.from_bytes(b[q : q + n], "big", signed=True))
            q += n
        elif t == 7:
            vals.append(struct.unpack_from(">d", b, q)[0])
            q += 8
        elif t in (8, 9):
            vals.append(t - 8)
        elif t >= 12:
            n = (t - 12) // 2
            if q + n > len(b):
                raise IndexError
            v = b[q : q + n]
            vals.append(bytes(v) if t % 2 == 0 else v.decode("utf-8"))
            q += n
        else:
            raise ValueError("reserved serial type")
    return vals
