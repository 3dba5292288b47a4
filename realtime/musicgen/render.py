"""Offline MusicGen renders with concept edits from a concept bank.

Each concept edits the residual stream after its own layer (`hook` in the bank) on every generation
step, with the SAE's error term kept (`x̂ = x + (f' − f) @ W_dec`, sae/steering.py). Several concepts
compose (per SAE, per feature); each may have a schedule: active for steps whose frame time lies in
[start, stop). Positions of one forward that share the same active concepts go through the SAE in one call.

Which rows of classifier-free guidance are edited (`edit_rows`, `--edit-rows`):
- `cond` (default): the conditional rows only. The guided logits are uncond + coef · (cond − uncond), so
  guidance multiplies the edit by the coefficient (3 by default) and pushes away from what the unedited
  unconditional rows still say: strengths are not comparable across coefficients or with `both`. On the demo
  MusicGen this is what removes a concept (README, "The demo MusicGen": at every layer, for guitar and drums),
  and validation chose `on` strengths 0.25-0.5 here. Pair it with an SAE that saw prompts
  (`musicsae collect musicgen --prompts` stores conditional rows, what generation encodes there).
- `both`: the conditional and the unconditional rows alike. An edit made to both rows reaches the output
  once, whatever the guidance coefficient: strengths mean the same at any `--cfg-coef`, and the same as in a
  teacher-forced (unguided) forward, where the SAEs collected from audio and the judges measure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from realtime.musicgen.base import Generation, LayerFn, MusicGenBackend
from sae.bank import Concept, ConceptBank
from sae.errors import UserError
from sae.steering import ConceptControl, EditState, apply_edit

EDIT_ROWS = ("both", "cond")
SET_RE = re.compile(  # blanks around = : @ - are no part of a setting, as render rave's --set reads them
    r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)\s*=\s*(?P<mode>[a-z]+(?:\s*:\s*[-+0-9.eE]+)?)"
    r"\s*(?:@\s*(?P<start>[0-9.]*)\s*-\s*(?P<stop>[0-9.]*))?$"
)


@dataclass(frozen=True)
class ConceptSet:
    """One `--set NAME=MODE[@START-STOP]`: mode as in sae/steering (`off`, `on`, `on:S`, `clamp:S`, `scale:G`,
    `none`); optional schedule in seconds (either end may be left empty)."""

    name: str
    mode: str
    start: float = 0.0
    stop: float = math.inf

    def active(self, t: float) -> bool:
        return self.start <= t < self.stop


def parse_set(text: str) -> ConceptSet:
    """`guitar=off`, `piano=on:2`, `drums=scale:0.5@1.5-4`, `bass=on@2-` → ConceptSet."""
    m = SET_RE.match(text.strip())
    if m is None:
        raise UserError(f"--set {text!r}: expected NAME=MODE[@START-STOP], e.g. guitar=off or piano=on:2@1-3")
    try:
        start = float(m["start"]) if m["start"] else 0.0
        stop = float(m["stop"]) if m["stop"] else math.inf
    except ValueError:
        raise UserError(f"--set {text!r}: schedule times must be seconds, e.g. @1.5-4") from None
    if stop <= start:
        raise UserError(f"--set {text!r}: schedule stop {stop:g} s must come after start {start:g} s")
    mode = re.sub(r"\s+", "", m["mode"])
    ConceptControl.parse(m["name"], mode)  # mode and strength limit checked before any model loads
    return ConceptSet(m["name"], mode, start, stop)


@dataclass
class _Group:
    """Concepts sharing one SAE on one layer, and the edit for each set of active concepts."""

    layer: int
    sae: torch.nn.Module
    state: EditState
    sets: list[ConceptSet] = field(default_factory=list)
    cache: dict[frozenset[str], tuple[Tensor | None, ...]] = field(default_factory=dict)

    def active_at(self, t: float) -> frozenset[str]:
        return frozenset(s.name for s in self.sets if s.active(t))

    def edit_at(self, t: float) -> tuple[Tensor | None, ...]:
        return self.edit_for(self.active_at(t))

    def edit_for(self, active: frozenset[str]) -> tuple[Tensor | None, ...]:
        """(idx, gain, add[, floor]) on the SAE's device for this set of active concepts (`apply_edit`)."""
        if active not in self.cache:
            state = self.state.copy()
            for s in self.sets:
                state.set_mode(s.name, s.mode if s.name in active else "none")
            self.cache[active] = state.edit().tensors(self.sae.W_dec.device)
        return self.cache[active]


