"""The UDP glove receiver at its boundary: hostile packets are dropped, counted, reported and never
raise; the receiver thread survives anything (real sockets on 127.0.0.1); rate-limited fault logs
and the fault window of /diagnostics (bora_teleop.health)."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

import bora_teleop.glove as glove
from bora_teleop.glove import MAX_PACKET, UdpGloveReceiver, encode_json_packet, encode_packet
from bora_teleop.health import ERROR, OK, WARN, FaultLog, RateLimitedLog

NAMES = ["thumb", "index", "middle"]

# (packet, the field the error must name): the cases first (seq 1e400, names 5, 400-digit stamp)
HOSTILE = [
    (b'{"seq": 1e400, "stamp": 0, "angles": [0, 0, 0]}', "'seq'"),
    (b'{"seq": 1, "stamp": 0, "angles": [0, 0, 0], "names": 5}', "'names'"),
    (b'{"seq": 1, "stamp": ' + b"9" * 400 + b', "angles": [0, 0, 0]}', "'stamp'"),
    (b'{"seq": ' + b"9" * 5000 + b', "stamp": 0, "angles": [0, 0, 0]}', "JSON packet"),
    (b'{"seq": 1, "stamp": 0, "angles": [' + b"9" * 400 + b", 0, 0]}", "'angles'[0]"),
    (b'{"seq": -1, "stamp": 0, "angles": [0, 0, 0]}', "'seq'"),
    (b'{"seq": 4294967296, "stamp": 0, "angles": [0, 0, 0]}', "'seq'"),
    (b'{"seq": true, "stamp": 0, "angles": [0, 0, 0]}', "'seq'"),
    (b'{"seq": 1.5, "stamp": 0, "angles": [0, 0, 0]}', "'seq'"),
    (b'{"seq": 1, "stamp": "now", "angles": [0, 0, 0]}', "'stamp'"),
    (b'{"seq": 1, "stamp": NaN, "angles": [0, 0, 0]}', "'stamp'"),
    (b'{"seq": 1, "stamp": 1e400, "angles": [0, 0, 0]}', "'stamp'"),
    (b'{"seq": 1, "stamp": 0, "angles": 5}', "'angles'"),
    (b'{"seq": 1, "stamp": 0, "angles": [0, "a", 0]}', "'angles'[1]"),
    (b'{"seq": 1, "stamp": 0, "angles": [0, [0], 0]}', "'angles'[1]"),
    (b'{"seq": 1, "stamp": 0, "angles": [1e300, 0, 0]}', "'angles'"),
    (b'{"seq": 1, "stamp": 0, "angles": [0, 0]}', "2 angles, expected 3"),
    (b'{"seq": 1, "stamp": 0, "angles": [0, 0, 0], "names": ["a", "b"]}', "'names'"),
    (b'{"seq": 1, "stamp": 0, "angles": [0, 0, 0], "names": ["thumb", "thumb", "index"]}', "duplicate"),
    (b'{"seq": 1, "stamp": 0, "angles": [0, 0, 0], "names": ["thumb", 3, "index"]}', "'names'[1]"),
    (b'{"seq": 1, "stamp": 0, "angles": [0, 0, 0], "names": ["a", "b", "c"]}', "missing joints"),
    (b'{"seq": 1, "stamp": 0, "angles": [' + b"0," * 300 + b"0]}", "at most 255"),
    (b'{"seq": 1, "stamp": 0}', "missing field 'angles'"),
    (b"{" + b"[" * 5000, "JSON packet"),
    (b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}", "nested too deeply"),
    (b"[1, 2, 3]" + b" " * 20, "magic"),
    (b'{"seq": 1', "JSON packet"),
    (b"{\xff\xfe}", "JSON packet"),
    (b"{" + b" " * (MAX_PACKET + 1) + b"}", "at most"),
    (b"BGL", "shorter than"),
    (encode_packet([0.0, 0.0, 0.0], 1, 0.0)[:-1], "header says n=3"),
    (encode_packet([0.0, 0.0, 0.0], 1, float("inf")), "'stamp'"),
    (encode_packet([0.0, 0.0], 1, 0.0), "2 angles, expected 3"),
    (b"BGLV\x02" + encode_packet([0.0] * 3, 1, 0.0)[5:], "version 2"),
]


def _valid(seq: int) -> bytes:
    return encode_packet([0.1, 0.2, 0.3], seq, 1.0)


@pytest.mark.parametrize("packet,field", HOSTILE, ids=[f"case{i}" for i in range(len(HOSTILE))])
def test_hostile_packet_is_dropped_counted_and_reported(packet, field):
    faults = []
    t = [0.0]
    rx = UdpGloveReceiver(3, NAMES, timeout_s=0.2, clock=lambda: t[0], on_fault=lambda k, s: faults.append((k, s)))
    try:
        assert rx.handle(packet) is False
        assert rx.stats["malformed"] == 1 and rx.stats["internal_error"] == 0 and rx.stats["accepted"] == 0
        assert field in rx.last_error, rx.last_error
        assert faults == [("malformed", rx.last_error)]  # every drop is reported, with its text
        t[0] = 0.01
        assert rx.handle(_valid(2))  # a valid packet right after still works
        np.testing.assert_allclose(rx.latest().angles, [0.1, 0.2, 0.3], atol=1e-7)
    finally:
        rx.close()


def test_nonfinite_angles_are_counted_separately():
    rx = UdpGloveReceiver(3, NAMES, on_fault=lambda k, s: None)
    try:
        for pkt in (
            encode_packet([np.nan, 0, 0], 1, 0.0),
            encode_packet([0, np.inf, 0], 2, 0.0),
            b'{"seq": 3, "stamp": 0, "angles": [0, 0, -Infinity]}',
            b'{"seq": 4, "stamp": 0, "angles": [0, 1e400, 0]}',
        ):
            assert not rx.handle(pkt)
        assert rx.stats["nonfinite"] == 4 and rx.stats["accepted"] == 0 and "indices [1]" in rx.last_error
    finally:
        rx.close()


def test_receiver_thread_survives_an_exception_inside_handling(monkeypatch):
    # Fault injection: the decoder raises an unexpected error (not a PacketError) for one datagram and
    # the receive loop raises once; the real socket thread keeps running and the next packet is accepted.
    real = glove.decode_packet

    def broken(data, names=None):
        if data == b"BOOM":
            raise ZeroDivisionError("injected")
        return real(data, names)

    monkeypatch.setattr(glove, "decode_packet", broken)
    faults = []
    rx = UdpGloveReceiver(3, NAMES, timeout_s=0.5, on_fault=lambda k, s: faults.append(k)).start()
    real_receive = rx._receive_one
    calls = [0]

    def flaky():
        calls[0] += 1
        if calls[0] == 3:
            raise MemoryError("injected in the receive loop")
        return real_receive()

    rx._receive_one = flaky
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tx.sendto(b"BOOM", ("127.0.0.1", rx.port))
        deadline = time.monotonic() + 5
        while rx.stats["internal_error"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rx.stats["internal_error"] == 2 and rx.alive
        assert "ZeroDivisionError" in rx.last_error or "MemoryError" in rx.last_error
        tx.sendto(_valid(7), ("127.0.0.1", rx.port))
        while rx.stats["accepted"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rx.stats["accepted"] == 1 and rx.latest().seq == 7 and rx.alive
        assert faults.count("internal_error") == 2
    finally:
        tx.close()
        rx.close()
    assert not rx.alive  # close() ends it


def test_a_failing_fault_callback_does_not_stop_the_receiver():
    def bad_callback(kind, text):
        raise RuntimeError("logger down")

    rx = UdpGloveReceiver(3, NAMES, on_fault=bad_callback)
    try:
        assert not rx.handle(b"garbage") and rx.stats["malformed"] == 1
        assert rx.handle(_valid(1))
    finally:
        rx.close()


def test_rate_limited_log_reports_every_fault_as_lines_or_counts():
    t, lines = [0.0], []
    log = RateLimitedLog(lambda level, text: lines.append((level, text)), lambda: t[0], period_s=1.0)
    for i in range(4):  # four malformed glove states within 0.3 s: one line now ...
        t[0] = 0.1 * i
        log("glove", "error", f"bad glove state {i}")
    assert lines == [("error", "bad glove state 0")]
    t[0] = 0.5
    assert log.flush() == 0  # ... the period has not passed yet
    t[0] = 1.2
    assert log.flush() == 1  # ... and the other three as one line with their count
    assert lines[-1] == ("error", "3 more: bad glove state 3")
    t[0] = 1.5
    log("glove", "error", "bad glove state 4")
    t[0] = 2.3
    log("glove", "error", "bad glove state 5")
    assert lines[-1] == ("error", "bad glove state 5 (+1 more since the last report)")
    assert log.flush() == 0


def test_fault_log_level_follows_the_window():
    t = [0.0]
    f = FaultLog(lambda: t[0], window_s=5.0)
    assert f.status()[0] == OK and f.status()[1] == "ok"
    f.record("udp_malformed", "JSON packet: field 'seq'", WARN)
    t[0] = 1.0
    level, msg, recent = f.status()
    assert level == WARN and "udp_malformed x1" in msg and "field 'seq'" in msg and recent == {"udp_malformed": 1}
    f.record("hold_nan", "non-finite command", ERROR)
    assert f.status()[0] == ERROR
    t[0] = 5.9  # the WARN is 5.9 s old, the ERROR 4.9 s
    assert f.status()[0] == ERROR and f.status()[2] == {"hold_nan": 1}
    t[0] = 6.1
    assert f.status()[0] == OK and f.counts == {"udp_malformed": 1, "hold_nan": 1}
    assert f.last_error == "non-finite command"


def test_json_names_reorder_and_valid_json_still_accepted():
    rx = UdpGloveReceiver(3, NAMES, on_fault=lambda k, s: None)
    try:
        assert rx.handle(encode_json_packet([3.0, 1.0, 2.0], 1, 5.0, names=["middle", "thumb", "index"]))
        np.testing.assert_array_equal(rx.latest().angles, [1.0, 2.0, 3.0])
        assert rx.handle(b'{"seq": 2, "stamp": 5, "angles": [1, 2, 3], "extra": {"ignored": [1, 2]}}')
    finally:
        rx.close()
