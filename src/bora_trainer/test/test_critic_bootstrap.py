"""Which value net Eq. 1's shifted bootstrap reads (``OfflineConfig.critic_bootstrap``): v_psi itself
("online", Eq. 1 as written) or its Polyak copy ("target"). With the copy's weights made different from
v_psi's, the Q target of a real trainer's batch must equal ``r + gamma (1 - d) v(.)`` of the named net."""

from pathlib import Path

import pytest
import torch

from bora_trainer.algorithms import losses as L
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.config_io import load_config

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from bora_trainer.data.chunks import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("ds") / "ds", n_episodes=2, T=10, image_size=(16, 16))


@pytest.mark.parametrize("source", ["online", "target"])
def test_bootstrap_reads_the_configured_value_net(ds, tmp_path, source):
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.manual_seed(0)
    over = dict(total_updates=5, batch_size=8, ckpt_every=10_000, log_every=5, algo="bora", critic_bootstrap=source)
    cfg = load_config(OfflineConfig, REPO / "config/offline_demo.yaml", overrides=over)
    tr = OfflineTrainer(cfg, ds, tmp_path / "run", progress=False)
    learner, critic = tr.learner, tr.learner.critic
    with torch.no_grad():  # the Polyak copy's weights now differ from v_psi's
        for p in critic.v_head_target.parameters():
            p.add_(0.05)
    batch = tr.prepare(next(iter(tr.loader)))
    with torch.no_grad():
        z = learner.encode(batch["images"], batch["instruction"], batch["state_n"])
        z_next = learner.encode(batch["next_images"], batch["instruction"], batch["next_state_n"])
        want = {}
        for name, net in (("online", critic.v), ("target", critic.v_target)):
            want[name] = L.shifted_bootstrap_targets(batch["rewards"], batch["dones"], net(z), net(z_next)[:, 0],
                                                     cfg.gamma)
    m = (batch["mask"] > 0).float()
    assert float(((want["online"] - want["target"]).abs() * m).sum()) > 1e-3  # the two sources differ here
    _, _, _, metrics = learner.critic_losses(batch, z)
    y_mean = {k: float((v * m).sum() / m.sum()) for k, v in want.items()}
    assert metrics["critic/y_mean"] == pytest.approx(y_mean[source], abs=1e-5)
    other = "target" if source == "online" else "online"
    assert metrics["critic/y_mean"] != pytest.approx(y_mean[other], abs=1e-5)


def test_bad_choice_is_named():
    with pytest.raises(ValueError, match="critic_bootstrap"):
        load_config(OfflineConfig, {"critic_bootstrap": "ema"})
