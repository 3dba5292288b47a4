"""Media for the dashboard: audio snippets cut around activating frames, spectrogram PNGs with the
activation curve overlaid (matplotlib, Agg), and small inline SVG histograms."""

from __future__ import annotations

import hashlib
import html
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from realtime.audio_files import read_audio as read_file
from realtime.audio_files import resample
from sae.atomic import atomic_write
from sae.plots import save_png

SNIPPET_SR = 22050


SITE_NAME_MOST = 100
"""The most bytes of a `site_name`: callers add prefixes and tags to it, within a file name's 255."""


def site_name(name: str, most: int = SITE_NAME_MOST) -> str:
    """`name` as a file name of the site that a URL carries as is: runs of anything but letters, digits, '.', '-'
    and '_' become '_' (a '#' or '?' in a src cuts the URL there). One longer than `most` bytes keeps its start
    and its extension with a hash of the whole `name` between (a long render path stopped a whole build)."""
    safe = re.sub(r"[^\w.-]+", "_", name)
    raw = safe.encode()
    if len(raw) <= most:
        return safe
    suffix = Path(safe).suffix if len(Path(safe).suffix) <= 8 else ""
    digest = hashlib.sha1(name.encode(errors="surrogateescape")).hexdigest()[:8]
    head = raw[: most - len(suffix) - len(digest) - 1].decode(errors="ignore")  # not half a character
    return f"{head}_{digest}{suffix}"


@lru_cache(maxsize=8)
def read_channels(path: str) -> tuple[np.ndarray, int]:
    """Float32 [frames, channels] of a file at its own rate, every channel kept (what a listener hears; cached)."""
    return read_file(path)


@lru_cache(maxsize=8)
def read_audio(path: str) -> tuple[np.ndarray, int]:
    """Mono float32 audio of a file at its own rate (the project's reader; cached: top clips share files)."""
    data, sr = read_channels(path)
    return data.mean(axis=1), sr


@dataclass
class Snippet:
    """A cut of a clip: audio ([frames] mono, or [frames, channels]) at `sr`, starting `start` seconds into it."""

    audio: np.ndarray
    sr: int
    start: float

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sr


def cut(y: np.ndarray, sr: int, center: float, seconds: float) -> Snippet:
    """`seconds` of `y` ([frames] or [frames, channels]) centred on `center` (seconds), shifted to stay inside the
    clip; resampled to 22.05 kHz."""
    total = len(y) / sr
    length = min(seconds, total)
    start = min(max(center - length / 2, 0.0), max(total - length, 0.0))
    a = round(start * sr)
    part = y[a : a + round(length * sr)]
    target = min(sr, SNIPPET_SR)
    return Snippet(resample(part, sr, target), target, a / sr)


def write_wav(path: Path, snip: Snippet) -> None:
    """PCM16 wav, peaks above full scale brought to 0.9 (a listening snippet, not a measurement)."""
    from realtime.audio_files import write_audio

    peak = float(np.abs(snip.audio).max()) if snip.audio.size else 0.0
    write_audio(path, snip.audio / peak * 0.9 if peak > 1.0 else snip.audio, snip.sr)


