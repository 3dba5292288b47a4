"""An outside judge of steering: audio-only concept detectors, applied to RAVE renders with and without edits.

The judge never sees SAE features or RAVE latents. Per concept it is a logistic regression on log-mel
statistics (mean and standard deviation of each of 64 log-mel bands over the clip), trained on the *clean*
train-split clips of a `musicsae data make` folder (labels from its manifest). The held-out test-split clips
are then rendered through the RAVE model:

- no edit: every held-out clip (the model's own reconstruction);
- `off` of concept c: the held-out clips *with* c — the target's detection should drop;
- `on` of concept c: the held-out clips *without* c — the target's detection should rise;

and every *other* concept's detection on the same clips is compared with no edit (drift, in points).
Detection rate = share of clips the judge calls positive (probability > 0.5), in percent.
Goals (issue 4): off drops ≥ 50 points, on raises ≥ 50 points, off-target drift ≤ 10 points.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sae.errors import UserError
from training.audio_files import AudioNotes, read_mono
from training.concept_data import CONCEPTS, read_manifest

N_MELS = 64
GOALS = {"off_drop": 50.0, "on_rise": 50.0, "drift": 10.0}


def logmel_stats(audio: np.ndarray, sr: int) -> np.ndarray:
    """[2 * N_MELS]: mean and std over frames of log-mel energies (n_fft 2048, hop 512)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio.astype(np.float32), sr=sr, n_fft=2048, hop_length=512,
                                         n_mels=N_MELS, fmax=sr / 2)
    logmel = np.log(mel + 1e-6)
    return np.concatenate([logmel.mean(axis=1), logmel.std(axis=1)])


