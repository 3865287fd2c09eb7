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


def test_collect_first_episode_fills_a_range_and_refuses_taken_ids(tmp_path, capsys):
    """Two collectors into one dataset in disjoint id ranges (how `bora demo` runs its quality groups at the
    same time) write the same episodes as one after the other; a taken id is refused with one line."""
    from bora_policy.common.episodes import episode_ids, read_episode

    common = ["collect", "--task", "press_button", "--episodes", "1", "--image-size", "32"]
    seq, par = tmp_path / "seq", tmp_path / "par"
    assert main([*common, "--out", str(seq), "--seed", "3"]) == 0
    assert main([*common, "--out", str(seq), "--seed", "7"]) == 0  # appended: id 1
    assert main([*common, "--out", str(par), "--seed", "7", "--first-episode", "1"]) == 0  # the later group first
    assert episode_ids(par) == [1]
    assert main([*common, "--out", str(par), "--seed", "3", "--first-episode", "0"]) == 0
    assert episode_ids(par) == episode_ids(seq) == [0, 1]
    for i in (0, 1):
        a, info_a = read_episode(seq, i)
        b, info_b = read_episode(par, i)
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
        assert info_a == info_b
    capsys.readouterr()
    assert main([*common, "--out", str(par), "--first-episode", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"bora sim collect: --first-episode 1: episode(s) [1] already in {par}"
    assert main([*common, "--out", str(par), "--first-episode", "-1"]) == 2
    assert "--first-episode -1: must be >= 0" in capsys.readouterr().err
    assert episode_ids(par) == [0, 1]


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
