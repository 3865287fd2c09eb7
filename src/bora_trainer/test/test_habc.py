"""HABC: intervention-aware labels, gate, weights and the two heads (habc-method.md Eq. 2-7)."""

import math

import numpy as np
import pytest
import torch

from bora_trainer.algorithms.habc.config import HabcConfig
from bora_trainer.algorithms.habc.labels import (
    KIND_DEMO,
    KIND_INTERVENTION,
    KIND_POLICY,
    LABEL_NONE,
    build_habc_index,
    efficiency_transitions,
    label_episode,
    min_human_steps,
)
from bora_trainer.algorithms.habc.learner import HabcBatch, HabcLearner
from bora_trainer.algorithms.habc.losses import (
    efficiency_targets,
    habc_advantages,
    habc_gate,
    normalize_weights,
    raw_weights,
)
from bora_trainer.algorithms.losses import weighted_actor_loss
from bora_trainer.config_io import ConfigError, load_config

torch.set_num_threads(1)  # the CI machine is shared: avoid thread contention

P, I, D, N = KIND_POLICY, KIND_INTERVENTION, KIND_DEMO, LABEL_NONE


def _int_mask(T, human):
    m = np.zeros(T, dtype=bool)
    m[list(human)] = True
    return m


# ---------------------------------------------------------------------------------------------- labels


def test_min_human_steps_scaled_to_chunk_length():
    # paper: 10 of 50 steps (share 0.2); 0.2*50 = 10.000000000000002 in floating point must stay 10
    assert min_human_steps(50, 0.2) == 10
    # our k = 32: ceil(0.2 * 32) = ceil(6.4) = 7
    assert min_human_steps(32, 0.2) == 7
    # a window cut by the episode end (L = 3): ceil(0.6) = 1
    assert min_human_steps(3, 0.2) == 1
    with pytest.raises(ValueError, match="min_human_share"):
        min_human_steps(32, 0.0)


def test_labels_no_takeover():
    # autonomous episode: every window is a policy window with the outcome label
    lab = label_episode(np.zeros(6, bool), True, chunk_len=4, min_human_share=0.5)
    assert lab.kind.tolist() == [P] * 6
    assert lab.label.tolist() == [1] * 6
    assert lab.in_succ.tolist() == [True] * 6
    assert lab.suffix_start == 0
    fail = label_episode(np.zeros(6, bool), False, chunk_len=4, min_human_share=0.5)
    assert fail.label.tolist() == [0] * 6
    assert fail.in_succ.tolist() == [False] * 6


def _takeover_case(success):
    # T = 12, human control on steps 3, 4, 5; k = 4, share 0.5 -> 2 human steps in a full window
    # (windows cut by the end: L=3 -> 2, L=2 -> 1, L=1 -> 1).
    # human steps in [t, t+4): t=0:{3}=1, t=1:{3,4}=2, t=2:{3,4,5}=3, t=3:3, t=4:{4,5}=2, t=5:{5}=1, t>=6:0
    # -> intervention windows t = 1..4; t = 0 and t = 5 are policy windows (too few human steps).
    # last human step 5 -> post-intervention suffix = anchors 6..11.
    return label_episode(_int_mask(12, [3, 4, 5]), success, chunk_len=4, min_human_share=0.5)


def test_labels_takeover_then_success():
    lab = _takeover_case(True)
    assert lab.n_human.tolist() == [1, 2, 3, 3, 2, 1, 0, 0, 0, 0, 0, 0]
    assert lab.kind.tolist() == [P, I, I, I, I, P, P, P, P, P, P, P]
    assert lab.suffix_start == 6
    # pre-intervention policy windows (t=0, t=5) unlabelled; intervention windows never labelled
    assert lab.label.tolist() == [N, N, N, N, N, N, 1, 1, 1, 1, 1, 1]
    # D_succ = labelled successful policy windows + intervention windows of a successful episode
    assert lab.in_succ.tolist() == [False, True, True, True, True, False] + [True] * 6


def test_labels_takeover_then_failure():
    lab = _takeover_case(False)
    assert lab.kind.tolist() == [P, I, I, I, I, P, P, P, P, P, P, P]
    assert lab.label.tolist() == [N, N, N, N, N, N, 0, 0, 0, 0, 0, 0]
    assert not lab.in_succ.any()


def test_labels_takeover_that_finishes_the_task():
    # T = 8, the human takes over at step 5 and finishes: no post-intervention suffix (suffix_start = T)
    # human steps in window: t=0:0, t=1:0, t=2:{5}=1 (<2), t=3:{5,6}=2, t=4:{5,6,7}=3,
    # t=5: L=3 window, 3 >= ceil(1.5)=2; t=6: L=2, 2 >= 1; t=7: L=1, 1 >= 1
    lab = label_episode(_int_mask(8, [5, 6, 7]), True, chunk_len=4, min_human_share=0.5)
    assert lab.kind.tolist() == [P, P, P, I, I, I, I, I]
    assert lab.suffix_start == 8
    assert lab.label.tolist() == [N] * 8  # only the intervention windows are used
    assert lab.in_succ.tolist() == [False, False, False, True, True, True, True, True]


