"""Concepts in MusicGen layers: clip activations by teacher forcing, probes per layer, bank entries.

The probing itself is `sae/probe.py` (shared with the RAVE path): clip-pooled SAE features vs clip-pooled
raw activations, out-of-fold AUROC for the sparse SAE probe and both raw baselines. This module supplies
the MusicGen side: each audio clip is encoded by the model's codec and the LM runs teacher-forced once
(null text condition by default), recording every requested layer; one vector per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from realtime.audio_files import AudioNotes, list_sides
from realtime.musicgen import MusicGenBackend, Recorder
from sae.bank import Concept, ConceptDefault, ModelRef
from sae.errors import UserError
from sae.examples import MIN_EXAMPLES, check_examples
from sae.probe import (
    ProbeReport,
    compare_probes,
    concept_clips,
    concept_features,
    concept_intervals,
    concept_probe,
    fires_more,
    pool,
)
from training.musicgen.collect import load_audio


@dataclass(frozen=True)
class Collected:
    """How `collect musicgen --audio` made the rows an SAE was trained on (its cfg.json records it)."""

    chunk: float
    description: str | None


def collected_as(sae_dirs: Sequence[Path]) -> Collected | None:
    """The chunk and text condition of the audio rows these SAEs were trained on, for the probes to see rows made
    the same way (teacher-forced in other chunks or unconditioned, the same clips gave rows the SAE reconstructed
    with an FVU of 0.67 where its held-out rows scored 0.10); None where none is recorded (an SAE trained before
    this was recorded, or on prompts alone). SAEs trained on rows made in different ways are refused."""
    from sae.io import read_sae_cfg
    from sae.jsonfile import is_number

    found: dict[Collected, Path] = {}
    for d in sae_dirs:
        audio = ((read_sae_cfg(d).get("musicsae") or {}).get("collect") or {}).get("audio")
        if audio is None:
            continue
        chunk, text = audio.get("chunk"), audio.get("description")
        if not (is_number(chunk) and chunk > 0):
            raise UserError(f"SAE {d}: cfg.json musicsae.collect.audio.chunk {chunk!r}; expected seconds > 0")
        if text is not None and not isinstance(text, str):
            raise UserError(f"SAE {d}: cfg.json musicsae.collect.audio.description {text!r}; expected text or null")
        found.setdefault(Collected(float(chunk), text), Path(d))
    if len(found) > 1:
        (a, da), (b, db) = list(found.items())[:2]
        raise UserError(
            f"SAEs {da} and {db}: trained on rows collected in other ways (chunk {a.chunk:g} s, description "
            f"{a.description!r}; chunk {b.chunk:g} s, description {b.description!r}); probe them apart (--layers)"
        )
    return next(iter(found), None)


def clip_activations(
    mg: MusicGenBackend,
    files: Sequence[Path],
    layers: Sequence[int],
    chunk: float | None = None,
    description: str | None = None,
    progress: Callable[[int], None] | None = None,
    notes: AudioNotes | None = None,
) -> dict[Path, dict[int, torch.Tensor]]:
    """Per usable file (resolved path) and layer: frames [T, dim] of the residual stream, teacher-forced in
    chunks of `chunk` seconds (default: the LM's training segment when its folder's training.json names it, as
    `collect musicgen` does; else 10). Unreadable, silent or too-short files are left out, with a line in `notes`."""
    from realtime.musicgen import trained_seconds

    if chunk is None:
        chunk = trained_seconds(getattr(mg, "source", "")) or 10.0
    out: dict[Path, dict[int, torch.Tensor]] = {}
    notes = notes if notes is not None else AudioNotes()
    hop = round(mg.sample_rate / mg.frame_rate)
    step = max(1, round(chunk * mg.frame_rate)) * hop
    for path in files:
        real = Path(path).resolve()
        if real in out:
            continue
        wav = load_audio(real, mg.sample_rate, notes, min_samples=hop)
        if wav is None:
            if progress:
                progress(1)
            continue
        wav = mg.whole_frames(wav)  # as `collect musicgen` stores them (the padded tail frame was pooled here)
        parts: dict[int, list[torch.Tensor]] = {i: [] for i in layers}
        for start in range(0, wav.shape[-1], step):
            piece = wav[:, start : start + step]
            codes = mg.encode(piece[None])
            recs = {i: Recorder(rows=1, limit=codes.shape[-1]) for i in layers}
            with mg.hooks(recs):
                mg.teacher_force(codes, [description])
            for i in layers:
                parts[i].append(recs[i].result()[0])
        out[real] = {i: torch.cat(parts[i]) for i in layers}
        if progress:
            progress(1)
    return out


def concept_files(concept_dir: str | Path, min_examples: int = MIN_EXAMPLES) -> tuple[list[Path], list[Path]]:
    """(with, without) audio files of a concept folder `<dir>/with`, `<dir>/without` (the minimum-examples
    rule of `sae.probe.check_examples` applied to each side)."""
    root = Path(concept_dir)
    for side in ("with", "without"):
        if not (root / side).is_dir():
            raise UserError(f"concept folder {root}: expected subfolders with/ and without/")
    return example_files(root / "with", root / "without", min_examples, labels=("", ""))


def example_files(
    with_dir: str | Path,
    without_dir: str | Path,
    min_examples: int = MIN_EXAMPLES,
    labels: tuple[str, str] = ("--with ", "--without "),
) -> tuple[list[Path], list[Path]]:
    """The audio files of both sides, refused when a clip is on both or below the minimum-examples rule (before any
    model runs). `labels`: how the user named each side, before its path."""
    with_files, without_files = list_sides(with_dir, without_dir)
    sides = {f"{labels[0]}{with_dir}": len(with_files), f"{labels[1]}{without_dir}": len(without_files)}
    check_examples(sides, min_examples, "audio file(s)")
    return with_files, without_files


def pooled(
    acts: dict[Path, dict[int, torch.Tensor]], files: Sequence[Path], layer: int, sae
) -> tuple[np.ndarray, np.ndarray]:
    """(SAE-feature pooled [clips, d_sae], raw pooled [clips, dim]) for `files` at `layer`."""
    sae_rows, raw_rows = [], []
    with torch.no_grad():
        for f in files:
            x = acts[Path(f).resolve()][layer]
            raw_rows.append(pool(x))
            sae_rows.append(pool(sae.encode(x.to(sae.W_enc.device))))
    return np.stack(sae_rows), np.stack(raw_rows)


def split_halves(
    with_files: Sequence[Path], without_files: Sequence[Path], seed: int = 0
) -> tuple[tuple[list[Path], list[Path]], tuple[list[Path], list[Path]]]:
    """Each side's clips in two seeded halves: ((with, without) to choose a setting on, (with, without) to report
    it on). The first half takes the odd clip of a side."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for files in (with_files, without_files):
        order = [sorted(files, key=str)[j] for j in rng.permutation(len(files))]
        cut = (len(order) + 1) // 2
        first.append(order[:cut])
        second.append(order[cut:])
    return (first[0], first[1]), (second[0], second[1])


