"""Fuzz of the UDP glove receiver: >= 10,000 random and mutated datagrams (structured JSON, binary,
signed envelopes, raw bytes) into ``handle()``, and a share of them over a real socket into the
running receiver thread. Every one is dropped or accepted without raising, the boundary checks catch
all of them (``internal_error`` stays 0), nothing invalid is accepted, and a valid packet right after
still works. Seeded, so a failure reproduces."""

from __future__ import annotations

import json
import math
import random
import socket
import struct
import time

import numpy as np

from bora_teleop.glove import MAX_PACKET, UdpGloveReceiver, encode_json_packet, encode_packet
from bora_teleop.glove_auth import sign

NAMES = ["thumb", "index", "middle"]
KEY = bytes(range(32))
N_PER_KIND = 2600  # x 4 kinds = 10,400 datagrams into handle()

HOSTILE_VALUES = [
    0,
    1,
    -1,
    2**31,
    2**32,
    2**32 - 1,
    2**64,
    10**400,
    -(10**400),
    1.5,
    -0.0,
    1e308,
    1e400,
    -1e400,
    float("nan"),
    True,
    False,
    None,
    "",
    "x" * 100,
    "1",
    [],
    [0],
    [0, 0, 0],
    [[0]] * 3,
    {},
    {"a": 1},
    [0.1, 0.2, 0.3],
    ["thumb", "index", "middle"],
    ["thumb", "thumb", "index"],
    [1e400, 0, 0],
    [float("nan")] * 3,
    list(range(300)),
    ["a"] * 3,
    [None, None, None],
]
KEYS = ["seq", "stamp", "angles", "names", "extra", ""]


def _json_text(v) -> str:
    # Python's json writes 10**400 as 400 digits, 1e400 as Infinity and NaN as NaN: all hostile texts
    return json.dumps(v, allow_nan=True)


def structured_json(rng: random.Random) -> bytes:
    d = {}
    for k in KEYS:
        if rng.random() < 0.8:
            d[k] = rng.choice(HOSTILE_VALUES)
    text = _json_text(d)
    if rng.random() < 0.3:  # mutate the text: replace, insert or delete a few characters
        chars = list(text)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(chars) + 1)
            op = rng.random()
            c = rng.choice('{}[]",:0123456789eE.-+ naNIfinity\\u\x00\xff')
            if op < 0.4 and i < len(chars):
                chars[i] = c
            elif op < 0.7:
                chars.insert(i, c)
            elif i < len(chars):
                del chars[i]
        text = "".join(chars)
    return text.encode("utf-8", "surrogatepass")


def mutated_binary(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 2, 3, 3, 3, 4, 255])
    angles = [rng.choice([0.0, 1.0, -1.0, 1e30, float("nan"), float("inf")]) for _ in range(n)]
    pkt = bytearray(encode_packet(angles, rng.randrange(2**32), rng.choice([0.0, 1e300, float("nan")])))
    for _ in range(rng.randint(0, 6)):
        op = rng.random()
        if op < 0.6 and pkt:
            pkt[rng.randrange(len(pkt))] = rng.randrange(256)
        elif op < 0.8:
            del pkt[rng.randrange(len(pkt) + 1) :]
        else:
            pkt += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(pkt)


def mutated_signed(rng: random.Random, counter: int) -> tuple[bytes, bool]:
    """A signed packet, mutated or not -> (datagram, whether it is the untouched original)."""
    payload = encode_packet([0.1, 0.2, 0.3], counter & 0xFFFFFFFF, 0.0)
    pkt = bytearray(sign(payload, KEY, counter))
    original = bytes(pkt)
    for _ in range(rng.randint(0, 3)):
        pkt[rng.randrange(len(pkt))] ^= 1 << rng.randrange(8)
    return bytes(pkt), bytes(pkt) == original


def random_bytes(rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 4, 19, 20, 21, 32, 100, 1040, 4000, MAX_PACKET, MAX_PACKET + 1, 60000])
    head = rng.choice([b"", b"{", b"BGLV", b"BGLV\x01", b"BGLS", b"\xef\xbb\xbf{"])
    return head + rng.randbytes(max(0, size - len(head)))


def _num(v, bound: float) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, int):
        return abs(v) < bound
    return math.isfinite(v) and abs(v) < bound


