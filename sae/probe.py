"""Concept probes on clip-pooled activations: which SAE features carry a concept, and how well.

Given per-clip activations of two sides (clips *with* the concept and clips *without*):

- `pool` turns a clip's frames `[T, d]` into one vector (mean over frames).
- `select_features` ranks SAE features by how much more they fire with the concept (standardised
  difference of pooled means; only features that rise with the concept qualify, since steering `off`
  clamps features to zero) and keeps the top k.
- `fit_sparse_probe` is a k-sparse probe: the top-k features, then an L2 logistic regression on them
  (k chosen by inner cross-validation). Its positive weights, normalised to max 1, become the bank weights.
- Baselines on the raw activations (e.g. RAVE latents): a difference-in-means direction and an L2
  logistic probe.
- `compare_probes` reports out-of-fold (held-out) AUROC for all three with stratified k-fold CV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sae.bank import ConceptProbe
from sae.errors import UserError

K_CHOICES = (1, 2, 4, 8, 16, 32)


def pool(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean over frames of one clip `[T, d] -> [d]` (float64)."""
    x = frames.detach().cpu().double().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise UserError(f"clip activations of shape {tuple(x.shape)}: expected [frames >= 1, dim]")
    return x.mean(axis=0)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half), via the Mann-Whitney U statistic."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both classes")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def feature_effects(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Standardised mean difference (with − without) / pooled std, per column."""
    pos, neg = X[y == 1], X[y == 0]
    diff = pos.mean(0) - neg.mean(0)
    var = (pos.var(0) * max(len(pos) - 1, 0) + neg.var(0) * max(len(neg) - 1, 0)) / max(len(X) - 2, 1)
    return diff / np.sqrt(var + 1e-8)


def select_features(X: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Indices of up to k features with the largest positive effect (with > without), best first."""
    eff = feature_effects(X, y)
    order = np.argsort(-eff, kind="stable")
    keep = [int(i) for i in order[:k] if eff[i] > 0]
    return np.asarray(keep or [int(order[0])], dtype=np.int64)


class _Logistic:
    """L2-regularised logistic regression on standardised columns, fitted by Newton's method.

    Minimises 0.5‖w‖² + C Σ log(1 + exp(−yᵢ(w·xᵢ + b))) (intercept unpenalised): the objective of
    scikit-learn's `LogisticRegression(C)`, solved exactly in a few Newton steps (small problems: clips × k).
    """

    def __init__(self, C: float = 1.0, max_iter: int = 100, tol: float = 1e-10):
        self.C, self.max_iter, self.tol = C, max_iter, tol

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Logistic:
        X = np.asarray(X, np.float64)
        self.mean = X.mean(0)
        scale = X.std(0)
        self.scale = np.where(scale > 0, scale, 1.0)
        Z = np.c_[(X - self.mean) / self.scale, np.ones(len(X))]
        t = np.asarray(y, np.float64)
        w = np.zeros(Z.shape[1])
        pen = np.r_[np.ones(Z.shape[1] - 1), 0.0]

        def loss(v: np.ndarray) -> float:
            m = Z @ v
            return 0.5 * float(pen @ v**2) + self.C * float(np.sum(np.logaddexp(0.0, m) - t * m))

        current = loss(w)
        for _ in range(self.max_iter):
            p = 1.0 / (1.0 + np.exp(-(Z @ w)))
            grad = pen * w + self.C * Z.T @ (p - t)
            hess = np.diag(pen + 1e-9) + self.C * (Z.T * (p * (1 - p))) @ Z
            step = np.linalg.solve(hess, grad)
            lr = 1.0
            while lr > 1e-6:  # backtracking keeps every step a descent step
                trial = loss(w - lr * step)
                if trial <= current:
                    break
                lr *= 0.5
            w = w - lr * step
            done = current - trial < self.tol * max(1.0, abs(current))
            current = trial
            if done:
                break
        self.coef_, self.intercept_ = w[:-1], w[-1]
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, np.float64) - self.mean) / self.scale) @ self.coef_ + self.intercept_


def _logistic(C: float = 1.0) -> _Logistic:
    return _Logistic(C)


@dataclass
class SparseProbe:
    """A fitted k-sparse probe: chosen feature indices, their weights (normalised, max |w| = 1)."""

    indices: np.ndarray
    weights: np.ndarray
    model: object = field(repr=False, default=None)

    def score(self, X: np.ndarray) -> np.ndarray:
        return self.model.decision_function(X[:, self.indices])

    def linear(self) -> tuple[np.ndarray, float]:
        """(coef [k], intercept) in raw units: `score(X) == X[:, indices] @ coef + intercept` (the bank's
        `probe` entry; sigmoid of it is the probe's probability, see `sae.meter`)."""
        m = self.model
        coef = np.asarray(m.coef_, np.float64).reshape(-1) / m.scale
        return coef, float(m.intercept_ - m.mean @ coef)


