"""Multi-round online training in the trainer node's loop (Algorithm 1 lines 8-12), no ROS.

Two rounds on scripted bags: each round's final stack is announced; round 2's first residual is
round 1's final weights, frozen with lambda_1 = round 1's final alpha_t, and
``load_residual_checkpoint`` of the announced directory folds it: ``A_base = A_VLA + lambda_1 pi_1``,
checked against an independently rebuilt pi_1. The buffers' base chunks follow the rebase rule
(round-1 and offline rows refolded, rows recorded in the current round untouched) and a restarted
loop resumes the round, its frozen residuals and the rebased buffer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bora_policy.models.normalizer import Normalizer
from bora_policy.models.residual import ResidualChunkActor, ResidualConfig, load_residual_checkpoint
from bora_policy.runtime.residual_meta import stack_checkpoint_dir
from bora_trainer.config_io import load_config
from bora_trainer.data.bag_convert import ConvertConfig, convert
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag
from bora_trainer.online.config import TrainerConfig
from bora_trainer.online.env_ros import build_offline_buffer, ros_loop
from bora_trainer.online.loop import OnlineLoop

NORM = Normalizer.identity(9, 9)
LAY = BagLayout(normalizer_version=NORM.version)
T_EP = 16  # steps per episode -> 4 chunk transitions (k = 4); utd 0.5 -> 8 updates per episode
HIDDEN = [32, 32]
A0, A1, TA = 0.2, 0.6, 32  # alpha_t = 0.2 + 0.4 min(t / 32, 1), t = updates of the round


def alpha(t: int) -> float:
    return A0 + (A1 - A0) * min(t / TA, 1.0)


def episodes(first, n):
    return [ScriptedEpisode(first + i, T_EP, "success" if i % 2 == 0 else "failure") for i in range(n)]


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_loop(tmp: Path, announced: list) -> OnlineLoop:
    cfg = load_config(
        TrainerConfig,
        {
            "recordings": str(tmp / "recordings"),
            "state_dir": str(tmp / "state"),
            "offline_buffer": str(tmp / "offline_buffer"),
            "normalizer": str(tmp / "normalizer.json"),
            "utd_ratio": 0.5,
            "checkpoint_every": 1000,
            "episodes_per_round": 2,
            "critic_hidden_dim": 32,
            "critic_pos_dim": 8,
            "device": "cpu",
            "online": {
                "batch_size": 16,
                "n_start": 8,
                "residual": {
                    "hidden_dims": HIDDEN,
                    "alpha_start": A0,
                    "alpha_end": A1,
                    "alpha_warmup_steps": TA,
                    "init_scale": 0.3,  # visible residuals after few updates
                },
            },
        },
    )

    def announce(a):  # snapshot what the announcement points to at announcement time
        p = Path(a.path)
        ck = p if p.is_dir() else p.parent
        meta = json.loads((ck / "meta.json").read_text())
        files = {f: load_file(str(ck / f)) for f in meta["files"] if f.startswith("residual")}
        announced.append((a, meta, files))

    return ros_loop(cfg, announce=announce)


def actor_from(state) -> ResidualChunkActor:
    a = ResidualChunkActor(
        9, 9, 4, 8, ResidualConfig(hidden_dims=HIDDEN, alpha_start=A0, alpha_end=A1, alpha_warmup_steps=TA)
    )
    a.load_state_dict(state)
    return a.eval()


def fold(actor, lam, p, base, z) -> np.ndarray:
    """Line 11 by hand: A_VLA + lambda pi(s, A_VLA, z)."""
    with torch.no_grad():
        t = [torch.from_numpy(np.ascontiguousarray(x)) for x in (p, base, z)]
        return (t[1] + lam * actor(t[0], t[1], t[2])).numpy()


def test_two_rounds_freeze_fold_announce_and_resume(tmp_path):
    write_scripted_bag(tmp_path / "offline_bag", episodes(100, 2), LAY)
    convert([tmp_path / "offline_bag"], tmp_path / "offline_conv", ConvertConfig(transitions_only=True))
    build_offline_buffer(tmp_path / "offline_conv", tmp_path / "offline_buffer", NORM)
    NORM.save(tmp_path / "normalizer.json")
    (tmp_path / "recordings").mkdir()
    announced: list = []
    loop = make_loop(tmp_path, announced)
    off0 = {k: v.copy() for k, v in loop.offline.arrays().items()}

    # ---------------- round 1: 2 episodes -> 16 updates, then the round closes
    write_scripted_bag(tmp_path / "recordings" / "bag_1", episodes(1, 2), LAY)
    assert loop.collect() == 2 and loop.train() == 16
    assert loop.round == 2 and loop.update_step == 16
    r1 = [x for x in announced if x[0].round == 1]
    assert r1 and all(a.update_step == 16 for a, _, _ in r1[-1:])
    a1, meta1, files1 = r1[-1]  # round 1's final (archived) stack
    assert a1.path.endswith("residual.safetensors") and "rounds" in a1.path  # single-file form, kept
    assert [e["name"] for e in meta1["extra"]["residuals"]] == ["residual_1"]
    lam1 = meta1["extra"]["residuals"][0]["lambda"]
    assert lam1 == pytest.approx(alpha(16)) == pytest.approx(0.4)
    w1 = files1["residual_1.safetensors"]
    assert all(torch.equal(w1[k], files1["residual.safetensors"][k]) for k in w1)
    pol1, al1 = load_residual_checkpoint(Path(a1.path).parent, NORM)
    assert len(pol1.frozen) == 0 and al1 == pytest.approx(0.4)
    # round 2 starts: announced as the directory of a 2-residual stack (fresh residual 2)
    a2s, meta2s, files2s = announced[-1]
    assert a2s.round == 2 and Path(a2s.path).is_dir() and stack_checkpoint_dir(Path(a2s.path)) is not None
    assert [e["lambda"] for e in meta2s["extra"]["residuals"]] == pytest.approx([0.4, A0])
    assert a2s.sha256 == meta2s["files"]["residual_2.safetensors"]
    assert not torch.equal(files2s["residual_2.safetensors"]["head.weight"], w1["head.weight"])

    # rebase: offline rows and the round-1 online rows now carry B_2 = A_VLA + lambda_1 pi_1
    pi1 = actor_from(w1)
    on = loop.online.arrays()
    np.testing.assert_allclose(on["base"], fold(pi1, lam1, on["proprio"], on["vla"], on["z"]), atol=1e-6)
    np.testing.assert_allclose(
        on["next_base"], fold(pi1, lam1, on["next_proprio"], on["next_vla"], on["next_z"]), atol=1e-6
    )
    off = loop.offline.arrays()
    want = fold(pi1, lam1, off0["proprio"], off0["vla"], off0["z"])
    np.testing.assert_allclose(off["base"], want, atol=1e-6)
    assert np.abs(off["base"] - off0["base"]).max() > 1e-3  # the fold moved the base

    # ---------------- round 2: 2 of 3 recorded episodes (the round holds episodes_per_round = 2; the
    # third waits for round 3), recorded with B_2: stored base kept -> 16 updates
    n1 = len(loop.online)
    write_scripted_bag(tmp_path / "recordings" / "bag_2", episodes(10, 3), LAY)
    assert loop.collect() == 2 and loop.train(max_updates=10) == 10 and loop.round == 2
    on = loop.online.arrays()
    np.testing.assert_array_equal(on["base"][n1:], on["vla"][n1:])  # rows of the current round: as stored
    assert loop.train() == 6
    assert loop.round == 3 and loop.update_step == 32
    on = loop.online.arrays()
    a2, meta2, files2 = [x for x in announced if x[0].round == 2][-1]
    assert Path(a2.path).is_dir() and a2.update_step == 32 and "rounds" in a2.path
    ex = meta2["extra"]
    assert [e["name"] for e in ex["residuals"]] == ["residual_1", "residual_2"]
    assert [e["lambda"] for e in ex["residuals"]] == pytest.approx([0.4, alpha(16)])
    assert all(torch.equal(files2["residual_1.safetensors"][k], w1[k]) for k in w1)  # frozen = round 1
    pol2, al2 = load_residual_checkpoint(a2.path, NORM)
    assert len(pol2.frozen) == 1 and pol2.lams == pytest.approx([lam1]) and al2 == pytest.approx(0.4)
    g = torch.Generator().manual_seed(0)
    p, v = torch.randn(5, 9, generator=g), torch.randn(5, 4, 9, generator=g)
    z = torch.randn(5, 8, generator=g)
    with torch.no_grad():
        out = pol2.compose(z, p, v, al2)
        want_base = v + lam1 * pi1(p, v, z)
        pi2 = actor_from(files2["residual_2.safetensors"])
        want_final = want_base + 0.4 * pi2(p, want_base, z)
    torch.testing.assert_close(out.base_norm, want_base, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.final_norm, want_final, atol=1e-6, rtol=0)
    assert (want_base - v).abs().max() > 1e-3
    # round 3 begins with both residuals frozen
    a3s, meta3s, _ = announced[-1]
    assert a3s.round == 3 and [e["lambda"] for e in meta3s["extra"]["residuals"]] == pytest.approx(
        [0.4, 0.4, A0]
    )
    # round 1 rows: B_3 = B_2 + lambda_2 pi_2(s, B_2, z); round 2 rows: B_3 = stored + lambda_2 pi_2
    b2 = fold(pi1, lam1, on["proprio"][:n1], on["vla"][:n1], on["z"][:n1])
    want = fold(pi2, 0.4, on["proprio"][:n1], b2, on["z"][:n1])
    np.testing.assert_allclose(on["base"][:n1], want, atol=1e-5)
    r2 = slice(n1, None)  # stored chunk = B_2 already: only pi_2 is folded, pi_1 is not folded twice
    want = fold(pi2, 0.4, on["proprio"][r2], on["vla"][r2], on["z"][r2])
    np.testing.assert_allclose(on["base"][r2], want, atol=1e-5)

    # ---------------- restart: round, frozen residuals and the rebased buffer come back
    base_before = loop.online.arrays()["base"].copy()
    loop2 = make_loop(tmp_path, [])
    assert (loop2.round, loop2.update_step, len(loop2.frozen)) == (3, 32, 2)
    assert [f.lam for f in loop2.frozen] == pytest.approx([0.4, 0.4])
    np.testing.assert_allclose(loop2.online.arrays()["base"], base_before, atol=1e-6)
    assert loop2.update_budget() == 32 and loop2.train() == 0
