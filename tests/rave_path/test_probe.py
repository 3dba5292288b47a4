"""Probes: AUROC, feature selection, and the side-by-side comparison on planted signals."""

from __future__ import annotations

import numpy as np
import torch

from sae.probe import auroc, compare_probes, fit_sparse_probe, pool


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=41), 1)  # ties
    y = rng.integers(0, 2, 41)
    pos, neg = s[y == 1], s[y == 0]
    pairs = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert abs(auroc(s, y) - pairs) < 1e-12
    assert auroc(np.arange(4.0), np.array([0, 0, 1, 1])) == 1.0


def test_pool_is_the_frame_mean():
    x = torch.arange(12.0).reshape(4, 3)
    assert np.allclose(pool(x), [4.5, 5.5, 6.5])


def _planted(seed: int, n: int = 40, d_sae: int = 128):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(int)
    S = np.abs(rng.normal(size=(n, d_sae))) * (rng.random((n, d_sae)) < 0.2)
    S[:, 17] += 2.0 * y  # the concept feature
    S[:, 40] += 0.8 * y  # a weaker one
    S[:, 5] += 2.0 * (1 - y)  # anti-concept: must not be picked (off clamps to zero)
    R = rng.normal(size=(n, 8))
    return S, R, y


def test_sparse_probe_picks_planted_features_with_positive_weights():
    S, _, y = _planted(0)
    probe = fit_sparse_probe(S, y)
    assert 17 in probe.indices.tolist() and 5 not in probe.indices.tolist()
    assert probe.weights.max() == 1.0 and (probe.weights > 0).all()
    assert probe.indices[np.argmax(probe.weights)] == 17


def test_compare_reports_when_sae_wins_and_when_it_does_not():
    S, R, y = _planted(1)
    rep = compare_probes(S, R, y)
    assert rep.auroc["sae_probe"] > 0.9 and rep.auroc["diff_means"] < 0.8 and rep.sae_wins
    R2 = R.copy()
    R2[:, 0] += 3.0 * y  # raw latents carry the concept plainly, SAE features only noise
    S2 = np.abs(np.random.default_rng(2).normal(size=S.shape))
    rep2 = compare_probes(S2, R2, y)
    assert rep2.auroc["diff_means"] > 0.9 and rep2.auroc["logistic_raw"] > 0.9 and not rep2.sae_wins


def test_newton_logistic_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sae.probe import _Logistic

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 6)) * [1, 2, 3, 0.5, 1, 10]
    y = (X[:, 0] + X[:, 2] / 3 + 0.7 * rng.normal(size=60) > 0).astype(int)
    ours = _Logistic(0.5).fit(X, y).decision_function(X)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-12, max_iter=10000)).fit(X, y)
    assert np.allclose(ours, ref.decision_function(X), atol=1e-5)
