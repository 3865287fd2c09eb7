"""Fixtures shared by the trainer's tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def node(request):
    """An rclpy node of the test module (rclpy initialised for the module, shut down after it): the test's
    side of the graph. Call sites source scripts/env.sh first (loopback DDS, per-run domain)."""
    import rclpy

    rclpy.init()
    n = rclpy.create_node(f"{request.module.__name__}_probe")
    yield n
    n.destroy_node()
    rclpy.try_shutdown()


@pytest.fixture(scope="module")
def frozen_vla(tmp_path_factory):
    """A tiny random-init offline run (the real model classes, saved as `bora train offline` saves them), loaded
    as the online stage's frozen VLA (k = 8, the shadow hand's home posture as the normaliser's mean)."""
    from bora_policy.models.normalizer import Normalizer
    from bora_sim.hand import get_hand
    from bora_sim.scene import ARM_HOME
    from bora_trainer.algorithms.bora.config import OfflineConfig
    from bora_trainer.checkpoint import save_checkpoint, write_run_files
    from bora_trainer.config_io import load_config
    from bora_trainer.offline.build import build_learner
    from bora_trainer.online.vla import FrozenVLA

    torch.manual_seed(0)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models; restored after the module
    home = np.concatenate([ARM_HOME, np.asarray(get_hand("shadow").posture("open"), dtype=np.float64)])
    D = home.shape[0]
    raw = {"algo": "bora", "k": 8, "batch_size": 2,
           "model": {"vlm": "paligemma-tiny", "expert": {"hidden_dim": 32, "num_blocks": 1, "cond_dim": 16}}}
    cfg = load_config(OfflineConfig, raw)
    norm = Normalizer(home, np.full(D, 0.5), home, np.full(D, 0.05))
    learner = build_learner(cfg, D, D, torch.device("cpu"))
    run = tmp_path_factory.mktemp("frozen_vla") / "off"
    write_run_files(run, config=raw, normalizer=norm.to_dict())
    mods = {k: m.state_dict() for k, m in learner.modules_to_save().items()}
    save_checkpoint(run, 1, mods, extra={"algo": "bora", "normalizer_version": norm.version})
    yield FrozenVLA(run, torch.device("cpu"))
    torch.set_num_threads(n_threads)


@pytest.fixture
def tiny_runner():
    """``(runner, rng, dims)``: a random-init VLAPolicy (2 cameras) with a ChunkCritic on its z_t behind a
    PolicyRunner, and the rng that made its normaliser (the benches that read a critic on recorded episodes)."""
    import numpy as np
    import torch

    from bora_policy.models.critic import ChunkCritic
    from bora_policy.models.normalizer import Normalizer
    from bora_policy.models.vla import VLAConfig, VLAPolicy
    from bora_policy.runtime.policy_runner import PolicyRunner, PolicyRunnerConfig

    S, A, K, NCAM = 6, 5, 4, 2
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    norm = Normalizer(rng.normal(size=S), rng.uniform(0.5, 1.5, S), rng.normal(size=A), rng.uniform(0.1, 0.3, A))
    cfg = VLAConfig(action_dim=A, state_dim=S, chunk_size=K, n_cameras=NCAM, expert_hidden_dim=32,
                    expert_num_blocks=1, expert_cond_dim=16)
    policy = VLAPolicy(cfg, norm)
    critic = ChunkCritic(z_dim=policy.vlm.z_dim, action_dim=A, chunk_size=K, hidden_dim=16, pos_dim=4, num_q=2)
    return PolicyRunner(policy, PolicyRunnerConfig(device="cpu"), critic=critic), rng, {"S": S, "NCAM": NCAM}
