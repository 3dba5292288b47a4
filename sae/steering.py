"""Concept edits in SAE space with the error term kept.

Semantics (ARCHITECTURE.md, "Edits"): every SAE feature has a multiplicative `gain` (default 1), an
additive `add` (default 0) and a `floor` (default 0: none). With `f = sae.encode(x)` and a per-frame
`gate` g in [0, 1] (default 1):

    f' = f * gain + g * add,   then   f' = max(f', g * floor)  where floor > 0
    x̂  = x + (f' - f) @ W_dec

so the SAE's reconstruction error `x - decode(f)` is kept and an identity edit returns `x` itself, bit for
bit (fast path: nothing is computed). Only the touched features enter the matmul, so the cost of an edit is
one SAE encode plus `[.., K] @ [K, d_in]` for K touched features.

Concept controls map onto features:
    none        no edit (neutral)
    off         gain 0 on the concept's features (remove it)
    on:s        add s * weight * typical on each feature (put it in, on every frame)
    clamp:s     floor s * typical on each feature: raised to it only where it is below (put it in where
                it is missing, leave it where it is already there); 0 < s <= CLAMP_LIMIT
    scale:g     gain g on the concept's features
Several concepts compose per feature (gains multiply, adds sum, floors take the larger), and raw
per-feature gains multiply on top. A concept steers its `steer` features (chosen by effect, `sae.bank`)
when the bank has them, else the features its detector uses.

The gate keeps edits off silence: `energy_gate` turns each frame's input level (RMS about the frame's mean, the
power of a model's channels averaged) into g (0 below `Gate.lo_db` dBFS, 1 above `Gate.hi_db`, linear in dB
between), which weights each frame's change, floors included. Every mode is gated: `on` and `clamp` would paint
onto silence, and `off` and `scale` of the features an SAE fires on silence made sound of it (an `off` on digital
silence played at -37 dBFS RMS with the demo SAE).

Used per block by the live engine (`realtime/`) and by the offline renders on tensors `[.., T, d_in]`.
`steer` and `SteeredSAE` are TorchScript-able.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from sae.controls import ALL_MODES, DECIMAL, LIMIT_TEXT, NAME_NOT_TEXT, STRENGTH_LIMIT, control_problem, spelled
from sae.errors import UserError, refused_number

MODES = ("none", "off", "on", "scale")
"""The modes without floors."""


@dataclass(frozen=True)
class Edit:
    """Dense per-feature `gain`, `add` and `floor` ([d_sae] float32) and the indices they touch.

    Args:
        gain: multiplicative gain per feature (1 = untouched).
        add: additive offset per feature (0 = untouched).
        idx: long indices where gain != 1, add != 0 or floor > 0, ascending; empty for the identity edit.
        floor: clamp floor per feature (0 = none; `None` = no floor anywhere).
        alone: the detectors of the concepts switched `off` that have one (name → `sae.bank.ConceptAlone`):
            frames where such a concept plays alone get the hook's activation of silence (`sae.alone`).
    """

    gain: Tensor
    add: Tensor
    idx: Tensor
    floor: Tensor | None = None
    alone: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def identity(cls, d_sae: int) -> Edit:
        return cls(torch.ones(d_sae), torch.zeros(d_sae), torch.zeros(0, dtype=torch.long))

    @classmethod
    def from_dense(cls, gain: Tensor, add: Tensor, floor: Tensor | None = None) -> Edit:
        dense = (
            None if t is None else t.detach().to("cpu", torch.float32).reshape(-1).numpy() for t in (gain, add, floor)
        )
        return cls.from_arrays(*dense)

    @classmethod
    def from_arrays(cls, gain: np.ndarray, add: np.ndarray, floor: np.ndarray | None = None) -> Edit:
        """`from_dense` of float32 numpy vectors (copied), checked in numpy: torch's per-call overhead made this
        most of an OSC packet's cost."""
        gain, add = np.array(gain, np.float32).reshape(-1), np.array(add, np.float32).reshape(-1)
        if gain.shape != add.shape:
            raise UserError(f"edit gain {tuple(gain.shape)} and add {tuple(add.shape)}: expected the same shape")
        if not (np.isfinite(gain).all() and np.isfinite(add).all()):
            raise UserError("edit gain/add: expected finite numbers")
        touched = (gain != 1.0) | (add != 0.0)
        if floor is not None:
            floor = np.array(floor, np.float32).reshape(-1)
            if floor.shape != gain.shape or not np.isfinite(floor).all() or bool((floor < 0).any()):
                raise UserError(f"edit floor {tuple(floor.shape)}: expected {gain.size} finite numbers >= 0")
            if bool((floor > 0).any()):
                touched |= floor > 0
            else:
                floor = None
        idx = torch.from_numpy(np.flatnonzero(touched).astype(np.int64))
        return cls(
            torch.from_numpy(gain), torch.from_numpy(add), idx, None if floor is None else torch.from_numpy(floor)
        )

    def floors(self) -> Tensor | None:
        """floor [K] on the touched features (0 where a feature has none), or None when nothing is clamped."""
        return None if self.floor is None else self.floor[self.idx]

    @property
    def d_sae(self) -> int:
        return int(self.gain.numel())

    @property
    def is_identity(self) -> bool:
        return self.idx.numel() == 0

    def compact(self) -> tuple[Tensor, Tensor, Tensor]:
        """(idx [K], gain [K], add [K]) restricted to the touched features."""
        return self.idx, self.gain[self.idx], self.add[self.idx]

    def tensors(self, device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """What `steer` takes, on `device`: (idx, gain, add) as `compact` and the floors (None: nothing clamped)."""
        floor = self.floors()
        idx, gain, add = (t.to(device) for t in self.compact())
        return idx, gain, add, None if floor is None else floor.to(device)


def steer(
    x: Tensor,
    f: Tensor,
    W_dec: Tensor,
    idx: Tensor,
    gain: Tensor,
    add: Tensor,
    floor: Optional[Tensor] = None,  # noqa: UP045 (TorchScript reads typing.Optional)
    gate: Optional[Tensor] = None,  # noqa: UP045
) -> Tensor:
    """x̂ = x + (f' - f) @ W_dec on the features `idx` only (plain torch, scriptable: `torch.jit.script(steer)`;
    eager is faster for the small per-block tensors of the live engine).

    Args:
        x: input [.., d_in].
        f: SAE code of x [.., d_sae].
        W_dec: decoder [d_sae, d_in].
        idx: touched feature indices [K] (long); K = 0 returns x itself.
        gain, add: [K], or [.., K] broadcasting against f[.., idx] (e.g. [T, K] per-frame ramps).
        floor: clamp floors [K] or [.., K] (0: no clamp on that feature), or None.
        gate: per-frame weights [.., 1] in [0, 1] on the change and the floor (`energy_gate`), or None (all 1).
    Edit tensors follow f's device when they are elsewhere (no-ops when they are there already; callers that
    run per block move them once, see `realtime.processor.edit_tensors`).
    """
    if idx.numel() == 0:
        return x
    idx = idx.to(f.device)  # edits follow the SAE's device (no-ops when they are there already)
    fk = f.index_select(-1, idx)
    dev, dt = fk.device, fk.dtype
    g: Optional[Tensor] = None if gate is None else gate.to(dev, dt)  # noqa: UP045
    new = fk * gain.to(dev, dt) + add.to(dev, dt)
    if g is not None:  # a closed gate leaves the frame as it is: an `off` on silence made sound of its features
        new = fk + (new - fk) * g
    if floor is not None:
        fl = floor.to(dev, dt)
        if g is not None:
            fl = fl * g
        new = torch.where(fl > 0, torch.maximum(new, fl), new)
    delta = new - fk
    return x + (delta @ W_dec.index_select(0, idx.to(W_dec.device)).to(dev, dt)).to(x.dtype)


GATE_LOWEST_DB = -200.0
"""The lowest gate level, `energy_gate`'s power floor (silence reads -200 dBFS, so no gate opens on it): float32 held
-1e39 as -inf, and the gate computed NaN."""
GATE_SPAN_DB = 0.1
"""The least span from a gate's low level to its high one (a span float32 rounds to 0 divided by zero)."""
GATE_RULE = (
    f"expected low at least {GATE_LOWEST_DB:g} dBFS, high at least {GATE_SPAN_DB:g} dB above it and at most 0 dBFS"
)
"""`gate_levels_fit` in words: what a refusal of gate levels says (`Gate`, `--gate-db`)."""


def gate_levels_fit(lo_db: float, hi_db: float, lowest: float = GATE_LOWEST_DB, span: float = GATE_SPAN_DB) -> bool:
    """Whether a gate's levels are finite, low at least `GATE_LOWEST_DB`, high at least `GATE_SPAN_DB` above it and
    at most 0 dBFS (above, it never opens): one rule for `Gate` (the CLI, renders, live) and the nn~ module's
    `set_gate_db` (TorchScript-able: the limits are default arguments, as TorchScript takes no global floats)."""
    finite = math.isfinite(lo_db) and math.isfinite(hi_db)  # the span to a nanodecibel: -60.3 + 0.1 > -60.2
    return finite and lo_db >= lowest and hi_db - lo_db >= span - 1e-9 and hi_db <= 0.0


@dataclass(frozen=True)
class Gate:
    """Where edits act: frames whose input level is above `lo_db` dBFS (fully above `hi_db`).

    Args:
        lo_db: at or below this frame RMS level (dB full scale) the gate is closed (weight 0).
        hi_db: at or above it the gate is open (weight 1); linear in dB between.
        enabled: False: every frame is weighted 1 (the ungated edit).
    """

    lo_db: float = -60.0
    hi_db: float = -45.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not gate_levels_fit(self.lo_db, self.hi_db):
            raise UserError(f"gate {self.lo_db:g} .. {self.hi_db:g} dB: {GATE_RULE}")

    def weights(self, audio: Tensor, hop: int, channels: bool = False) -> Optional[Tensor]:  # noqa: UP045
        """[.., T, 1] weights for audio [.., T·hop], or [.., C, T·hop] with `channels` (None when disabled)."""
        return energy_gate(audio, hop, self.lo_db, self.hi_db, channels) if self.enabled else None


def energy_gate(audio: Tensor, hop: int, lo_db: float = -60.0, hi_db: float = -45.0, channels: bool = False) -> Tensor:
    """Per-frame weights [.., T, 1] from audio [.., T·hop]: each frame's RMS about its mean (a DC offset is no
    sound) in dBFS mapped linearly from `lo_db` (0) to `hi_db` (1) and clipped (TorchScript-able:
    `torch.jit.script(energy_gate)`). With `channels`, audio is [.., C, T·hop] and a frame's power is the mean of
    its channels' (their mix would call two loud channels in opposite phase silence)."""
    frames = audio.unflatten(-1, [audio.shape[-1] // hop, hop])
    power = (frames - frames.mean(-1, keepdim=True)).pow(2).mean(-1)
    if channels:
        power = power.mean(-2)
    db = 10.0 * torch.log10(power + 1e-20)  # silence at -200 dBFS: below every low level a gate takes (hunt 200)
    return ((db - lo_db) / (hi_db - lo_db)).clamp(0.0, 1.0).unsqueeze(-1)


def ramp(prev: Edit, cur: Edit, frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-frame (idx [K], gain [frames, K], add [frames, K]) moving linearly from `prev` to `cur`.

    Frame t of `frames` gets weight (t + 1) / frames, so the last frame is `cur` (to float32 rounding, ~1e-7) and
    a block of edits never jumps (no zipper clicks). K is the union of the features either edit touches. Floors
    (`clamp`) are not in the triple: `ramp_floor` ramps them over the same K.
    """
    if prev is cur or _same(prev, cur):
        return cur.idx, cur.gain[cur.idx], cur.add[cur.idx]
    idx = torch.unique(torch.cat([prev.idx, cur.idx]))  # sorted union
    a = torch.stack([prev.gain[idx], prev.add[idx]])  # [2, K]
    b = torch.stack([cur.gain[idx], cur.add[idx]])
    alpha = torch.arange(1, frames + 1, dtype=torch.float32).div_(frames).view(frames, 1, 1)
    both = a + (b - a) * alpha  # [frames, 2, K]
    return idx, both[:, 0], both[:, 1]


def _same(a: Edit, b: Edit) -> bool:
    fa = a.floor if a.floor is not None else torch.zeros_like(a.gain)
    fb = b.floor if b.floor is not None else torch.zeros_like(b.gain)
    return torch.equal(a.gain, b.gain) and torch.equal(a.add, b.add) and torch.equal(fa, fb)


def ramp_floor(prev: Edit, cur: Edit, idx: Tensor, frames: int) -> Tensor | None:
    """Floors on `idx` (the K of `ramp`) moving linearly from `prev` to `cur` ([frames, K]; [K] when they do
    not move), or None when neither edit clamps."""
    if prev.floor is None and cur.floor is None:
        return None
    a = prev.floor[idx] if prev.floor is not None else torch.zeros(idx.numel())
    b = cur.floor[idx] if cur.floor is not None else torch.zeros(idx.numel())
    if torch.equal(a, b):
        return b
    alpha = torch.arange(1, frames + 1, dtype=torch.float32).div_(frames).view(frames, 1)
    return a + (b - a) * alpha


class SteeredSAE(nn.Module):
    """An SAE plus an edit: `forward(x)` returns x̂ (TorchScript-able when the SAE is).

    Args:
        sae: a module with `encode(x[.., d_in]) -> f[.., d_sae]` and a `W_dec` [d_sae, d_in] tensor
            (`sae.model.SparseAutoencoder` or its TorchScript export).
    """

    def __init__(self, sae: nn.Module):
        super().__init__()
        self.sae = sae
        W_dec = sae.W_dec
        self.d_sae = int(W_dec.shape[0])
        self.d_in = int(W_dec.shape[1])
        self.register_buffer("idx", torch.zeros(0, dtype=torch.long))
        self.register_buffer("gain", torch.zeros(0))
        self.register_buffer("add", torch.zeros(0))
        self.register_buffer("floor", torch.zeros(0))

    def set_edit(self, edit: Edit) -> None:
        if edit.d_sae != self.d_sae:
            raise UserError(f"edit has {edit.d_sae} features: expected the SAE's d_sae={self.d_sae}")
        self.idx, self.gain, self.add, floor = edit.tensors(self.sae.W_dec.device)
        self.floor = floor if floor is not None else torch.zeros_like(self.gain)

    def forward(self, x: Tensor, gate: Optional[Tensor] = None) -> Tensor:  # noqa: UP045
        """x̂ for x [.., T, d_in]; `gate` [.., T, 1] weights the edit per frame (`energy_gate`)."""
        if self.idx.numel() == 0:
            return x
        return steer(x, self.sae.encode(x), self.sae.W_dec, self.idx, self.gain, self.add, self.floor, gate)


def apply_edit(
    x: Tensor,
    sae: Any,
    edit: Edit | tuple[Tensor, ...],
    gate: Tensor | None = None,
    f: Tensor | None = None,
) -> Tensor:
    """x̂ for an SAE (`encode`, `W_dec`) and an `Edit`, a (idx, gain, add) triple from `ramp`/`compact` or
    an (idx, gain, add, floor) quadruple (`Edit.tensors`, `ramp_floor`; floor None: no clamp).

    For offline renders: `x` is any tensor [.., d_in]; the identity edit returns `x` itself. `gate`
    [.., T, 1] weights the edit per row (`energy_gate`). `f`: `sae.encode(x)` where the caller has it.
    """
    idx, gain, add, floor = edit.tensors() if isinstance(edit, Edit) else (*edit, None)[:4]
    if idx.numel() == 0:
        return x
    idx, gain, add = idx.to(x.device), gain.to(x.device), add.to(x.device)  # edits live on the CPU
    with torch.no_grad():
        return steer(x, sae.encode(x) if f is None else f, sae.W_dec, idx, gain, add, floor, gate)


@dataclass
class ConceptControl:
    """How one concept is steered right now: `mode` in ALL_MODES, `strength` for `on` / `clamp`, `gain` for
    `scale`."""

    mode: str = "none"
    strength: float = 1.0
    gain: float = 1.0

    def spelled(self) -> str:
        """The control as a `--set` mode: `none`, `off`, `on:S`, `clamp:S` or `scale:G`."""
        return spelled(self.mode, self.gain if self.mode == "scale" else self.strength)

    def validate(self, name: str) -> None:
        problem = control_problem(self.mode, self.strength, self.gain)
        if problem:
            raise UserError(f"concept {name!r} {problem}")

    @classmethod
    def parse(cls, name: str, mode: str, base: ConceptControl | None = None, given: bool = False) -> ConceptControl:
        """`off`, `none`, `on`, `clamp`, `scale`, `on:S`, `clamp:S`, `scale:G` → a validated control (other
        fields from `base`; `given`: its strength was given with the mode, as a preset's, not carried over)."""
        base = base or cls()
        head, colon, value = str(mode).partition(":")
        head = head.strip()  # as the value's: "on :2" is on:2 (it was refused as a mode that takes no value)
        new = cls(head, base.strength, base.gain)
        if colon:
            if head not in ALL_MODES:  # ON:2, sacle:x, :2: the mode is what is wrong
                raise UserError(f"concept {name!r} mode {mode!r}: expected one of {', '.join(ALL_MODES)}")
            if not DECIMAL.fullmatch(value.strip()):  # float() also reads 1_0 as 10 and full-width digits
                raise UserError(f"concept {name!r} mode {mode!r}: expected a number after ':'")
            number = float(value)
            if head in ("on", "clamp"):
                new.strength = number
            elif head == "scale":
                new.gain = number
            else:
                raise UserError(f"concept {name!r} mode {mode!r}: only on:S, clamp:S and scale:G take a value")
        try:
            new.validate(name)
        except UserError as exc:
            if colon or given or head not in ("on", "clamp"):  # else the strength is not one given here
                raise
            raise UserError(f"{exc} ({new.strength:g} is the concept's strength so far, from its bank default or an "
                            f"earlier setting: give {head}:S)") from None  # fmt: skip
        return new


@dataclass(frozen=True)
class FeatureRef:
    """One feature a concept uses (mirrors `sae.bank.ConceptFeature`)."""

    index: int
    weight: float = 1.0
    typical: float = 1.0


def check_sets(sets: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, mode) edits as given on a command line: each mode valid and within the limit, `scale` with its gain,
    each concept set once; a repeated concept is refused rather than silently overridden."""
    seen: dict[str, str] = {}
    for name, mode in sets:
        if name in seen:
            raise UserError(f"--set {name}: given twice ({name}={seen[name]}, {name}={mode}); one setting per concept")
        if mode.strip() == "scale":  # a command line sets no gain apart: bare `scale` would keep gain 1, no edit
            raise UserError(f"--set {name}=scale: expected a gain, {name}=scale:GAIN (scale alone is gain 1: no edit)")
        ConceptControl.parse(name, mode)
        seen[name] = mode
    return list(seen.items())


def _features_of(concept: Any) -> list[FeatureRef]:
    """The features a concept's edits move: its `steer` features (chosen by effect) when it has them, else
    the features its detector uses."""
    steer_block = getattr(concept, "steer", None)
    if steer_block is None and isinstance(concept, Mapping):
        steer_block = concept.get("steer")
    chosen = getattr(steer_block, "features", None)
    if chosen is None and isinstance(steer_block, Mapping):
        chosen = steer_block.get("features")
    feats = chosen or (concept.features if hasattr(concept, "features") else concept["features"])
    out = []
    for feat in feats:
        if isinstance(feat, Mapping):
            out.append(FeatureRef(int(feat["index"]), float(feat.get("weight", 1.0)), float(feat.get("typical", 1.0))))
        else:
            out.append(FeatureRef(int(feat.index), float(feat.weight), float(feat.typical)))
    return out


def _read_indices(concept: Any) -> list[int]:
    """The features a concept's detector and meter read (`features`, `probe.coef`): a bank that names one its SAE
    lacks is refused with the edits' own, not left to fail on stage."""
    get = concept.get if isinstance(concept, Mapping) else lambda key: getattr(concept, key, None)
    feats = get("features") or []
    out = [int(f["index"] if isinstance(f, Mapping) else f.index) for f in feats]
    probe = get("probe")
    coef = (probe.get("coef") if isinstance(probe, Mapping) else getattr(probe, "coef", None)) or {}
    return out + [int(i) for i in coef]


def default_control(concept: Any) -> ConceptControl:
    """The bank's default control: `default.mode` / `default.strength` (scale reads strength as its gain, and
    leaves `on` / `clamp` the strength 1: a `scale:0` default made a later bare `on` a no-op at strength 0)."""
    default = getattr(concept, "default", None)
    if default is None and isinstance(concept, Mapping):
        default = concept.get("default")
    if isinstance(default, Mapping):
        mode, strength = default.get("mode", "none"), default.get("strength", 1.0)
    elif default is not None:
        mode, strength = getattr(default, "mode", "none"), getattr(default, "strength", 1.0)
    else:
        mode = getattr(concept, "default_mode", "none")
        strength = getattr(concept, "default_strength", 1.0)
    mode, strength = str(mode), float(strength)
    if mode == "scale":
        return ConceptControl(mode=mode, strength=1.0, gain=strength)
    return ConceptControl(mode=mode, strength=strength)


def known_concepts(names: Collection[str]) -> str:
    """What an unknown concept's error says was expected: the loaded names, or that none are (no bank given)."""
    return f"expected one of {', '.join(sorted(names))}" if names else "no concepts are loaded (no --bank given?)"


def preset_number(value: Any) -> float:
    """A strength or gain of a preset; true/false (YAML's bare yes/no/on/off) is a TypeError, never 1.0 or 0.0, and
    text is read only as a plain decimal number (JSON round trips quote some)."""
    if isinstance(value, bool) or (isinstance(value, str) and not DECIMAL.fullmatch(value.strip())):
        raise TypeError(value)
    try:
        return float(value)
    except OverflowError:  # an integer of 400 digits: past any limit, refused as not a number
        raise ValueError(value) from None


def _same_number(text: str, value: Any) -> bool:
    try:
        return float(text) == float(value)
    except (TypeError, ValueError):
        return False


def _preset_index(index: Any) -> int:
    """A feature index of a preset: an integer, or its digits (JSON keys are strings); 1.7 or true is a ValueError
    (int() made them feature 1)."""
    if isinstance(index, int) and not isinstance(index, bool):
        return index
    if isinstance(index, str) and index.strip().isascii() and index.strip().isdigit():
        return int(index)
    raise ValueError(index)


@dataclass
class EditState:
    """The mutable steering state: per-concept controls and raw per-feature gains → one `Edit`.

    Args:
        d_sae: number of SAE features.
        concepts: name → features the concept uses.
        controls: name → current control (defaults to each concept's bank default).
        feature_gains: raw per-feature gains (index → gain), applied on top of the concepts.
    """

    d_sae: int
    concepts: dict[str, list[FeatureRef]] = field(default_factory=dict)
    controls: dict[str, ConceptControl] = field(default_factory=dict)
    feature_gains: dict[int, float] = field(default_factory=dict)
    defaults: dict[str, ConceptControl] = field(default_factory=dict)
    alone: dict[str, Any] = field(default_factory=dict)  # name → the concept's detector of playing alone

    @classmethod
    def from_concepts(cls, d_sae: int, concepts: Mapping[str, Any] | Iterable[Any]) -> EditState:
        """Build from bank concepts (`sae.bank.Concept` objects, a name→Concept mapping or plain dicts)."""
        items = concepts.items() if isinstance(concepts, Mapping) else ((c.name, c) for c in concepts)
        state = cls(d_sae)
        for name, concept in items:
            feats = _features_of(concept)
            for index in [f.index for f in feats] + _read_indices(concept):
                if not 0 <= index < d_sae:
                    raise UserError(f"concept {name!r} feature {index}: expected an index in [0, {d_sae})")
            control = default_control(concept)
            control.validate(name)
            state.concepts[name] = feats
            if getattr(concept, "alone", None) is not None:
                state.alone[name] = concept.alone
            state.defaults[name] = ConceptControl(control.mode, control.strength, control.gain)
            state.controls[name] = control
        return state

    def _control(self, name: str) -> ConceptControl:
        if name not in self.controls:
            raise UserError(f"unknown concept {name!r}: {known_concepts(self.controls)}")
        return self.controls[name]

    def set_mode(self, name: str, mode: str) -> None:
        """Set a mode; accepts `off`, `none`, `on`, `scale`, `on:S` and `scale:G`."""
        self.controls[name] = ConceptControl.parse(name, mode, self._control(name))

    def set_strength(self, name: str, strength: float) -> None:
        control = self._control(name)
        new = ConceptControl(control.mode, float(strength), control.gain)
        new.validate(name)
        self.controls[name] = new

    def set_gain(self, name: str, gain: float) -> None:
        control = self._control(name)
        new = ConceptControl(control.mode, control.strength, float(gain))
        new.validate(name)
        self.controls[name] = new

    def set_feature_gain(self, index: int, gain: float) -> None:
        if self.d_sae == 0:  # a preset's gains where no SAE runs: "an index in [0, 0)" said nothing (hunt 166)
            raise UserError(f"feature {index}: no SAE loaded, so no features to set (give the SAE: --sae or --bank)")
        if not 0 <= int(index) < self.d_sae:
            raise UserError(f"feature {index}: expected an index in [0, {self.d_sae})")
        if not math.isfinite(float(gain)) or abs(float(gain)) > STRENGTH_LIMIT:
            raise UserError(f"feature {index} gain {refused_number(gain)}: expected a finite number in {LIMIT_TEXT}")
        if float(gain) == 1.0:
            self.feature_gains.pop(int(index), None)
        else:
            self.feature_gains[int(index)] = float(gain)

    def reset(self) -> None:
        """Every concept back to its bank default, raw feature gains cleared."""
        self.controls = {n: ConceptControl(c.mode, c.strength, c.gain) for n, c in self.defaults.items()}
        self.feature_gains.clear()

    def copy(self) -> EditState:
        return EditState(
            self.d_sae,
            self.concepts,
            {n: ConceptControl(c.mode, c.strength, c.gain) for n, c in self.controls.items()},
            dict(self.feature_gains),
            self.defaults,
            self.alone,
        )

    def edit(self) -> Edit:
        """Compose every control into one dense `Edit` (numpy while composing: torch's per-element indexing made this
        0.6 ms, every OSC packet). A feature's gains multiply, held within the range one control has
        (±`STRENGTH_LIMIT`): twenty concepts at scale 100 on one feature overflowed float32, and the refused state
        locked every control (hunt 179); a gain of 0 (`off`, `scale:0`) zeroes the feature whatever the others
        multiply to (an overflowed product times 0 was NaN, hunt 182). The nn~ export composes the same way."""
        gain = np.ones(self.d_sae, np.float64)
        zero = np.zeros(self.d_sae, bool)
        add = np.zeros(self.d_sae, np.float64)
        floor = np.zeros(self.d_sae, np.float32)
        with np.errstate(over="ignore"):  # a product past float64 is inf, held at the limit below
            for name, control in self.controls.items():
                if control.mode == "none":
                    continue
                for feat in self.concepts[name]:
                    if control.mode == "off" or (control.mode == "scale" and control.gain == 0.0):
                        zero[feat.index] = True
                    elif control.mode == "scale":
                        gain[feat.index] *= control.gain
                    elif control.mode == "on":
                        add[feat.index] += control.strength * feat.weight * feat.typical
                    elif control.mode == "clamp":
                        floor[feat.index] = max(float(floor[feat.index]), control.strength * feat.typical)
            for index, g in self.feature_gains.items():
                if g == 0.0:
                    zero[index] = True
                else:
                    gain[index] *= g
        np.clip(gain, -STRENGTH_LIMIT, STRENGTH_LIMIT, out=gain)
        gain[zero] = 0.0
        if (big := np.flatnonzero(~(np.abs(add) <= np.finfo(np.float32).max))).size:  # NaN too
            raise UserError(
                f"feature {big[0]}: the concepts switched on add {add[big[0]]:.3g} to it, past float32's range "
                "(lower their strengths)"
            )
        alone = {n: self.alone[n] for n, control in self.controls.items() if control.mode == "off" and n in self.alone}
        return replace(Edit.from_arrays(gain, add, floor), alone=alone)

    def as_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready snapshot: {"concepts": {name: {mode, strength, gain}}, "features": {i: gain}}."""
        return {
            "concepts": {n: {"mode": c.mode, "strength": c.strength, "gain": c.gain} for n, c in self.controls.items()},
            "features": {int(i): g for i, g in sorted(self.feature_gains.items())},
        }

    def load_dict(self, data: Mapping[str, Any]) -> None:
        """Apply a preset (the `as_dict` layout); all-or-nothing: nothing changes if any entry is bad. Concepts it
        names take its controls; a `features` mapping replaces every raw feature gain (an empty one, as a preset
        saved with none writes, clears them), and a preset without one leaves them."""
        trial = self.copy()
        if not isinstance(data, Mapping):
            raise UserError("preset: expected a mapping with 'concepts' and/or 'features'")
        concepts, features = data.get("concepts"), data.get("features")  # `features: off` is YAML's false, no mapping
        concepts, features = {} if concepts is None else concepts, {} if features is None else features
        if not isinstance(concepts, Mapping) or not isinstance(features, Mapping):
            raise UserError("preset: expected 'concepts' and 'features' to be mappings")
        for name, spec in concepts.items():
            if not isinstance(name, str):  # `12: {mode: off}` named concept 12 "unknown: expected one of 1.5, 12"
                raise UserError(f"preset concept {name!r} {NAME_NOT_TEXT}")
            if not isinstance(spec, Mapping):
                raise UserError(f"preset concept {name!r}: expected a mapping with mode/strength/gain")
            extra = [str(key) for key in spec if key not in ("mode", "strength", "gain")]
            if extra:  # a typo (`mod: on`) would otherwise load as a no-op
                raise UserError(f"preset concept {name!r} key {extra[0]!r}: expected mode, strength or gain")
            old = trial._control(name)
            try:  # the new mode, strength and gain are checked together: a clamp's limit is not an on's
                base = ConceptControl(
                    old.mode,
                    preset_number(spec.get("strength", old.strength)),
                    preset_number(spec.get("gain", old.gain)),
                )
            except (TypeError, ValueError):
                raise UserError(f"preset concept {name!r}: expected numbers for strength/gain") from None
            mode = spec.get("mode", old.mode)
            if isinstance(mode, bool):  # YAML 1.1 reads a bare on/off as a boolean
                mode = "on" if mode else "off"
            if str(mode).strip() == "scale" and "gain" not in spec and "strength" in spec:
                # a bank default's `{mode: scale, strength: G}` is gain G; here strength is on's and clamp's
                raise UserError(f"preset concept {name!r}: mode scale takes its factor as gain (gain: G or mode: "
                                "scale:G); strength is the on / clamp strength")  # fmt: skip
            head, _, inline = str(mode).partition(":")
            key = "gain" if head.strip() == "scale" else "strength"
            if inline.strip() and key in spec and not _same_number(inline, spec[key]):  # `on:2` + `strength: 5`: 2
                raise UserError(f"preset concept {name!r}: mode {mode!r} and {key} {spec[key]!r} both give its "
                                f"{key}; give one")  # fmt: skip
            try:
                trial.controls[name] = ConceptControl.parse(name, str(mode), base, given="strength" in spec)
            except UserError as exc:
                raise UserError(f"preset {exc}") from None
        if "features" in data:
            trial.feature_gains = {}
        for index, g in features.items():
            try:
                trial.set_feature_gain(_preset_index(index), preset_number(g))
            except (TypeError, ValueError):
                raise UserError(f"preset feature {index!r}: expected an integer index and a number") from None
        self.controls, self.feature_gains = trial.controls, trial.feature_gains
