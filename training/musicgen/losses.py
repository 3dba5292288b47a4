"""Reconstruction losses of the demo codec: multi-scale mel spectrogram distance + waveform L1.

As in EnCodec's frequency-domain loss: at each STFT scale, L1 between mel magnitudes plus L1 between
their logs, averaged over scales (mel filter banks from librosa, computed once per scale and device).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class MultiScaleMel(nn.Module):
    """Args:
    sample_rate: Hz.
    scales: STFT sizes (hop = size / 4, Hann window).
    n_mels: mel bands (fewer at small scales: at most size / 8).
    """

    def __init__(self, sample_rate: int, scales: Sequence[int] = (256, 512, 1024, 2048), n_mels: int = 64):
        super().__init__()
        import librosa

        self.scales = tuple(scales)
        for n in self.scales:
            fb = librosa.filters.mel(sr=sample_rate, n_fft=n, n_mels=min(n_mels, n // 8), fmax=sample_rate / 2)
            self.register_buffer(f"fb_{n}", torch.from_numpy(fb).float(), persistent=False)
            self.register_buffer(f"win_{n}", torch.hann_window(n), persistent=False)

    def mel(self, x: Tensor, n: int) -> Tensor:
        """Mel magnitudes [B, mels, frames] of audio [B, T] at scale n."""
        spec = torch.stft(x, n, hop_length=n // 4, window=getattr(self, f"win_{n}"), return_complex=True)
        return getattr(self, f"fb_{n}") @ spec.abs()

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        """Distance of reconstruction y from target x, both [B, 1, T] or [B, T]."""
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        total = y.new_zeros(())
        for n in self.scales:
            my, mx = self.mel(y, n), self.mel(x, n)
            total = total + (my - mx).abs().mean() + (torch.log(my + 1e-5) - torch.log(mx + 1e-5)).abs().mean()
        return total / len(self.scales)


def waveform_l1(y: Tensor, x: Tensor) -> Tensor:
    return (y - x).abs().mean()
