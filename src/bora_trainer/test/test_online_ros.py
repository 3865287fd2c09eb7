"""`bora train online --env ros` end to end: the online phase through the ROS 2 graph (slow, ~2 min).

Collects 2 scripted demos, trains a tiny BORA offline run, then runs 2 rounds x 1 episode through
``bora up --sim --with trainer`` (bridge with the scripted operator, sync, policy, teleop, trainer node
recording live over DDS). Checks: the trainer ingested exactly one episode into each round from its own
rosbag2 recording (the bridge waits at the round boundary: the trainer's episode gate), and the summary
reports each round's episodes and intervened steps; the policy node hot-reloaded the trainer's
checkpoints; the final stack holds one frozen residual (round 1) + the round-2 residual + the online
critic; ``bora eval`` runs the resulting run.
"""

import json

import pytest
import yaml

from bora_trainer.cli import main as bora


@pytest.mark.slow
def test_train_online_through_ros_two_rounds(tmp_path):
    ds, off, on = tmp_path / "ds", tmp_path / "off", tmp_path / "on"
    assert bora(["sim", "collect", "--task", "press_button", "--episodes", "2", "--out", str(ds),
                 "--image-size", "32", "--seed", "0"]) == 0  # fmt: skip
    cfg = tmp_path / "off.yaml"
    cfg.write_text(
        "algo: bora\ntotal_updates: 4\nbatch_size: 4\nk: 8\nckpt_every: 4\n"
        "model: {vlm: paligemma-tiny, expert: {hidden_dim: 32, num_blocks: 1, cond_dim: 16}}\n"
    )
    assert bora(["train", "offline", "--algo", "bora", "--data", str(ds), "--config", str(cfg),
                 "--out", str(off), "--no-progress"]) == 0  # fmt: skip
    ocfg = tmp_path / "on.yaml"
    ocfg.write_text(
        "task: press_button\nepisodes_per_round: 1\nupdates_per_env_step: 0.1\n"
        "online: {batch_size: 8, n_start: 1, max_updates: 8, residual: {hidden_dims: [16]}}\n"
    )
    assert bora(["train", "online", "--env", "ros", "--rounds", "2", "--offline-run", str(off),
                 "--offline-data", str(ds), "--out", str(on), "--config", str(ocfg), "--no-progress",
                 "--timeout", "400"]) == 0  # fmt: skip
    ledger = json.loads((on / "trainer" / "ingested.json").read_text())
    assert sorted(e["round"] for e in ledger.values()) == [1, 2]  # exactly episodes_per_round per round
    summary = json.loads((on / "summary.json").read_text())
    assert [r["episodes"] for r in summary["per_round"]] == [1, 1]
    assert all(0 <= r["intervened_steps"] <= r["steps"] for r in summary["per_round"])
    assert all(e["rows"] > 0 and e["outcome"] in ("success", "failure", "timeout") for e in ledger.values())
    # the trainer's live recording: one closed bag per round (rolled at round 2's start), each episode in its round's
    bags = sorted((on / "recordings").iterdir())
    assert [b.name.endswith("_r02") for b in bags] == [False, True], bags
    assert all((b / "metadata.yaml").exists() for b in bags)
    conv_dir = on / "trainer" / "converted" / "transitions"
    conv = [json.loads(f.read_text()) for f in sorted(conv_dir.glob("episode_*.json"))]
    by_round = {int(e["source_episode_id"]): e["bags"] for e in conv if e.get("outcome")}
    assert by_round == {1: [str(bags[0])], 2: [str(bags[1])]}, by_round
    log = (on / "graph.log").read_text()
    assert "now in use" in log, "the policy node never hot-reloaded a trainer checkpoint"
    assert "waits for the trainer" in log, "the bridge never waited at a round boundary"
    assert "opening the round anyway" not in log, "the policy never confirmed round 2's residual"
    assert "Traceback" not in log
    ck = on / "checkpoints" / (on / "latest").read_text().strip()
    files = {p.name for p in ck.iterdir()}
    assert {"residual_1.safetensors", "residual_2.safetensors", "critic.safetensors"} <= files
    conf = yaml.safe_load((on / "config.yaml").read_text())
    assert conf["through_ros"] is True and conf["online_run"]["rounds"] == 2
    out = tmp_path / "eval.json"
    assert bora(["eval", "--run", str(on), "--trials", "1", "--out", str(out), "--threads", "1"]) == 0
    res = json.loads(out.read_text())
    assert res["trials"] == 1 and res["method"] == "BORA-Full"
