"""VLM backbone: cognition-token extraction under padding, gradients, tokenizer, local checkpoints."""

import pytest
import torch

from bora_policy.models.action_expert import build_expert
from bora_policy.models.vlm import PaliGemmaAdapter, VLMBackbone, build_byte_tokenizer, build_vlm

torch.set_num_threads(1)

INSTR = ["pick up the plush toy", "a", "press the red button, then open the box"]


def _inputs(B=3, S=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 3, 3, 96, 96, generator=g), torch.randn(B, S, generator=g)


@pytest.mark.parametrize("name", ["paligemma-tiny", "paligemma2-tiny"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_cognition_token_matches_unpadded_rows(name, side):
    torch.manual_seed(0)
    vlm = build_vlm(name, state_dim=5, padding_side=side).eval()
    imgs, prop = _inputs()
    with torch.no_grad():
        z = vlm.encode(imgs, INSTR, prop)
        alone = torch.cat([vlm.encode(imgs[i : i + 1], INSTR[i : i + 1], prop[i : i + 1]) for i in range(3)])
        embeds, attn, pos, prefix, cog = vlm.build_inputs(imgs, INSTR, prop)
    assert z.shape == (3, vlm.z_dim)
    torch.testing.assert_close(z, alone, atol=2e-5, rtol=1e-4)
    L = embeds.shape[1]
    lens = attn.sum(1)
    if side == "left":
        assert (cog == L - 1).all()
    else:
        assert torch.equal(cog, lens - 1) and len(set(cog.tolist())) == 3
    # each row's COG position holds the learnable token embedding, and positions count real tokens only
    for b in range(3):
        torch.testing.assert_close(embeds[b, cog[b]], vlm.cog_token.detach())
        assert pos[b, cog[b]] == lens[b]
    # sensitivity: the hidden state at a wrong position (last slot of a right-padded short row) differs
    with torch.no_grad():
        hidden = vlm.adapter.forward_embeds(embeds, attn, pos, prefix)
    wrong = hidden[1, L - 2] if side == "left" else hidden[1, L - 1]
    assert (wrong - alone[1]).abs().max() > 1e-3


def test_z_depends_on_images_instruction_and_proprio():
    torch.manual_seed(0)
    vlm = build_vlm("paligemma-tiny", state_dim=5).eval()
    imgs, prop = _inputs(B=1)
    with torch.no_grad():
        z0 = vlm.encode(imgs, ["pick"], prop)
        assert (vlm.encode(imgs.flip(-1), ["pick"], prop) - z0).abs().max() > 1e-4
        assert (vlm.encode(imgs, ["push"], prop) - z0).abs().max() > 1e-4
        assert (vlm.encode(imgs, ["pick"], prop + 1) - z0).abs().max() > 1e-4
        u8 = (imgs * 255).round().to(torch.uint8)
        torch.testing.assert_close(
            vlm.encode(u8, ["pick"], prop), vlm.encode(u8.float() / 255, ["pick"], prop)
        )


def test_expert_loss_gradients_reach_vlm():
    torch.manual_seed(0)
    vlm = build_vlm("paligemma-tiny", state_dim=5)
    expert = build_expert(
        "consistency",
        action_dim=4,
        z_dim=vlm.z_dim,
        state_dim=5,
        chunk_size=8,
        hidden_dim=64,
        num_blocks=1,
        cond_dim=32,
    )
    imgs, prop = _inputs()
    z = vlm.encode(imgs, INSTR, prop)
    loss = (
        expert.bc_loss(z, prop, torch.randn(3, 8, 4)) + expert.log_prob(z, prop, torch.randn(3, 8, 4)).mean()
    )
    loss.backward()
    groups = {
        "cog_token": [vlm.cog_token],
        "proprio_proj": list(vlm.proprio_proj.parameters()),
        "vision": list(vlm.adapter.model.vision_tower.parameters()),
        "projector": list(vlm.adapter.model.multi_modal_projector.parameters()),
        "language": list(vlm.adapter.model.language_model.layers.parameters()),
    }
    for name, params in groups.items():
        g = sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)
        assert g > 0, f"no gradient reached {name}"


def test_byte_tokenizer_round_trip():
    tok = build_byte_tokenizer()
    s = "Öffne die Box, then press ✓ 42\n"
    ids = tok(s, add_special_tokens=False)["input_ids"]
    assert ids == list(s.encode("utf-8"))
    assert tok.decode(ids) == s
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (256, 257, 258)


def test_local_checkpoint_directory_loads_offline(tmp_path):
    torch.manual_seed(0)
    src = PaliGemmaAdapter.from_name("paligemma-tiny")
    src.model.save_pretrained(tmp_path)
    src.tokenizer.save_pretrained(tmp_path)
    loaded = build_vlm(str(tmp_path), state_dim=None)
    assert isinstance(loaded, VLMBackbone)
    x = torch.rand(2, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.adapter.encode_images(x), src.encode_images(x))
    assert loaded.adapter.prompt_ids("go") == src.prompt_ids("go") == [257, ord("g"), ord("o"), 10]


def test_bad_inputs_have_clear_errors(tmp_path):
    vlm = build_vlm("paligemma-tiny", state_dim=5)
    imgs, prop = _inputs()
    with pytest.raises(ValueError, match=r"\[B, n_cam, 3, H, W\]"):
        vlm.encode(imgs[:, :, 0], INSTR, prop)
    with pytest.raises(ValueError, match="instructions"):
        vlm.encode(imgs, INSTR[:2], prop)
    with pytest.raises(ValueError, match="state_dim=5"):
        vlm.encode(imgs, INSTR, prop[:, :3])
    with pytest.raises(ValueError, match="neither a named config"):
        build_vlm(str(tmp_path / "nope"))
