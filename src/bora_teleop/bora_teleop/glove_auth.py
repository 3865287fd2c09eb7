"""Authenticated glove datagrams: HMAC-SHA256 envelope, key files, loopback check (pure Python).

On the real robot the glove stream comes from another machine, so the receiver binds a LAN address
and any host on that network could send angles. With a key (``udp_key_file``) every datagram must be
this envelope around a v1 packet (binary ``BGLV`` or JSON, :mod:`bora_teleop.glove`), little-endian::

    offset  size  field
    0       4     magic    b"BGLS"
    4       8     counter  uint64, strictly increasing per key (the sender uses its clock in µs,
                           so a restarted sender continues above its last value)
    12      m     payload  one v1 glove packet (binary or JSON)
    12+m    32    tag      HMAC-SHA256(key, bytes[0 : 12+m])   (RFC 2104, FIPS 198-1)

The receiver checks the tag in constant time (``hmac.compare_digest``) and accepts a counter only if
it is greater than the last accepted one, for the whole life of the receiver (no reset after silence,
no wrap-around: that is what rejects a replayed datagram). Our choices: the counter outside the
payload (binary and JSON packets are authenticated the same way), a 32-byte (untruncated) tag, keys of
at least 32 bytes. The unauthenticated mode is allowed only on a loopback address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
import struct
from pathlib import Path

AUTH_MAGIC = b"BGLS"
AUTH_HEADER = struct.Struct("<4sQ")  # 12 bytes
TAG_SIZE = 32
MIN_KEY_BYTES = 32


class AuthError(ValueError):
    """A datagram that fails authentication (the message says why)."""


def load_key(path: str) -> bytes:
    """The key of a key file: 64+ hex characters (one line), or 32+ raw bytes. Errors name the file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"parameter udp_key_file={path!r}: not a regular file")
    raw = p.read_bytes()
    text = raw.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"parameter udp_key_file={path!r}: key of {len(key)} bytes, expected at least {MIN_KEY_BYTES} "
            "(make one: python -m bora_teleop.glove_sender keygen FILE)"
        )
    return key


def write_key(path: str) -> bytes:
    """A new random 32-byte key, written as hex to ``path`` with mode 0600."""
    key = os.urandom(MIN_KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def sign(payload: bytes, key: bytes, counter: int) -> bytes:
    """The envelope (format in the module docstring) around one v1 glove packet."""
    if not 0 <= int(counter) < 2**64:
        raise AuthError(f"counter: expected 0 <= counter < 2**64, got {counter}")
    head = AUTH_HEADER.pack(AUTH_MAGIC, int(counter)) + bytes(payload)
    return head + hmac.new(key, head, hashlib.sha256).digest()


def verify(data: bytes, key: bytes) -> tuple[int, bytes]:
    """-> (counter, payload) of an authentic envelope; AuthError otherwise (tag checked in constant time)."""
    if len(data) < AUTH_HEADER.size + TAG_SIZE + 1:
        raise AuthError(f"signed packet: {len(data)} bytes, too short for the envelope")
    magic, counter = AUTH_HEADER.unpack_from(data)
    if magic != AUTH_MAGIC:
        raise AuthError(f"signed packet: magic {bytes(magic)!r}, expected {AUTH_MAGIC!r} (unsigned packet?)")
    body, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), tag):
        raise AuthError("signed packet: HMAC-SHA256 tag does not match (wrong key or altered packet)")
    return int(counter), bytes(body[AUTH_HEADER.size :])


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def parse_sources(sources) -> frozenset[str]:
    """The allowed source IP addresses (empty strings ignored); one-line error naming a bad entry."""
    out = set()
    for s in sources or []:
        s = str(s).strip()
        if not s:
            continue
        try:
            out.add(str(ipaddress.ip_address(s)))
        except ValueError:
            raise ValueError(f"parameter udp_allowed_sources: {s!r} is not an IP address") from None
    return frozenset(out)
