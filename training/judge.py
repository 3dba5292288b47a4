"""An outside judge of steering: audio-only concept detectors, applied to RAVE renders with and without edits.

The judge never sees SAE features or RAVE latents. Per concept it is a logistic regression on log-mel
statistics (mean and standard deviation of each of 64 log-mel bands over the clip), trained on the *clean*
train-split clips of a `musicsae data make` folder (labels from its manifest). The held-out test-split clips
are then rendered through the RAVE model:

- no edit: every held-out clip (the model's own reconstruction);
- `off` of concept c: the held-out clips *with* c — the target's detection should drop;
- `on:s` of concept c, for each strength s of the sweep: the held-out clips *without* c — the target's
  detection should rise;

and every *other* concept's detection on the same clips is compared with no edit (drift, in points).
Detection rate = share of clips the judge calls positive (probability > 0.5), in percent. The reported
`on` is the strength with the largest rise whose drift stays within the goal (else the largest rise).

Baseline, side by side: the same edits along the raw-latent difference of means of the concept (mean
latent of the train clips with it minus without it, `d`): `off` renders z − d, `on:s` renders z + s·d.
It needs no SAE, so when it beats the SAE edit the SAE is what falls short; when neither moves the judge,
the model itself does not render the concept distinctly (compare the no-edit rates with and without it).
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
import torch

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
    strengths: strengths of `on` to sweep.
    max_clips: at most this many held-out clips per side and concept (0 = all).
    baseline: also steer along the raw-latent difference of means (no SAE).
    """

    data: str
    model: str
    bank: str
    out: str
    concepts: tuple[str, ...] = ()
    strengths: tuple[float, ...] = (1.0,)
    max_clips: int = 0
    block: int | None = None
    seed: int = 0
    baseline: bool = True


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
    strengths = tuple(cfg.strengths) or (1.0,)
    if any(not np.isfinite(v) or v <= 0 for v in strengths):
        raise UserError(f"strengths {','.join(f'{v:g}' for v in strengths)}: expected positive numbers")

    def render(idx: list[int], sets: list[tuple[str, str]], shift: torch.Tensor | None = None) -> list[np.ndarray]:
        edit = steering.edit_for(sets) if sets else None
        return [render_array(stream, test_clips[i], sae, edit, cfg.block, delay, cfg.seed + i, shift=shift)
                for i in idx]

    all_idx = list(range(len(test_clips)))
    sides = {}
    for name in names:
        pos = [i for i in all_idx if labels[name][i]]
        neg = [i for i in all_idx if not labels[name][i]]
        if not pos or not neg:
            raise UserError(f"concept {name!r}: the held-out clips need both sides (have {len(pos)} with, "
                            f"{len(neg)} without); generate more clips")
        sides[name] = (pos[: cfg.max_clips], neg[: cfg.max_clips]) if cfg.max_clips else (pos, neg)
    directions = {}
    if cfg.baseline:
        say("baseline: latent difference of means on the train clips")
        means = torch.stack([latent_mean(stream, a) for a in train_clips])
        for name in names:
            has = torch.tensor([bool(CONCEPTS[name](r)) for r in train_rows])
            directions[name] = means[has].mean(0) - means[~has].mean(0)
    used = sorted({i for pos, neg in sides.values() for i in pos + neg})
    say(f"rendering {len(used)} held-out clips without edit")
    plain = judge.detect(render(used, []))
    base = {n: np.zeros(len(test_clips), bool) for n in names}
    for n in names:
        base[n][used] = plain[n]

    def sae_edit(name: str) -> Callable[[list[int], float | None], list[np.ndarray]]:
        return lambda idx, strength: render(idx, [(name, "off" if strength is None else f"on:{strength}")])

    def shift_edit(d: torch.Tensor) -> Callable[[list[int], float | None], list[np.ndarray]]:
        return lambda idx, strength: render(idx, [], -d if strength is None else strength * d)

    def arm(name: str, edited: Callable[[list[int], float | None], list[np.ndarray]]) -> dict[str, Any]:
        """Detection after `off` (strength None) and after each `on` strength, with every other concept's drift."""
        pos, neg = sides[name]
        off = judge.detect(edited(pos, None))
        drift_off = {o: _rate(off[o]) - _rate(base[o][pos]) for o in names if o != name}
        sweep = []
        for strength in strengths:
            on = judge.detect(edited(neg, strength))
            drift_on = {o: _rate(on[o]) - _rate(base[o][neg]) for o in names if o != name}
            sweep.append({"strength": strength, "without": _rate(on[name]),
                          "rise": _rate(on[name]) - _rate(base[name][neg]), "drift": drift_on,
                          "max_drift": max(map(abs, drift_on.values()), default=0.0)})
        within = [e for e in sweep if e["max_drift"] <= GOALS["drift"]] or sweep
        best = max(within, key=lambda e: e["rise"])
        worst = max([best["max_drift"], *map(abs, drift_off.values())])
        entry = {
            "held_out_with": len(pos), "held_out_without": len(neg),
            "clean": {"with": _rate(clean[name][pos]), "without": _rate(clean[name][neg])},
            "none": {"with": _rate(base[name][pos]), "without": _rate(base[name][neg])},
            "off": {"with": _rate(off[name])}, "on": {"without": best["without"]},
            "strength_on": best["strength"], "sweep": sweep,
        }
        entry["off_drop"] = entry["none"]["with"] - entry["off"]["with"]
        entry["on_rise"] = best["rise"]
        entry["drift"] = {"off": drift_off, "on": best["drift"]}
        entry["max_drift"] = worst
        entry["goals_met"] = {"off_drop": entry["off_drop"] >= GOALS["off_drop"],
                              "on_rise": entry["on_rise"] >= GOALS["on_rise"], "drift": worst <= GOALS["drift"]}
        return entry

    results: dict[str, Any] = {}
    for name in names:
        pos, neg = sides[name]
        say(f"{name}: off on {len(pos)} clips with it, on:{','.join(f'{v:g}' for v in strengths)} on {len(neg)} "
            "clips without it")
        entry = arm(name, sae_edit(name))
        if cfg.baseline:
            say(f"{name}: the same edits along the latent difference of means")
            d = directions[name]
            entry["baseline"] = {"method": "raw-latent difference of means", "norm": float(d.norm())} | {
                k: v for k, v in arm(name, shift_edit(d)).items()
                if k not in ("held_out_with", "held_out_without", "clean", "none")}
        results[name] = entry
    out = {
        "model": {"name": model.path.name, "sha256": model.identity.sha256},
        "bank": str(cfg.bank), "sae": str(steering.sae_dir), "data": str(cfg.data),
        "judge": {"features": f"log-mel mean+std, {N_MELS} bands", "classifier": "logistic regression",
                  "trained_on": f"{len(train_clips)} clean train clips",
                  "clean_heldout_accuracy": judge.clean_accuracy},
        "strengths": list(strengths), "held_out_clips": len(used), "goals": GOALS,
        "concepts": results, "notes": notes.lines(), "seconds": round(time.perf_counter() - t0, 1),
    }
    save_report(out, Path(cfg.out))
    return out


