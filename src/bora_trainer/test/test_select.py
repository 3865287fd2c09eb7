"""``bora select``: every checkpoint of a run rolled out on tuning seeds, the best deployed as RUN/policy.

Expectations are independent of the selection code: the choice rule on hand-made candidate lists; each
candidate's exported weights against the state dicts saved into its checkpoint; each candidate's tuning
successes against a separate ``bora eval`` of that exported policy on the same seeds; the deployed policy
against the chosen checkpoint's weights."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from bora_trainer import evaluate, select
from bora_trainer.checkpoint import save_checkpoint, write_run_files

torch.set_num_threads(1)
TASK = "press_button"
SEL = ["--task", TASK, "--trials", "2", "--seed0", "200000", "--max-steps", "6", "--replan-steps", "3",
       "--image-size", "32", "--threads", "1", "--no-progress"]


def test_choose_most_successes_ties_go_to_the_later_checkpoint():
    c = [{"step": 100, "successes": 3}, {"step": 200, "successes": 5}, {"step": 300, "successes": 4}]
    assert select.choose(c)["step"] == 200
    tie = [{"step": 100, "successes": 5}, {"step": 200, "successes": 2}, {"step": 300, "successes": 5}]
    assert select.choose(tie)["step"] == 300
    assert select.choose([{"step": 500, "successes": 0}])["step"] == 500
    with pytest.raises(select.SelectError):
        select.choose([])


def _perturbed(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (v + 0.05 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v.clone()
            for k, v in state.items()}


@pytest.fixture()
def run(tmp_path):
    """An exported tiny run (policy + critic) with two checkpoints of different weights (steps 100, 200)."""
    from bora_policy.models.critic import ChunkCritic
    from bora_policy.models.export import export_policy
    from bora_policy.models.normalizer import Normalizer
    from bora_policy.models.vla import VLAConfig, VLAPolicy
    from bora_sim.hand import get_hand
    from bora_sim.scene import ARM_HOME

    torch.manual_seed(0)
    home = np.concatenate([ARM_HOME, np.asarray(get_hand("shadow").posture("open"), dtype=np.float64)])
    d = home.shape[0]
    cfg = VLAConfig(action_dim=d, state_dim=d, chunk_size=4, expert_hidden_dim=16, expert_num_blocks=1,
                    expert_cond_dim=8, image_size=32, n_cameras=3)
    norm = Normalizer(home, np.full(d, 0.5), home, np.full(d, 0.05))
    policy = VLAPolicy(cfg, norm)
    critic = ChunkCritic(policy.z_dim, d, 4, hidden_dim=16, pos_dim=4)
    r = tmp_path / "run"
    write_run_files(r, config={"algo": "cp-bc", "k": 4}, normalizer=norm.to_dict())
    saved = {}
    for step, seed in ((100, 1), (200, 2)):
        mods = {"vlm": _perturbed(policy.vlm.state_dict(), seed),
                "expert": _perturbed(policy.expert.state_dict(), seed + 10),
                "critic": _perturbed(critic.state_dict(), seed + 20)}
        save_checkpoint(r, step, mods, keep_last=0)
        saved[step] = mods
    export_policy(r, policy, critic)  # what the training exported (here: neither checkpoint)
    return r, saved


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k].float(), b[k].float()) for k in a)


def test_every_candidate_is_its_checkpoint_and_the_chosen_one_is_deployed(run, tmp_path):
    from bora_policy.models.critic import load_critic
    from bora_policy.models.vla import VLAPolicy

    r, saved = run
    assert select.main(["--run", str(r), *SEL]) == 0
    out = json.loads((r / select.SELECTION).read_text())
    assert [c["step"] for c in out["candidates"]] == [100, 200] and out["last_step"] == 200
    assert out["seed0"] == 200000 and out["trials"] == 2
    for c in out["candidates"]:
        cand = r / select.SELECT_DIR / c["checkpoint"]
        p = VLAPolicy.load(cand / "policy")
        assert _same(p.vlm.state_dict(), saved[c["step"]]["vlm"])
        assert _same(p.expert.state_dict(), saved[c["step"]]["expert"])
        assert _same(load_critic(cand / "critic").state_dict(), saved[c["step"]]["critic"])
        # the candidate's tuning successes = an independent `bora eval` of that policy on the same seeds
        dst = tmp_path / f"eval_{c['step']}.json"
        assert evaluate.main(["--run", str(cand / "policy"), "--method", "x", "--out", str(dst), "--task", TASK,
                              "--trials", "2", "--seed0", "200000", "--max-steps", "6", "--replan-steps", "3",
                              "--image-size", "32", "--no-values", "--no-progress"]) == 0
        ev = json.loads(dst.read_text())
        assert c["successes"] == ev["successes"] and c["trials"] == 2
        assert [e["seed"] for e in ev["episodes"]] == [200000, 200001]
    best = max(out["candidates"], key=lambda c: (c["successes"], c["step"]))
    assert out["chosen_step"] == best["step"]
    deployed = VLAPolicy.load(r / "policy")
    assert _same(deployed.vlm.state_dict(), saved[best["step"]]["vlm"])
    assert _same(load_critic(r / "critic").state_dict(), saved[best["step"]]["critic"])
    assert select.deployed_checkpoint(r) == r / "checkpoints" / f"step_{best['step']:07d}"
    # a second call reuses the candidates' results (same settings): nothing is rolled out again
    before = {p.name: p.stat().st_mtime_ns for p in (r / select.SELECT_DIR).glob("*.json")}
    assert select.main(["--run", str(r), *SEL]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (r / select.SELECT_DIR).glob("*.json")} == before
    # ... but not for a checkpoint whose content is not the one it was rolled out (a retrained run, same path)
    res_100 = r / select.SELECT_DIR / "step_0000100.json"
    res_100.write_text(json.dumps({**json.loads(res_100.read_text()), "checkpoint_id": "0" * 64}))
    assert select.main(["--run", str(r), *SEL]) == 0
    meta = r / "checkpoints" / "step_0000100" / "meta.json"
    assert json.loads(res_100.read_text())["checkpoint_id"] == hashlib.sha256(meta.read_bytes()).hexdigest()
    assert (r / select.SELECT_DIR / "step_0000200.json").stat().st_mtime_ns == before["step_0000200.json"]


SETTINGS = {"task": TASK, "objects": "standard", "trials": 2, "seed0": 200000, "replan_steps": 3, "control_hz": 10.0,
            "max_steps": 6, "image_size": 32}  # what SEL selects with, as `bora select` records it


def _tuning_results(r, successes: dict[int, int]) -> None:
    """Candidate results as a finished selection with SEL's settings left them (reused: no rollout), so the winner
    is the one given here."""
    for step, s in successes.items():
        ck = r / "checkpoints" / f"step_{step:07d}"
        (r / select.SELECT_DIR).mkdir(exist_ok=True)
        ck_id = hashlib.sha256((ck / "meta.json").read_bytes()).hexdigest()
        (r / select.SELECT_DIR / f"{ck.name}.json").write_text(json.dumps(
            {"successes": s, "trials": 2, "select_settings": SETTINGS, "checkpoint": str(ck), "checkpoint_id": ck_id}))


def test_a_refitted_critic_is_kept_and_deployed_only_with_the_checkpoint_it_was_fitted_to(run):
    """critic_refit_updates: RUN/critic (the training's refit, fitted to the LAST checkpoint's VLM) is not lost to the
    selection: kept in select/<last>/refit_critic, deployed when the last checkpoint wins; when an earlier one wins
    RUN/critic is that checkpoint's critic and selection.json says so."""
    from bora_policy.models.critic import load_critic
    from bora_policy.models.vla import VLAPolicy

    r, saved = run
    write_run_files(r, config={"algo": "bora", "k": 4, "critic_refit_updates": 50})
    refit = load_critic(r / "critic").state_dict()  # the fixture's export: neither checkpoint's critic
    assert not _same(refit, saved[200]["critic"])
    _tuning_results(r, {100: 2, 200: 1})  # the earlier checkpoint wins
    assert select.main(["--run", str(r), *SEL]) == 0
    kept = r / select.SELECT_DIR / "step_0000200" / select.REFIT_CRITIC
    assert _same(load_critic(kept).state_dict(), refit)
    assert _same(load_critic(r / "critic").state_dict(), saved[100]["critic"])
    assert _same(VLAPolicy.load(r / "policy").vlm.state_dict(), saved[100]["vlm"])
    out = json.loads((r / select.SELECTION).read_text())
    assert (out["chosen_step"], out["critic"]) == (100, "checkpoint")
    assert out["refit_critic"] == "select/step_0000200/refit_critic"
    # selected again, the last checkpoint wins: its refitted critic is deployed (RUN/critic now holds step 100's
    # critic, which the selection deployed: not taken for the training's export)
    _tuning_results(r, {100: 1, 200: 2})
    assert select.main(["--run", str(r), *SEL]) == 0
    assert _same(load_critic(r / "critic").state_dict(), refit) and _same(load_critic(kept).state_dict(), refit)
    assert _same(VLAPolicy.load(r / "policy").vlm.state_dict(), saved[200]["vlm"])
    out = json.loads((r / select.SELECTION).read_text())
    assert (out["chosen_step"], out["critic"]) == (200, "refit") and "refit_critic" not in out
    # a run without the refit: the winner's checkpoint critic, as before
    write_run_files(r, config={"algo": "bora", "k": 4})
    assert select.main(["--run", str(r), *SEL]) == 0
    assert _same(load_critic(r / "critic").state_dict(), saved[200]["critic"])
    assert json.loads((r / select.SELECTION).read_text())["critic"] == "checkpoint"


