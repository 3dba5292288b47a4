"""Whether the held-out soundfont shares samples with a font the data trains on (its figures would flatter).

A font held out stands for timbres the models never heard; a training font built from the held-out font's samples
breaks that. MuseScore_General (Debian's musescore-general-soundfont) is built from FluidR3 Mono: a detector of drum
solos trained with it among the fonts caught 96 % of FluidR3's solo frames, against 66 % without it (2 December).

`overlaps` plays one fixed phrase per instrument (`probe_notes`) in the held-out font and in each other font (one
synth per font, the instruments one after another), scales each instrument's slot to peak 1 (as every clip is),
and names every instrument closer than `SHARED` in mean |Δ log-mel|. Measured (6 December, the 49th note's
script): against FluidR3, TimGM6mb 1.19–3.75, the csound bank 1.26–3.76, the OPL3 FM bank 1.99–3.70; the csound
bank against TimGM6mb, whose samples it reuses: guitars, bass and drums 0.01–0.17, piano 0.63 (strings 1.26,
brass 1.75); TimGM6mb's own samples at −6 / −12 dB: 0.00–0.19 / 0.01–0.44, which unscaled slots put at 0.96–1.33
/ 1.83–2.60 (not named). MuseScore_General_Lite against FluidR3 (2 December, unscaled): bass 0.05, brass 0.28,
drums 0.65 (the rest 1.0–2.8).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.data.concept_clips import SOLO_INSTRUMENTS, Font, Note, render_notes

SHARED = 0.8
"""Mean |Δ log-mel| (natural log of power, 64 bands) under which two fonts' renders of a phrase share samples."""
SLOT_S = 1.0
PROBE_SR = 22050


def probe_notes() -> list[Note]:
    """Every instrument of the data in turn, one `SLOT_S` slot each: a rising arpeggio, or a kick-snare-hat bar."""
    notes: list[Note] = []
    for slot, inst in enumerate(SOLO_INSTRUMENTS):
        t0 = slot * SLOT_S
        if inst == "drums":
            hits = [(36, 0.0), (42, 0.125), (38, 0.25), (42, 0.375), (36, 0.5), (42, 0.625), (38, 0.75), (49, 0.875)]
        else:
            low = 36 if inst == "bass" else 55
            hits = [(low + step, 0.2 * i) for i, step in enumerate((0, 4, 7, 12))]
        notes += [Note(inst, pitch, t0 + at, t0 + at + 0.18, 100) for pitch, at in hits]
    return notes


def slot_log_mels(font: Font) -> np.ndarray:
    """[instrument, mel, frame] log-mel power of the probe phrase rendered with `font`, each slot scaled to peak 1
    first, as every clip is (a font of another's samples at another level was "not close": −6 dB read 0.96–1.33)."""
    import librosa

    audio = render_notes(probe_notes(), SLOT_S * len(SOLO_INSTRUMENTS), PROBE_SR, font.path)
    slots = audio.reshape(len(SOLO_INSTRUMENTS), -1)
    slots = slots / np.maximum(np.abs(slots).max(axis=1, keepdims=True), 1e-9)
    return np.stack([np.log(librosa.feature.melspectrogram(y=s, sr=PROBE_SR, n_mels=64) + 1e-6) for s in slots])


def overlaps(held: Font, others: Sequence[Font]) -> dict[str, dict[str, float]]:
    """Per other font, the instruments whose probe renders are within `SHARED` of the held-out font's (distance)."""
    ref = slot_log_mels(held)
    found: dict[str, dict[str, float]] = {}
    for font in others:
        d = np.abs(slot_log_mels(font) - ref).mean(axis=(1, 2))
        close = {inst: round(float(v), 2) for inst, v in zip(SOLO_INSTRUMENTS, d, strict=True) if v < SHARED}
        if close:
            found[font.name] = close
    return found


def overlap_lines(held: str, found: dict[str, dict[str, float]]) -> list[str]:
    """One line per training font that shares samples with the held-out one."""
    return [
        f"soundfont {name}: its renders of {', '.join(f'{i} ({d:g})' for i, d in close.items())} are within "
        f"{SHARED:g} (mean |Δ log-mel|) of the held-out {held}'s: it shares samples with it, so figures on {held} "
        "will flatter"
        for name, close in found.items()
    ]
