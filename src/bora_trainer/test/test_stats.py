"""Statistics of the evidence report against hand-computed values (bora_trainer.stats)."""

import math

import numpy as np
import pytest

from bora_trainer.stats import (
    auroc,
    auroc_se,
    hierarchical_bootstrap_diff,
    mcnemar_exact_p,
    newcombe_paired_diff,
    paired_bootstrap_diff,
    t_interval,
)


def test_auroc_counts_pairs_with_half_ties():
    # positives 0.9, 0.8, 0.5; negatives 0.5, 0.3: pairs won 2 + 2 + (0.5 tie + 1) = 5.5 of 6
    assert auroc([0.9, 0.8, 0.5, 0.5, 0.3], [1, 1, 1, 0, 0]) == pytest.approx(5.5 / 6)
    # order of the inputs does not matter
    assert auroc([0.5, 0.3, 0.9, 0.5, 0.8], [0, 0, 1, 1, 1]) == pytest.approx(5.5 / 6)


def test_auroc_extremes_and_all_ties():
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0
    assert auroc([7, 7, 7, 7, 7], [1, 0, 1, 0, 0]) == 0.5
    # three-way tie across classes: pos {2, 2, 5}, neg {2, 1}: 2 vs 2 half, 2 vs 1 win (x2), 5 wins both
    # = (0.5 + 1) + (0.5 + 1) + 2 = 5 of 6
    assert auroc([2, 2, 5, 2, 1], [1, 1, 1, 0, 0]) == pytest.approx(5 / 6)


