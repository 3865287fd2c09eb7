"""Scripted-demonstration collection (``bora sim collect``, bora_trainer.collect): the episode files, the
state assembled by the processor, and the ``bora sim`` verbs of both packages."""

import subprocess
import sys

import numpy as np
import pytest

from bora_trainer.collect import main


def test_collection_state_is_the_qpos_of_the_model():
    """The simulated robot's raw parts (arm q, hand q), assembled by the processor, are its MuJoCo joint
    positions (built by hand here) at every recorded step."""
    from bora_sim.env import make_env
    from bora_trainer.collect import run_episode

    env = make_env("press_button", render=False)
    obs, _ = env.reset(seed=3)
    d = env.data
    hand_built = np.concatenate([d.qpos[env.arm_qadr], d.qpos[env.hand_qadr]]).astype(np.float32)
    np.testing.assert_array_equal(env.state_vector(), hand_built)
    res = run_episode(env, seed=3)
    np.testing.assert_array_equal(res.arrays["state"][0], hand_built)  # reset(seed=3) is deterministic
    assert res.arrays["state"].dtype == np.float32
    assert res.arrays["state"].shape == (len(res.arrays["action"]), 7 + len(env.hand_joint_names))
    env.close()


def test_collection_imports_no_torch():
    """Building states needs numpy only: collecting demonstrations does not load torch."""
    code = "import sys, bora_trainer.collect; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sim_verbs_of_both_packages_are_listed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "collect" in out and "render" in out and "glove-map" in out


def test_collect_cli_writes_episodes(tmp_path):
    from bora_policy.common.episodes import read_episode, read_meta

    out = tmp_path / "ds"
    assert (
        main(
            [
                "collect",
                "--task",
                "press_button",
                "--episodes",
                "1",
                "--out",
                str(out),
                "--image-size",
                "32",
                "--noise",
                "0.3",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    meta = read_meta(out)
    assert meta.image_size == [32, 32] and meta.camera_names == ["left", "front", "right"]
    arrays, info = read_episode(out, 0)
    T = info["num_steps"]
    assert arrays["color"].shape == (T, 3, 32, 32, 3) and arrays["depth"].dtype == np.float32
    assert arrays["action"].shape == (T, meta.action_dim) == (T, 7 + len(meta.hand_joint_names))
    assert info["source"] == "expert" and info["quality"]["noise"] == 0.3
    assert info["success"] == bool(arrays["done"][-1])
    assert arrays["reward"][-1] == pytest.approx(1.0 - 0.01 if info["success"] else -0.01)


def test_collect_operator_mode_marks_interventions(tmp_path):
    from bora_policy.common.episodes import read_episode

    out = tmp_path / "ds"
    assert (
        main(
            [
                "collect",
                "--task",
                "pick_plush_toy",
                "--episodes",
                "1",
                "--out",
                str(out),
                "--image-size",
                "24",
                "--mode",
                "operator",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    arrays, info = read_episode(out, 0, load_images=False)
    assert info["source"] == "operator"
    steps = arrays["is_intervention"].nonzero()[0]
    if info["interventions"]:
        assert len(steps) > 0 and np.all(arrays["beta"][steps] > 0)
        assert np.all(arrays["beta"][~arrays["is_intervention"]] == 0)
    assert "policy_action" in arrays
