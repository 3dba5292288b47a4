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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sae.bank import ConceptClips, ConceptFeature, ConceptProbe
from sae.errors import UserError
from sae.examples import MIN_EXAMPLES
from sae.seeds import seeded, sklearn_seed
from sae.stats import Interval

K_CHOICES = (1, 2, 4, 8, 16, 32)


def pool(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean over frames of one clip `[T, d] -> [d]` (float64)."""
    x = frames.detach().cpu().double().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise UserError(f"clip activations of shape {tuple(x.shape)}: expected [frames >= 1, dim]")
    return x.mean(axis=0)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half; `sae.stats.auroc`): nan when a score is NaN, ValueError when a
    class is missing."""
    from sae.stats import auroc as stats_auroc

    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("AUROC needs both classes")
    return stats_auroc(scores, labels)


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


def concept_features(probe: SparseProbe, fired: torch.Tensor) -> list[ConceptFeature]:
    """The bank's `features` entry of a fitted probe: each chosen feature with its probe weight and its typical
    activation in `fired` ([frames, d_sae], the SAE's features over the frames with the concept: the mean where it
    fires, else its largest magnitude, at least 1e-3), largest weight first (as `concept list` says)."""
    out = []
    for idx, w in zip(probe.indices.tolist(), probe.weights.tolist(), strict=True):
        col = fired[:, idx]
        active = col[col > 0]
        typical = float(active.mean()) if active.numel() else max(float(col.abs().max()), 1e-3)
        out.append(ConceptFeature(int(idx), float(w), max(typical, 0.0)))
    return sorted(out, key=lambda f: -f.weight)


def concept_intervals(report: ProbeReport) -> dict[str, tuple[float, float]]:
    """The bank's `auroc_interval` entry: each method's 95 % interval of its held-out AUROC (a method
    whose interval is not finite is left out rather than written as a made-up one)."""
    out = {}
    for m, iv in report.intervals.items():
        lo, hi = float(iv.get("lo", np.nan)), float(iv.get("hi", np.nan))
        if m in report.auroc and np.isfinite(lo) and np.isfinite(hi) and 0.0 <= lo <= hi <= 1.0:
            out[m] = (lo, hi)
    return out


def concept_clips(report: ProbeReport) -> ConceptClips:
    """The bank's `clips` entry: how many clips with and without the concept the AUROCs were measured on, and from
    how many sources where the search grouped them."""
    return ConceptClips(int(report.n_with), int(report.n_without), report.groups)


FOLD_TRIES = 200
"""Group assignments tried for folds whose every training part holds both classes."""


def _folds(y: np.ndarray, n_splits: int, seed: int, groups: Sequence | None = None) -> list[tuple[np.ndarray, ...]]:
    """Stratified k-fold splits; with `groups`, folds never split a group (`StratifiedGroupKFold`), and every
    training part holds clips with and without the concept (a source under both folders is in both classes, and
    a fold of it alone trained on one class: a traceback, or NaN AUROCs): the first such split `candidates` makes,
    else `UserError`."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        n_splits = max(2, min(n_splits, int(y.sum()), int((1 - y).sum())))
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=sklearn_seed(seed))
        return list(cv.split(np.zeros(len(y)), y))
    ids = np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1]
    n_splits = max(2, min(n_splits, len(set(ids[y == 1])), len(set(ids[y == 0])), int(ids.max()) + 1))
    n_groups = int(ids.max()) + 1

    def candidates() -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        """StratifiedGroupKFold's split, then (stratified greedily, it can miss an assignment that works) groups
        dealt to folds in `FOLD_TRIES` seeded orders: made one at a time, as far as the first that works."""
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=sklearn_seed(seed))
        yield list(cv.split(np.zeros(len(y)), y, ids))
        rng = np.random.default_rng(seed)
        for _ in range(FOLD_TRIES):
            fold_of = np.empty(n_groups, dtype=int)
            fold_of[rng.permutation(n_groups)] = np.arange(n_groups) % n_splits
            test = [np.flatnonzero(fold_of[ids] == f) for f in range(n_splits)]
            yield [(np.setdiff1d(np.arange(len(y)), te), te) for te in test]

    for splits in candidates():
        if all(np.unique(y[tr]).size == 2 for tr, _ in splits):
            return splits
    raise UserError(
        f"--groups: no split of the {n_groups} sources into {n_splits} folds leaves clips with and "
        "without the concept in every fold's training part (a source under both folders counts on both sides); "
        "give more sources, or fewer --folds"
    )


def check_groups(y: Sequence[int], groups: Sequence, folds: int) -> list[str]:
    """Notes on grouped cross-validation; `UserError` when a side's clips all come from one group (no fold could
    train on that side while testing on it)."""
    y = np.asarray(y).astype(int)
    g = np.asarray(groups, dtype=str)
    counts = {side: len(set(g[y == v])) for side, v in (("with", 1), ("without", 0))}
    for side, n in counts.items():
        if n == 0:
            raise UserError(f"--groups: no clips {side} the concept")
        if n < 2:
            only = g[y == (1 if side == "with" else 0)]
            raise UserError(
                f"--groups: every clip {side} the concept is in one group ({str(only[0])!r}); folds never split a "
                "group, so at least 2 groups per side are needed"
            )
    used = max(2, min(folds, *counts.values()))  # what `_folds` runs: never more folds than groups on a side
    notes = []
    for side, n in counts.items():
        if n < folds:
            notes.append(
                f"only {n} groups {side} the concept: folds never split a group, so {used} folds instead of "
                f"{folds}, and the held-out AUROC rests on {n} sources {side} it"
            )
    return notes


def fit_sparse_probe(
    X: np.ndarray, y: np.ndarray, k: int | None = None, seed: int = 0, groups: Sequence | None = None
) -> SparseProbe:
    """Fit the k-sparse probe; with `k=None` choose k from K_CHOICES by inner CV AUROC (ties → smaller k; the inner
    folds keep `groups` together too; with one clip of a side there is nothing to choose on: the smallest k)."""
    X, y = np.asarray(X, np.float64), np.asarray(y).astype(int)
    inner_groups = groups if groups is not None and _splittable(y, groups, 3) else None
    if k is None and min(y.sum(), len(y) - y.sum()) < 2:  # an inner fold would train on no clip of a side
        k = K_CHOICES[0]
    if k is None:
        best = (-1.0, 1)
        try:
            inner = _folds(y, 3, seed, inner_groups)
        except UserError:  # sources that cannot be split 3 ways with both classes in training: k is chosen on clips
            inner = _folds(y, 3, seed)
        for kk in K_CHOICES:
            if kk > X.shape[1]:
                break
            scores = np.zeros(len(y))
            for tr, te in inner:
                sub = select_features(X[tr], y[tr], kk)
                scores[te] = _logistic().fit(X[tr][:, sub], y[tr]).decision_function(X[te][:, sub])
            a = auroc(scores, y)
            if a > best[0] + 1e-9:
                best = (a, kk)
        k = best[1]
    idx = select_features(X, y, k)
    while True:  # features that fire more with the concept; the weights are the kept fit's own (not the first's)
        model = _logistic().fit(X[:, idx], y)
        coef = model.coef_.reshape(-1)  # per standardised feature: importance, not units (typical carries units)
        keep = coef > 0
        if keep.all() or len(idx) == 1:
            break
        idx = idx[keep] if keep.any() else idx[[int(np.argmax(coef))]]
    top = float(np.abs(coef).max())
    return SparseProbe(idx, coef / top if top > 0 else np.zeros_like(coef), model)


def fires_more(report: ProbeReport, X: np.ndarray, y: np.ndarray) -> bool:
    """Whether the probe has a feature of positive weight and a chosen feature fires more with the concept than
    without (pooled rows `X`, labels `y`): else its bank entry would steer a feature of the concept's absence."""
    return bool((report.probe.weights > 0).any() and (feature_effects(X, y)[report.probe.indices] > 0).any())


