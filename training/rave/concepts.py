"""Find a concept from user examples: clips *with* it and clips *without* it → SAE features in the bank.

Every clip runs through the RAVE model (deterministic latents, `training.rave.collect`), then the SAE;
frames are mean-pooled per clip. A k-sparse probe on the pooled SAE features picks the responsible
features (`sae.probe`), and held-out AUROC (stratified k-fold, out of fold) is reported side by side for
the SAE probe, a difference-in-means direction on the raw latents and a logistic probe on the raw latents.
The concept goes into the bank with each feature's probe weight and typical activation (mean value on
the frames where it fires in the *with* clips): `on` adds `strength × weight × typical`.

Nothing is written unless everything succeeded; the bank is saved atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sae.bank import NAME_RE, Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef
from sae.errors import UserError
from sae.probe import ProbeReport, compare_probes, concept_probe, feature_effects
from training.data.audio import AudioNotes, list_audio, read_mono

MIN_EXAMPLES = 6


@dataclass
class FindConfig:
    """Args:
    name: concept name.
    with_dir, without_dir: folders of clips with / without the concept.
    model: streaming RAVE `.ts`.
    sae: SAE directory trained on that model's latents.
    bank: concept bank YAML (created if missing).
    k: features in the sparse probe (None: chosen by inner cross-validation).
    min_examples: usable clips needed on each side.
    folds: cross-validation folds for the held-out AUROC.
    mode, strength: the concept's default control in the bank.
    replace: overwrite a concept of the same name.
    """

    name: str
    with_dir: str
    without_dir: str
    model: str
    sae: str
    bank: str
    k: int | None = None
    min_examples: int = MIN_EXAMPLES
    folds: int = 5
    mode: str = "none"
    strength: float = 1.0
    seed: int = 0
    replace: bool = True


@dataclass
class FindResult:
    concept: Concept
    report: ProbeReport
    bank_path: Path
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def check_sae_for_model(sae_dir: str | Path, cfg: dict, model) -> None:
    """One line when the SAE was not trained on this model's latents (dim, hook or provenance)."""
    d_in = cfg.get("d_in")
    if d_in != model.latent_size:
        raise UserError(
            f"SAE {sae_dir} takes {d_in}-dim inputs; {model.path.name} has {model.latent_size} latents "
            "(an SAE trained on another model?)"
        )
    hook = cfg.get("hook_name") or (cfg.get("metadata") or {}).get("hook_name") or ""
    if hook and hook != "latent":
        raise UserError(f"SAE {sae_dir} was trained on hook {hook!r}; concepts are found on RAVE's 'latent' hook")
    ident = (cfg.get("musicsae") or {}).get("model") or {}
    sha = ident.get("sha256") if isinstance(ident, dict) else None
    if sha and sha != model.identity.sha256:
        raise UserError(
            f"SAE {sae_dir} was trained on {ident.get('name', '?')} ({sha[:12]}), not "
            f"{model.path.name} ({model.identity.sha256[:12]})"
        )
    name = cfg.get("model_name") or (cfg.get("metadata") or {}).get("model_name") or ""
    if not sha and name and name != model.path.name:
        raise UserError(f"SAE {sae_dir} was trained on latents of {name}, not {model.path.name}")


def clip_frames(
    model, files: list[Path], notes: AudioNotes, streams, cache: dict | None = None
) -> list[tuple[Path, torch.Tensor]]:
    """Deterministic latents [frames, latent] per usable clip; `cache` (keyed by model sha256 and resolved
    path) lets several concept searches over the same clips encode each clip once."""
    from training.rave.collect import LATENT, activations_of

    out = []
    for path in files:
        key = (model.identity.sha256, str(Path(path).resolve()))
        if cache is not None and key in cache:
            out.append((path, cache[key]))
            continue
        audio = read_mono(path, model.sr, notes, min_samples=model.ratio)
        if audio is not None:
            z = activations_of(model, audio, [LATENT], 1 << 30, streams)[LATENT]
            if cache is not None:
                cache[key] = z
            out.append((path, z))
    return out


def _enough(side: str, folder: str, n: int, need: int, notes: AudioNotes) -> None:
    if n < need:
        skipped = sum(1 for p, _ in notes.skipped if Path(p).is_relative_to(Path(folder)))
        extra = f" ({skipped} skipped: {notes.skipped[0][1]})" if skipped else ""
        raise UserError(f"--{side} {folder}: {n} usable clip(s){extra}; need at least {need} per side")


