"""Data fault bench (issue 16): damaged and awkward recordings through ``bora bag``, measured.

Every case is generated here: the messages are the scripted episodes of
``bora_trainer.data.synthetic_bag`` (closed-form values), written with this script's own writers
(rosbags' stock ``Writer``: chunked MCAP with message indexes and sqlite3; the ``mcap`` library for
an un-chunked MCAP), then damaged at chosen bytes or pages. For each case the bench runs
``bora bag convert`` (and ``bora bag info``) as a separate process and records

* the exit code, whether a Python traceback was printed, the number of stderr lines of an error;
* for damage cases: the intact messages (decided independently of the reader: MCAP = the message's
  serialized bytes are still wholly in the file and outside the damaged range; sqlite3 = sqlite
  itself still returns the row by its id), how many of them the reader kept, how many messages it
  reported lost, and whether it kept anything that was never written;
* stray files: for an error, every path of the output's parent directory that differs from before
  the run; for a success, staging directories left behind;
* what ``bora bag info`` says (DAMAGED / TRUNCATED).

Writes ``bench/results/data_faults.json`` and ``data_faults.md``.

    .venv/bin/python bench/bench_data_faults.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_io import read_bag
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, scripted_messages

RESULTS = Path(__file__).resolve().parent / "results"
LAY = BagLayout(image_hw=(48, 48))  # ~32 kB observations: several 1 MiB chunks
EPISODES = [
    ScriptedEpisode(1, 30, "success", [(3, 9, 7)]),
    ScriptedEpisode(2, 25, "failure"),
    ScriptedEpisode(3, 20, "success"),
    ScriptedEpisode(4, 24, "timeout", [(10, None, None)]),
]
SESSION_B = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"


# ------------------------------------------------------------------------------------ writers
def _raws(episodes, lay=LAY, t0=1_700_000_000 * 10**9):
    ts = S.build_typestore()
    return [(t, n, bytes(ts.serialize_cdr(m, S.TOPIC_TYPES[t]))) for t, n, m in scripted_messages(episodes, lay, t0)]


def write_rosbags(path: Path, raws, storage: str, types: dict | None = None) -> None:
    """rosbags' stock Writer (chunked MCAP, or sqlite3), every BORA topic recorded."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = S.build_typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {t: w.add_connection(t, (types or {}).get(t, mt), typestore=ts) for t, mt in S.TOPIC_TYPES.items()}
        for topic, t, raw in raws:
            w.write(conns[topic], t, raw)


def write_unchunked_mcap(path: Path, raws) -> None:
    """The ``mcap`` library's writer without chunks (one record per message), no metadata.yaml."""
    from mcap.writer import Writer

    ts = S.build_typestore()
    path.mkdir(parents=True)
    with open(path / f"{path.name}.mcap", "wb") as f:
        w = Writer(f, use_chunking=False)
        w.start(profile="ros2", library="bench_data_faults")
        ch = {}
        for topic, mt in S.TOPIC_TYPES.items():
            text = ts.generate_msgdef(mt, ros_version=2)[0]
            sid = w.register_schema(mt, "ros2msg", text.encode())
            ch[topic] = w.register_channel(topic, "cdr", sid)
        for i, (topic, t, raw) in enumerate(raws):
            w.add_message(ch[topic], log_time=t, data=raw, publish_time=t, sequence=i)
        w.finish()


# ------------------------------------------------------------------------------------ oracles
def intact_mcap(data: bytes, raws, damaged: tuple[int, int]) -> set:
    a, b = damaged
    out = set()
    for topic, t, raw in raws:
        p = data.find(raw)
        if p >= 0 and (p + len(raw) <= a or p - 31 >= b):
            out.add((topic, t, raw))
    return out


def intact_sqlite(db: Path, raws) -> set:
    by = {(t, raw): topic for topic, t, raw in raws}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    ok = set()
    for i in range(1, len(raws) + 1):
        try:
            r = con.execute("SELECT timestamp, data FROM messages WHERE id=?", (i,)).fetchone()
        except sqlite3.DatabaseError:
            continue
        if r is not None and (int(r[0]), bytes(r[1])) in by:
            ok.add((by[(int(r[0]), bytes(r[1]))], int(r[0]), bytes(r[1])))
    con.close()
    return ok


