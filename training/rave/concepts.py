"""Find a concept from user examples: clips *with* it and clips *without* it → SAE features in the bank.

Every clip runs through the RAVE model (deterministic rows of the SAE's hook: the latent, or an encoder /
decoder layer pooled per latent frame, `training.rave.collect`), then the SAE; frames are mean-pooled per
clip. A k-sparse probe on the pooled SAE features picks the few features the detector needs
(`sae.probe`), and held-out AUROC (stratified k-fold, out of fold) is reported side by side for the SAE
probe, a difference-in-means direction and a logistic probe on the raw rows of the same hook (and, for an
inner hook, the difference of means on the raw latents too). The concept goes into the bank with each
feature's probe weight and typical activation (mean value on the frames where it fires in the *with*
clips): `on` adds `strength × weight × typical`.

Steering features are chosen separately, by effect: every feature that fires more with the concept and
carries at least `steer_threshold` of the concept's mean difference d at the hook (its mean difference
times its decoder direction, projected on d: the shares of all features and of the error term add up to
1); the bank's `steer` block records the threshold. With `spare`, the steering features of other concepts
of the bank (found on the same SAE) are left out, so that `drums=off` does not move guitar through a
feature the two share; the block records which concepts were spared. Their weights are calibrated so that
`on:s` moves the hook s mean differences along d, like the raw difference-of-means edit. What `off`
cannot remove is measured at the hook on the clips: the share of d left after `off` of those features
(`off_left`) and the share carried by the SAE's error term, which every edit keeps (`error_share`).

With `alone_dir` (clips of the concept alone: drum solos), a detector of the concept playing alone is fitted on
a memory of the SAE's features (`training.rave.alone`), so that `off` silences a solo instead of re-timbring it.

Nothing is written unless everything succeeded; the bank is saved atomically.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from realtime.audio_files import (
    AudioNotes,
    audio_digests,
    list_audio,
    list_sides,
    read_clip,
    refuse_copies,
    refuse_shared,
    sound_prints,
)
from realtime.rave import check_sae_for_model, sae_hook
from sae.alone import MEMORY_S
from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef, check_concept_name
from sae.errors import UserError
from sae.examples import MIN_EXAMPLES, check_examples
from sae.probe import ProbeReport, compare_probes, concept_features, concept_probe, fires_more
from training.data.groups import GROUP_RULES, clip_group
from training.rave.alone import MIN_ALONE, check_alone_sources, find_alone
from training.rave.nn_export import export_name_note

MAX_PERMUTATIONS = 10_000
"""`--permutations`: each reruns the whole probe on shuffled labels (10 000 put the chance level's p at 1e-4)."""


@dataclass
class FindConfig:
    """Args:
    name: concept name.
    with_dir, without_dir: folders of clips with / without the concept.
    model: streaming RAVE `.ts`.
    sae: SAE directory trained on one hook of that model.
    bank: concept bank YAML (created if missing).
    k: features in the sparse probe (None: chosen by inner cross-validation).
    min_examples: usable clips needed on each side (`sae.probe.check_examples`: at least 12, a note below 20).
    folds: cross-validation folds for the held-out AUROC.
    mode, strength: the concept's default control in the bank.
    replace: overwrite a concept of the same name.
    hook: the hook the SAE reads (None: the SAE's own `hook_name`, else `latent`); another is refused.
    steer_threshold: share of the concept's mean difference at the hook a feature must carry to be steered
        (0: only the probe's features).
    groups: how clips map to sources (`training.data.groups`: none, subfolder, prefix); folds never split one.
    permutations: reruns of the probe on shuffled labels (the chance level beside the AUROC; 0: none).
    spare: concepts of the bank, found on the same SAE, whose steering features (their probe's where they have
        none) this concept's edits leave alone.
    alone_dir: a folder of clips of the concept alone (solos): fits the detector that lets `off` silence them
        (`training.rave.alone`); None: `off` has none.
    alone_memory: that detector's memory, seconds.
    device: torch device for the model and the SAE.
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
    hook: str | None = None
    steer_threshold: float = 0.02
    groups: str = "none"
    permutations: int = 50
    spare: tuple[str, ...] = ()
    alone_dir: str | None = None
    alone_memory: float = MEMORY_S
    device: str = "cpu"


@dataclass
class FindResult:
    concept: Concept
    report: ProbeReport
    bank_path: Path
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def clip_frames(
    model, files: list[Path], notes: AudioNotes, streams, cache: dict | None = None, hook: str = "latent"
) -> list[tuple[Path, torch.Tensor]]:
    """Deterministic rows [frames, width] of `hook` per usable clip; `cache` (keyed by model sha256, resolved
    path and hook) lets several concept searches over the same clips encode each clip once."""
    from training.rave.collect import activations_of, chunk_samples

    out, chunk = [], chunk_samples(model)  # as `collect rave` reads them: a long recording in one call took GBs
    for path in files:
        key = (model.identity.sha256, os.path.realpath(path))  # (Path.resolve raises on a link loop)
        key = key if hook == "latent" else (*key, hook)
        if cache is not None and key in cache:  # with what reading it noted (resampled, mixed): said for this side
            z, read = cache[key]  # too (the --alone note counted 1 of 15 resampled clips: hunt 207)
            notes.add(read)
            out.append((path, z))
            continue
        read = AudioNotes()
        audio = read_clip(path, model.sr, read, min_samples=model.ratio, channels=model.channels)
        notes.add(read)
        if audio is not None:
            z = activations_of(model, audio, [hook], chunk, streams)[hook]
            if cache is not None:
                cache[key] = z, read
            out.append((path, z))
    return out


def concept_shares(S: np.ndarray, R: np.ndarray, y: np.ndarray, W_dec: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(delta [d_sae], share [d_sae]): each feature's mean difference (clip-pooled activation, with − without)
    and the share of the concept's mean difference d at the hook it carries, (Δ_i · W_dec_i) · d / |d|² (the
    shares of all features and of the SAE's error term add up to 1)."""
    delta = S[y == 1].mean(0) - S[y == 0].mean(0)
    d = R[y == 1].mean(0) - R[y == 0].mean(0)
    W = W_dec.detach().double().numpy()
    return delta, delta * (W @ d) / max(float(d @ d), 1e-30)


def steer_features(
    S: np.ndarray,
    R: np.ndarray,
    y: np.ndarray,
    W_dec: torch.Tensor,
    fired: torch.Tensor,
    threshold: float,
    exclude: frozenset[int] = frozenset(),
) -> list[ConceptFeature]:
    """Every feature that fires more with the concept and carries at least `threshold` of its mean difference
    at the hook (`concept_shares`), that fires in the *with* frames `fired`, and is not in `exclude` (features
    of spared concepts).

    typical = its mean when active; weight = Δ_i / (typical_i · Σ shares), so `on:1` adds the chosen
    features' mean differences scaled to one whole mean difference along d: `on:s` moves the hook as far along
    the concept as the raw difference-of-means edit `x + s·d` does, through these features only.
    """
    if threshold <= 0:
        return []
    delta, share = concept_shares(S, R, y, W_dec)
    chosen = [i for i in np.flatnonzero((delta > 0) & (share >= threshold)).tolist() if i not in exclude]
    total = float(share[chosen].sum()) if chosen else 0.0
    out = []
    for idx in chosen:
        col = fired[:, idx]
        active = col[col > 0]
        if active.numel():
            typical = float(active.mean())
            out.append(ConceptFeature(int(idx), float(delta[idx] / (typical * total)), typical))
    return sorted(out, key=lambda f: -f.weight * f.typical)


@torch.no_grad()
def what_off_leaves(sae, pos: list[torch.Tensor], neg: list[torch.Tensor], indices: list[int]) -> tuple[float, float]:
    """(off_left, error_share): shares of the concept's mean difference d at the hook (clip means, with −
    without) left after `off` of `indices` on the *with* clips, and carried by the SAE's error term there
    (1 = all of it, 0 = none; projections onto d over |d|²)."""
    from sae.steering import Edit, apply_edit

    def mean(rows: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([r.double().mean(0) for r in rows]).mean(0)

    pos, neg = [z.to(sae.W_dec.device) for z in pos], [z.to(sae.W_dec.device) for z in neg]

    d = mean(pos) - mean(neg)
    norm2 = float(d @ d)
    if norm2 == 0.0:
        return 1.0, 0.0
    gain = torch.ones(int(sae.W_dec.shape[0]))
    gain[indices] = 0.0
    edit = Edit.from_dense(gain, torch.zeros_like(gain))
    off = [apply_edit(z.float(), sae, edit) for z in pos]
    err = [z.float() - sae.decode(sae.encode(z.float())) for z in pos]
    err_neg = [z.float() - sae.decode(sae.encode(z.float())) for z in neg]
    off_left = float((mean(off) - mean(neg)) @ d) / norm2
    error_share = float((mean(err) - mean(err_neg)) @ d) / norm2
    return off_left, error_share


def spared_features(
    bank: ConceptBank, cfg: FindConfig, hook: str, sae_sha256: str, model_sha256: str
) -> frozenset[int]:
    """The steering features (else the probe's) of the concepts `cfg.spare` names, which must be in the bank on
    the same model, SAE and hook as this search; one line naming the first that is not."""
    out: set[int] = set()
    for name in cfg.spare:
        if name == cfg.name:
            raise UserError(f"--spare {name}: a concept cannot spare itself")
        if name not in bank:
            have = ", ".join(c.name for c in bank) or "none"
            raise UserError(f"--spare {name}: not in the concept bank {bank.path} (it has: {have})")
        other = bank.get(name)
        same_sae = other.sae_sha256 == sae_sha256 if other.sae_sha256 else bank.uses_sae(other, cfg.sae)
        if other.model.sha256 != model_sha256:
            raise UserError(
                f"--spare {name}: found on another model ({other.model.name}, sha256 {other.model.sha256[:12]}); "
                f"spare only concepts of {cfg.model}"
            )
        if other.hook != hook or not same_sae:
            raise UserError(
                f"--spare {name}: found on another SAE (hook {other.hook}, {other.sae}); spare only concepts of "
                f"SAE {cfg.sae} at {hook}"
            )
        feats = other.steer.features if other.steer else other.features
        out |= {f.index for f in feats}
    return frozenset(out)


def rate_apart(notes: dict[str, AudioNotes], clips: dict[str, int], sr: int) -> list[str]:
    """A note when the two sides came mostly at different sample rates: a probe can then tell them apart by the
    band limit alone (16 kHz `--with` against 44.1 kHz `--without` was a "concept" of AUROC 1.00)."""
    rates = {}
    for side, n in clips.items():
        counts = dict(notes[side].resampled)
        counts[sr] = counts.get(sr, 0) + n - sum(counts.values())  # the clips read at the model's rate
        rate, most = max(counts.items(), key=lambda kv: kv[1])
        if n == 0 or most < 0.8 * n:
            return []
        rates[side] = (rate, most, n)
    (a, na, ta), (b, nb, tb) = rates["with"], rates["without"]
    if a == b:
        return []
    return [
        f"the sides came at different sample rates (--with {na} of {ta} clips at {a} Hz, --without {nb} of {tb} at "
        f"{b} Hz): the probe may tell them apart by the rate's band limit alone; bring both sides to one rate"
    ]


def layout_apart(notes: dict[str, AudioNotes], clips: dict[str, int], channels: int) -> list[str]:
    """A note when, for a model of several channels, one side came mostly as mono files and the other mostly in
    the model's channels: a probe can tell them apart by the channels alike alone (stereo `--with` against mono
    `--without` of one distribution read 0.81 on raw activations, 0.35 with both mono: hunt 169)."""
    if channels < 2 or not all(clips.values()):
        return []
    share = {side: notes[side].as_mono / n for side, n in clips.items()}
    if not (max(share.values()) >= 0.8 and min(share.values()) <= 0.2):
        return []
    said = ", ".join(f"--{side} {notes[side].as_mono} of {n} clips mono" for side, n in clips.items())
    return [
        f"the sides came in different channel layouts ({said}; the model has {channels}): the probe may tell them "
        "apart by a mono clip's channels being alike alone; bring both sides to one layout"
    ]


def _side(side: str, folder: str, notes: AudioNotes | None = None) -> str:
    """How a side is named in the minimum-examples messages, with the skipped files of that folder."""
    skipped = [why for p, why in (notes.skipped if notes else []) if Path(p).is_relative_to(Path(folder))]
    if not skipped:
        return f"--{side} {folder}"
    first = f"{skipped[0]}" if len(skipped) == 1 else f"the first: {skipped[0]}"  # not every one's reason
    return f"--{side} {folder} ({len(skipped)} skipped; {first})"


def off_left_words(off_left: float) -> str:
    """What `off` does to the concept's mean difference, in words: the share it leaves, or, below 0 (the clips move
    past those without the concept), how far past them it goes."""
    left = 100 * off_left
    return f"leaves {left:.0f} % of it" if left >= 0 else f"goes {-left:.0f} % of it past the clips without it"


def find_concept(cfg: FindConfig, cache: dict | None = None) -> FindResult:
    """Probe, compare, and add the concept to the bank (saved atomically); see the module docstring."""
    from realtime.rave import RaveModel
    from sae.bank import ConceptSteer
    from sae.io import load_sae, read_sae_cfg, sae_weights_sha256
    from sae.probe import _folds, auroc, concept_clips, concept_intervals, diff_means_scores
    from sae.stats import auroc_interval
    from training.rave.collect import LATENT, make_streams

    t0 = time.perf_counter()
    check_concept_name(cfg.name)
    if cfg.groups not in GROUP_RULES:
        raise UserError(f"--groups {cfg.groups}: expected one of {', '.join(GROUP_RULES)}")
    if not 0 <= cfg.permutations <= MAX_PERMUTATIONS:  # each reruns the whole probe: 1e30 never ended (hunt 155)
        raise UserError(f"--permutations {cfg.permutations}: expected 0 to {MAX_PERMUTATIONS}")
    if cfg.spare and cfg.steer_threshold == 0:
        raise UserError("--spare: spares steering features; with --steer-threshold 0 edits move the probe's only")
    if not (np.isfinite(cfg.steer_threshold) and cfg.steer_threshold >= 0):
        raise UserError(
            f"--steer-threshold {cfg.steer_threshold}: expected a number >= 0 (a share of the concept's mean "
            "difference)"
        )
    bank = ConceptBank.load(cfg.bank, missing_ok=True)  # a broken bank fails before any work
    if cfg.name in bank and not cfg.replace:
        raise UserError(f"concept {cfg.name!r}: already in {bank.path} (drop --no-replace to overwrite)")
    digest, prints = audio_digests(), sound_prints()  # every clip decoded once for each, for all the copy checks
    with_files, without_files = list_sides(cfg.with_dir, cfg.without_dir, digest, prints)
    if not (np.isfinite(cfg.alone_memory) and 0 < cfg.alone_memory <= 60):
        raise UserError(f"--alone-memory {cfg.alone_memory:g}: expected seconds > 0 and at most 60")
    alone_files = list_audio(cfg.alone_dir, "--alone folder") if cfg.alone_dir is not None else []
    if cfg.alone_dir is not None and len(alone_files) < MIN_ALONE:
        raise UserError(f"--alone {cfg.alone_dir}: {len(alone_files)} clips; expected at least {MIN_ALONE}")
    refuse_shared(alone_files, without_files, "--alone", "--without", digest, prints)  # `off` would silence those
    refuse_copies(alone_files, f"--alone {cfg.alone_dir}", digest, prints)  # one solo copied is not four
    if alone_files and cfg.groups != "none":
        check_alone_sources(alone_files, [clip_group(p, Path(cfg.alone_dir), cfg.groups) for p in alone_files])
    check_examples(
        {_side("with", cfg.with_dir): len(with_files), _side("without", cfg.without_dir): len(without_files)},
        cfg.min_examples,
        "audio file(s)",
    )
    model = RaveModel.load(cfg.model, cfg.device)
    sae_cfg = read_sae_cfg(cfg.sae)
    hook = cfg.hook or sae_hook(sae_cfg)
    check_sae_for_model(cfg.sae, sae_cfg, model, hook)
    sae = load_sae(cfg.sae, device=cfg.device).eval()
    if cfg.k is not None and cfg.k > sae.cfg.d_sae:
        raise UserError(f"--k {cfg.k}: the SAE {cfg.sae} has {sae.cfg.d_sae} features; expected at most that")
    sae_sha = sae_weights_sha256(cfg.sae)
    spared = spared_features(bank, cfg, hook, sae_sha, model.identity.sha256)
    notes = {"with": AudioNotes(), "without": AudioNotes()}  # each side's: a note names its folder
    streams = make_streams(model, [hook])
    cache = {} if cache is None else cache  # the clips of it alone are among the clips with it: encoded once
    pos = clip_frames(model, with_files, notes["with"], streams, cache, hook)
    neg = clip_frames(model, without_files, notes["without"], streams, cache, hook)
    few = check_examples(
        {
            _side("with", cfg.with_dir, notes["with"]): len(pos),
            _side("without", cfg.without_dir, notes["without"]): len(neg),
        },
        cfg.min_examples,
    )
    solos = []
    if alone_files:  # read before the search: too few usable solos were refused only once the probes had run
        notes["alone"] = AudioNotes()
        solos = clip_frames(model, alone_files, notes["alone"], streams, cache, hook)
        if len(solos) < MIN_ALONE:
            raise UserError(f"{_side('alone', cfg.alone_dir, notes['alone'])}: {len(solos)} usable clip(s); "
                            f"expected at least {MIN_ALONE} of the concept alone")  # fmt: skip
    with torch.no_grad():
        feats = [sae.encode(z.float().to(sae.W_enc.device)).cpu() for _, z in pos + neg]
    S = np.stack([f.double().mean(0).numpy() for f in feats])
    R = np.stack([z.double().mean(0).cpu().numpy() for _, z in pos + neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(int)
    groups = None
    if cfg.groups != "none":
        groups = [clip_group(p, Path(cfg.with_dir), cfg.groups) for p, _ in pos]
        groups += [clip_group(p, Path(cfg.without_dir), cfg.groups) for p, _ in neg]
    report = compare_probes(S, R, y, cfg.k, cfg.folds, cfg.seed, groups, cfg.permutations)
    if hook != LATENT:  # the raw-latent baseline beside the inner hook's own raw rows
        lat = clip_frames(model, [p for p, _ in pos + neg], AudioNotes(), make_streams(model, [LATENT]), cache)
        L = np.stack([z.double().mean(0).numpy() for _, z in lat])
        scores = np.zeros(len(y))
        for tr, te in _folds(y, cfg.folds, cfg.seed, None if groups is None else np.asarray(groups)):
            scores[te] = diff_means_scores(L[tr], y[tr], L[te])
        report.auroc["diff_means_latent"] = auroc(scores, y)
        g = None if groups is None else np.asarray(groups, dtype=str)
        report.intervals["diff_means_latent"] = auroc_interval(scores, y, seed=cfg.seed, groups=g).as_dict()
    if not fires_more(report, S, y):
        raise UserError(
            f"concept {cfg.name!r}: no feature of SAE {cfg.sae} fires more with it than without "
            f"(SAE probe AUROC {report.auroc['sae_probe']:.2f}); nothing written"
        )
    fired = torch.cat([f for f in feats[: len(pos)]])
    features = concept_features(report.probe, fired)
    steer = None
    chosen = steer_features(S, R, y, sae.W_dec, fired, cfg.steer_threshold, spared)
    if cfg.spare and not chosen:  # the probe's features cannot stand in: they are not spared
        carrying = f"carrying >= {100 * cfg.steer_threshold:g} % of its mean difference at {hook}"
        if steer_features(S, R, y, sae.W_dec, fired, cfg.steer_threshold):
            why = f"every feature {carrying} is one of {', '.join(cfg.spare)}'s; nothing left to steer"
        else:
            why = f"no feature {carrying}, and with --spare the probe's features cannot stand in"
        raise UserError(f"concept {cfg.name!r}: {why} (lower --steer-threshold or drop --spare); nothing written")
    if chosen:
        off_left, error_share = what_off_leaves(
            sae, [z for _, z in pos], [z for _, z in neg], [f.index for f in chosen]
        )
        steer = ConceptSteer(float(cfg.steer_threshold), chosen, off_left, error_share, tuple(cfg.spare))
    alone, alone_line = None, None
    if solos:
        alone_groups = None
        if groups is not None:
            alone_groups = [clip_group(p, Path(cfg.alone_dir), cfg.groups) for p, _ in solos] + list(groups)
        alone, alone_line = find_alone(
            model, sae, hook, solos, pos + neg, cfg.alone_memory, cfg.seed, alone_groups, digest=digest
        )
    concept = Concept(
        cfg.name,
        ModelRef(model.path.name, model.identity.sha256),
        hook,
        bank.relative_sae(cfg.sae),
        features,
        ConceptDefault(cfg.mode, float(cfg.strength)),
        {k: float(v) for k, v in report.auroc.items()},
        concept_probe(report.probe),
        steer,
        sae_sha256=sae_sha,
        auroc_interval=concept_intervals(report),
        verdict=report.verdict,
        clips=concept_clips(report),
        alone=alone,
    )
    with ConceptBank.editing(bank.path) as now:  # as it is now: another command may have changed it meanwhile
        replaced = now.add(concept, replace=cfg.replace)
    folders = {"with": cfg.with_dir, "without": cfg.without_dir, "alone": cfg.alone_dir}
    lines = [f"--{side} {folders[side]}: {line}" for side, side_notes in notes.items() for line in side_notes.lines()]
    lines += [replaced] if replaced else []
    sides = {"with": len(pos), "without": len(neg)}
    lines += rate_apart(notes, sides, model.sr) + layout_apart(notes, sides, model.channels) + few + now.stale_spares()
    lines += export_name_note(now, concept)  # said now, not first at `export nn`
    if steer is None and cfg.steer_threshold == 0:
        lines.append(f"--steer-threshold 0: edits move the probe's {len(features)} feature(s)")
    elif steer is None:
        lines.append(
            f"no feature carries {100 * cfg.steer_threshold:g} % of the concept's mean difference at {hook}: edits "
            f"move the probe's {len(features)} feature(s)"
        )
    else:
        lines.append(
            f"steering moves {len(chosen)} feature(s), each carrying >= {100 * cfg.steer_threshold:g} % of the "
            f"concept's mean difference at {hook}; `off` {off_left_words(steer.off_left)} "
            f"({100 * steer.error_share:.0f} % of it in the SAE's error term, which edits keep)"
        )
        if cfg.spare:
            unspared = steer_features(S, R, y, sae.W_dec, fired, cfg.steer_threshold)
            shared = len(spared & {f.index for f in unspared})
            lines.append(f"spared {', '.join(cfg.spare)}: {shared} feature(s) it shares with them are not steered")
    if alone_line is not None:
        lines.append(alone_line)
    lines += report.notes
    lines.append(probe_verdict_line(cfg.name, report))
    return FindResult(concept, report, bank.path, lines, time.perf_counter() - t0)


def probe_verdict_line(name: str, report: ProbeReport) -> str:
    """The SAE-vs-raw-baseline verdict in words, from the interval of the AUROC difference only."""
    d = report.difference or {}
    iv = report.intervals
    base = d.get("baseline", report.best_baseline()[0])
    sae, raw = iv.get("sae_probe", {}), iv.get(base, {})
    nan = float("nan")

    def signed(x: float) -> str:  # an end within 0.005 of 0 read +0.00 beside "SAE better" (hunts 199, 201)
        return f"{x:+.1e}" if 0 < abs(x) < 0.005 else f"{x:+.2f}"

    units = f" of {report.groups} sources (the unit resampled)" if report.groups else ""
    figures = (
        f"SAE probe AUROC {report.auroc['sae_probe']:.2f} [{sae.get('lo', nan):.2f}, "
        f"{sae.get('hi', nan):.2f}], {base} on the raw activations {report.auroc[base]:.2f} "
        f"[{raw.get('lo', nan):.2f}, {raw.get('hi', nan):.2f}], difference "
        f"{signed(d.get('value', nan))} [{signed(d.get('lo', nan))}, {signed(d.get('hi', nan))}] "
        f"on {report.n_with} + {report.n_without} clips{units}"
    )
    if report.permutation:
        figures += f"; shuffled labels reach {report.permutation['p95']:.2f} (95th pct of {report.permutation['runs']})"
    if report.verdict == "SAE better":
        return f"the SAE isolates {name!r} better than the raw activations ({figures})"
    if report.verdict == "baseline better":
        return f"the raw activations isolate {name!r} better than this SAE ({figures})"
    if withheld := d.get("withheld"):  # too few sources a side for the difference's interval (hunt 184)
        return f"tied: no verdict is drawn on {name!r} with {withheld} ({figures})"
    return f"tied: the SAE and the raw baseline cannot be told apart on {name!r} at this size ({figures})"