class SpectrogramPlotter:
    """Log-magnitude spectrograms with an activation curve on a second axis.

    One Agg figure whose artists are updated in place for every plot (re-creating axes and ticks per plot
    costs most of matplotlib's time).
    """

    def __init__(self, width: float = 5.2, height: float = 2.1, dpi: int = 80, top_hz: float = 8000.0) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(width, height), dpi=dpi)
        self.dpi = dpi
        self.top_hz = top_hz
        ax = self.ax = self.fig.add_axes((0.09, 0.2, 0.8, 0.68))
        self.im = ax.imshow(np.zeros((2, 2)), origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
        ax.set_ylabel("kHz", fontsize=7)
        ax.set_xlabel("seconds into clip", fontsize=7)
        ax.tick_params(labelsize=6)
        self.title = ax.set_title("", fontsize=7, loc="left", parse_math=False)  # a file name is text, not TeX
        ax2 = self.ax2 = ax.twinx()
        (self.line,) = ax2.plot([], [], color="#3fd0ff", lw=1.4, drawstyle="steps-post")
        ax2.tick_params(labelsize=6, colors="#1a7fa0")
        ax2.set_ylabel("activation", fontsize=7, color="#1a7fa0")

    def plot(self, path: Path, snip: Snippet, curve: np.ndarray, frame_rate: float, title: str = "") -> None:
        """`curve` is the feature's activation per source frame; the part inside the snippet is drawn."""
        n_fft, hop = 1024, 256
        y = snip.audio
        if y.size < n_fft:
            y = np.pad(y, (0, n_fft - y.size))
        n = 1 + (y.size - n_fft) // hop
        frames = y[np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]] * np.hanning(n_fft)
        spec = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)
        top = min(snip.sr / 2, self.top_hz)
        keep = int(top / (snip.sr / 2) * (spec.shape[0] - 1)) + 1
        vmax = float(spec.max())
        t0, t1 = snip.start, snip.start + snip.seconds
        self.im.set_data(spec[:keep])
        self.im.set_extent((t0, t1, 0, top / 1000))
        self.im.set_clim(vmax - 80, vmax)
        self.ax.set_xlim(t0, t1)
        self.ax.set_ylim(0, top / 1000)
        t = np.arange(curve.size) / frame_rate
        inside = (t >= t0 - 1.0 / frame_rate) & (t <= t1)
        self.line.set_data(t[inside], curve[inside])
        self.ax2.set_ylim(0, max(float(curve.max()) * 1.1, 1e-6))
        self.ax2.set_xlim(t0, t1)
        self.title.set_text(title)
        with warnings.catch_warnings():  # a title in a script the font lacks is drawn as boxes; no need to say so
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            save_png(self.fig, path, dpi=self.dpi)


def histogram_svg(counts: np.ndarray, edges: np.ndarray, width: int = 320, height: int = 90) -> str:
    """Inline SVG bar chart of a log10-activation histogram (only the non-empty span is drawn)."""
    counts = np.asarray(counts)
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return f'<svg class="hist" width="{width}" height="{height}"></svg>'
    a, b = int(nz[0]), int(nz[-1]) + 1
    c = counts[a:b]
    bw = width / len(c)
    top = float(c.max())
    bars = []
    for i, v in enumerate(c):
        h = (height - 16) * v / top
        lo, hi = 10 ** edges[a + i], 10 ** edges[a + i + 1]
        bars.append(
            f'<rect x="{i * bw:.1f}" y="{height - 14 - h:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}">'
            f"<title>{lo:.3g}–{hi:.3g}: {int(v)}</title></rect>"
        )
    label = html.escape(f"{10 ** edges[a]:.3g}")
    label_hi = html.escape(f"{10 ** edges[b]:.3g}")
    return (
        f'<svg class="hist" width="{width}" height="{height}" role="img" aria-label="activation histogram">'
        + "".join(bars)
        + f'<text x="0" y="{height - 2}">{label}</text>'
        + f'<text x="{width}" y="{height - 2}" text-anchor="end">{label_hi}</text></svg>'
    )


def log_spectrogram(y: np.ndarray, sr: int, top_hz: float = 8000.0, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """[freq bins up to `top_hz`, frames] log magnitude (dB) of mono audio."""
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    n = 1 + (y.size - n_fft) // hop
    frames = y[np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]] * np.hanning(n_fft)
    spec = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)
    keep = int(min(sr / 2, top_hz) / (sr / 2) * (spec.shape[0] - 1)) + 1
    return spec[:keep]


def mini_spectrogram(path: Path, spec: np.ndarray, vmax: float, width: int = 240, height: int = 72) -> None:
    """A small spectrogram PNG (no axes) of `log_spectrogram` output, 80 dB below `vmax` to `vmax`; cells of one
    listening-table row share `vmax`, so their brightness compares."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.image import imsave

    rows = np.linspace(0, spec.shape[0] - 1, height).round().astype(int)
    cols = np.linspace(0, spec.shape[1] - 1, width).round().astype(int)
    cells = spec[np.ix_(rows, cols)]
    atomic_write(path, lambda tmp: imsave(tmp, cells, format="png", cmap="magma", vmin=vmax - 80, vmax=vmax,
                                          origin="lower"))  # fmt: skip
