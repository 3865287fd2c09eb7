"""`bora train online` end to end on the simulated robot (slow: collects, trains offline, then online)."""

import json

import pytest

from bora_trainer.cli import main as bora


@pytest.mark.slow
def test_train_online_sim_two_rounds(tmp_path, capsys):
    ds, off, on = tmp_path / "ds", tmp_path / "off", tmp_path / "on"
    assert (
        bora(
            [
                "sim",
                "collect",
                "--task",
                "press_button",
                "--episodes",
                "2",
                "--out",
                str(ds),
                "--image-size",
                "32",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    cfg = tmp_path / "off.yaml"
    cfg.write_text(
        "algo: bora\ntotal_updates: 4\nbatch_size: 4\nk: 8\nckpt_every: 4\n"
        "model: {vlm: paligemma-tiny, expert: {hidden_dim: 32, num_blocks: 1, cond_dim: 16}}\n"
    )
    assert (
        bora(
            [
                "train",
                "offline",
                "--algo",
                "bora",
                "--data",
                str(ds),
                "--config",
                str(cfg),
                "--out",
                str(off),
                "--no-progress",
            ]
        )
        == 0
    )
    ocfg = tmp_path / "on.yaml"
    ocfg.write_text(
        "task: press_button\nepisodes_per_round: 1\nupdates_per_env_step: 0.05\n"
        "online: {batch_size: 8, n_start: 1, residual: {hidden_dims: [16]}}\n"
    )
    assert (
        bora(
            [
                "train",
                "online",
                "--env",
                "sim",
                "--rounds",
                "2",
                "--offline-run",
                str(off),
                "--offline-data",
                str(ds),
                "--out",
                str(on),
                "--config",
                str(ocfg),
                "--no-progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err  # the loop's log lines on stderr (--log-level info, the default)
    assert "bora train online: INFO round 1 done: 1 episodes" in err and "INFO ingested episode" in err
    summary = json.loads((on / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [1, 2] and summary["total_updates"] > 0
    for r in summary["rounds"]:  # what each round really used: exactly episodes_per_round episodes
        assert r["num_episodes"] == 1 and r["steps"] == r["episodes"][0]["steps"] > 0
        assert 0 <= r["intervened_steps"] <= r["steps"]
        assert r["intervened_share"] == pytest.approx(r["intervened_steps"] / r["steps"])
    from bora_policy.models.normalizer import Normalizer
    from bora_policy.models.residual import load_residual_checkpoint

    pol, _ = load_residual_checkpoint(on, Normalizer.load(on / "normalizer.json"))
    assert pol.round == 2  # round 1's residual is folded into the round-2 base
    assert (on / "replay" / "online" / "shard_000001.npz").exists()
