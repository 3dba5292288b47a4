"""The per-block signal chain of the live engine (runs on the model thread, never in the audio callback).

Per block: RAVE `encode_mean` (streaming caches, one model instance per stream) → SAE encode → concept
edits with the error term kept (ramped over the block's latent frames) → RAVE `decode`, then a dry/wet mix
against the dry signal delayed by the model's aligned delay (`realtime.alignment`: where its notes come
out), so mix and bypass line up and a mix or bypass change ramps sample by sample over one block (no
zipper clicks). The same SAE features feed the concept meters (`sae.meter`: the bank's probes on a
running mean of the input's features).

Channels: a mono model on a stereo device runs either on the mid signal (`stereo="mid"`, one stream)
or once per channel (`stereo="channels"`, one stream each); a stereo model takes stereo directly.

Devices: RAVE, the SAE, `W_dec` and the meter parameters live on the model's device; an edit's tensors
follow them there once per control snapshot (`edit_tensors`), never per feature or per frame.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from realtime.controls import Snapshot
from sae.alone import AloneSilence
from sae.bank import ConceptAlone
from sae.errors import UserError
from sae.meter import MeterParams, ema_weight, pooled_meter, smooth
from sae.steering import Edit, Gate, ramp, ramp_floor, steer

STEREO_MODES = ("mid", "channels")
MAX_BLOCKSIZE = 65536
"""The largest live block (1.5 s at 44.1 kHz, far past any latency one plays with): 5120000000 allocated rings of
tens of GB and hung in the block timing; `render rave --block` takes longer blocks offline."""
METER_SECONDS = 1.0  # time constant of the meters' running mean of SAE features


def block_choices(ratio: int, period: int, largest: int = 8192) -> list[int]:
    """Block sizes the engine can run: multiples of the model's ratio that the period divides, smallest first."""
    return [b for b in range(ratio, max(largest, ratio) + 1, ratio) if b % period == 0]