def reference_accepts(d: bytes) -> bool:
    """Independent oracle of the documented format (module docstring of bora_teleop.glove): would a
    correct receiver for NAMES accept this datagram (seq order aside)?"""
    if len(d) > MAX_PACKET:
        return False
    if d[:1] == b"{":
        try:
            o = json.loads(d.decode("utf-8"))
        except (ValueError, RecursionError):
            return False
        if not isinstance(o, dict) or not all(k in o for k in ("seq", "stamp", "angles")):
            return False
        seq, stamp, angles = o["seq"], o["stamp"], o["angles"]
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**32:
            return False
        if not _num(stamp, 1e15) or not isinstance(angles, list) or len(angles) != 3:
            return False
        if not all(_num(a, 1e6) for a in angles):
            return False  # NaN / inf / huge / non-numbers
        if "names" in o:
            names = o["names"]
            if not isinstance(names, list) or sorted(map(str, names)) != sorted(NAMES):
                return False
            if not all(isinstance(n, str) for n in names):
                return False
        return True
    if len(d) != 32 or d[:4] != b"BGLV" or d[4] != 1 or d[5] != 3:
        return False
    stamp = struct.unpack_from("<d", d, 12)[0]
    angles = struct.unpack_from("<3f", d, 20)
    return math.isfinite(stamp) and all(math.isfinite(a) for a in angles)


def test_ten_thousand_fuzzed_datagrams_are_all_survived():
    rng = random.Random(20)
    t = [0.0]
    faults = [0]

    def on_fault(kind, text):
        faults[0] += 1

    plain = UdpGloveReceiver(3, NAMES, timeout_s=0.2, clock=lambda: t[0], on_fault=on_fault)
    signed = UdpGloveReceiver(3, NAMES, timeout_s=0.2, clock=lambda: t[0], key=KEY, on_fault=on_fault)
    t0 = time.perf_counter()
    total, accepted_invalid, accepted_valid = 0, 0, 0
    counter = 1000
    try:
        for kind in ("json", "binary", "bytes", "signed"):
            for i in range(N_PER_KIND):
                t[0] += 1.0  # > timeout_s apart: the seq order does not decide, only the content
                if kind == "signed":
                    counter += 1
                    data, untouched = mutated_signed(rng, counter)
                    ok = signed.handle(data, "127.0.0.1")
                    accepted_invalid += int(ok and not untouched)
                    accepted_valid += int(ok and untouched)
                    assert ok == untouched  # only the untouched signed packets are accepted
                else:
                    data = {"json": structured_json, "binary": mutated_binary, "bytes": random_bytes}[kind](rng)
                    ok = plain.handle(data, "127.0.0.1")
                    expected = reference_accepts(data)
                    accepted_invalid += int(ok and not expected)
                    assert ok is expected, (kind, data[:200], plain.last_error)
                    if ok:
                        s = plain.latest()
                        assert s.angles.shape == (3,) and np.all(np.isfinite(s.angles))
                        accepted_valid += 1
                total += 1
                if i % 500 == 0:  # a valid packet right after still works
                    t[0] += 1.0
                    assert plain.handle(encode_json_packet([0.3, 0.2, 0.1], 7, 1.0, NAMES), "127.0.0.1")
                    counter += 1
                    assert signed.handle(sign(encode_packet([0.3, 0.2, 0.1], 9, 1.0), KEY, counter), "127.0.0.1")
        elapsed = time.perf_counter() - t0
        assert total >= 10_000
        assert plain.stats["internal_error"] == 0 and signed.stats["internal_error"] == 0
        assert accepted_invalid == 0
        rejected = sum(plain.stats[k] + signed.stats[k] for k in plain.stats if k not in ("received", "accepted"))
        assert faults[0] == rejected  # every dropped datagram was reported
        print(
            f"\nfuzz: {total} datagrams in {elapsed:.2f} s ({total / elapsed:.0f}/s), "
            f"{accepted_valid} valid accepted, {rejected} rejected, 0 invalid accepted, 0 internal errors"
        )
    finally:
        plain.close()
        signed.close()


def test_fuzzed_datagrams_over_a_socket_leave_the_receiver_thread_running():
    rng = random.Random(7)
    rx = UdpGloveReceiver(3, NAMES, timeout_s=0.2, on_fault=lambda k, s: None).start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst = ("127.0.0.1", rx.port)
    n = 2000
    try:
        for i in range(n):
            data = (structured_json, mutated_binary, random_bytes)[i % 3](rng)
            tx.sendto(data[:60000], dst)
            if i % 200 == 0:
                time.sleep(0.01)  # let the thread drain (a full socket buffer would drop datagrams)
        time.sleep(0.5)
        assert rx.alive and rx.stats["internal_error"] == 0
        assert rx.stats["received"] >= n // 5  # a full socket buffer drops datagrams under load; many arrive
        before = rx.stats["accepted"]
        time.sleep(0.25)  # silence > timeout_s, then a fresh stream
        tx.sendto(encode_packet([0.5, 0.6, 0.7], 1, 0.0), dst)
        deadline = time.monotonic() + 5
        while rx.stats["accepted"] == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rx.stats["accepted"] == before + 1
        np.testing.assert_allclose(rx.latest().angles, [0.5, 0.6, 0.7], atol=1e-7)
    finally:
        tx.close()
        rx.close()
