"""Offline RAVE renders with concept edits: a file streamed block by block through the model.

Per block: `encode_mean` (deterministic latents) → SAE encode → edit with the error term kept
(`sae.steering`: x̂ = x + (f' − f) @ W_dec) → `decode`. Concepts on an inner hook (`encoder.net.N`,
`decoder.net.N`) run the model in two parts around that layer (`realtime.rave_split`) and edit its
frame-pooled output there. The model's aligned delay (`realtime.alignment`: where its notes come out, as in
the live engine) is removed so the output lines up with the input; `decode`'s noise fill is seeded, so two
renders of the same file at the same block differ only by the edit (the fill is drawn per call: another block
draws other noise). With a schedule of edits per block, an edit that changes ramps over its block exactly as in
the live engine (the same `realtime.processor` functions), so a live take can be reproduced offline sample for
sample at live's block.

`RaveStream` keeps one loaded stream and restores its streaming caches to the freshly loaded state
between files (a copy of the cache buffers: far cheaper than loading the module again, and exact).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from realtime.audio_files import check_finite
from realtime.processor import edit_tensors, steer_block
from sae.alone import AloneSilence, check_detectors
from sae.bank import NAME_RE
from sae.controls import ALL_MODES
from sae.errors import UserError
from sae.steering import Edit, EditState, Gate, apply_edit, check_sets


class RaveStream:
    """One stream of a `RaveModel` whose caches can be reset to the fresh state (`reset()`).

    Args:
        model: a loaded `realtime.rave.RaveModel` (a new stream of it is taken).
    """

    def __init__(self, model: Any):
        self.base = model
        self.model = model.new_stream()
        self._splits: dict[str, Any] = {}

    def reset(self) -> None:
        self.model.reset()

    def split(self, hook: str) -> Any:
        """This stream cut at `hook` (`realtime.rave_split.RaveSplit`, checked once against the whole model)."""
        if hook not in self._splits:
            from realtime.rave_split import RaveSplit

            self._splits[hook] = RaveSplit(self.model, hook)
        return self._splits[hook]

    def __getattr__(self, name: str) -> Any:  # ratio, sr, latent_size, encode_mean, decode, ...
        return getattr(self.model, name)


def parse_set(text: str) -> tuple[str, str]:
    """`guitar=off`, `piano=on:1.5`, `bass=clamp:2`, `drums=scale:0.5`, `voice=none` → (name, mode)."""
    name, sep, mode = text.partition("=")
    head, colon, value = mode.partition(":")
    head, name = head.strip(), name.strip()  # blanks around a part are no part of it (`ConceptControl.parse`)
    if not sep or not NAME_RE.fullmatch(name) or head not in ALL_MODES:
        raise UserError(
            f"--set {text!r}: expected NAME=off, NAME=on[:STRENGTH], NAME=clamp[:STRENGTH], NAME=scale:GAIN or "
            "NAME=none"
        )
    return name, f"{head}{colon}{value.strip()}"


def parse_sets(texts: Sequence[str]) -> list[tuple[str, str]]:
    """Every `--set`, checked (mode, strength limit, one setting per concept) before anything loads."""
    return check_sets(parse_set(t) for t in texts)


def gated_sets(sets: Sequence[tuple[str, str]]) -> list[str]:
    """The concepts of parsed `--set`s the gate acts on: every one that edits (`sae.steering.Gate`)."""
    return [name for name, mode in sets if mode.split(":")[0] != "none"]


@dataclass
class Steering:
    """The SAE and the concepts of a bank that belong to one RAVE model."""

    sae: Any
    sae_dir: Path
    state: EditState
    concepts: dict[str, Any] = field(default_factory=dict)
    hook: str = "latent"
    bank: Any = None  # the `sae.bank.ConceptBank` they were read from

    def edit_for(self, sets: Sequence[tuple[str, str]]) -> Edit:
        """Every concept neutral except the ones set (names must exist)."""
        state = self.state.copy()
        for name in state.controls:
            state.set_mode(name, "none")
        for name, mode in sets:
            state.set_mode(name, mode)
        return state.edit()


def defaults_note(
    bank: Any, sha256: str, named: Collection[str], steers: Callable[[Any], bool] | None = None
) -> str | None:
    """A note naming the concepts of `bank` (a `sae.bank.ConceptBank`) of model `sha256` that have a default edit
    (what live and nn~ start with) and are not in `named`, the concepts a render sets; only those `steers` accepts
    (the concepts of the render's SAE and hook, which a `--set` could add) where given. The `--set`s that would
    hear them are suggested where they sit on one SAE and hook. None: no such concept."""
    from sae.steering import default_control

    left = [(c, d) for c in bank if c.model.sha256 == sha256 and (steers is None or steers(c)) and c.name not in named
            for d in [default_control(c)] if d.mode != "none"]  # fmt: skip
    if not left:
        return None
    sets = [f"{c.name}={d.spelled()}" for c, d in left]
    one = len({(bank.sae_dir(c).resolve(), c.hook) for c, _ in left}) == 1
    hear = f"; --set {' --set '.join(sets)} hears them" if one else " (on several SAEs: --sae chooses)"
    return (f"not applied, the bank's defaults (live and nn~ start with them; a render edits only what --set "
            f"names): {', '.join(sets)}{hear}")  # fmt: skip


def plain_render_notes(bank_path: str | Path, model: Any, sae_dir: str | Path | None) -> list[str]:
    """What a render with `--bank` and no `--set` (the plain model) leaves out: the bank's default edits on the model
    (of `sae_dir`'s concepts where given), or that the bank has no concept on it."""
    from sae.bank import ConceptBank
    from sae.io import read_sae_cfg

    bank = ConceptBank.load(bank_path)
    if sae_dir is not None:
        read_sae_cfg(sae_dir)  # a missing or wrong --sae is refused as with --set, not dropped
    sha = model.identity.sha256
    if not any(c.model.sha256 == sha for c in bank):
        return [
            f"concept bank {bank.path}: no concept was found on {model.path.name} ({sha[:12]}); the render is plain"
        ]
    note = defaults_note(bank, sha, (), (lambda c: bank.uses_sae(c, sae_dir)) if sae_dir is not None else None)
    return [note] if note else []


def other_model_concepts(bank: Any, model: Any) -> list[str]:
    """The concepts of `bank` found on another model than `model` (by sha256: another file, or the same file name
    retrained), each as "NAME (found on FILE SHA, this model is SHA)": what steering every concept of the bank
    leaves out, said where it is left out (a patch's switch for it would fail on stage)."""
    return [f"{c.name} ({why})" for c in bank if (why := other_model(c, model))]


def other_model(concept: Any, model: Any) -> str | None:
    """Where `concept` was found when not on `model` ("found on FILE SHA, this model is SHA"), else None."""
    sha = model.identity.sha256
    if concept.model.sha256 == sha:
        return None
    return f"found on {concept.model.name} {concept.model.sha256[:12]}, this model is {sha[:12]}"


def load_steering(
    bank_path: str | Path,
    model: Any,
    sae_dir: str | Path | None = None,
    names: Sequence[str] | None = None,
    choose: str = "choose one with --sae, or name concepts of one with --set",
) -> Steering:
    """Concepts of the bank found on `model` (by sha256) with one SAE on one hook; one-line errors for
    mismatches (another model, a hook the model cannot be split at, an SAE of another hook or width, concepts of
    several SAEs: `choose` says how the command picks one; an SAE trained on another model)."""
    from realtime.rave import check_sae_for_model
    from realtime.rave_split import hook_shape
    from sae.bank import ConceptBank, named_errors
    from sae.io import load_sae, read_sae_cfg

    bank = ConceptBank.load(bank_path)
    sha = model.identity.sha256
    wanted = (
        sorted(names, key=bank.position)  # bank order, whatever order they were named in
        if names is not None
        else [c.name for c in bank if c.model.sha256 == sha]
    )
    concepts = {}
    for name in wanted:
        c = bank.get(name)
        if c.model.sha256 != sha:
            raise UserError(
                f"concept {name!r} in {bank.path} belongs to model {c.model.name} "
                f"({c.model.sha256[:12]}), not {model.path.name} ({sha[:12]})"
            )
        concepts[name] = c
    dirs = {bank.sae_dir(c).resolve() for c in concepts.values()}
    if sae_dir is not None:
        read_sae_cfg(sae_dir)  # a folder that is not there is the cause, not "no concept found with it"
        chosen = Path(sae_dir).resolve()
        if names is None and concepts:  # no concept named: those found with this SAE
            mine = {n: c for n, c in concepts.items() if bank.uses_sae(c, chosen)}
            if not mine:
                found = "; ".join(f"{n} with {bank.sae_dir(c)}" for n, c in concepts.items())
                raise UserError(f"--sae {sae_dir}: no concept of {bank.path} was found with it ({found})")
            concepts = mine
        other = [n for n, c in concepts.items() if not bank.uses_sae(c, chosen)]
        if other:
            raise UserError(f"concept {other[0]!r} was found with SAE {bank.sae_dir(other[0])}, not {sae_dir}")
    elif len(dirs) > 1:
        for c in concepts.values():  # a `sae:` naming a folder that is gone is the cause, not a choice
            bank.existing_sae_dir(c)
        by_sae: dict[Path, list[str]] = {}
        for name, c in concepts.items():
            by_sae.setdefault(bank.sae_dir(c).resolve(), []).append(name)
        uses = "; ".join(f"{', '.join(found)} with {sae}" for sae, found in by_sae.items())
        raise UserError(f"concepts of {bank.path} use {len(dirs)} different SAEs ({uses}); {choose}")
    elif dirs:
        chosen = bank.existing_sae_dir(next(iter(concepts.values()))).resolve()
    else:
        raise UserError(f"concept bank {bank.path}: no concept was found on {model.path.name} ({sha[:12]})")
    sae_cfg = read_sae_cfg(chosen)  # a missing folder, or a file (a bank's `sae:` naming one), is one line here
    hooks = {c.hook for c in concepts.values()}
    if len(hooks) > 1:
        raise UserError(f"concepts of {bank.path} sit on {len(hooks)} hooks ({', '.join(sorted(hooks))}); steer one")
    hook = hooks.pop() if hooks else "latent"
    width = hook_shape(model, hook)[0]  # refuses a hook the model does not have, listing those it has
    for c in concepts.values():
        bank.check_sae(c, chosen)
    sae = load_sae(chosen, device=model.device).eval()
    trained_on = sae.cfg.hook_name or "latent"
    if trained_on != hook:
        raise UserError(f"SAE {chosen} was trained on hook {trained_on!r}; the concepts are on hook {hook!r}")
    if sae.cfg.d_in != width:
        what = f"{model.latent_size} latents" if hook == "latent" else f"{width} channels at {hook}"
        raise UserError(f"SAE {chosen} takes {sae.cfg.d_in}-dim inputs; {model.path.name} has {what}")
    check_sae_for_model(chosen, sae_cfg, model, hook)  # trained on another model of the same width
    with named_errors(bank.path):  # a feature or detector that does not fit the SAE or the hook: one line
        state = EditState.from_concepts(sae.cfg.d_sae, concepts)
        check_detectors(state.alone, sae.cfg.d_sae, width)
    return Steering(sae, chosen, state, concepts, hook, bank)


RowsEdit = Callable[[Tensor, Tensor | None], Tensor]
"""An edit of rows [.., F, d] at the hook given their SAE code (None: not computed yet)."""


def silenced_rows(
    edit_rows: RowsEdit | None,
    sae: Any,
    silencer: AloneSilence,
    seconds: float,
    alone: Mapping,
    gate: Tensor | None = None,
) -> Callable[[Tensor], Tensor]:
    """`edit_rows` (None: none), then silence where a concept of `alone` plays alone, weighted by `gate` as the
    edit, as the live processor does: the rows are encoded once, for the detectors and the edit alike."""

    def rows_of(rows: Tensor) -> Tensor:
        f = sae.encode(rows)
        out = edit_rows(rows, f) if edit_rows is not None else rows
        return silencer.apply(out, f, seconds, alone, gate)

    return rows_of


MAX_OFFLINE_BLOCK = 2**20
"""The longest block of an offline render (24 s at 44.1 kHz; past about 16384 samples a longer block buys no
speed): `--block 10**12` padded the input to a trillion samples and hung."""


def offline_block(ratio: int, target: int = 16384) -> int:
    """A large block (a multiple of the ratio): offline, per-call overhead dominates small blocks."""
    return ratio * max(1, round(target / ratio))


def model_delay(model: Any) -> int:
    """The model's aligned delay in samples (where its notes come out, `RaveModel.alignment()`; measured once
    per model file and device in a process): the same figure the live engine lines dry and wet up with."""
    return int(model.alignment().aligned)


@torch.no_grad()
def render_array(
    stream: RaveStream,
    audio: np.ndarray,
    sae: Any | None = None,
    edit: Edit | None = None,
    block: int | None = None,
    delay: int = 0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    shift: torch.Tensor | None = None,
    hook: str = "latent",
    gate: Gate | None = None,
    edits: Sequence[Edit] | None = None,
) -> np.ndarray:
    """Float32 audio at the model's rate → the model's output, edited, aligned to the input.

    Mono audio [frames] comes back mono (a stereo model hears it on both sides; its sides are averaged); audio
    [frames, channels] with the model's own channel count (a stereo file through a stereo model) comes back
    [frames, channels], each side as the model gives it.

    Args:
        stream: reset before the file.
        hook: where the SAE edits (`latent`, or an inner layer: the stream runs in two parts around it).
        shift: a latent offset [latent] added to every frame after the SAE edit and before the silence of
            `edit.alone` (the judge's mean-difference steering baseline), weighted per frame by the gate like `on`.
        gate: weights the edit (and `shift`) per latent frame by the input's level (`sae.steering.Gate`;
            default `Gate()`, on; `Gate(enabled=False)` for the ungated edit).
        block: samples per call (a multiple of the ratio; default `offline_block`).
        delay: the model's delay in samples (removed from the output).
        seed: seeds `decode`'s noise fill.
        edits: one edit per block instead of `edit` (the last one repeats); a change ramps over its block
            from the previous block's edit, as the live engine does.
    """
    block = offline_block(stream.ratio) if block is None else block
    if block <= 0 or block % stream.ratio or block > MAX_OFFLINE_BLOCK:
        raise UserError(
            f"block {block}: expected a positive multiple of the model's ratio {stream.ratio}, "
            f"at most {MAX_OFFLINE_BLOCK}"
        )
    audio = np.asarray(audio, np.float32)
    sides = audio.ndim == 2  # [frames, channels]: the model's own channels in and out
    if sides and audio.shape[1] != stream.channels:
        raise UserError(
            f"audio of {audio.shape[1]} channels: expected mono or the model's {stream.channels} channel(s)"
        )
    stream.reset()
    torch.manual_seed(seed)
    n = len(audio)
    total = n + delay
    total += (-total) % block
    # one copy of the input, one of the output (a list of blocks and their concatenation held an hour's render
    # several times over)
    xt = torch.zeros(1, audio.shape[1] if sides else 1, total)  # [1, C, T]
    xt.numpy()[0, :, :n] = audio.reshape(n, -1).T  # any strides, read-only too
    if xt.shape[1] != stream.channels:
        xt = xt.expand(1, stream.channels, -1)
    out_of = (lambda y: y[0].cpu()) if sides else (lambda y: y[0].mean(0, keepdim=True).cpu())  # [C | 1, block]
    out = torch.empty(stream.channels if sides else 1, total)
    steer = sae is not None and edit is not None and not edit.is_identity
    if hook != "latent" and shift is not None:
        raise UserError(f"a latent shift steers the 'latent' hook, not {hook!r}")
    split = stream.split(hook) if hook != "latent" else None
    gate = Gate() if gate is None else gate
    scheduled = bool(edits) and sae is not None
    W_dec = sae.W_dec.detach().to(torch.float32) if scheduled else None
    prev: Edit | None = None
    # detectors of concepts playing alone, for the concepts some edit switches off (`sae.alone`): fresh memory
    silencer = AloneSilence(
        {k: v for e in ([edit] if edit is not None else []) + list(edits or []) for k, v in e.alone.items()}
        if sae is not None
        else {}
    )
    seconds = block / stream.sr

    def block_rows(
        gr: Tensor | None, t: tuple | None, cur: Edit | None, add: Tensor | None = None
    ) -> Callable[[Tensor], Tensor] | None:
        """A block's rows [.., F, d] at the hook → the edit (ramped tensors `t`, else the fixed edit; gate `gr` per
        row), then the latent shift `add`, then the silence where an `off` concept of `cur` plays alone (after the
        edit, as the live processor does); None when it does nothing."""
        fn: RowsEdit | None = None
        if t is not None:
            fn = lambda r, f: steer_block(r, f, sae, W_dec, t, gr)  # noqa: E731
        elif steer:
            fn = lambda r, f: apply_edit(r, sae, edit, gate=gr, f=f)  # noqa: E731
        if add is not None:
            fn = lambda r, f, e=fn: (e(r, f) if e is not None else r) + add  # noqa: E731
        if silencer:
            return silenced_rows(fn, sae, silencer, seconds, cur.alone if cur is not None else {}, gr)
        return (lambda r: fn(r, None)) if fn is not None else None

    for i, start in enumerate(range(0, total, block)):
        x_block = xt[..., start : start + block]
        tensors = None
        cur = edit
        if scheduled:  # as the live engine: the block's edit, ramped from the previous block's
            cur = edits[min(i, len(edits) - 1)]
            tensors = edit_tensors(prev if prev is not None else cur, cur, block // stream.ratio, W_dec.device)
            prev = cur
            if tensors[0].numel() == 0:
                tensors = None
        edited = steer or tensors is not None
        g = gate.weights(x_block, stream.ratio, channels=True) if edited or shift is not None else None  # [1, F, 1]
        if split is not None:
            out[:, start : start + block] = out_of(split(x_block, block_rows(g, tensors, cur)))
            if progress:
                progress(min(start + block, total), total)
            continue
        z = stream.encode_mean(x_block)
        lat = z[0].T  # [F, latent]
        gr = None if g is None else g[0]
        add = None if shift is None else shift.to(lat).view(1, -1) * (1.0 if gr is None else gr.to(lat))
        rows_of = block_rows(gr, tensors, cur, add)
        new = rows_of(lat) if rows_of is not None else lat
        if new is not lat:
            z = new.T.unsqueeze(0)
        out[:, start : start + block] = out_of(stream.decode(z))
        if progress:
            progress(min(start + block, total), total)
    y = out.numpy().T[delay : delay + n]
    y = y if sides else y[:, 0]
    check_finite(y, "render", stream.sr)
    return np.ascontiguousarray(y, dtype=np.float32)


@dataclass
class RenderReport:
    """Args:
    seconds_audio: length of the input.
    seconds_wall: the audio work only (encode, edit, decode of every block), what `rtf` divides.
    delay: samples of the model's own delay removed from the output.
    notes: one-line notes (resampling, channel mixing, silence).
    seconds_startup: loading the model, the bank and the input, measuring the delay, writing the file.
    """

    seconds_audio: float
    seconds_wall: float
    delay: int
    notes: list[str]
    seconds_startup: float = 0.0

    @property
    def rtf(self) -> float:
        """Real-time factor of the audio work: seconds of computing per second of audio (< 1: faster)."""
        return self.seconds_wall / max(self.seconds_audio, 1e-9)


def render_file(
    in_path: str | Path,
    out_path: str | Path,
    model_path: str | Path,
    bank_path: str | Path | None,
    sets: Sequence[str],
    sae_dir: str | Path | None = None,
    block: int | None = None,
    seed: int = 0,
    align: bool = True,
    progress: Callable[[int, int], None] | None = None,
    model: Any | None = None,
    delay: int | None = None,
    gate: Gate | None = None,
    device: str = "cpu",
) -> RenderReport:
    """Read `in_path`, render it through the model with the `--set` edits, write `out_path` atomically.

    `model` (a loaded `RaveModel` of `model_path`) and `delay` may be passed to skip loading / measuring;
    `gate` keeps the edits off quiet frames (default `Gate()`); without `model`, the model is loaded on
    `device` (the SAE follows the model's device).
    """
    from realtime.audio_files import clipping_note, conform, input_notes, peak, read_audio, write_audio
    from realtime.rave import RaveModel
    from sae.paths import check_audio_out, check_not_source

    t0 = time.perf_counter()
    check_audio_out(out_path)
    check_not_source(out_path, in_path, "--out", "--in", "write the render elsewhere")
    parsed = parse_sets(sets)
    if parsed and bank_path is None:
        raise UserError("--set needs --bank (the concepts live in a concept bank)")
    if sae_dir is not None and bank_path is None:
        raise UserError("--sae needs --bank (the SAE steers the bank's concepts; without them the render is plain)")
    model = model if model is not None else RaveModel.load(model_path, device)
    notes = []
    data, file_sr = read_audio(in_path, what="input")
    channels = int(model.channels)  # a stereo model renders stereo; a mono one mono, as before
    notes += input_notes(in_path, data, file_sr, model.sr, channels, model.ratio)
    audio = conform(data, file_sr, model.sr, channels)
    audio = audio[:, 0] if channels == 1 else audio
    gate = Gate() if gate is None else gate
    gated = gated_sets(parsed)
    if gated and gate.enabled and len(audio) >= model.ratio:
        n = len(audio) // model.ratio * model.ratio
        level = torch.from_numpy(np.ascontiguousarray(audio[:n].reshape(n, -1).T))  # [C, n]: as the gate hears it
        quiet = float((gate.weights(level, model.ratio, channels=True) == 0).float().mean())
        if quiet > 0.5:  # a quiet recording: the edit changes little or nothing, and the render says nothing
            notes.append(
                f"{', '.join(gated)}: edits act above {gate.lo_db:g} dBFS, and {100 * quiet:.0f} % of "
                f"{Path(in_path).name}'s frames are quieter (--gate-db=LO,HI or --no-gate to edit them)"
            )
    sae, edit, hook = None, None, "latent"
    if bank_path is not None and not parsed:  # the plain model: the bank only says what the render leaves out
        notes += plain_render_notes(bank_path, model, sae_dir)
    elif bank_path is not None:
        steering = load_steering(bank_path, model, sae_dir, names=[n for n, _ in parsed])
        sae, edit, hook = steering.sae, steering.edit_for(parsed), steering.hook
        for name, mode in parsed:  # `on` / `clamp` without a strength: say which one the render used
            if mode in ("on", "clamp"):
                strength = steering.state.defaults[name].strength
                kept = steering.bank.get(name).default
                # off's and none's strength is kept for a later on / clamp (`default_control`); a scale's is a gain,
                # which leaves them 1
                whence = (
                    f"; the bank's default is scale:{kept.strength:g}, a gain, with no on / clamp strength"
                    if kept.mode == "scale"
                    else ", the bank's default" + ("" if kept.mode == mode else f" (stored with its {kept.mode})")
                )
                notes.append(f"{name}={mode}: strength {strength:g}{whence} ({name}={mode}:S sets one)")
        bank = steering.bank

        def steers(c: Any) -> bool:  # a concept a --set of this render could add: same SAE, same hook
            return c.hook == steering.hook and bank.uses_sae(c, steering.sae_dir)

        if note := defaults_note(bank, model.identity.sha256, {n for n, _ in parsed}, steers):
            notes.append(note)
    delay = (model_delay(model) if delay is None else delay) if align else 0
    stream = RaveStream(model)
    t_work = time.perf_counter()
    y = render_array(stream, audio, sae, edit, block, delay, seed, progress, hook=hook, gate=gate)
    work = time.perf_counter() - t_work
    write_audio(Path(out_path), y, model.sr)
    if note := clipping_note(Path(out_path).name, y, source_peak=peak(data)):
        notes.append(note)
    return RenderReport(len(audio) / model.sr, work, delay, notes, time.perf_counter() - t0 - work)
