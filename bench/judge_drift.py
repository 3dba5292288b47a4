"""Benchmark: how much of an edit's "drift" is the outside judge's own, per judge (feature set and training).

The judge (`training/judge.py`) is trained on clean clips of the train split (the fonts it knows; `NAME+aug`: and a
degraded copy of each, as every report's judge is) and then hears the clips of a font it never heard
(`data make --holdout-font`). For each judge this prints, on that font: its balanced accuracy per concept on the
clean clips, and what it hears of the ideal edits (each clip re-rendered from its MIDI with a concept's part removed
or added, `concept_clips.oracle_clip`): the drop / rise of the edited concept and the most-moved other call (the
drift no model edit can avoid on this judge), points with paired 95 % intervals; and its balanced accuracy on the
same clips degraded as a model's output is (white noise at 20 dB SNR, a 4 kHz lowpass, 12 dB quieter; the degraded
copies a judge trains on are drawn from other settings). Then a summary per judge with its ratio to the former
judge (`logmel`), measured in the same run. Figures are printed, nothing is asserted; choose a judge on one
held-out font and report it on another. DATA is made first when it has no manifest (`--n`, `--seed`,
`--holdout-font`).

    .venv/bin/python bench/judge_drift.py --data jq/val    # validation: OPL3 held out, trained on TimGM6mb + csound
    .venv/bin/python bench/judge_drift.py --data jq/test --n 450 --seed 4000 --soundfonts timgm6mb,fluidr3,csound \
        --holdout-font fluidr3                               # test
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from realtime.audio_files import AudioNotes, read_mono, resample
from sae.atomic import atomic_write
from sae.errors import UserError
from sae.stats import Interval, paired_diff
from training.cli.args import Parser, comma_names, positive_int, seed_int
from training.data.concept_clips import (
    CONCEPTS,
    HOLDOUT_SPLIT,
    DataConfig,
    data_config,
    make_dataset,
    oracle_clip,
    read_manifest,
)
from training.judge import FEATURES, FIDELITY_CONCEPTS, JUDGE_SR, Judge, add_noise, lowpass

PROG = "bench/judge_drift.py"
BASELINE = "logmel"


# what a model's output does to a clip, roughly: noise, lost highs, a level error (clean clips are never this)
DEGRADATIONS = {
    "noise 20 dB": lambda a, seed: add_noise(a, 20.0, seed),
    "lowpass 4 kHz": lambda a, seed: lowpass(a, 4000.0, JUDGE_SR),
    "gain -12 dB": lambda a, seed: a * 0.25,
}
JUDGES = ("logmel", "hpss", "hpss+aug")  # NAME: trained on clean clips; NAME+aug: and a degraded copy of each
KNOWN_JUDGES = tuple(f"{f}{aug}" for f in FEATURES for aug in ("", "+aug"))


def known_names(known: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    """Comma-separated names, each one of `known` (`--features foo` was a KeyError traceback after the data set and
    its ideal edits were made)."""

    def parse(text: str) -> tuple[str, ...]:
        names = comma_names(text)
        bad = next((n for n in names if n not in known), None)
        if bad is not None or not names:
            raise argparse.ArgumentTypeError(f"{bad or text!r}: not {what}; expected some of {', '.join(known)}")
        return names

    return parse


def oracle_audio(data: Path, rows: list[dict], concepts: list[str]) -> dict[str, dict[int, np.ndarray]]:
    """concept -> manifest index -> the clip re-rendered with the concept switched, at `JUDGE_SR` (cached in
    DATA/oracle_<c>_<sr>_v2_<manifest>.npz, a file of this benchmark's own; v2: a solo switched off is silence,
    kept; <manifest>: the start of the sha256 of the manifest and data.json, so that data made again in the folder
    is not read as the old data's edits, as it was by row number)."""
    cfg, fonts, held = data_config(data)
    # data.json too: data made again with --voicing in_key (or a font swapped under its name) keeps the manifest
    manifest = hashlib.sha256((data / "manifest.csv").read_bytes() + (data / "data.json").read_bytes()).hexdigest()[:12]
    out = {}
    for c in concepts:
        cache = data / f"oracle_{c}_{JUDGE_SR}_v2_{manifest}.npz"
        if cache.exists():
            z = np.load(cache)
            out[c] = {int(k): z[k] for k in z.files}
            continue
        audio = {}
        for r in rows:
            a = oracle_clip(r, cfg, fonts, c, held)
            if a is not None:
                audio[r["index"]] = resample(a, cfg.sample_rate, JUDGE_SR)
        atomic_write(cache, lambda tmp, audio=audio: _save_npz(tmp, {str(k): v for k, v in audio.items()}))
        out[c] = audio
    return out


def _save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file, not a name: np.savez adds ".npz" to a name without it
        np.savez(fh, **arrays)


def fmt(iv: Interval) -> str:
    return f"{iv.value:+.0f} [{iv.lo:+.0f}, {iv.hi:+.0f}]"


def balanced(heard: dict[str, np.ndarray], held: list[dict], concepts: list[str]) -> tuple[float, str]:
    """Mean balanced accuracy (%) over `concepts`, and a line with each one's (hit and false-alarm rates)."""
    accs, text = [], []
    for c in concepts:
        y = np.array([CONCEPTS[c](r) for r in held], bool)
        tpr, tnr = heard[c][y].mean(), (~heard[c][~y]).mean()
        accs.append(50 * (tpr + tnr))
        text.append(f"{c} {accs[-1]:.0f} (hit {100 * tpr:.0f}, false {100 * (1 - tnr):.0f})")
    return float(np.mean(accs)), "; ".join(text)


def measure(name: str, train, held, clip, ideal, concepts, oracle) -> dict[str, float]:
    """Print one feature set's figures; return its summary (mean balanced accuracy, clean and per degradation;
    mean and max worst drift)."""
    t0 = time.perf_counter()
    base, aug = name.removesuffix("+aug"), name.endswith("+aug")
    feats = FEATURES[base]
    judge = Judge.fit([clip[r["index"]] for r in train], train, concepts, JUDGE_SR, features=base, degraded=aug)
    heard = judge.detect_features(np.stack([feats(clip[r["index"]], JUDGE_SR) for r in held]))
    summary, text = balanced(heard, held, concepts)
    print(f"\n## {name}\nbalanced accuracy: {text}")
    out = {"accuracy": summary}
    for what, degrade in DEGRADATIONS.items():
        X = np.stack([feats(degrade(clip[r["index"]], r["index"]), JUDGE_SR) for r in held])
        out[what], text = balanced(judge.detect_features(X), held, concepts)
        print(f"  {what}: {text}")
    worst = []
    for c in oracle:
        ids = [i for i, r in enumerate(held) if r["index"] in ideal[c]]
        after = judge.detect_features(np.stack([feats(ideal[c][held[i]["index"]], JUDGE_SR) for i in ids]))
        before = {k: v[ids] for k, v in heard.items()}
        had = np.array([CONCEPTS[c](held[i]) for i in ids], bool)
        for edit, m in (("off", had), ("on", ~had)):
            ch = paired_diff(before[c][m], after[c][m])
            if edit == "off":
                ch = Interval(-ch.value, -ch.hi, -ch.lo, ch.n)
            drift = {o: paired_diff(before[o][m], after[o][m]) for o in concepts if o != c}
            o = max(drift, key=lambda k: abs(drift[k].value))
            worst.append(abs(drift[o].value))
            what = "drop" if edit == "off" else "rise"
            print(f"  {c} {edit} (n={int(m.sum())}): {what} {fmt(ch)}; worst drift {o} {fmt(drift[o])}")
    out |= {"drift": float(np.mean(worst)), "max": float(np.max(worst))}
    print(f"  {time.perf_counter() - t0:.0f} s")
    return out


def main() -> None:
    ap = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a `data make --holdout-font` folder (made if absent)")
    ap.add_argument("--n", type=positive_int, default=450, help="clips, when DATA is made (default 450)")
    ap.add_argument("--seed", type=seed_int, default=3000, help="data seed, when DATA is made (default 3000)")
    ap.add_argument("--holdout-font", default="opl3", help="the font held out, when DATA is made (default opl3)")
    ap.add_argument(
        "--soundfonts",
        default="timgm6mb,csound,opl3",
        help="fonts, when DATA is made (default timgm6mb,csound,opl3: the held-out font shares no samples with the "
        "others, and FluidR3, the reports' test font, is left out)",
    )
    ap.add_argument(
        "--features",
        type=known_names(KNOWN_JUDGES, "a judge"),
        default=JUDGES,
        help=f"judges to compare (default {','.join(JUDGES)}): a feature set, trained on clean clips; NAME+aug: "
        f"also on a degraded copy of each (`training.judge.degraded_copy`, the judge every report uses); {BASELINE}, "
        "the baseline of the ratios, is always measured",
    )
    ap.add_argument(
        "--oracle",
        type=known_names(FIDELITY_CONCEPTS, "a judged concept"),
        default=("guitar", "drums", "piano", "bass"),
        help="concepts whose ideal edits are judged (default guitar,drums,piano,bass)",
    )
    args = ap.parse_args()
    if not (args.data / "manifest.csv").exists():
        cfg = DataConfig(
            n=args.n,
            seed=args.seed,
            sample_rate=JUDGE_SR,
            soundfonts=tuple(args.soundfonts.split(",")),
            holdout_font=args.holdout_font,
        )
        make_dataset(args.data, cfg, concepts=None)
    rows = read_manifest(args.data)
    train = [r for r in rows if r["split"] == "train"]
    held = [r for r in rows if r["split"] == HOLDOUT_SPLIT]
    if not held:  # a traceback, and an empty cache of ideal edits left in DATA (hunt 167)
        raise UserError(f"--data {args.data}: no clips of a held-out font; expected a folder made with --holdout-font")
    notes = AudioNotes()
    clip = {r["index"]: read_mono(args.data / r["file"], JUDGE_SR, notes) for r in train + held}
    t0 = time.perf_counter()
    oracle = list(args.oracle)
    ideal = oracle_audio(args.data, held, oracle)
    print(f"{len(train)} train clips, {len(held)} held-out-font clips; ideal edits {time.perf_counter() - t0:.0f} s")
    names = args.features if BASELINE in args.features else (BASELINE, *args.features)  # the ratios' baseline
    summary = {n: measure(n, train, held, clip, ideal, list(FIDELITY_CONCEPTS), oracle) for n in names}
    base = summary[BASELINE]
    print(f"\nsummary ({len(oracle) * 2} ideal edits; ratio = this / {BASELINE}, measured in this run)")
    for n, s in summary.items():
        ratio = f"; worst drift ratio {s['drift'] / max(base['drift'], 1e-9):.2f}"
        degraded = ", ".join(f"{w} {s[w]:.1f}" for w in DEGRADATIONS)
        print(f"{n}: mean balanced accuracy {s['accuracy']:.1f} ({degraded}); worst drift mean {s['drift']:.1f}, "
              f"max {s['max']:.0f}{ratio}")  # fmt: skip


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