# each backend's layer names (`MusicGenBackend.hook_prefix` + "." + index)
HOOK_PREFIXES = {"audiocraft": "transformer.layers.", "transformers": "decoder.model.decoder.layers."}


def _other_backend(mg: MusicGenBackend, concept: Concept) -> str:
    """A hint when a concept's layer is named as the other backend names it: a bank is bound to the weight
    files and layer names it was found on, so the two formats of one model need a bank each."""
    for backend, prefix in HOOK_PREFIXES.items():
        if backend != mg.backend and concept.hook.startswith(prefix):
            return (
                f"; its layer {concept.hook} has {backend} layer names: a bank serves the format it was found on, "
                f"so find the concepts again on the {mg.backend} folder (or render the {backend} one)"
            )
    return ""


class BankSteering:
    """Concept edits from `bank` for the loaded model, as layer hooks for `MusicGenBackend.hooks`.

    Args:
        mg: the loaded model (edits are checked against its identity, layers and width).
        bank: the concept bank.
        sets: which concepts to edit, how and when.
        edit_rows: `cond` or `both`: which rows of classifier-free guidance are edited (module docstring).
    """

    def __init__(
        self, mg: MusicGenBackend, bank: ConceptBank, sets: Sequence[ConceptSet], edit_rows: str = "cond"
    ) -> None:
        from sae.io import load_sae

        if edit_rows not in EDIT_ROWS:
            raise UserError(f"--edit-rows {edit_rows}: expected one of {', '.join(EDIT_ROWS)}")
        self.edit_rows = edit_rows
        self.mg = mg
        self.groups: list[_Group] = []
        ref = mg.model_ref()
        by_key: dict[tuple[int, Path], _Group] = {}
        concepts: dict[tuple[int, Path], dict[str, Concept]] = {}
        seen: set[str] = set()
        for s in sorted(sets, key=lambda s: bank.position(s.name)):  # bank order, however they were named
            if s.name in seen:
                raise UserError(f"--set {s.name}: given twice (one setting per concept)")
            seen.add(s.name)
            concept = bank.get(s.name)
            if concept.model.sha256 != ref["sha256"]:
                raise UserError(
                    f"concept {s.name!r} in {bank.path} belongs to model {concept.model.name} "
                    f"({concept.model.sha256[:12]}), not {mg.name} ({ref['sha256'][:12]})" + _other_backend(mg, concept)
                )
            layer = mg.layer_index(concept.hook)
            sae_dir = bank.existing_sae_dir(concept, "copy its SAE there").resolve()
            bank.check_sae(concept, sae_dir)
            key = (layer, sae_dir)
            if key not in by_key:
                sae = load_sae(sae_dir, device=mg.device).eval()
                mg.check_sae(sae_dir, sae.cfg.d_in, layer, f" (concept {s.name!r})")
                by_key[key] = _Group(layer, sae, EditState(sae.cfg.d_sae))
                concepts[key] = {}
            concepts[key][s.name] = concept
            by_key[key].sets.append(s)
        for key, group in by_key.items():
            group.state = EditState.from_concepts(group.state.d_sae, concepts[key])
            for s in group.sets:  # validate modes now (one clear line), not mid-generation
                group.state.copy().set_mode(s.name, s.mode)
            self.groups.append(group)

    def layer_fns(self, batch: int | None = None) -> dict[int, LayerFn]:
        """One hook per edited layer (groups on the same layer apply in bank order).

        `batch`: prompts in the generation; with `edit_rows="cond"` a hidden state of 2·batch rows (guidance:
        conditional rows first) is edited in its first `batch` rows only. Without it every row is edited.
        """
        fps = self.mg.frame_rate
        out: dict[int, LayerFn] = {}
        for layer in sorted({g.layer for g in self.groups}):
            groups = [g for g in self.groups if g.layer == layer]

            def edit(x: Tensor, start: int, groups: list[_Group] = groups) -> Tensor:
                for g in groups:
                    x = _edit_positions(x, g, start, fps)
                return x

            out[layer] = guidance_rows(edit, self.edit_rows, batch)
        return out


