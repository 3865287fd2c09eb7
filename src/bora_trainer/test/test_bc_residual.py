"""bc-residual (algorithms/bc_residual): which steps are imitated, and learning a teacher's residual on a tiny
hand-made replay dataset through the real buffers, sampler and OnlineLearner (no critic update)."""

import numpy as np
import pytest
import torch

from bora_policy.models.critic import ChunkCritic
from bora_policy.models.residual import ResidualConfig
from bora_trainer.algorithms import registry
from bora_trainer.algorithms.bora.config import OnlineConfig
from bora_trainer.algorithms.online_learner import OnlineLearner
from bora_trainer.config_io import load_config
from bora_trainer.data.replay import ChunkReplayBuffer, MixedSampler, ReplaySpec

Z, S, A, K = 8, 4, 3, 4


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_learner(**options) -> OnlineLearner:
    torch.manual_seed(0)
    critic = ChunkCritic(z_dim=Z, action_dim=A, chunk_size=K, hidden_dim=16, pos_dim=4)
    # alpha fixed at 1 (start = end): A_hat = A_base + A_res, so the target residual is A_exec - A_base
    res = ResidualConfig(hidden_dims=[64, 64], init_scale=0.01, alpha_start=1.0, alpha_end=1.0)
    cfg = OnlineConfig(algo="bc-residual", batch_size=32, actor_lr=3e-3, residual=res, objective_options=options,
                       precision="fp32")
    return OnlineLearner(critic, S, A, K, Z, cfg, normalizer_version="nv", critic_normalizer_version="nv",
                         device="cpu")


W = np.array([[1.0, -0.5, 0.0], [0.5, 1.0, -1.0], [0.0, 0.5, 1.0], [-1.0, 0.0, 0.5]])


def teacher(proprio: np.ndarray) -> np.ndarray:
    """The residual a person adds: 0.4 * tanh(proprio @ W), the same at every chunk step, [n, K, A]."""
    return np.repeat((0.4 * np.tanh(proprio @ W))[:, None, :], K, axis=1)


def rows(n: int, rng, online: bool, human: np.ndarray):
    """``n`` replay rows; where ``human`` [n, K] is set the executed action is base + teacher residual, on the
    policy's own steps it is base - teacher residual (a wrong action that must NOT be imitated)."""
    proprio = rng.normal(size=(n, S))
    base = rng.normal(size=(n, K, A)) * 0.5
    r = teacher(proprio)
    action = np.where(human[..., None], base + r, base - r)
    return dict(z=rng.normal(size=(n, Z)), proprio=proprio, vla=base, action=action,
                reward=np.zeros((n, K)), done=np.zeros((n, K), bool), mask=np.ones((n, K), bool),
                is_intervention=human if online else np.zeros((n, K), bool), next_z=rng.normal(size=(n, Z)),
                next_proprio=rng.normal(size=(n, S)), next_vla=rng.normal(size=(n, K, A)),
                next_valid=np.ones(n, bool))


def sampler(seed=0) -> MixedSampler:
    rng = np.random.default_rng(seed)
    spec = ReplaySpec(Z, S, A, K, "nv")
    off, on = ChunkReplayBuffer(spec), ChunkReplayBuffer(spec)
    off.add(rows(256, rng, online=False, human=np.ones((256, K), bool)))  # demonstrations
    human = np.zeros((256, K), bool)
    human[:128, 1:] = True  # half the online rows: a takeover from step 1 on; the rest: the policy alone
    on.add(rows(256, rng, online=True, human=human))
    return MixedSampler(off, on, 32, seed=seed)


def test_registered_with_its_config_file():
    m = registry.get("bc-residual")
    assert m.online is not None and m.offline is None and m.label == "BC-Residual"
    assert "bc-residual" in registry.online_names(demo_only=True)
    cfg = load_config(registry.config_class("bc-residual"), m.config_file)
    assert (cfg.offline_rows, cfg.residual_l2) == (True, 2e-4)


def test_imitated_steps_hand_computed():
    b = {"mask": torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool),
         "is_online": torch.tensor([False, True]),
         "is_intervention": torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)}
    both = make_learner().objective.imitated_steps(b)
    assert both.tolist() == [[1, 1, 0, 0], [0, 1, 1, 0]]
    only_int = make_learner(offline_rows=False).objective.imitated_steps(b)
    assert only_int.tolist() == [[0, 0, 0, 0], [0, 1, 1, 0]]


def test_no_imitated_step_gives_zero_bc_and_no_gradient():
    L = make_learner(residual_l2=0.0)
    b = sampler().sample()
    b["is_online"][:] = True
    b["is_intervention"][:] = False  # the policy alone everywhere: nothing to imitate
    loss, info = L.objective.loss(b)
    assert info["actor/imitated_steps"] == 0.0 and loss.item() == 0.0
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in L.actor.parameters())


def test_learns_the_teacher_residual_without_touching_the_critic():
    L = make_learner()
    smp = sampler()
    critic0 = [p.detach().clone() for p in L.critic.parameters()]
    first = [L.update(smp.sample())["actor/bc"] for _ in range(5)]
    for _ in range(400):
        last = L.update(smp.sample())
    # the BC loss on the imitated steps falls by more than 10x ...
    assert last["actor/bc"] < 0.1 * np.mean(first)
    # ... and on held-out inputs the residual reproduces the teacher (not the policy's wrong actions)
    rng = np.random.default_rng(123)
    proprio, base, z = rng.normal(size=(200, S)), rng.normal(size=(200, K, A)) * 0.5, rng.normal(size=(200, Z))
    with torch.no_grad():
        res = L.actor(torch.tensor(proprio, dtype=torch.float32), torch.tensor(base, dtype=torch.float32),
                      torch.tensor(z, dtype=torch.float32)).numpy()
    target = teacher(proprio)
    mse = float(((res - target) ** 2).mean())
    assert mse < 0.1 * float((target**2).mean()), mse
    assert float(((res + target) ** 2).mean()) > 10 * mse  # far from the policy steps' wrong residual
    assert all(torch.equal(a, b) for a, b in zip(critic0, L.critic.parameters()))
    assert L.step == 405
