"""The per-block signal chain of the live engine (runs on the model thread, never in the audio callback).

Per block: RAVE `encode_mean` (streaming caches, one model instance per stream) → SAE encode → concept
edits with the error term kept (ramped over the block's latent frames) → RAVE `decode`, then a dry/wet mix
against the dry signal delayed by the model's own delay, so mix and bypass are time-aligned and a mix
or bypass change ramps sample by sample over one block (no zipper clicks).

Channels: a mono model on a stereo device runs either on the mid signal (`stereo="mid"`, one stream)
or once per channel (`stereo="channels"`, one stream each); a stereo model takes stereo directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from realtime.controls import Snapshot
from sae.errors import UserError
from sae.steering import Edit, ramp, steer

STEREO_MODES = ("mid", "channels")


def choose_blocksize(ratio: int, requested: int | None, target: int = 2048) -> int:
    """The requested block if it is a positive multiple of `ratio`, else refuse; default ≈ `target`."""
    if requested is None:
        return ratio * max(1, round(target / ratio))
    if requested <= 0 or requested % ratio:
        lower = max(ratio, requested // ratio * ratio)
        raise UserError(
            f"blocksize {requested}: expected a multiple of the model's {ratio} samples per latent frame "
            f"(e.g. {lower} or {lower + ratio})"
        )
    return requested


@dataclass
class BlockStats:
    """Timings (seconds, wall clock) and levels of the last processed block."""

    rave_s: float = 0.0
    sae_s: float = 0.0
    edit_s: float = 0.0
    total_s: float = 0.0
    in_peak: float = 0.0
    out_peak: float = 0.0
    blocks: int = 0


class DelayLine:
    """A fixed delay of `delay` frames on [frames, channels] blocks."""

    def __init__(self, delay: int, channels: int):
        self.history = np.zeros((delay, channels), dtype=np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        if len(self.history) == 0:
            return block
        joined = np.concatenate([self.history, block])
        self.history = joined[len(block) :]
        return joined[: len(block)]


class BlockProcessor:
    """Encode, steer, decode and mix one block of `blocksize` frames × `channels`.

    Args:
        model: a `realtime.rave.RaveModel` (its streams are made with `new_stream()`).
        sae: an SAE with `encode(x[.., d_in])` and `W_dec [d_sae, d_in]`, or None (edits unavailable).
        blocksize: frames per block, a multiple of `model.ratio`.
        channels: device channels (1 or 2).
        stereo: for a mono model on 2 channels: "mid" or "channels".
        delay: the model's own delay in samples (dry alignment); measured from the model when None.
    """

    def __init__(
        self,
        model: Any,
        sae: Any | None,
        blocksize: int,
        channels: int = 1,
        stereo: str = "mid",
        delay: int | None = None,
    ):
        if channels not in (1, 2):
            raise UserError(f"channels {channels}: expected 1 or 2")
        if stereo not in STEREO_MODES:
            raise UserError(f"stereo mode {stereo!r}: expected one of {', '.join(STEREO_MODES)}")
        self.blocksize = choose_blocksize(model.ratio, blocksize)
        self.channels = channels
        self.sr = int(model.sr)
        self.model_channels = int(model.channels)
        self.per_channel = self.model_channels == 1 and channels == 2 and stereo == "channels"
        self.streams = [model.new_stream() for _ in range(2 if self.per_channel else 1)]
        self.frames = self.blocksize // model.ratio
        self.sae = sae
        if sae is not None:
            d_in = int(sae.W_dec.shape[1])
            if d_in != model.latent_size:
                raise UserError(f"SAE input dim {d_in}: expected the RAVE model's latent size {model.latent_size}")
            device = getattr(model, "device", torch.device("cpu"))
            if hasattr(sae, "to"):
                sae = sae.to(device)
                self.sae = sae
            self.W_dec = sae.W_dec.detach().to(device, torch.float32)
            self.d_sae = int(self.W_dec.shape[0])
        else:
            self.W_dec, self.d_sae = None, 0
        self.delay = int(model.delay() if delay is None else delay)
        self.dry = DelayLine(self.delay, channels)
        self.prev_edit: Edit | None = None
        self._compact: tuple[Edit | None, tuple] = (None, ())
        self.prev_mix = -1.0  # set from the first snapshot (no ramp in from nothing)
        self._ramp = (np.arange(1, self.blocksize + 1, dtype=np.float32) / self.blocksize)[:, None]
        self.stats = BlockStats()

    def _to_model(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[B, C] device audio → one [1, model_channels, B] input per stream."""
        if self.per_channel:
            return [x[:, c].reshape(1, 1, -1) for c in range(self.channels)]
        if self.model_channels == self.channels:
            return [x.T.unsqueeze(0)]
        if self.model_channels == 1:  # stereo device, mono model: mid
            return [x.mean(dim=1).reshape(1, 1, -1)]
        return [x.T.expand(self.model_channels, -1).unsqueeze(0)]  # mono device, multichannel model

    def _from_model(self, outs: list[torch.Tensor]) -> np.ndarray:
        """One [1, C_out, B] output per stream → [B, channels]."""
        y = torch.cat([o[0] for o in outs], dim=0) if len(outs) > 1 else outs[0][0]
        if y.shape[0] == 1:
            y = y.expand(self.channels, -1)
        elif y.shape[0] != self.channels:
            y = y.mean(dim=0, keepdim=True)
        return y.T.cpu().numpy()

    def _steer(self, z: torch.Tensor, edit: Edit) -> torch.Tensor:
        """[1, L, N] latents → edited latents, ramping from the previous block's edit to `edit`."""
        prev = self.prev_edit if self.prev_edit is not None else edit
        if self.sae is None or (prev.is_identity and edit.is_identity):
            return z
        t0 = time.perf_counter()
        zt = z[0].T  # [N, L]
        f = self.sae.encode(zt)
        t1 = time.perf_counter()
        if prev is edit:  # unchanged since the last block: the compact form is cached per edit
            if self._compact[0] is not edit:
                self._compact = (edit, edit.compact())
            idx, gain, add = self._compact[1]
        else:
            idx, gain, add = ramp(prev, edit, zt.shape[0])
        out = steer(zt, f, self.W_dec, idx, gain, add).T.unsqueeze(0)
        t2 = time.perf_counter()
        self.stats.sae_s += t1 - t0
        self.stats.edit_s += t2 - t1
        return out

    @torch.inference_mode()
    def process(self, block: np.ndarray, snap: Snapshot) -> np.ndarray:
        """One block [blocksize, channels] float32 → output [blocksize, channels] float32."""
        t0 = time.perf_counter()
        self.stats.sae_s = self.stats.edit_s = 0.0
        x = torch.from_numpy(block)
        wet_parts = []
        for stream, inp in zip(self.streams, self._to_model(x), strict=True):
            z = stream.encode_mean(inp)
            z = self._steer(z, snap.edit)
            wet_parts.append(stream.decode(z))
        self.prev_edit = snap.edit
        wet = self._from_model(wet_parts)
        dry = self.dry.process(block)
        target = 0.0 if snap.bypass else snap.mix
        start = target if self.prev_mix < 0 else self.prev_mix
        if start == target == 1.0:
            out = np.ascontiguousarray(wet, dtype=np.float32)
        elif start == target == 0.0:
            out = dry.copy()
        else:
            mix = start + (target - start) * self._ramp
            out = (dry + (wet - dry) * mix).astype(np.float32)
        self.prev_mix = target
        total = time.perf_counter() - t0
        st = self.stats
        st.total_s = total
        st.rave_s = total - st.sae_s - st.edit_s
        st.in_peak = float(np.abs(block).max()) if block.size else 0.0
        st.out_peak = float(np.abs(out).max()) if out.size else 0.0
        st.blocks += 1
        return out
