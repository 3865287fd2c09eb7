"""Camera images sized at the edge and compressed in image_transport's formats (opencv-python).

* :func:`resize_for_policy`: resize (area interpolation) and optional centre crop to the policy's square
  input, close to the camera, so only what the policy consumes travels.
* ``compressed`` (colour, image_transport's ``compressed_image_transport``): ``CompressedImage.format`` =
  ``"<encoding>; <jpeg|png> compressed bgr8"`` and ``data`` = the JPEG/PNG of the BGR image (the plugin
  converts rgb8 to bgr8 before encoding, as OpenCV expects BGR): :func:`encode_color` /
  :func:`decode_color`.
* ``compressedDepth`` (16-bit depth, ``compressed_depth_image_transport``): ``format`` =
  ``"16UC1; compressedDepth png"`` and ``data`` = a 12-byte ConfigHeader ``{int32 format; float32
  depthParam[2]}`` (little endian; zeros: the quantisation parameters are only used for 32FC1) followed by
  a 16-bit PNG (lossless: depth survives exactly): :func:`encode_depth` / :func:`decode_depth`.
  32FC1 metres are stored as 16UC1 millimetres (:func:`metres_to_mm`; 0 = no measurement, the RealSense
  convention; ours: depth beyond 65.535 m is clipped).
* :func:`decode_compressed` dispatches on ``format`` for any ``sensor_msgs/CompressedImage``-like object
  (``.format``, ``.data``): colour -> ``[H, W, 3] uint8`` RGB, depth -> ``[H, W] float32`` metres. Every
  reader of recordings calls it for compressed images (``bora_trainer.data.bag_records``).

Library code: numpy + cv2 only (no rclpy; the message classes are passed in or duck-typed).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

DEPTH_HEADER = struct.Struct("<iff")  # compressed_depth_image_transport ConfigHeader (12 bytes)
DEPTH_FORMAT = "16UC1; compressedDepth png"


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - pinned in requirements.in
        raise ImportError("image_codec needs opencv-python (pinned in requirements.in; run make setup)") from e
    return cv2


def resize_for_policy(rgb: np.ndarray, size: int, crop: bool = True) -> np.ndarray:
    """``[H, W, 3]`` -> ``[size, size, 3]``: centre crop to a square (``crop``), then area resize."""
    a = np.asarray(rgb)
    if a.ndim not in (2, 3) or size < 1:
        raise ValueError(f"resize_for_policy: expected an [H, W(, C)] image and size >= 1, got {a.shape}, {size}")
    if crop:
        h, w = a.shape[:2]
        s = min(h, w)
        a = a[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    interp = _cv2().INTER_AREA if a.shape[0] >= size else _cv2().INTER_LINEAR
    if a.dtype == np.uint16:  # depth: nearest neighbour keeps values (no mixing of mm across edges)
        interp = _cv2().INTER_NEAREST
    return _cv2().resize(np.ascontiguousarray(a), (size, size), interpolation=interp)


def encode_color(rgb: np.ndarray, codec: str = "jpeg", quality: int = 90, encoding: str = "rgb8") -> tuple[str, bytes]:
    """``(format, data)`` of a ``compressed`` colour image (``rgb`` is RGB ``[H, W, 3] uint8``)."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"encode_color: rgb must be [H, W, 3] uint8, got {a.shape} {a.dtype}")
    if codec not in ("jpeg", "png"):
        raise ValueError(f"encode_color: codec must be 'jpeg' or 'png', got {codec!r}")
    cv2 = _cv2()
    bgr = np.ascontiguousarray(a[..., ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"encode_color: cv2.imencode failed for a {a.shape} image")
    return f"{encoding}; {codec} compressed bgr8", buf.tobytes()


def decode_color(fmt: str, data: bytes) -> np.ndarray:
    """``compressed`` colour -> RGB ``[H, W, 3] uint8`` (a compressed bgr8 or rgb8 matrix, or a bare codec)."""
    cv2 = _cv2()
    img = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"decode_color: cannot decode the {len(bytes(data))}-byte image (format {fmt!r})")
    # cv2 returns the matrix in the order it was compressed from ("... compressed bgr8" = BGR)
    after = fmt.split("compressed", 1)[1].strip() if "compressed" in fmt else "bgr8"
    return np.ascontiguousarray(img if after == "rgb8" else img[..., ::-1])


def metres_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres (rounded; NaN/inf/<= 0 -> 0 = no measurement; clipped at 65535)."""
    d = np.asarray(depth_m, dtype=np.float64)
    mm = np.where(np.isfinite(d) & (d > 0), np.rint(d * 1000.0), 0.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def encode_depth(depth_mm: np.ndarray, level: int = 1) -> tuple[str, bytes]:
    """``(format, data)`` of a ``compressedDepth`` 16UC1 image: the 12-byte header + a 16-bit PNG."""
    a = np.asarray(depth_mm)
    if a.ndim != 2 or a.dtype != np.uint16:
        raise ValueError(f"encode_depth: depth must be [H, W] uint16 millimetres, got {a.shape} {a.dtype}")
    cv2 = _cv2()
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
    if not ok:
        raise ValueError(f"encode_depth: cv2.imencode failed for a {a.shape} image")
    return DEPTH_FORMAT, DEPTH_HEADER.pack(0, 0.0, 0.0) + buf.tobytes()


def decode_depth(fmt: str, data: bytes) -> np.ndarray:
    """``compressedDepth`` (16UC1, PNG) -> ``[H, W] uint16`` millimetres, exactly as encoded."""
    head, _, rest = fmt.partition(";")
    if "compresseddepth" not in rest.lower() or "rvl" in rest.lower():
        raise ValueError(f"decode_depth: format {fmt!r} is not a PNG compressedDepth image")
    if head.strip() not in ("16UC1", "mono16"):
        raise ValueError(f"decode_depth: only 16UC1 compressedDepth is supported, got {head.strip()!r}")
    raw = bytes(data)
    if len(raw) <= DEPTH_HEADER.size:
        raise ValueError(f"decode_depth: {len(raw)} bytes, expected the 12-byte header and a PNG")
    cv2 = _cv2()
    img = cv2.imdecode(np.frombuffer(raw[DEPTH_HEADER.size :], np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError("decode_depth: the payload is not a 16-bit single-channel PNG")
    return img


def is_compressed(msg: Any) -> bool:
    """A ``sensor_msgs/CompressedImage``-like message (``format`` + ``data``, no ``encoding``)."""
    return hasattr(msg, "format") and hasattr(msg, "data") and not hasattr(msg, "encoding")


def decode_compressed(msg: Any) -> np.ndarray:
    """Any compressed image message: colour -> RGB uint8 ``[H, W, 3]``; compressedDepth -> float32 metres."""
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        return decode_depth(fmt, msg.data).astype(np.float32) / np.float32(1000.0)
    return decode_color(fmt, msg.data)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
