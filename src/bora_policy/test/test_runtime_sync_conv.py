"""Approximate-time synchroniser (message_filters' algorithm) and numpy <-> Image conversion."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import Image

from bora_policy.common.image_conv import depth_to_metres, image_to_numpy, numpy_to_image, to_rgb
from bora_policy.runtime.approx_sync import ApproximateTimeSynchronizer, make_synchronizer


def msg(t_ms: int, tag: str = ""):
    return SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(sec=t_ms // 1000, nanosec=(t_ms % 1000) * 1_000_000)),
        tag=tag,
    )


def implementations():
    """Ours always; message_filters' own class where it imports (real ROS installs)."""
    impls = ["bora"]
    try:
        import message_filters  # noqa: F401

        impls.append("message_filters")
    except ImportError:
        pass
    return impls


def make(kind, n, q, slop):
    return make_synchronizer(n, q, slop, prefer_message_filters=(kind == "message_filters"))[0]


@pytest.mark.parametrize("kind", implementations())
def test_exact_and_within_slop_sets_are_emitted_once(kind):
    s = make(kind, 3, 10, 0.010)
    got = []
    s.register_callback(lambda *m: got.append([x.tag for x in m]))
    s.add(msg(1000, "a0"), 0)
    s.add(msg(1004, "b0"), 1)
    assert got == []
    s.add(msg(1008, "c0"), 2)  # spread 8 ms < 10 ms
    assert got == [["a0", "b0", "c0"]]
    s.add(msg(1008, "c0dup"), 2)  # a/b were consumed: nothing to pair with
    assert got == [["a0", "b0", "c0"]]


@pytest.mark.parametrize("kind", implementations())
def test_spread_not_below_slop_is_not_emitted_and_nearest_is_chosen(kind):
    s = make(kind, 2, 10, 0.010)
    got = []
    s.register_callback(lambda *m: got.append([x.tag for x in m]))
    s.add(msg(1000, "a0"), 0)
    s.add(msg(1010, "b_far"), 1)  # |d| = slop: within the filter, but max-min < slop fails
    assert got == []
    s.add(msg(1030, "a1"), 0)  # 20 ms from b_far: outside the slop
    assert got == []
    s.add(msg(1027, "b1"), 1)  # nearest a is a1 (3 ms), not a0
    assert got == [["a1", "b1"]]


@pytest.mark.parametrize("kind", implementations())
def test_queue_size_drops_the_oldest(kind):
    s = make(kind, 2, 2, 0.005)
    got = []
    s.register_callback(lambda *m: got.append([x.tag for x in m]))
    for t in (1000, 1100, 1200):
        s.add(msg(t, f"a{t}"), 0)  # queue 2: a1000 dropped
    s.add(msg(1001, "b"), 1)
    assert got == []
    s.add(msg(1101, "b2"), 1)
    assert got == [["a1100", "b2"]]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="slop"):
        ApproximateTimeSynchronizer(2, 5, -1.0)
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateTimeSynchronizer(2, 0, 0.1)
    with pytest.raises(ValueError, match="header.stamp"):
        ApproximateTimeSynchronizer(2, 5, 0.1).add(object(), 0)


class FakeImage(SimpleNamespace):
    pass


@pytest.mark.parametrize(
    "enc,shape,dtype",
    [
        ("rgb8", (5, 7, 3), np.uint8),
        ("bgr8", (4, 6, 3), np.uint8),
        ("16UC1", (3, 5), np.uint16),
        ("32FC1", (6, 2), np.float32),
    ],
)
def test_image_round_trip(enc, shape, dtype):
    rng = np.random.default_rng(0)
    a = (rng.uniform(0, 200, size=shape)).astype(dtype)
    m = numpy_to_image(a, enc, msg_cls=Image)
    assert (m.height, m.width, m.encoding, m.is_bigendian) == (shape[0], shape[1], enc, 0)
    assert m.step == shape[1] * (3 if a.ndim == 3 else 1) * np.dtype(dtype).itemsize
    np.testing.assert_array_equal(image_to_numpy(m), a)


def test_row_padding_bgr_and_big_endian_and_millimetres():
    # 2x2 bgr8 with 2 bytes of row padding: step 8
    data = bytes([1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0])
    m = FakeImage(height=2, width=2, encoding="bgr8", step=8, is_bigendian=0, data=data)
    np.testing.assert_array_equal(to_rgb(m), [[[3, 2, 1], [6, 5, 4]], [[9, 8, 7], [12, 11, 10]]])
    d = np.array([[1500, 0], [65535, 250]], dtype=">u2")
    m = FakeImage(height=2, width=2, encoding="16UC1", step=4, is_bigendian=1, data=d.tobytes())
    np.testing.assert_allclose(depth_to_metres(m), [[1.5, 0.0], [65.535, 0.25]], rtol=1e-6)
    with pytest.raises(ValueError, match="encoding"):
        image_to_numpy(FakeImage(height=1, width=1, encoding="yuv422", step=2, is_bigendian=0, data=b"00"))
    with pytest.raises(ValueError, match="height\\*step"):
        image_to_numpy(FakeImage(height=2, width=2, encoding="rgb8", step=6, is_bigendian=0, data=b"0" * 6))
    with pytest.raises(ValueError, match="dtype"):
        numpy_to_image(np.zeros((2, 2), np.float64), "32FC1", msg_cls=Image)


def test_runtime_modules_do_not_import_rclpy():
    code = (
        "import sys; import bora_policy.runtime.approx_sync, bora_policy.common.image_conv, "
        "bora_policy.runtime.chunk_executor, bora_policy.runtime.checkpoint_loader, "
        "bora_policy.runtime.policy_runner, bora_policy.runtime.observation, bora_policy.graph; "
        "assert 'rclpy' not in sys.modules, 'rclpy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_episode_step_is_the_control_step_of_a_stamp():
    from bora_policy.runtime.observation import episode_step

    # START at t = 100 s, 10 Hz: 100.0 -> 0, 100.1 -> 1, 100.149 -> 1, 100.151 -> 2, 103 -> 30
    assert [episode_step(t, 100.0, 10.0) for t in (100.0, 100.1, 100.149, 100.151, 103.0)] == [0, 1, 1, 2, 30]
    # a 30 Hz camera frame stamped between two control steps maps to the nearest control step
    assert episode_step(100.0 + 7 / 30, 100.0, 10.0) == 2
    assert episode_step(99.9, 100.0, 10.0) == 0  # a stamp before START (clock skew) is step 0