def _splittable(y: np.ndarray, groups: Sequence, folds: int) -> bool:
    g = np.asarray(groups, dtype=str)
    return min(len(set(g[y == 1])), len(set(g[y == 0]))) >= 2


def diff_means_scores(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray) -> np.ndarray:
    """Project onto the unit direction mean(with) − mean(without) of the training clips, from their midpoint."""
    mu1, mu0 = X_tr[y_tr == 1].mean(0), X_tr[y_tr == 0].mean(0)
    direction = (mu1 - mu0) / (np.linalg.norm(mu1 - mu0) + 1e-12)
    return (X_te - (mu1 + mu0) / 2) @ direction


BASELINES = ("diff_means", "logistic_raw")
"""The raw-activation probes the SAE probe is compared with."""


@dataclass
class ProbeReport:
    """Out-of-fold AUROC per method (with 95 % intervals: `sae.stats.auroc_interval`), the SAE-vs-baseline
    verdict, and the final probe fitted on every clip.

    `verdict` is `probe_verdict`'s: "SAE better" only when the paired bootstrap interval of the AUROC difference
    excludes 0 below for both raw baselines, "baseline better" only when one's 97.5 % interval does above, else
    "tied"; `difference` is the one that decided it. `permutation` is what the whole
    procedure (folds, feature selection, probe) reaches on shuffled labels: the chance level at this size.
    """

    auroc: dict[str, float]
    probe: SparseProbe
    n_with: int
    n_without: int
    folds: int
    intervals: dict[str, dict] = field(default_factory=dict)
    difference: dict | None = None
    verdict: str = "tied"
    permutation: dict | None = None
    groups: int | None = None
    notes: list[str] = field(default_factory=list)

    def best_baseline(self) -> tuple[str, float]:
        name = max(BASELINES, key=lambda n: self.auroc[n])
        return name, self.auroc[name]

    @property
    def sae_wins(self) -> bool:
        """The SAE probe beats the best raw baseline beyond the interval (not merely on the point estimate)."""
        return self.verdict == "SAE better"


