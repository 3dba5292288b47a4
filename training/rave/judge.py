"""An outside judge of steering: audio-only concept detectors, applied to RAVE renders with and without edits.

The judge never sees SAE features or RAVE latents. Per concept it is a logistic regression on log-mel
statistics of the clip's harmonic and percussive parts (`training.judge.judge_features`), trained on the *clean*
train-split clips of a `musicsae data make` folder and a degraded copy of each (`training.judge.degraded_copy`;
labels from its manifest). The held-out test-split clips
are then rendered through the RAVE model:

- no edit: every held-out clip (the model's own reconstruction);
- `off` of concept c: the held-out clips *with* c — the target's detection should drop;
- `on:s` of concept c, for each strength s of the sweep: the held-out clips *without* c — the target's
  detection should rise;

and every *other* concept's detection on the same clips is compared with no edit (drift, in points).
Detection rate = share of clips the judge calls positive (probability > 0.5), in percent. The strength of
`on` is chosen on a validation half of the clips without the concept (every other one): the largest rise
whose drift stays within the goal (else the largest rise); `on` is then reported on the other half (test
clips), never on the clips it was chosen on (with a single strength there is nothing to choose: all clips).
A goal counts as met only with a margin of one clip and where the drop's / rise's paired 95 % interval
(Newcombe's, `sae.stats.paired_diff`) reaches it, and the drift's only where every other concept's drift interval
stays within it (`drift_reach`; `training.judge.goals_met`); every figure carries its clip count. `split`
chooses the held-out set: the test split (fonts the model was trained on) or `holdout_font` (a font it never
heard).

The judge hears mono: every clip is read as its mono mix, which a stereo model hears on both sides and whose two
rendered sides are averaged before the detectors (`render_array`); its calls are on that mix. The listening
examples beside its report (`training.rave.listen`) keep a stereo clip's two channels for a stereo model.

The SAE edits act on the hook of the bank's concepts (the latent, or an encoder / decoder layer: the model
runs in two parts around it). With `clamp_strengths`, `clamp:s` (raise the concept's features to s × their
typical activation where they are below) is swept on the same clips beside `on`. `on`, `clamp` and the
baseline's shift are gated by the input's level (`sae.steering.Gate`) unless `gate` is off.

Baseline, side by side: the same edits along the raw-latent difference of means of the concept (mean
latent of the train clips with it minus without it, `d`): `off` renders z − d, `on:s` renders z + s·d. Where the
bank's concept has a detector of playing alone (`concept find --alone`) and its hook is the latent, the baseline's
`off` gets the same silence as the SAE's (the detector is not part of the steering edit being compared); the
report's `baseline.alone` says which.
It needs no SAE, so when it beats the SAE edit the SAE is what falls short; when neither moves the judge,
the model itself does not render the concept distinctly (compare the no-edit rates with and without it).
Goals (issue 4): off drops ≥ 50 points, on raises ≥ 50 points, off-target drift ≤ 10 points.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.audio_files import AudioNotes, read_mono
from sae.errors import UserError
from sae.io import sae_weights_sha256
from sae.stats import paired_diff
from training.data.concept_clips import CONCEPTS, HOLDOUT_SPLIT, read_manifest
from training.judge import (
    DEGRADED_COPIES,
    GOALS,
    JUDGE_FEATURES,
    Judge,
    baseline_vs_sae,
    concepts_to_judge,
    drift_reach,
    goals_met,
    hit_rate,
    moved_clips,
    refuse_no_clips,
    save_report,
    watched,
)


@dataclass
class EvalConfig:
    """Args:
    data: a `musicsae data make` folder (manifest with labels; train split → judge, test split → renders).
    model: streaming RAVE `.ts`.
    bank: concept bank with the concepts to evaluate (names must be manifest concepts).
    out: output folder (judge.json, judge.png).
    concepts: subset of the bank (default: every bank concept the manifest can label).
    strengths: strengths of `on` to sweep.
    max_clips: at most this many held-out clips per side and concept to report `off` and the chosen `on` on (0 =
        all); where a strength is chosen, the clips without the concept get as many more to choose it on (a sweep
        of a single strength, with nothing to choose, is reported on both).
    baseline: also steer along the raw-latent difference of means (no SAE).
    baseline_for: the concepts that get the baseline (None: all of them).
    clamp_strengths: strengths of `clamp` to sweep as well (empty: none).
    gate: gate the edits and the baseline shift by the input's level.
    split: the manifest split rendered and judged (`test`, or `holdout_font`: the clips of the soundfont
        `data make --holdout-font` kept out of the train split).
    device: torch device for RAVE and the SAE.
    watch: manifest concepts judged for the drift only (not steered). A concept judged alone has no drift
        measured: its drift goal is then not met, never met by default.
    validation: judge `off` only, on up to `max_clips` held-out clips with each concept that none of the figures
        of a report with the same settings rests on (no concept's clips with or without it), to choose between
        settings (the demo's SAE draws) on other clips than those reported on; nothing is written.
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
    baseline_for: tuple[str, ...] | None = None
    clamp_strengths: tuple[float, ...] = ()
    gate: bool = True
    split: str = "test"
    device: str = "cpu"
    watch: tuple[str, ...] = ()
    validation: bool = False


def refuse_trained_on(sae_dir: Path, data: Path, files: list[str]) -> str | None:
    """Refuse to judge `files` (of `data`) as off the training distribution where the SAE at `sae_dir` was trained
    on some of them (`sae.io.TRAINED_AUDIO`; hunt 199: a store of the whole data folder, held-out font included, was
    judged as held out with no word, where `eval hooks` refuses such a store). A note where the SAE keeps no record
    (trained before it, or on rows that name no file): nothing could be checked."""
    from sae.bank import file_sha256
    from sae.io import TRAINED_AUDIO, read_trained_audio

    trained = read_trained_audio(sae_dir)
    if not trained:
        return (
            f"SAE {sae_dir} keeps no record of the audio it trained on ({TRAINED_AUDIO}: written by sae train "
            "since 7 December, where its store names its files), so whether it heard the held-out font is not checked"
        )
    seen = [f for f in files if (data / f).is_file() and file_sha256(data / f) in trained]
    if seen:
        raise UserError(
            f"SAE {sae_dir}: trained on {len(seen)} of the {len(files)} clip(s) of the held-out font this report is "
            f"judged on (first: {seen[0]}); train it on a store without them (collect the train and test clips), "
            "or judge --split test"
        )
    return None


def evaluate_steering(
    cfg: EvalConfig, progress: Callable[[str], None] | None = None, judges: dict[tuple, Judge] | None = None
) -> dict[str, Any]:
    """Run the judge; returns (and writes to OUT/judge.json) the results; PNG beside it. `judges`: a caller's store
    of judges already trained, reused by calls on the same data, concepts and model rate (the demo's two splits,
    `eval hooks`' hooks), and filled by this one."""
    from realtime.rave import RaveModel
    from realtime.render_rave import RaveStream, load_steering, model_delay, render_array
    from sae.controls import CLAMP_LIMIT
    from sae.io import read_trained_audio
    from sae.steering import Gate
    from training.rave.split_figures import clip_digests, sae_figures

    t0 = time.perf_counter()
    say = progress or (lambda s: None)
    rows = read_manifest(Path(cfg.data))
    model = RaveModel.load(cfg.model, cfg.device)
    from sae.bank import ConceptBank, edit_sha256

    bank = ConceptBank.load(cfg.bank)
    names, unjudged = concepts_to_judge(bank, cfg.concepts, model.identity.sha256, cfg.bank, model.path.name)
    steering = load_steering(cfg.bank, model, names=names, choose="judge the concepts of one with --concepts")
    judged = [*names, *watched(cfg.watch, names)]  # the steered concepts, then those watched for drift
    unchecked = None
    if cfg.split == HOLDOUT_SPLIT:
        files = [r["file"] for r in rows if r["split"] == cfg.split]
        unchecked = refuse_trained_on(steering.sae_dir, Path(cfg.data), files)
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

    train_clips, train_rows = load("train")
    refuse_no_clips(len(train_rows), sum(r["split"] == "train" for r in rows), cfg.data, "train", notes.skipped)
    key = (str(cfg.data), tuple(judged), model.sr, model.ratio)  # what the judge depends on
    judge = (judges or {}).get(key)
    if judge is None:
        say("judge: training on clean train clips and a degraded copy of each")
        judge = Judge.fit(train_clips, train_rows, judged, model.sr)
        if judges is not None:
            judges[key] = judge
    if cfg.split not in ("test", HOLDOUT_SPLIT):
        raise UserError(f"split {cfg.split!r}: expected 'test' or '{HOLDOUT_SPLIT}'")
    test_clips, test_rows = load(cfg.split)
    if not test_clips:
        raise UserError(f"data {cfg.data}: no held-out clips in the {cfg.split} split")
    clean = judge.detect(test_clips)
    labels = {n: np.array([bool(CONCEPTS[n](r)) for r in test_rows]) for n in names}
    clean_accuracy = {n: float(100.0 * (clean[n] == labels[n]).mean()) for n in names}

    stream = RaveStream(model)
    delay = model_delay(model)
    sae = steering.sae
    strengths = tuple(cfg.strengths) or (1.0,)
    if any(not np.isfinite(v) or v <= 0 for v in strengths):
        raise UserError(f"strengths {','.join(f'{v:g}' for v in strengths)}: expected positive numbers")
    clamps = tuple(cfg.clamp_strengths)
    if any(not 0 < v <= CLAMP_LIMIT for v in clamps):
        raise UserError(
            f"clamp strengths {','.join(f'{v:g}' for v in clamps)}: expected numbers in (0, {CLAMP_LIMIT:g}]"
        )
    gate = Gate(enabled=cfg.gate)

    def render(
        idx: list[int], sets: list[tuple[str, str]], shift: torch.Tensor | None = None, alone_of: str | None = None
    ) -> list[np.ndarray]:
        """`sets` edited at the bank's hook, or `shift` on the latent with the silence of `alone_of`'s detector."""
        edit = steering.edit_for(sets) if sets else None
        if alone_of is not None:
            edit = replace(steering.edit_for([]), alone={alone_of: steering.state.alone[alone_of]})
        hook = steering.hook if sets else "latent"
        return [
            render_array(
                stream, test_clips[i], sae, edit, cfg.block, delay, cfg.seed + i, shift=shift, hook=hook, gate=gate
            )
            for i in idx
        ]

    figures = None
    if not cfg.validation:  # the SAE's FVU and probe AUROC on the very clips judged (hunt 199: in font only)
        say(f"SAE figures on {len(test_clips)} {cfg.split} clips")
        files = [r["file"] for r in test_rows]
        probes = {n: bank.get(n).probe for n in names if bank.get(n).probe is not None}
        figures = sae_figures(model, steering.sae, steering.hook, test_clips, files, labels, probes,
                              read_trained_audio(steering.sae_dir), clip_digests(Path(cfg.data), files),
                              seed=cfg.seed)  # fmt: skip

    all_idx = list(range(len(test_clips)))
    choosing = len(strengths) > 1 or len(clamps) > 1
    sides = {}
    for name in names:
        pos = [i for i in all_idx if labels[name][i]]
        neg = [i for i in all_idx if not labels[name][i]]
        if not pos or not neg:
            raise UserError(
                f"concept {name!r}: the held-out clips need both sides (have {len(pos)} with, "
                f"{len(neg)} without); generate more clips"
            )
        # every figure on up to max_clips clips; where on's strength is chosen, as many more to choose it on
        sides[name] = (pos[: cfg.max_clips or None], neg[: cfg.max_clips * (1 + choosing) or None])
    if cfg.validation:  # the clips with each concept that no figure of the report rests on
        if cfg.max_clips <= 0:
            raise UserError("validation: a report on every held-out clip (max clips 0) leaves none to choose on")
        reported = {i for pos, neg in sides.values() for i in pos + neg}
        for name in names:
            left = [i for i in all_idx if labels[name][i] and i not in reported]
            if not left:
                raise UserError(
                    f"concept {name!r}: every held-out clip with it is among the {len(reported)} the report's "
                    "figures rest on, none is left to choose on; generate more clips"
                )
            sides[name] = (left[: cfg.max_clips], [])
    split_sides = {}  # the clips without each concept: (validation, test) for choosing the strength of on
    for name, (_, neg) in sides.items():
        split_sides[name] = (neg[0::2], neg[1::2]) if choosing else (neg, neg)
        if choosing and not split_sides[name][1] and not cfg.validation:
            raise UserError(
                f"concept {name!r}: {len(neg)} held-out clip(s) without it; choosing the strength of on needs "
                "at least 2 (half to choose on, half to report on); generate more clips"
            )
    directions = {}
    if cfg.baseline and not cfg.validation:
        say("baseline: latent difference of means on the train clips")
        means = torch.stack([latent_mean(stream, a) for a in train_clips])
        for name in names:
            has = torch.tensor([bool(CONCEPTS[name](r)) for r in train_rows])
            directions[name] = means[has].mean(0) - means[~has].mean(0)
    used = sorted({i for pos, neg in sides.values() for i in pos + neg})
    say(f"rendering {len(used)} held-out clips without edit")
    plain = judge.detect(render(used, []))
    base = {n: np.zeros(len(test_clips), bool) for n in judged}
    for n in judged:
        base[n][used] = plain[n]

    def sae_edit(name: str, mode: str = "on") -> Callable[[list[int], float | None], list[np.ndarray]]:
        return lambda idx, strength: render(idx, [(name, "off" if strength is None else f"{mode}:{strength}")])

    def shift_edit(d: torch.Tensor, alone_of: str | None) -> Callable[[list[int], float | None], list[np.ndarray]]:
        """The baseline: `off` is z − d (then the silence of `alone_of`'s detector, as the SAE's `off` has it),
        `on:s` is z + s·d."""
        return lambda idx, strength: (
            render(idx, [], -d, alone_of) if strength is None else render(idx, [], strength * d)
        )

    def on_at(name: str, edited: Callable, strength: float, clips: list[int]) -> dict[str, Any]:
        """Detection of every concept after `on:strength` on `clips` (without the concept), against no edit."""
        on = judge.detect(edited(clips, strength))
        drift_on = {o: hit_rate(on[o]) - hit_rate(base[o][clips]) for o in judged if o != name}
        return {
            "strength": strength,
            "clips": len(clips),
            "without": hit_rate(on[name]),
            "rise": hit_rate(on[name]) - hit_rate(base[name][clips]),
            "rise_interval": paired_diff(base[name][clips], on[name]).as_dict(),
            "drift": drift_on,
            "drift_intervals": {o: paired_diff(base[o][clips], on[o]).as_dict() for o in judged if o != name},
            "max_drift": max(map(abs, drift_on.values()), default=0.0),
            "per_clip": {o: on[o].astype(int).tolist() for o in judged},
        }

    def on_sweep(
        name: str, edited: Callable[[list[int], float | None], list[np.ndarray]], sweep_strengths: tuple[float, ...]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The sweep on the validation clips without the concept, and the chosen strength (largest rise within
        the drift goal, else the largest rise) measured on the test clips without it."""
        val, test = split_sides[name]
        # nothing to choose anywhere: every clip without the concept; one strength where another arm chooses (one
        # `on` strength beside a sweep of clamps) is a sweep of one, reported on the same test half as that arm's
        if len(sweep_strengths) == 1 and not choosing:
            only = on_at(name, edited, sweep_strengths[0], sorted(set(val) | set(test)))
            return [only], only
        sweep = [on_at(name, edited, strength, val) for strength in sweep_strengths]
        within = [e for e in sweep if e["max_drift"] <= GOALS["drift"]] or sweep
        chosen = max(within, key=lambda e: e["rise"])
        return sweep, on_at(name, edited, chosen["strength"], test)

    def off_at(name: str, edited: Callable) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Detection of every concept after `off` on the clips with the concept, and the drift of the others."""
        pos = sides[name][0]
        off = judge.detect(edited(pos, None))
        return off, {o: hit_rate(off[o]) - hit_rate(base[o][pos]) for o in judged if o != name}

    if cfg.validation:
        offs = {}
        for name in names:
            pos = sides[name][0]
            say(f"{name}: off on {len(pos)} validation clips with it")
            off, drift = off_at(name, sae_edit(name))
            offs[name] = {
                "clips": len(pos),
                "files": [test_rows[i]["file"] for i in pos],
                "off_drop": hit_rate(base[name][pos]) - hit_rate(off[name]),
                "off_drop_interval": paired_diff(off[name], base[name][pos]).as_dict(),
                "drift": drift,
                "max_drift": max(map(abs, drift.values()), default=0.0),
            }
        return {"split": cfg.split, "clips": "validation", "concepts": offs}

    def arm(name: str, edited: Callable[[list[int], float | None], list[np.ndarray]]) -> dict[str, Any]:
        """Detection after `off` (strength None) and after each `on` strength, with every other concept's drift."""
        pos, neg = sides[name]
        off, drift_off = off_at(name, edited)
        sweep, best = on_sweep(name, edited, strengths)
        worst = max([best["max_drift"], *map(abs, drift_off.values())])
        val, test = split_sides[name]
        entry = {
            "held_out_with": len(pos),
            "held_out_without": len(neg),
            "held_out_without_validation": len(val),
            "held_out_without_test": len(test),
            "clean": {"with": hit_rate(clean[name][pos]), "without": hit_rate(clean[name][neg])},
            "none": {"with": hit_rate(base[name][pos]), "without": hit_rate(base[name][neg])},
            "none_without_test": hit_rate(base[name][test]),
            "off": {"with": hit_rate(off[name])},
            "on": {"without": best["without"]},
            "strength_on": best["strength"],
            "intervals": {
                "off_drop": paired_diff(off[name], base[name][pos]).as_dict(),
                "on_rise": best["rise_interval"],
                "drift": {
                    "off": {o: paired_diff(base[o][pos], off[o]).as_dict() for o in judged if o != name},
                    "on": best["drift_intervals"],
                },
            },
            "sweep": sweep,
            "per_clip_on": best["per_clip"],  # the reported `on` (test half), per clip and concept
            "per_clip": {
                "none_with": {o: base[o][pos].astype(int).tolist() for o in judged},
                "none_without": {o: base[o][neg].astype(int).tolist() for o in judged},
                "off_with": {o: off[o].astype(int).tolist() for o in judged},
                # after `on` at the chosen strength, on the clips the rise is reported on (`on_clips` of neg)
                "on_without": best["per_clip"],
            },
            "on_clips": "test_half" if choosing else "all",  # test_half: neg[1::2]
        }
        entry["off_drop"] = entry["none"]["with"] - entry["off"]["with"]
        entry["on_rise"] = best["rise"]
        entry["drift"] = {"off": drift_off, "on": best["drift"]}
        entry["off_moved"] = moved_clips({o: base[o][pos] for o in judged}, off, [test_rows[i] for i in pos], name)
        entry["max_drift"] = worst
        entry["drift_measured"] = len(judged) > 1
        lows = entry["intervals"]["off_drop"]["lo"], entry["intervals"]["on_rise"]["lo"]
        drift = worst if entry["drift_measured"] else None
        entry["drift_reach"] = drift_reach(*entry["intervals"]["drift"].values())  # the farthest interval end
        entry["goals_met"] = goals_met(
            entry["off_drop"], entry["on_rise"], drift, len(pos), best["clips"], *lows, drift_reach=entry["drift_reach"]
        )
        return entry

    results: dict[str, Any] = {}
    for name in names:
        pos, neg = sides[name]
        say(
            f"{name}: off on {len(pos)} clips with it, on:{','.join(f'{v:g}' for v in strengths)} on {len(neg)} "
            "clips without it"
        )
        entry = {"edit_sha256": edit_sha256(bank.get(name))} | arm(name, sae_edit(name))  # the edit judged
        if clamps:
            say(f"{name}: clamp:{','.join(f'{v:g}' for v in clamps)} on the same clips")
            sweep, best = on_sweep(name, sae_edit(name, "clamp"), clamps)
            entry["clamp"] = {
                "strength_on": best["strength"],
                "on": {"without": best["without"]},
                "on_rise": best["rise"],
                "drift": {"on": best["drift"]},
                "max_drift": best["max_drift"],
                "sweep": sweep,
                "per_clip_on": best["per_clip"],
            }
        if cfg.baseline and (cfg.baseline_for is None or name in cfg.baseline_for):
            say(f"{name}: the same edits along the latent difference of means")
            d = directions[name]
            # the detector of playing alone is not part of the steering edit: the baseline's `off` gets it too,
            # where it can (it reads the SAE of the bank's hook, and the baseline edits the latent)
            has_alone = name in steering.state.alone
            alone_of = name if has_alone and steering.hook == "latent" else None
            entry["baseline"] = {
                "method": "raw-latent difference of means",
                "norm": float(d.norm()),
                "direction": [round(float(v), 6) for v in d],
                "alone": "the bank's" if alone_of else "none" + (" (the bank's reads another hook)" * has_alone),
            } | {
                k: v
                for k, v in arm(name, shift_edit(d, alone_of)).items()
                if k not in ("held_out_with", "held_out_without", "clean", "none")
            }
            entry["baseline"]["vs_sae"] = baseline_vs_sae(entry, name)  # paired, clip by clip
        results[name] = entry
    out = {
        "model": {"name": model.path.name, "sha256": model.identity.sha256},
        "bank": str(cfg.bank),
        "sae": str(steering.sae_dir),
        "sae_sha256": sae_weights_sha256(steering.sae_dir),  # what the dashboard matches its concepts' SAE by
        "hook": steering.hook,
        "gate": {"enabled": gate.enabled, "lo_db": gate.lo_db, "hi_db": gate.hi_db},
        "data": str(cfg.data),
        "judge": {
            "features": JUDGE_FEATURES,
            "classifier": "logistic regression",
            "trained_on": f"{len(train_clips)} clean train clips {DEGRADED_COPIES}",
            "clean_heldout_accuracy": clean_accuracy,
            "clean_heldout_clips": len(test_clips),  # every clip of the split, not only those rendered
        },
        "strengths": list(strengths),
        "clamp_strengths": list(clamps),
        "split": cfg.split,
        "strength_chosen_on": "validation half of the clips without each concept" if choosing else "nothing chosen",
        "held_out_clips": len(used),
        "sae_figures": figures,  # on every clip of the split (`training.rave.split_figures`)
        "watched": judged[len(names) :],
        "goals": GOALS,
        "concepts": results,
        "notes": notes.lines() + unjudged + ([unchecked] if unchecked else []),
        "seconds": round(time.perf_counter() - t0, 1),
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
