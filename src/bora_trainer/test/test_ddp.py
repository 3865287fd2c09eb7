"""Data parallel training: 2 CPU processes (gloo, torchrun) vs one process on the same global batch.

The worker below runs under ``python -m torch.distributed.run --nproc_per_node 2`` and as a plain single
process. BORA in Stage 2 (PPO from step 0) with lambda_bc = 0 makes the update deterministic (the
consistency BC loss draws noise per sample, which no split of a batch can reproduce), while still
exercising the critic (Eq. 1, 3, 4), action-level GAE, all-reduced advantage normalisation and gate, the
PPO surrogate and the gradient path into the VLM. Both runs must give the same losses and parameters, and
under DDP the same average of the actor's weights (``policy_ema``; every rank averages its own replica).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve()
REPO = HERE.parents[3]
STEPS = 3
PER_RANK_BATCH = 4


def _cfg(global_batch_split: int, fsdp: bool = False) -> dict:
    from bora_trainer.config_io import read_yaml

    cfg = read_yaml(REPO / "config" / "offline_demo.yaml")
    cfg.update(
        algo="bora",
        total_updates=100,
        batch_size=PER_RANK_BATCH * 2 // global_batch_split,
        shuffle=False,
        ppo_start_step=0,
        lambda_bc=0.0,
        gate_margin=-1.0e9,
        ckpt_every=10_000,
        fsdp=fsdp,
        policy_ema=0.0 if fsdp else 0.5,  # the weight average is not supported with fsdp
        find_unused_parameters=True,
        device="cpu",
    )
    return cfg


def worker(out: str, data: str, fsdp: bool) -> None:
    import torch.distributed as dist

    from bora_trainer.algorithms.bora.config import OfflineConfig
    from bora_trainer.config_io import load_config
    from bora_trainer.offline.distributed import setup_distributed, teardown_distributed
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.set_num_threads(1)
    di = setup_distributed("cpu")
    cfg = load_config(OfflineConfig, _cfg(di.world, fsdp))
    tr = OfflineTrainer(
        cfg, data, Path(out).parent / f"run_{di.world}_{int(fsdp)}", dist_info=di, progress=False
    )
    it = tr._batches()
    init = tr._module_states()
    init = {m: {k: v.clone() for k, v in sd.items()} for m, sd in init.items()}
    losses = []
    for _ in range(STEPS):
        m = tr.train_step(tr.prepare(next(it)))
        t = torch.tensor([m["loss/actor"], m["loss/critic"], m["gate/open"]], dtype=torch.float64)
        if di.world > 1:
            dist.all_reduce(t)
            t /= di.world
        losses.append(t)
    states = {**tr._module_states(), **{f"{n}_ema": st for n, st in tr.ema_states().items()}}
    if di.is_main:
        torch.save({"losses": torch.stack(losses), "states": states, "init": init}, out)
    del tr, it  # release the DDP/FSDP wrappers (their gloo work) before the group goes
    teardown_distributed()


def _run(cmd: list[str], timeout: float = 120) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from bora_trainer.data.chunks import write_synthetic_dataset

    return write_synthetic_dataset(
        tmp_path_factory.mktemp("ddp") / "ds", n_episodes=2, T=10, image_size=(16, 16)
    )


def _compare(single: dict, multi: dict) -> None:
    # the losses of the 2-process run (mean over ranks) equal the single-process losses on the same batch
    assert torch.allclose(single["losses"], multi["losses"], rtol=1e-4, atol=1e-5), (
        single["losses"],
        multi["losses"],
    )
    assert torch.all(single["losses"][:, 2] == 1.0)  # the (global) gate was open: the actor was updated
    # same initialisation, and the same parameter UPDATES: per module, the relative difference of the
    # update vectors is tiny (float summation order only), while a missing or wrong gradient average
    # gives O(1) differences. (Elementwise, Adam turns float noise on near-zero gradients into steps of
    # up to lr, so elementwise equality of parameters is not the right check.)
    # (the averaged actor, "<module>_ema", moved from the same initial weights)
    for mod, sd in single["states"].items():
        if mod == "expert_ref" or mod not in multi["states"]:  # fsdp runs have no weight average
            continue
        d_s, d_m = [], []
        init_s, init_m = single["init"][mod.removesuffix("_ema")], multi["init"][mod.removesuffix("_ema")]
        for k, v in sd.items():
            if not v.is_floating_point():
                continue
            assert torch.equal(init_s[k], init_m[k]), (mod, k)
            d_s.append((v - init_s[k]).float().flatten())
            d_m.append((multi["states"][mod][k] - init_m[k]).float().flatten())
        d_s, d_m = torch.cat(d_s), torch.cat(d_m)
        moved = d_s.norm()
        assert moved > 0, f"{mod} did not change: the comparison would be vacuous"
        rel = float((d_s - d_m).norm() / moved)
        assert rel < 1e-2, f"{mod}: relative update difference {rel:.3g}"


def test_two_process_ddp_matches_single_process(data, tmp_path):
    single, multi = tmp_path / "single.pt", tmp_path / "ddp.pt"
    worker(str(single), str(data), fsdp=False)  # the single-process reference, in this process
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            str(HERE),
            "--worker",
            str(multi),
            str(data),
        ]
    )
    multi = torch.load(multi, weights_only=True)
    # bora has a critic on z_t: only the expert is averaged (OfflineTrainer.ema_modules); compared like raw weights
    assert "expert_ema" in multi["states"] and "vlm_ema" not in multi["states"]
    _compare(torch.load(single, weights_only=True), multi)


@pytest.mark.slow
def test_two_process_fsdp_matches_single_process(data, tmp_path):
    single, multi = tmp_path / "single.pt", tmp_path / "fsdp.pt"
    worker(str(single), str(data), fsdp=False)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29518",
            str(HERE),
            "--worker",
            str(multi),
            str(data),
            "--fsdp",
        ]
    )
    _compare(torch.load(single, weights_only=True), torch.load(multi, weights_only=True))


@pytest.mark.parametrize("ok", [True, False])
def test_teardown_leaves_the_group(tmp_path, ok):
    """``teardown_distributed`` destroys the group after a barrier (ok) or without one (a rank leaving on an
    exception); a process without a group is left alone."""
    import torch.distributed as dist

    from bora_trainer.offline.distributed import teardown_distributed

    teardown_distributed(ok)  # no group: nothing to do, no error
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    teardown_distributed(ok)
    assert not dist.is_initialized()


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], fsdp="--fsdp" in sys.argv)
    else:
        raise SystemExit("usage: test_ddp.py --worker OUT DATA [--fsdp]")
