"""ObservationProcessor / ActionProcessor: hand-computed state vectors, normalisation and image layouts."""

import numpy as np
import pytest
import torch

from bora_policy.common.state import ARM_DOF, split_state, state_names, state_of, state_vector
from bora_policy.models.normalizer import Normalizer
from bora_policy.runtime.processor import ActionProcessor, ObservationProcessor, ProcessorConfig

ARM = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7]
HAND = [1.0, 2.0]
# state mean 0.1 everywhere, std 0.5 (eps 1e-6 below); actions: mean 1, std 2 per dim
NORM = Normalizer(np.full(9, 0.1), np.full(9, 0.5), np.ones(9), np.full(9, 2.0), eps=1e-6)


def test_state_vector_layout_is_arm_then_hand_float32():
    s = state_vector(ARM, HAND)
    assert s.dtype == np.float32 and s.shape == (9,)
    np.testing.assert_array_equal(s, np.float32([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, 1.0, 2.0]))
    arm, hand = split_state(s)
    np.testing.assert_array_equal(arm, np.float32(ARM))
    np.testing.assert_array_equal(hand, np.float32(HAND))
    assert ARM_DOF == 7
    assert state_names(["a1"], ["h1", "h2"]) == ["a1", "h1", "h2"]
    d = {"arm_qpos": np.float32(ARM), "hand_qpos": np.float32(HAND)}
    np.testing.assert_array_equal(state_of(d), s)
    with pytest.raises(KeyError, match="hand_qpos"):
        state_of({"arm_qpos": ARM})
    with pytest.raises(ValueError, match="arm positions"):
        state_vector([[0.0]], HAND)


def test_normalised_state_hand_computed_and_round_trip():
    proc = ObservationProcessor(NORM)
    assert proc.state_dim == 9 and proc.hand_dim == 2 and proc.version == NORM.version
    s = proc.state(ARM, HAND)
    # (x - 0.1) / 0.500001: 0.1 -> 0, -0.2 -> -0.6, 0.7 -> 1.2, 1.0 -> 1.8, 2.0 -> 3.8
    want = np.array([0.0, -0.6, 0.4, -1.0, 0.8, -1.4, 1.2, 1.8, 3.8])
    np.testing.assert_allclose(proc.normalize_state(s), want, atol=1e-5)
    t = proc.normalize_state_tensor(s)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
    np.testing.assert_allclose(t.numpy(), want, atol=1e-5)
    np.testing.assert_allclose(proc.denormalize_state(t).numpy(), s, atol=1e-6)
    np.testing.assert_allclose(proc.denormalize_state(proc.normalize_state(s)), s, atol=1e-6)
    # batched [B, S]
    np.testing.assert_allclose(proc.normalize_state_tensor(np.stack([s, s])).numpy(), [want, want], atol=1e-5)


def test_actions_normalise_denormalise_round_trip_and_clip():
    ap = ActionProcessor(NORM)
    a = np.array([1.0, 3.0, -1.0, 5.0, 1.0, 1.0, 21.0, 1.0, 1.0])
    # (a - 1) / 2.000001
    want = np.array([0.0, 1.0, -1.0, 2.0, 0.0, 0.0, 10.0, 0.0, 0.0])
    np.testing.assert_allclose(ap.normalize(a), want, atol=1e-5)
    np.testing.assert_allclose(ap.normalize(a, clip=5.0), np.clip(want, -5, 5), atol=1e-5)
    np.testing.assert_allclose(ap.denormalize(ap.normalize(a)), a, atol=1e-5)
    chunk = torch.tensor(np.stack([want, -want]), dtype=torch.float32)[None]  # [1, k=2, A]
    phys = ap.denormalize(chunk)
    assert phys.shape == (1, 2, 9)
    np.testing.assert_allclose(phys[0, 0].numpy(), a, atol=1e-4)
    np.testing.assert_allclose(phys[0, 1].numpy(), 2.0 - a, atol=1e-4)  # mean 1 - (a - 1)
    clipped = ActionProcessor(NORM, ProcessorConfig(action_clip=2.0)).normalize(torch.tensor(a))
    assert float(clipped.max()) == pytest.approx(2.0) and ap.version == NORM.version


def test_images_stacked_in_camera_order_and_converted():
    cfg = ProcessorConfig(camera_names=("left", "front", "right"))
    proc = ObservationProcessor(NORM, cfg)
    imgs = {n: np.full((2, 3, 3), v, np.uint8) for n, v in (("front", 51), ("right", 255), ("left", 0))}
    imgs["front"][1, 2] = (10, 20, 30)  # row 1, column 2: R, G, B
    color = proc.stack_cameras(imgs)
    assert color.shape == (3, 2, 3, 3) and color.dtype == np.uint8
    assert [int(color[i, 0, 0, 0]) for i in range(3)] == [0, 51, 255]  # left, front, right
    t = proc.images(color)
    assert t.shape == (3, 3, 2, 3) and t.dtype == torch.uint8  # [n_cam, 3, H, W]
    assert [int(t[1, c, 1, 2]) for c in range(3)] == [10, 20, 30]
    f = proc.images_float(color[None])  # batch [1, n_cam, 3, H, W]
    assert f.shape == (1, 3, 3, 2, 3) and f.dtype == torch.float32
    assert float(f[0, 1, 0, 0, 0]) == pytest.approx(0.2) and float(f[0, 2].min()) == 1.0
    with pytest.raises(ValueError, match="camera"):
        proc.stack_cameras({"left": imgs["left"]})
    with pytest.raises(ValueError, match="2 cameras, expected 3"):
        proc.check_color(color[:2])
    with pytest.raises(ValueError, match="uint8"):
        proc.check_color(color.astype(np.float32))


