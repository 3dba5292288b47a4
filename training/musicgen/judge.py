"""The outside judge (training/judge.py) on MusicGen renders: with vs without an edit, same prompt and seed.

The judge is the RAVE path's: one logistic detector per concept on log-mel statistics of the harmonic and
percussive parts, trained on the clean train clips of a `musicsae data make` folder and a degraded copy of each
(`training.judge.degraded_copy`); it never sees MusicGen activations or SAE features.
MusicGen makes music from text, so instead of re-rendering held-out clips every prompt is rendered
from the same seed three ways: no edit, `off` of the concept, `on:S` of the concept. The result has the
RAVE judge's layout ("none" = the unedited renders), so the same table and plot apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime.audio_files import AudioNotes, read_mono
from sae.bank import edit_sha256
from sae.errors import UserError
from sae.stats import paired_diff, runs_of
from training.data.concept_clips import CONCEPTS, read_manifest
from training.judge import (
    DEGRADED_COPIES,
    JUDGE_FEATURES,
    Judge,
    concepts_to_judge,
    drift_reach,
    drop_earlier_examples,
    goals_met,
    hit_rate,
    refuse_no_clips,
    save_report,
    watched,
)
from training.musicgen.listen import write_examples

GOALS = {"off_drop": 50.0, "on_rise": 30.0, "drift": 10.0}
"""MusicGen's goals (its issue's: a rise of 30, where RAVE's judge asks 50), for `eval musicgen` and the
experiment alike (hunt 167: the same figures met the rise goal in one and not the other)."""


ON_STRENGTH = {"cond": 0.5, "both": 1.0}
"""The default `on` strength by the guidance rows edited: guidance multiplies an edit of the conditional rows by its
coefficient (MusicGen's 3), and the MusicGen experiment chose 0.25 or 0.5 there on validation (README, "The same
with MusicGen")."""


@dataclass
class MusicGenEvalConfig:
    """Args:
    data: a `musicsae data make` folder (train split trains the judge).
    model: MusicGen hub id or folder; backend: auto / audiocraft / transformers.
    bank: concept bank with MusicGen concepts of this model.
    out: output folder (judge.json, judge.png).
    prompts: prompts to render (each with seeds seed, seed+1, ...).
    renders: renders per prompt (different seeds).
    duration: seconds per render.
    concepts: subset of the bank (default: every bank concept of this model the manifest labels).
    strength: strength of `on` (None: `ON_STRENGTH` of the rows edited).
    edit_rows: which guidance rows the edits touch (`both` or `cond`; realtime/musicgen/render.py says why).
    listen: renders per concept kept as listening examples in OUT/listen/ (`listen.py`; 0: none).
    watch: manifest concepts judged for the drift only (not steered).
    """

    data: str
    model: str
    bank: str
    out: str
    prompts: tuple[str, ...]
    backend: str = "auto"
    renders: int = 2
    duration: float = 4.0
    concepts: tuple[str, ...] = ()
    strength: float | None = None
    seed: int = 0
    device: str = "cpu"
    edit_rows: str = "cond"
    listen: int = 2
    watch: tuple[str, ...] = ()

    @property
    def on_strength(self) -> float:
        """The strength of `on`: `strength`, or the default of the rows edited."""
        return self.strength if self.strength is not None else ON_STRENGTH.get(self.edit_rows, 1.0)


def check_distinct(prompts: Sequence[str], played: Sequence[str | None]) -> None:
    """Refuse prompts the model plays as one (a line given twice, or texts its conditioner reads as the same
    description): their renders repeat the same seeds, byte for byte, and counted as others they narrowed every
    interval and passed the minimum of renders a verdict needs (hunt 152)."""
    first: dict[str | None, str] = {}
    for p, d in zip(prompts, played, strict=True):
        if d not in first:
            first[d] = p
        elif first[d] == p:
            raise UserError(f"--prompts: {p!r} is given twice: its renders would be the same, counted twice; give "
                            "each prompt once (--renders N renders each N times)")  # fmt: skip
        else:
            raise UserError(f"--prompts: {first[d]!r} and {p!r} both play as {d!r} on this model: the same renders, "
                            "counted twice; keep one (--renders N renders each N times)")  # fmt: skip


def evaluate_musicgen(
    cfg: MusicGenEvalConfig,
    progress: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the judge on MusicGen renders; returns (and writes OUT/judge.json + judge.png) the results. `note`: a
    line to keep in sight (renders past the LM's training segment), said once the model is loaded."""
    from realtime.musicgen import duration_note, load_musicgen, trained_seconds
    from realtime.musicgen.render import BankSteering, parse_set, render
    from sae.bank import ConceptBank

    t0 = time.perf_counter()
    say = progress or (lambda s: None)
    if not cfg.prompts:
        raise UserError("prompts: expected at least one prompt to render")
    rows = read_manifest(Path(cfg.data))
    bank = ConceptBank.load(cfg.bank)
    mg = load_musicgen(cfg.model, cfg.backend, cfg.device)
    mg.check_request(list(cfg.prompts), cfg.duration)  # before the judge trains, not after (hunt 78)
    check_distinct(cfg.prompts, mg.describe(list(cfg.prompts)))
    # whole frames: 2.01 s renders 2 s, no position past a 2 s segment (hunt 152)
    if past := duration_note(mg.name, trained_seconds(cfg.model), mg.rendered_seconds(cfg.duration)):
        (note or say)(f"note: {past}")
    sha = mg.model_ref()["sha256"]
    names, unjudged = concepts_to_judge(bank, cfg.concepts, sha, cfg.bank, mg.name)
    judged = [*names, *watched(cfg.watch, names)]  # the steered concepts, then those watched for drift
    steer = {
        (n, mode): BankSteering(mg, bank, [parse_set(f"{n}={mode}")], cfg.edit_rows)
        for n in names
        for mode in ("off", f"on:{cfg.on_strength:g}")
    }  # checks model/layer/SAE up front

    notes = AudioNotes()
    train = [(read_mono(Path(cfg.data) / r["file"], mg.sample_rate, notes), r) for r in rows if r["split"] == "train"]
    kept = [(a, r) for a, r in train if a is not None]
    refuse_no_clips(len(kept), len(train), cfg.data, "train", notes.skipped)
    train = kept
    say("judge: training on clean train clips and a degraded copy of each")
    judge = Judge.fit([a for a, _ in train], [r for _, r in train], judged, mg.sample_rate)
    test = [(read_mono(Path(cfg.data) / r["file"], mg.sample_rate, notes), r) for r in rows if r["split"] == "test"]
    test = [(a, r) for a, r in test if a is not None]
    if test:
        clean = judge.detect([a for a, _ in test])
        judge.clean_accuracy = {
            n: float(100.0 * (clean[n] == np.array([bool(CONCEPTS[n](r)) for _, r in test])).mean()) for n in names
        }

    jobs = [(p, cfg.seed + j) for p in cfg.prompts for j in range(cfg.renders)]
    prompt_of = runs_of(len(cfg.prompts), cfg.renders)

    def renders(steering) -> list[np.ndarray]:
        """[frames, channels] per job: a stereo model's two channels kept for listening."""
        return [render(mg, [p], cfg.duration, s, steering).wav[0].T.cpu().numpy() for p, s in jobs]

    def mono(audio: list[np.ndarray]) -> list[np.ndarray]:
        """What the judge hears: the mean of the channels."""
        return [a.mean(axis=1) for a in audio]

    say(f"rendering {len(jobs)} prompts/seeds without edit")
    plain = renders(None)
    base = judge.detect(mono(plain))
    results: dict[str, Any] = {}
    keep = max(0, cfg.listen)
    heard: dict[str, dict[str, np.ndarray]] = {}
    edited: dict[str, dict[str, list[np.ndarray]]] = {}
    for name in names:
        say(f"{name}: off and on:{cfg.on_strength:g} on the same prompts and seeds")
        off_audio, on_audio = renders(steer[name, "off"]), renders(steer[name, f"on:{cfg.on_strength:g}"])
        off, on = judge.detect(mono(off_audio)), judge.detect(mono(on_audio))
        heard[name] = {"plain": base[name][:keep], "off": off[name][:keep], "on": on[name][:keep]}
        edited[name] = {"off": off_audio[:keep], "on": on_audio[:keep]}
        entry = {
            "sae_sha256": bank.get(name).sae_sha256,  # each concept's own SAE (one per layer): the dashboard's match
            "edit_sha256": edit_sha256(bank.get(name)),  # and the edit judged (the concept found again differs)
            "renders": len(jobs),
            "none": {"with": hit_rate(base[name]), "without": hit_rate(base[name])},
            "off": {"with": hit_rate(off[name])},
            "on": {"without": hit_rate(on[name])},
        }
        entry["off_drop"] = entry["none"]["with"] - entry["off"]["with"]
        entry["on_rise"] = entry["on"]["without"] - entry["none"]["without"]
        drift_off = {o: hit_rate(off[o]) - hit_rate(base[o]) for o in judged if o != name}
        drift_on = {o: hit_rate(on[o]) - hit_rate(base[o]) for o in judged if o != name}
        entry["drift"] = {"off": drift_off, "on": drift_on}
        worst = max([abs(v) for v in (*drift_off.values(), *drift_on.values())], default=0.0)
        entry["max_drift"] = worst
        entry["drift_measured"] = len(judged) > 1  # judged alone: no drift measured, so its goal is not met
        entry["intervals"] = {  # the prompt the unit: its renders share it (hunt 184)
            "off_drop": paired_diff(off[name], base[name], groups=prompt_of).as_dict(),
            "on_rise": paired_diff(base[name], on[name], groups=prompt_of).as_dict(),
            "drift": {
                edit: {o: paired_diff(base[o], calls[o], groups=prompt_of).as_dict() for o in judged if o != name}
                for edit, calls in (("off", off), ("on", on))
            },
        }
        lows = entry["intervals"]["off_drop"]["lo"], entry["intervals"]["on_rise"]["lo"]
        drift = worst if entry["drift_measured"] else None
        entry["drift_reach"] = drift_reach(*entry["intervals"]["drift"].values())  # as the RAVE judge's
        entry["goals_met"] = goals_met(
            entry["off_drop"], entry["on_rise"], drift, len(jobs), len(jobs), *lows, GOALS, entry["drift_reach"]
        )
        results[name] = entry
    out = {
        "model": {"name": mg.name, "sha256": sha, "backend": mg.backend},
        "bank": str(cfg.bank),
        "data": str(cfg.data),
        "prompts": list(cfg.prompts),
        **mg.duration_record(cfg.duration),  # whole frames, as render.json (hunt 152)
        "judge": {
            "features": JUDGE_FEATURES,
            "classifier": "logistic regression",
            "trained_on": f"{len(train)} clean train clips {DEGRADED_COPIES}",
            "clean_heldout_accuracy": {n: judge.clean_accuracy.get(n, float("nan")) for n in names},
        },
        "strength_on": cfg.on_strength,
        # which guidance rows were edited (a `cond` edit is scaled by guidance: strengths of the two do not compare)
        # and the seeds (seed, seed+1, ... per prompt): the figures could be neither read nor rendered again (hunt 172)
        "edit_rows": cfg.edit_rows,
        "seed": cfg.seed,
        "renders_per_prompt": cfg.renders,
        "held_out_clips": len(jobs),
        "goals": GOALS,
        "concepts": results,
        "notes": notes.lines() + unjudged + mg.__dict__.get("prompt_notes", []),  # prompts played as other words
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if keep:
        write_examples(cfg.out, jobs[:keep], mg.sample_rate, cfg.on_strength, plain[:keep], heard, edited)
        out["listen"] = "listen/listen.json"
    elif drop_earlier_examples(cfg.out):
        out["notes"].append("removed the listening examples of an earlier evaluation in this folder")
    save_report(out, Path(cfg.out))
    return out


def read_prompt_list(path: str | None, default: Sequence[str]) -> tuple[str, ...]:
    if path is None:
        return tuple(default)
    from training.musicgen.collect import read_prompts

    return tuple(read_prompts(path))