def test_deployed_checkpoint_without_selection_is_the_latest_and_a_bad_choice_is_an_error(run):
    r, _ = run
    assert select.deployed_checkpoint(r) == r / "checkpoints" / "step_0000200"
    (r / select.SELECTION).write_text(json.dumps({"chosen_step": 150}))
    with pytest.raises(select.SelectError, match="step 150"):
        select.deployed_checkpoint(r)


def test_errors_are_one_line(tmp_path, capsys):
    assert select.main(["--run", str(tmp_path), *SEL]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bora select: --run") and "no complete checkpoints" in err and "\n" not in err
    (tmp_path / "checkpoints").mkdir()
    save_checkpoint(tmp_path, 10, {"vlm": {"w": torch.zeros(1)}, "expert": {"w": torch.zeros(1)}})
    assert select.main(["--run", str(tmp_path), *SEL]) == 2
    assert "no exported policy/" in capsys.readouterr().err


def test_the_online_stage_inherits_the_deployed_checkpoint(tmp_path):
    """FrozenVLA (online/vla.py: the frozen base and the inherited critic) loads the checkpoint RUN/policy
    came from: the latest without a selection, the chosen one with it; a policy_ema run's average."""
    from bora_policy.models.normalizer import Normalizer
    from bora_sim.hand import get_hand
    from bora_sim.scene import ARM_HOME
    from bora_trainer.algorithms.bora.config import OfflineConfig
    from bora_trainer.config_io import load_config
    from bora_trainer.offline.build import build_learner
    from bora_trainer.online.vla import FrozenVLA

    torch.manual_seed(0)
    home = np.concatenate([ARM_HOME, np.asarray(get_hand("shadow").posture("open"), dtype=np.float64)])
    d = home.shape[0]
    raw = {"algo": "bora", "k": 4, "batch_size": 2,
           "model": {"vlm": "paligemma-tiny", "expert": {"hidden_dim": 16, "num_blocks": 1, "cond_dim": 8}}}
    norm = Normalizer(home, np.full(d, 0.5), home, np.full(d, 0.05))
    learner = build_learner(load_config(OfflineConfig, raw), d, d, torch.device("cpu"))
    r = tmp_path / "off"
    write_run_files(r, config=raw, normalizer=norm.to_dict())
    base = {k: m.state_dict() for k, m in learner.modules_to_save().items()}
    saved = {step: {k: _perturbed(v, 10 * step + i) for i, (k, v) in enumerate(base.items())} for step in (1, 2)}
    for step, mods in saved.items():
        save_checkpoint(r, step, mods, keep_last=0, extra={"normalizer_version": norm.version})

    def loaded(vla):
        return {k: m.state_dict() for k, m in vla.learner.modules_to_save().items()}

    vla = FrozenVLA(r, torch.device("cpu"))
    assert vla.step == 2 and _same(loaded(vla)["critic"], saved[2]["critic"])
    (r / select.SELECTION).write_text(json.dumps({"chosen_step": 1}))
    vla = FrozenVLA(r, torch.device("cpu"))
    assert vla.step == 1
    for k in ("vlm", "expert", "critic"):
        assert _same(loaded(vla)[k], saved[1][k]), k
    # a run trained with policy_ema deploys (and so the online stage freezes) the weight average
    (r / select.SELECTION).unlink()
    ema = _perturbed(base["vlm"], 99)
    save_checkpoint(r, 3, {**saved[2], "vlm_ema": ema}, keep_last=0, extra={"normalizer_version": norm.version})
    assert _same(loaded(FrozenVLA(r, torch.device("cpu")))["vlm"], ema)
    # a run initialised from a selected run (OfflineConfig.init_from) starts from the chosen checkpoint too
    from bora_trainer.offline.build import init_modules_from

    (r / select.SELECTION).write_text(json.dumps({"chosen_step": 1}))
    fresh = build_learner(load_config(OfflineConfig, raw), d, d, torch.device("cpu"))
    init_modules_from(fresh, r)
    for k in ("vlm", "expert", "critic"):
        assert _same(fresh.modules_to_save()[k].state_dict(), saved[1][k]), k
