"""Measurable audio properties of a short clip, for automatic feature descriptions.

Plain numpy on one STFT (no models, no JIT warm-up): loudness (RMS dBFS), spectral centroid
(brightness), onset rate (spectral-flux peaks per second), pitch range (YIN on the periodic frames, as
note names) and a voice-likeness score (pitched frames whose pitch glides within the speech range, with
an energy envelope modulated at the syllable rate, 2-8 Hz). Each clip also gets coarse tags ("bright",
"percussive", "low register", "voice-like", ...) used for descriptions and for label-free purity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from realtime.audio_files import resample

ANALYSIS_SR = 22050
N_FFT = 1024
HOP = 256
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(hz: float) -> str:
    midi = round(69 + 12 * np.log2(hz / 440.0))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def _frames(y: np.ndarray, length: int, hop: int) -> np.ndarray:
    if y.size < length:
        y = np.pad(y, (0, length - y.size))
    n = 1 + (y.size - length) // hop
    idx = np.arange(length)[None, :] + hop * np.arange(n)[:, None]
    return y[idx]


def yin(
    y: np.ndarray,
    sr: int,
    fmin: float = 50.0,
    fmax: float = 1600.0,
    frame: int = 2048,
    hop: int = HOP,
    threshold: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame f0 (Hz) and periodicity (1 - minimum of the cumulative-mean-normalised difference)."""
    fr = _frames(y, frame, hop).astype(np.float64)
    w = frame // 2
    tau_max = min(int(sr / fmin), w - 1)
    tau_min = max(int(sr / fmax), 2)
    spec = np.fft.rfft(fr, n=2 * frame, axis=1)
    head = np.fft.rfft(fr[:, :w], n=2 * frame, axis=1)
    acf = np.fft.irfft(spec * np.conj(head), axis=1)[:, : w + 1]  # sum_j<w x_j x_j+tau
    energy = np.cumsum(np.pad(fr**2, ((0, 0), (1, 0))), axis=1)
    e0 = energy[:, w][:, None]
    e_tau = energy[:, np.arange(w + 1) + w] - energy[:, np.arange(w + 1)]
    diff = e0 + e_tau - 2 * acf
    diff[:, 0] = 0.0
    cum = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, w + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cum, 1e-12)
    band = cmnd[:, tau_min : tau_max + 1]
    below = band < threshold
    first = np.where(below.any(axis=1), below.argmax(axis=1), band.argmin(axis=1))
    # walk to the local minimum after the first dip below the threshold
    for i in np.flatnonzero(below.any(axis=1)):
        t = first[i]
        while t + 1 < band.shape[1] and band[i, t + 1] < band[i, t]:
            t += 1
        first[i] = t
    tau = first + tau_min
    period = 1.0 - band[np.arange(len(band)), first]
    return sr / tau, np.clip(period, 0.0, 1.0)


@dataclass
class AudioProps:
    """Properties of one clip (see module docstring); `tags` are the coarse words derived from them."""

    seconds: float
    rms_db: float
    centroid_hz: float
    onset_rate: float
    pitch_lo_hz: float | None
    pitch_hi_hz: float | None
    periodic: float
    voice_score: float
    tags: list[str] = field(default_factory=list)

    @property
    def pitch_range(self) -> str | None:
        if self.pitch_lo_hz is None or self.pitch_hi_hz is None:
            return None
        lo, hi = note_name(self.pitch_lo_hz), note_name(self.pitch_hi_hz)
        return lo if lo == hi else f"{lo}–{hi}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pitch_range": self.pitch_range}


