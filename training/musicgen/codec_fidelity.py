"""Does the demo MusicGen's codec keep what the outside judge hears? Plain reconstructions vs originals.

The protocol of `musicsae eval fidelity` (training/rave/fidelity.py), for a MusicGen compression model: every clip
of a `musicsae data make --holdout-font F` folder is encoded to codes and decoded; the outside judge
(`training/judge.py`, harmonic/percussive log-mel statistics + logistic regression) decides for each concept whether
it hears it in the original and in the reconstruction. The judge is cross-fitted (`judge.CrossFittedJudge`): clips
fall into `FOLDS` folds by index and a clip is judged by detectors trained on the clean clips of the other folds.
Among the clips with a concept and among those without, the two detection rates are compared (paired, same clips);
the goal is a difference within ±`GOAL_POINTS` points, met only when the whole 95 % interval is. Sets: the held-out
font's clips and the in-font test split. Beside it, the codec's multi-scale mel distance (its training loss).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.audio_files import AudioNotes, read_mono
from sae.errors import UserError
from sae.stats import Interval, mean_interval
from training import judge as outside
from training.data.concept_clips import CONCEPTS, read_manifest

CONCEPTS_JUDGED = outside.FIDELITY_CONCEPTS
GOAL_POINTS = outside.FIDELITY_GOAL_POINTS
JUDGE_SR = outside.JUDGE_SR


@dataclass
class CodecFidelityConfig:
    """Args:
    data: a `musicsae data make` folder (ideally with --holdout-font).
    model: a MusicGen folder (audiocraft or transformers) or a `train_codec` run folder.
    concepts: manifest concepts to judge; max_clips: per set (0 = all).
    """

    data: str
    model: str
    concepts: tuple[str, ...] = CONCEPTS_JUDGED
    judge_sr: int = JUDGE_SR
    max_clips: int = 0


def reconstructor(model: str) -> tuple[str, int, Callable[[np.ndarray], np.ndarray]]:
    """(name, sample rate, audio → encode → decode → audio) for a MusicGen folder or a codec run folder."""
    from training.musicgen import runs

    path = Path(model)
    if (path / runs.RUN_FILE).is_file():
        from training.musicgen.train_codec import load_trained_codec

        codec, sizes, progress = load_trained_codec(path)
        name, sr = f"{path.name} (codec run, step {progress['step']})", sizes.sample_rate

        def decode(codes: torch.Tensor) -> torch.Tensor:
            return codec.decode(codes)

        encode = codec.encode
    else:
        from realtime.musicgen import load_musicgen

        mg = load_musicgen(model)
        name, sr = mg.name, mg.sample_rate
        encode = mg.encode  # a stereo model's channels coded as its LM reads them (mono copied to both sides)
        if mg.backend == "audiocraft":
            decode = mg.model.compression_model.decode
        else:
            sides = mg.audio_channels

            def decode(codes: torch.Tensor) -> torch.Tensor:  # the codec is mono: each side's codebooks apart
                parts = [codes[:, c::sides] for c in range(sides)]
                return torch.cat([mg.model.audio_encoder.decode(p[None], [None]).audio_values for p in parts], 1)

    @torch.no_grad()
    def run(audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(audio)[None, None]
        codes = encode(x)
        codes = codes[0] if isinstance(codes, tuple) else codes
        return decode(codes)[0].mean(0)[: len(audio)].numpy()  # the judge hears the sides' mean

    return name, sr, run


def evaluate_codec(cfg: CodecFidelityConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Judge the codec's plain reconstructions against the originals; returns the report (JSON-able)."""
    from training.musicgen.losses import MultiScaleMel

    t0 = time.perf_counter()
    bad = [c for c in cfg.concepts if c not in CONCEPTS]
    if bad:
        raise UserError(f"--concepts {bad[0]}: unknown; expected some of {', '.join(CONCEPTS)}")
    name, sr, recon_fn = reconstructor(cfg.model)
    rows = read_manifest(Path(cfg.data))
    notes = AudioNotes()
    clean, native, kept = {}, {}, []
    for r in rows:
        a = read_mono(Path(cfg.data) / r["file"], sr, notes, min_samples=2048)
        if a is not None:
            native[r["index"]] = a
            clean[r["index"]] = outside.resample(a, sr, cfg.judge_sr)
            kept.append(r)
    rows = kept
    say(f"judge: features of {len(rows)} clean clips at {cfg.judge_sr} Hz")
    X = np.stack([outside.judge_features(clean[r["index"]], cfg.judge_sr) for r in rows])
    sets = outside.fidelity_sets(rows, cfg.max_clips, cfg.data)
    used = sorted({i for v in sets.values() for i in v})
    X_degraded = outside.degraded_features([clean[r["index"]] for r in rows], rows, cfg.judge_sr)
    judged = outside.CrossFittedJudge.fit(X, rows, used, cfg.concepts, cfg.judge_sr, X_degraded)

    original = judged({i: X[i] for i in used})
    say(f"{name}: reconstructing {len(used)} clips")
    spec = MultiScaleMel(sr)
    recon_feats, mel = {}, {}
    for i in used:
        a = native[rows[i]["index"]]
        y = recon_fn(a)
        recon_feats[i] = outside.judge_features(outside.resample(y, sr, cfg.judge_sr), cfg.judge_sr)
        mel[i] = float(spec(torch.from_numpy(y)[None], torch.from_numpy(a)[None]))
    recon = judged(recon_feats)
    labels = {c: {i: bool(CONCEPTS[c](rows[i])) for i in used} for c in cfg.concepts}
    per_set = {}
    for label, idx in sets.items():
        per_set[label] = _set_report(idx, rows, mel, original, recon, labels, cfg.concepts)
    return {
        "model": name,
        "sample_rate": sr,
        "data": str(cfg.data),
        "judge": {
            "features": outside.JUDGE_FEATURES,
            "rate": cfg.judge_sr,
            "cross_fitted_folds": outside.FOLDS,
            "trained_on": f"clean clips of the other folds, every font ({len(rows)} clips in all), "
            f"{outside.DEGRADED_COPIES}",
        },
        "goal_points": GOAL_POINTS,
        "sets": per_set,
        "notes": notes.lines(),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _set_report(idx, rows, mel, original, recon, labels, concepts: Sequence[str]) -> dict[str, Any]:
    return {
        "clips": len(idx),
        "fonts": sorted({rows[i].get("font", "?") for i in idx}),
        "mel_distance": mean_interval(np.array([mel[i] for i in idx])).as_dict(),
        "concepts": outside.fidelity_concepts(idx, original, recon, labels, concepts, GOAL_POINTS),
    }


def markdown(result: dict) -> str:
    def iv(d: dict, fmt: str = "+.0f") -> str:
        return Interval(**d).text(fmt)

    lines = [
        f"Codec fidelity of {result['model']} ({result['sample_rate']} Hz): plain reconstructions vs originals, "
        f"outside judge at {result['judge']['rate']} Hz (cross-fitted over {result['judge']['cross_fitted_folds']} "
        f"folds, {result['judge']['trained_on']}). Goal: detection within ±{result['goal_points']:g} points of the "
        "originals on clips with and without each concept; met only when the whole 95 % interval is within.",
        "",
    ]
    for label, s in result["sets"].items():
        lines += [
            f"### {label}: {s['clips']} clips ({', '.join(s['fonts'])}); mel distance {iv(s['mel_distance'], '.3f')}",
            "",
            *outside.fidelity_table(s["concepts"]),
            "",
        ]
    return "\n".join(lines)