def test_auroc_rejects_one_class_and_bad_input():
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        auroc([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError, match="1-D"):
        auroc([0.1, 0.2, 0.3], [1, 0])


def test_auroc_se_hanley_mcneil():
    # a = 0.8, 10 positives, 5 negatives: Q1 = 0.8/1.2 = 0.6667, Q2 = 1.28/1.8 = 0.7111
    # var = (0.16 + 9 (0.6667 - 0.64) + 4 (0.7111 - 0.64)) / 50 = (0.16 + 0.24 + 0.28444) / 50
    assert auroc_se(0.8, 10, 5) == pytest.approx(math.sqrt(0.684444 / 50), rel=1e-4)


def test_newcombe_hand_computed():
    # a = both 1, b = only x 1, c = only y 7, d = neither 12 (n = 21)
    x = [1] + [1] + [0] * 7 + [0] * 12
    y = [1] + [0] + [1] * 7 + [0] * 12
    theta, lo, hi = newcombe_paired_diff(x, y)
    assert theta == pytest.approx((1 - 7) / 21)
    # Wilson limits (z = 1.96) of 2/21 and 8/21, computed by hand from the closed form
    l1, u1 = 0.0265188, 0.2891414
    l2, u2 = 0.2075101, 0.5912135
    p1, p2 = 2 / 21, 8 / 21
    phi = (1 * 12 - 1 * 7) / math.sqrt(2 * 19 * 8 * 13)
    exp_lo = theta - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    exp_hi = theta + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert lo == pytest.approx(exp_lo, abs=1e-6)
    assert hi == pytest.approx(exp_hi, abs=1e-6)
    assert lo == pytest.approx(-0.50166, abs=1e-4) and hi == pytest.approx(-0.03605, abs=1e-4)


def test_newcombe_identical_rows_contain_zero():
    x = [1, 1, 0, 0, 1, 0, 1, 1, 1, 0]
    theta, lo, hi = newcombe_paired_diff(x, x)
    assert theta == 0.0 and lo < 0.0 < hi


def test_mcnemar_exact():
    # b = 1, c = 7: 2 * (C(8,0) + C(8,1)) / 2^8 = 2 * 9 / 256
    x = [1] + [1] + [0] * 7 + [0] * 12
    y = [1] + [0] + [1] * 7 + [0] * 12
    assert mcnemar_exact_p(x, y) == pytest.approx(18 / 256)
    assert mcnemar_exact_p([1, 0], [1, 0]) == 1.0


def test_paired_bootstrap_two_point_distribution():
    # one task, differences {1, 0}: resampled means 0, 0.5, 1 with probability 1/4, 1/2, 1/4
    est, lo, hi = paired_bootstrap_diff({"t": ([1, 1], [0, 1])}, n_boot=4000)
    assert est == 0.5 and lo == 0.0 and hi == 1.0


def test_paired_bootstrap_spread_matches_closed_form():
    # 40 seeds, differences 1 on 10, 0 on 30: bootstrap std of the mean = sqrt(p (1 - p) / n) = sqrt(.1875/40)
    x = [1] * 10 + [0] * 30
    y = [0] * 40
    rng_mean, lo, hi = paired_bootstrap_diff({"t": (x, y)}, n_boot=20000, seed=3)
    assert rng_mean == 0.25
    sd = math.sqrt(0.25 * 0.75 / 40)
    assert (hi - lo) == pytest.approx(2 * 1.96 * sd, rel=0.1)


def test_paired_bootstrap_pools_tasks_equally():
    # task a: diff 1 on 2 of 2 seeds; task b: diff 0 on 6 seeds -> mean over tasks = 0.5 (not 2/8)
    est, lo, hi = paired_bootstrap_diff({"a": ([1, 1], [0, 0]), "b": ([0] * 6, [0] * 6)}, n_boot=500)
    assert est == 0.5 and lo == 0.5 and hi == 0.5
    with pytest.raises(ValueError, match="stratum 'a'"):
        paired_bootstrap_diff({"a": ([1, 1], [0])})


def test_hierarchical_bootstrap_resamples_training_seeds():
    # training seed 0: row x wins every trial; seed 1: no difference. Within a seed the trial resamples are
    # constant, so replicates are 0, 0.5, 1 with probability 1/4, 1/2, 1/4 (seed resampling only)
    seeds = [([1] * 5, [0] * 5), ([1] * 5, [1] * 5)]
    est, lo, hi = hierarchical_bootstrap_diff({"t": seeds}, n_boot=4000, seed=1)
    assert est == 0.5 and lo == 0.0 and hi == 1.0


def test_hierarchical_bootstrap_wider_than_trials_only():
    rng = np.random.default_rng(0)
    # three training seeds with different true effects (0.0, 0.3, 0.6): the seed spread widens the interval
    seeds = []
    for eff in (0.0, 0.3, 0.6):
        x = (rng.random(60) < 0.3 + eff).astype(float)
        y = (rng.random(60) < 0.3).astype(float)
        seeds.append((x, y))
    _, lo_h, hi_h = hierarchical_bootstrap_diff({"t": seeds}, n_boot=4000)
    pooled_x = np.concatenate([s[0] for s in seeds])
    pooled_y = np.concatenate([s[1] for s in seeds])
    _, lo_p, hi_p = paired_bootstrap_diff({"t": (pooled_x, pooled_y)}, n_boot=4000)
    assert hi_h - lo_h > hi_p - lo_p


def test_t_interval_by_hand():
    # values 1..5: mean 3, s = sqrt(2.5) = 1.5811, s / sqrt(5) = 0.70711, t_{4, 0.975} = 2.776445 -> +-1.96324
    m, lo, hi = t_interval([1, 2, 3, 4, 5])
    assert m == pytest.approx(3.0)
    assert lo == pytest.approx(3.0 - 1.96324, abs=1e-4) and hi == pytest.approx(3.0 + 1.96324, abs=1e-4)
    # (0, 2): s = sqrt(2), s / sqrt(2) = 1, t_{1, 0.975} = 12.7062
    m, lo, hi = t_interval([0.0, 2.0])
    assert (m, lo, hi) == pytest.approx((1.0, 1.0 - 12.7062, 1.0 + 12.7062), abs=1e-3)
    with pytest.raises(ValueError, match="at least 2 finite"):
        t_interval([1.0])