def guidance_rows(edit: Callable[[Tensor, int], Tensor], edit_rows: str, batch: int | None) -> LayerFn:
    """A layer hook applying `edit` to the guidance rows `edit_rows` selects (module docstring): all rows, or with
    `cond` and a hidden state of 2·`batch` rows the first `batch` (conditional) ones. An `edit` that returns its
    input unchanged (nothing active) returns the hidden state itself."""

    def fn(hidden: Tensor, start: int) -> Tensor:
        rows = hidden.shape[0]
        if edit_rows == "cond" and batch is not None and rows == 2 * batch:
            rows = batch
        part = hidden if rows == hidden.shape[0] else hidden[:rows]
        x = edit(part, start)
        if x is part:
            return hidden
        return x if part is hidden else torch.cat([x, hidden[rows:]])

    return fn


def _edit_positions(x: Tensor, g: _Group, start: int, fps: float) -> Tensor:
    """Edit every position of `x` [rows, T, D] with the group's edit at its frame time: one SAE call per set of
    active concepts (a generation step has T = 1; a teacher-forced forward many positions)."""
    T = x.shape[1]
    keys = [g.active_at((start + t) / fps) for t in range(T)]
    if len(set(keys)) == 1:
        return apply_edit(x, g.sae, g.edit_for(keys[0]))
    out = x.clone()
    for key in dict.fromkeys(keys):
        pos = torch.tensor([t for t, k in enumerate(keys) if k == key], device=x.device)
        out[:, pos] = apply_edit(x[:, pos], g.sae, g.edit_for(key))
    return out


def render(
    mg: MusicGenBackend,
    prompts: Sequence[str],
    duration: float,
    seed: int,
    steering: BankSteering | None = None,
    cfg_coef: float = 3.0,
    top_k: int = 250,
) -> Generation:
    """Generate `prompts` with the edits of `steering` (None: plain) from the same seed."""
    if steering is None or not steering.groups:
        return mg.generate(prompts, duration, seed=seed, cfg_coef=cfg_coef, top_k=top_k)
    with mg.hooks(steering.layer_fns(len(prompts))):
        return mg.generate(prompts, duration, seed=seed, cfg_coef=cfg_coef, top_k=top_k)


def window_holds_a_step(s: ConceptSet, fps: float, steps: int) -> bool:
    """Whether a generation step (time k / `fps`, k < `steps`) falls in `s`'s window: an edit whose window holds
    none edits nothing (the steps are 1 / fps apart)."""
    k = max(0, math.floor(s.start * fps))
    k += not s.active(k / fps) and k / fps < s.start  # the first step at or after the start
    return k < steps and s.active(k / fps)


def generation_steps(mg: MusicGenBackend, duration: float) -> int:
    """LM steps of one generation: the audio frames plus the delay pattern's tail (one per extra codebook of a
    channel: a stereo model's left and right codebook k share delay k)."""
    return mg.frames(duration) + mg.delays


@contextmanager
def step_progress(mg: MusicGenBackend, on_step: Callable[[int], None]) -> Iterator[None]:
    """Call `on_step(n)` after the n-th forward of the first layer, i.e. after each generation step."""
    count = 0

    def hook(module, args, output) -> None:
        nonlocal count
        count += 1
        on_step(count)

    handle = mg.layers()[0].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
