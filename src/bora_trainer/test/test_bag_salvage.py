"""Issue 16, point 4 / 6: damaged bags keep every intact message, and say what was lost.

Bags are written with ``rosbags`` (stock chunked MCAP, the flushing un-chunked MCAP, sqlite3) and
then damaged at chosen bytes. Which messages are intact is decided independently of the reader:
MCAP (uncompressed): a message is intact when its serialized bytes are still in the file, whole and
untouched; sqlite3: when sqlite itself still returns the row by its id (a rowid lookup through the
b-tree, which fails only for rows on unreadable pages). The reader must keep exactly those (no
garbage either), and ``bora bag info`` must report the damage.
"""

from __future__ import annotations

import sqlite3

import pytest

from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_convert import convert, main
from bora_trainer.data.bag_io import read_bag
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag

# 48x48 images: ~32 kB per observation, so the stock writer closes a 1 MiB chunk about every 32 steps
BIG = BagLayout(image_hw=(48, 48))
EPS = [
    ScriptedEpisode(1, 30, "success", [(3, 9, 7)]),
    ScriptedEpisode(2, 25, "failure"),
    ScriptedEpisode(3, 20, "success"),
]


def _kept(bag):
    d = read_bag(bag)
    return d, {(d.connections[c].topic, t, raw) for c, t, raw in d.messages}


def _mcap(bag):
    return next(bag.glob("*.mcap"))


def _intact_mcap(data: bytes, raws, damaged: tuple[int, int]):
    """Messages whose bytes lie wholly outside the damaged byte range [a, b) (and before the file end)."""
    out = set()
    a, b = damaged
    for topic, t, raw in raws:
        p = data.find(raw)
        if p < 0:  # not (wholly) in the file
            continue
        end = p + len(raw)
        if end <= a or p - 31 >= b:  # its record header (31 bytes) too
            out.add((topic, t, raw))
    return out


def _assert_salvaged(bag, raws, intact, capsys):
    d, kept = _kept(bag)
    assert kept <= {(t, ts, r) for t, ts, r in raws}, "a message that was never written"
    assert intact <= kept, f"{len(intact - kept)} intact message(s) lost"
    assert d.damage, "damage not reported"
    assert main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "damage:" in out
    return d, kept


def test_cut_inside_a_chunk_keeps_its_complete_messages(tmp_path, capsys):
    raws = write_scripted_bag(tmp_path / "bag", EPS, BIG, flushing=False)
    f = _mcap(tmp_path / "bag")
    data = f.read_bytes()
    # the cut: in the middle of an ExecutedCommand of episode 3 (in the last chunk)
    target = next(r for i, (t, _, r) in enumerate(raws) if t == S.T_EXECUTED and i > len(raws) * 0.9)
    cut = data.find(target) + len(target) // 2
    (tmp_path / "bag" / "metadata.yaml").unlink()
    f.write_bytes(data[:cut])
    intact = _intact_mcap(data[:cut], raws, (cut, cut))
    assert len(intact) > 100
    d, kept = _assert_salvaged(tmp_path / "bag", raws, intact, capsys)
    assert d.truncated and len(kept) == len(intact)
    assert any(x.kind == "truncated inside a chunk" for x in d.damage)


