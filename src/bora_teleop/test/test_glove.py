"""Glove input: UDP packets over a real socket on 127.0.0.1, JSON packets, topic adapter, staleness."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest

from bora_teleop.glove import (
    HEADER,
    PacketError,
    UdpGloveReceiver,
    dds_port_range,
    decode_packet,
    encode_json_packet,
    encode_packet,
    freshest,
    sample_from_joint_state,
)

NAMES = ["thumb", "index", "middle"]


def test_binary_packet_layout_is_the_documented_one():
    pkt = encode_packet([0.5, -1.25, 2.0], seq=7, stamp=12.5)
    assert len(pkt) == 20 + 3 * 4 == HEADER.size + 12
    magic, ver, n, flags, seq, stamp = struct.unpack_from("<4sBBHId", pkt)
    assert (magic, ver, n, flags, seq, stamp) == (b"BGLV", 1, 3, 0, 7, 12.5)
    assert struct.unpack_from("<3f", pkt, 20) == (0.5, -1.25, 2.0)
    angles, seq, stamp = decode_packet(pkt)
    np.testing.assert_array_equal(angles, [0.5, -1.25, 2.0])


def test_decode_errors_name_the_field():
    with pytest.raises(PacketError, match="magic"):
        decode_packet(b"XXXX" + encode_packet([1.0], 0, 0.0)[4:])
    with pytest.raises(PacketError, match="header says n=3"):
        decode_packet(encode_packet([1.0, 2.0, 3.0], 0, 0.0)[:-4])
    with pytest.raises(PacketError, match="missing field 'angles'"):
        decode_packet(b'{"seq": 1, "stamp": 0}')
    with pytest.raises(PacketError, match="shorter than"):
        decode_packet(b"BGL")


def test_dds_port_range_is_the_rtps_default_and_the_receiver_refuses_a_port_inside_it():
    # RTPS 9.6.1.1 by hand: domain 0 -> 7400 (SPDP multicast) .. 7400 + 249; domain 120 -> 7400 + 250 * 120 = 37400,
    # its first participant's unicast discovery port 37400 + 10 = 37410
    assert dds_port_range(0) == range(7400, 7650)
    assert dds_port_range(120) == range(37400, 37650) and 37410 in dds_port_range(120)
    text = r"udp_port=37410: inside DDS's port range 37400\.\.37649 of ROS_DOMAIN_ID 120"
    with pytest.raises(ValueError, match=text):
        UdpGloveReceiver(n_angles=3, port=37410, dds_domain_id=120)
    UdpGloveReceiver(n_angles=3, port=0, dds_domain_id=120).close()  # port 0 (the OS picks one): not refused
    # a DDS datagram (RTPS header: magic, version 2.3, vendor 1.15, 12-byte GUID prefix) is named as such
    rtps = b"RTPS" + bytes([2, 3, 1, 15]) + bytes(12) + encode_packet([1.0], 0, 0.0)
    with pytest.raises(PacketError, match=r"an RTPS \(DDS\) datagram, not a glove packet"):
        decode_packet(rtps)


def test_udp_receiver_over_loopback_socket():
    rx = UdpGloveReceiver(n_angles=3, names=NAMES, host="127.0.0.1", port=0, timeout_s=0.5).start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert rx.address[0] == "127.0.0.1"
        dst = ("127.0.0.1", rx.port)
        tx.sendto(encode_packet([0.1, 0.2, 0.3], seq=1, stamp=100.0), dst)
        tx.sendto(encode_packet([9.0, 9.0, 9.0], seq=1, stamp=100.0), dst)  # duplicate seq: dropped
        tx.sendto(b"garbage", dst)  # malformed: dropped
        tx.sendto(encode_packet([1.0, 2.0], seq=2, stamp=100.1), dst)  # wrong count: dropped
        tx.sendto(
            encode_json_packet([0.3, 0.1, 0.2], seq=3, stamp=100.2, names=["middle", "thumb", "index"]), dst
        )
        tx.sendto(encode_packet([5.0, 5.0, 5.0], seq=2, stamp=100.3), dst)  # older seq: dropped
        deadline = time.monotonic() + 5.0
        while rx.stats["received"] < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rx.stats["received"] == 6 and rx.stats["accepted"] == 2
        assert rx.stats["malformed"] == 2 and rx.stats["out_of_order"] == 2
        assert sum(rx.stats.values()) - 6 == 6  # every received datagram is accepted or counted as a fault
        s = rx.latest()
        assert s.seq == 3 and s.stamp == pytest.approx(100.2) and s.source == "udp"
        np.testing.assert_allclose(s.angles, [0.1, 0.2, 0.3], atol=1e-7)  # JSON reordered by name
        tx.sendto(encode_packet([np.nan, 0.0, 0.0], seq=4, stamp=100.4), dst)
        while rx.stats["received"] < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rx.stats["nonfinite"] == 1 and rx.latest().seq == 3
    finally:
        tx.close()
        rx.close()


def test_seq_wraparound_and_sender_restart():
    t = [0.0]
    rx = UdpGloveReceiver(n_angles=1, timeout_s=0.2, clock=lambda: t[0])
    try:
        assert rx.handle(encode_packet([0.0], seq=2**32 - 1, stamp=0))
        t[0] = 0.01
        assert rx.handle(encode_packet([1.0], seq=0, stamp=0))  # wrapped: newer
        t[0] = 0.02
        assert rx.handle(encode_packet([2.0], seq=5000, stamp=0))  # a gap (lost packets) is fine
        t[0] = 0.03
        assert not rx.handle(encode_packet([2.5], seq=1, stamp=0))  # behind, within the timeout: dropped
        t[0] = 1.0  # silent > timeout: a restarted sender
        assert rx.handle(encode_packet([3.0], seq=1, stamp=0))
        assert rx.latest().angles[0] == 3.0
    finally:
        rx.close()


def test_topic_adapter_and_staleness():
    s = sample_from_joint_state(["middle", "thumb", "index"], [3.0, 1.0, 2.0], NAMES, t_recv=10.0)
    np.testing.assert_array_equal(s.angles, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"missing joints \['middle'\]"):
        sample_from_joint_state(["thumb", "index"], [1.0, 2.0], NAMES, t_recv=0.0)
    assert freshest([s], now=10.15, timeout_s=0.2) is s
    assert freshest([s], now=10.25, timeout_s=0.2) is None
    s2 = sample_from_joint_state([], [0.0, 0.0, 0.0], NAMES, t_recv=10.1)
    assert freshest([s, None, s2], now=10.2, timeout_s=0.2) is s2
