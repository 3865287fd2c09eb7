"""MCAP storage files read record by record, salvaging what a damaged file still holds (no rclpy).

The reader does not trust the summary: it walks the data section record by record. A record is
accepted when its opcode is known, its body parses, and the record after it is plausible too (or
the data ends there), so one corrupted length cannot make the reader take garbage for records.
At a record it cannot accept it scans forward for the next position where two plausible records
follow each other and carries on from there; the bytes in between are reported as damage.

Chunks are opened the same way: their records are walked with the same resynchronisation; the
MessageIndex records that follow a chunk give the offset of each of its messages, so a message
the walk missed is looked up there, and a message that cannot be read at its indexed offset is
counted as lost with its topic and log time. A chunk cut by the end of the file (a killed writer)
is decompressed as far as its bytes go and every complete record in it is kept. A chunk whose CRC
does not match is still read (its messages are kept if they decode; the mismatch is reported).
Choice of ours: messages are identified by their offset in the file / chunk, so a message found
both by the walk and by the index is kept once.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

MCAP_MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_MSG_INDEX = 1, 2, 3, 4, 5, 6, 7
OP_STATISTICS, OP_DATA_END = 0x0B, 0x0F
KNOWN_OPS = set(range(0x01, 0x11))
_CAND = re.compile(rb"(?=[\x01-\x10][\x00-\xff]{4}\x00\x00\x00\x00)", re.S)


class _Bad(Exception):
    pass


def _u(b: bytes | memoryview, p: int, fmt: str) -> tuple[int, int]:
    n = struct.calcsize(fmt)
    if p + n > len(b):
        raise _Bad
    return struct.unpack_from(fmt, b, p)[0], p + n


def _s(b: bytes | memoryview, p: int) -> tuple[str, int]:
    n, p = _u(b, p, "<I")
    if p + n > len(b):
        raise _Bad
    try:
        return bytes(b[p : p + n]).decode("utf-8"), p + n
    except UnicodeDecodeError:
        raise _Bad from None


def _bytes(b: bytes | memoryview, p: int, lenfmt: str) -> tuple[bytes, int]:
    n, p = _u(b, p, lenfmt)
    if p + n > len(b):
        raise _Bad
    return bytes(b[p : p + n]), p + n


def parse_body(op: int, body: bytes | memoryview) -> tuple:
    """The fields of a record we use; raises _Bad if the body does not parse."""
    if op == OP_SCHEMA:
        sid, p = _u(body, 0, "<H")
        name, p = _s(body, p)
        enc, p = _s(body, p)
        text, p = _bytes(body, p, "<I")
        if p != len(body) or sid == 0:
            raise _Bad
        return sid, name, enc, text.decode("utf-8", "replace")
    if op == OP_CHANNEL:
        cid, p = _u(body, 0, "<H")
        sid, p = _u(body, p, "<H")
        topic, p = _s(body, p)
        enc, p = _s(body, p)
        _meta, p = _bytes(body, p, "<I")
        if p != len(body) or not topic.startswith("/"):
            raise _Bad
        return cid, sid, topic, enc
    if op == OP_MESSAGE:
        if len(body) < 22:
            raise _Bad
        cid, seq, log_time, pub = struct.unpack_from("<HIQQ", body, 0)
        return cid, log_time, bytes(body[22:])
    if op == OP_CHUNK:
        start, p = _u(body, 0, "<Q")
        end, p = _u(body, p, "<Q")
        usize, p = _u(body, p, "<Q")
        crc, p = _u(body, p, "<I")
        comp, p = _s(body, p)
        n, p = _u(body, p, "<Q")
        if comp not in ("", "zstd", "lz4") or end < start:
            raise _Bad
        return start, end, usize, crc, comp, n, p  # payload at body[p : p + n]
    if op == OP_MSG_INDEX:
        cid, p = _u(body, 0, "<H")
        n, p = _u(body, p, "<I")
        if p + n != len(body) or n % 16:
            raise _Bad
        return cid, [struct.unpack_from("<QQ", body, p + 16 * i) for i in range(n // 16)]
    if op == OP_STATISTICS:
        count, p = _u(body, 0, "<Q")
        p += 2 + 4 + 4 + 4 + 4 + 8 + 8
        n, p = _u(body, p, "<I")
        if p + n > len(body) or n % 10:
            raise _Bad
        return count, {
            struct.unpack_from("<H", body, p + 10 * i)[0]: struct.unpack_from("<Q", body, p + 10 * i + 2)[0]
            for i in range(n // 10)
        }
    return ()


class McapScan:
    """One MCAP file read with salvage. Results: ``schemas``, ``channels``, ``messages``
    (``(channel, log_time, data)`` in file order), ``damage`` (list of dicts), ``stats`` (the
    summary's per-channel message counts, when the summary survived), ``truncated``."""

    def __init__(self, f: Path):
        self.f = f
        self.schemas: dict[int, tuple[str, str, str]] = {}
        self.channels: dict[int, tuple[int, str, str]] = {}  # cid -> (schema id, topic, encoding)
        self.messages: list[tuple[int, int, bytes]] = []
        self.damage: list[dict] = []
        self.stats: dict[int, int] | None = None
        self.truncated = False
        self.crc_bad = 0

    # ------------------------------------------------------------------ plausibility
    def _plausible(self, buf: bytes, pos: int, end: int, inner: bool, new_cid: int = -1) -> tuple[int, bytes] | None:
        """(op, body) of a record at ``pos`` whose body parses and fits before ``end``, else None."""
        if pos + 9 > end:
            return None
        op, n = buf[pos], struct.unpack_from("<Q", buf, pos + 1)[0]
        if op not in KNOWN_OPS or pos + 9 + n > end:
            return None
        if inner and op not in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE):
            return None
        body = buf[pos + 9 : pos + 9 + n]
        try:
            fields = parse_body(op, body)
        except _Bad:
            return None
        if op == OP_CHUNK and fields[6] + fields[5] != len(body):
            return None
        if op == OP_MESSAGE and fields[0] not in self.channels and fields[0] != new_cid:
            return None
        return op, body

    def _accept(self, buf: bytes, pos: int, end: int, inner: bool, cut: bool) -> tuple[int, bytes, int] | None:
        r = self._plausible(buf, pos, end, inner)
        if r is None:
            return None
        nxt = pos + 9 + len(r[1])
        # the record after it must be plausible too, or the data ends here
        if nxt >= end or (not inner and buf[nxt : nxt + 8] == MCAP_MAGIC and nxt + 8 == end):
            return r[0], r[1], nxt
        new_cid = struct.unpack_from("<H", r[1], 0)[0] if r[0] == OP_CHANNEL else -1
        if (not inner and buf[nxt] in (OP_FOOTER, OP_DATA_END)) or self._plausible(buf, nxt, end, inner, new_cid):
            return r[0], r[1], nxt
        if cut and self._cut_here(buf, nxt, end, inner):
            return r[0], r[1], nxt
        # the next ones may be messages on a channel whose record was lost: well-formed, and the chain
        # of them ends at a plausible record (or the end): structure checked over several records
        nn, hops = nxt, 0
        while hops < 16:
            nn = self._unknown_channel_message(buf, nn, end)
            if nn is None:
                return None
            hops += 1
            if nn >= end or self._plausible(buf, nn, end, inner) is not None:
                return r[0], r[1], nxt
        return None

    def _unknown_channel_message(self, buf: bytes, pos: int, end: int) -> int | None:
        """The end of a well-formed Message record at ``pos`` whose channel is unknown, else None."""
        if pos + 9 + 22 > end or buf[pos] != OP_MESSAGE:
            return None
        n = struct.unpack_from("<Q", buf, pos + 1)[0]
        if n < 22 or pos + 9 + n > end or struct.unpack_from("<H", buf, pos + 9)[0] in self.channels:
            return None
        return pos + 9 + n

    def _cut_here(self, buf: bytes, pos: int, end: int, inner: bool) -> bool:
        """The data may end inside the record at ``pos`` (a killed writer): its start looks right."""
        if pos + 9 > end:
            return True
        op, n = buf[pos], struct.unpack_from("<Q", buf, pos + 1)[0]
        if op not in KNOWN_OPS or pos + 9 + n <= end or (inner and op not in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE)):
            return False
        if op == OP_MESSAGE and pos + 11 <= end:
            return struct.unpack_from("<H", buf, pos + 9)[0] in self.channels
        return True

    def _resync(self, buf: bytes, pos: int, end: int, inner: bool) -> int:
        for m in _CAND.finditer(buf, pos, end):
            q = m.start()
            if self._accept(buf, q, end, inner, cut=False) is not None or (
                self._plausible(buf, q, end, inner)
                and self._cut_here(buf, q + 9 + struct.unpack_from("<Q", buf, q + 1)[0], end, inner)
            ):
                return q
        return end

    # ------------------------------------------------------------------ walking
    def read(self) -> McapScan:
        raw = self.f.read_bytes()
        if len(raw) == 0:
            raise ValueError(f"{self.f}: empty storage file (0 bytes): nothing was recorded in it")
        if raw[:8] != MCAP_MAGIC:
            raise ValueError(f"{self.f}: not an MCAP file (bad magic {raw[:8]!r}, expected {MCAP_MAGIC!r})")
        self._footer_summary(raw)
        self._walk(raw, 8, len(raw), inner=False)
        self._date_gaps()
        return self

    def _footer_summary(self, raw: bytes) -> None:
        """Schemas, channels and statistics from the summary section, when the footer is intact."""
        L = len(raw)
        if L < 8 + 29 + 8 or raw[-8:] != MCAP_MAGIC or raw[L - 8 - 29] != OP_FOOTER:
            return
        if struct.unpack_from("<Q", raw, L - 8 - 28)[0] != 20:
            return
        summary_start = struct.unpack_from("<Q", raw, L - 8 - 20)[0]
        if 8 < summary_start < L - 8 - 29:
            self._summary(raw, summary_start, L - 8 - 29)

    def _walk(self, buf: bytes, pos: int, end: int, inner: bool, base: int = 0, cut: bool = True) -> dict[int, int]:
        """Walk records in buf[pos:end]; returns {offset in buf: index in self.messages} of messages.

        ``cut``: the data may end inside a record (a file, or a chunk cut by the end of the file).
        """
        found: dict[int, int] = {}
        pending_chunk: tuple | None = None
        while pos < end:
            if not inner and pos + 8 == end and buf[pos:end] == MCAP_MAGIC:
                break
            acc = self._accept(buf, pos, end, inner, cut)
            if acc is None and not inner and buf[pos] == OP_CHUNK:
                by_header = self._chunk_by_header(buf, pos, end)
                if by_header is not None:  # only the record length was wrong: the chunk's own sizes hold
                    body, fields, nxt = by_header
                    if pending_chunk:
                        self._chunk_index_check(*pending_chunk)
                    pending_chunk = (self._chunk(body, fields, pos), [])
                    pos = nxt
                    continue
                if self._cut_chunk(buf, pos, end):
                    break
            if acc is None:
                q = self._resync(buf, pos + 1, end, inner)
                if q == end and cut and self._cut_here(buf, pos, end, inner):
                    if not inner:
                        self.truncated = True
                    self._lose(pos, end, inner, base, "truncated: a partial last record")
                    break
                self._lose(pos, q, inner, base, "unreadable bytes (a corrupt record)")
                pos = q
                continue
            op, body, nxt = acc
            if op in (OP_FOOTER, OP_DATA_END) and not inner:
                break
            if pending_chunk and op != OP_MSG_INDEX:
                self._chunk_index_check(*pending_chunk)
                pending_chunk = None
            fields = parse_body(op, body)
            if op == OP_SCHEMA:
                self.schemas.setdefault(fields[0], fields[1:])
            elif op == OP_CHANNEL:
                self.channels.setdefault(fields[0], fields[1:])
            elif op == OP_MESSAGE:
                found[pos] = len(self.messages)
                self.messages.append(fields)
            elif op == OP_CHUNK:
                pending_chunk = (self._chunk(body, fields, pos), [])
            elif op == OP_MSG_INDEX and pending_chunk:
                pending_chunk[1].append(fields)
            elif op == OP_STATISTICS:
                self.stats = fields[1]
            pos = nxt
        if pending_chunk:
            self._chunk_index_check(*pending_chunk)
        return found

    def _chunk(self, body: bytes, fields: tuple, at: int) -> tuple:
        start, end_t, usize, crc, comp, n, p = fields
        inner = self._decompress(comp, body[p : p + n], usize, at)
        if crc and zlib.crc32(inner) != crc:
            self.crc_bad += 1
            self.damage.append(
                dict(
                    kind="chunk CRC mismatch",
                    offset=at,
                    end=at + 9 + len(body),
                    lost={},
                    t=(start, end_t),
                    note="its messages are kept where they decode; some may carry damaged bytes",
                )
            )
        found = self._walk(inner, 0, len(inner), inner=True, base=at, cut=False)
        return inner, found, at, (start, end_t)

    def _decompress(self, comp: str, payload: bytes, usize: int, at: int) -> bytes:
        try:
            if comp == "":
                return payload
            if comp == "zstd":
                import zstandard

                return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
            import lz4.frame

            return lz4.frame.LZ4FrameDecompressor().decompress(payload)
        except Exception as e:  # noqa: BLE001 - a corrupt compressed chunk: nothing of it is readable
            self.damage.append(
                dict(kind="chunk not decompressible", offset=at, end=at, lost=None, t=None, note=f"{comp}: {e}")
            )
            return b""

    def _chunk_index_check(self, chunk: tuple, indexes: list[tuple]) -> None:
        """Messages the chunk's MessageIndex lists but the walk did not find: read there or count lost."""
        inner, found, at, t_range = chunk
        for cid, entries in indexes:
            for log_time, off in entries:
                if off in found:
                    continue
                r = self._accept(inner, off, len(inner), inner=True, cut=False)
                if r is not None and r[0] == OP_MESSAGE:
                    found[off] = len(self.messages)
                    self.messages.append(parse_body(OP_MESSAGE, r[1]))
                else:
                    self.damage.append(
                        dict(
                            kind="message lost in a chunk",
                            offset=at,
                            end=at,
                            lost={cid: 1},
                            t=(log_time, log_time),
                            note=f"at chunk offset {off}",
                        )
                    )

    def _chunk_by_header(self, buf: bytes, pos: int, end: int) -> tuple | None:
        """A chunk whose record length is corrupt but whose header's sizes put a plausible record after it."""
        body = buf[pos + 9 : min(end, pos + 9 + 4096)]
        try:
            start, p = _u(body, 0, "<Q")
            end_t, p = _u(body, p, "<Q")
            usize, p = _u(body, p, "<Q")
            crc, p = _u(body, p, "<I")
            comp, p = _s(body, p)
            n, p = _u(body, p, "<Q")
        except _Bad:
            return None
        nxt = pos + 9 + p + n
        if comp not in ("", "zstd", "lz4") or end_t < start or nxt > end:
            return None
        if nxt < end and self._plausible(buf, nxt, end, inner=False) is None and buf[nxt] not in (OP_DATA_END,):
            return None
        self.damage.append(
            dict(
                kind="chunk record length corrupt",
                offset=pos,
                end=pos + 9,
                lost={},
                t=(start, end_t),
                note="the chunk's own sizes were used; its messages are kept",
            )
        )
        return buf[pos + 9 : nxt], (start, end_t, usize, crc, comp, n, p), nxt

    def _cut_chunk(self, buf: bytes, pos: int, end: int) -> bool:
        """A chunk cut by the end of the file: keep every complete record of what is there."""
        body = buf[pos + 9 : end]
        try:
            start, p = _u(body, 0, "<Q")
            end_t, p = _u(body, p, "<Q")
            usize, p = _u(body, p, "<Q")
            _crc, p = _u(body, p, "<I")
            comp, p = _s(body, p)
            _n, p = _u(body, p, "<Q")
        except _Bad:
            return False
        if comp not in ("", "zstd", "lz4"):
            return False
        self.truncated = True
        inner = self._decompress(comp, body[p:], usize, pos)
        before, places = len(self.messages), len(self.damage)
        self._walk(inner, 0, len(inner), inner=True, base=pos, cut=True)
        # its partial last record is this damage, not another one
        self.damage[places:] = [d for d in self.damage[places:] if not d["kind"].startswith("truncated")]
        self.damage.append(
            dict(
                kind="truncated inside a chunk",
                offset=pos,
                end=end,
                lost=None,
                t=(self.messages[-1][1] if len(self.messages) > before else start, end_t),
                note=f"{len(self.messages) - before} complete message(s) of it kept, "
                f"{max(usize - len(inner), 0)} of its {usize} bytes missing",
            )
        )
        return True

    def _lose(self, a: int, b: int, inner: bool, base: int, what: str) -> None:
        ts = [m[1] for m in self.messages[-1:]]
        self.damage.append(
            dict(
                kind=what,
                offset=base + (0 if inner else a),
                end=base + (0 if inner else b),
                lost=None,
                t=(ts[0] if ts else None, None),
                note=f"{b - a} byte(s){' inside a chunk' if inner else ''}",
                at_message=len(self.messages),  # the messages read before and after it date it
            )
        )

    def _date_gaps(self) -> None:
        """Unknown losses are dated by the log times of the messages read just before and after them."""
        for d in self.damage:
            i = d.pop("at_message", None)
            if i is None:
                continue
            before = self.messages[i - 1][1] if i > 0 else None
            after = self.messages[i][1] if i < len(self.messages) else None
            d["t"] = (before, after)

    def _summary(self, buf: bytes, pos: int, end: int) -> None:
        """Statistics from the summary section (per-channel message counts), if it reads."""
        while pos + 9 <= end:
            op, n = buf[pos], struct.unpack_from("<Q", buf, pos + 1)[0]
            if pos + 9 + n > end:
                return
            if op == OP_STATISTICS:
                try:
                    self.stats = parse_body(op, buf[pos + 9 : pos + 9 + n])[1]
                except _Bad:
                    return
            elif op == OP_CHANNEL:
                try:
                    cid, sid, topic, enc = parse_body(op, buf[pos + 9 : pos + 9 + n])
                    self.channels.setdefault(cid, (sid, topic, enc))
                except _Bad:
                    pass
            elif op == OP_SCHEMA:
                try:
                    f = parse_body(op, buf[pos + 9 : pos + 9 + n])
                    self.schemas.setdefault(f[0], f[1:])
                except _Bad:
                    pass
            elif op == OP_FOOTER:
                return
            pos += 9 + n
