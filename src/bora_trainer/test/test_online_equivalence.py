"""The fast online update computes what the textbook form computes (same equations, same numbers).

The reference learner runs the critic's step heads in the concatenation form (first Linear on
``[proj(z_t), a_{t+i}, pos_i]`` over all B*k step tokens, every position of ``v(z_{t+1}, .)`` evaluated and
position 0 taken) and per-parameter AdamW; the library runs the factored step head, the single-position
bootstrap and multi-tensor AdamW. Metrics and all weights must agree to float tolerance after several updates.
"""

import contextlib
import copy

import numpy as np
import pytest
import torch

from bora_policy.models import critic as critic_mod
from bora_policy.models.critic import ChunkCritic
from bora_policy.models.residual import ResidualConfig
from bora_trainer.algorithms.bora.config import OnlineConfig
from bora_trainer.algorithms.online_learner import OnlineLearner
from bora_trainer.data.replay import ChunkReplayBuffer, MixedSampler, ReplaySpec

Z, S, A, K = 16, 5, 4, 6


def make_critic(seed=0):
    torch.manual_seed(seed)
    return ChunkCritic(z_dim=Z, action_dim=A, chunk_size=K, hidden_dim=32, pos_dim=8)


def batch(seed=0, B=16):
    """A 1:1 offline/online batch with terminals, padding and interventions (every branch of the losses)."""
    rng = np.random.default_rng(seed)
    bufs = []
    for n, online in ((64, False), (32, True)):
        b = ChunkReplayBuffer(ReplaySpec(Z, S, A, K, "nv"))
        vla = rng.normal(size=(n, K, A))
        done = rng.random((n, K)) < 0.1
        b.add(
            dict(
                z=rng.normal(size=(n, Z)),
                proprio=rng.normal(size=(n, S)),
                vla=vla,
                action=vla + 0.5 * rng.normal(size=vla.shape),
                reward=rng.normal(size=(n, K)) * 0.1,
                done=done,
                mask=(np.cumsum(done, 1) - done) == 0,
                is_intervention=(rng.random((n, K)) < 0.4) & online,
                next_z=rng.normal(size=(n, Z)),
                next_proprio=rng.normal(size=(n, S)),
                next_vla=rng.normal(size=(n, K, A)),
                next_valid=rng.random(n) < 0.8,
            )
        )
        bufs.append(b)
    return MixedSampler(bufs[0], bufs[1], B, seed=seed).sample()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _concat_forward(self, z, a, steps=None):
    """The pre-optimisation step head: ALWAYS all k positions (``steps`` ignored), so the objective takes
    ``v(z_{t+1}, .)[:, 0]`` from the full vector as it did before the single-position bootstrap."""
    Bz = z.shape[0]
    parts = [self.z_proj(z.float()).unsqueeze(1).expand(Bz, self.k, -1)]
    if self.action_dim:
        parts.append(a.float())
    parts.append(self.pos.unsqueeze(0).expand(Bz, -1, -1))
    return self.mlp(torch.cat(parts, -1)).squeeze(-1)


@contextlib.contextmanager
def reference_form():
    orig = critic_mod._StepHead.forward
    critic_mod._StepHead.forward = _concat_forward
    try:
        yield
    finally:
        critic_mod._StepHead.forward = orig


def _learner(critic, **kw):
    cfg = OnlineConfig(batch_size=16, residual=ResidualConfig(hidden_dims=[32, 32], init_scale=0.3), **kw)
    return OnlineLearner(copy.deepcopy(critic), S, A, K, Z, cfg, normalizer_version="nv", device="cpu")


def test_fast_update_equals_reference_form():
    critic = make_critic(seed=5)
    fast, ref = _learner(critic), _learner(critic)
    ref.actor.load_state_dict(fast.actor.state_dict())
    for opt in (ref.actor_opt, ref.critic_opt):  # the per-parameter AdamW loop
        for g in opt.param_groups:
            g["foreach"] = False
    for step in range(4):
        b = batch(seed=10 + step)
        info_fast = fast.update(b)
        with reference_form():
            info_ref = ref.update(b)
        assert set(info_fast) == set(info_ref)
        for key, v in info_ref.items():
            assert info_fast[key] == pytest.approx(v, rel=1e-4, abs=1e-5), key
    for name, mod in fast.modules().items():
        ref_sd = ref.modules()[name].state_dict()
        for key, v in mod.state_dict().items():
            torch.testing.assert_close(v, ref_sd[key], rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")


def test_bootstrap_uses_target_v_at_position_zero_only():
    L = _learner(make_critic(seed=1))
    b = batch(seed=2)
    full = L.critic.v_target(b["next_z"])
    torch.testing.assert_close(L.v_target(b["next_z"], steps=[0]), full[:, :1], rtol=1e-6, atol=1e-6)
    # a critic without per-position evaluation falls back to slicing the full vector
    L.internal_target = False
    L.critic_target = copy.deepcopy(L.critic)
    torch.testing.assert_close(L.v_target(b["next_z"], steps=[0]), L.critic_target.v(b["next_z"])[:, :1])


def test_precision_option():
    with pytest.raises(ValueError, match="OnlineConfig.precision"):
        OnlineConfig(precision="fp16")
    critic = make_critic(seed=4)
    assert _learner(critic).use_bf16 is False  # auto: fp32 on CPU
    bf = _learner(critic, precision="bf16")
    assert bf.use_bf16 and bf.autocast().fast_dtype == torch.bfloat16
    ref = _learner(critic)
    b = batch(seed=3)
    info_bf, info_ref = bf.update(b), ref.update(b)
    # bf16 matmuls: the same losses to bf16 precision
    for key in ("critic/loss_q", "critic/loss_v", "actor/bc"):
        assert info_bf[key] == pytest.approx(info_ref[key], rel=5e-2, abs=1e-3), key
