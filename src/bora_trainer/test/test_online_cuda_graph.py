"""The CUDA-graph form of the online update (``OnlineConfig.cuda_graph``) computes what the eager update computes.

On a CPU (every machine): the graph-safe form of ``bora-residual`` (metrics as tensors read back in one
transfer, the schedules as device scalars, the critic regulariser over the offline rows as weights instead of
a boolean index) gives the eager form's weights and metrics. On a CUDA device (run there; a CPU machine has
no graph to capture): ``OnlineLearner.update`` through the captured graph (3 eager warm-up updates, the
capture, then replays) gives the weights and metrics of an eager learner on the same batches.
"""

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
    bad = {k: v[:8] for k, v in batch(0).items()}
    with pytest.raises(ValueError, match="cuda_graph: false"):
        graphed.update(bad)
    assert np.isfinite(list(graphed.update(batch(99)).values())).all()