def find_concept(cfg: FindConfig, cache: dict | None = None) -> FindResult:
    """Probe, compare, and add the concept to the bank (saved atomically); see the module docstring."""
    from realtime.rave import RaveModel
    from sae.io import load_sae, read_sae_cfg
    from training.rave.collect import LATENT, make_streams

    t0 = time.perf_counter()
    if not NAME_RE.match(cfg.name):
        raise UserError(f"concept name {cfg.name!r}: expected letters, digits, '_', '-' or '.'")
    if cfg.min_examples < 2:
        raise UserError(f"--min-examples {cfg.min_examples}: expected at least 2")
    bank = ConceptBank.load(cfg.bank, missing_ok=True)  # a broken bank fails before any work
    if cfg.name in bank and not cfg.replace:
        raise UserError(f"concept {cfg.name!r}: already in {bank.path} (drop --no-replace to overwrite)")
    with_files = list_audio(cfg.with_dir, "--with folder")
    without_files = list_audio(cfg.without_dir, "--without folder")
    both = {p.resolve() for p in with_files} & {p.resolve() for p in without_files}
    if both:
        raise UserError(f"{len(both)} clip(s) are in both --with and --without (e.g. {sorted(both)[0]})")
    for side, folder, files in (("with", cfg.with_dir, with_files), ("without", cfg.without_dir, without_files)):
        if len(files) < cfg.min_examples:
            raise UserError(f"--{side} {folder}: {len(files)} audio file(s); need at least {cfg.min_examples} per side")
    model = RaveModel.load(cfg.model)
    if not Path(cfg.sae).is_dir():
        raise UserError(f"--sae {cfg.sae}: no such directory")
    check_sae_for_model(cfg.sae, read_sae_cfg(cfg.sae), model)
    sae = load_sae(cfg.sae).eval()
    notes = AudioNotes()
    streams = make_streams(model, [LATENT])
    pos = clip_frames(model, with_files, notes, streams, cache)
    neg = clip_frames(model, without_files, notes, streams, cache)
    _enough("with", cfg.with_dir, len(pos), cfg.min_examples, notes)
    _enough("without", cfg.without_dir, len(neg), cfg.min_examples, notes)
    with torch.no_grad():
        feats = [sae.encode(z.float()) for _, z in pos + neg]
    S = np.stack([f.double().mean(0).numpy() for f in feats])
    R = np.stack([z.double().mean(0).numpy() for _, z in pos + neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(int)
    report = compare_probes(S, R, y, cfg.k, cfg.folds, cfg.seed)
    effects = feature_effects(S, y)[report.probe.indices]
    if not (report.probe.weights > 0).any() or not (effects > 0).any():
        raise UserError(
            f"concept {cfg.name!r}: no feature of SAE {cfg.sae} fires more with it than without "
            f"(SAE probe AUROC {report.auroc['sae_probe']:.2f}); nothing written"
        )
    fired = torch.cat([f for f in feats[: len(pos)]])
    features = []
    for idx, w in zip(report.probe.indices.tolist(), report.probe.weights.tolist(), strict=True):
        col = fired[:, idx]
        active = col[col > 0]
        typical = float(active.mean()) if active.numel() else float(col.abs().max())
        features.append(ConceptFeature(int(idx), float(w), max(typical, 0.0)))
    features.sort(key=lambda f: -f.weight)
    concept = Concept(
        cfg.name,
        ModelRef(model.path.name, model.identity.sha256),
        LATENT,
        bank.relative_sae(cfg.sae),
        features,
        ConceptDefault(cfg.mode, float(cfg.strength)),
        {k: float(v) for k, v in report.auroc.items()},
        concept_probe(report.probe),
    )
    bank.add(concept, replace=cfg.replace)
    bank.save()
    lines = notes.lines()
    base_name, base = report.best_baseline()
    if not report.sae_wins:
        lines.append(
            f"the SAE probe (AUROC {report.auroc['sae_probe']:.3f}) does not beat the {base_name} baseline on "
            f"raw latents ({base:.3f}): this SAE does not isolate {cfg.name!r} better than the latents do"
        )
    return FindResult(concept, report, bank.path, lines, time.perf_counter() - t0)
