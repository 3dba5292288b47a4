"""Intervals and verdicts (sae/stats.py)."""

from __future__ import annotations

import numpy as np

from sae.probe import auroc as probe_auroc
from sae.stats import Interval, auroc, auroc_interval, paired_diff, permutation_auroc, rate_diff, verdict, wilson


def test_wilson_interval():
    iv = wilson(8, 10)
    assert iv.value == 80 and iv.n == 10
    assert abs(iv.lo - 49.0) < 0.2 and abs(iv.hi - 94.3) < 0.2  # the textbook Wilson interval for 8/10
    assert wilson(0, 20).lo == 0 and wilson(20, 20).hi == 100


def test_auroc_matches_the_probe_one_and_intervals_shrink_with_clips():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30), np.zeros(30)]
    s = y + rng.normal(0, 1.0, 60)
    s[:3] = s[-3:]  # ties
    assert abs(auroc(s, y) - probe_auroc(s, y)) < 1e-12
    small, big = auroc_interval(s[25:35], y[25:35]), auroc_interval(s, y)
    assert big.lo <= big.value <= big.hi
    assert big.hi - big.lo < small.hi - small.lo


def test_permutation_baseline():
    y = np.r_[np.ones(20), np.zeros(20)]
    perfect = permutation_auroc(y.copy(), y)
    assert perfect["p_value"] < 0.01 and 0.4 < perfect["mean"] < 0.6 and perfect["p95"] < 0.8
    noise = permutation_auroc(np.random.default_rng(1).normal(size=40), y)
    assert noise["p_value"] > 0.05


def test_paired_difference_and_verdicts():
    a = np.array([1, 1, 0, 0] * 10, bool)
    same = paired_diff(a, a)
    assert same.value == 0 and same.lo == 0 and same.hi == 0
    assert verdict(same, -10, 10) == "met"
    flipped = paired_diff(a, ~a)
    assert flipped.value == 0 and verdict(flipped, -10, 10) == "undecided"  # same rate, every clip changed
    gone = paired_diff(a, np.zeros(40, bool))
    assert gone.value == -50 and verdict(gone, -10, 10) == "missed"
    assert verdict(Interval(5, -12, 9, 20), -10, 10) == "undecided"
    assert verdict(Interval(60, 52, 70, 20), lo_goal=50) == "met"
    assert verdict(Interval(float("nan"), float("nan"), float("nan"), 0), -10, 10) == "undecided"


def test_rate_difference_of_two_independent_sets():
    """Unpaired: each set resampled on its own; the interval covers the true difference and narrows with items."""
    rng = np.random.default_rng(3)
    a, b = rng.random(400) < 0.3, rng.random(100) < 0.6
    d = rate_diff(a, b)
    assert d.n == 100 and d.value == 100 * (b.mean() - a.mean()) and d.lo < 30 < d.hi
    wide = rate_diff(a[:40], b[:20])
    assert wide.hi - wide.lo > d.hi - d.lo
    assert rate_diff(a, a[:0]).n == 0
