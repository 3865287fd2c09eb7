"""Offline trainer: BC overfit, CLI + checkpoints + resume, the gate (actor skipped, critic stepped),
the two-stage switch inside the trainer, and each Table 1 algorithm running end to end."""

import json

import pytest
import torch

from bora_trainer.algorithms import registry
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.checkpoint import latest_checkpoint, load_checkpoint
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import write_synthetic_dataset
from bora_trainer.offline.cli import main
from bora_trainer.offline.trainer import OfflineTrainer

DEMO = "config/offline_demo.yaml"


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    torch.set_num_threads(1)
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("ds") / "ds", n_episodes=2, T=10, image_size=(16, 16)
    )


def _cfg(repo_root, **over):
    base = dict(total_updates=20, batch_size=8, ckpt_every=10_000, log_every=5)
    base.update(over)
    return load_config(OfflineConfig, repo_root / DEMO, overrides=base)


@pytest.fixture(scope="module")
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[3]


def _action_mse(tr) -> float:
    """Deterministic chunk (all sampling noise 0) vs the demonstrated chunk, normalised units, masked."""
    tr.learner.eval()
    errs = []
    with torch.no_grad():
        for b in torch.utils.data.DataLoader(tr.dataset, batch_size=20):
            b = tr.prepare(b)
            z = tr.learner.encode(b["images"], b["instruction"], b["state_n"])
            a = tr.learner.expert.sample(z, b["state_n"], noise_scale=0.0)
            m = b["mask"]
            errs.append((((a - b["actions_n"]) ** 2).mean(-1) * m).sum() / m.sum())
    return float(torch.stack(errs).mean())


def test_cp_bc_overfits_tiny_dataset(ds, repo_root, tmp_path):
    torch.manual_seed(0)
    cfg = _cfg(repo_root, algo="cp-bc", total_updates=60, expert_lr=1e-3, vlm_lr=3e-4)
    tr = OfflineTrainer(cfg, ds, tmp_path / "run", progress=False)
    before = _action_mse(tr)
    tr.train()
    after = _action_mse(tr)
    # measured: 1.04 -> 0.145 after 60 updates; require at least a 3x reduction
    assert after < before / 3, (before, after)


def test_cli_checkpoints_and_resume(ds, repo_root, tmp_path):
    run = tmp_path / "run"
    cfg = repo_root / DEMO
    def cli(updates, *extra):
        args = ["--algo", "cp-bc", "--data", str(ds), "--config", str(cfg), "--out", str(run)]
        return main([*args, "--updates", str(updates), *extra, "--no-progress"])

    assert cli(4) == 0
    assert (run / "config.yaml").exists() and list((run / "tb").glob("events.out.tfevents*"))
    assert json.loads((run / "normalizer.json").read_text())
    ck = load_checkpoint(run)
    assert ck["step"] == 4 and {"vlm", "expert"} <= set(ck["modules"])
    assert ck["trainer_state"]["actor_opt"]["state"]
    # resume: continues at step 4 up to 6 with the optimiser state restored
    assert cli(6, "--resume") == 0
    ck2 = load_checkpoint(run)
    assert ck2["step"] == 6 and latest_checkpoint(run).name == "step_0000006"
    adam_steps = {int(s["step"]) for s in ck2["trainer_state"]["actor_opt"]["state"].values()}
    assert adam_steps == {6}  # 4 before the restart + 2 after: the Adam moments were resumed
    # a fresh run into that directory (no --resume) is refused in one line and leaves the run as it was
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(SystemExit, match=r"--out .*run: already holds a checkpoint \(step_0000006\) of another "
                                         r"run; continue it with --resume"):
        cli(2)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ckpts
    assert load_checkpoint(run)["step"] == 6
    with pytest.raises(RuntimeError, match="--resume"):
        main(
            [
                "--data",
                str(ds),
                "--config",
                str(cfg),
                "--out",
                str(tmp_path / "empty"),
                "--resume",
                "--no-progress",
            ]
        )


def test_registry_hook_for_other_objectives():
    assert {"diffusion-bc", "cp-bc", "cp-decoupled-critic", "bora"} <= set(registry.offline_names())
    other = type("Other", (registry.offline_learner("cp-bc"),), {})
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.Method("bora", "Other", offline=other))
    with pytest.raises(KeyError, match="unknown offline algorithm"):
        registry.offline_learner("nope")
    with pytest.raises(SystemExit):  # argparse: invalid choice
        main(["--algo", "nope", "--data", "x", "--out", "y"])


def _one_batch(tr):
    return tr.prepare(next(iter(tr.loader)))


def _split_params(tr):
    named = dict(tr.learner.named_parameters())
    actor = {n for n in named if n.startswith(("vlm.", "expert."))}
    critic = {n for n, p in named.items() if n.startswith("critic.") and p.requires_grad}
    return named, actor, critic


@pytest.mark.parametrize("margin,open_", [(1e9, False), (-1e9, True)])
def test_gate_skips_actor_step_but_not_critic_step(ds, repo_root, tmp_path, margin, open_):
    torch.manual_seed(0)
    cfg = _cfg(repo_root, algo="bora", ppo_start_step=0, gate_margin=margin, gate_scope="batch")
    tr = OfflineTrainer(cfg, ds, tmp_path / "run", progress=False)
    named, actor, critic = _split_params(tr)
    before = {n: p.detach().clone() for n, p in named.items()}
    m = tr.train_step(_one_batch(tr))
    assert m["train/stage"] == 2.0 and m["gate/open"] == float(open_)
    changed = {n for n, p in named.items() if not torch.equal(p.detach(), before[n])}
    assert critic <= changed  # the critic step is never skipped
    if open_:
        assert len(changed & actor) > 0.9 * len(actor)
    else:
        assert not changed & actor  # closed gate: no actor update at all (not even weight decay)


