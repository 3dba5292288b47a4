"""The outside judge: audio-only concept detectors (log-mel statistics of the harmonic and percussive parts +
logistic regression, trained on clean clips and a degraded copy of each), never shown SAE features or model
latents, and its reports (`judge.json`, `judge.png`, a rich table).
Used by the RAVE steering evaluation (`training/rave/judge.py`) and the MusicGen one (`training/musicgen/judge.py`).
"""

from __future__ import annotations

import functools
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.audio_files import resample
from sae.atomic import atomic_write_text
from sae.errors import UserError
from sae.examples import MIN_EXAMPLES
from sae.jsonfile import is_number, strict_json
from sae.plots import save_png
from sae.stats import (
    MIN_GROUPS,
    Interval,
    paired_diff,
    paired_rate_diff,
    rate_diff,
    runs_of,
    sign_test,
    verdict,
    wilson,
)
from training.data.concept_clips import CONCEPTS, HOLDOUT_SPLIT, solo_of

N_MELS = 64
GOALS = {"off_drop": 50.0, "on_rise": 50.0, "drift": 10.0}
FOLDS = 5
FIDELITY_CONCEPTS = ("guitar", "piano", "drums", "bass", "strings", "brass")
FIDELITY_GOAL_POINTS = 10.0  # reconstructions judged within ±this many points of the originals
JUDGE_SR = 22050  # every clip meets the judge at this rate
HPSS_KERNEL = 17
JUDGE_FEATURES = f"log-mel mean+std ({N_MELS} bands) of the harmonic and percussive parts (HPSS), at {JUDGE_SR} Hz"
FIDELITY_SETS = (("held-out font", HOLDOUT_SPLIT), ("in-font test", "test"))
DEGRADED_COPIES = (
    "and a degraded copy of each (each with probability 1/2: white noise at 15-35 dB SNR, a 2.5-8 kHz lowpass, "
    "a gain of -18..+6 dB)"
)


def concepts_to_judge(
    bank: Any, requested: Sequence[str], sha256: str, bank_path: str, model_name: str
) -> tuple[list[str], list[str]]:
    """The concepts a judge run measures: those `requested`, else the bank's concepts on this model (`sha256`) that
    the data manifest labels; and the notes (a line naming the bank's other concepts on this model, which the
    manifest cannot judge, when they were left out by default). A requested name the manifest does not label, or
    nothing to judge, is refused in one line."""
    names = list(requested) or [c.name for c in bank if c.name in CONCEPTS and c.model.sha256 == sha256]
    unlabelled = [c.name for c in bank if not requested and c.name not in CONCEPTS and c.model.sha256 == sha256]
    unknown = [n for n in names if n not in CONCEPTS]
    if unknown:
        raise UserError(
            f"concept {unknown[0]!r}: the data manifest has no label for it (labelled: {', '.join(CONCEPTS)})"
        )
    if not names:
        raise UserError(f"concept bank {bank_path}: no concept on {model_name} that the manifest labels")
    notes = [f"not judged: {', '.join(unlabelled)} (no label of that name in the data manifest)"] if unlabelled else []
    return names, notes


def watched(watch: Sequence[str], steered: Sequence[str]) -> list[str]:
    """The concepts judged for the drift only: `watch` less the steered ones; a name the manifest does not label is
    refused in one line."""
    unknown = [w for w in watch if w not in CONCEPTS]
    if unknown:
        raise UserError(
            f"--watch {unknown[0]}: the data manifest has no label for it (labelled: {', '.join(CONCEPTS)})"
        )
    return [w for w in dict.fromkeys(watch) if w not in steered]


def goals_met(
    off_drop: float,
    on_rise: float,
    drift: float | None,
    n_off: int,
    n_on: int,
    off_low: float | None = None,
    on_low: float | None = None,
    goals: dict[str, float] = GOALS,
    drift_reach: float | None = None,
) -> dict[str, bool]:
    """Each goal met with a margin of at least one clip: a drop / rise one clip (100/n points) above the goal,
    a drift one clip below it, where n is the number of clips that figure is measured on (`n_off` for `off`,
    `n_on` for `on`; the drift uses the smaller). Where the lower ends of the drop's / rise's 95 % intervals
    are given, they must reach the goal too, and where `drift_reach` is (the farthest end from 0 of the drift
    intervals), it must lie within the drift goal: a goal is met only where its interval allows it. `goals`: the
    thresholds (these judges' by default; the MusicGen experiment's are its own). `drift` None: not measured (no
    other concept judged), so its goal is not met. No goal is met on fewer than `MIN_EXAMPLES` clips (2 clips
    that both moved say little: +100 [+7, +100])."""
    clip_off, clip_on = 100.0 / max(1, n_off), 100.0 / max(1, n_on)
    off_ok, on_ok = n_off >= MIN_EXAMPLES, n_on >= MIN_EXAMPLES
    return {
        "off_drop": off_ok
        and off_drop >= goals["off_drop"] + clip_off
        and (off_low is None or off_low >= goals["off_drop"]),
        "on_rise": on_ok and on_rise >= goals["on_rise"] + clip_on and (on_low is None or on_low >= goals["on_rise"]),
        "drift": off_ok
        and on_ok
        and drift is not None
        and drift <= goals["drift"] - max(clip_off, clip_on)
        and (drift_reach is None or drift_reach <= goals["drift"]),
    }


