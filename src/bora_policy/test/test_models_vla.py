"""VLA policy and normaliser: act shapes, save/load round trip, shape-mismatch errors, JSON round trip."""

import json

import numpy as np
import pytest
import torch

from bora_policy.models.normalizer import Normalizer
from bora_policy.models.vla import VLAConfig, VLAPolicy

torch.set_num_threads(1)


def _norm(state_dim=9, action_dim=9, seed=0):
    r = np.random.default_rng(seed)
    return Normalizer.fit(r.normal(1, 2, (50, state_dim)), r.normal(-1, 0.5, (50, 4, action_dim)))


def _obs(B=2, state_dim=9):
    r = np.random.default_rng(1)
    return {
        "color": r.integers(0, 256, (B, 3, 96, 96, 3), dtype=np.uint8),
        "instructions": ["open the box", "pick the toy"][:B],
        "state": r.normal(size=(B, state_dim)),
    }


def _cfg(**kw):
    base = dict(
        action_dim=9, state_dim=9, chunk_size=8, expert_hidden_dim=64, expert_num_blocks=1, expert_cond_dim=32
    )
    return VLAConfig(**{**base, **kw})


def test_normalizer_round_trip_and_version(tmp_path):
    n = _norm()
    s = np.random.default_rng(2).normal(size=(3, 9)).astype(np.float32)
    np.testing.assert_allclose(n.denormalize_state(n.normalize_state(s)), s, atol=1e-5)
    a = torch.randn(2, 4, 9)
    torch.testing.assert_close(n.denormalize_action(n.normalize_action(a)), a, atol=1e-5, rtol=1e-5)
    # hand value: (x - mu) / (sigma + eps)
    x = n.action_mean + 2 * n.action_std
    np.testing.assert_allclose(
        n.normalize_action(x[None])[0], 2 * n.action_std / (n.action_std + n.eps), rtol=1e-5
    )
    n.save(tmp_path / "n.json")
    m = Normalizer.load(tmp_path / "n.json")
    assert m.version == n.version and len(n.version) == 16
    np.testing.assert_array_equal(m.action_std, n.action_std)
    assert _norm(seed=1).version != n.version
    d = json.loads((tmp_path / "n.json").read_text())
    d["action_mean"][0] += 1.0
    with pytest.raises(ValueError, match="version"):
        Normalizer.from_dict(d)
    with pytest.raises(ValueError, match="action_dim=9"):
        n.normalize_action(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="state_dim=9"):
        n.normalize_state(torch.zeros(8))


@pytest.mark.parametrize("expert,steps", [("consistency", 2), ("diffusion", 10)])
def test_act_and_save_load_round_trip(tmp_path, expert, steps):
    torch.manual_seed(0)
    pol = VLAPolicy(_cfg(expert=expert, num_inference_steps=steps), _norm()).eval()
    obs = _obs()
    z, cn, cp = pol.act(obs, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, pol.z_dim) and cn.shape == cp.shape == (2, 8, 9)
    torch.testing.assert_close(cp, pol.normalizer.denormalize_action(cn))
    pol.save(tmp_path / "ckpt")
    loaded = VLAPolicy.load(tmp_path / "ckpt").eval()
    assert loaded.normalizer.version == pol.normalizer.version and loaded.cfg == pol.cfg
    z2, cn2, cp2 = loaded.act(obs, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z2, z, rtol=0, atol=0)
    torch.testing.assert_close(cp2, cp, rtol=0, atol=0)
    torch.testing.assert_close(loaded.act(obs, deterministic=True)[1], pol.act(obs, deterministic=True)[1])


def test_load_with_mismatching_config_names_the_tensors(tmp_path):
    pol = VLAPolicy(_cfg(), _norm())
    pol.save(tmp_path)
    with pytest.raises(ValueError, match=r"shape mismatches"):
        VLAPolicy.load(tmp_path, cfg=_cfg(chunk_size=16))
    with pytest.raises(ValueError, match="normaliser dims"):
        VLAPolicy(_cfg(action_dim=10), _norm())
    with pytest.raises(ValueError, match="1-3"):
        _cfg(num_inference_steps=5)


def test_obs_validation_and_encode_gradients():
    pol = VLAPolicy(_cfg(), _norm())
    obs = _obs()
    z = pol.encode(obs)
    z.sum().backward()
    assert pol.vlm.cog_token.grad is not None
    with pytest.raises(ValueError, match="state_dim=9"):
        pol.encode({**obs, "state": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="n_cam=3"):
        pol.encode({**obs, "color": obs["color"][:, :2]})
    with pytest.raises(KeyError, match="instruction"):
        pol.encode({"color": obs["color"], "state": obs["state"]})