def compare_probes(
    sae_pooled: np.ndarray,
    raw_pooled: np.ndarray,
    y: Sequence[int],
    k: int | None = None,
    folds: int = 5,
    seed: int = 0,
    groups: Sequence | None = None,
    permutations: int = 0,
) -> ProbeReport:
    """Held-out AUROC (stratified k-fold, out-of-fold scores) for the SAE sparse probe and both raw baselines.

    Args:
        sae_pooled: [clips, d_sae] pooled SAE features.
        raw_pooled: [clips, d_in] pooled raw activations.
        y: 1 for clips with the concept, 0 without.
        k: features for the sparse probe (None: chosen by inner CV on each training fold).
        groups: a source id per clip; folds never split a source, intervals resample whole sources.
        permutations: reruns of the whole procedure on shuffled labels (0: none) for the chance level.
    """
    from sae.stats import auroc_interval

    S, R, y = np.asarray(sae_pooled, np.float64), np.asarray(raw_pooled, np.float64), np.asarray(y).astype(int)
    if len(S) != len(y) or len(R) != len(y) or (groups is not None and len(groups) != len(y)):
        raise ValueError("pooled arrays, labels and groups differ in length")
    bad = np.flatnonzero(~(np.isfinite(S).all(1) & np.isfinite(R).all(1)))
    if len(bad):  # NaN ranked as the largest score: AUROCs of garbage with a verdict
        raise UserError(f"pooled features: {len(bad)} of {len(y)} clips hold NaN/inf (clip {bad[0]} first); "
                        "leave them out or collect them again")  # fmt: skip
    notes = check_groups(y, groups, folds) if groups is not None else []
    g = None if groups is None else np.asarray(groups, dtype=str)
    scores, n_folds = _oof_scores(S, R, y, k, folds, seed, g)
    result = {m: auroc(s, y) for m, s in scores.items()}
    report = ProbeReport(
        result,
        fit_sparse_probe(S, y, k, seed, g),
        int(y.sum()),
        int((1 - y).sum()),
        n_folds,
        groups=None if g is None else len(set(g)),
        notes=notes,
    )
    report.intervals = {m: auroc_interval(s, y, seed=seed, groups=g).as_dict() for m, s in scores.items()}
    report.verdict, base, diff = probe_verdict(scores, y, seed, g, report.best_baseline()[0])
    report.difference = {"baseline": base, **diff.as_dict()}
    if g is not None and (few := _fewest_sources(y, g)) < MIN_EXAMPLES:  # `probe_verdict` drew none: said why
        withheld = f"{few} source(s) on a side, below {MIN_EXAMPLES}"
        report.difference["withheld"] = withheld
        report.notes.append(f"{withheld}: no verdict is drawn (tied); the difference's interval resamples too few "
                            "sources to hold")  # fmt: skip
    if permutations > 0 and g is not None and (why := _unshufflable(y, g)):
        report.notes.append(why)  # every run would hand back the real labels: a "chance level" equal to the AUROC
        permutations = 0
    if permutations > 0:
        rng = seeded(seed, 1)
        null = []
        for _ in range(permutations):
            yp = shuffled_labels(y, g, rng)
            null.append(auroc(_oof_scores(S, R, yp, k, folds, seed, g, only_sae=True)[0]["sae_probe"], yp))
        null = np.array(null)
        report.permutation = {
            "runs": permutations,
            "mean": float(null.mean()),
            "p95": float(np.percentile(null, 95)),
            "max": float(null.max()),
            "p_value": float((1 + (null >= result["sae_probe"]).sum()) / (permutations + 1)),
        }
    return report


