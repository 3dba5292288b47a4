"""Fit a concept's detector of playing alone (`sae.alone`) from clips where it plays alone and clips where it does not.

The rows of every clip at the hook go through the SAE and the detector's causal memory (`sae.alone.memory_rows`);
every row of a clip of the concept alone (a drum solo) is a positive, every row of the other clips (mixes with the
concept, clips without it) a negative. A quarter of the clips (stratified, never splitting a source group) is held
out to choose the regularisation (AUROC) and the threshold (at most 1 % of their other frames called alone,
`sae.alone.fit_alone`); the detector is the fit on the rest.
What `off` puts on the frames it calls alone is the hook's activation of two seconds of silence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from realtime.audio_files import audio_digest, list_audio
from sae.alone import MEMORY_S, fit_alone, memory_rows
from sae.bank import ConceptAlone
from sae.errors import UserError
from sae.stats import auroc_score_interval

MIN_ALONE = 4
"""Clips of the concept alone needed: one held out, three to fit, at the least."""


def alone_folder(folder: Path) -> str | None:
    """A concept's folder of clips of it alone (`data make` writes `concepts/<c>/alone`), where it holds enough
    audio files to fit the detector; None otherwise. A folder that cannot be listed is a UserError, not "no solos"."""
    if not folder.is_dir():
        return None
    return str(folder) if len(list_audio(folder, "--alone folder", empty_ok=True)) >= MIN_ALONE else None


def check_alone_sources(files: Sequence[Path], groups: Sequence[str]) -> None:
    """UserError when every clip of the concept alone is one source: the detector is chosen on solos held out from
    the ones it is fitted on, and folds never split a source."""
    if len(set(groups)) < 2:
        raise UserError(
            f"--alone: all {len(files)} clips of it alone are one source ({groups[0]!r} under --groups); folds "
            "never split a source, so the detector needs solos from at least 2"
        )


def held_out_fold(y_clip: np.ndarray, seed: int, groups: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) clip indices: the first of 4 folds (never splitting a source) whose both parts hold clips
    of the concept alone (1) and others (0); UserError where no fold does."""
    from sae.probe import _folds

    for fit, val in _folds(y_clip, 4, seed, groups):
        if np.unique(y_clip[fit]).size == 2 and np.unique(y_clip[val]).size == 2:
            return fit, val
    raise UserError(
        "--alone: no fold of the sources holds clips of it alone out while fitting on others; give solos from "
        "more sources"
    )


def held_units(y_clip: np.ndarray, val: np.ndarray, groups: Sequence[str] | None) -> tuple[int, int, str]:
    """The held-out units alone and not (clips; sources where `groups` made the fold hold out whole sources: hunt 196,
    3 clips of one recording are one unit of evidence), and the unit's name."""
    if groups is None:
        n = int(y_clip[val].sum())
        return n, len(val) - n, "clip"
    solo, other = ({groups[i] for i in val if y_clip[i] == side} for side in (1, 0))
    return len(solo), len(other), "source"


def find_alone(
    model,
    sae,
    hook: str,
    alone: Sequence[tuple[Path, torch.Tensor]],
    others: Sequence[tuple[Path, torch.Tensor]],
    memory_s: float = MEMORY_S,
    seed: int = 0,
    groups: Sequence[str] | None = None,
    digest: Callable[[Path], tuple[str, bool]] = audio_digest,
) -> tuple[ConceptAlone, str]:
    """The detector from rows [frames, width] at `hook` of clips of the concept `alone` and of `others` (a clip in
    both counts as alone); `groups`: the source of each clip of `alone` + `others`, never split between fit and
    validation; `digest`: what a clip sounds like (`audio_digest`, or the command's remembered `audio_digests`).
    Returns the detector and a line saying how it was chosen and how well it held out."""
    from training.rave.collect import activations_of

    if not memory_s > 0:
        raise UserError(f"--alone-memory {memory_s:g}: expected seconds > 0")
    if len(alone) < MIN_ALONE:
        raise UserError(f"--alone: {len(alone)} usable clips; expected at least {MIN_ALONE} of the concept alone")
    solos = {digest(p)[0] for p, _ in alone}  # by its samples: a solo is also a clip with the concept, maybe
    keep = [i for i, (p, _) in enumerate(others) if digest(p)[0] not in solos]  # copied, maybe re-encoded
    clips = list(alone) + [others[i] for i in keep]
    if groups is not None:
        groups = list(groups[: len(alone)]) + [groups[len(alone) + i] for i in keep]
    if len(clips) == len(alone):
        raise UserError("--alone: every clip with or without the concept is one of the clips of it alone")
    y_clip = np.r_[np.ones(len(alone)), np.zeros(len(clips) - len(alone))].astype(int)
    silence = activations_of(model, np.zeros(2 * model.sr, np.float32), [hook], 1 << 30)[hook]
    padded = -(-2 * model.sr // model.ratio) * model.ratio  # the clip as encoded: padded to whole latent frames
    seconds_per_row = padded / model.sr / len(silence)  # as the stream runs (latent: ratio / sr); 2 s / rows was not
    with torch.no_grad():
        rows = [
            memory_rows(sae.encode(z.float().to(sae.W_enc.device)), seconds_per_row, memory_s).numpy() for _, z in clips
        ]
    fit, val = held_out_fold(y_clip, seed, groups)

    def stack(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([rows[i] for i in idx]), np.concatenate([np.full(len(rows[i]), y_clip[i]) for i in idx])

    (X, y), (Xv, yv) = stack(fit), stack(val)
    intercept, coef, threshold, auc = fit_alone(X, y, Xv, yv, seed)
    p = 1 / (1 + np.exp(-(intercept + Xv @ coef)))
    hit, false = (100 * (p[m] > threshold).mean() for m in (yv == 1, yv == 0))
    detector = ConceptAlone(memory_s, intercept, tuple(coef.tolist()), threshold, tuple(silence[-1].tolist()), auc)
    # frames of one clip are alike: the interval counts clips, the unit held out (hunt 193: it rested on one solo
    # clip, unsaid, with no interval)
    n_solo = int(y_clip[val].sum())
    solo_units, other_units, unit = held_units(y_clip, val, groups)
    lo, hi = auroc_score_interval(auc, solo_units, other_units)
    few = f"; only {solo_units} {unit}(s) of it alone held out: the figures rest on them" if solo_units < 3 else ""
    whence = f", {solo_units} source(s)" if groups is not None else ""
    line = (
        f"alone: a detector on a {memory_s:g} s memory of the features, from {len(alone)} clips of it alone and "
        f"{len(clips) - len(alone)} others; on the frames of {len(val)} held-out clips ({n_solo} alone{whence}) AUROC "
        f"{auc:.3f} [{lo:.3f}, {hi:.3f}] (95 % interval over {unit}s), and at threshold {threshold:.3g} it calls "
        f"{hit:.0f} % of the alone frames and {false:.1f} % of the others alone (the frames its regularisation and "
        f"threshold were chosen on: optimistic, the false alarms set there){few}; `off` puts silence there"
    )
    return detector, line
