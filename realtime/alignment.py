"""Where the sound of a model comes out: the delay that lines its output up with its input.

Two figures per model:

- **first response** (`realtime.rave.measure_delay`): the first output sample an input impulse changes at
  all. A lower bound: on a trained RAVE that first change is tiny (~1e-6 of the peak) and the notes
  themselves come out later.
- **aligned delay** (`measure_alignment`): where the notes come out. A musical test signal (plucked
  harmonic notes, `music_signal`) runs through fresh streams of the plain model; for each note, the time
  its output envelope reaches half of the note's rise, minus the same time on the input
  (`note_lags`); the aligned delay is the trimmed mean over the notes. The notes start at evenly spread
  phases of the model's frame (a RAVE answers a little earlier or later depending on where a note falls in
  its frame), so the figure is the model's average over phases, not one phase's.

The aligned delay is what dry/wet mixing, the reported latency and offline renders use: a 50 % mix lines
the dry note up with the wet one, and a render lines up with its source where the notes are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sae.errors import UserError
from sae.jsonfile import is_count, is_number

MIN_NOTES = 8  # notes with a clear response needed; fewer (e.g. an untrained model) → first response


@dataclass(frozen=True)
class Alignment:
    """A model's delays in samples; `notes` is how many test notes had a clear response (the aligned delay
    falls back to the first response below `MIN_NOTES`), `spread` the notes' standard deviation in samples."""

    first_response: int
    aligned: int
    notes: int = 0
    spread: float = 0.0

    def describe(self, sr: int) -> str:
        ms = 1000.0 / sr
        text = f"model delay {self.aligned} samples = {self.aligned * ms:.1f} ms (where notes come out"
        if self.notes >= MIN_NOTES:
            text += f", ±{self.spread * ms:.1f} ms over {self.notes} notes"
        else:
            text += f"; only {self.notes} test notes came out clearly: first response used"
        return text + f"; first response {self.first_response} = {self.first_response * ms:.1f} ms)"


def plausible_alignment(spec: Any) -> bool:
    """Whether `spec` is an `Alignment` as `asdict` wrote it, to be trusted as read back (a delay cache, a resume
    state): its four fields, delays and counts integers >= 0, the spread a finite number >= 0."""
    checks = {"first_response": is_count, "aligned": is_count, "notes": is_count,
              "spread": lambda v: is_number(v) and v >= 0}  # fmt: skip
    return isinstance(spec, dict) and set(spec) == set(checks) and all(checks[k](v) for k, v in spec.items())


def music_signal(sr: int, ratio: int, notes: int = 24, phases: int = 8, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Plucked harmonic notes (1 ms attack, 30–80 ms decay, 180–300 ms apart) at seeded pitches: mono float32
    and the onset positions. Note k starts at phase (k mod `phases`) / `phases` of a `ratio`-sample frame."""
    rng = np.random.default_rng(seed)
    scale = 110.0 * 2.0 ** (np.array([0, 3, 5, 7, 10, 12, 15, 17, 19, 22, 24]) / 12)
    onsets, pos = [], int(0.1 * sr)
    for k in range(notes):
        onsets.append(pos // ratio * ratio + (k % phases) * ratio // phases)
        pos += int(rng.uniform(0.18, 0.3) * sr)
    n = onsets[-1] + int(0.4 * sr)
    out = np.zeros(n)
    for onset in onsets:
        length = min(n - onset, int(0.4 * sr))
        t = np.arange(length) / sr
        f0 = float(rng.choice(scale))
        tone = sum(0.6**h * np.sin(2 * np.pi * f0 * (h + 1) * t + rng.uniform(0, 2 * np.pi)) for h in range(6))
        env = np.minimum(t / 0.001, 1.0) * np.exp(-t / rng.uniform(0.03, 0.08))
        out[onset : onset + length] += rng.uniform(0.5, 1.0) * tone * env
    return (0.5 * out / np.abs(out).max()).astype(np.float32), onsets


def envelope(x: np.ndarray, sr: int, window_s: float = 0.002) -> np.ndarray:
    """Short-time RMS of a mono signal, one value per sample (centred moving window)."""
    w = max(1, int(window_s * sr))
    power = np.convolve(np.asarray(x, np.float64) ** 2, np.ones(w) / w, mode="same")
    return np.sqrt(np.maximum(power, 0.0))


def _half_rise(env: np.ndarray, at: int, lo: int, hi: int) -> tuple[int, float]:
    """First offset in [lo, hi) after `at` where env reaches half way from its level just before to its peak,
    and the size of that rise."""
    seg = env[at + lo : at + hi]
    base = float(env[max(0, at + lo - 256) : at + lo + 1].min())
    rise = float(seg.max()) - base
    return lo + int(np.argmax(seg >= base + 0.5 * rise)), rise


def note_lags(x: np.ndarray, y: np.ndarray, onsets: list[int], sr: int, lo: int, hi: int) -> np.ndarray:
    """Per note with a clear response in y (a rise of at least 5 % of y's loudest): the lag in [lo, hi) samples
    of y's half-rise after x's."""
    ex, ey = envelope(x, sr), envelope(y, sr)
    loudest = float(ey.max()) if len(ey) else 0.0
    lags = []
    for onset in onsets:
        if onset + hi > len(ey):
            continue
        t_in, _ = _half_rise(ex, onset, 0, int(0.05 * sr))
        t_out, rise = _half_rise(ey, onset, lo, hi)
        if loudest > 0 and rise >= 0.05 * loudest:
            lags.append(t_out - t_in)
    return np.asarray(lags, np.float64)


def trimmed_mean(values: np.ndarray, cut: float = 0.1) -> float:
    """Mean without the `cut` fraction at each end."""
    v = np.sort(values)
    k = int(len(v) * cut)
    return float(v[k : len(v) - k].mean())


def measure_alignment(model: Any, max_extra: float = 0.1, block: int | None = None) -> Alignment:
    """First response and aligned delay of a `realtime.rave.RaveModel`, on a fresh stream.

    Args:
        max_extra: how far past the first response (seconds) a note may come out.
        block: samples per call (a multiple of the ratio; default ≈ 2048).
    """
    import torch

    first = int(model.delay())
    block = block or model.ratio * max(1, 2048 // model.ratio)
    x, onsets = music_signal(model.sr, model.ratio)
    hi = first + int(max_extra * model.sr)
    total = len(x) + hi
    total += (-total) % block
    padded = np.zeros(total, np.float32)
    padded[: len(x)] = x
    stream = model.new_stream()
    xt = torch.from_numpy(padded).reshape(1, 1, -1).expand(1, model.channels, -1)
    outs = []
    with torch.no_grad():
        torch.manual_seed(0)
        for start in range(0, total, block):
            outs.append(stream.decode(stream.encode_mean(xt[..., start : start + block]))[0].mean(0).cpu())
    y = torch.cat(outs).numpy()
    if not np.isfinite(y).all():
        from realtime.rave import broken_output

        raise UserError(broken_output(model, "playing notes to measure where they come out"))
    lags = note_lags(x, y, onsets, model.sr, first, hi)
    if len(lags) < MIN_NOTES:
        return Alignment(first, first, len(lags))
    return Alignment(first, max(first, round(trimmed_mean(lags))), len(lags), float(lags.std()))