@dataclass
class LayerResult:
    """One concept at one layer: the probe report and the bank entry it yields (`fires_more`: whether a feature of
    it fires more with the concept than without; else the entry would steer a feature of the concept's absence)."""

    layer: int
    report: ProbeReport
    concept: Concept
    notes: list[str] = field(default_factory=list)
    fires_more: bool = True


def probe_layer(
    name: str,
    mg: MusicGenBackend,
    layer: int,
    sae,
    sae_ref: str,
    acts: dict[Path, dict[int, torch.Tensor]],
    with_files: Sequence[Path],
    without_files: Sequence[Path],
    k: int | None = None,
    folds: int = 5,
    seed: int = 0,
    min_examples: int = MIN_EXAMPLES,
    sae_sha256: str | None = None,
) -> LayerResult:
    """Held-out AUROC of the concept at `layer` and its bank entry (features, weights, typical activations)."""
    with_files = [f for f in with_files if Path(f).resolve() in acts]  # the usable clips (others: noted)
    without_files = [f for f in without_files if Path(f).resolve() in acts]
    S_w, R_w = pooled(acts, with_files, layer, sae)
    S_o, R_o = pooled(acts, without_files, layer, sae)
    y = np.r_[np.ones(len(S_w), int), np.zeros(len(S_o), int)]
    sides = {f"{name} with": len(S_w), f"{name} without": len(S_o)}
    few = check_examples(sides, min_examples) if min_examples else []  # 0: a part of clips already checked whole
    report = compare_probes(np.r_[S_w, S_o], np.r_[R_w, R_o], y, k=k, folds=folds, seed=seed)
    more = fires_more(report, np.r_[S_w, S_o], y)
    # typical activation of each chosen feature: mean over the frames of 'with' clips where it fires
    frames = torch.cat([acts[Path(f).resolve()][layer] for f in with_files])
    with torch.no_grad():
        f = sae.encode(frames.to(sae.W_enc.device)).cpu()
    features = concept_features(report.probe, f)
    ref = mg.model_ref()
    concept = Concept(
        name,
        ModelRef(ref["name"], ref["sha256"]),
        mg.hook_name(layer),
        sae_ref,
        features,
        ConceptDefault("none", 1.0),
        dict(report.auroc),
        concept_probe(report.probe),
        sae_sha256=sae_sha256,
        auroc_interval=concept_intervals(report),
        verdict=report.verdict,
        clips=concept_clips(report),
    )
    return LayerResult(layer, report, concept, few, more)