def drift_reach(*drifts: dict[str, dict]) -> float:
    """The farthest end from 0 of the drift intervals (`Interval.as_dict`) of every other concept, under each edit
    given: the drift `goals_met` needs within the goal."""
    return max((max(abs(d["lo"]), abs(d["hi"])) for drift in drifts for d in drift.values()), default=0.0)


def baseline_vs_sae(entry: dict[str, Any], name: str) -> dict[str, dict[str, Any]] | None:
    """The SAE edits of a judge entry against its mean-difference baseline, paired clip by clip: per edit, the SAE's
    drop (`off`, on the clips with `name`) or rise (`on` at each arm's chosen strength, on the clips the rise is
    reported on) minus the baseline's, in points with its 95 % paired interval, the clips where only one of them did
    it, and who is ahead: "SAE" or "baseline" where the whole interval says so and the exact sign test on those clips
    does too (p < 0.05: at least 6 clips to none, so one clip, or a few, never make a lead), else "tied". None
    without a baseline or the per-clip calls."""
    base = (entry or {}).get("baseline")
    calls = [_calls(e, name) for e in (entry, base)] if isinstance(base, dict) else [None]
    if None in calls:
        return None
    (sae_off, sae_on), (base_off, base_on) = calls
    if len(sae_off) != len(base_off) or len(sae_on) != len(base_on):
        return None
    out = {}
    # per edit: (the SAE's calls, the baseline's), each clip True where that edit did what it should
    for key, sae_ok, base_ok in (("off_drop", ~sae_off, ~base_off), ("on_rise", sae_on, base_on)):
        diff = paired_diff(base_ok.astype(float), sae_ok.astype(float))
        sae_only, base_only = int((sae_ok & ~base_ok).sum()), int((base_ok & ~sae_ok).sum())
        p = sign_test(sae_only, base_only)
        out[key] = {**diff.as_dict(), "clips_sae_only": sae_only, "clips_baseline_only": base_only, "sign_test_p": p,
                    "ahead": ahead(diff.lo, diff.hi, p)}  # fmt: skip
    return out


def ahead(lo: float, hi: float, sign_p: float) -> str:
    """Who leads in a paired SAE-minus-baseline comparison: "SAE" or "baseline" where the whole interval [lo, hi]
    says so and the exact sign test on the clips where they differ does too (p < 0.05), else "tied"."""
    if sign_p >= 0.05:
        return "tied"
    return "SAE" if lo > 0 else "baseline" if hi < 0 else "tied"


