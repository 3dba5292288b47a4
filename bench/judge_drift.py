"""Benchmark: how much of an edit's "drift" is the outside judge's own, per feature set of the judge.

The judge (`training/judge.py`) is trained on clean clips of the train split (the fonts it knows) and then hears
the clips of a font it never heard (`data make --holdout-font`). For each feature set this prints, on that font:
the judge's balanced accuracy per concept on the clean clips, and what it hears of the ideal edits (each clip
re-rendered from its MIDI with a concept's part removed or added, `concept_clips.oracle_clip`): the drop / rise of
the edited concept and the most-moved other call (the drift no model edit can avoid on this judge), points with
paired 95 % intervals. Figures are printed, nothing is asserted; choose a feature set on one held-out font and
report it on another.

    .venv/bin/musicsae data make --out jq/val --n 450 --seed 3000 --holdout-font csound --sr 22050 --concepts none
    .venv/bin/python bench/judge_drift.py --data jq/val
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from realtime.audio_files import AudioNotes, read_mono
from sae.stats import Interval, paired_diff
from training.data.concept_clips import CONCEPTS, HOLDOUT_SPLIT, data_config, oracle_clip, read_manifest
from training.judge import FEATURES, FIDELITY_CONCEPTS, Judge


def oracle_audio(data: Path, rows: list[dict], concepts: list[str], sr: int) -> dict[str, dict[int, np.ndarray]]:
    """concept -> manifest index -> the clip re-rendered with the concept switched (cached in DATA/oracle_<c>_<sr>.npz,
    a file of this benchmark's own)."""
    from realtime.audio_files import resample

    cfg, fonts, held = data_config(data)
    out = {}
    for c in concepts:
        cache = data / f"oracle_{c}_{sr}.npz"
        if cache.exists():
            z = np.load(cache)
            out[c] = {int(k): z[k] for k in z.files}
            continue
        audio = {}
        for r in rows:
            a = oracle_clip(r, cfg, fonts, c, held)
            if a is not None:
                audio[r["index"]] = resample(a, cfg.sample_rate, sr).astype(np.float32)
        np.savez(cache, **{str(k): v for k, v in audio.items()})
        out[c] = audio
    return out


def fmt(iv: Interval) -> str:
    return f"{iv.value:+.0f} [{iv.lo:+.0f}, {iv.hi:+.0f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a `data make --holdout-font` folder")
    ap.add_argument("--features", default=",".join(FEATURES), help="feature sets to compare")
    ap.add_argument("--oracle", default="guitar,drums,piano,bass", help="concepts whose ideal edits are judged")
    ap.add_argument("--sr", type=int, default=22050)
    args = ap.parse_args()
    rows = read_manifest(args.data)
    train = [r for r in rows if r["split"] == "train"]
    held = [r for r in rows if r["split"] == HOLDOUT_SPLIT]
    concepts = list(FIDELITY_CONCEPTS)
    oracle = args.oracle.split(",")
    clip = {r["index"]: read_mono(args.data / r["file"], args.sr, AudioNotes()) for r in train + held}
    t0 = time.perf_counter()
    ideal = oracle_audio(args.data, held, oracle, args.sr)
    print(f"{len(train)} train clips, {len(held)} held-out-font clips; ideal edits {time.perf_counter() - t0:.0f} s")
    for name in args.features.split(","):
        t0 = time.perf_counter()
        feats = FEATURES[name]
        judge = Judge.fit([clip[r["index"]] for r in train], train, concepts, args.sr, features=name)
        X = np.stack([feats(clip[r["index"]], args.sr) for r in held])  # the held-out font's clean clips
        heard = judge.detect_features(X)
        print(f"\n## {name} ({X.shape[1]} features, {time.perf_counter() - t0:.0f} s)")
        accs = []
        for c in concepts:
            y = np.array([CONCEPTS[c](r) for r in held], bool)
            tpr, tnr = heard[c][y].mean(), (~heard[c][~y]).mean()
            accs.append(f"{c} {50 * (tpr + tnr):.0f} (hit {100 * tpr:.0f}, false {100 * (1 - tnr):.0f})")
        print("balanced accuracy:", "; ".join(accs))
        worst_all = []
        for c in oracle:
            ids = [i for i, r in enumerate(held) if r["index"] in ideal[c]]
            after = judge.detect_features(np.stack([feats(ideal[c][held[i]["index"]], args.sr) for i in ids]))
            before = {k: v[ids] for k, v in heard.items()}
            had = np.array([CONCEPTS[c](held[i]) for i in ids], bool)
            for edit, m in (("off", had), ("on", ~had)):
                ch = paired_diff(before[c][m], after[c][m])
                if edit == "off":
                    ch = Interval(-ch.value, -ch.hi, -ch.lo, ch.n)
                drift = {o: paired_diff(before[o][m], after[o][m]) for o in concepts if o != c}
                o = max(drift, key=lambda k: abs(drift[k].value))
                worst_all.append(abs(drift[o].value))
                print(
                    f"  {c} {edit} (n={int(m.sum())}): {'drop' if edit == 'off' else 'rise'} {fmt(ch)}; "
                    f"worst drift {o} {fmt(drift[o])}"
                )
        print(f"  mean of worst drifts {np.mean(worst_all):.1f}, max {np.max(worst_all):.0f}")


if __name__ == "__main__":
    main()