def choose_blocksize(ratio: int, requested: int | None, target: int = 2048) -> int:
    """The requested block if it is a positive multiple of `ratio` up to `MAX_BLOCKSIZE`, else refuse; default ≈
    `target`."""
    if requested is None:
        return ratio * max(1, round(target / ratio))
    if requested > MAX_BLOCKSIZE:
        raise UserError(
            f"blocksize {requested}: expected at most {MAX_BLOCKSIZE} frames (a live block; `render rave --block` "
            "renders a file in longer ones)"
        )
    if requested <= 0 or requested % ratio:
        lower = max(ratio, requested // ratio * ratio)
        raise UserError(
            f"blocksize {requested}: expected a multiple of the model's {ratio} samples per latent frame "
            f"(e.g. {lower} or {lower + ratio})"
        )
    return requested


def check_period(period: int, blocksize: int) -> None:
    """Refuse a period the block cannot be cut into (one line naming both and valid choices)."""
    if period <= 0:
        raise UserError(f"period {period}: expected a positive number of frames")
    if period > blocksize or blocksize % period:
        valid = [p for p in (64, 128, 256, 512, 1024, 2048, 4096) if p <= blocksize and blocksize % p == 0]
        raise UserError(
            f"period {period} with block {blocksize}: expected a period that divides the block "
            f"(e.g. {', '.join(map(str, valid[-3:]))}), or a block that is a multiple of the period"
        )


def edit_tensors(prev: Edit | None, edit: Edit, frames: int, device: torch.device) -> tuple[Tensor | None, ...]:
    """What one block applies, on `device`: the edit's compact (idx, gain, add, floor), or a per-frame ramp
    from `prev` (`sae.steering.ramp`, `ramp_floor`) when the edit changed since the previous block; floor is
    None when nothing is clamped."""
    if prev is None or prev is edit:
        return edit.tensors(device)
    idx, gain, add = ramp(prev, edit, frames)
    floor = ramp_floor(prev, edit, idx, frames)
    return idx.to(device), gain.to(device), add.to(device), None if floor is None else floor.to(device)


def steer_block(
    rows: Tensor, f: Tensor | None, sae: Any, W_dec: Tensor, tensors: tuple[Tensor | None, ...], gate: Tensor | None
) -> Tensor:
    """Edited rows [.., F, d] of one block (`sae.steering.steer`; the SAE code `f` is computed here when None);
    `gate` [.., F, 1] weights the edit per frame."""
    idx, gain, add, floor = tensors
    if idx.numel() == 0:
        return rows
    if f is None:
        f = sae.encode(rows)
    return steer(rows, f, W_dec, idx, gain, add, floor, gate)


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

    def clear(self) -> None:
        self.history = np.zeros_like(self.history)


class BlockProcessor:
    """Encode, steer, decode and mix one block of `blocksize` frames × `channels`.

    Args:
        model: a `realtime.rave.RaveModel` (its streams are made with `new_stream()`).
        sae: an SAE with `encode(x[.., d_in])` and `W_dec [d_sae, d_in]`, or None (edits unavailable).
        blocksize: frames per block, a multiple of `model.ratio`.
        channels: device channels (1 or 2).
        stereo: for a mono model on 2 channels: "mid" or "channels".
        delay: the model's aligned delay in samples (dry alignment); measured from the model when None.
        first_response: the model's first-response delay (reported beside `delay`; default `delay`).
        meters: concept meters (`sae.meter.MeterParams`) read from the input's SAE features; None or empty: off.
        seed: seeds the decoder's noise at every (re)start.
        hook: where the SAE edits: `latent`, or an inner layer (`encoder.net.N`, `decoder.net.N`: each stream
            runs in two parts around it, `realtime.rave_split`).
        gate: keeps the edits off quiet frames (`sae.steering.Gate`; default on, as in offline renders).
        alone: the bank's detectors of concepts playing alone (name → `sae.bank.ConceptAlone`): where such a
            concept is `off`, its frames get the hook's activation of silence (`sae.alone`).
    """

    def __init__(
        self,
        model: Any,
        sae: Any | None,
        blocksize: int,
        channels: int = 1,
        stereo: str = "mid",
        delay: int | None = None,
        first_response: int | None = None,
        meters: MeterParams | None = None,
        seed: int = 0,
        hook: str = "latent",
        gate: Gate | None = None,
        alone: Mapping[str, ConceptAlone] | None = None,
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
        self.hook = hook
        self.splits = None
        width = int(model.latent_size)
        if hook != "latent":
            from realtime.rave_split import RaveSplit, hook_shape

            width = hook_shape(model, hook)[0]  # an unknown hook: one line naming the model's hooks
            self.splits = [RaveSplit(stream, hook) for stream in self.streams]
        self.ratio = int(model.ratio)
        self.gate = Gate() if gate is None else gate
        self.frames = self.blocksize // model.ratio
        self.device = torch.device(getattr(model, "device", "cpu"))
        self.sae = sae
        self.seed = seed
        if sae is not None:
            d_in = int(sae.W_dec.shape[1])
            if d_in != width:
                what = f"the RAVE model's latent size {width}" if hook == "latent" else f"{hook}'s width {width}"
                raise UserError(f"SAE input dim {d_in}: expected {what}")
            if hasattr(sae, "to"):
                sae = sae.to(self.device)
                self.sae = sae
            self.W_dec = sae.W_dec.detach().to(self.device, torch.float32)
            self.d_sae = int(self.W_dec.shape[0])
        else:
            self.W_dec, self.d_sae = None, 0
        if delay is None:  # measured once per model file and device in a process (`RaveModel.alignment`)
            found = model.alignment()
            delay, first_response = found.aligned, found.first_response
        self.delay = int(delay)
        self.first_response = int(self.delay if first_response is None else first_response)
        self.dry = DelayLine(self.delay, channels)
        self.meters = meters.to(self.device) if meters is not None and len(meters) and sae is not None else None
        self._meter_weight = ema_weight(self.frames, self.sr / model.ratio, METER_SECONDS)
        self.meter_values: tuple[float, ...] = (0.0,) * len(self.meters) if self.meters is not None else ()
        self._meter_state: torch.Tensor | None = None
        self.alone = [AloneSilence(alone if sae is not None and alone else {}) for _ in self.streams]  # per stream
        self.prev_edit: Edit | None = None
        self._tensors: tuple[Edit | None, tuple[torch.Tensor, ...]] = (None, ())
        self.prev_mix = -1.0  # set from the first snapshot (no ramp in from nothing)
        self._fade_in = False  # after a resync: the whole block fades in (its dry part was cleared too)
        self._from_dry = False  # after a block that played its dry fallback: the next one fades from dry to its mix
        self._ramp = (np.arange(1, self.blocksize + 1, dtype=np.float32) / self.blocksize)[:, None]
        self.stats = BlockStats()
        self.fallback: np.ndarray | None = None  # the aligned dry block, for the engine when a block fails
        self.nonfinite_in = 0  # NaN/inf input samples, played as silence

    @property
    def meter_names(self) -> list[str]:
        return self.meters.names if self.meters is not None else []

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
            y = y.mean(dim=0, keepdim=True).expand(self.channels, -1)
        if y.shape[-1] != self.blocksize:  # at mix 1 it went out as is: a short block played the ring's old audio
            raise ValueError(f"the model returned {y.shape[-1]} samples for a block of {self.blocksize}")
        return y.T.cpu().numpy()

    def _edit_tensors(self, edit: Edit, frames: int) -> tuple[Tensor | None, ...]:
        """The block's edit on the model's device: cached per snapshot edit, a fresh ramp when it changed."""
        prev = self.prev_edit
        if prev is None or prev is edit:
            if self._tensors[0] is not edit:
                self._tensors = (edit, edit_tensors(None, edit, frames, self.device))
            return self._tensors[1]
        return edit_tensors(prev, edit, frames, self.device)

    def _edit_rows(
        self, rows: Tensor, edit: Edit, gate: Tensor | None, pooled: list[Tensor], stream: int = 0
    ) -> Tensor:
        """Rows [.., F, d] at the hook → edited rows (the same object when nothing is edited), ramping from the
        previous block's edit to `edit`; the meters' pooled features of the rows go to `pooled`; the `stream`'s
        detectors of concepts playing alone follow the rows, and those where an `off` concept plays alone become
        the hook's silence."""
        prev = self.prev_edit if self.prev_edit is not None else edit
        editing = not (prev.is_identity and edit.is_identity)
        alone = self.alone[stream]
        if self.sae is None or (not editing and self.meters is None and not alone):
            return rows
        t0 = time.perf_counter()
        f = self.sae.encode(rows)
        if self.meters is not None:
            pooled.append(f.index_select(-1, self.meters.idx).reshape(-1, len(self.meters.idx)).mean(0))
        t1 = time.perf_counter()
        out = rows
        if editing:
            out = steer_block(rows, f, self.sae, self.W_dec, self._edit_tensors(edit, rows.shape[-2]), gate)
        if alone:  # frames where an `off` concept plays alone are the hook's silence, whatever else is edited
            out = alone.apply(out, f, self.blocksize / self.sr, edit.alone, gate)
        self.stats.sae_s += t1 - t0
        self.stats.edit_s += time.perf_counter() - t1
        return out

    def _steer(
        self, z: Tensor, edit: Edit, gate: Tensor | None = None, stream: int = 0
    ) -> tuple[Tensor, Tensor | None]:
        """[1, N, F] latents → (edited latents, pooled meter features [M] or None)."""
        pooled: list[Tensor] = []
        zt = z[0].T
        out = self._edit_rows(zt, edit, None if gate is None else gate[0], pooled, stream)
        return (z if out is zt else out.T.unsqueeze(0)), (pooled[0] if pooled else None)

    def _update_meters(self, pooled: list[torch.Tensor]) -> None:
        mean = pooled[0] if len(pooled) == 1 else torch.stack(pooled).mean(0)
        if self._meter_state is None:
            self._meter_state = mean.clone()
        else:
            self._meter_state = smooth(self._meter_state, mean, self._meter_weight)
        values = pooled_meter(self._meter_state, self.meters.coef, self.meters.intercept)
        self.meter_values = tuple(values.cpu().tolist())

    def resync(self, history: np.ndarray | None = None) -> None:
        """Start over after a gap in the input (the engine skipped a backlog): the streams' caches are cleared (the
        skipped input counts as silence to the model) and the next block fades in (but where it starts or ends dry
        alone, bypassed or at mix 0, the engine played the dry signal through the gap, `Engine.callback`: it goes on
        from it). The dry delay line holds
        `history`, the input [frames, channels] just before the next block (the engine's ring still has it; its
        last `delay` frames are kept, silence where it is shorter), so dry and bypassed audio resume in place under
        that fade: cleared, the dry signal came back `delay` frames later with a step, after a fade spent on
        silence (hunt 204). The decoder's noise (RAVE draws it from torch's global generator) restarts from
        `seed`, as in a fresh offline render (`realtime.render_rave.render_array`)."""
        for stream in self.streams:
            stream.reset()
        for alone in self.alone:
            alone.reset()
        torch.manual_seed(self.seed)
        self.dry.clear()
        if history is not None and (n := min(len(history), len(self.dry.history))):
            self.dry.history[-n:] = np.nan_to_num(history[-n:], nan=0.0, posinf=0.0, neginf=0.0)
        self._fade_in = True
        self._from_dry = False

    @torch.inference_mode()
    def process(self, block: np.ndarray, snap: Snapshot) -> np.ndarray:
        """One block [blocksize, channels] float32 → output [blocksize, channels] float32.

        If the model raises, or its output holds NaN/inf (raised here as `FloatingPointError`, after clearing the
        streams), `fallback` holds this block's aligned dry signal (the engine plays it instead). NaN/inf samples
        of the input (another JACK client's) are silence to the model and the dry path alike (`nonfinite_in`
        counts them): never to the speakers.
        """
        t0 = time.perf_counter()
        self.stats.sae_s = self.stats.edit_s = 0.0
        # a raise below (encode, steer, decode, a NaN) plays this block's dry signal: the next block fades from it,
        # not from silence after a resync (it was heard) nor straight to the wet mix (a click; hunt 198)
        fade_in, from_dry = self._fade_in, self._from_dry
        self._fade_in, self._from_dry = False, True
        self.fallback = None  # until this block's dry signal is known (a stale one would play the last block)
        if not np.isfinite(block).all():
            self.nonfinite_in += int((~np.isfinite(block)).sum())
            block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
        dry = self.dry.process(block)
        self.fallback = dry
        x = torch.from_numpy(block)
        wet_parts: list[Tensor] = []
        pooled: list[Tensor] = []
        edit = snap.edit
        for i, inp in enumerate(self._to_model(x)):
            inp = inp.to(self.device)
            gate = self.gate.weights(inp, self.ratio, channels=True) if self.sae is not None else None  # [1, F, 1]
            if self.splits is not None:
                edit_rows = lambda rows, g=gate, i=i: self._edit_rows(rows, edit, g, pooled, i)  # noqa: E731
                wet_parts.append(self.splits[i](inp, edit_rows))
                continue
            stream = self.streams[i]
            z = stream.encode_mean(inp)
            z, meter_feats = self._steer(z, edit, gate, i)
            if meter_feats is not None:
                pooled.append(meter_feats)
            wet_parts.append(stream.decode(z))
        wet = self._from_model(wet_parts)
        if not np.isfinite(wet).all():  # never to the speakers, never into the caches of the next blocks
            for stream in self.streams:
                stream.reset()
            raise FloatingPointError("NaN/inf in the model's output (streams started over)")
        self.prev_edit = snap.edit
        if pooled:
            self._update_meters(pooled)
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
        if fade_in and target == 0.0:  # after a gap, bypassed (or mix 0): the dry signal in place, as the engine
            out = dry.copy()  # played it through the gap (bypass pressed in a stall: no ramp from the wet)
        elif fade_in and start == 0.0:  # from dry (un-bypassed in a stall): the engine played the dry signal
            pass  # through the gap, and the mix ramps from it
        elif fade_in:
            out *= self._ramp
        elif from_dry:
            out = (dry + (out - dry) * self._ramp).astype(np.float32)
        self._from_dry = False
        total = time.perf_counter() - t0
        st = self.stats
        st.total_s = total
        st.rave_s = total - st.sae_s - st.edit_s
        st.in_peak = float(np.abs(block).max()) if block.size else 0.0
        st.out_peak = float(np.abs(out).max()) if out.size else 0.0
        st.blocks += 1
        return out

    def warm_up(self, snapshots: list[Snapshot], repeats: int = 3) -> list[float]:
        """Run every snapshot `repeats` times on noise (TorchScript optimises on its first calls; every path a
        control can switch on gets its first calls here, not on stage), then start over from silence.
        Returns the seconds each block took."""
        rng = np.random.default_rng(0)
        times = []
        for _ in range(repeats):
            for snap in snapshots:
                block = (0.1 * rng.standard_normal((self.blocksize, self.channels))).astype(np.float32)
                t0 = time.perf_counter()
                self.process(block, snap)
                times.append(time.perf_counter() - t0)
        self.reset()
        return times

    def reset(self) -> None:
        """Back to the state of a fresh processor (streams silent, no previous edit or mix, meters cleared)."""
        self.resync()
        self._fade_in = False
        self.prev_edit = None
        self.prev_mix = -1.0
        self._meter_state = None
        self.meter_values = (0.0,) * len(self.meters) if self.meters is not None else ()
