"""Env contract: observation shapes/dtypes, depth in metres (checked against ray casting), determinism."""

import mujoco
import numpy as np
import pytest

from bora_sim.env import make_env
from bora_sim.experts import ExpertKnobs, ScriptedExpert
from bora_sim.scene import ARM_JOINT_NAMES, CAMERA_NAMES


@pytest.fixture(scope="module")
def env():
    e = make_env("pick_plush_toy", "standard", image_size=65, render=True)
    yield e
    e.close()


def test_observation_shapes_and_dtypes(env):
    obs, info = env.reset(seed=3)
    n_hand = len(env.hand_joint_names)
    assert obs["color"].shape == (3, 65, 65, 3) and obs["color"].dtype == np.uint8
    assert obs["depth"].shape == (3, 65, 65) and obs["depth"].dtype == np.float32
    assert obs["arm_qpos"].shape == (7,) and obs["hand_qpos"].shape == (n_hand,)
    assert obs["instruction"] == "pick up the plush toy"
    assert env.action_space.shape == (7 + n_hand,)
    assert env.state_vector().shape == (7 + n_hand,)
    assert tuple(env.camera_names) == CAMERA_NAMES == ("left", "front", "right")
    assert len(ARM_JOINT_NAMES) == 7
    assert env.observation_space.contains({k: v for k, v in obs.items()})
    assert {"success", "task_progress"} <= set(info)
    assert obs["color"].std() > 5  # not a blank image


def test_depth_is_metres_along_the_optical_axis(env):
    """Rendered depth at a few pixels equals mj_ray distance projected on the camera axis."""
    obs, _ = env.reset(seed=0)
    m, d = env.model, env.data
    for ci, name in enumerate(env.camera_names):
        K = env.camera_info()[name]
        cam = m.camera(name).id
        pos, R = d.cam_xpos[cam], d.cam_xmat[cam].reshape(3, 3)
        for u, v in [(32, 32), (10, 50), (55, 20)]:
            x, y = (u - K["cx"]) / K["fx"], -(v - K["cy"]) / K["fy"]
            dir_cam = np.array([x, y, -1.0])
            dir_w = R @ (dir_cam / np.linalg.norm(dir_cam))
            gid = np.array([-1], dtype=np.int32)
            dist = mujoco.mj_ray(m, d, pos, dir_w, np.array([1, 1, 1, 0, 0, 0], np.uint8), 1, -1, gid)
            expected = dist / np.linalg.norm(dir_cam)
            assert abs(obs["depth"][ci, v, u] - expected) < 0.01 + 0.01 * expected, (name, u, v)


def test_reset_and_rollout_are_deterministic():
    def rollout():
        e = make_env("pick_and_place", "standard", image_size=32, render=True)
        obs, _ = e.reset(seed=11)
        ex = ScriptedExpert(e, knobs=ExpertKnobs(noise=0.5, hesitation=0.5), seed=5)
        states, first_color = [], obs["color"].copy()
        for _ in range(15):
            obs, r, *_ = e.step(ex.act())
            states.append(e.state_vector())
        e.close()
        return first_color, np.array(states), obs["depth"]

    c1, s1, d1 = rollout()
    c2, s2, d2 = rollout()
    assert np.array_equal(c1, c2)
    assert np.array_equal(s1, s2)
    assert np.array_equal(d1, d2)


def test_different_seeds_vary_the_scene():
    e = make_env("open_box", "standard", render=False)
    _, i1 = e.reset(seed=1)
    _, i2 = e.reset(seed=2)
    assert i1["variation"] != i2["variation"]
    assert 0.0 <= i1["variation"]["lid_angle"] <= 0.3  # the box's opening angle is a variation


def test_bad_action_is_rejected():
    e = make_env("press_button", render=False, seed=0)
    with pytest.raises(ValueError, match="action must have shape"):
        e.step(np.zeros(3))
    with pytest.raises(ValueError, match="control_hz"):
        make_env("press_button", control_hz=100)


def test_arm_mesh_changes_the_images_only():
    """The low-poly arm (``arm_mesh="collision"``, opt-in) draws 100k+ fewer triangles; states are
    bit-identical, few pixels move."""

    def rollout(arm_mesh):
        e = make_env("pick_and_place", "standard", image_size=48, render=True, arm_mesh=arm_mesh)
        obs, _ = e.reset(seed=11)
        ex = ScriptedExpert(e, knobs=ExpertKnobs(noise=0.5), seed=5)
        states, colors = [], [obs["color"]]
        for _ in range(12):
            obs, *_ = e.step(ex.act())
            states.append(e.data.qpos.copy())
            colors.append(obs["color"])
        faces = int(e.model.mesh_facenum.sum())
        names = [e.model.mesh(i).name for i in range(e.model.nmesh)]
        e.close()
        return np.array(states), np.array(colors), faces, names

    s_low, c_low, f_low, n_low = rollout("collision")
    s_hi, c_hi, f_hi, n_hi = rollout("detailed")
    assert np.array_equal(s_low, s_hi)  # physics untouched: the visual geoms are massless, contype 0
    assert f_hi - f_low > 100_000
    assert not any(n.endswith("_viz") for n in n_low) and "link6_viz" in n_hi
    changed = np.any(c_low != c_hi, axis=-1).mean()  # the arm's silhouette, where a camera sees it
    psnr = 10 * np.log10(255.0**2 / np.mean((c_low.astype(float) - c_hi.astype(float)) ** 2))
    assert 0.0 < changed < 0.1 and psnr > 25.0, (changed, psnr)
    with pytest.raises(ValueError, match="arm_mesh"):
        make_env("press_button", render=False, arm_mesh="fine")


