"""Statistics of the evidence report (issue 14): AUROC, paired differences and bootstrap intervals.

numpy, and scipy for Student's t quantile. Every interval is two-sided 95% unless ``level`` says otherwise.

* :func:`auroc`: area under the ROC curve as the Mann-Whitney statistic with mid-ranks for ties,
  ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` = P(score_pos > score_neg) + 1/2 P(tie).
  :func:`auroc_se`: Hanley & McNeil (1982) standard error.
* :func:`wilson_interval` (re-exported from ``report``): one cell's success rate.
* :func:`newcombe_paired_diff`: difference of two paired proportions (the same seeds, two rows) with
  Newcombe's (1998) hybrid-score interval, method 10, as written in Fagerland, Lydersen & Laake (2013):
  ``theta = (b - c) / n``; with the Wilson limits ``(l1, u1)``, ``(l2, u2)`` of ``p1 = (a + b) / n`` and
  ``p2 = (a + c) / n`` and Newcombe's continuity-corrected correlation: with ``A = a d - b c`` and
  ``D = sqrt((a+b)(c+d)(a+c)(b+d))``, ``phi = (A - n/2) / D`` when ``A > n/2``, ``0`` when ``0 <= A <= n/2``,
  ``A / D`` when ``A < 0`` (0 when a margin is 0; without the correction, as before 2026-12-07, the interval is
  too narrow when the rows are positively correlated, e.g. Bentur et al.'s table a, b, c, d = 1, 1, 7, 12 gave
  [-50.2, -3.6] instead of the book's [-50.7, -2.6] points):
  ``L = theta - sqrt((p1-l1)^2 - 2 phi (p1-l1)(u2-p2) + (u2-p2)^2)``,
  ``U = theta + sqrt((u1-p1)^2 - 2 phi (u1-p1)(p2-l2) + (p2-l2)^2)``.
  Here a = both rows succeed, b = only row 1, c = only row 2, d = neither. :func:`mcnemar_exact_p`:
  the exact two-sided McNemar test on the discordant pairs.
* :func:`paired_bootstrap_diff`: mean paired difference with a percentile bootstrap interval over
  evaluation seeds, stratified by task when several tasks are pooled (every task keeps its own number of
  seeds in each resample); the pooled estimate is the mean over tasks of each task's mean difference
  (tasks weigh equally, as in the paper's "Average" rows).
* :func:`hierarchical_bootstrap_diff`: a bootstrap covering training seeds (or online runs) and trials, our
  choice for "intervals that cover both seeds and trials" (issue 14). ``design="crossed"`` (the default; every
  run evaluated on the same evaluation seeds, as the protocol's paired design does): within each task one
  replicate draws the runs and, independently, the evaluation seeds, each with replacement, and averages the
  paired differences over the drawn runs x drawn seeds (the pigeonhole bootstrap, Owen 2007, Ann. Appl. Stat.
  1(2); mildly conservative). Until 2026-12-07 every drawn run drew its own evaluation seeds (the nested
  two-stage bootstrap, Davison & Hinkley 1997 Sec. 3.8): with shared seeds, and one BORA-Offline cell paired
  with every online run, that averages the seeds' noise over the runs and gave intervals too narrow (over three
  online runs per task +4.1 [+0.7, +7.9] instead of [-1.5, +9.6]). ``design="nested"`` keeps it for runs
  evaluated on seeds of their own.
* :func:`t_interval`: mean +- t_{n-1} s / sqrt(n) over per-training-seed differences (the cluster-summary
  analysis of clustered data). With 3-8 training seeds a percentile bootstrap over seeds is too narrow (it draws
  from n values only and uses no small-sample correction); the t interval is the conservative companion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from bora_trainer.report import wilson_interval

__all__ = [
    "auroc",
    "auroc_se",
    "wilson_interval",
    "newcombe_paired_diff",
    "mcnemar_exact_p",
    "paired_bootstrap_diff",
    "hierarchical_bootstrap_diff",
    "t_interval",
]

Z95 = 1.959963984540054


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """AUROC of ``scores`` for the positive ``labels`` (Mann-Whitney U / (n_pos n_neg), mid-ranks)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"auroc: scores {s.shape} and labels {y.shape} must be equal 1-D arrays")
    if not np.all(np.isfinite(s)):
        raise ValueError("auroc: scores must be finite")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"auroc: needs both classes, got {n_pos} positive and {n_neg} negative")
    r_pos = _midranks(s)[y].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auroc_se(a: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUROC ``a``:
    ``sqrt((a(1-a) + (n_pos-1)(Q1-a^2) + (n_neg-1)(Q2-a^2)) / (n_pos n_neg))``, Q1 = a/(2-a), Q2 = 2a^2/(1+a)."""
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def _paired_table(x: Sequence[bool], y: Sequence[bool]) -> tuple[int, int, int, int]:
    x = np.asarray(x, dtype=bool)
    y = np.asarray(y, dtype=bool)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"paired outcomes must be equal non-empty 1-D arrays, got {x.shape} and {y.shape}")
    return int((x & y).sum()), int((x & ~y).sum()), int((~x & y).sum()), int((~x & ~y).sum())


def newcombe_paired_diff(x: Sequence[bool], y: Sequence[bool], z: float = Z95) -> tuple[float, float, float]:
    """``(p_x - p_y, lower, upper)`` for paired binary outcomes (module docstring, Newcombe method 10)."""
    a, b, c, d = _paired_table(x, y)
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c  # Newcombe's continuity correction of phi (module docstring)
    cross = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = cross / math.sqrt(den) if den > 0 else 0.0
    theta = (b - c) / n
    lo = theta - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    hi = theta + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return theta, max(-1.0, lo), min(1.0, hi)


def mcnemar_exact_p(x: Sequence[bool], y: Sequence[bool]) -> float:
    """Exact two-sided McNemar p-value: ``min(1, 2 P(Binom(b + c, 1/2) <= min(b, c)))``."""
    _, b, c, _ = _paired_table(x, y)
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2.0**m
    return min(1.0, 2.0 * tail)


def _percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_bootstrap_diff(
    strata: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(estimate, lower, upper)``: the mean over strata (tasks) of ``mean(x - y)``; each stratum holds the
    paired outcomes ``(x, y)`` of two rows on the same evaluation seeds, resampled within the stratum."""
    diffs = []
    for name, (x, y) in strata.items():
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1 or x.size == 0:
            raise ValueError(f"paired_bootstrap_diff: stratum {name!r}: x {x.shape} and y {y.shape} must be "
                             "equal non-empty 1-D arrays (the same seeds)")
        diffs.append(x - y)
    if not diffs:
        raise ValueError("paired_bootstrap_diff: no strata")
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for d in diffs:
        boot += d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    boot /= len(diffs)
    est = float(np.mean([d.mean() for d in diffs]))
    return (est, *_percentile_interval(boot, level))


def hierarchical_bootstrap_diff(
    strata: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
    n_boot: int = 4000,
    level: float = 0.95,
    seed: int = 0,
    design: str = "crossed",
) -> tuple[float, float, float]:
    """``(estimate, lower, upper)`` of the mean paired difference covering training seeds (runs) and trials.

    ``strata[task]`` is a list over runs of ``(x, y)``: the two rows' outcomes on the same evaluation seeds,
    trained with the same training seed (or: run r of a row and the row it is paired with). The estimate is the
    mean over tasks of the mean over that task's runs of ``mean(x - y)``. ``design="crossed"``: every run's
    arrays are on the SAME evaluation seeds in the same order; a replicate draws runs and seeds independently
    and averages the differences over the drawn runs x seeds. ``design="nested"``: each run has seeds of its
    own; a replicate draws runs, then seeds within each drawn run (module docstring)."""
    if design not in ("crossed", "nested"):
        raise ValueError(f"hierarchical_bootstrap_diff: design must be 'crossed' or 'nested', got {design!r}")
    rng = np.random.default_rng(seed)
    est_tasks, boot_tasks = [], []
    for name, seeds in strata.items():
        diffs = []
        for x, y in seeds:
            x = np.asarray(x, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64)
            if x.shape != y.shape or x.ndim != 1 or x.size == 0:
                raise ValueError(f"hierarchical_bootstrap_diff: stratum {name!r}: unequal or empty paired arrays")
            diffs.append(x - y)
        if not diffs:
            raise ValueError(f"hierarchical_bootstrap_diff: stratum {name!r} has no training seeds")
        est_tasks.append(float(np.mean([d.mean() for d in diffs])))
        n_runs = len(diffs)
        pick = rng.integers(0, n_runs, size=(n_boot, n_runs))  # which runs each replicate draws
        if design == "crossed":
            if len({d.size for d in diffs}) != 1:
                raise ValueError(f"hierarchical_bootstrap_diff: stratum {name!r}: design 'crossed' needs every "
                                 f"run on the same evaluation seeds, got {[d.size for d in diffs]} seeds per run")
            mat = np.stack(diffs)  # [runs, seeds]
            cols = rng.integers(0, mat.shape[1], size=(n_boot, mat.shape[1]))  # the seeds, shared by the runs
            # mean over drawn runs x drawn seeds = mean over drawn runs of each run's mean over the drawn seeds
            run_means = np.stack([mat[r][cols].mean(axis=1) for r in range(n_runs)], axis=1)  # [n_boot, runs]
            boot_tasks.append(np.take_along_axis(run_means, pick, axis=1).mean(axis=1))
        else:
            # per run, n_boot resampled trial means; a run drawn twice gets two independent trial resamples
            seed_means = np.stack([d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1) for d in diffs])
            shift = (np.arange(n_boot)[:, None] + 7919 * np.arange(n_runs)[None, :]) % n_boot
            boot_tasks.append(seed_means[pick, shift].mean(axis=1))
    if not est_tasks:
        raise ValueError("hierarchical_bootstrap_diff: no strata")
    boot = np.mean(boot_tasks, axis=0)
    return (float(np.mean(est_tasks)), *_percentile_interval(boot, level))


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lower, upper)``: ``mean +- t_{n-1, (1+level)/2} * s / sqrt(n)`` with ``s`` the sample standard
    deviation (ddof 1) of ``values``, e.g. one paired difference per training seed (module docstring)."""
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"t_interval: values must be at least 2 finite numbers, got {list(v.ravel())[:8]}")
    m = float(v.mean())
    half = float(student_t.ppf(0.5 + level / 2.0, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half