def test_call_builds_everything_and_checks_dims():
    proc = ObservationProcessor(NORM, ProcessorConfig(camera_names=("a", "b")))
    out = proc(ARM, HAND, [np.zeros((4, 5, 3), np.uint8), np.ones((4, 5, 3), np.uint8)])
    np.testing.assert_array_equal(out.state, state_vector(ARM, HAND))
    np.testing.assert_allclose(out.state_norm.numpy(), proc.normalize_state(out.state), atol=1e-6)
    assert out.images.shape == (2, 3, 4, 5) and int(out.images[1].min()) == 1
    with pytest.raises(ValueError, match="hand positions have 3 joints, expected 2"):
        proc.state(ARM, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="arm positions have 6 joints, expected 7"):
        proc.state(ARM[:6], HAND)
    with pytest.raises(ValueError, match="state_dim=9"):
        proc.check_state(np.zeros(8))
    with pytest.raises(ValueError, match="state_dim"):
        ObservationProcessor(NORM, ProcessorConfig(hand_dim=5))
    with pytest.raises(RuntimeError, match="normaliser"):
        ObservationProcessor().normalize_state(np.zeros(9))


def test_processor_matches_the_hand_built_vector_of_a_ros_observation():
    """The policy node's path (bora_msgs/Observation -> observation_arrays) and the processor agree with
    the vector written out by hand, to the bit."""
    from sensor_msgs.msg import Image

    from bora_msgs.msg import Observation
    from bora_policy.common.image_conv import numpy_to_image
    from bora_policy.runtime.observation import observation_arrays

    msg = Observation()
    left = np.zeros((2, 3, 3), np.uint8)
    left[0, 1] = (10, 20, 30)  # RGB
    front = np.full((2, 3, 3), 7, np.uint8)
    front[1, 2] = (3, 2, 1)  # stored as bgr8: RGB (1, 2, 3)
    msg.camera_names = ["left", "front"]
    msg.color = [numpy_to_image(left, "rgb8", msg_cls=Image), numpy_to_image(front, "bgr8", msg_cls=Image)]
    msg.arm.name = [f"fr3_joint{i}" for i in range(1, 8)]
    msg.arm.position = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7]
    msg.hand.name = ["h1", "h2"]
    msg.hand.position = [1.0, 2.0]
    arr = observation_arrays(msg)
    hand_built = np.array([0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, 1.0, 2.0], dtype=np.float32)
    assert arr.state.dtype == np.float32
    np.testing.assert_array_equal(arr.state, hand_built)
    np.testing.assert_array_equal(ObservationProcessor(NORM).state(msg.arm.position, msg.hand.position), hand_built)
    assert arr.joint_names == [f"fr3_joint{i}" for i in range(1, 8)] + ["h1", "h2"]
    assert arr.color.shape == (2, 2, 3, 3) and arr.color.dtype == np.uint8  # [n_cam, H, W, 3] in camera order
    assert arr.color[0, 0, 1].tolist() == [10, 20, 30] and arr.color[1, 1, 2].tolist() == [1, 2, 3]
    msg.camera_names = ["left"]
    with pytest.raises(ValueError, match="2 colour images for 1 camera_names"):
        observation_arrays(msg)



def test_same_numbers_as_the_expressions_it_replaces():
    """Bit-identical to the code the call sites used before the processor (FrozenVLA.act, PolicyRunner,
    evaluate_vec, the sim dict concatenations, online norm_actions)."""
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (2, 3, 6, 5, 3), dtype=np.uint8)  # [B, n_cam, H, W, 3]
    arm, hand = rng.normal(size=7).astype(np.float32), rng.normal(size=2).astype(np.float32)
    state = np.stack([np.concatenate([arm, hand]).astype(np.float32)] * 2)
    proc = ObservationProcessor(NORM)
    old_images = torch.from_numpy(np.ascontiguousarray(color)).permute(0, 1, 4, 2, 3).float() / 255.0
    assert torch.equal(proc.images_float(color), old_images)
    assert torch.equal(proc.images(color), torch.from_numpy(color).permute(0, 1, 4, 2, 3))
    assert torch.equal(proc.images(color[0])[None], torch.from_numpy(color[0]).permute(0, 3, 1, 2)[None])
    old_sn = NORM.normalize_state(torch.from_numpy(np.asarray(state, np.float32)))
    assert torch.equal(proc.normalize_state_tensor(state), old_sn)
    obs = {"arm_qpos": arm, "hand_qpos": hand}
    np.testing.assert_array_equal(proc.state_of(obs), np.concatenate([arm, hand]).astype(np.float32))
    acts = rng.normal(1.0, 30.0, (10, 9))
    old = np.clip(NORM.normalize_action(acts), -5.0, 5.0)
    np.testing.assert_array_equal(ActionProcessor(NORM).normalize(acts, 5.0), old)
    np.testing.assert_array_equal(ActionProcessor(NORM).normalize(acts, 0.0), NORM.normalize_action(acts))