def concept_probe(probe: SparseProbe) -> ConceptProbe:
    """The bank's `probe` entry (raw-unit coefficients by feature index, intercept) of a fitted probe."""
    coef, intercept = probe.linear()
    return ConceptProbe(intercept, {int(i): float(c) for i, c in zip(probe.indices.tolist(), coef, strict=True)})


def _folds(y: np.ndarray, n_splits: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    n_splits = max(2, min(n_splits, int(y.sum()), int((1 - y).sum())))
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)


def fit_sparse_probe(X: np.ndarray, y: np.ndarray, k: int | None = None, seed: int = 0) -> SparseProbe:
    """Fit the k-sparse probe; with `k=None` choose k from K_CHOICES by inner CV AUROC (ties → smaller k)."""
    X, y = np.asarray(X, np.float64), np.asarray(y).astype(int)
    if k is None:
        best = (-1.0, 1)
        for kk in K_CHOICES:
            if kk > X.shape[1]:
                break
            scores = np.zeros(len(y))
            for tr, te in _folds(y, 3, seed):
                sub = select_features(X[tr], y[tr], kk)
                scores[te] = _logistic().fit(X[tr][:, sub], y[tr]).decision_function(X[te][:, sub])
            a = auroc(scores, y)
            if a > best[0] + 1e-9:
                best = (a, kk)
        k = best[1]
    idx = select_features(X, y, k)
    model = _logistic().fit(X[:, idx], y)
    coef = model.coef_.reshape(-1)  # per standardised feature: importance, not units (typical carries units)
    keep = coef > 0
    if not keep.any():
        keep[np.argmax(coef)] = True
    idx, coef = idx[keep], coef[keep]
    model = _logistic().fit(X[:, idx], y)
    top = float(np.abs(coef).max())
    return SparseProbe(idx, coef / top if top > 0 else np.zeros_like(coef), model)


def diff_means_scores(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray) -> np.ndarray:
    """Project onto the unit direction mean(with) − mean(without) of the training clips, from their midpoint."""
    mu1, mu0 = X_tr[y_tr == 1].mean(0), X_tr[y_tr == 0].mean(0)
    direction = (mu1 - mu0) / (np.linalg.norm(mu1 - mu0) + 1e-12)
    return (X_te - (mu1 + mu0) / 2) @ direction


@dataclass
class ProbeReport:
    """Out-of-fold AUROC per method and the final probe fitted on every clip."""

    auroc: dict[str, float]
    probe: SparseProbe
    n_with: int
    n_without: int
    folds: int

    def best_baseline(self) -> tuple[str, float]:
        name = max(("diff_means", "logistic_raw"), key=lambda n: self.auroc[n])
        return name, self.auroc[name]

    @property
    def sae_wins(self) -> bool:
        return self.auroc["sae_probe"] >= self.best_baseline()[1]


def compare_probes(
    sae_pooled: np.ndarray,
    raw_pooled: np.ndarray,
    y: Sequence[int],
    k: int | None = None,
    folds: int = 5,
    seed: int = 0,
) -> ProbeReport:
    """Held-out AUROC (stratified k-fold, out-of-fold scores) for the SAE sparse probe and both raw baselines.

    Args:
        sae_pooled: [clips, d_sae] pooled SAE features.
        raw_pooled: [clips, d_in] pooled raw activations.
        y: 1 for clips with the concept, 0 without.
        k: features for the sparse probe (None: chosen by inner CV on each training fold).
    """
    S, R, y = np.asarray(sae_pooled, np.float64), np.asarray(raw_pooled, np.float64), np.asarray(y).astype(int)
    if len(S) != len(y) or len(R) != len(y):
        raise ValueError("pooled arrays and labels differ in length")
    scores = {m: np.zeros(len(y)) for m in ("sae_probe", "diff_means", "logistic_raw")}
    n_folds = 0
    for tr, te in _folds(y, folds, seed):
        n_folds += 1
        scores["sae_probe"][te] = fit_sparse_probe(S[tr], y[tr], k, seed).score(S[te])
        scores["diff_means"][te] = diff_means_scores(R[tr], y[tr], R[te])
        scores["logistic_raw"][te] = _logistic().fit(R[tr], y[tr]).decision_function(R[te])
    result = {m: auroc(s, y) for m, s in scores.items()}
    return ProbeReport(result, fit_sparse_probe(S, y, k, seed), int(y.sum()), int((1 - y).sum()), n_folds)