def test_labels_demo_and_unknown_outcome():
    demo = label_episode(np.zeros(5, bool), True, chunk_len=4, is_demo=True)
    assert demo.kind.tolist() == [D] * 5 and demo.label.tolist() == [N] * 5 and not demo.in_succ.any()
    demo_c = label_episode(np.zeros(5, bool), True, chunk_len=4, is_demo=True, demos_in_critic=True)
    assert demo_c.label.tolist() == [1] * 5 and demo_c.in_succ.all()
    abort = label_episode(np.zeros(5, bool), None, chunk_len=4)
    assert abort.label.tolist() == [N] * 5 and not abort.in_succ.any()


def test_efficiency_transitions_with_stride():
    # anchors 0, 2, 4 of a 6-step successful episode: n = 2, 2, and 6-1-4 = 1 step to the success frame
    tr = efficiency_transitions([0, 2, 4], 6, True)
    assert tr.next_pos.tolist() == [1, 2, -1]
    assert tr.n_steps.tolist() == [2, 2, 1]
    assert tr.terminal.tolist() == [False, False, True]
    assert tr.has_target.all()
    # stride 1, last anchor is the success frame itself: n = 0 -> y_e = 0 (Eq. 2, d_t = 1)
    tr1 = efficiency_transitions(np.arange(3), 3, True)
    assert tr1.n_steps.tolist() == [1, 1, 0] and tr1.terminal.tolist() == [False, False, True]
    fail = efficiency_transitions([0, 2, 4], 6, False)
    assert fail.has_target.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="strictly increasing"):
        efficiency_transitions([0, 0, 1], 6, True)


def test_build_index_from_episode_dicts():
    T = 12
    ep_takeover = ({"is_intervention": _int_mask(T, [3, 4, 5])}, {"outcome": "success", "source": "policy"})
    ep_demo = ({"is_intervention": np.zeros(4, bool)}, {"success": True, "source": "expert"})
    cs = np.zeros(8, bool)
    cs[[0, 4]] = True  # online rollout: anchors at the chunk starts only
    ep_chunks = ({"is_intervention": np.zeros(8, bool), "chunk_start": cs}, {"outcome": "timeout"})
    idx = build_habc_index([ep_takeover, ep_demo, ep_chunks], chunk_len=4, min_human_share=0.5)
    assert len(idx) == 12 + 4 + 2
    assert idx.kind[:12].tolist() == [P, I, I, I, I, P, P, P, P, P, P, P]
    assert idx.kind[12:16].tolist() == [D] * 4
    # timeout counts as failure: both chunk-start anchors labelled 0; the last one has no TD target
    assert idx.step[16:].tolist() == [0, 4] and idx.label[16:].tolist() == [0, 0]
    assert idx.next_step[16:].tolist() == [4, -1] and idx.has_target[16:].tolist() == [True, False]


# ---------------------------------------------------------------------------------------------- gate


def test_gate_hand_picked_values():
    p_v = torch.tensor([0.5, 0.0, 1.0, 0.8])
    a_v = torch.tensor([1.0, 0.5, 5.0, 2.0])
    a_e = torch.tensor([-1.0, 3.0, -0.25, -1.5])
    g = habc_gate(p_v, a_v, a_e)
    expected = [
        1.0,  # 0.5*1 + 0.5*(-1) = 0 -> 1 + tanh(0) = 1
        1.0 + math.tanh(0.5),  # p_v = 0: pure viability, 1*0.5 = 0.5 -> 1.46211716
        1.0 + math.tanh(-0.25),  # p_v = 1: pure efficiency, -0.25 -> 0.75508134
        1.0 + math.tanh(-0.8),  # 0.2*2 + 0.8*(-1.5) = 0.4 - 1.2 = -0.8 -> 0.33596323
    ]
    assert g.tolist() == pytest.approx(expected, abs=1e-6)
    assert g.tolist() == pytest.approx([1.0, 1.46211716, 0.75508134, 0.33596323], abs=1e-6)


