"""Fidelity of a RAVE model, measured from outside: does a plain reconstruction keep what the original has?

For a `musicsae data make` folder (ideally made with `--holdout-font`), every evaluated clip is rendered
through the model with no edit (streaming export, posterior means, its delay removed) and compared with the
original:

- **concepts**: the outside judge (`training.judge`: harmonic/percussive log-mel statistics + logistic regression)
  decides for each concept whether it hears it, in the original and in the reconstruction. Among the clips *with* the
  concept and among those *without*, the two detection rates are compared (paired, same clips); the goal is
  a difference within ±`GOAL_POINTS` points, and it is called met only when its whole 95 % interval is.
  The judge is cross-fitted: clips fall into `FOLDS` folds by index, and a clip is judged by detectors
  trained on the clean clips of the other folds (every font, every split), so the judge never saw the clip
  it judges but knows every font (a judge that cannot hear a font cannot tell whether a model keeps it).
  Its accuracy on the originals is reported beside.
- **spectral distance**: multi-scale spectral distance (`fidelity_metrics.spectral_distance`);
- **loudness error**: mean |dB| of frame loudness (`fidelity_metrics.loudness_error_db`);
- **frame buzz**: how much the power rises and falls in step with the model's latent frames
  (`fidelity_metrics.frame_buzz`, at the model's rate), reconstructions beside originals.

With `oracle` concepts, the ceiling of steering is measured too: each clip is re-rendered from its MIDI with the
concept's part removed (clips with it: the ideal `off`) or added (clips without it: the ideal `on`,
`concept_clips.oracle_clip`), and judged clean and through the model. No latent edit can do better than the
model's own reconstruction of the ideal result, so when the oracle misses a goal the model is the limit; the
oracle's drift on clean audio is the judge's own cross-talk.

All audio meets the judge at one rate (`training.judge.JUDGE_SR`, 22.05 kHz), so models of different rates are
measured alike. Sets: the held-out font's clips (split `holdout_font`) and the in-font test split; every
figure carries its clip count and a 95 % interval (Wilson for rates, bootstrap over clips otherwise).
Several models share one judge (`models`), which makes the table of a training run cheap. Everything is measured
on mono: a clip's mono mix, which a stereo model hears on both sides, its two rendered sides averaged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime.audio_files import AudioNotes, read_mono
from sae.errors import UserError
from sae.stats import Interval, mean_interval
from training.data.concept_clips import CONCEPTS, ORACLE_PARTS, read_manifest
from training.judge import (
    DEGRADED_COPIES,
    FOLDS,
    JUDGE_FEATURES,
    JUDGE_SR,
    CrossFittedJudge,
    degraded_features,
    fidelity_concepts,
    fidelity_sets,
    fidelity_table,
    judge_features,
    oracle_shift,
    refuse_no_clips,
    resample,
)
from training.rave.fidelity_metrics import frame_buzz, loudness_error_db, spectral_distance

FIDELITY_CONCEPTS = ("guitar", "piano", "drums", "bass", "strings", "brass")
GOAL_POINTS = 10.0


@dataclass
class FidelityConfig:
    """Args:
    data: a `musicsae data make` folder (manifest + clips).
    models: streaming RAVE `.ts` files, each measured against the same judge.
    concepts: manifest concepts to judge.
    max_clips: at most this many clips per set (the first by index; 0 = all).
    block: render block (default: a large offline block).
    device: torch device the models run on.
    """

    data: str
    models: tuple[str, ...]
    concepts: tuple[str, ...] = FIDELITY_CONCEPTS
    max_clips: int = 0
    block: int | None = None
    seed: int = 0
    oracle: tuple[str, ...] = ()
    oracle_clips: int = 40
    device: str = "cpu"


def model_labels(paths: Sequence[str]) -> dict[str, str]:
    """Each `--model`'s name in the report: its file name, with as many of its folders as tell apart models of one
    name (run1/model.ts, run2/model.ts: keyed by name, the first was rendered and then overwritten). One file
    given twice is refused."""
    resolved = [Path(p).resolve() for p in paths]
    for i, r in enumerate(resolved):
        if r in resolved[:i]:
            raise UserError(f"--model {paths[i]}: given twice (it is {paths[resolved.index(r)]})")
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(r.parts[-d:]) for r, d in zip(resolved, depth, strict=True)]
        shared = [labels.count(x) > 1 for x in labels]
        if not any(shared):
            return dict(zip(paths, labels, strict=True))
        depth = [d + s for d, s in zip(depth, shared, strict=True)]


def evaluate_fidelity(cfg: FidelityConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Judge every model's plain reconstructions against the originals; returns the report (JSON-able)."""
    from realtime.rave import RaveModel
    from realtime.render_rave import RaveStream, model_delay, render_array

    t0 = time.perf_counter()
    say = progress or (lambda s: None)
    if not cfg.models:
        raise UserError("--model: give at least one RAVE .ts")
    unknown = [c for c in cfg.concepts if c not in CONCEPTS]
    if unknown:
        raise UserError(f"--concepts {unknown[0]}: unknown; expected some of {', '.join(CONCEPTS)}")
    bad = [c for c in cfg.oracle if c not in ORACLE_PARTS or c not in cfg.concepts]
    if bad:
        raise UserError(f"--oracle {bad[0]}: expected judged concepts among {', '.join(ORACLE_PARTS)}")
    names = model_labels(cfg.models)
    models = {m: RaveModel.load(m, cfg.device) for m in cfg.models}  # a model that does not load fails first
    rows = read_manifest(Path(cfg.data))
    notes, judge_notes = AudioNotes(), AudioNotes()
    say(f"judge: features of {len(rows)} clean clips at {JUDGE_SR} Hz")
    clean: dict[int, np.ndarray] = {}
    kept = []
    for r in rows:
        a = read_mono(Path(cfg.data) / r["file"], JUDGE_SR, judge_notes, min_samples=2048)
        if a is not None:
            clean[r["index"]] = a
            kept.append(r)
    refuse_no_clips(len(kept), len(rows), cfg.data, "", judge_notes.skipped)
    rows = kept
    X = np.stack([judge_features(clean[r["index"]], JUDGE_SR) for r in rows])
    X_degraded = degraded_features([clean[r["index"]] for r in rows], rows, JUDGE_SR)
    sets = fidelity_sets(rows, cfg.max_clips, cfg.data)
    used = sorted({i for v in sets.values() for i in v})
    judged = CrossFittedJudge.fit(X, rows, used, cfg.concepts, JUDGE_SR, X_degraded)

    original = judged({i: X[i] for i in used})
    labels = {c: {i: bool(CONCEPTS[c](rows[i])) for i in used} for c in cfg.concepts}
    oracle_plan = _oracle_plan(cfg, rows, sets, labels, say)  # (concept, set) -> ids; ideal audio per (concept, id)
    oracle_clean = {}  # the judge on the ideal edits themselves (no model)
    for c, audio in oracle_plan["audio"].items():
        feats = {i: judge_features(resample(a, sr, JUDGE_SR), JUDGE_SR) for i, (a, sr) in audio.items()}
        oracle_clean[c] = judged(feats)
    results = {}
    for model_path in cfg.models:
        model = models[model_path]
        stream, delay = RaveStream(model), model_delay(model)
        say(f"{names[model_path]}: rendering {len(used)} clips")
        recon_audio, recon_feats, buzz = {}, {}, {}
        for k, i in enumerate(used):
            a = read_mono(Path(cfg.data) / rows[i]["file"], model.sr, notes, min_samples=model.ratio)
            y = render_array(stream, a, None, None, cfg.block, delay, cfg.seed + k)
            buzz[i] = (frame_buzz(a, model.ratio), frame_buzz(y, model.ratio))
            recon_audio[i] = resample(y, model.sr, JUDGE_SR)
            recon_feats[i] = judge_features(recon_audio[i], JUDGE_SR)
        recon = judged(recon_feats)
        per_set = {}
        for label, idx in sets.items():
            per_set[label] = _set_report(idx, rows, clean, recon_audio, buzz, original, recon, labels, cfg.concepts)
        for c, audio in oracle_plan["audio"].items():
            say(f"{names[model_path]}: rendering {len(audio)} ideal {c} edits")
            feats = {}
            for k, (i, (a, sr)) in enumerate(audio.items()):
                y = render_array(stream, resample(a, sr, model.sr), None, None, cfg.block, delay, cfg.seed + k)
                feats[i] = judge_features(resample(y, model.sr, JUDGE_SR), JUDGE_SR)
            through = judged(feats)
            for label in sets:
                ids = oracle_plan["ids"][c, label]
                per_set[label]["concepts"][c]["oracle"] = _oracle_report(
                    c, ids, labels, original, recon, oracle_clean[c], through, cfg.concepts
                )
        results[names[model_path]] = {"sha256": model.identity.sha256, "sr": model.sr, "sets": per_set}
    return {
        "data": str(cfg.data),
        "judge": {
            "features": JUDGE_FEATURES,
            "rate": JUDGE_SR,
            "cross_fitted_folds": FOLDS,
            "trained_on": f"clean clips of the other folds, every font ({len(rows)} clips in all), {DEGRADED_COPIES}",
        },
        "goal_points": GOAL_POINTS,
        "sets": {k: len(v) for k, v in sets.items()},
        "models": results,
        "notes": [f"judge: skipped {p}: {why}" for p, why in judge_notes.skipped] + notes.lines(),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _oracle_plan(cfg: FidelityConfig, rows, sets, labels, say) -> dict[str, Any]:
    """The ideal edits to render: per oracle concept and set, up to `oracle_clips` clips with and without it."""
    from training.data.concept_clips import data_config, oracle_clip, oracle_edits

    plan: dict[str, Any] = {"ids": {}, "audio": {}}
    if not cfg.oracle:
        return plan
    data_cfg, fonts, held = data_config(Path(cfg.data))
    for c in cfg.oracle:
        audio: dict[int, tuple[np.ndarray, int]] = {}
        for label, idx in sets.items():
            edits = oracle_edits(
                ((i, labels[c][i]) for i in idx),
                cfg.oracle_clips,
                lambda i, c=c: oracle_clip(rows[i], data_cfg, fonts, c, held),
            )
            audio |= {i: (a, data_cfg.sample_rate) for i, a in edits.items()}
            plan["ids"][c, label] = list(edits)
        say(f"oracle {c}: {len(audio)} clips re-rendered with it switched")
        plan["audio"][c] = audio
    return plan


def _oracle_report(c, ids, labels, original, recon, clean_ideal, through, concepts) -> dict[str, Any]:
    """Ideal off (clips with c) and ideal on (clips without): the judge's change on clean audio and through the
    model, with every other concept's drift (`training.judge.oracle_shift`) and the largest one."""
    had = np.array([labels[c][i] for i in ids], bool)

    def arrays(d: dict) -> dict[str, np.ndarray]:
        return {o: np.array([d[o][i] for i in ids], bool) for o in concepts}

    shifts = {
        where: oracle_shift(arrays(before), arrays(after), had, c)
        for where, before, after in (("clean", original, clean_ideal), ("model", recon, through))
    }
    out: dict[str, Any] = {}
    for edit in ("off", "on"):
        out[edit] = {"clips": int((had == (edit == "off")).sum())}
        for where, shift in shifts.items():
            e = shift[edit]
            worst = e["drift"][e["worst"]]["value"] if e["worst"] else float("nan")
            out[edit][where] = e | {"max_drift": abs(worst)}
    return out


def _set_report(idx, rows, clean, recon_audio, buzz, original, recon, labels, concepts) -> dict[str, Any]:
    fonts = sorted({rows[i]["font"] for i in idx})
    spec = np.array([spectral_distance(clean[rows[i]["index"]], recon_audio[i]) for i in idx])
    loud = np.array([loudness_error_db(clean[rows[i]["index"]], recon_audio[i]) for i in idx])
    return {
        "clips": len(idx),
        "fonts": fonts,
        "spectral_distance": mean_interval(spec).as_dict(),
        "loudness_error_db": mean_interval(loud[np.isfinite(loud)]).as_dict(),
        "frame_buzz": {
            "original": mean_interval(np.array([buzz[i][0] for i in idx])).as_dict(),
            "reconstruction": mean_interval(np.array([buzz[i][1] for i in idx])).as_dict(),
        },
        "concepts": fidelity_concepts(idx, original, recon, labels, concepts, GOAL_POINTS),
    }


def _iv(d: dict, fmt: str = ".0f", unit: str = "") -> str:
    return Interval(**d).text(fmt, unit)


def _buzz(s: dict) -> str:
    """The frame buzz of a set, where the report has it (reports written before it do not)."""
    b = s.get("frame_buzz")
    if not b:
        return ""
    recon, orig = _iv(b["reconstruction"], ".1f"), _iv(b["original"], ".1f")
    return f"; frame buzz (max / min power within a latent frame) {recon} (originals {orig})"


def _drift(e: dict) -> str:
    drift = e.get("max_drift")  # NaN over no clips; null once read back from the JSON
    return f"{drift:.0f} ({e['worst']})" if e.get("worst") and drift is not None and np.isfinite(drift) else "n/a"


def markdown(result: dict) -> str:
    """The report as Markdown tables: one per model and set."""
    lines = [
        f"Fidelity: plain reconstructions vs originals, outside judge at {result['judge']['rate']} Hz "
        f"(cross-fitted over {result['judge']['cross_fitted_folds']} folds, {result['judge']['trained_on']}). "
        f"Goal: detection within ±{result['goal_points']:g} points of the originals on clips with and without "
        "each concept; met only when the whole 95 % interval is within.",
        "",
    ]
    for name, m in result["models"].items():
        for label, s in m["sets"].items():
            lines += [
                f"### {name} ({m['sr']} Hz) — {label}: {s['clips']} clips ({', '.join(s['fonts'])})",
                "",
                f"spectral distance {_iv(s['spectral_distance'], '.2f')}; loudness error "
                f"{_iv(s['loudness_error_db'], '.1f', ' dB')}" + _buzz(s),
                "",
                *fidelity_table(s["concepts"]),
            ]
            lines.append("")
            oracle = [(c, e["oracle"]) for c, e in s["concepts"].items() if "oracle" in e]
            if oracle:
                lines += [
                    "Ideal edits (the clip re-rendered from MIDI with the part removed / added): the judge's change on "
                    "clean audio, and through the model (the most any edit of this model can reach).",
                    "",
                    "| concept | ideal off: drop clean | drop through model | drift (clean / model) "
                    "| ideal on: rise clean | rise through model | drift (clean / model) |",
                    "| --- | --- | --- | --- | --- | --- | --- |",
                ]
                for c, o in oracle:
                    off, on = o["off"], o["on"]
                    lines.append(
                        f"| {c} | {_iv(off['clean']['drop'], '+.0f')} | {_iv(off['model']['drop'], '+.0f')} "
                        f"| {_drift(off['clean'])} / {_drift(off['model'])} "
                        f"| {_iv(on['clean']['rise'], '+.0f')} | {_iv(on['model']['rise'], '+.0f')} "
                        f"| {_drift(on['clean'])} / {_drift(on['model'])} |"
                    )
                lines.append("")
    return "\n".join(lines)


def save(result: dict, out: Path) -> None:
    """fidelity.json and fidelity.md in `out` (written atomically)."""
    from sae.atomic import atomic_write_text
    from sae.jsonfile import strict_json

    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("fidelity.json", strict_json(result)), ("fidelity.md", markdown(result))):
        atomic_write_text(out / name, text + "\n")