def probe_verdict(
    scores: dict[str, np.ndarray], y: np.ndarray, seed: int, groups: np.ndarray | None, best: str
) -> tuple[str, str, Interval]:
    """(verdict, baseline, difference): `"SAE better"` where the SAE probe beats both raw baselines (each 95 %
    interval of the difference above 0; the difference to `best`, the better baseline, given), "baseline better"
    where one beats it with the two comparisons' 5 % shared (Bonferroni: its 97.5 % interval given), else "tied"
    (the difference of a baseline whose 95 % interval holds 0: `best`'s where it does; `best`'s with fewer than
    `MIN_EXAMPLES` sources a side, whose bootstrap cannot hold a verdict). Against the better of two
    baselines picked on the same clips, one 95 % interval said "baseline better" in 5.8 % of draws where all three
    carry the same information (2.5 % nominal), and "SAE better" in 1 %."""
    from sae.stats import auroc_difference

    sae = scores["sae_probe"]
    order = [best] + [b for b in BASELINES if b != best]
    diffs = {b: auroc_difference(sae, scores[b], y, seed=seed, groups=groups) for b in order}
    if groups is not None and _fewest_sources(y, groups) < MIN_EXAMPLES:
        return "tied", best, diffs[best]  # a bootstrap of 2 sources a side: "baseline better" in 19 % of equal draws
    if all(d.lo > 0 for d in diffs.values()):
        return "SAE better", best, diffs[best]
    level = 1 - 0.05 / len(BASELINES)
    wide = {b: auroc_difference(sae, scores[b], y, seed=seed, groups=groups, level=level) for b in order}
    for b in order:
        if wide[b].hi < 0:
            return "baseline better", b, wide[b]
    held = [b for b in order if diffs[b].lo <= 0 <= diffs[b].hi]  # none where both 95 % ones sit below 0 alone
    return ("tied", held[0], diffs[held[0]]) if held else ("tied", best, wide[best])


def _fewest_sources(y: np.ndarray, groups: np.ndarray) -> int:
    """The sources (`groups`) on the side of `y` that has fewer: what a bootstrap of whole sources resamples."""
    return min(len(set(groups[y == v])) for v in (1, 0))


def _unshufflable(y: np.ndarray, groups: np.ndarray) -> str:
    """Why `shuffled_labels` cannot move a label with these `groups` (no source wholly with, or wholly without, the
    concept), or ""."""
    names, ids = np.unique(groups, return_inverse=True)
    pos, count = np.bincount(ids, weights=y), np.bincount(ids)
    sides = {"with": int((pos == count).sum()), "without": int((pos == 0).sum())}
    if min(sides.values()) > 0:
        return ""
    mixed = np.flatnonzero((pos > 0) & (pos < count))
    empty = next(side for side, n in sides.items() if n == 0)
    example = (
        f", such as {str(names[mixed[0]])!r}: clips of one name on both sides are one source" if len(mixed) else ""
    )
    return (  # the source named, whichever --groups rule made it (the hint named --groups prefix's, whatever the rule)
        f"no shuffled-label chance level: shuffling moves whole sources, and no source is wholly {empty} the concept "
        f"({len(mixed)} of {len(pos)} hold clips of both sides{example})"
    )


def shuffled_labels(y: np.ndarray, groups: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Labels shuffled for the chance level, with the unit the folds and intervals use: clip by clip without
    `groups`; with them, the labels of whole sources (clips of one source sound alike: shuffled clip by clip, the
    chance level came out far too low, and a third of pure-noise data sets beat their own 95th percentile). A source
    with clips of both labels keeps them (its real differences stay in the chance level: it errs high, not low)."""
    if groups is None:
        return rng.permutation(y)
    ids = np.unique(groups, return_inverse=True)[1]
    n = int(ids.max()) + 1
    pos, count = np.bincount(ids, weights=y, minlength=n), np.bincount(ids, minlength=n)
    pure = np.flatnonzero((pos == 0) | (pos == count))
    label = (pos == count).astype(int)
    label[pure] = rng.permutation(label[pure])
    out = y.copy()
    moved = np.isin(ids, pure)
    out[moved] = label[ids[moved]]
    return out


def _oof_scores(S, R, y, k, folds, seed, groups, only_sae: bool = False) -> tuple[dict[str, np.ndarray], int]:
    methods = ("sae_probe",) if only_sae else ("sae_probe", "diff_means", "logistic_raw")
    scores = {m: np.zeros(len(y)) for m in methods}
    n_folds = 0
    for tr, te in _folds(y, folds, seed, groups):
        n_folds += 1
        sub = None if groups is None else groups[tr]
        scores["sae_probe"][te] = fit_sparse_probe(S[tr], y[tr], k, seed, sub).score(S[te])
        if not only_sae:
            scores["diff_means"][te] = diff_means_scores(R[tr], y[tr], R[te])
            scores["logistic_raw"][te] = _logistic().fit(R[tr], y[tr]).decision_function(R[te])
    return scores, n_folds
