"""The recordings' image reader decodes image_transport compressed (JPEG/PNG) and compressedDepth (16-bit PNG)."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from bora_policy.runtime import image_codec as ic
from bora_trainer.data.bag_records import ConversionError, decode_image


def test_raw_and_compressed_forms_decode_to_the_same_arrays():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    mm = rng.integers(0, 4000, (12, 20), dtype=np.uint16)
    raw_c = Image(height=12, width=20, encoding="rgb8", step=60, data=rgb.tobytes())
    raw_d = Image(height=12, width=20, encoding="16UC1", step=40, data=mm.tobytes())
    fc, dc = ic.encode_color(rgb, "png")
    fd, dd = ic.encode_depth(mm)
    color, depth = CompressedImage(format=fc, data=dc), CompressedImage(format=fd, data=dd)
    np.testing.assert_array_equal(decode_image(color, "color"), decode_image(raw_c, "color"))
    np.testing.assert_array_equal(decode_image(depth, "depth"), decode_image(raw_d, "depth"))
    np.testing.assert_allclose(decode_image(depth, "depth"), mm / 1000.0, rtol=1e-6)


def test_a_damaged_compressed_image_is_a_conversion_error_naming_it():
    with pytest.raises(ConversionError, match="episode 3 step 7 depth"):
        damaged = CompressedImage(format="16UC1; compressedDepth png", data=b"\x00" * 30)
        decode_image(damaged, "episode 3 step 7 depth[0]")


def test_viz_reader_decodes_compressed_images_too():
    from bora_trainer.viz.log import VizInputError, image_array

    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    mm = np.arange(24, dtype=np.uint16).reshape(4, 6) * 100
    fc, dc = ic.encode_color(rgb, "png")
    fd, dd = ic.encode_depth(mm)
    np.testing.assert_array_equal(image_array(CompressedImage(format=fc, data=dc)), rgb)
    np.testing.assert_allclose(image_array(CompressedImage(format=fd, data=dd)), mm / 1000.0, rtol=1e-6)
    with pytest.raises(VizInputError, match="compressed image"):
        image_array(CompressedImage(format="rgb8; jpeg compressed bgr8", data=b"nope"))
