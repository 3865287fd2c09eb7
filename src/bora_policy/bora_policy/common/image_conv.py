"""numpy <-> sensor_msgs/Image without cv_bridge (encodings rgb8, bgr8, 16UC1, 32FC1).

``image_to_numpy(msg)`` returns ``[H, W, 3] uint8`` for colour and ``[H, W]`` (uint16 or float32)
for depth, honouring ``step`` (row padding) and ``is_bigendian``. ``to_rgb(msg)`` gives RGB whatever
the colour encoding; ``depth_to_metres(msg)`` gives float32 metres (16UC1 is millimetres, the
RealSense driver's native encoding; 0 stays 0 = no measurement). ``numpy_to_image`` fills a
``sensor_msgs/Image`` of the class the caller (a node) passes: this module needs only numpy and is
shared by the sim bridge (publisher) and the sync node (subscriber), so both agree on the encodings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "16UC1": (np.dtype(np.uint16), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}


def _spec(encoding: str) -> tuple[np.dtype, int]:
    if encoding not in ENCODINGS:
        raise ValueError(f"image_conv: unsupported encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    return ENCODINGS[encoding]


def image_to_numpy(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` -> array (a copy), shape ``[H, W, C]`` for C > 1 else ``[H, W]``."""
    dtype, ch = _spec(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * ch * dtype.itemsize
    if step < row_bytes:
        raise ValueError(
            f"image_conv: step={step} is smaller than width*channels*bytes={row_bytes} "
            f"({msg.encoding}, {w} px)"
        )
    try:
        buf = np.frombuffer(msg.data, dtype=np.uint8)  # bytes, array.array('B'), memoryview: no copy
    except TypeError:
        buf = np.asarray(msg.data, dtype=np.uint8)  # a plain list of ints
    if buf.size < h * step:
        raise ValueError(f"image_conv: data has {buf.size} bytes, expected height*step={h * step}")
    rows = buf[: h * step].reshape(h, step)[:, :row_bytes]
    big = bool(msg.is_bigendian)
    dt = dtype.newbyteorder(">" if big else "<") if dtype.itemsize > 1 else dtype
    arr = (
        np.ascontiguousarray(rows).view(dt).reshape(h, w, ch)
        if ch > 1
        else np.ascontiguousarray(rows).view(dt).reshape(h, w)
    )
    return arr.astype(dtype, copy=True)


def to_rgb(msg: Any) -> np.ndarray:
    """Colour image as ``[H, W, 3] uint8`` RGB (bgr8 is reordered)."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"image_conv.to_rgb: colour image must be rgb8 or bgr8, got {msg.encoding!r}")
    arr = image_to_numpy(msg)
    return arr[..., ::-1].copy() if msg.encoding == "bgr8" else arr


def depth_to_metres(msg: Any) -> np.ndarray:
    """Depth image as ``[H, W] float32`` metres (16UC1/mono16 are millimetres)."""
    if msg.encoding not in ("16UC1", "mono16", "32FC1"):
        raise ValueError(f"image_conv.depth_to_metres: depth must be 16UC1 or 32FC1, got {msg.encoding!r}")
    arr = image_to_numpy(msg)
    return arr.astype(np.float32) * np.float32(1e-3) if arr.dtype == np.uint16 else arr.astype(np.float32)


def numpy_to_image(arr: np.ndarray, encoding: str, header: Any = None, *, msg_cls: Any) -> Any:
    """Array -> ``sensor_msgs/Image`` (little-endian, no row padding).

    ``arr`` must be ``[H, W, 3] uint8`` for rgb8/bgr8, ``[H, W] uint16`` for 16UC1 and
    ``[H, W] float32`` for 32FC1. ``msg_cls`` is ``sensor_msgs.msg.Image`` (given by the node).
    """
    dtype, ch = _spec(encoding)
    a = np.asarray(arr)
    want = "[H, W, 3]" if ch == 3 else "[H, W]"
    if (ch == 3 and (a.ndim != 3 or a.shape[2] != 3)) or (ch == 1 and a.ndim != 2):
        raise ValueError(
            f"image_conv.numpy_to_image: {encoding} needs an array {want} {dtype}, got {a.shape}"
        )
    if a.dtype != dtype:
        raise ValueError(f"image_conv.numpy_to_image: {encoding} needs dtype {dtype}, got {a.dtype}")
    msg = msg_cls()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(a.shape[1] * ch * dtype.itemsize)
    msg.data = np.ascontiguousarray(a, dtype=dtype.newbyteorder("<")).tobytes()
    return msg