def test_bad_record_length_inside_a_chunk(tmp_path, capsys):
    raws = write_scripted_bag(tmp_path / "bag", EPS, BIG, flushing=False)
    f = _mcap(tmp_path / "bag")
    data = bytearray(f.read_bytes())
    topic, t, raw = raws[len(raws) // 3]
    p = data.find(raw) - 22 - 9  # the record: opcode, length, channel/seq/times, data
    assert data[p] == 0x05
    data[p + 1 : p + 9] = (len(raw) + 22 + 1000).to_bytes(8, "little")  # a wrong length, still inside the chunk
    f.write_bytes(bytes(data))
    intact = {(a, b, c) for a, b, c in raws} - {(topic, t, raw)}
    d, kept = _assert_salvaged(tmp_path / "bag", raws, intact, capsys)
    assert kept == intact
    # what was lost is known exactly: the chunk's message index names its topic and time
    assert d.lost == {topic: 1}
    assert any(x.lost == {topic: 1} and x.t == (t, t) for x in d.damage)


def test_bad_record_in_the_middle_of_an_unchunked_file(tmp_path, capsys):
    raws = write_scripted_bag(tmp_path / "bag", EPS, BIG)  # the flushing writer: one record per message
    f = _mcap(tmp_path / "bag")
    data = bytearray(f.read_bytes())
    topic, t, raw = raws[len(raws) // 2]
    p = data.find(raw) - 22 - 9
    assert data[p] == 0x05
    data[p + 1 : p + 9] = (37).to_bytes(8, "little")  # too short: the reader lands inside the message
    f.write_bytes(bytes(data))
    intact = {(a, b, c) for a, b, c in raws} - {(topic, t, raw)}
    d, kept = _assert_salvaged(tmp_path / "bag", raws, intact, capsys)
    assert kept == intact and not d.truncated
    assert d.lost == {topic: 1}  # metadata.yaml's count minus what was read
    assert not any("truncated" in x.kind for x in d.damage)


def _sqlite_pages(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT pageno, pagetype FROM dbstat WHERE name='messages' ORDER BY pageno").fetchall()
    ps = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    return rows, ps


def _intact_sqlite(db, n):
    """Rows sqlite still returns by id (b-tree lookups fail only for rows on unreadable pages)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    ok = set()
    for i in range(1, n + 1):
        try:
            r = con.execute("SELECT topic_id, timestamp, data FROM messages WHERE id=?", (i,)).fetchone()
        except sqlite3.DatabaseError:
            continue
        if r is not None:
            ok.add((int(r[1]), bytes(r[2])))
    con.close()
    return ok


@pytest.mark.parametrize("which", ["leaf", "overflow"])
def test_zeroed_sqlite_page(tmp_path, capsys, which):
    raws = write_scripted_bag(tmp_path / "bag", EPS, BIG, storage="sqlite3")
    db = next((tmp_path / "bag").glob("*.db3"))
    pages, ps = _sqlite_pages(db)
    cand = [p for p, kind in pages if kind == which]
    page = cand[len(cand) // 2]
    data = bytearray(db.read_bytes())
    data[(page - 1) * ps : page * ps] = bytes(ps)
    db.write_bytes(bytes(data))
    intact = _intact_sqlite(db, len(raws))
    assert 0 < len(raws) - len(intact) < len(raws) // 3
    d, kept = _assert_salvaged(tmp_path / "bag", raws, set(), capsys)
    assert {(t, r) for _, t, r in kept} == intact
    assert sum(d.lost.values()) == len(raws) - len(intact)
    # the converter goes on with what is left
    rep = convert(
        [tmp_path / "bag"],
        tmp_path / "out",
    )
    assert rep.episodes and any("damaged" in w for w in rep.warnings)


def test_cut_sqlite_file(tmp_path, capsys):
    raws = write_scripted_bag(tmp_path / "bag", EPS, BIG, storage="sqlite3")
    db = next((tmp_path / "bag").glob("*.db3"))
    data = db.read_bytes()
    _, ps = _sqlite_pages(db)
    cut = (len(data) // ps - 3) * ps + ps // 2  # 3.5 pages short
    # oracle: sqlite on a copy whose missing tail reads as zeros (it refuses a file shorter than its header)
    padded = tmp_path / "padded.db3"
    padded.write_bytes(data[:cut] + bytes(len(data) - cut))
    intact = _intact_sqlite(padded, len(raws))
    db.write_bytes(data[:cut])
    assert len(raws) // 2 < len(intact) < len(raws)
    d, kept = _assert_salvaged(tmp_path / "bag", raws, set(), capsys)
    assert {(t, r) for _, t, r in kept} == intact
    assert d.truncated and sum(d.lost.values()) == len(raws) - len(kept)
    assert any(x.kind == "truncated file" for x in d.damage)


def test_a_lost_channel_record_is_damage_not_a_missing_topic(tmp_path, capsys):
    # the flushing writer puts each channel record before the first message; destroy /bora/episode's
    eps = [ScriptedEpisode(1, 8, "success"), ScriptedEpisode(2, 6, "failure")]
    raws = write_scripted_bag(tmp_path / "bag", eps, BagLayout())
    f = _mcap(tmp_path / "bag")
    data = bytearray(f.read_bytes())
    p = data.find(b"\x0d\x00\x00\x00/bora/episode") - 13  # opcode, length, channel id, schema id
    assert data[p] == 0x04
    data[p + 1 : p + 9] = (2**33).to_bytes(8, "little")
    f.write_bytes(bytes(data))
    # the summary at the end of the file repeats the channel: every message is still read
    d, kept = _kept(tmp_path / "bag")
    assert kept == set(raws) and d.damage and d.lost == {}
    # without the summary (cut just before it) the events cannot be decoded: lost, counted against
    # metadata.yaml, and the topic is still "recorded" (metadata.yaml lists it), not missing
    end = bytes(data).rfind(b"\x0f\x04\x00\x00\x00\x00\x00\x00\x00")  # the DataEnd record
    f.write_bytes(bytes(data[:end]))
    d, kept = _kept(tmp_path / "bag")
    n_events = sum(t == S.T_EPISODE for t, _, _ in raws)
    assert d.lost == {S.T_EPISODE: n_events}
    assert kept == {r for r in raws if r[0] != S.T_EPISODE}
    rep = convert([tmp_path / "bag"], tmp_path / "out")
    assert [e.outcome for e in rep.episodes] == [None, None] and all(e.num_steps > 0 for e in rep.episodes)
    assert any(f"{S.T_EPISODE}: {n_events}" in w for w in rep.warnings)


@pytest.mark.parametrize("storage", ["chunked", "flat", "sqlite3"])
def test_random_damage_never_crashes_the_reader(tmp_path, storage):
    # zeroed ranges, cuts, random record lengths, bit flips (fixed seed): every outcome is messages read
    # (and damage reported) or one BagReadError line, never another exception
    import random

    from bora_trainer.data.bag_io import BagReadError

    kw = {"chunked": dict(flushing=False), "flat": {}, "sqlite3": dict(storage="sqlite3")}[storage]
    eps = [ScriptedEpisode(1, 12, "success", [(3, 9, 7)]), ScriptedEpisode(2, 8, "failure")]
    raws = write_scripted_bag(tmp_path / "bag", eps, BagLayout(image_hw=(16, 16)), **kw)
    f = next(p for p in (tmp_path / "bag").iterdir() if p.suffix in (".mcap", ".db3"))
    data = f.read_bytes()
    rng = random.Random(7)
    for _ in range(25):
        d = bytearray(data)
        op = rng.choice(["flip", "zero", "cut", "len"])
        if op == "flip":
            for _ in range(rng.randint(1, 5)):
                i = rng.randrange(len(d))
                d[i] ^= 1 << rng.randrange(8)
        elif op == "zero":
            a = rng.randrange(len(d))
            b = min(len(d), a + rng.randint(1, 5000))
            d[a:b] = bytes(b - a)
        elif op == "cut":
            d = d[: rng.randrange(8, len(d))]
        else:
            i = rng.randrange(len(d) - 9)
            d[i + 1 : i + 9] = rng.randrange(2**40).to_bytes(8, "little")
        f.write_bytes(bytes(d))
        try:
            got = read_bag(tmp_path / "bag")
        except BagReadError as e:
            assert "\n" not in str(e)
            continue
        assert len(got.messages) <= len(raws) + 5
    f.write_bytes(data)


def test_a_chunk_crc_mismatch_is_reported_and_its_messages_kept(tmp_path, capsys):
    # the mcap library writes chunk CRCs (rosbags does not): one flipped bit inside a message's data
    from mcap.writer import CompressionType, Writer

    from bora_trainer.data.synthetic_bag import scripted_messages

    ts = S.build_typestore()
    msgs = scripted_messages([ScriptedEpisode(1, 10, "success")], BagLayout())
    raws = [(t, n, bytes(ts.serialize_cdr(m, S.TOPIC_TYPES[t]))) for t, n, m in msgs]
    (tmp_path / "bag").mkdir()
    with open(tmp_path / "bag" / "bag.mcap", "wb") as f:
        w = Writer(f, compression=CompressionType.NONE, chunk_size=4096)
        w.start(profile="ros2", library="test")
        ch = {}
        for topic, mt in S.TOPIC_TYPES.items():
            sid = w.register_schema(mt, "ros2msg", ts.generate_msgdef(mt, ros_version=2)[0].encode())
            ch[topic] = w.register_channel(topic, "cdr", sid)
        for i, (topic, t, raw) in enumerate(raws):
            w.add_message(ch[topic], log_time=t, data=raw, publish_time=t, sequence=i)
        w.finish()
    f = tmp_path / "bag" / "bag.mcap"
    data = bytearray(f.read_bytes())
    topic, t, raw = raws[len(raws) // 2]
    data[data.find(raw) + len(raw) // 2] ^= 0x10
    f.write_bytes(bytes(data))
    d, kept = _kept(tmp_path / "bag")
    # every record still reads: the intact ones as written, the damaged one with its flipped bit
    assert kept >= set(raws) - {(topic, t, raw)} and len(kept) == len(raws)
    assert [(x[0], x[1]) for x in kept - set(raws)] == [(topic, t)]
    assert main(["info", str(tmp_path / "bag")]) == 0 and "DAMAGED" in capsys.readouterr().out
    assert [x.kind for x in d.damage] == ["chunk CRC mismatch"] and d.damage[0].t[0] <= t <= d.damage[0].t[1]
    assert any("1 chunk(s) failed their CRC" in w for w in d.warnings)
