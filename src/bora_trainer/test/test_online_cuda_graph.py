"""The CUDA-graph form of the online update (``OnlineConfig.cuda_graph``) computes what the eager update computes.

On a CPU (every machine): the graph-safe form of ``bora-residual`` (metrics as tensors read back in one
transfer, the schedules as device scalars, the critic regulariser over the offline rows as weights instead of
a boolean index) gives the eager form's weights and metrics. On a CUDA device (run there; a CPU machine has
no graph to capture): ``OnlineLearner.update`` through the captured graph (3 eager warm-up updates, the
capture, then replays) gives the weights and metrics of an eager learner on the same batches.
"""

import copy

import numpy as np
import pytest
import torch
from test_online_equivalence import A, K, S, Z, batch, make_critic

from bora_policy.models.residual import ResidualConfig
from bora_trainer.algorithms.bora.config import OnlineConfig
from bora_trainer.algorithms.online_learner import GRAPH_WARMUP, OnlineLearner, to_floats


def learner(device="cpu", cuda_graph=True, **kw):
    res = ResidualConfig(hidden_dims=[32, 32], init_scale=0.3)
    cfg = OnlineConfig(batch_size=16, precision="fp32", cuda_graph=cuda_graph, residual=res, **kw)
    return OnlineLearner(make_critic(), S, A, K, Z, cfg, normalizer_version="nv", device=device)


def params(lrn):
    return [p.detach().cpu().clone() for m in (lrn.actor, lrn.critic) for p in m.parameters()]


def test_to_floats_one_transfer_keeps_order_and_plain_floats():
    info = {"a": torch.tensor(1.5), "b": 2.0, "c": torch.tensor([0.25]), "d": 3}
    out = to_floats(info)
    assert out == {"a": 1.5, "b": 2.0, "c": 0.25, "d": 3.0} and list(out) == ["a", "b", "c", "d"]
    assert all(type(v) is float for v in out.values())


def test_graph_safe_form_equals_eager_form_on_cpu():
    eager, graph_form = learner(), learner()
    assert not eager.graphing and not graph_form.graphing  # a CPU learner never captures
    graph_form.graphing = True  # the objective's graph-safe code path, run eagerly on the CPU
    batches = [batch(seed) for seed in range(5)]
    for i, b in enumerate(batches):
        info_e = eager.update(b)
        graph_form._sched = {
            n: torch.tensor(f(), dtype=torch.float32)
            for n, f in (("alpha", graph_form.alpha), ("bc_lambda", graph_form.bc_lambda))
        }
        raw = graph_form.objective.update(b)
        assert isinstance(raw["critic/loss"], torch.Tensor) and isinstance(raw["critic/grad_norm"], torch.Tensor)
        info_g = to_floats(raw)
        graph_form.step += 1
        assert info_g["actor/bc"] > 0 and (i == 0 or info_g["critic/reg"] > 0), f"update {i}: terms must be live"
        for k, v in info_g.items():
            assert v == pytest.approx(info_e[k], rel=1e-5, abs=1e-6), f"update {i}: {k}"
    for pe, pg in zip(params(eager), params(graph_form), strict=True):
        torch.testing.assert_close(pg, pe, rtol=1e-5, atol=1e-6)


def test_checkpoint_of_a_graphed_learner_loads_on_a_cpu():
    """torch keeps a loaded optimiser's saved ``capturable`` flag; the learner restores its own (a capturable AdamW
    refuses CPU parameters)."""
    src = learner()
    src.update(batch(0))
    ts = copy.deepcopy(src.trainer_state())
    for name in ("actor_opt", "critic_opt"):  # as written by a graphed learner on CUDA
        for g in ts[name]["param_groups"]:
            g["capturable"] = True
    dst = learner()
    dst.load_state(copy.deepcopy(src.state_dicts()), ts)
    for opt in (dst.actor_opt, dst.critic_opt):
        assert all(g["capturable"] is False for g in opt.param_groups)
        steps = [st["step"] for st in opt.state.values()]
        assert steps and all(t.device.type == "cpu" and float(t) == 1.0 for t in steps)
    info_d, info_s = dst.update(batch(1)), src.update(batch(1))
    assert info_d == pytest.approx(info_s, rel=1e-6, abs=1e-7)


def test_cuda_graph_only_on_cuda_and_for_graph_safe_objectives():
    assert not learner().graphing
    if torch.cuda.is_available():
        assert learner("cuda").graphing
        assert not learner("cuda", cuda_graph=False).graphing
        assert not learner("cuda", algo="bc-residual").graphing
    with pytest.raises(ValueError, match="cuda_graph"):
        OnlineConfig(cuda_graph="yes")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a CUDA graph needs a CUDA device (run on one)")
def test_captured_graph_update_equals_eager_update_on_cuda():
    eager, graphed = learner("cuda", cuda_graph=False), learner("cuda")
    assert graphed.graphing and not eager.graphing
    n = GRAPH_WARMUP + 6  # warm-up, the capture, then replays
    for i in range(n):
        b = batch(i)
        info_e, info_g = eager.update(b), graphed.update(b)
        assert set(info_g) == set(info_e)
        for k, v in info_g.items():
            assert v == pytest.approx(info_e[k], rel=1e-4, abs=1e-5), f"update {i}: {k}"
    assert graphed._graph is not None and graphed.step == n
    for pe, pg in zip(params(eager), params(graphed), strict=True):
        torch.testing.assert_close(pg, pe, rtol=1e-4, atol=1e-5)
    # a checkpoint loaded into a learner that has captured: it warms up and captures again on the new state
    other = learner("cuda", cuda_graph=False)
    for i in range(3):
        other.update(batch(100 + i))
    for lrn in (eager, graphed):  # deep copies: as from a file, no tensor shared between the learners
        lrn.load_state(copy.deepcopy(other.state_dicts()), copy.deepcopy(other.trainer_state()))
    assert graphed._graph is None and graphed.step == eager.step == 3
    for i in range(GRAPH_WARMUP + 3):
        b = batch(200 + i)
        info_e, info_g = eager.update(b), graphed.update(b)
        for k, v in info_g.items():
            assert v == pytest.approx(info_e[k], rel=1e-4, abs=1e-5), f"after load, update {i}: {k}"
    assert graphed._graph is not None
    for pe, pg in zip(params(eager), params(graphed), strict=True):
        torch.testing.assert_close(pg, pe, rtol=1e-4, atol=1e-5)
    bad = {k: v[:8] for k, v in batch(0).items()}
    with pytest.raises(ValueError, match="cuda_graph: false"):
        graphed.update(bad)
    assert np.isfinite(list(graphed.update(batch(99)).values())).all()
