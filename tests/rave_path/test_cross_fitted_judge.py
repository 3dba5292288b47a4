"""The fidelity judge is cross-fitted: a clip is judged by detectors that never saw it (RAVE and MusicGen alike)."""

from __future__ import annotations

import numpy as np
import pytest

from sae.errors import UserError
from training.judge import FOLDS, CrossFittedJudge, fidelity_sets


def test_no_clip_is_judged_by_a_detector_trained_on_it():
    # features of pure noise and random labels: a detector that saw a clip remembers it (128 features, 40 clips),
    # one that did not can only guess
    rng = np.random.default_rng(1)
    n = 50
    rows = [{"index": i, "guitar": int(rng.integers(2))} for i in range(n)]
    X = rng.normal(size=(n, 128))
    used = list(range(n))
    judged = CrossFittedJudge.fit(X, rows, used, ["guitar"], 22050)
    assert sorted(judged.judges) == list(range(FOLDS))
    hits = judged({i: X[i] for i in used})["guitar"]
    labels = [bool(r["guitar"]) for r in rows]
    accuracy = np.mean([hits[i] == labels[i] for i in used])
    assert accuracy < 0.8  # an in-sample judge scores 1.0 here
    seen = judged.judges[0].detect_features(X)["guitar"]
    assert np.mean(seen[judged.fold != 0] == np.array(labels)[judged.fold != 0]) == 1.0
    only_some = judged({i: X[i] for i in (0, 7)})["guitar"]
    assert set(only_some) == {0, 7}
    # degraded copies of the clips (here: slightly moved features) train beside them, the judged fold's left out too
    X_degraded = X + 0.05 * rng.normal(size=X.shape)
    judged = CrossFittedJudge.fit(X, rows, used, ["guitar"], 22050, X_degraded)
    hits = judged({i: X[i] for i in used})["guitar"]
    assert np.mean([hits[i] == labels[i] for i in used]) < 0.8
    copies = judged.judges[0].detect_features(X_degraded)["guitar"]
    assert np.mean(copies[judged.fold != 0] == np.array(labels)[judged.fold != 0]) == 1.0


def test_fidelity_sets_cap_and_refuse():
    rows = [{"split": s} for s in ("train", "test", "holdout_font", "test", "holdout_font", "holdout_font")]
    assert fidelity_sets(rows, 2, "d") == {"held-out font": [2, 4], "in-font test": [1, 3]}
    assert fidelity_sets(rows, 0, "d")["held-out font"] == [2, 4, 5]
    with pytest.raises(UserError, match="no test-split or held-out-font clips"):
        fidelity_sets(rows[:1], 0, "d")