@dataclass
class Judge:
    """One logistic detector per concept on log-mel statistics."""

    detectors: dict[str, Any]
    sr: int
    clean_accuracy: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, clips: list[np.ndarray], rows: list[dict], concepts: Sequence[str], sr: int) -> Judge:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X = np.stack([logmel_stats(a, sr) for a in clips])
        dets = {}
        for name in concepts:
            y = np.array([int(CONCEPTS[name](r)) for r in rows])
            if y.min() == y.max():
                raise UserError(f"judge for {name!r}: the train clips are all {'with' if y[0] else 'without'} it")
            dets[name] = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=5000)).fit(X, y)
        return cls(dets, sr)

    def detect(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        """concept -> [clips] bool: the judge calls the concept present."""
        X = np.stack([logmel_stats(a, self.sr) for a in clips])
        return {n: d.predict_proba(X)[:, 1] > 0.5 for n, d in self.detectors.items()}


def _rate(hits: np.ndarray) -> float:
    return float(100.0 * hits.mean()) if len(hits) else float("nan")


@dataclass
class EvalConfig:
    """Args:
    data: a `musicsae data make` folder (manifest with labels; train split → judge, test split → renders).
    model: streaming RAVE `.ts`.
    bank: concept bank with the concepts to evaluate (names must be manifest concepts).
    out: output folder (judge.json, judge.png).
    concepts: subset of the bank (default: every bank concept the manifest can label).
    strength: strength of `on`.
    max_clips: at most this many held-out clips per side and concept (0 = all).
    """

    data: str
    model: str
    bank: str
    out: str
    concepts: tuple[str, ...] = ()
    strength: float = 1.0
    max_clips: int = 0
    block: int | None = None
    seed: int = 0


def evaluate_steering(cfg: EvalConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the judge; returns (and writes to OUT/judge.json) the results; PNG beside it."""
    from realtime.rave import RaveModel
    from realtime.render_rave import RaveStream, load_steering, model_delay, render_array

    t0 = time.perf_counter()
    say = progress or (lambda s: None)
    rows = read_manifest(Path(cfg.data))
    model = RaveModel.load(cfg.model)
    from sae.bank import ConceptBank

    bank = ConceptBank.load(cfg.bank)
    names = list(cfg.concepts) or [c.name for c in bank if c.name in CONCEPTS and c.model.sha256 ==
                                   model.identity.sha256]
    unknown = [n for n in names if n not in CONCEPTS]
    if unknown:
        raise UserError(f"concept {unknown[0]!r}: the data manifest has no label for it "
                        f"(labelled: {', '.join(CONCEPTS)})")
    if not names:
        raise UserError(f"concept bank {cfg.bank}: no concept on {model.path.name} that the manifest labels")
    steering = load_steering(cfg.bank, model, names=names)
    notes = AudioNotes()

    def load(split: str) -> tuple[list[np.ndarray], list[dict]]:
        clips, kept = [], []
        for r in rows:
            if r["split"] == split:
                a = read_mono(Path(cfg.data) / r["file"], model.sr, notes, min_samples=model.ratio)
                if a is not None:
                    clips.append(a)
                    kept.append(r)
        return clips, kept

    say("judge: training on clean train clips")
    train_clips, train_rows = load("train")
    judge = Judge.fit(train_clips, train_rows, names, model.sr)
    test_clips, test_rows = load("test")
    if not test_clips:
        raise UserError(f"data {cfg.data}: no held-out (test split) clips")
    clean = judge.detect(test_clips)
    labels = {n: np.array([bool(CONCEPTS[n](r)) for r in test_rows]) for n in names}
    judge.clean_accuracy = {n: float(100.0 * (clean[n] == labels[n]).mean()) for n in names}

    stream = RaveStream(model)
    delay = model_delay(model)
    sae = steering.sae

    def render(idx: list[int], sets: list[tuple[str, str]]) -> list[np.ndarray]:
        edit = steering.edit_for(sets) if sets else None
        return [render_array(stream, test_clips[i], sae, edit, cfg.block, delay, cfg.seed + i) for i in idx]

    all_idx = list(range(len(test_clips)))
    sides = {}
    for name in names:
        pos = [i for i in all_idx if labels[name][i]]
        neg = [i for i in all_idx if not labels[name][i]]
        sides[name] = (pos[: cfg.max_clips], neg[: cfg.max_clips]) if cfg.max_clips else (pos, neg)
    used = sorted({i for pos, neg in sides.values() for i in pos + neg})
    say(f"rendering {len(used)} held-out clips without edit")
    plain = judge.detect(render(used, []))
    base = {n: np.zeros(len(test_clips), bool) for n in names}
    for n in names:
        base[n][used] = plain[n]
    results: dict[str, Any] = {}
    for name in names:
        pos, neg = sides[name]
        if not pos or not neg:
            raise UserError(f"concept {name!r}: the held-out clips need both sides (have {len(pos)} with, "
                            f"{len(neg)} without); generate more clips")
        say(f"{name}: off on {len(pos)} clips with it, on:{cfg.strength:g} on {len(neg)} clips without it")
        off = judge.detect(render(pos, [(name, "off")]))
        on = judge.detect(render(neg, [(name, f"on:{cfg.strength}")]))
        entry = {
            "held_out_with": len(pos), "held_out_without": len(neg),
            "clean": {"with": _rate(clean[name][pos]), "without": _rate(clean[name][neg])},
            "none": {"with": _rate(base[name][pos]), "without": _rate(base[name][neg])},
            "off": {"with": _rate(off[name])},
            "on": {"without": _rate(on[name])},
        }
        entry["off_drop"] = entry["none"]["with"] - entry["off"]["with"]
        entry["on_rise"] = entry["on"]["without"] - entry["none"]["without"]
        drift_off = {o: _rate(off[o]) - _rate(base[o][pos]) for o in names if o != name}
        drift_on = {o: _rate(on[o]) - _rate(base[o][neg]) for o in names if o != name}
        entry["drift"] = {"off": drift_off, "on": drift_on}
        worst = max([abs(v) for v in (*drift_off.values(), *drift_on.values())], default=0.0)
        entry["max_drift"] = worst
        entry["goals_met"] = {
            "off_drop": entry["off_drop"] >= GOALS["off_drop"],
            "on_rise": entry["on_rise"] >= GOALS["on_rise"],
            "drift": worst <= GOALS["drift"],
        }
        results[name] = entry
    out = {
        "model": {"name": model.path.name, "sha256": model.identity.sha256},
        "bank": str(cfg.bank), "sae": str(steering.sae_dir), "data": str(cfg.data),
        "judge": {"features": f"log-mel mean+std, {N_MELS} bands", "classifier": "logistic regression",
                  "trained_on": f"{len(train_clips)} clean train clips",
                  "clean_heldout_accuracy": judge.clean_accuracy},
        "strength_on": cfg.strength, "held_out_clips": len(used), "goals": GOALS,
        "concepts": results, "notes": notes.lines(), "seconds": round(time.perf_counter() - t0, 1),
    }
    save_report(out, Path(cfg.out))
    return out


def save_report(result: dict, out_dir: Path) -> None:
    """`judge.json` (written atomically) and `judge.png` of a judge result in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "judge.json", result)
    plot_judge(result, out_dir / "judge.png")


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def plot_judge(result: dict, path: Path) -> None:
    """Grouped bars per concept: detection with/without edits, and the worst drift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["concepts"])
    bars = [("clips with it, no edit", lambda e: e["none"]["with"]), ("with it, off", lambda e: e["off"]["with"]),
            ("clips without it, no edit", lambda e: e["none"]["without"]),
            ("without it, on", lambda e: e["on"]["without"]), ("worst off-target drift", lambda e: e["max_drift"])]
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(names) + 2), 4))
    width = 0.8 / len(bars)
    for j, (label, get) in enumerate(bars):
        xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [get(result["concepts"][n]) for n in names], width, label=label)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("detection by the outside judge (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"steering on {result['model']['name']}: outside judge on {result['held_out_clips']} held-out clips")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def rich_table(result: dict):
    from rich.table import Table

    t = Table(title=f"outside judge: {result['model']['name']}, {result['held_out_clips']} held-out clips, "
                    f"on strength {result['strength_on']:g}")
    for col in ("concept", "clean acc", "with: none → off", "drop", "without: none → on", "rise", "worst drift",
                "goals"):
        t.add_column(col, justify="left" if col in ("concept", "goals") else "right")
    for name, e in result["concepts"].items():
        g = e["goals_met"]
        goals = " ".join(f"{k}{'✓' if ok else '✗'}" for k, ok in (("off", g["off_drop"]), ("on", g["on_rise"]),
                                                                   ("drift", g["drift"])))
        t.add_row(name, f"{result['judge']['clean_heldout_accuracy'][name]:.0f}%",
                  f"{e['none']['with']:.0f}% → {e['off']['with']:.0f}%", f"{e['off_drop']:+.0f}",
                  f"{e['none']['without']:.0f}% → {e['on']['without']:.0f}%", f"{e['on_rise']:+.0f}",
                  f"{e['max_drift']:.0f}", goals)
    return t