def test_closing_one_env_leaves_another_envs_images_intact():
    """Regression: a renderer freed its MjrContext while ANOTHER env's GL context was current, which deleted
    that env's meshes and textures (the arm and hand vanished from its images for the rest of its life).
    Closing (or garbage-collecting) one env must not change the pixels another env renders."""

    def rollout(e, steps=8):
        obs, _ = e.reset(seed=3)
        ex = ScriptedExpert(e, seed=1)
        colors = [obs["color"]]
        for _ in range(steps):
            obs, *_ = e.step(ex.act())
            colors.append(obs["color"])
        return np.array(colors)

    ref_env = make_env("press_button", "standard", image_size=32, render=True)
    ref = rollout(ref_env)
    ref_env.close()
    other = make_env("press_button", "standard", image_size=32, render=True)
    other.reset(seed=4)  # creates and uses its renderer
    e = make_env("press_button", "standard", image_size=32, render=True)
    e.reset(seed=3)  # e's GL context is now the current one
    other.close()  # frees other's GL objects: must not touch e's
    assert np.array_equal(rollout(e), ref)
    e.close()


def test_skip_next_images_skips_one_observations_renders_and_nothing_else():
    """``skip_next_images`` drops color/depth from the next observation only; the states, rewards, flags and the
    images rendered afterwards are exactly those of a run that renders every step."""

    def rollout(skip_at):
        e = make_env("pick_and_place", "standard", image_size=48, render=True)
        obs, _ = e.reset(seed=3)
        ex = ScriptedExpert(e, knobs=ExpertKnobs(noise=0.5), seed=2)
        out = []
        for i in range(10):
            if i in skip_at:
                e.skip_next_images()
            obs, r, term, trunc, _ = e.step(ex.act())
            out.append((e.data.qpos.copy(), r, term, trunc, obs))
        e.close()
        return out

    every = rollout(set())
    some = rollout({0, 1, 2, 5, 6})
    for i, ((q0, r0, t0, u0, o0), (q1, r1, t1, u1, o1)) in enumerate(zip(every, some)):
        assert np.array_equal(q0, q1) and (r0, t0, u0) == (r1, t1, u1)
        for key in ("arm_qpos", "hand_qpos", "instruction"):
            assert np.array_equal(o0[key], o1[key])
        if i in {0, 1, 2, 5, 6}:
            assert "color" not in o1 and "depth" not in o1
        else:  # one-shot: the next observation renders again, the same pixels as without any skip
            assert np.array_equal(o0["color"], o1["color"]) and np.array_equal(o0["depth"], o1["depth"])


def test_reset_always_renders_even_after_a_skip_request():
    e = make_env("press_button", "standard", image_size=32)
    e.reset(seed=0)
    e.skip_next_images()
    obs, _ = e.reset(seed=1)
    assert obs["color"].shape == (len(CAMERA_NAMES), 32, 32, 3)
    obs, *_ = e.step(e.last_action)  # the request was cleared by the reset
    assert "color" in obs
    e.close()


@pytest.mark.parametrize("hz, substeps, dt", [(10.0, 50, 0.002), (20.0, 25, 0.002), (30.0, 17, 1 / 510)])
def test_one_control_step_is_one_control_period_of_simulated_time(hz, substeps, dt):
    """Simulated time per step = 1 / control_hz exactly: 2 ms physics steps where they divide the period (10, 20
    Hz: the same model as before), else the nearest count, shortened to fit (30 Hz: 17 x 1/510 s; it was 17 x 2 ms,
    2% ahead of the control clock). The model cache keeps the rates apart."""
    e = make_env("press_button", render=False, seed=0, control_hz=hz)
    e.reset(seed=0)
    assert (e.n_substeps, e.model.opt.timestep) == (substeps, dt)
    t0 = e.data.time
    for _ in range(3):
        e.step(e.state_vector())
    assert e.data.time - t0 == pytest.approx(3 / hz, abs=1e-12)
    assert make_env("press_button", render=False, seed=0, control_hz=10.0).model.opt.timestep == 0.002