@torch.no_grad()
def latent_mean(stream: Any, audio: np.ndarray) -> torch.Tensor:
    """[latent]: a clip's deterministic latents (posterior mean, from silent caches) averaged over frames."""
    stream.reset()
    n = len(audio) - len(audio) % stream.ratio
    x = torch.from_numpy(np.ascontiguousarray(audio[:n], dtype=np.float32)).reshape(1, 1, -1)
    if stream.channels > 1:
        x = x.expand(1, stream.channels, -1)
    return stream.encode_mean(x)[0].mean(-1).cpu()


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
    swept = [n for n in names if result["concepts"][n].get("sweep")]
    width_in = max(6, 2.2 * len(names) + 2)
    if swept:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(width_in + 5, 4), gridspec_kw={"width_ratios": [width_in, 5]})
        for i, n in enumerate(swept):
            e = result["concepts"][n]
            for arm, style, label in ((e, "-", "SAE"), (e.get("baseline"), "--", "mean-diff")):
                if arm and arm.get("sweep"):
                    xs = [x["strength"] for x in arm["sweep"]]
                    ax2.plot(xs, [x["rise"] for x in arm["sweep"]], style, marker="o", color=f"C{i}",
                             label=f"{n} rise ({label})")
                    ax2.plot(xs, [x["max_drift"] for x in arm["sweep"]], style, color=f"C{i}", alpha=0.35,
                             label=f"{n} drift ({label})")
        ax2.axhline(GOALS["on_rise"], color="grey", lw=0.8)
        ax2.axhline(GOALS["drift"], color="grey", lw=0.8, ls=":")
        ax2.set_xscale("log", base=2)
        ticks = sorted({x["strength"] for n in swept for x in result["concepts"][n]["sweep"]})
        ax2.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax2.minorticks_off()
        ax2.set_xlabel("strength of on")
        ax2.set_ylabel("points")
        ax2.set_title("on: rise and off-target drift by strength")
        ax2.legend(fontsize=6, loc="upper left")
    else:
        fig, ax = plt.subplots(figsize=(width_in, 4))
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
                    f"on strengths {', '.join(f'{v:g}' for v in result.get('strengths', [1.0]))}")
    for col in ("concept", "edit", "clean acc", "with: none → off", "drop", "without: none → on (s)", "rise",
                "worst drift", "goals"):
        t.add_column(col, justify="left" if col in ("concept", "edit", "goals") else "right")
    for name, e in result["concepts"].items():
        for label, arm in (("SAE", e), ("mean-diff", e.get("baseline"))):
            if arm is None:
                continue
            g = arm["goals_met"]
            goals = " ".join(f"{k}{'✓' if ok else '✗'}" for k, ok in (("off", g["off_drop"]), ("on", g["on_rise"]),
                                                                       ("drift", g["drift"])))
            t.add_row(name if label == "SAE" else "", label,
                      f"{result['judge']['clean_heldout_accuracy'][name]:.0f}%" if label == "SAE" else "",
                      f"{e['none']['with']:.0f}% → {arm['off']['with']:.0f}%", f"{arm['off_drop']:+.0f}",
                      f"{e['none']['without']:.0f}% → {arm['on']['without']:.0f}% "
                      f"({arm.get('strength_on', result.get('strength_on', 1.0)):g})",
                      f"{arm['on_rise']:+.0f}", f"{arm['max_drift']:.0f}", goals)
    return t