def test_critic_loss_does_not_reach_the_actor(ds, repo_root, tmp_path):
    tr = OfflineTrainer(
        _cfg(repo_root, algo="bora", ppo_start_step=0, gate_margin=-1e9), ds, tmp_path / "run", progress=False
    )
    out = tr.learner(_one_batch(tr), 0)
    out["critic_loss"].backward()
    named, actor, critic = _split_params(tr)
    assert all(named[n].grad is None for n in actor)
    assert any(named[n].grad is not None and named[n].grad.abs().sum() > 0 for n in critic)
    tr.learner.zero_grad(set_to_none=True)
    out = tr.learner(_one_batch(tr), 0)
    out["actor_loss"].backward()  # the VLM is trained through the actor loss (BC + PPO)
    assert all(named[n].grad is None for n in critic)
    assert any(
        named[n].grad is not None and named[n].grad.abs().sum() > 0 for n in actor if n.startswith("vlm.")
    )


def test_two_stage_switch_in_trainer(ds, repo_root, tmp_path):
    cfg = _cfg(repo_root, algo="bora", ppo_start_step=2, gate_margin=-1e9, ppo_ref_refresh=1000)
    tr = OfflineTrainer(cfg, ds, tmp_path / "run", progress=False)
    ms = [tr.train_step(_one_batch(tr)) for _ in range(4)]
    assert [m["train/stage"] for m in ms] == [1.0, 1.0, 2.0, 2.0]
    assert "loss/ppo" not in ms[1] and "loss/ppo" in ms[2]
    # pi_old is refreshed at the switch: at the first PPO update the ratio is exactly 1
    assert ms[2]["ppo/ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert ms[3]["ppo/ratio_mean"] != pytest.approx(1.0, abs=1e-5)
    # default schedule: PPO from 40/70 of the run
    assert OfflineConfig(total_updates=70_000).ppo_start == 40_000
    assert OfflineConfig(total_updates=700).ppo_start == 400


@pytest.mark.parametrize("algo", ["diffusion-bc", "cp-decoupled-critic"])
def test_other_table1_algorithms_run(ds, repo_root, tmp_path, algo):
    tr = OfflineTrainer(
        _cfg(repo_root, algo=algo, total_updates=4, ppo_start_step=2, gate_margin=-1e9),
        ds,
        tmp_path / "run",
        progress=False,
    )
    last = tr.train()
    assert tr.step == 4 and all(torch.isfinite(torch.tensor(v)) for v in last.values())
    if algo == "cp-decoupled-critic":
        assert "loss/critic" in last and "loss/ppo" in last
        assert not any(n.startswith("critic.") and "vlm" in n for n, _ in tr.learner.named_parameters())


def test_resume_of_a_selected_run_keeps_the_selected_policy(ds, repo_root, tmp_path, capsys):
    """``bora select`` deployed step 2 of a finished run: a no-op ``--resume`` leaves RUN/policy as selected (it
    used to re-export the last checkpoint silently); a resume that trains on exports and says the selection is
    outdated, which ``deployed_checkpoint`` then refuses."""
    import yaml

    from bora_trainer import select
    from bora_trainer.checkpoint import list_checkpoints

    run = tmp_path / "run"
    cfg_path = tmp_path / "offline.yaml"
    cfg_path.write_text(yaml.safe_dump({**yaml.safe_load((repo_root / DEMO).read_text()), "ckpt_every": 2,
                                        "keep_last": 0}))

    def cli(updates, *extra):
        return main(["--algo", "cp-bc", "--data", str(ds), "--config", str(cfg_path), "--out", str(run),
                     "--updates", str(updates), *extra, "--no-progress"])

    def policy_bytes():
        return {p.name: p.read_bytes() for p in sorted((run / "policy").iterdir()) if p.is_file()}

    assert cli(4) == 0
    steps = {int(json.loads((c / "meta.json").read_text())["step"]): c for c in list_checkpoints(run)}
    assert sorted(steps) == [2, 4]
    last_export = policy_bytes()
    # what `bora select` leaves when it chooses step 2: step 2's export as RUN/policy + selection.json
    select.export_checkpoint(run, steps[2], run)
    (run / select.SELECTION).write_text(json.dumps(
        {"chosen_step": 2, "candidates": [{"step": 2, "successes": 1}, {"step": 4, "successes": 0}]}))
    selected = policy_bytes()
    assert selected != last_export
    capsys.readouterr()
    assert cli(4, "--resume") == 0
    assert policy_bytes() == selected
    assert "RUN/policy stays the checkpoint `bora select` chose" in capsys.readouterr().err
    assert select.deployed_checkpoint(run) == steps[2]
    # training on: the export is the new last checkpoint's, the selection is reported outdated and refused
    assert cli(6, "--resume") == 0
    assert policy_bytes() not in (selected, last_export)
    assert "is outdated; run `bora select` again" in capsys.readouterr().err
    with pytest.raises(select.SelectError, match=r"chose among the checkpoints of steps \[2, 4\], the run now has "
                                                 r"\[2, 4, 6\]"):
        select.deployed_checkpoint(run)