def _calls(entry: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The judge's per-clip calls on `name` after `off` (clips with it) and after `on` (clips without), or None."""
    per_clip = entry.get("per_clip") or {}
    try:
        off, on = per_clip["off_with"][name], per_clip["on_without"][name]
    except (KeyError, TypeError):
        return None
    return np.asarray(off, bool), np.asarray(on, bool)


def none_where_on(entry: dict[str, Any]) -> float:
    """The judge's rate on the plain reconstructions of the clips a RAVE entry's `on` is reported on: the test half
    of the clips without the concept where its strength was chosen, else all of them (`on_clips`)."""
    if entry.get("on_clips") == "all":
        return entry["none"]["without"]
    return entry.get("none_without_test", entry["none"]["without"])


def on_clip_count(entry: dict[str, Any]) -> int:
    """How many clips without the concept a RAVE entry's `on` is reported on (`none_where_on`'s clips)."""
    if entry.get("on_clips") == "all":
        return int(entry["held_out_without"])
    return int(entry.get("held_out_without_test", entry["held_out_without"]))


def _side_counts(entry: dict[str, Any]) -> dict[str, int | None]:
    """The clips `off` (with) and `on` (without) of a judge entry are reported on: RAVE's held-out clips, or
    MusicGen's renders (one set of prompts for both); None where the entry does not say."""
    n_on = on_clip_count(entry) if "held_out_without" in entry else None
    return {"with": entry.get("held_out_with", entry.get("renders")), "without": n_on or entry.get("renders")}


def too_few(entry: dict[str, Any], goals: dict[str, float] | None = None) -> str | None:
    """Why a goal of an entry cannot be met whatever its edits did, in words: a side with fewer than
    `MIN_EXAMPLES` clips (or renders; `goals_met`: no goal), or (MusicGen, the prompt the unit, with the entry's
    `goals` given) too few prompts for an edit that moved every render to reach the drop or rise goal
    (`blocked_goals` says which); None when nothing stands in the way. At 4 renders a perfect edit read as one that
    "could be neither taken out nor put in"."""
    if short := _too_few_clips(entry):
        return short
    prompts, renders = _prompt_count(entry), entry.get("renders")
    best, keys = unreachable_goals(renders, prompts, goals)
    if not keys:
        return None
    missed = [f"{_GOAL_WORDS[k]} (goal {goals[k]:g})" for k in keys]  # keys only where goals were given
    return (f"too few prompts to show {' or '.join(missed)}: {prompts} prompt{'s' * (prompts != 1)} (below "
            f"{MIN_GROUPS} each counts as one outcome, however many renders: an edit that moved all {renders} reads "
            f"at least {math.floor(best):+d})")  # fmt: skip


_GOAL_WORDS = {"off_drop": "taking out", "on_rise": "putting in"}


def blocked_goals(entry: dict[str, Any], goals: dict[str, float] | None = None) -> set[str]:
    """The goals of an entry that no edit could meet (`too_few`): every one on too few clips, else those a perfect
    edit on this many prompts falls short of."""
    if _too_few_clips(entry):
        return {"off_drop", "on_rise", "drift"}
    return set(unreachable_goals(entry.get("renders"), _prompt_count(entry), goals)[1])


def unreachable_goals(renders: Any, prompts: int | None, goals: dict[str, float] | None) -> tuple[float, list[str]]:
    """The lower end of the 95 % interval of an edit that moved every one of `renders` renders of `prompts` prompts
    (as many of each; the prompt the unit: the most any edit can show there), and the drop / rise goals it falls
    short of; (nan, []) where the counts say nothing (no prompts, or renders not whole prompts)."""
    if not goals or not prompts or not isinstance(renders, int) or renders < prompts or renders % prompts:
        return float("nan"), []
    groups = runs_of(prompts, renders // prompts)
    best = paired_diff(np.zeros(renders, bool), np.ones(renders, bool), groups=groups).lo
    return best, [k for k in ("off_drop", "on_rise") if k in goals and best < goals[k]]


def _too_few_clips(entry: dict[str, Any]) -> str | None:
    """`too_few`'s count of clips (or renders) per side."""
    sides = _side_counts(entry)
    short = [f"{int(n)} {side}" for side, n in sides.items() if n is not None and int(n) < MIN_EXAMPLES]
    if not short:
        return None
    return f"too few clips to decide: {', '.join(short)} (a goal needs at least {MIN_EXAMPLES} per side)"


def _prompt_count(entry: dict[str, Any]) -> int | None:
    """The prompts a MusicGen entry's intervals count as their unit (`sae.stats.paired_diff`'s groups)."""
    ivs = entry.get("intervals") or {}
    drifts = [d for edit in (ivs.get("drift") or {}).values() for d in edit.values()]
    groups = [d.get("groups") for d in (ivs.get("off_drop"), ivs.get("on_rise"), *drifts) if isinstance(d, dict)]
    return max((g for g in groups if isinstance(g, int)), default=None)


def drift_missed(entry: dict[str, Any], goal: float) -> str:
    """Why an entry of the judge missed its drift goal, in words: the other concepts moved too far, or they stayed
    within the goal but not by a clip's margin (`goals_met`), which at a few clips no drift can (one clip of four is
    25 points: "other concepts move by up to 0 points" was given as the reason), or by a margin but with intervals
    reaching past it (`drift_reach`: 12 clips where nothing moved reach ±24 points)."""
    drift = float(entry.get("max_drift", 0.0))
    counts = [int(n) for n in _side_counts(entry).values() if n]
    if drift <= goal and (few := _too_few_clips(entry)):  # within the goal: no count this small could meet it
        return few
    reach = entry.get("drift_reach")
    clip = "clip" if "held_out_with" in entry else "render"  # MusicGen's entries count renders
    if counts and drift <= goal - 100 / min(counts) and isinstance(reach, int | float) and reach > goal:
        if prompts := _prompt_count(entry):  # the prompt the unit (hunt 186: "too few renders" at 1200 renders)
            why = (f"below {MIN_GROUPS} prompts each counts as one outcome: more prompts narrow it, more seeds do not"
                   if prompts < MIN_GROUPS else "more prompts or seeds narrow it")  # fmt: skip
            return (f"other concepts moved by at most {drift:.0f} points, yet their 95 % intervals reach "
                    f"±{reach:.0f} at {prompts} prompt{'s' * (prompts != 1)} ({min(counts)} renders): too few to "
                    f"show a drift within {goal:.0f} ({why})")  # fmt: skip
        return (f"other concepts moved by at most {drift:.0f} points, yet their 95 % intervals reach ±{reach:.0f} "
                f"at {min(counts)} {clip}s: too few to show a drift within {goal:.0f}")  # fmt: skip
    if counts and drift <= goal:
        n = min(counts)
        return (f"other concepts moved by at most {drift:.0f} points, within {goal:.0f} but not by a {clip}'s "
                f"margin (one {clip} is {100 / n:.0f} points at {n} {clip}s)")  # fmt: skip
    return f"other concepts move by up to {drift:.0f} points"


def judge_shift(hits: dict[str, np.ndarray], rows: list[dict], concept: str) -> dict[str, Any]:
    """How the judge's call on every other concept moves where `concept` really plays, on clean clips: per other
    concept and per side (clips with / without it), its detection rate on clips without `concept`, on clips with
    it, and the difference (points, 95 % interval). The drift a perfect edit of `concept` would show to this
    judge (`hits`: its detections of the clips of the manifest `rows`)."""
    present = np.array([CONCEPTS[concept](r) for r in rows], bool)
    out: dict[str, Any] = {}
    for other, heard in hits.items():
        if other == concept:
            continue
        has = np.array([CONCEPTS[other](r) for r in rows], bool)
        out[other] = {}
        for side, want in (("with", True), ("without", False)):
            alone, joined = heard[(has == want) & ~present], heard[(has == want) & present]
            out[other][side] = {
                f"without_{concept}": wilson(int(alone.sum()), len(alone)).as_dict(),
                f"with_{concept}": wilson(int(joined.sum()), len(joined)).as_dict(),
                "shift": rate_diff(alone, joined).as_dict(),
            }
    return out


def moved_clips(
    before: dict[str, np.ndarray], after: dict[str, np.ndarray], rows: Sequence[dict], concept: str
) -> dict[str, dict[str, int]]:
    """Where an edit of `concept` drifts: per other concept, on how many of the clips (manifest `rows`) its call
    changed from `before` to `after`, and how many of those are solos of `concept` (`concept_clips.solo_of`)."""
    solo = np.array([solo_of(r, concept) for r in rows], bool)
    out = {}
    for other in after:
        if other == concept:
            continue
        moved = np.asarray(before[other], bool) != np.asarray(after[other], bool)
        out[other] = {"moved": int(moved.sum()), "solos": int((moved & solo).sum()), "clips": len(rows)}
    return out


def oracle_shift(before: dict[str, np.ndarray], after: dict[str, np.ndarray], had: np.ndarray, concept: str) -> dict:
    """The ideal edits of `concept` as a judge hears them: its detections of clean clips (`before`) and of the same
    clips re-rendered with the concept's part removed where they `had` it (ideal `off`) or added where not (ideal
    `on`; `concept_clips.oracle_clip`). Per edit: the drop / rise and every other concept's drift, paired, points
    with 95 % intervals. No edit of any model can do better on this judge; a drift here is the judge's own."""
    out: dict[str, Any] = {}
    for edit, want in (("off", True), ("on", False)):
        m = had == want
        change = paired_diff(before[concept][m], after[concept][m])
        if edit == "off":
            change = Interval(0.0 - change.value, 0.0 - change.hi, 0.0 - change.lo, change.n)  # no "-0"
        drift = {o: paired_diff(before[o][m], after[o][m]).as_dict() for o in before if o != concept}
        worst = max(drift, key=lambda o: abs(drift[o]["value"]) if drift[o]["n"] else -1.0, default=None)
        out[edit] = {"drop" if edit == "off" else "rise": change.as_dict(), "drift": drift, "worst": worst}
    return out


def logmel_stats(audio: np.ndarray, sr: int) -> np.ndarray:
    """[2 * N_MELS]: mean and std over frames of log-mel energies (n_fft 2048, hop 512). The judge's features until
    1 December 2026, kept as the baseline of `bench/judge_drift.py`."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio.astype(np.float32), sr=sr, n_fft=2048, hop_length=512, n_mels=N_MELS, fmax=sr / 2
    )
    logmel = np.log(mel + 1e-6)
    return np.concatenate([logmel.mean(axis=1), logmel.std(axis=1)])


def median_along(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    """`scipy.ndimage.median_filter` of odd `size` along one axis of a 2-D array (mode "reflect"), bit for bit, in a
    third of its time: a partial sort of each window of a padded copy."""
    from numpy.lib.stride_tricks import sliding_window_view

    rows = np.ascontiguousarray(x if axis in (0, -2) else x.T)  # the filtered axis first
    padded = np.pad(rows, [(size // 2, size // 2), (0, 0)], mode="symmetric")  # numpy "symmetric" = scipy "reflect"
    out = np.partition(sliding_window_view(padded, size, axis=0), size // 2, axis=-1)[..., size // 2]
    return out if axis in (0, -2) else out.T


def hpss(power: np.ndarray, kernel: int) -> tuple[np.ndarray, np.ndarray]:
    """`librosa.decompose.hpss` of a power spectrogram (margin 1, soft masks of power 2), equal to it, with the
    medians of `median_along`: the harmonic part is smooth along time, the percussive part along frequency."""
    from librosa.util import softmask

    harm, perc = median_along(power, -1, kernel), median_along(power, -2, kernel)
    return (power * softmask(harm, perc, power=2.0, split_zeros=True),
            power * softmask(perc, harm, power=2.0, split_zeros=True))  # fmt: skip


def judge_features(audio: np.ndarray, sr: int) -> np.ndarray:
    """[4 * N_MELS + 1]: the clip at `JUDGE_SR`, split into its harmonic and percussive parts (median-filter HPSS of
    the power spectrogram, n_fft 2048, hop 512, kernels of 17 frames / bins); per part the mean and std over frames
    of its log-mel energies relative to the clip's level, then that level (log mean mel power). Sustained notes and
    hits are heard apart, and a part added to a mix changes the other part's shape less than its loudness."""
    import librosa

    y = resample(np.asarray(audio, np.float32), sr, JUDGE_SR)
    spec = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    fb = librosa.filters.mel(sr=JUDGE_SR, n_fft=2048, n_mels=N_MELS, fmax=JUDGE_SR / 2)
    harmonic, percussive = (fb @ part for part in hpss(spec, HPSS_KERNEL))
    level = np.log(harmonic.mean() + percussive.mean() + 1e-9)
    stats = []
    for part in (harmonic, percussive):
        logmel = np.log(part + 1e-6) - level
        stats += [logmel.mean(axis=1), logmel.std(axis=1)]
    return np.concatenate([*stats, [level]])


FEATURES = {"hpss": judge_features, "logmel": logmel_stats}  # the judge's features; the former ones (the baseline)
SILENT_DBFS = -80.0  # a clip quieter than white noise at this RMS is silence: no concept is heard in it


@functools.cache
def silent_level() -> float:
    """`judge_features`' level (its last entry) of 4 s of seeded white noise at `SILENT_DBFS` RMS. Below it the
    judge calls every concept absent: its detectors never heard silence (nor is any in their training data) and
    called guitar, drums and piano in digital silence, so an edit that really silenced a clip was scored as one
    that added instruments."""
    noise = np.random.default_rng(0).standard_normal(4 * JUDGE_SR) * 10 ** (SILENT_DBFS / 20)
    return float(judge_features(noise.astype(np.float32), JUDGE_SR)[-1])


def add_noise(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """`audio` plus seeded white noise `snr_db` below its mean power."""
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    noise = np.random.default_rng(seed).standard_normal(len(audio)).astype(np.float32)
    return (audio + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))).astype(np.float32)


def lowpass(audio: np.ndarray, hz: float, sr: int) -> np.ndarray:
    """An 8th-order Butterworth lowpass at `hz` (no filter at or above Nyquist)."""
    from scipy.signal import butter, sosfilt

    if hz >= sr / 2:
        return np.asarray(audio, np.float32)
    return sosfilt(butter(8, hz, fs=sr, output="sos"), audio).astype(np.float32)


def degraded_copy(audio: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """What a model's output may do to a clip, roughly, drawn from `seed`: each of white noise at 15-35 dB SNR, a
    lowpass at 2.5-8 kHz and a gain of -18..+6 dB, with probability 1/2. The judge trains on one such copy of every
    clean clip, so a model's noise, lost highs or level error are not heard as a concept (measured in
    `bench/judge_drift.py`: 8-14 points of balanced accuracy under each, none lost on clean clips)."""
    rng = np.random.default_rng(10_000 + seed)
    out = np.asarray(audio, np.float32)
    if rng.random() < 0.5:
        out = add_noise(out, rng.uniform(15, 35), 20_000 + seed)
    if rng.random() < 0.5:
        out = lowpass(out, rng.uniform(2500, 8000), sr)
    if rng.random() < 0.5:
        out = out * np.float32(10 ** (rng.uniform(-18, 6) / 20))
    return out.astype(np.float32)


def clip_seed(row: dict, position: int) -> int:
    """The seed of a clip's degraded copy: its manifest index (its position where it has none)."""
    return int(row.get("index", position))


def degraded_features(clips: Sequence[np.ndarray], rows: Sequence[dict], sr: int, features: str = "hpss") -> np.ndarray:
    """[clips, dim]: `FEATURES[features]` of the degraded copy of each clip (seeded by `clip_seed`)."""
    pairs = enumerate(zip(clips, rows, strict=True))
    return np.stack([FEATURES[features](degraded_copy(a, sr, clip_seed(r, i)), sr) for i, (a, r) in pairs])


def refuse_no_clips(kept: int, total: int, data: str | Path, split: str, skipped: list[tuple[str, str]]) -> None:
    """UserError where none of a data folder's `total` clips of `split` could be read (a folder copied without its
    clips: `np.stack` of nothing was a numpy traceback, hunt 172); says why the last one was skipped."""
    if kept == 0:
        why = f" (skipped {skipped[-1][0]}: {skipped[-1][1]})" if skipped else ""
        raise UserError(f"data {data}: none of its {total} {f'{split} ' if split else ''}clip(s) could be read{why}")


@dataclass
class Judge:
    """One logistic detector per concept on `FEATURES[features]` of clips at `sr`."""

    detectors: dict[str, Any]
    sr: int
    clean_accuracy: dict[str, float] = field(default_factory=dict)
    features: str = "hpss"

    @classmethod
    def fit(
        cls,
        clips: list[np.ndarray],
        rows: list[dict],
        concepts: Sequence[str],
        sr: int,
        features: str = "hpss",
        degraded: bool = True,
    ) -> Judge:
        """Detectors trained on `clips` (their manifest `rows` give the labels) and, where `degraded`, on a
        `degraded_copy` of each with the same labels."""
        X = np.stack([FEATURES[features](a, sr) for a in clips])
        X_degraded = degraded_features(clips, rows, sr, features) if degraded else None
        return cls.fit_features(X, rows, concepts, sr, features, X_degraded)

    @classmethod
    def fit_features(
        cls,
        X: np.ndarray,
        rows: list[dict],
        concepts: Sequence[str],
        sr: int,
        features: str = "hpss",
        X_degraded: np.ndarray | None = None,
    ) -> Judge:
        """`fit` on precomputed feature rows (several judges on one feature matrix); `X_degraded`: those of the
        rows' degraded copies, trained on beside them with the same labels where given."""
        if X_degraded is not None:
            X, rows = np.concatenate([X, X_degraded]), [*rows, *rows]
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        dets = {}
        for name in concepts:
            y = np.array([int(CONCEPTS[name](r)) for r in rows])
            if y.min() == y.max():
                raise UserError(f"judge for {name!r}: the train clips are all {'with' if y[0] else 'without'} it")
            dets[name] = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=5000)).fit(X, y)
        return cls(dets, sr, features=features)

    def detect(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        """concept -> [clips] bool: the judge calls the concept present."""
        return self.detect_features(np.stack([FEATURES[self.features](a, self.sr) for a in clips]))

    def detect_features(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """concept -> [rows] bool from feature rows; a silent clip (`silent_level`) has no concept."""
        heard = {n: d.predict_proba(X)[:, 1] > 0.5 for n, d in self.detectors.items()}
        if self.features == "hpss":
            sounding = X[:, -1] >= silent_level()
            heard = {n: h & sounding for n, h in heard.items()}
        return heard


@dataclass
class CrossFittedJudge:
    """The judge of reconstruction fidelity, cross-fitted: clips fall into `FOLDS` folds by manifest index, and a
    clip is judged by detectors trained on the clean clips of the other folds (every font, every split), so the
    judge never saw the clip it judges but knows every font. Used by `training/rave/fidelity.py` and
    `training/musicgen/codec_fidelity.py`."""

    judges: dict[int, Judge]
    fold: np.ndarray
    used: list[int]
    concepts: tuple[str, ...]

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        rows: list[dict],
        used: list[int],
        concepts: Sequence[str],
        sr: int,
        X_degraded: np.ndarray | None = None,
    ) -> CrossFittedJudge:
        """`X`: `judge_features` of every clean clip (rows order); `X_degraded`: those of their degraded copies
        (`degraded_features`), trained on beside them where given; `used`: the row positions that will be judged."""
        fold = np.array([r["index"] % FOLDS for r in rows])
        judges = {}
        for f in sorted({int(fold[i]) for i in used}):
            train = fold != f
            kept = [r for r, t in zip(rows, train, strict=True) if t]
            copies = None if X_degraded is None else X_degraded[train]
            judges[f] = Judge.fit_features(X[train], kept, concepts, sr, X_degraded=copies)
        return cls(judges, fold, list(used), tuple(concepts))

    def __call__(self, feats: dict[int, np.ndarray]) -> dict[str, dict[int, bool]]:
        """concept -> row position -> heard, for the positions in `feats` (their `judge_features`)."""
        out: dict[str, dict[int, bool]] = {c: {} for c in self.concepts}
        for f, judge in self.judges.items():
            ids = [i for i in self.used if self.fold[i] == f and i in feats]
            if not ids:
                continue
            hits = judge.detect_features(np.stack([feats[i] for i in ids]))
            for c in self.concepts:
                out[c].update(zip(ids, map(bool, hits[c]), strict=True))
        return out


def fidelity_sets(rows: list[dict], max_clips: int, data: str) -> dict[str, list[int]]:
    """Row positions of each fidelity set (the held-out font's clips, the in-font test split), at most
    `max_clips` each (0 = all); empty sets are left out, and no set at all is refused."""
    sets = {}
    for label, split in FIDELITY_SETS:
        idx = [i for i, r in enumerate(rows) if r["split"] == split]
        sets[label] = idx[:max_clips] if max_clips else idx
    sets = {k: v for k, v in sets.items() if v}
    if not sets:
        raise UserError(f"data {data}: no test-split or held-out-font clips to measure")
    return sets


def fidelity_concepts(idx, original, recon, labels, concepts: Sequence[str], goal: float) -> dict[str, Any]:
    """Per concept, on the row positions `idx`: among clips with it and among clips without it, the judge's
    detection rate on the originals and on the reconstructions, their paired difference with its 95 % interval
    (`paired_rate_diff`) and verdict against ±`goal` points (undecided on fewer than MIN_EXAMPLES clips); the
    judge's accuracy on the
    originals and its agreement between the two."""
    out: dict[str, Any] = {}
    for c in concepts:
        entry: dict[str, Any] = {}
        for side, want in (("with", True), ("without", False)):
            ids = [i for i in idx if labels[c][i] == want]
            o = np.array([original[c][i] for i in ids], bool)
            r = np.array([recon[c][i] for i in ids], bool)
            diff = paired_rate_diff(o, r)  # an equivalence verdict: an interval that keeps its width (Newcombe's)
            entry[side] = {
                "clips": len(ids),
                "original": wilson(int(o.sum()), len(ids)).as_dict(),
                "reconstruction": wilson(int(r.sum()), len(ids)).as_dict(),
                "difference": diff.as_dict(),
                "verdict": verdict(diff, -goal, goal) if len(ids) >= MIN_EXAMPLES else "undecided",  # 2 clips: [0, 0]
            }
        correct = [original[c][i] == labels[c][i] for i in idx]
        entry["judge_accuracy_on_originals"] = wilson(int(sum(correct)), len(correct)).as_dict()
        entry["agreement"] = wilson(int(sum(original[c][i] == recon[c][i] for i in idx)), len(idx)).as_dict()
        sides = (entry["with"]["verdict"], entry["without"]["verdict"])
        entry["verdict"] = "met" if sides == ("met", "met") else ("missed" if "missed" in sides else "undecided")
        out[c] = entry
    return out


def fidelity_table(concepts: dict[str, Any]) -> list[str]:
    """Markdown lines of a `fidelity_concepts` result: one row per concept, detection rates, differences with
    their intervals, the judge's accuracy on the originals, the verdict."""

    def iv(d: dict) -> str:
        return Interval(**d).text("+.0f")

    def pct(d: dict) -> str:  # a rate over no clips (NaN; null once written as JSON): "n/a", not "nan%"
        return "n/a" if d["value"] is None or not math.isfinite(d["value"]) else f"{d['value']:.0f}%"

    lines = [
        "| concept | with: original → reconstruction | diff | without: original → reconstruction | diff "
        "| judge acc. on originals | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c, e in concepts.items():
        w, wo = e["with"], e["without"]
        lines.append(
            f"| {c} | {pct(w['original'])} → {pct(w['reconstruction'])} (n={w['clips']}) | {iv(w['difference'])} "
            f"| {pct(wo['original'])} → {pct(wo['reconstruction'])} (n={wo['clips']}) | {iv(wo['difference'])} "
            f"| {pct(e['judge_accuracy_on_originals'])} | {e['verdict']} |"
        )
    return lines


def _percent(value: Any) -> str:
    """A rate for a table: "n/a" where nothing was measured (NaN, or null as judge.json writes it)."""
    return f"{value:.0f}%" if is_number(value) else "n/a (no clip)"


def hit_rate(hits: np.ndarray) -> float:
    return float(100.0 * hits.mean()) if len(hits) else float("nan")


def save_report(result: dict, out_dir: Path) -> None:
    """`judge.png` and `judge.json` of a judge result in `out_dir`, each written atomically; the JSON last, since a
    resumed `eval hooks` takes it as the mark of a finished judge."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_judge(result, out_dir / "judge.png")
    _write_json(out_dir / "judge.json", result)


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, strict_json(data))


def plot_judge(result: dict, path: Path) -> None:
    """Grouped bars per concept: detection with/without edits, and the worst drift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["concepts"])
    bars = [
        ("clips with it, no edit", lambda e: e["none"]["with"]),
        ("with it, off", lambda e: e["off"]["with"]),
        ("clips without it, no edit", none_where_on),  # on the clips `on` is reported on, as the table's
        ("without it, on", lambda e: e["on"]["without"]),
        ("worst off-target drift", lambda e: e["max_drift"]),
    ]
    swept = [n for n in names if result["concepts"][n].get("sweep")]
    width_in = max(6, 2.2 * len(names) + 2)
    if swept:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(width_in + 5, 4), gridspec_kw={"width_ratios": [width_in, 5]})
        for i, n in enumerate(swept):
            e = result["concepts"][n]
            for arm, style, label in ((e, "-", "SAE"), (e.get("baseline"), "--", "mean-diff")):
                if arm and arm.get("sweep"):
                    xs = [x["strength"] for x in arm["sweep"]]
                    ax2.plot(
                        xs,
                        [x["rise"] for x in arm["sweep"]],
                        style,
                        marker="o",
                        color=f"C{i}",
                        label=f"{n} rise ({label})",
                    )
                    ax2.plot(
                        xs,
                        [x["max_drift"] for x in arm["sweep"]],
                        style,
                        color=f"C{i}",
                        alpha=0.35,
                        label=f"{n} drift ({label})",
                    )
        goals = result.get("goals", GOALS)  # the result's own: MusicGen's on-rise goal is 30
        ax2.axhline(goals["on_rise"], color="grey", lw=0.8)
        ax2.axhline(goals["drift"], color="grey", lw=0.8, ls=":")
        ax2.set_xscale("log", base=2)
        ticks = sorted({x["strength"] for n in swept for x in result["concepts"][n]["sweep"]})
        ax2.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax2.minorticks_off()
        ax2.set_xlabel("strength of on")
        ax2.set_ylabel("points")
        ax2.set_title("on: rise and off-target drift by strength")
        ax2.legend(fontsize=6, loc="upper left")
    else:
        fig, ax = plt.subplots(figsize=(width_in, 4))
    width = 0.8 / len(bars)
    for j, (label, get) in enumerate(bars):
        xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [get(result["concepts"][n]) for n in names], width, label=label)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("detection by the outside judge (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"steering on {result['model']['name']}: outside judge on {_judged(result)}")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    try:
        save_png(fig, path, dpi=100)
    finally:
        plt.close(fig)


def _judged(result: dict) -> str:
    """What was judged: held-out clips (RAVE), or renders of prompts (MusicGen, whose report names its prompts)."""
    return f"{result['held_out_clips']} {'renders' if 'prompts' in result else 'held-out clips'}"


def _strengths(result: dict) -> list[float]:
    """The `on` strengths tried (RAVE's judge: a list; MusicGen's: the one given)."""
    return list(result["strengths"]) if "strengths" in result else [float(result.get("strength_on", 1.0))]


def _sides_caption(result: dict) -> str:
    """What `with` and `without` are: held-out clips with or without the concept (RAVE), or, for MusicGen, every
    render of every prompt and seed on both sides (none, off and on played on the same renders)."""
    if "prompts" in result:
        return ("detection by the judge in % of renders; with / without: every render (each prompt × seed, whether "
                "its prompt names the concept or not), the same renders for none, off and on")  # fmt: skip
    return ("detection by the judge in % of clips; with / without: held-out clips with or without the concept "
            "(without: those `on` is reported on, where a strength was chosen on others)")  # fmt: skip


def rich_table(result: dict):
    """The judge's figures in a table that fits 80 columns (two-line headers, no vertical rules)."""
    from rich import box
    from rich.table import Table

    # drift is measured on the other concepts judged or watched (`drift_measured`; older results: more than one)
    measured = {n: e.get("drift_measured", len(result["concepts"]) > 1) for n, e in result["concepts"].items()}
    goals = result.get("goals", GOALS)  # the result's own: MusicGen's on-rise goal is 30
    clean = result["judge"].get("clean_heldout_clips")  # older results: not counted
    t = Table(
        title=f"outside judge: {result['model']['name']}, {_judged(result)}, "
        f"on strengths {', '.join(f'{v:g}' for v in _strengths(result))}",
        caption=_sides_caption(result) + "; (s): strength of on; drift: "
        "largest change of another concept, in points; the judge's own accuracy on "
        + (f"the {clean} clean held-out clips of the split: " if clean else "the clean held-out clips: ")
        + ", ".join(f"{n} {_percent(a)}" for n, a in result["judge"]["clean_heldout_accuracy"].items())
        + _clips_caption(result["concepts"])
        + _intervals_caption(result["concepts"])
        + f"; goals ✓: drop and rise of at least {goals['off_drop']:g} / {goals['on_rise']:g} points and drift "
        f"under {goals['drift']:g}, each by a margin of one clip, with the 95 % interval's lower end reaching the "
        f"drop / rise goal and every drift interval within the drift goal, on at least {MIN_EXAMPLES} clips per side"
        + "".join(f"; {n}: {few}" for n, e in result["concepts"].items() if (few := too_few(e, goals)))
        + ("" if all(measured.values()) else "; –: no other concept judged, so no drift measured"),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in (
        "concept",
        "edit",
        "with:\nnone→off",
        "drop",
        "without:\nnone→on (s)",
        "rise",
        "worst\ndrift",
        "goals\noff on drift",
    ):
        t.add_column(col, justify="left" if col.startswith(("concept", "edit", "goals")) else "right", overflow="fold")
    for name, e in result["concepts"].items():
        for label, arm in (("SAE", e), ("mean-diff", e.get("baseline"))):
            if arm is None:
                continue
            g = arm["goals_met"]
            marks = ["✓" if g[k] else "✗" for k in ("off_drop", "on_rise")] + [
                "✓" if g["drift"] else "✗" if measured[name] else "–"
            ]
            goals = "  ".join(marks)
            t.add_row(
                name if label == "SAE" else "",
                label,
                f"{e['none']['with']:.0f}→{arm['off']['with']:.0f}%",
                f"{arm['off_drop']:+.0f}",
                f"{none_where_on(e):.0f}→{arm['on']['without']:.0f}% "
                f"({arm.get('strength_on', result.get('strength_on', 1.0)):g})",
                f"{arm['on_rise']:+.0f}",
                f"{arm['max_drift']:.0f}" if measured[name] else "–",
                goals,
            )
    return t


def _intervals_caption(concepts: dict) -> str:
    """'; 95 % intervals of drop / rise: guitar [+0, +42] / [-8, +33] (mean-diff [...] / [...])': the points in the
    table carry theirs (hunt 199: they were in judge.json and report.md only)."""

    def pair(arm: dict) -> str | None:
        ivs = arm.get("intervals") or {}
        ends = [ivs.get(k) for k in ("off_drop", "on_rise")]
        if not all(isinstance(e, dict) and e.get("lo") is not None for e in ends):
            return None
        return " / ".join(f"[{e['lo']:+.0f}, {e['hi']:+.0f}]" for e in ends)

    parts = []
    for name, e in concepts.items():
        if (sae := pair(e)) is None:
            continue
        base = pair(e["baseline"]) if isinstance(e.get("baseline"), dict) else None
        parts.append(f"{name} {sae}" + (f" (mean-diff {base})" if base else ""))
    return "; 95 % intervals of drop / rise: " + ", ".join(parts) if parts else ""


def _clips_caption(concepts: dict) -> str:
    """'; held-out clips with / without each concept: guitar 2 / 6' (RAVE judges; MusicGen's count renders), and
    how the clips without split where `on`'s strength was chosen: 'guitar 12 / 24 (12 to choose on, 12 to report)'."""
    counts = [
        f"{n} {e['held_out_with']} / {e['held_out_without']}" + _split_without(e)
        for n, e in concepts.items()
        if "held_out_with" in e and "held_out_without" in e
    ]
    return "; held-out clips with / without each concept: " + ", ".join(counts) if counts else ""


def _split_without(entry: dict) -> str:
    test = on_clip_count(entry)
    if test == entry["held_out_without"]:
        return ""
    chosen_on = entry.get("held_out_without_validation", entry["held_out_without"] - test)
    return f" ({chosen_on} to choose on, {test} to report)"


def check_listen_folder(out: str | Path) -> None:
    """Refuse, before any work, an `OUT/listen/` that no evaluation wrote (no listen.json): the listening examples
    replace that folder whole, and a user's files there went without a word."""
    root = Path(out) / "listen"
    if root.exists() and not (root / "listen.json").is_file():
        raise UserError(
            f"--out {out}: {root} is there and holds no earlier evaluation's listening examples (they replace the "
            "folder); move it or use another --out"
        )


def drop_earlier_examples(out: str | Path) -> bool:
    """Remove `OUT/listen/` of an earlier evaluation (it holds listen.json) once this one's report is written: its
    rows would be paired with this report's calls by index. Returns whether there was one."""
    root = Path(out) / "listen"
    if not (root / "listen.json").is_file():
        return False
    shutil.rmtree(root)
    return True