def test_advantages_from_head_outputs():
    # z_v(s) = 0 (p_v = 0.5), z_v(s') = ln 3 (p_v' = 0.75): A_v = ln 3 = 1.0986123
    # V_e(s) = -10, V_e(s') = -8: A_e = -1 + (-8) - (-10) = 1
    # gate = 1 + tanh(0.5 * 1.0986123 + 0.5 * 1) = 1 + tanh(1.0493061) = 1.7815365
    # second sample: terminal at the success frame (n = 0): A_v = 0, A_e = -0 - V_e(s) = 0.5
    z_v = torch.tensor([0.0, 2.0])
    z_v_n = torch.tensor([math.log(3.0), 99.0])
    v_e = torch.tensor([-10.0, -0.5])
    v_e_n = torch.tensor([-8.0, 123.0])
    a_v, a_e = habc_advantages(z_v, z_v_n, v_e, v_e_n, torch.tensor([1, 0]), torch.tensor([False, True]))
    assert a_v.tolist() == pytest.approx([math.log(3.0), 0.0], abs=1e-6)
    assert a_e.tolist() == pytest.approx([1.0, 0.5], abs=1e-6)
    g = habc_gate(torch.sigmoid(z_v), a_v, a_e)
    assert float(g[0]) == pytest.approx(1.7815365, abs=1e-6)
    # no TD target (last anchor of a failed episode): A_v = A_e = 0 -> g = 1
    a_v2, a_e2 = habc_advantages(
        z_v,
        z_v_n,
        v_e,
        v_e_n,
        torch.tensor([1, 1]),
        torch.tensor([False, False]),
        has_target=torch.tensor([False, True]),
    )
    assert a_v2[0] == 0 and a_e2[0] == 0


def test_efficiency_targets():
    # y = -n + (1 - terminal) V_e(s'): -1 + (-4) = -5 ; terminal n=0 -> 0 ; n=3 -> -3 + (-2) = -5
    y = efficiency_targets(torch.tensor([-4.0, 7.0, -2.0]), torch.tensor([1, 0, 3]), torch.tensor([0, 1, 0]))
    assert y.tolist() == [-5.0, 0.0, -5.0]
    # clamp to [-t_max, 0]
    y2 = efficiency_targets(torch.tensor([-100.0, 5.0]), torch.tensor([1, 1]), torch.tensor([0, 0]), t_max=50)
    assert y2.tolist() == [-50.0, 0.0]


# ---------------------------------------------------------------------------------------------- weights

KIND = torch.tensor([D, P, P, P, P, I])
LABEL = torch.tensor([N, 1, 1, 0, N, N])
GATE = torch.tensor([9.0, 0.5, 1.0, 1.2, 0.9, 0.4])


def test_raw_weights():
    # demo 1 ; success g ; success g ; failure 0 ; unlabelled 0 ; intervention 1 (IR off)
    assert raw_weights(KIND, LABEL, GATE).tolist() == pytest.approx([1, 0.5, 1.0, 0, 0, 1])
    # IR on: intervention gets g = 0.4 ; unlabelled_weight = 0.3
    assert raw_weights(KIND, LABEL, GATE, ir=True, unlabelled_weight=0.3).tolist() == pytest.approx(
        [1, 0.5, 1.0, 0, 0.3, 0.4]
    )


def test_weight_normalisation():
    raw = raw_weights(KIND, LABEL, GATE)  # [1, 0.5, 1.0, 0, 0, 1]
    # "positive" D_valid = non-demo with w~ > 0: {0.5, 1.0, 1.0}: c = 2.5/3 -> w = w~ * 1.2
    w = normalize_weights(raw, KIND, mode="positive")
    assert w.tolist() == pytest.approx([1.0, 0.6, 1.2, 0.0, 0.0, 1.2], abs=1e-6)
    assert float(w[1:][w[1:] > 0].mean()) == pytest.approx(1.0)  # mean 1 over D_valid
    # "all": c = 2.5 / 5 non-demo samples = 0.5 -> w = 2 w~ ; demo stays 1
    w_all = normalize_weights(raw, KIND, mode="all")
    assert w_all.tolist() == pytest.approx([1.0, 1.0, 2.0, 0.0, 0.0, 2.0], abs=1e-6)
    # IR: raw [1, .5, 1, 0, 0, .4] -> c = 1.9/3 -> [1, 1.5/1.9, 3/1.9, 0, 0, 1.2/1.9]
    w_ir = normalize_weights(raw_weights(KIND, LABEL, GATE, ir=True), KIND)
    assert w_ir.tolist() == pytest.approx([1.0, 0.78947368, 1.57894737, 0.0, 0.0, 0.63157895], abs=1e-6)
    # an invalid (padding) sample is zero and excluded: valid = first five -> D_valid {0.5, 1.0}, c = 0.75
    valid = torch.tensor([True] * 5 + [False])
    w_v = normalize_weights(raw_weights(KIND, LABEL, GATE, valid=valid), KIND, valid)
    assert w_v.tolist() == pytest.approx([1.0, 0.5 / 0.75, 1.0 / 0.75, 0.0, 0.0, 0.0], abs=1e-6)
    # Eq. 1: (1/B) sum w_i l_i
    assert float(weighted_actor_loss(torch.ones(6) * 2.0, w)) == pytest.approx(2.0 * 4.0 / 6.0)


