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
    wilson_interval,
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


def _table(a, b, c, d):
    """Paired outcomes with a = both succeed, b = only x, c = only y, d = neither."""
    return [1] * a + [1] * b + [0] * c + [0] * d, [1] * a + [0] * b + [1] * c + [0] * d


def test_newcombe_hand_computed():
    # Bentur et al. (2009), Fagerland, Lydersen & Laake's paired example: a, b, c, d = 1, 1, 7, 12 (n = 21)
    x, y = _table(1, 1, 7, 12)
    theta, lo, hi = newcombe_paired_diff(x, y)
    assert theta == pytest.approx((1 - 7) / 21)
    # Wilson limits (z = 1.96) of 2/21 and 8/21, computed by hand from the closed form
    l1, u1 = 0.0265188, 0.2891414
    l2, u2 = 0.2075101, 0.5912135
    p1, p2 = 2 / 21, 8 / 21
    # A = ad - bc = 12 - 7 = 5 <= n / 2 = 10.5: Newcombe's corrected phi is 0
    exp_lo = theta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    exp_hi = theta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    assert lo == pytest.approx(exp_lo, abs=1e-6)
    assert hi == pytest.approx(exp_hi, abs=1e-6)
    # the book's interval, -0.2857 (-0.5069 to -0.0256); the uncorrected phi = 5 / sqrt(2 19 8 13) gave
    # (-0.5017 to -0.0361), too narrow
    assert lo == pytest.approx(-0.50692, abs=1e-4) and hi == pytest.approx(-0.02556, abs=1e-4)


def test_newcombe_phi_correction_branches():
    # Cavo et al. (2012), the book's second example: 59, 6, 16, 80 (n = 161): A = 4720 - 96 = 4624 > 80.5,
    # phi = (4624 - 80.5) / sqrt(65 96 75 86); the book: -0.0621 (-0.1186 to -0.0046)
    theta, lo, hi = newcombe_paired_diff(*_table(59, 6, 16, 80))
    assert theta == pytest.approx(-10 / 161)
    assert lo == pytest.approx(-0.11862, abs=1e-4) and hi == pytest.approx(-0.00463, abs=1e-4)
    # A < 0 (negatively correlated rows): phi = A / D, no correction. a, b, c, d = 0, 5, 4, 1 (n = 10)
    theta, lo, hi = newcombe_paired_diff(*_table(0, 5, 4, 1))
    p1, p2 = 0.5, 0.4
    (l1, u1), (l2, u2) = wilson_interval(5, 10), wilson_interval(4, 10)
    phi = (0 * 1 - 5 * 4) / math.sqrt(5 * 5 * 4 * 6)
    exp_lo = 0.1 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    exp_hi = 0.1 + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert (theta, lo, hi) == pytest.approx((0.1, exp_lo, exp_hi), abs=1e-9)


def test_newcombe_identical_rows_contain_zero():
    x = [1, 1, 0, 0, 1, 0, 1, 1, 1, 0]
    theta, lo, hi = newcombe_paired_diff(x, x)
    assert theta == 0.0 and lo < 0.0 < hi


def test_mcnemar_exact():
    # b = 1, c = 7: 2 * (C(8,0) + C(8,1)) / 2^8 = 2 * 9 / 256
    assert mcnemar_exact_p(*_table(1, 1, 7, 12)) == pytest.approx(18 / 256)
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


def test_hierarchical_bootstrap_crossed_runs_share_the_seeds():
    # three runs evaluated on the same 40 seeds with the same outcomes (one BORA-Offline cell paired with three
    # identical BORA-Full runs): the runs add no information, so the interval is the one run's, width about
    # 2 * 1.96 * sqrt(p (1 - p) / 40) with p = 0.25 (10 wins of 40). The nested design (each run its own seed
    # draws) averages the seeds' noise over the three runs: about sqrt(3) narrower, the defect of 2026-12-07
    x, y = [1] * 10 + [0] * 30, [0] * 40
    closed = 2 * 1.96 * math.sqrt(0.25 * 0.75 / 40)
    est, lo, hi = hierarchical_bootstrap_diff({"t": [(x, y)] * 3}, n_boot=20000, seed=2)
    assert est == 0.25 and (hi - lo) == pytest.approx(closed, rel=0.1)
    _, lo_n, hi_n = hierarchical_bootstrap_diff({"t": [(x, y)] * 3}, n_boot=20000, seed=2, design="nested")
    assert (hi_n - lo_n) == pytest.approx(closed / math.sqrt(3), rel=0.15)
    with pytest.raises(ValueError, match="same evaluation seeds"):
        hierarchical_bootstrap_diff({"t": [(x, y), (x[:20], y[:20])]})
    with pytest.raises(ValueError, match="design must be"):
        hierarchical_bootstrap_diff({"t": [(x, y)]}, design="paired")


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
