"""image_codec: image_transport compressed / compressedDepth round trips, checked with an independent decoder."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image as PILImage

from bora_policy.runtime import image_codec as ic


def _scene(h=96, w=128):
    """A smooth rendered-like colour image (gradients + a few flat shapes)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 127 // (h + w)) + 60], -1).astype(np.uint8)
    img[20:50, 30:70] = (200, 40, 40)
    return img


def test_color_jpeg_format_bgr_payload_and_psnr():
    rgb = _scene()
    fmt, data = ic.encode_color(rgb, "jpeg", 90)
    assert fmt == "rgb8; jpeg compressed bgr8" and data[:2] == b"\xff\xd8"
    # independent decoder: the file holds the true colours (OpenCV writes its BGR matrix as a standard JPEG)
    pil = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
    assert ic.psnr(pil, rgb) >= 35.0
    out = ic.decode_color(fmt, data)
    assert out.shape == rgb.shape and out.dtype == np.uint8 and ic.psnr(out, rgb) >= 35.0
    assert len(data) * 5 <= rgb.nbytes


def test_color_png_is_lossless_and_rgb8_order_kept():
    rgb = _scene(40, 30)
    fmt, data = ic.encode_color(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(ic.decode_color(fmt, data), rgb)
    np.testing.assert_array_equal(np.asarray(PILImage.open(io.BytesIO(data))), rgb)
    # a publisher that handed OpenCV the RGB matrix as is says "compressed rgb8": the file's "red" is blue
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(buf, format="PNG")
    np.testing.assert_array_equal(ic.decode_color("rgb8; png compressed rgb8", buf.getvalue()), rgb)


def test_depth_png_exact_with_header():
    rng = np.random.default_rng(0)
    mm = rng.integers(0, 65536, (48, 64), dtype=np.uint16)
    mm[0, 0], mm[0, 1] = 0, 65535
    fmt, data = ic.encode_depth(mm)
    assert fmt == "16UC1; compressedDepth png"
    assert struct.unpack("<iff", data[:12]) == (0, 0.0, 0.0) and data[12:16] == b"\x89PNG"
    np.testing.assert_array_equal(ic.decode_depth(fmt, data), mm)
    pil = np.asarray(PILImage.open(io.BytesIO(data[12:])))  # independent 16-bit PNG reader
    np.testing.assert_array_equal(pil.astype(np.uint16), mm)


def test_metres_to_mm_and_decode_compressed_messages():
    from sensor_msgs.msg import CompressedImage

    d = np.array([[0.2, 1.2345, np.nan], [-1.0, 0.0, 70.0]], np.float32)
    mm = ic.metres_to_mm(d)
    assert mm.tolist() == [[200, 1234 if np.float32(1.2345) * 1000 < 1234.5 else 1235, 0], [0, 0, 65535]]
    fmt, data = ic.encode_depth(mm)
    msg = CompressedImage(format=fmt, data=data)
    assert ic.is_compressed(msg)
    np.testing.assert_array_equal(ic.decode_compressed(msg), mm.astype(np.float32) / 1000.0)
    fmt, data = ic.encode_color(_scene(16, 16), "png")
    np.testing.assert_array_equal(ic.decode_compressed(CompressedImage(format=fmt, data=data)), _scene(16, 16))


def test_bad_inputs_name_what_was_expected():
    with pytest.raises(ValueError, match=r"rgb must be \[H, W, 3\] uint8"):
        ic.encode_color(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="codec must be 'jpeg' or 'png'"):
        ic.encode_color(np.zeros((4, 4, 3), np.uint8), "webp")
    with pytest.raises(ValueError, match="uint16 millimetres"):
        ic.encode_depth(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="cannot decode"):
        ic.decode_color("rgb8; jpeg compressed bgr8", b"junk")
    with pytest.raises(ValueError, match="12-byte header"):
        ic.decode_depth("16UC1; compressedDepth png", b"short")
    with pytest.raises(ValueError, match="not a PNG compressedDepth"):
        ic.decode_depth("16UC1; compressedDepth rvl", b"x" * 40)
    with pytest.raises(ValueError, match="only 16UC1"):
        ic.decode_depth("32FC1; compressedDepth png", b"x" * 40)


def test_resize_for_policy_crop_and_depth_nearest():
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[:, 80:560] = 255  # the centre square is white, the side bands black
    out = ic.resize_for_policy(rgb, 64)
    assert out.shape == (64, 64, 3) and out.min() == 255
    mm = np.full((480, 640), 1000, np.uint16)
    mm[:, 320:] = 2000
    d = ic.resize_for_policy(mm, 64)
    assert d.dtype == np.uint16 and set(np.unique(d).tolist()) == {1000, 2000}
