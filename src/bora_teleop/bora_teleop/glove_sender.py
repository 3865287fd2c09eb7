"""The sender side of the UDP glove stream (packet formats: bora_teleop/glove.py, bora_teleop/glove_auth.py).

:class:`GloveSender` numbers the packets (``seq`` +1 per packet) and, with a key, signs each one with
an envelope counter from the sender's clock in microseconds (strictly increasing, also across a
restart of the sender, as the receiver requires). A glove driver calls ``send(angles)`` per sample.

CLI::

    python -m bora_teleop.glove_sender keygen KEYFILE            # 32 random bytes, hex, mode 0600
    python -m bora_teleop.glove_sender send --host H --port P --angles 0.1,0.2 [--key-file F]
        [--rate 100] [--seconds 2] [--json]                      # a constant test pattern
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

from bora_teleop.glove import encode_json_packet, encode_packet
from bora_teleop.glove_auth import load_key, sign, write_key


class GloveSender:
    def __init__(self, host: str, port: int, key: bytes | None = None, source: str = "", fmt: str = "binary"):
        if fmt not in ("binary", "json"):
            raise ValueError(f"fmt: expected 'binary' or 'json', got {fmt!r}")
        self.dst, self.key, self.fmt = (host, int(port)), key, fmt
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if source:
            self.sock.bind((source, 0))
        self.seq = 0
        self._counter = 0

    def packet(self, angles, stamp: float | None = None, names: list[str] | None = None) -> bytes:
        """The next datagram (numbered, and signed with a key)."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        stamp = time.time() if stamp is None else float(stamp)
        if self.fmt == "json":
            payload = encode_json_packet(angles, self.seq, stamp, names)
        else:
            payload = encode_packet(angles, self.seq, stamp)
        if self.key is None:
            return payload
        self._counter = max(self._counter + 1, time.time_ns() // 1000)
        return sign(payload, self.key, self._counter)

    def send(self, angles, stamp: float | None = None, names: list[str] | None = None) -> int:
        return self.sock.sendto(self.packet(angles, stamp, names), self.dst)

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bora_teleop.glove_sender", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    kg = sub.add_parser("keygen", help="write a new random key (hex, mode 0600)")
    kg.add_argument("keyfile")
    sd = sub.add_parser("send", help="send a constant test pattern")
    sd.add_argument("--host", default="127.0.0.1")
    sd.add_argument("--port", type=int, required=True)
    sd.add_argument("--angles", required=True, help="comma-separated angles (rad), the receiver's order")
    sd.add_argument("--key-file", default="")
    sd.add_argument("--rate", type=float, default=100.0)
    sd.add_argument("--seconds", type=float, default=2.0)
    sd.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "keygen":
            write_key(a.keyfile)
            print(f"wrote a 32-byte key to {a.keyfile} (mode 0600); copy it to the receiver's udp_key_file")
            return 0
        angles = [float(x) for x in a.angles.split(",")]
        if not a.rate > 0:
            raise ValueError(f"--rate: expected > 0, got {a.rate}")
        tx = GloveSender(
            a.host, a.port, load_key(a.key_file) if a.key_file else None, fmt="json" if a.json else "binary"
        )
    except (ValueError, OSError) as e:
        print(f"glove_sender: error: {e}", file=sys.stderr)
        return 2
    n, t_end = 0, time.monotonic() + a.seconds
    while time.monotonic() < t_end:
        tx.send(angles)
        n += 1
        time.sleep(1.0 / a.rate)
    tx.close()
    print(f"sent {n} packets to {a.host}:{a.port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