# ------------------------------------------------------------------------------------ cases
def case_mcap_cut_in_chunk(d: Path):
    raws = _raws(EPISODES)
    write_rosbags(d / "bag", raws, "mcap")
    f = next((d / "bag").glob("*.mcap"))
    data = f.read_bytes()
    target = next(r for i, (t, _, r) in enumerate(raws) if t == S.T_EXECUTED and i > 0.8 * len(raws))
    cut = data.find(target) + len(target) // 2
    f.write_bytes(data[:cut])
    (d / "bag" / "metadata.yaml").unlink()  # a killed recorder writes none
    return d / "bag", raws, intact_mcap(data[:cut], raws, (cut, cut)), f"cut at byte {cut} of {len(data)}"


def case_mcap_bad_length_in_chunk(d: Path):
    raws = _raws(EPISODES)
    write_rosbags(d / "bag", raws, "mcap")
    f = next((d / "bag").glob("*.mcap"))
    data = bytearray(f.read_bytes())
    topic, t, raw = raws[len(raws) // 3]
    p = data.find(raw) - 31
    data[p + 1 : p + 9] = (len(raw) + 22 + 1000).to_bytes(8, "little")
    f.write_bytes(bytes(data))
    return d / "bag", raws, intact_mcap(bytes(data), raws, (p, p + 31 + len(raw))), f"length of a {topic} record +1000"


def case_mcap_unchunked_bad_record(d: Path):
    raws = _raws(EPISODES)
    write_unchunked_mcap(d / "bag", raws)
    f = next((d / "bag").glob("*.mcap"))
    data = bytearray(f.read_bytes())
    topic, t, raw = raws[len(raws) // 2]
    p = data.find(raw) - 31
    data[p + 1 : p + 9] = (37).to_bytes(8, "little")
    f.write_bytes(bytes(data))
    return d / "bag", raws, intact_mcap(bytes(data), raws, (p, p + 31 + len(raw))), f"length of a {topic} record -> 37"


def _pages(db: Path, kind: str):
    con = sqlite3.connect(db)
    rows = [p for p, k in con.execute("SELECT pageno, pagetype FROM dbstat WHERE name='messages'") if k == kind]
    ps = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    return sorted(rows), ps


def case_sqlite_zeroed_page(d: Path):
    raws = _raws(EPISODES)
    write_rosbags(d / "bag", raws, "sqlite3")
    db = next((d / "bag").glob("*.db3"))
    leaves, ps = _pages(db, "leaf")
    page = leaves[len(leaves) // 2]
    data = bytearray(db.read_bytes())
    data[(page - 1) * ps : page * ps] = bytes(ps)
    db.write_bytes(bytes(data))
    return d / "bag", raws, intact_sqlite(db, raws), f"page {page} of {len(data) // ps} zeroed (a messages leaf)"


def case_sqlite_cut(d: Path):
    raws = _raws(EPISODES)
    write_rosbags(d / "bag", raws, "sqlite3")
    db = next((d / "bag").glob("*.db3"))
    data = db.read_bytes()
    _, ps = _pages(db, "leaf")
    cut = (len(data) // ps - 3) * ps + ps // 2
    # oracle: sqlite on a copy whose missing tail reads as zeros (sqlite refuses a file shorter than its header)
    padded = d / "padded.db3"
    padded.write_bytes(data[:cut] + bytes(len(data) - cut))
    intact = intact_sqlite(padded, raws)
    db.write_bytes(data[:cut])
    return d / "bag", raws, intact, f"cut at byte {cut} of {len(data)}"


def case_mcap_bad_chunk_length(d: Path):
    raws = _raws(EPISODES)
    write_rosbags(d / "bag", raws, "mcap")
    f = next((d / "bag").glob("*.mcap"))
    data = bytearray(f.read_bytes())
    p = data.find(b"\x06", 8)
    while struct.unpack_from("<Q", data, p + 1)[0] < 1000:  # the first chunk record
        p = data.find(b"\x06", p + 1)
    data[p + 1 : p + 9] = (2**40).to_bytes(8, "little")  # the chunk's record length: beyond the file
    f.write_bytes(bytes(data))
    return d / "bag", raws, intact_mcap(bytes(data), raws, (p, p + 9)), "first chunk's record length -> 2^40"


def case_sqlite_zeroed_interior(d: Path):
    raws = _raws(EPISODES)
    write_rosbags(d / "bag", raws, "sqlite3")
    db = next((d / "bag").glob("*.db3"))
    interior, ps = _pages(db, "internal")
    page = interior[0]
    data = bytearray(db.read_bytes())
    data[(page - 1) * ps : page * ps] = bytes(ps)
    db.write_bytes(bytes(data))
    # oracle: no message row lives on an interior page; every row is intact (sqlite itself can reach none)
    return d / "bag", raws, {(a, b, c) for a, b, c in raws}, f"interior page {page} of the messages table zeroed"


DAMAGE = {
    "MCAP: cut inside a chunk": case_mcap_cut_in_chunk,
    "MCAP: bad record length inside a chunk": case_mcap_bad_length_in_chunk,
    "MCAP: bad record mid un-chunked file": case_mcap_unchunked_bad_record,
    "sqlite3: one zeroed page": case_sqlite_zeroed_page,
    "sqlite3: cut file": case_sqlite_cut,
    "MCAP: a chunk's record length beyond the file": case_mcap_bad_chunk_length,
    "sqlite3: zeroed interior page of the messages table": case_sqlite_zeroed_interior,
}


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def bora(*args: str) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "bora_trainer.cli", "bag", *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def _error_lines(err: str) -> int:
    return len([x for x in err.splitlines() if "error" in x.lower() or "Traceback" in x])


def run_damage(name, fn, root: Path) -> dict:
    d = root / name.replace(":", "").replace(" ", "_")
    d.mkdir()
    bag, raws, intact, how = fn(d)
    data = read_bag(bag)
    kept = {(data.connections[c].topic, t, raw) for c, t, raw in data.messages}
    written = {(t, n, r) for t, n, r in raws}
    rc_info, out_info, err_info = bora("info", str(bag))
    rc, out, err = bora("convert", str(bag), "--out", str(d / "out"))
    stray = [p.name for p in (d / "out").glob(".staging-*")] + [p.name for p in d.glob(".out.staging-*")]
    return {
        "case": name,
        "damage": how,
        "messages_written": len(raws),
        "intact": len(intact),
        "intact_kept": len(intact & kept),
        "kept_pct": round(100.0 * len(intact & kept) / max(len(intact), 1), 2),
        "kept_never_written": len(kept - written),
        "reported_lost": sum(data.lost.values()),
        "actually_lost": len(written - kept),
        "damage_places": len(data.damage),
        "info_flags": [f for f in ("DAMAGED", "TRUNCATED") if f in out_info],
        "info_exit": rc_info,
        "exit": rc,
        "episodes": len([x for x in out.splitlines() if x.startswith("episode ")]),
        "traceback": "Traceback" in err or "Traceback" in err_info,
        "stray_files": stray,
        "first_warning": next((x for x in err.splitlines() if "damaged" in x), ""),
    }


def run_errors(root: Path) -> list[dict]:
    raws = _raws(EPISODES[:2])
    good = root / "good"
    write_rosbags(good, raws, "mcap")
    rows = []

    def one(name, kind, args, setup=None, expect=3):
        d = root / f"err_{len(rows)}"
        d.mkdir()
        out = d / "out"
        bag = str(good)
        if setup:
            res = setup(d, out)
            bag = res or bag
        before = _tree(d)
        rc, _, err = bora("convert", bag, "--out", str(out), *args)
        after = _tree(d)
        changed = sorted(set(after) ^ set(before)) + sorted(k for k in before if k in after and before[k] != after[k])
        rows.append(
            {
                "case": name,
                "kind": kind,
                "exit": rc,
                "expected_exit": expect,
                "stderr_lines": len([x for x in err.splitlines() if x.strip()]),
                "traceback": "Traceback" in err,
                "stray_files": changed,
                "message": err.strip().splitlines()[-1] if err.strip() else "",
            }
        )

    def out_is_file(d, out):
        out.write_text("x")

    def bad_meta(d, out):
        out.mkdir()
        (out / "meta.json").write_text("{not json")

    def other_cams(d, out):
        assert bora("convert", str(good), "--out", str(out))[0] == 0
        ep_b = [ScriptedEpisode(1, 8, "success", session_id=SESSION_B)]
        write_rosbags(d / "wrist", _raws(ep_b, BagLayout(cameras=("wrist",))), "mcap")
        return str(d / "wrist")

    def under_file(d, out):
        (d / "plain").write_text("x")
        return None

    def empty(d, out):
        (d / "empty").mkdir()
        (d / "empty" / "empty.mcap").write_bytes(b"")
        return str(d / "empty")

    def wrong_type(d, out):
        write_rosbags(d / "wt", [], "mcap", types={S.T_INTERVENTION: "std_msgs/msg/String"})
        return str(d / "wt")

    one("output path is a file", "output", [], out_is_file)
    one("unreadable meta.json", "output", [], bad_meta)
    one("meta.json names other cameras", "output", [], other_cams)
    rows_before = len(rows)
    d = root / f"err_{rows_before}"
    d.mkdir()
    under_file(d, None)
    before = _tree(d)
    rc, _, err = bora("convert", str(good), "--out", str(d / "plain" / "out"))
    after = _tree(d)
    rows.append(
        {
            "case": "output not writable (its parent is a file)",
            "kind": "output",
            "exit": rc,
            "expected_exit": 3,
            "stderr_lines": len([x for x in err.splitlines() if x.strip()]),
            "traceback": "Traceback" in err,
            "stray_files": sorted(set(after) ^ set(before)),
            "message": err.strip().splitlines()[-1] if err.strip() else "",
        }
    )
    one("0-byte .mcap", "input", [], empty, expect=2)
    one("required topic with the wrong type, 0 messages", "input", [], wrong_type, expect=2)
    return rows


def run_identity(root: Path) -> list[dict]:
    """Two sessions whose episode ids restart at 1; a gap inside a takeover; re-conversion."""
    rows = []
    for legacy in (False, True):
        d = root / f"sessions_{'legacy' if legacy else 'new'}"
        d.mkdir()
        a = [ScriptedEpisode(1, 10, "success", [(3, 6, 5)]), ScriptedEpisode(2, 8, "failure")]
        b = [ScriptedEpisode(1, 12, "success", [(2, 5, None)], session_id=SESSION_B)]
        from bora_trainer.data.synthetic_bag import write_scripted_bag

        write_scripted_bag(d / "a", a, LAY, legacy=legacy, flushing=False)
        write_scripted_bag(d / "b", b, LAY, legacy=legacy, t0_ns=1_800_000_000 * 10**9, flushing=False)
        rc, out, err = bora("convert", str(d / "a"), str(d / "b"), "--out", str(d / "out"))
        infos = [json.loads(p.read_text()) for p in sorted((d / "out" / "transitions").glob("episode_*.json"))]

        def takeovers(i, d=d):
            ep = d / "out" / "episodes" / f"episode_{i['episode_id']:06d}.json"
            return len(json.loads(ep.read_text())["interventions"])

        rows.append(
            {
                "case": f"two sessions, ids restart at 1 ({'old bags: no session_id' if legacy else 'session_id'})",
                "exit": rc,
                "episodes": len(infos),
                "expected": 3,
                "takeovers": sorted((i["source_episode_id"], i["num_steps"], takeovers(i)) for i in infos),
            }
        )
    return rows


# ------------------------------------------------------------------------------------ report
def render(res: dict) -> str:
    m = res["machine"]
    L = [
        "# Data faults: damaged and awkward recordings through `bora bag` (issue 16)",
        "",
        f"Commit {m.get('commit', 'n/a')}. "
        f"Machine: {m.get('cpu', '')} ({m.get('logical_cpus')} logical CPUs), {m.get('platform', '')}, "
        f"Python {m.get('python')}; {res['seconds']:.0f} s. Command: `.venv/bin/python bench/bench_data_faults.py`.",
        "",
        "Scripted episodes (4 episodes, 99 steps, 48x48 images, 2 cameras) written with rosbags' stock "
        "Writer (chunked MCAP, sqlite3) or the `mcap` library (un-chunked), then damaged. Intact = decided "
        "without the reader (MCAP: the message's bytes wholly in the file, outside the damage; sqlite3: "
        "sqlite returns the row by id).",
        "",
        "## Damaged recordings",
        "",
        "| case | damage | written | intact | intact kept | kept % | garbage kept | lost (actual / reported) "
        "| `info` | convert exit | episodes | traceback | stray files |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |",
    ]
    for r in res["damage"]:
        L.append(
            f"| {r['case']} | {r['damage']} | {r['messages_written']} | {r['intact']} | {r['intact_kept']} | "
            f"{r['kept_pct']} | {r['kept_never_written']} | {r['actually_lost']} / {r['reported_lost']} | "
            f"{', '.join(r['info_flags']) or '-'} | {r['exit']} | {r['episodes']} | "
            f"{'yes' if r['traceback'] else 'no'} | {len(r['stray_files'])} |"
        )
    L += [
        "",
        "lost: actual = written minus kept (for a cut file this includes what never reached the disk); "
        "reported = counted per topic against metadata.yaml or the MCAP statistics, or from the chunks' "
        "message indexes; 0 with a killed recorder (neither survived: the warning then gives the time range "
        "of the unreadable part instead).",
        "",
        "Warnings printed by `convert` (first damage line per case):",
        "",
    ]
    for r in res["damage"]:
        L.append(f"- {r['case']}: `{r['first_warning']}`")
    L += [
        "",
        "## Errors (exit 2 = input, 3 = output; the output's parent compared byte for byte before/after)",
        "",
        "| case | kind | exit (expected) | stderr lines | traceback | stray files | message |",
        "| --- | --- | ---: | ---: | --- | ---: | --- |",
    ]
    for r in res["errors"]:
        msg = r["message"].replace("|", "/")
        L.append(
            f"| {r['case']} | {r['kind']} | {r['exit']} ({r['expected_exit']}) | {r['stderr_lines']} | "
            f"{'yes' if r['traceback'] else 'no'} | {len(r['stray_files'])} | `{msg}` |"
        )
    L += ["", "## Episode identity", "", "| case | exit | episodes (expected) | (source id, steps, takeovers) |",
          "| --- | ---: | ---: | --- |"]
    for r in res["identity"]:
        L.append(f"| {r['case']} | {r['exit']} | {r['episodes']} ({r['expected']}) | {r['takeovers']} |")
    s = res["summary"]
    L += [
        "",
        f"**Summary:** intact messages kept {s['intact_kept']}/{s['intact']} ({s['kept_pct']}%) over the "
        f"{len(res['damage'])} damage cases; stray files after errors: {s['stray']}; tracebacks: {s['tracebacks']}; "
        f"exit codes as expected: {s['exits_ok']}/{len(res['errors'])}.",
        "",
    ]
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", help="keep the generated bags and outputs in this directory")
    args = ap.parse_args(argv)
    t0 = time.time()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bora_data_faults_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        damage = [run_damage(n, fn, root) for n, fn in DAMAGE.items()]
        errors = run_errors(root)
        identity = run_identity(root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    intact = sum(r["intact"] for r in damage)
    kept = sum(r["intact_kept"] for r in damage)
    res = {
        "machine": machine(),
        "seconds": time.time() - t0,
        "damage": damage,
        "errors": errors,
        "identity": identity,
        "summary": {
            "intact": intact,
            "intact_kept": kept,
            "kept_pct": round(100.0 * kept / max(intact, 1), 2),
            "stray": sum(len(r["stray_files"]) for r in errors + damage),
            "tracebacks": sum(r["traceback"] for r in errors + damage),
            "exits_ok": sum(r["exit"] == r["expected_exit"] for r in errors),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_faults.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / "data_faults.md").write_text(render(res))
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
