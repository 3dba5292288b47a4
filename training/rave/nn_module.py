"""The nn~ model: a streaming RAVE, an SAE on its latent and one switch per concept, in one scriptable module.

IRCAM's `nn~` (Max/MSP, Pure Data) loads a TorchScript file built on `nn_tilde.Module` and reads:
`get_methods()` plus a `<method>_params` buffer `[in_dim, in_ratio, out_dim, out_ratio]` per method;
`get_attributes()` plus a `<attr>_params` buffer of type codes per attribute (0 bool, 1 int, 2 float, 3 str),
and it calls `set_<attr>(typed args) -> int` (0 = accepted) and `get_<attr>()`.

`SteeredRave` gives it:
- `forward`  audio → audio with the concept edits, then dry/wet `mix` against the input delayed to where the
  model's notes come out (its aligned delay, as in `live`: so they line up); `bypass 1` outputs that delayed dry
  signal (the model keeps running);
- `encode`   audio → the posterior-mean latents the SAE was trained on (edited only when the SAE sits on an
  encoder layer: the edit happens inside the encoder);
- `decode`   latents → audio with the concept edits (patches may transform latents between the two; with the
  SAE on an encoder layer the edit was made by `encode`, and `decode` is RAVE's own);
- `meter`    audio → one signal per concept in [0, 1]: the bank's calibrated probe (`sae.meter`) over a
  running mean of the SAE features at the hook, updated per latent frame (so it does not depend on the buffer
  size); added when the concepts carry probes;
- one attribute per concept, `(mode, value)`: mode `none|off|on|clamp|scale`, value = strength for `on` and
  `clamp`, gain for `scale`; an unknown mode, a value outside ±`sae.controls.STRENGTH_LIMIT` or a clamp strength
  outside (0, `CLAMP_LIMIT`] returns -1 and changes nothing; `mix` (float in [0, 1]), `bypass` and `gate`
  (0 or 1, floats: Pd sends every number as text, nn~ reads "0.000000" as a true bool and an int with `stoi`, which
  took a slider's "0.5" as 0; anything else returns -1) and `gate_db` (lo, hi).

Per call the edit is the one the attributes describe now; when it differs from the previous call's it ramps
linearly over the call's latent frames (`sae.steering.ramp` and `ramp_floor`, the live engine's rule), and the
SAE's reconstruction error is kept (`sae.steering.steer`), so no edit returns RAVE's own output. Edits are
weighted per latent frame by the input's level (`sae.steering.energy_gate`, `gate_db` lo/hi dBFS,
the engine's default -60/-45) in `forward` and `encode`; `decode` has no audio to measure and is ungated.
`mix`/`bypass` changes ramp sample by sample over one call, as in the engine.

The SAE sits on the concepts' hook (`realtime.rave_split`): RAVE's `latent`, or an inner layer
(`encoder.net.N`, `decoder.net.N`) where the model runs in two parts around the layer (`HookLayers`, the
export's own cached layers), the layer's output is pooled per latent frame, edited in SAE space and the change
spread back over the frame's steps.

The per-concept getters and setters are closures compiled by TorchScript under the attribute's name, so no
source file is generated (nn_tilde's own generator writes `.py` files into its package folder); the
buffer-attribute methods nn_tilde would generate are written out here (this model has no buffer attributes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple  # noqa: UP035 (TorchScript reads these annotations)

import nn_tilde
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from realtime.rave_split import LATENT, DecoderTail, HookLayers, pool_rows, project_latent, spread
from sae.controls import ALL_MODES, CLAMP_LIMIT, STRENGTH_LIMIT
from sae.meter import pooled_meter, smooth
from sae.steering import Gate, energy_gate, gate_levels_fit, steer

# attributes, buffers and submodules `SteeredRave.__init__` sets (a concept attribute must not reuse one)
INSTANCE_NAMES = (
    "rave",
    "sae",
    "in_channels",
    "out_channels",
    "latent_size",
    "ratio",
    "sr",
    "host_sr",
    "delay",
    "d_sae",
    "concept_mask",
    "concept_weight",
    "concept_typical",
    "mix",
    "bypass",
    "gate",
    "controls",
    "controls_used",
    "controls_seq",
    "side",
    "steps",
    "split",
    "out_tail",
    "clamp_limit",
    "prev_gain",
    "prev_add",
    "prev_floor",
    "dry_history",
    "edit_started",
    "prev_mix",
    "has_meter",
    "strength_limit",
    "meter_idx",
    "meter_coef",
    "meter_intercept",
    "meter_weight",
    "meter_state",
    "has_alone",
    "alone_coef",
    "alone_intercept",
    "alone_threshold",
    "alone_alpha",
    "alone_silence",
    "alone_memory",
    "tmp_file_session",
    "_mode_names",
    "_concept_attrs",
    "_concept_alone",
    "_methods",
    "_attributes",
    "_buffer_attributes",
    "_ready",
)


@dataclass(frozen=True)
class ConceptSpec:
    """One concept as the nn~ model holds it.

    Args:
        attr: the attribute name nn~ shows (a sanitised concept name).
        name: the concept's name in the bank.
        features: (index, weight, typical) per SAE feature.
        mode, value: the initial control (the bank's default).
        alone: its detector of playing alone (`sae.bank.ConceptAlone`), or None.
    """

    attr: str
    name: str
    features: tuple[tuple[int, float, float], ...]
    mode: str = "none"
    value: float = 1.0
    alone: Any = None


@dataclass(frozen=True)
class MeterSpec:
    """Packed probes (`sae.meter.MeterParams`) and the running-mean time constant of the meter method."""

    names: list[str]
    idx: Tensor
    coef: Tensor
    intercept: Tensor
    weight: float  # per-frame EMA weight


def finite(x: Tensor) -> Tensor:
    """`x` with NaN / ±inf samples as silence: one fed to RAVE fills its streaming caches, and every later buffer
    came out NaN until the model was reloaded (the live engine's processor silences them alike)."""
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def _concept_setter(i: int) -> Any:
    # TorchScript takes no closed-over ints: the concept's row rides as a default argument (nn~ passes only the
    # attribute's own values).
    def setter(self, mode: str, value: float, row: int = i) -> int:
        return self._set_concept(row, mode, value)

    return torch.jit.export(setter)


def _concept_getter(i: int) -> Any:
    def getter(self, row: int = i) -> Tuple[str, float]:  # noqa: UP006
        ctl = self._snapshot()[0]
        return self._mode_names[int(ctl[row, 0])], float(ctl[row, 1])

    return torch.jit.export(getter)


class SteeredRave(nn_tilde.Module):
    """RAVE (a loaded streaming export) + SAE + concept switches, for `torch.jit.script` and nn~.

    Args:
        rave: the loaded TorchScript RAVE export (its caches are used as the stream's state).
        sae: an SAE module with `encode(x) -> f` and a `W_dec` [d_sae, d_in] buffer (`sae.export.ScriptSAE`).
        concepts: the switches, in the order edits compose.
        delay: the model's aligned delay in samples, where its notes come out (aligns the dry signal of `mix`).
        meter: probes for the meter method, or None (no meter method).
        hook: where the SAE sits: `latent`, `encoder.net.N` or `decoder.net.N` (checked by the caller with
            `realtime.rave_split.RaveSplit`).
        steps: the hook's outputs per latent frame (`realtime.rave_split.hook_shape`).
        gate: the initial `gate` / `gate_db` attributes (`sae.steering.Gate`).
    """

    def __init__(
        self,
        rave: torch.jit.ScriptModule,
        sae: nn.Module,
        concepts: list[ConceptSpec],
        delay: int,
        meter: MeterSpec | None = None,
        hook: str = LATENT,
        steps: int = 1,
        gate: Gate = Gate(),  # noqa: B008 (frozen dataclass)
    ) -> None:
        super().__init__()
        self.tmp_file_session = None  # nn_tilde's generated-file session: never used here (see `finish`)
        self.rave = rave
        self.sae = sae
        side, _, index = hook.partition(".net.")
        self.side = side  # latent, encoder or decoder
        self.steps = int(steps)
        # the export's own layers either side of the hook, and the decoder's tail after them (None: not used)
        self.split = HookLayers(rave, side, int(index)) if side != LATENT else None
        self.out_tail = DecoderTail(rave) if side == "decoder" else None
        self.gate = 1 if gate.enabled else 0
        in_ch, _, latent, ratio = (int(v) for v in rave.encode_params)
        self.in_channels = in_ch
        self.out_channels = int(rave.forward_params[2])
        self.latent_size = latent
        self.ratio = ratio
        self.sr = int(rave.sr)
        self.host_sr = self.sr
        self.delay = int(delay)
        d_sae = int(sae.W_dec.shape[0])
        self.d_sae = d_sae
        self._mode_names: List[str] = list(ALL_MODES)  # noqa: UP006
        self.strength_limit = float(STRENGTH_LIMIT)
        self.clamp_limit = float(CLAMP_LIMIT)
        self._concept_attrs: List[str] = [c.attr for c in concepts]  # noqa: UP006
        # what the host's message thread sets while nn~'s compute thread plays (threaded nn~ locks neither): numbers
        # in place, never a replaced object (a concept's mode was a string in a list: replacing it as forward read
        # it crashed the host), each call reading one snapshot (`_controls`); rows: a concept's (mode code, value),
        # then the gate's (lo, hi) dB
        ctl = [[float(ALL_MODES.index(c.mode)), float(c.value)] for c in concepts] + [[gate.lo_db, gate.hi_db]]
        self.register_buffer("controls", torch.tensor(ctl, dtype=torch.float64))
        self.register_buffer("controls_used", torch.tensor(ctl, dtype=torch.float64))
        # odd while a setter writes (a seqlock: a snapshot taken meanwhile is taken again); a tensor, for TorchScript's
        # optimiser merges two reads of an int attribute with nothing between that it sees writing it, so the check
        # after the copy always passed (torn settings played), where a tensor's `item()` is read each time
        self.register_buffer("controls_seq", torch.zeros(1, dtype=torch.int64))
        mask = torch.zeros(len(concepts), d_sae)
        weight = torch.zeros(len(concepts), d_sae, dtype=torch.float64)
        typical = torch.zeros(len(concepts), d_sae, dtype=torch.float64)
        for row, c in enumerate(concepts):
            for index, w, t in c.features:
                mask[row, index] = 1.0
                weight[row, index] = w
                typical[row, index] = t
        self.register_buffer("concept_mask", mask)
        self.register_buffer("concept_weight", weight)
        self.register_buffer("concept_typical", typical)
        self.mix = 1.0
        self.bypass = 0
        # stream state (cleared by `reset_state` before saving)
        self.register_buffer("prev_gain", torch.ones(d_sae))
        self.register_buffer("prev_add", torch.zeros(d_sae))
        self.register_buffer("prev_floor", torch.zeros(d_sae))
        self.register_buffer("dry_history", torch.zeros(0, 0, 0))
        self.edit_started = False
        self.prev_mix = -1.0
        self.has_meter = meter is not None
        m = meter or MeterSpec([], torch.zeros(0, dtype=torch.long), torch.zeros(0, 0), torch.zeros(0), 1.0)
        self.register_buffer("meter_idx", m.idx.clone())
        self.register_buffer("meter_coef", m.coef.clone().float())
        self.register_buffer("meter_intercept", m.intercept.clone().float())
        self.meter_weight = float(m.weight)
        self.register_buffer("meter_state", torch.zeros(0, 0))
        # detectors of concepts playing alone (`sae.alone`): where such a concept is off, its frames get silence
        n, d_in = len(concepts), int(sae.W_dec.shape[1])
        coef = torch.zeros(n, d_sae, dtype=torch.float64)
        intercept = torch.zeros(n, dtype=torch.float64)
        threshold = torch.ones(n, dtype=torch.float64)
        alpha = torch.zeros(n, dtype=torch.float64)
        silence = torch.zeros(n, d_in)
        for row, c in enumerate(concepts):
            if c.alone is not None:
                coef[row] = torch.tensor(c.alone.coef, dtype=torch.float64)
                intercept[row], threshold[row] = c.alone.intercept, c.alone.threshold
                alpha[row] = 1.0 - math.exp(-(self.ratio / self.sr) / c.alone.memory_s)  # as `sae.alone.memory_rows`
                silence[row] = torch.tensor(c.alone.silence)
        self.has_alone = any(c.alone is not None for c in concepts)
        self._concept_alone: List[bool] = [c.alone is not None for c in concepts]  # noqa: UP006
        self.register_buffer("alone_coef", coef)
        self.register_buffer("alone_intercept", intercept)
        self.register_buffer("alone_threshold", threshold)
        self.register_buffer("alone_alpha", alpha)
        self.register_buffer("alone_silence", silence)
        self.register_buffer("alone_memory", torch.zeros(0, 0, 0, dtype=torch.float64))

        self._register_methods(meter)
        self._register_attributes(concepts)
        reset_state(self)

    # -- registration (nn_tilde conventions) --------------------------------------------------------------
    def _register_methods(self, meter: MeterSpec | None) -> None:
        ch = [f"(signal) channel {i + 1}" for i in range(self.in_channels)]
        out = [f"(signal) channel {i + 1}" for i in range(self.out_channels)]
        lat = [f"(signal) latent {i + 1}" for i in range(self.latent_size)]
        with torch.no_grad():
            self.register_method("forward", self.in_channels, 1, self.out_channels, 1, ch, out)
            self.register_method("encode", self.in_channels, 1, self.latent_size, self.ratio, ch, lat)
            self.register_method("decode", self.latent_size, self.ratio, self.out_channels, 1, lat, out)
            if meter is not None:
                labels = [f"(signal) {name} meter" for name in meter.names]
                self.register_method("meter", self.in_channels, 1, len(meter.names), self.ratio, ch, labels)

    def _register_attributes(self, concepts: list[ConceptSpec]) -> None:
        for i, c in enumerate(concepts):
            self._add_attribute(c.attr, (c.mode, float(c.value)))
            setattr(self, f"set_{c.attr}", _concept_setter(i).__get__(self))
            setattr(self, f"get_{c.attr}", _concept_getter(i).__get__(self))
        self._add_attribute("mix", (1.0,))
        self._add_attribute("bypass", (0.0,))  # floats, 0 or 1: nn~ reads an int with stoi, so a slider's
        self._add_attribute("gate", (0.0,))  # "0.500000" was taken as 0 without a word; a float is refused
        self._add_attribute("gate_db", (0.0, 0.0))

    def _add_attribute(self, name: str, defaults: tuple) -> None:
        """What `nn_tilde.Module.register_attribute` records, without its tuple attribute (the values live in
        the lists the setters write)."""
        self._attributes.value.append(name)
        self.register_buffer(f"{name}_params", torch.LongTensor([nn_tilde.TYPE_HASH[type(v)] for v in defaults]))

    def finish(self) -> None:
        """Called by nn_tilde before scripting: every getter/setter exists already, nothing is generated."""
        self._ready = True

    # -- attributes -----------------------------------------------------------------------------------------
    def _set_concept(self, i: int, mode: str, value: float) -> int:
        if mode not in self._mode_names or not math.isfinite(value) or abs(value) > self.strength_limit:
            return -1
        if mode == "clamp" and not (0.0 < value <= self.clamp_limit):
            return -1
        self._write_controls(i, float(self._mode_names.index(mode)), value)
        return 0

    def _write_controls(self, row: int, a: float, b: float) -> None:
        self.controls_seq.add_(1)
        self.controls[row, 0].fill_(a)  # a scalar fill keeps all 64 bits (an element set, `[row, 0] = a`, and
        self.controls[row, 1].fill_(b)  # torch.tensor([a, b]) in TorchScript go through float32)
        self.controls_seq.add_(1)

    def _snapshot(self) -> Tuple[Tensor, bool]:  # noqa: UP006
        """A copy of `controls`, and whether no setter was halfway through it (a mode with another message's value
        was a gain of 100 for a buffer); at most 1000 tries."""
        for _ in range(1000):
            seq = int(self.controls_seq.item())
            if seq % 2 == 0:
                ctl = self.controls.clone()
                if int(self.controls_seq.item()) == seq:
                    return ctl, True
        return self.controls.clone(), False

    def _controls(self) -> Tensor:
        """The controls one call plays with: a whole snapshot, else (setters flooding it) the previous call's.
        Only the compute path calls this: it alone writes `controls_used`, in place."""
        ctl, whole = self._snapshot()
        if not whole:
            return self.controls_used.clone()
        self.controls_used.copy_(ctl)
        return ctl

    @torch.jit.export
    def get_mix(self) -> Tuple[float]:  # noqa: UP006
        return (self.mix,)

    @torch.jit.export
    def set_mix(self, mix: float) -> int:
        if not (0.0 <= mix <= 1.0):
            return -1
        self.mix = mix
        return 0

    @torch.jit.export
    def get_bypass(self) -> Tuple[float]:  # noqa: UP006
        return (float(self.bypass),)

    @torch.jit.export
    def set_bypass(self, bypass: float) -> int:
        if bypass != 0.0 and bypass != 1.0:
            return -1
        self.bypass = int(bypass)
        return 0

    @torch.jit.export
    def get_gate(self) -> Tuple[float]:  # noqa: UP006
        return (float(self.gate),)

    @torch.jit.export
    def set_gate(self, gate: float) -> int:
        if gate != 0.0 and gate != 1.0:
            return -1
        self.gate = int(gate)
        return 0

    @torch.jit.export
    def get_gate_db(self) -> Tuple[float, float]:  # noqa: UP006
        ctl = self._snapshot()[0]
        return float(ctl[-1, 0]), float(ctl[-1, 1])

    @torch.jit.export
    def set_gate_db(self, lo: float, hi: float) -> int:
        if not gate_levels_fit(lo, hi):
            return -1
        self._write_controls(self.controls.shape[0] - 1, lo, hi)
        return 0

    @torch.jit.export
    def get_concepts(self) -> List[str]:  # noqa: UP006
        """Attribute names of the concepts, in composition order."""
        return self._concept_attrs

    @torch.jit.export
    def set_sample_rate(self, sample_rate: Optional[int]) -> None:  # noqa: UP045
        """nn~ reports the host's rate here; RAVE cannot resample at run time, so say when they differ."""
        if sample_rate is not None:
            if sample_rate != self.sr and sample_rate != self.host_sr:
                print("musicsae: this model runs at", self.sr, "Hz but the host runs at", sample_rate, "Hz")
            self.host_sr = sample_rate

    @torch.jit.export
    def get_sample_rate(self) -> int:
        return self.sr

    # nn_tilde generates these three per model; this one has no buffer attributes.
    @torch.jit.export
    def get_buffer_attributes(self) -> List[str]:  # noqa: UP006
        return []

    @torch.jit.export
    def is_buffer_empty(self, buffer_name: str) -> bool:
        return True

    @torch.jit.export
    def set_buffer_attribute(self, buffer_name: str, buffer: Tensor, sr: int) -> int:
        return -1

    @torch.jit.export
    def clear_buffer_attribute(self, buffer_name: str) -> None:
        return

    # -- signal path ----------------------------------------------------------------------------------------
    def _encode_mean(self, x: Tensor) -> Tensor:
        """Latents [B, latent, N] of audio [B, C, T] (a non-variational export's `encode` is deterministic)."""
        return self.rave.encode(x)

    def _encoder_input(self, x: Tensor) -> Tensor:
        """What the encoder net sees; only a variational export has encoder hooks (`rave_split.encoder_net`)."""
        raise RuntimeError("musicsae: this RAVE export has no encoder hook")

    def _edit(self, ctl: Tensor) -> Tuple[Tensor, Tensor, Tensor]:  # noqa: UP006
        """The dense (gain, add, floor) [d_sae] the concept controls `ctl` describe, composed as
        `sae.steering.EditState.edit` composes them (gains held within ±`STRENGTH_LIMIT`, a gain of 0 zeroing the
        feature whatever the others multiply to)."""
        gain = torch.ones(self.d_sae, dtype=torch.float64, device=self.prev_gain.device)
        zero = torch.zeros(self.d_sae, dtype=torch.bool, device=self.prev_gain.device)
        add = torch.zeros(self.d_sae, device=self.prev_gain.device)
        floor = torch.zeros(self.d_sae, device=self.prev_gain.device)
        for i in range(len(self._concept_attrs)):
            mode = self._mode_names[int(ctl[i, 0])]
            value = float(ctl[i, 1])
            if mode == "off" or (mode == "scale" and value == 0.0):
                zero = zero | (self.concept_mask[i] > 0)
            elif mode == "scale":
                gain = gain * torch.where(self.concept_mask[i] > 0, torch.full_like(gain, value), torch.ones_like(gain))
            elif mode == "on":
                add = add + (value * self.concept_weight[i] * self.concept_typical[i]).to(add.dtype)
            elif mode == "clamp":
                level = torch.where(self.concept_mask[i] > 0, value * self.concept_typical[i], 0.0)
                floor = torch.maximum(floor, level.to(floor.dtype))
        gain = gain.clamp(-self.strength_limit, self.strength_limit).masked_fill(zero, 0.0)
        return gain.float(), add, floor

    def _gate(self, x: Tensor, ctl: Tensor) -> Optional[Tensor]:  # noqa: UP045
        """Per-frame weights [B, frames, 1] of the edit from the input audio [B, C, T] (None: `gate 0`)."""
        if self.gate == 0:
            return None
        if x.shape[-1] % self.ratio:  # RAVE pads a partial frame with silence
            x = F.pad(x, [0, self.ratio - x.shape[-1] % self.ratio])
        return energy_gate(x, self.ratio, float(ctl[-1, 0]), float(ctl[-1, 1]), True)  # each channel's power

    def _alone(self, f: Tensor) -> Tensor:
        """SAE features [B, N, d_sae] → [B, N, concepts]: the concept plays alone there (`sae.alone`: a causal
        memory of log1p(f), kept between calls, and a logistic regression on it)."""
        x = torch.log1p(f.double().clamp_min(0.0))
        b, frames, n = x.shape[0], x.shape[1], self.alone_coef.shape[0]
        m = self.alone_memory
        if m.shape[0] != b:
            m = torch.zeros(b, n, x.shape[2], dtype=torch.float64, device=x.device)
        alpha = self.alone_alpha.view(1, n, 1)
        out = torch.zeros(b, frames, n, dtype=torch.bool, device=x.device)
        for t in range(frames):
            m = m + alpha * (x[:, t].unsqueeze(1) - m)
            p = torch.sigmoid(self.alone_intercept.view(1, n) + (m * self.alone_coef.unsqueeze(0)).sum(-1))
            out[:, t] = p > self.alone_threshold.view(1, n)
        self.alone_memory = m
        return out

    def _silence_alone(self, rows: Tensor, alone: Tensor, ctl: Tensor, gate: Optional[Tensor]) -> Tensor:  # noqa: UP045
        """Rows [B, N, d] with the hook's silence where a concept switched off plays alone, weighted by `gate` [B,
        N, 1] as the edit (`sae.alone.AloneSilence.apply`)."""
        for i in range(len(self._concept_attrs)):
            if self._concept_alone[i] and self._mode_names[int(ctl[i, 0])] == "off":
                silenced = torch.where(alone[:, :, i : i + 1], self.alone_silence[i].to(rows.dtype), rows)
                rows = silenced if gate is None else rows + gate.to(rows.dtype) * (silenced - rows)
        return rows

    def _steer_rows(self, rows: Tensor, gate: Optional[Tensor], ctl: Tensor) -> Tuple[Tensor, bool]:  # noqa: UP006, UP045
        """Edit rows [B, N, d] at the hook in SAE space, ramping from the previous call's edit over the N frames,
        then put silence where a concept switched off plays alone; (rows, False) when nothing is edited."""
        f: Optional[Tensor] = None  # noqa: UP045
        alone: Optional[Tensor] = None  # noqa: UP045
        if self.has_alone:  # the detectors follow every call, whatever the switches
            f = self.sae.encode(rows)
            alone = self._alone(f)
        gain, add, floor = self._edit(ctl)
        if not self.edit_started:
            self.prev_gain.copy_(gain)
            self.prev_add.copy_(add)
            self.prev_floor.copy_(floor)
            self.edit_started = True
        prev_gain, prev_add, prev_floor = self.prev_gain, self.prev_add, self.prev_floor
        cur_touched = (gain != 1.0) | (add != 0.0) | (floor > 0.0)
        if torch.equal(prev_gain, gain) and torch.equal(prev_add, add) and torch.equal(prev_floor, floor):
            if not bool(cur_touched.any()):
                return rows, False
            idx = torch.nonzero(cur_touched).reshape(-1)
            g, a, fl = gain[idx], add[idx], floor[idx]
        else:
            idx = torch.nonzero(cur_touched | (prev_gain != 1.0) | (prev_add != 0.0) | (prev_floor > 0.0)).reshape(-1)
            frames = rows.shape[-2]
            before = torch.stack([prev_gain[idx], prev_add[idx], prev_floor[idx]])
            after = torch.stack([gain[idx], add[idx], floor[idx]])
            alpha = torch.arange(1, frames + 1, dtype=torch.float32, device=rows.device).div_(frames).view(frames, 1, 1)
            both = before + (after - before) * alpha
            g, a, fl = both[:, 0], both[:, 1], both[:, 2]
            self.prev_gain.copy_(gain)
            self.prev_add.copy_(add)
            self.prev_floor.copy_(floor)
        clamps: Optional[Tensor] = fl if bool((fl > 0.0).any()) else None  # noqa: UP045
        feats = f if f is not None else self.sae.encode(rows)
        out = steer(rows, feats, self.sae.W_dec, idx, g, a, clamps, gate)
        if alone is not None:  # silence where an off concept plays alone, whatever else is edited, as the engine
            out = self._silence_alone(out, alone, ctl, gate)
        return out, True

    def _steer_layer(self, h: Tensor, gate: Optional[Tensor], ctl: Tensor) -> Tensor:  # noqa: UP045
        """Edit an inner layer's output [B, C, frames·steps]: pooled per latent frame, edited, the change spread
        back over the frame's steps (`realtime.rave_split.RaveSplit`)."""
        rows = pool_rows(h, self.steps)
        new, edited = self._steer_rows(rows, gate, ctl)
        if not edited:
            return h
        return h + spread((new - rows).to(h.dtype), self.steps)

    def _encode(self, x: Tensor, gate: Optional[Tensor], ctl: Tensor) -> Tensor:  # noqa: UP045
        """Audio → latents, edited here when the SAE sits on an encoder layer."""
        split = self.split
        if split is not None and self.side == "encoder":
            h = self._steer_layer(split.upto(self._encoder_input(x)), gate, ctl)
            return self._latent_of(split.after(h))
        return self._encode_mean(x)

    def _latent_of(self, h: Tensor) -> Tensor:
        """The encoder net's output → latents (only a variational export has encoder hooks)."""
        raise RuntimeError("musicsae: this RAVE export has no encoder hook")

    def _decode(self, z: Tensor, gate: Optional[Tensor], ctl: Tensor) -> Tensor:  # noqa: UP045
        """Latents → audio, edited here when the SAE sits on the latent or on a decoder layer."""
        split = self.split
        if split is not None:
            tail = self.out_tail
            if tail is not None:  # a decoder hook
                h = self._steer_layer(split.upto(self.rave.pre_process_latent(z)), gate, ctl)
                return tail(split.after(h), z.shape[-1])
            return self.rave.decode(z)  # an encoder hook: edited in `_encode`
        rows = z.transpose(1, 2)
        new, edited = self._steer_rows(rows, gate, ctl)
        return self.rave.decode(new.transpose(1, 2) if edited else z)

    def _hook_rows(self, x: Tensor) -> Tensor:
        """Audio [B, C, T] → the SAE's input rows [B, frames, d] at the hook (what the meter reads)."""
        split = self.split
        if split is not None:
            if self.side == "encoder":
                h = split.upto(self._encoder_input(x))
            else:
                h = split.upto(self.rave.pre_process_latent(self._encode_mean(x)))
            return pool_rows(h, self.steps)
        return self._encode_mean(x).transpose(1, 2)

    def _dry(self, x: Tensor) -> Tensor:
        """The input mapped to the output channels and delayed by the model's own delay."""
        if x.shape[1] != self.out_channels:
            x = x.mean(1, keepdim=True) if x.shape[1] > 1 else x
            x = x.expand(-1, self.out_channels, -1)
        if self.delay == 0:
            return x
        hist = self.dry_history
        if hist.shape[0] != x.shape[0] or hist.shape[1] != x.shape[1]:
            hist = torch.zeros(x.shape[0], x.shape[1], self.delay, dtype=x.dtype, device=x.device)
        joined = torch.cat([hist, x], -1)
        self.dry_history = joined[..., x.shape[-1] :].clone()
        return joined[..., : x.shape[-1]]

    def _mix(self, x: Tensor, wet: Tensor) -> Tensor:
        dry = self._dry(x)
        target = 0.0 if self.bypass == 1 else self.mix
        start = target if self.prev_mix < 0 else self.prev_mix
        self.prev_mix = target
        if start == target and target == 1.0:
            return wet
        if start == target and target == 0.0:
            return dry
        n = wet.shape[-1]
        ramp = torch.arange(1, n + 1, dtype=torch.float32, device=wet.device).div_(n)
        return dry + (wet - dry) * (start + (target - start) * ramp)

    def forward(self, x: Tensor) -> Tensor:
        x = finite(x)
        if x.shape[-1] % self.ratio:  # a partial frame, padded with silence as RAVE pads it: dry and wet of one length
            x = F.pad(x, [0, self.ratio - x.shape[-1] % self.ratio])
        ctl = self._controls()  # one snapshot for the whole call
        gate = self._gate(x, ctl)
        return self._mix(x, self._decode(self._encode(x, gate, ctl), gate, ctl))

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        x = finite(x)
        ctl = self._controls()
        return self._encode(x, self._gate(x, ctl), ctl)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        return self._decode(finite(z), None, self._controls())  # no audio to measure: ungated

    @torch.jit.export
    def meter(self, x: Tensor) -> Tensor:
        """[B, C, T] audio → [B, concepts, T / ratio]: per frame, sigmoid(intercept + coef · running mean of
        the probe features); the running mean is per latent frame, so the value does not depend on the buffer."""
        f = self.sae.encode(self._hook_rows(finite(x))).index_select(-1, self.meter_idx)  # [B, N, M]
        state = self.meter_state
        if state.shape[0] != f.shape[0]:
            state = torch.zeros(f.shape[0], f.shape[-1], dtype=self.meter_coef.dtype, device=f.device)
        out = []
        for t in range(f.shape[1]):
            state = smooth(state, f[:, t], self.meter_weight)
            out.append(pooled_meter(state, self.meter_coef, self.meter_intercept))
        self.meter_state = state
        return torch.stack(out, -1)


class SteeredVariationalRave(SteeredRave):
    """`SteeredRave` for a variational RAVE: latents are the posterior mean (`realtime.rave.RaveModel.encode_mean`),
    projected like the export's own `encode`, rather than a sample; encoder hooks are possible."""

    def _encoder_input(self, x: Tensor) -> Tensor:
        resampler = self.rave.resampler
        if resampler is not None:
            x = resampler.to_model_sampling_rate(x)
        if self.rave.input_mode == "pqmf":
            pqmf = self.rave.pqmf
            if pqmf is not None:
                batch = list(x.shape[:-2])
                x = pqmf(x.reshape(-1, 1, x.shape[-1]))
                x = x.reshape(batch + [-1, x.shape[-1]])  # noqa: RUF005 (no * unpacking in TorchScript)
        elif self.rave.input_mode == "mel":
            spectrogram = self.rave.spectrogram
            if spectrogram is not None:
                x = torch.log1p(spectrogram(x)[..., :-1])
        return x

    def _latent_of(self, h: Tensor) -> Tensor:
        return project_latent(h, self.rave.latent_mean, self.rave.latent_pca, self.latent_size)

    def _encode_mean(self, x: Tensor) -> Tensor:
        return self._latent_of(self.rave.encoder(self._encoder_input(x)))


@torch.no_grad()
def reset_state(module: nn.Module) -> None:
    """Forget every stream: RAVE's cached convolutions zeroed, edit/mix/meter history dropped."""
    for name, buf in module.named_buffers():
        if name.endswith((".cache", ".pad")):
            buf.zero_()
    if isinstance(module, SteeredRave):
        module.prev_gain.fill_(1.0)
        module.prev_add.zero_()
        module.prev_floor.zero_()
        module.dry_history = torch.zeros(0, 0, 0)
        module.meter_state = torch.zeros(0, 0)
        module.alone_memory = torch.zeros(0, 0, 0, dtype=torch.float64)
        module.edit_started = False
        module.prev_mix = -1.0