def find_musicgen_concept(
    name: str,
    with_dir: str | Path,
    without_dir: str | Path,
    model: str,
    sae_dir: str | Path,
    bank_path: str | Path,
    k: int | None = None,
    folds: int = 5,
    mode: str = "none",
    strength: float = 1.0,
    replace: bool = True,
    backend: str = "auto",
    device: str = "cpu",
    min_examples: int = MIN_EXAMPLES,
) -> LayerResult:
    """`musicsae concept find` for a MusicGen model: the SAE's `hook_name` names the layer.

    Everything is checked (model, layer, SAE width, examples) before the model runs; the bank is saved
    atomically at the end, and only if the probe succeeded.
    """
    from realtime.musicgen import load_musicgen
    from sae.bank import ConceptBank, check_concept_name, inert_note
    from sae.io import cfg_hook, load_sae, read_sae_cfg, sae_weights_sha256

    check_concept_name(name)
    with_files, without_files = example_files(with_dir, without_dir, min_examples)
    bank = ConceptBank.load(bank_path, missing_ok=True)
    if not replace and name in bank:
        raise UserError(f"concept {name!r}: already in {bank.path}")
    cfg = read_sae_cfg(sae_dir)
    hook = cfg_hook(cfg)
    if not hook:
        raise UserError(f"SAE {sae_dir}: cfg.json names no hook_name (which MusicGen layer it was trained on)")
    made = collected_as([Path(sae_dir)])  # rows made as the SAE's were: its store's chunk and text condition
    mg = load_musicgen(model, backend, device)
    layer = mg.layer_index(hook)
    sae = load_sae(sae_dir, device=mg.device).eval()
    mg.check_sae(sae_dir, sae.cfg.d_in, layer)  # before the clips are run through the model
    notes = AudioNotes()
    acts = clip_activations(
        mg,
        [*with_files, *without_files],
        [layer],
        chunk=made.chunk if made else None,
        description=made.description if made else None,
        notes=notes,
    )
    result = probe_layer(
        name,
        mg,
        layer,
        sae,
        bank.relative_sae(sae_dir),
        acts,
        with_files,
        without_files,
        k,
        folds,
        0,
        min_examples,
        sae_weights_sha256(sae_dir),
    )
    if not result.fires_more:
        raise UserError(
            f"concept {name!r}: no feature of SAE {sae_dir} fires more with it than without (SAE probe AUROC "
            f"{result.report.auroc['sae_probe']:.2f}); nothing written"
        )
    result.concept.default = ConceptDefault(mode, strength)
    result.notes = notes.lines() + result.notes + [n for n in [inert_note(result.concept)] if n]
    with ConceptBank.editing(bank.path) as now:  # as it is now: another command may have changed it meanwhile
        if replaced := now.add(result.concept, replace=replace):
            result.notes.append(replaced)
    result.notes += now.stale_spares()  # a spare of the concept replaced no longer holds: said now, as RAVE's find
    return result
