"""The authenticated glove stream over real sockets on 127.0.0.0/8: allowed sources, HMAC-SHA256 tags,
replayed counters, the loopback-only unauthenticated mode, key files and the sender CLI."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time

import numpy as np
import pytest

from bora_teleop.glove import UdpGloveReceiver, encode_packet
from bora_teleop.glove_auth import AUTH_MAGIC, AuthError, is_loopback, load_key, sign, verify, write_key
from bora_teleop.glove_sender import GloveSender
from bora_teleop.glove_sender import main as sender_main

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def _wait(rx, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while rx.stats["received"] < n and time.monotonic() < deadline:
        time.sleep(0.005)
    assert rx.stats["received"] == n, rx.stats


def test_envelope_is_the_documented_layout():
    payload = encode_packet([0.5], 3, 1.0)
    pkt = sign(payload, KEY, 1234)
    assert pkt[:4] == AUTH_MAGIC and struct.unpack_from("<Q", pkt, 4)[0] == 1234
    assert pkt[12:-32] == payload
    assert pkt[-32:] == hmac.new(KEY, pkt[:-32], hashlib.sha256).digest()  # RFC 2104 over header + payload
    assert verify(pkt, KEY) == (1234, payload)
    with pytest.raises(AuthError, match="does not match"):
        verify(pkt, OTHER_KEY)
    flipped = bytearray(pkt)
    flipped[14] ^= 1
    with pytest.raises(AuthError, match="does not match"):
        verify(bytes(flipped), KEY)
    with pytest.raises(AuthError, match="magic"):
        verify(payload + bytes(32), KEY)


def test_unauthenticated_mode_only_on_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.5") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    with pytest.raises(ValueError, match=r"udp_host='0.0.0.0'.*loopback.*udp_key_file"):
        UdpGloveReceiver(1, host="0.0.0.0")
    with pytest.raises(ValueError, match="udp_allowed_sources: 'glove-pc' is not an IP address"):
        UdpGloveReceiver(1, allowed_sources=["glove-pc"])
    taken = UdpGloveReceiver(1)
    try:
        with pytest.raises(ValueError, match=f"cannot bind 127.0.0.1:{taken.port}"):
            UdpGloveReceiver(1, port=taken.port)
    finally:
        taken.close()


def test_key_files(tmp_path):
    f = tmp_path / "glove.key"
    key = write_key(str(f))
    assert len(key) == 32 and (os.stat(f).st_mode & 0o777) == 0o600
    assert load_key(str(f)) == key
    (tmp_path / "short.key").write_text("abcd\n")
    with pytest.raises(ValueError, match=r"udp_key_file=.*key of 2 bytes, expected at least 32"):
        load_key(str(tmp_path / "short.key"))
    (tmp_path / "raw.key").write_bytes(os.urandom(48))
    assert len(load_key(str(tmp_path / "raw.key"))) == 48
    with pytest.raises(ValueError, match="not a regular file"):
        load_key(str(tmp_path / "missing.key"))


def test_no_packet_from_a_wrong_source_key_or_with_a_replayed_counter_is_accepted():
    rx = UdpGloveReceiver(
        2,
        ["a", "b"],
        host="127.0.0.1",
        timeout_s=0.5,
        key=KEY,
        allowed_sources=["127.0.0.2"],
        on_fault=lambda k, s: None,
    ).start()
    good = GloveSender("127.0.0.1", rx.port, key=KEY, source="127.0.0.2")
    wrong_host = GloveSender("127.0.0.1", rx.port, key=KEY, source="127.0.0.3")
    wrong_key = GloveSender("127.0.0.1", rx.port, key=OTHER_KEY, source="127.0.0.2")
    unsigned = GloveSender("127.0.0.1", rx.port, key=None, source="127.0.0.2")
    n = 0
    try:
        for tx in (wrong_host, wrong_key, unsigned):
            for i in range(50):
                tx.send([0.9, 0.9], stamp=float(i))
        n += 150
        _wait(rx, n)
        assert rx.stats["accepted"] == 0 and rx.latest() is None
        assert rx.stats["wrong_source"] == 50 and rx.stats["bad_signature"] == 100
        # the operator's glove: accepted; its packets replayed (exact copies, later): all rejected
        sent = []
        for i in range(20):
            pkt = good.packet([0.1 * i, 0.2], stamp=float(i))
            sent.append(pkt)
            good.sock.sendto(pkt, good.dst)
            time.sleep(0.002)
        n += 20
        _wait(rx, n)
        assert rx.stats["accepted"] == 20
        np.testing.assert_allclose(rx.latest().angles, [1.9, 0.2], atol=1e-6)
        time.sleep(0.6)  # silence > timeout_s: the unauthenticated seq check would accept a "restart" now
        for pkt in sent:
            good.sock.sendto(pkt, good.dst)
        # an altered copy (angle bytes changed, tag kept) and a re-signed copy with an old counter
        altered = bytearray(sent[-1])
        altered[12 + 20] ^= 0x40
        good.sock.sendto(bytes(altered), good.dst)
        counter_old = struct.unpack_from("<Q", sent[0], 4)[0]
        good.sock.sendto(sign(encode_packet([5.0, 5.0], 99, 0.0), KEY, counter_old), good.dst)
        n += 22
        _wait(rx, n)
        assert rx.stats["accepted"] == 20 and rx.stats["replayed"] == 21 and rx.stats["bad_signature"] == 101
        np.testing.assert_allclose(rx.latest().angles, [1.9, 0.2], atol=1e-6)
        # a restarted sender (new process: seq from 1) continues: its counter is its clock in µs
        restarted = GloveSender("127.0.0.1", rx.port, key=KEY, source="127.0.0.2")
        restarted.send([0.3, 0.4])
        n += 1
        _wait(rx, n)
        assert rx.stats["accepted"] == 21 and rx.latest().seq == 1
        restarted.close()
    finally:
        for tx in (good, wrong_host, wrong_key, unsigned):
            tx.close()
        rx.close()


def test_sender_cli_keygen_and_signed_send(tmp_path):
    keyfile = tmp_path / "k"
    assert sender_main(["keygen", str(keyfile)]) == 0
    rx = UdpGloveReceiver(2, timeout_s=0.5, key=load_key(str(keyfile)), on_fault=lambda k, s: None).start()
    try:
        rc = sender_main(
            [
                "send",
                "--port",
                str(rx.port),
                "--angles",
                "0.25,0.5",
                "--key-file",
                str(keyfile),
                "--rate",
                "200",
                "--seconds",
                "0.2",
                "--json",
            ]
        )
        assert rc == 0
        deadline = time.monotonic() + 5
        while rx.stats["accepted"] < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rx.stats["accepted"] >= 10 and rx.stats["accepted"] == rx.stats["received"]
        np.testing.assert_allclose(rx.latest().angles, [0.25, 0.5])
    finally:
        rx.close()
    assert sender_main(["send", "--port", "1", "--angles", "0.1", "--key-file", str(tmp_path / "none")]) == 2


def test_signed_mode_refuses_plain_packets_even_on_loopback():
    rx = UdpGloveReceiver(1, key=KEY, on_fault=lambda k, s: None)
    try:
        assert not rx.handle(encode_packet([0.1], 1, 0.0), "127.0.0.1")
        assert rx.stats["bad_signature"] == 1
        assert rx.handle(sign(encode_packet([0.1], 2, 0.0), KEY, 10), "127.0.0.1")
        assert not rx.handle(sign(encode_packet([0.1], 3, 0.0), KEY, 10), "127.0.0.1")  # same counter
        assert rx.stats["replayed"] == 1
    finally:
        rx.close()