def analyse(y: np.ndarray, sr: int) -> AudioProps:
    """Measure a mono clip (any rate; analysed at 22.05 kHz, its DC offset removed: an offset is not sound)."""
    y = np.asarray(y, np.float32).reshape(-1)
    y = resample(y - y.mean(dtype=np.float64) if y.size else y, sr, ANALYSIS_SR)
    sr = ANALYSIS_SR
    seconds = y.size / sr
    fr = _frames(y, N_FFT, HOP)
    rms = np.sqrt(np.mean(fr.astype(np.float64) ** 2, axis=1) + 1e-20)
    rms_db = float(20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2) + 1e-20)))
    mag = np.abs(np.fft.rfft(fr * np.hanning(N_FFT), axis=1))
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    power = mag.sum(axis=1)
    loud = rms > max(rms.max() * 0.03, 1e-5)
    centroid = (mag @ freqs) / np.maximum(power, 1e-12)
    centroid_hz = float(np.average(centroid[loud], weights=rms[loud])) if loud.any() else 0.0
    # onsets: peaks of half-wave rectified log-spectral flux above a moving median
    logm = np.log1p(100 * mag)
    flux = np.maximum(np.diff(logm, axis=0), 0).sum(axis=1)
    if flux.size > 2:
        from scipy.ndimage import median_filter
        from scipy.signal import find_peaks

        base = median_filter(flux, size=9, mode="nearest")
        rel = flux - base
        floor = 0.05 * float(logm.sum(axis=1).mean())  # a real onset changes a sizeable part of the spectrum
        peaks, _ = find_peaks(rel, height=max(0.7 * rel.std(), floor, 1e-6), distance=max(1, int(0.05 * sr / HOP)))
        peaks = peaks[loud[1:][peaks]]
        onset_rate = float(len(peaks) / max(seconds, 1e-6))
    else:
        onset_rate = 0.0
    f0, period = yin(y, sr)
    n = min(len(f0), len(loud))
    voiced = (period[:n] > 0.8) & loud[:n]
    if voiced.sum() >= 3:
        lo, hi = np.percentile(f0[:n][voiced], [10, 90])
        pitch_lo, pitch_hi = float(lo), float(hi)
    else:
        pitch_lo = pitch_hi = None
    periodic = float(voiced.sum() / max(loud[:n].sum(), 1))
    voice_score = _voice_score(rms, f0[:n], voiced, sr / HOP)
    props = AudioProps(seconds, rms_db, centroid_hz, onset_rate, pitch_lo, pitch_hi, periodic, voice_score)
    props.tags = tags_of(props)
    return props


def _voice_score(rms: np.ndarray, f0: np.ndarray, voiced: np.ndarray, rate: float) -> float:
    """0..1: syllable-rate envelope modulation x gliding pitch in the speech range."""
    env = rms - rms.mean()
    if env.size < 16 or not np.any(env):
        return 0.0
    spec = np.abs(np.fft.rfft(env * np.hanning(env.size))) ** 2
    fq = np.fft.rfftfreq(env.size, 1.0 / rate)
    syl = spec[(fq >= 2) & (fq <= 8)].sum() / max(spec[fq >= 0.5].sum(), 1e-20)
    if voiced.sum() < 3:
        return float(0.5 * syl)
    v = f0[voiced]
    in_range = float(np.mean((v >= 75) & (v <= 400)))
    # speech glides: pitch changes between consecutive voiced frames are small but rarely zero
    d = np.abs(np.diff(np.log2(v))) * 12
    glide = float(np.mean((d > 0.05) & (d < 2.0))) if d.size else 0.0
    return float(np.clip(syl, 0, 1) * 0.4 + in_range * 0.3 + glide * 0.3)


def tags_of(p: AudioProps) -> list[str]:
    """Coarse words for a clip's properties."""
    tags = []
    if p.rms_db < -32:
        tags.append("quiet")
    elif p.rms_db > -16:
        tags.append("loud")
    if p.centroid_hz > 2200:
        tags.append("bright")
    elif 0 < p.centroid_hz < 900:
        tags.append("dark")
    if p.onset_rate >= 4:
        tags.append("busy onsets")
    elif p.onset_rate < 1:
        tags.append("sustained")
    if p.pitch_lo_hz is not None and p.pitch_hi_hz is not None:
        mid = np.sqrt(p.pitch_lo_hz * p.pitch_hi_hz)
        if mid < 130:
            tags.append("low register")
        elif mid > 520:
            tags.append("high register")
    elif p.periodic < 0.1:
        tags.append("unpitched")
    if p.voice_score >= 0.55:
        tags.append("voice-like")
    return tags
