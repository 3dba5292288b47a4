"""Audio distances between an original clip and a model's reconstruction (numpy in, floats out).

- `spectral_distance`: multi-scale spectral distance (RAVE's own: per STFT size 2048 ... 128, hop n/4, Hann,
  relative L2 of magnitudes + mean L1 of log magnitudes, summed over the 5 scales). 0 = identical.
- `loudness_error_db`: mean |dB difference| of frame RMS loudness (2048-sample frames, hop 512) over the frames
  where the original is above -50 dBFS.
"""

from __future__ import annotations

import numpy as np
import torch

SCALES = (2048, 1024, 512, 256, 128)
LOG_EPS = 1e-7


def _mags(x: torch.Tensor, n: int) -> torch.Tensor:
    return torch.stft(x, n, n // 4, window=torch.hann_window(n, dtype=x.dtype), return_complex=True).abs()


def spectral_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Multi-scale spectral distance of y from x (same length; the shorter one sets it)."""
    n = min(len(x), len(y))
    a = torch.from_numpy(np.ascontiguousarray(x[:n], dtype=np.float32)).double()
    b = torch.from_numpy(np.ascontiguousarray(y[:n], dtype=np.float32)).double()
    total = 0.0
    for size in SCALES:
        if n < size:
            continue
        ma, mb = _mags(a, size), _mags(b, size)
        lin = float(torch.linalg.norm(ma - mb) / torch.linalg.norm(ma).clamp_min(1e-12))
        log = float((torch.log(ma + LOG_EPS) - torch.log(mb + LOG_EPS)).abs().mean())
        total += lin + log
    return total


def frame_db(x: np.ndarray, frame: int = 2048, hop: int = 512) -> np.ndarray:
    """RMS loudness in dBFS of each frame."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    idx = np.arange(0, len(x) - frame + 1, hop)[:, None] + np.arange(frame)[None, :]
    return 10 * np.log10(np.mean(x[idx] ** 2, axis=1) + 1e-12)


def loudness_error_db(x: np.ndarray, y: np.ndarray, floor_db: float = -50.0) -> float:
    """Mean absolute frame-loudness difference (dB) over the original's frames above `floor_db`."""
    n = min(len(x), len(y))
    a, b = frame_db(x[:n]), frame_db(y[:n])
    keep = a > floor_db
    if not keep.any():
        return float("nan")
    return float(np.abs(a[keep] - b[keep]).mean())
