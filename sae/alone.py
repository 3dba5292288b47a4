"""When a concept plays alone, and what `off` puts there.

An `off` that zeroes a concept's features is one map for every frame: on a drum solo it leaves the other
features and the SAE's error term, which the model renders as the hits in another timbre (measured on the demo
model: a guitar-like sound at the solo's level). A frame holds a concept alone when removing the concept would
leave silence there; the SAE's features of one frame cannot tell that, but their recent past can. So a logistic
regression reads a causal exponential mean of log1p(f) (time constant `memory_s`, so it runs live, block by
block) and, where a concept with a detector is switched `off`, frames it calls alone get the hook's activation of
silence, whatever else the edit does there (`sae.bank.ConceptAlone`). The memory runs on every block whatever the
controls say, so switching `off` in the middle of a solo acts at once. The nn~ module (`training.rave.nn_module`)
holds its own TorchScript copy of the memory and the regression, checked against the engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import Tensor

from sae.bank import ConceptAlone
from sae.errors import UserError
from sae.seeds import sklearn_seed

MEMORY_S = 2.0
"""The detector's default memory, seconds: long enough to hear that nothing else plays, short enough to follow a
song's sections."""


AUROC_TIE = 0.005
"""Validation AUROCs this close count as one (the most regularised of them is kept)."""
FALSE_ALARMS = 0.01
"""The share of the validation frames without the concept alone a detector may call alone."""


def memory_rows(f: Tensor, seconds_per_row: float, memory_s: float, start: Tensor | None = None) -> Tensor:
    """Causal exponential mean of log1p(f) over rows [T, d_sae] (`start`: the memory before the first row, else
    zeros) → [T, d_sae] float64: the memory after each row."""
    alpha = 1.0 - math.exp(-seconds_per_row / memory_s)
    x = torch.log1p(f.detach().double().clamp_min(0)).cpu()
    out = torch.empty_like(x)
    m = torch.zeros(x.shape[-1], dtype=torch.float64) if start is None else start
    for t in range(len(x)):
        m = m + alpha * (x[t] - m)
        out[t] = m
    return out


class AloneDetector:
    """One concept's detector on one stream of SAE feature rows; keeps its memory between calls."""

    def __init__(self, alone: ConceptAlone):
        self.alone = alone
        self.coef = torch.tensor(alone.coef, dtype=torch.float64)
        self.memory: Tensor | None = None

    def reset(self) -> None:
        self.memory = None

    def __call__(self, f: Tensor, seconds_per_row: float) -> Tensor:
        """Rows [T, d_sae] → bool [T]: the concept plays alone there."""
        m = memory_rows(f, seconds_per_row, self.alone.memory_s, self.memory)
        self.memory = m[-1] if len(m) else self.memory
        p = torch.sigmoid(self.alone.intercept + m @ self.coef)
        return p > self.alone.threshold


class AloneSilence:
    """The detectors of a bank's concepts on one stream: each call updates every memory, then puts the hook's
    activation of silence on the rows where a concept in `off` plays alone (after the edit)."""

    def __init__(self, concepts: Mapping[str, ConceptAlone]):
        self.detectors = {name: AloneDetector(a) for name, a in concepts.items()}
        self.silence = {name: torch.tensor(a.silence, dtype=torch.float32) for name, a in concepts.items()}

    def __bool__(self) -> bool:
        return bool(self.detectors)

    def reset(self) -> None:
        for d in self.detectors.values():
            d.reset()

    def apply(self, rows: Tensor, f: Tensor, seconds: float, off: Iterable[str], gate: Tensor | None = None) -> Tensor:
        """Rows [.., T, d] at the hook (after the edit) covering `seconds` of audio, and the SAE features [.., T,
        d_sae] of the rows before it → rows with the hook's silence where a concept of `off` plays alone (the same
        object when none does), weighted per row by `gate` [.., T, 1] as every edit is (`sae.steering.Gate`: a
        closed gate silenced the quiet frames all the same, where the render said the edit did nothing)."""
        T = rows.shape[-2]
        f = f.reshape(-1, f.shape[-1])
        if len(f) != T:
            raise ValueError(f"rows of {tuple(rows.shape)}: expected one stream's rows [.., T, d]")
        alone = {name: d(f, seconds / max(T, 1)) for name, d in self.detectors.items()}
        off = set(off)
        out = rows
        for name, mask in alone.items():  # bank order, each its own silence, a later one over an earlier (as nn~)
            if name in off and bool(mask.any()):
                silenced = torch.where(mask.to(rows.device).unsqueeze(-1), self.silence[name].to(rows), out)
                out = silenced if gate is None else out + gate.to(rows) * (silenced - out)
        return out


def check_detectors(alone: Mapping[str, ConceptAlone], d_sae: int, width: int) -> Mapping[str, ConceptAlone]:
    """`alone` (name → `ConceptAlone`, as `sae.steering.EditState.alone` collects them from the bank), checked
    against the SAE (`d_sae` features) and the hook (`width`): one line naming the concept where a length does not
    fit. Returns `alone`."""
    for name, a in alone.items():
        if len(a.coef) != d_sae:
            raise UserError(f"concept {name!r}: alone.coef has {len(a.coef)} numbers; expected the SAE's {d_sae}")
        if len(a.silence) != width:
            raise UserError(
                f"concept {name!r}: alone.silence has {len(a.silence)} numbers; expected the hook's width {width}"
            )
    return alone


def fit_alone(
    X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, seed: int = 0
) -> tuple[float, np.ndarray, float, float]:
    """A logistic regression of "the concept plays alone" on memory rows (`memory_rows`): the most regularised of
    those within `AUROC_TIE` of the best validation AUROC (where validation cannot tell them apart, the simplest
    held out best on a soundfont never seen: 85 % of its drum solos' frames against 25 % at the least regularised,
    `bench/learned_off.py`), its threshold the lowest that calls at most `FALSE_ALARMS` of the other
    validation rows alone (a frame silenced that should sound costs more than a solo frame left to the `off`).
    Returns (intercept, coef, threshold, validation AUROC)."""
    from sklearn.linear_model import LogisticRegression

    from sae.probe import auroc

    # one scale for all features (their RMS): the regularisation does not depend on the SAE's units, and the
    # features keep their relative sizes (standardising each feature held out far worse on a soundfont never seen)
    scale = float(np.sqrt((X**2).mean())) or 1.0
    state = sklearn_seed(seed)
    fits = {C: LogisticRegression(C=C, max_iter=3000, random_state=state).fit(X / scale, y) for C in (0.01, 0.1, 1.0)}
    scores = {C: m.predict_proba(X_val / scale)[:, 1] for C, m in fits.items()}
    aucs = {C: auroc(p, y_val) for C, p in scores.items()}
    C = min(c for c, a in aucs.items() if a >= max(aucs.values()) - AUROC_TIE)
    coef = fits[C].coef_[0].astype(np.float64) / scale
    intercept = float(fits[C].intercept_[0])
    # the scores as the detector computes them (the weights unscaled; sklearn's own rounded otherwise, and the row
    # at the threshold came out above it: 7 of 609 others called alone where 6 were allowed), with a margin for
    # another library's rounding (torch's, in the engine and the nn~ module)
    p = 1.0 / (1.0 + np.exp(-(intercept + X_val @ coef)))
    others = np.sort(p[~y_val.astype(bool)])
    k = int(np.floor(FALSE_ALARMS * len(others)))  # rows of the others allowed above the threshold
    threshold = float(others[len(others) - k - 1]) + 1e-12 if len(others) > k else 0.0  # calls alone above it
    return intercept, coef, min(threshold, 1.0), float(aucs[C])