def _batch(z, kind, label, in_succ, next_z=None, n_steps=None, terminal=None, has_target=None):
    B = len(kind)
    return HabcBatch(
        z=z,
        next_z=z if next_z is None else next_z,
        kind=torch.as_tensor(kind),
        label=torch.as_tensor(label),
        in_succ=torch.as_tensor(in_succ),
        n_steps=torch.ones(B) if n_steps is None else n_steps,
        terminal=torch.zeros(B, dtype=torch.bool) if terminal is None else terminal,
        has_target=torch.ones(B, dtype=torch.bool) if has_target is None else has_target,
    )


def test_warmup_gate_is_one():
    torch.manual_seed(0)
    learner = HabcLearner(HabcConfig(n_warmup=10, hidden=16, use_proprio=False), z_dim=3)
    b = _batch(torch.randn(6, 3), KIND, LABEL, torch.zeros(6, dtype=torch.bool), next_z=torch.randn(6, 3))
    w, _ = learner.weights(b, step=9)
    # g = 1: raw [1, 1, 1, 0, 0, 1]; positive mean over {1, 1, 1} = 1 -> unchanged
    assert w.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    w2, stats = learner.weights(b, step=10)  # after warm-up the random heads' gate enters
    assert w2[1] != w2[2] and "habc/gate_succ_mean" in stats
    assert float(w2[1:][w2[1:] > 0].mean()) == pytest.approx(1.0, abs=1e-5)


def test_config_from_yaml_and_errors():
    cfg = load_config(HabcConfig, "config/habc.yaml")
    assert cfg.n_warmup == 500 and cfg.huber_delta == 1.0 and cfg.min_human_share == 0.2
    with pytest.raises(ConfigError, match="n_warmup"):
        load_config(HabcConfig, {"n_warmup": "many"})
    with pytest.raises(ValueError, match="normalize_over"):
        HabcConfig(normalize_over="median")


# ---------------------------------------------------------------------------------------------- learning


def test_heads_learn_viability_and_steps_to_go():
    """Synthetic chains: state = (position one-hot, good/bad flag). Good chains (flag 1) succeed after
    5 steps, bad chains fail. The viability head must separate them (BCE), the efficiency head must learn
    V_e(pos) = -(steps to the success frame) = -(4 - pos) by undiscounted TD alone."""
    torch.manual_seed(0)
    L = 5

    def feat(pos, flag):
        x = torch.zeros(L + 1)
        x[pos] = 1.0
        x[L] = flag
        return x

    zs, nzs, kinds, labels, succ, term, nst = [], [], [], [], [], [], []
    for flag in (1.0, 0.0):
        for pos in range(L):
            zs.append(feat(pos, flag))
            nzs.append(feat(min(pos + 1, L - 1), flag))
            kinds.append(P)
            labels.append(int(flag))
            succ.append(bool(flag))
            term.append(pos == L - 1 and flag == 1.0)  # the success frame: y_e = 0
            nst.append(0 if pos == L - 1 else 1)
    b = _batch(
        torch.stack(zs),
        kinds,
        labels,
        succ,
        next_z=torch.stack(nzs),
        n_steps=torch.tensor(nst, dtype=torch.float32),
        terminal=torch.tensor(term),
    )
    learner = HabcLearner(HabcConfig(hidden=64, lr=1e-2, use_proprio=False, n_warmup=0), z_dim=L + 1)
    for _ in range(1500):
        learner.critic_step(b)
    # At a constant rate of 1e-2, AdamW on undiscounted TD without a target net keeps orbiting the fixed point
    # (0.1-0.6 away at times; where it stands at update 1500 depends on the CPU's float kernels). A tail at
    # 1e-3 settles it, so the check is on the fixed point, not on one machine's position in the orbit.
    for g in learner.opt.param_groups:
        g["lr"] = 1e-3
    for _ in range(500):
        learner.critic_step(b)
    with torch.no_grad():
        z_v, v_e = learner.heads(b.z)
    p = torch.sigmoid(z_v)
    assert (p[:L] > 0.9).all() and (p[L:] < 0.1).all()
    assert v_e[:L].tolist() == pytest.approx([-4.0, -3.0, -2.0, -1.0, 0.0], abs=0.1)
    # on the good chain the gate favours progress: p_v ~ 1 -> g ~ 1 + tanh(A_e), A_e ~ -1 + 1 = 0
    g, p_v, a_v, a_e = learner.gate(b)
    assert a_e[:L].abs().max() < 0.3 and g[:L].tolist() == pytest.approx([1.0] * L, abs=0.3)
