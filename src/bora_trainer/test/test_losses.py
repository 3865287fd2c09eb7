"""Offline BORA losses against hand-computed values (k = 4; arithmetic in the comments)."""

import math

import pytest
import torch

from bora_trainer.algorithms import losses as L

T = torch.tensor


def test_validity_mask_keeps_first_terminal_and_padding():
    dones = T([[0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 1]])
    pad = T([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    m = L.validity_mask(dones, pad)
    # row 0: terminal at i=2 is kept, i=3 after it dropped; row 1: padding at i=3
    # row 2: terminal at i=0 -> only i=0; row 3: first terminal at i=1 -> i=0,1
    assert m.tolist() == [[1, 1, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]]


def test_eq1_shifted_bootstrap_with_terminal_inside_chunk():
    gamma = 0.9
    rewards = T([[-0.1, -0.1, 1.0, 0.0], [-0.1, -0.1, -0.1, -0.1]])
    dones = T([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    v_cur = T([[0.5, 0.6, 0.7, 0.8], [1.0, 2.0, 3.0, 4.0]])
    v_next0 = T([2.0, 5.0])
    y = L.shifted_bootstrap_targets(rewards, dones, v_cur, v_next0, gamma)
    expected = [
        # row 0: y0 = -0.1 + 0.9*0.6 = 0.44 ; y1 = -0.1 + 0.9*0.7 = 0.53
        #        y2 = 1.0 + 0.9*(1-1)*0.8 = 1.0 (terminal: no bootstrap)
        #        y3 = 0.0 + 0.9*v(z_{t+1},0)=0.9*2.0 = 1.8 (masked out by validity_mask anyway)
        [0.44, 0.53, 1.0, 1.8],
        # row 1: -0.1 + 0.9*[2, 3, 4, v_next0=5] = [1.7, 2.6, 3.5, 4.4]
        [1.7, 2.6, 3.5, 4.4],
    ]
    assert torch.allclose(y, T(expected), atol=1e-6)


def test_eq3_masked_bellman_per_sample_normalisation():
    y = T([[0.44, 0.53, 1.0, 1.8], [1.7, 2.6, 3.5, 4.4]])
    mask = T([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    q = T([[0.5, 0.5, 0.5, 100.0], [2.0, 2.0, 3.0, 4.0]], requires_grad=True)
    loss = L.masked_bellman_loss(q, y, mask)
    # row 0: (0.06^2 + 0.03^2 + 0.5^2)/3 = (0.0036 + 0.0009 + 0.25)/3 = 0.0848333 (i=3 masked)
    # row 1: (0.3^2 + 0.6^2 + 0.5^2 + 0.4^2)/4 = (0.09+0.36+0.25+0.16)/4 = 0.215
    # batch mean: (0.0848333 + 0.215)/2 = 0.1499167
    assert loss.item() == pytest.approx(0.14991667, abs=1e-6)
    loss.backward()
    # d/dq0,0 = 0.5 * 2*(0.5-0.44)/3 = 0.02 ; masked entry gets zero gradient
    assert q.grad[0, 0].item() == pytest.approx(0.02, abs=1e-6)
    assert q.grad[0, 3].item() == 0.0


def test_eq4_expectile_value_loss_and_stop_gradient():
    tau = 0.7
    q = T([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    v = T([[2.0, 1.0, 3.0, 0.0]], requires_grad=True)
    mask = T([[1.0, 1.0, 0.0, 1.0]])
    loss = L.expectile_value_loss(q, v, mask, tau)
    # q - v = [-1, 1, 0, 4]; weights |0.7 - 1[<0]| = [0.3, 0.7, (masked), 0.7]
    # (0.3*1 + 0.7*1 + 0.7*16)/3 = 12.2/3 = 4.0666667
    assert loss.item() == pytest.approx(12.2 / 3, abs=1e-6)
    loss.backward()
    assert q.grad is None  # q is a stop-gradient target
    # dL/dv0 = -2*0.3*(-1)/3 = 0.2
    assert v.grad[0, 0].item() == pytest.approx(0.2, abs=1e-6)


def test_action_level_gae_recursion():
    gamma, lam = 0.9, 0.5  # gamma*lam = 0.45
    q = T([[1.0, -1.0, 1.5, 4.0]] * 3)
    v = T([[0.0, 1.0, 1.0, 0.0]] * 3)  # delta = [1, -2, 0.5, 4]
    dones = T([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    adv = L.action_level_gae(q, v, dones, gamma, lam, mask)
    # row 0 (terminal at i=2): A3 = 0 (masked); A2 = 0.5 + 0.45*(1-1)*A3 = 0.5
    #   A1 = -2 + 0.45*0.5 = -1.775 ; A0 = 1 + 0.45*(-1.775) = 0.20125
    # row 1 (no terminal): A3 = 4 ; A2 = 0.5 + 0.45*4 = 2.3 ; A1 = -2 + 0.45*2.3 = -0.965
    #   A0 = 1 + 0.45*(-0.965) = 0.56575
    # row 2 (padding at i=3, no terminal): same as row 0
    expected = [[0.20125, -1.775, 0.5, 0.0], [0.56575, -0.965, 2.3, 4.0], [0.20125, -1.775, 0.5, 0.0]]
    assert torch.allclose(adv, T(expected), atol=1e-6)
    # without a mask, row 0's A3 = delta3 = 4 (the terminal cut still stops it reaching A2)
    adv_nomask = L.action_level_gae(q, v, dones, gamma, lam)
    assert adv_nomask[0].tolist() == pytest.approx([0.20125, -1.775, 0.5, 4.0])


def test_normalize_advantages_masked_and_clipped():
    adv = T([[1.0, 2.0, 3.0, 100.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0]])
    # valid entries [1,2,3]: mean 2, population std sqrt(2/3) = 0.8165 -> [-1.2247, 0, 1.2247]
    out = L.normalize_advantages(adv, mask, clip=2.0, eps=0.0)
    s = math.sqrt(1.5)
    assert out[0].tolist() == pytest.approx([-s, 0.0, s, 0.0], abs=1e-5)
    out = L.normalize_advantages(adv, mask, clip=1.0, eps=0.0)
    assert out[0].tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)


def test_ppo_clip_both_sides_of_one():
    eps = 0.2
    # columns: (a) ratio 1.5, A=+2 -> min(3.0, 1.2*2=2.4) = 2.4 (clipped above, no gradient)
    #          (b) ratio 0.5, A=-1 -> min(-0.5, 0.8*-1=-0.8) = -0.8 (clipped below, no gradient)
    #          (c) ratio 0.5, A=+2 -> min(1.0, 1.6) = 1.0 (unclipped, d/dlogp = ratio*A = 1.0)
    #          (d) ratio 1.5, A=-1 -> min(-1.5, -1.2) = -1.5 (unclipped, d/dlogp = -1.5)
    logp_old = T([[0.0, 0.0, 0.0, 0.0]])
    logp_new = T([[math.log(1.5), math.log(0.5), math.log(0.5), math.log(1.5)]], requires_grad=True)
    adv = T([[2.0, -1.0, 2.0, -1.0]])
    mask = torch.ones(1, 4)
    loss = L.clipped_ppo_loss(logp_new, logp_old, adv, mask, eps)
    # L = -(2.4 - 0.8 + 1.0 - 1.5)/4 = -1.1/4 = -0.275
    assert loss.item() == pytest.approx(-0.275, abs=1e-6)
    loss.backward()
    # dL/dlogp = -(1/4) * [0, 0, 1.0, -1.5]
    assert logp_new.grad[0].tolist() == pytest.approx([0.0, 0.0, -0.25, 0.375], abs=1e-6)
    # masking column (d) out: L = -(2.4 - 0.8 + 1.0)/3
    loss2 = L.clipped_ppo_loss(logp_new.detach(), logp_old, adv, T([[1.0, 1.0, 1.0, 0.0]]), eps)
    assert loss2.item() == pytest.approx(-2.6 / 3, abs=1e-6)


def test_ppo_dual_clip_bounds_negative_advantages():
    # ratio 100 (a stale reference), A = -1: plain Eq. 2 gives min(-100, -1.2) = -100 with gradient -100;
    # dual clip c = 3 bounds it at max(-100, -3) = -3 (no gradient); A = +2 and ratio 100: 2.4 either way
    logp_old = T([[0.0, 0.0]])
    logp_new = T([[math.log(100.0), math.log(100.0)]], requires_grad=True)
    adv, mask = T([[-1.0, 2.0]]), torch.ones(1, 2)
    plain = L.clipped_ppo_loss(logp_new, logp_old, adv, mask, 0.2)
    assert plain.item() == pytest.approx(-(-100.0 + 2.4) / 2, rel=1e-6)
    dual = L.clipped_ppo_loss(logp_new, logp_old, adv, mask, 0.2, dual_clip=3.0)
    assert dual.item() == pytest.approx(-(-3.0 + 2.4) / 2, rel=1e-6)
    dual.backward()
    assert logp_new.grad[0].tolist() == pytest.approx([0.0, 0.0])
    with pytest.raises(ValueError, match="dual_clip"):
        L.clipped_ppo_loss(logp_new, logp_old, adv, mask, 0.2, dual_clip=0.5)


def test_bc_loss_masked_mse():
    pred = torch.zeros(1, 4, 2)
    target = T([[[1.0, 1.0], [2.0, 0.0], [0.0, 0.0], [9.0, 9.0]]])
    mask = T([[1.0, 1.0, 1.0, 0.0]])
    # per-step mean over dims: [1, 2, 0, (81 masked)] -> (1 + 2 + 0)/3 = 1.0
    assert L.bc_loss(pred, target, mask).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="pred"):
        L.bc_loss(pred, target[:, :3], mask)


def test_advantage_gate_eq5():
    adv = T([[1.0, -1.0, 5.0, 0.0], [-2.0, -2.0, 0.0, 0.0]])
    mask = T([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    # A_bar = [(1-1)/2 = 0, (-2-2+0+0)/4 = -1] -> score -0.5 <= 0 -> actor step skipped
    ok, score = L.advantage_gate(adv, mask, margin=0.0)
    assert not ok and score.item() == pytest.approx(-0.5)
    # A_bar = 0 exactly is "<= margin" -> skipped; anything above opens the gate
    assert not L.advantage_gate(adv[:1], mask[:1], 0.0)[0]
    assert L.advantage_gate(adv[:1] + 0.01, mask[:1], 0.0)[0]
    assert L.advantage_gate(adv, mask, margin=-0.6)[0]


def test_stage_switch():
    # default: PPO from 40k of 70k; scaled with run length (40/70)
    assert L.stage_for_step(39_999, 70_000) == 1
    assert L.stage_for_step(40_000, 70_000) == 2
    assert L.ppo_start_step(700) == 400
    assert L.stage_for_step(399, 700) == 1 and L.stage_for_step(400, 700) == 2
    assert L.stage_for_step(9, 100, ppo_start=10) == 1 and L.stage_for_step(10, 100, ppo_start=10) == 2


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="v_next0"):
        L.shifted_bootstrap_targets(
            torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(3), 0.99
        )
    with pytest.raises(ValueError, match="dones"):
        L.validity_mask(torch.zeros(4))


def test_soft_update():
    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        a.weight.fill_(0.0)
        b.weight.fill_(1.0)
    L.soft_update(a, b, 0.005)
    assert a.weight.flatten().tolist() == pytest.approx([0.005, 0.005])
