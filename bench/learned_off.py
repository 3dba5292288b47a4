"""Benchmark: an `off` learned from counterfactual pairs vs the bank's `off`, judged on held-out clips.

The concept data's generator can render every clip again without the concept (`concept_clips.oracle_clip`: the
same MIDI without its part; a solo of the concept is silence). From the train split's pairs (clip with the concept,
the same clip without it) this fits two edits of the model's latent frames, each applied to every frame:

- **SAE affine**: per SAE feature, f' = g·f + a by least squares (the bank's SAE; the SAE's error term kept), an
  edit in the format `sae.steering.Edit` already carries;
- **raw linear**: z' = A·z + b on the raw latent, by least squares (the baseline that needs no SAE);
- **… + alone → silence**: each of the above (and the bank's `off`) with the detector of the concept playing alone
  that `concept find --alone` fits (`training.rave.alone`, on the train split's solos of the concept against its
  other clips): frames it calls alone get the model's latent of silence (`sae.alone`). The fixed edits are one map
  for every frame: a drum solo's hits keep their level and come out as another instrument.

Then the outside judge (`training.judge.Judge`, trained on the train split and a degraded copy of each clip) hears the
held-out clips with the concept (the held-out font's when the data has one, else the test split's) rendered plain,
with the bank's `off`, and with each learned edit: the drop of the concept and every other concept's drift in points
with paired 95 % intervals, and the difference to the bank's `off` measured in the same run. Nothing is asserted.

    .venv/bin/python bench/learned_off.py --data jq/steer_data --bank training/assets/demo_concepts.yaml \
        --concept drums      # DATA is made first when it has no manifest (--n, --seed, --holdout-font)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from realtime.audio_files import AudioNotes, read_mono, resample
from realtime.rave import RaveModel
from realtime.render_rave import (
    RaveStream,
    load_steering,
    model_delay,
    offline_block,
    render_array,
    silenced_rows,
)
from sae.alone import MEMORY_S, AloneDetector, AloneSilence
from sae.errors import UserError
from sae.stats import Interval, paired_diff
from sae.steering import Edit, Gate
from training.cli.args import Parser, positive_float, positive_int, seed_int, thread_count
from training.data import concept_clips as clips
from training.data.concept_clips import CONCEPTS, HOLDOUT_SPLIT, solo_of
from training.judge import Judge, moved_clips
from training.rave.alone import find_alone
from training.rave.collect import activations_of

PROG = "bench/learned_off.py"


@torch.no_grad()
def render_mapped(stream: RaveStream, audio: np.ndarray, fn: Callable[[Tensor], Tensor], delay: int, seed: int):
    """The mono clip through the model with z' = fn(z) on its latent frames [T, latent] in order, aligned like
    `render_array`."""
    stream.reset()
    torch.manual_seed(seed)
    block = offline_block(stream.ratio)
    total = len(audio) + delay
    x = np.zeros(total + (-total) % block, np.float32)
    x[: len(audio)] = audio
    xt, outs = torch.from_numpy(x).view(1, 1, -1).expand(1, stream.channels, -1), []
    for s in range(0, len(x), block):
        z = fn(stream.encode_mean(xt[..., s : s + block])[0].T)
        outs.append(stream.decode(z.float().T.unsqueeze(0))[0].mean(0))
    return torch.cat(outs).numpy()[delay : delay + len(audio)]


def linear(A: Tensor) -> Callable[[Tensor], Tensor]:
    """z' = [z, 1] @ A."""
    return lambda z: torch.cat([z.double(), torch.ones(len(z), 1, dtype=torch.float64)], 1) @ A


def report(
    audio: list[np.ndarray],
    rows: list[dict],
    edits: dict,
    judge: Judge,
    names: list[str],
    c: str,
    what: str,
    calls: str,
) -> None:
    """Judge every edit's renders of `audio` against the plain ones: the concept's drop (on clips with it) and every
    other concept's drift, with the clips behind the worst drift and the drift on the clips that are not solos."""
    heard = {k: judge.detect([f(a, i) for i, a in enumerate(audio)]) for k, f in edits.items()}
    plain, base, solo = heard.pop("plain"), None, np.array([solo_of(r, c) for r in rows], bool)
    print(f"{len(audio)} {what}; {c} heard in {100 * plain[c].mean():.0f} % of the plain renders; {calls}")
    for k, h in heard.items():
        drop = paired_diff(h[c], plain[c])  # the plain renders' rate minus the edited ones'
        drift = {o: paired_diff(plain[o], h[o]) for o in names if o != c}
        worst = max(drift, key=lambda o: abs(drift[o].value), default=None)
        vs = "" if base is None else f"; drop vs bank off {fmt(paired_diff(h[c], base[c]))}"
        where = ""
        if worst:
            moved = moved_clips(plain, h, rows, c)[worst]
            where = f" (moved on {moved['moved']} of {moved['clips']} clips, {moved['solos']} of them {c} solos)"
        print(f"  {k}: drop {fmt(drop)}; worst drift {worst} {fmt(drift[worst]) if worst else '-'}{where}{vs}")
        mixed = {o: paired_diff(plain[o][~solo], h[o][~solo]) for o in names if o != c}
        if solo.any() and (worst := max(mixed, key=lambda o: abs(mixed[o].value), default=None)):
            print(f"    on the {(~solo).sum()} clips that are not {c} solos: worst drift {worst} {fmt(mixed[worst])}")
        base = h if base is None else base


def fmt(iv: Interval) -> str:
    return f"{iv.value:+.0f} [{iv.lo:+.0f}, {iv.hi:+.0f}]"


def main() -> None:
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a `data make` folder (made if absent)")
    ap.add_argument("--n", type=positive_int, default=300, help="clips, when DATA is made (default 300)")
    ap.add_argument("--seed", type=seed_int, default=0, help="data seed, when DATA is made (default 0)")
    ap.add_argument("--holdout-font", default="fluidr3", help="the font held out, when DATA is made")
    ap.add_argument("--model", default="training/assets/demo_rave.ts", help="streaming RAVE .ts")
    ap.add_argument("--bank", default="training/assets/demo_concepts.yaml", help="concept bank on that model")
    ap.add_argument("--concept", default="drums", help="the concept switched off")
    ap.add_argument("--max-clips", type=positive_int, default=24, help="held-out clips with the concept (default 24)")
    ap.add_argument(
        "--memory", type=positive_float, default=MEMORY_S, help="the alone detector's memory, seconds (default 2)"
    )
    ap.add_argument("--threads", type=thread_count, default=2)
    args = ap.parse_args()
    if args.concept not in CONCEPTS:
        raise UserError(f"--concept {args.concept}: expected a manifest concept ({', '.join(CONCEPTS)})")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if not (args.data / "manifest.csv").exists():
        made = clips.DataConfig(n=args.n, seed=args.seed, holdout_font=args.holdout_font)
        clips.make_dataset(args.data, made, concepts=None)
    rows, notes, c = clips.read_manifest(args.data), AudioNotes(), args.concept
    data_cfg, fonts, held = clips.data_config(args.data)
    model = RaveModel.load(args.model)
    steering = load_steering(args.bank, model)
    if steering.hook != "latent":
        raise UserError(f"--bank {args.bank}: its SAE reads {steering.hook}; this benchmark learns latent edits only")
    names = [n for n in steering.concepts if n in CONCEPTS]
    sae, stream, delay = steering.sae, RaveStream(model), model_delay(model)
    streams = {"all": stream}  # `activations_of` reads the latent rows of each pair through the same stream

    split = HOLDOUT_SPLIT if any(r["split"] == HOLDOUT_SPLIT for r in rows) else "test"

    def read(r: dict) -> np.ndarray | None:
        return read_mono(args.data / r["file"], model.sr, notes, min_samples=model.ratio)

    def latent_of(x: np.ndarray) -> Tensor:
        return activations_of(model, x, ["latent"], offline_block(model.ratio), streams)["latent"]

    latents: dict[str, Tensor | None] = {}

    def latent_rows(r: dict) -> Tensor | None:
        """A clip's latent rows (cached)."""
        if r["file"] not in latents:
            a = read(r)
            latents[r["file"]] = None if a is None else latent_of(a)
        return latents[r["file"]]

    def pairs(of: list[dict]) -> list[tuple[Tensor, Tensor]]:
        """Per clip with the concept: latent rows with it and without it."""
        out = []
        for r in of:
            if not CONCEPTS[c](r) or (z := latent_rows(r)) is None:
                continue
            b = clips.oracle_clip(r, data_cfg, fonts, c, held)
            if b is None:
                continue
            zb = latent_of(resample(b, data_cfg.sample_rate, model.sr))
            m = min(len(z), len(zb))
            out.append((z[:m], zb[:m]))
        return out

    train = [r for r in rows if r["split"] == "train"]
    train_pairs = pairs(train)
    Zw, Zo = (torch.cat([p[i] for p in train_pairs]).double() for i in (0, 1))
    with torch.no_grad():
        Fw, Fo = sae.encode(Zw.float()).double(), sae.encode(Zo.float()).double()
    mw, mo = Fw.mean(0), Fo.mean(0)
    var, cov = ((Fw - mw) ** 2).mean(0), ((Fw - mw) * (Fo - mo)).mean(0)
    gain = torch.where(var > 1e-9, cov / var.clamp_min(1e-9), torch.zeros_like(var))
    affine = Edit.from_dense(gain.float(), (mo - gain * mw).float())
    A = torch.linalg.lstsq(torch.cat([Zw, torch.ones(len(Zw), 1, dtype=Zw.dtype)], 1), Zo).solution
    print(f"{c}: {len(train_pairs)} train pairs, {len(Zw)} latent frames; SAE {sae.W_dec.shape[0]} features")

    off = replace(steering.edit_for([(c, "off")]), alone={})  # the bank's off alone, whatever detector it holds
    usable = [(args.data / r["file"], z, r) for r in train if (z := latent_rows(r)) is not None]
    try:
        detector, line = find_alone(
            model,
            sae,
            "latent",
            [(p, z) for p, z, r in usable if solo_of(r, c)],
            [(p, z) for p, z, r in usable if not solo_of(r, c)],
            args.memory,
        )
    except UserError as exc:  # too few solos in the train split: the arms without the detector only
        detector, line = None, f"alone: not fitted ({exc})"
    print(line)

    train_clips = [(a, r) for r in train if (a := read(r)) is not None]
    judge = Judge.fit([a for a, _ in train_clips], [r for _, r in train_clips], names, model.sr)
    held_rows = [(a, r) for r in rows if r["split"] == split and CONCEPTS[c](r) and (a := read(r)) is not None]
    held_out, held_rows = [a for a, _ in held_rows][: args.max_clips], [r for _, r in held_rows][: args.max_clips]
    if not held_out:  # np.stack's "need at least one array" traceback at --n 12
        raise UserError(f"--data {args.data}: no {split} clip with {c}; make it with more clips (--n)")
    edits = {
        "plain": lambda a, i: render_array(stream, a, None, None, None, delay, i),
        "bank off": lambda a, i: render_array(stream, a, sae, off, None, delay, i, hook=steering.hook),
        "SAE affine (learned)": lambda a, i: render_array(
            stream, a, sae, affine, None, delay, i, hook=steering.hook, gate=Gate(enabled=False)
        ),
        "raw linear (learned)": lambda a, i: render_mapped(stream, a, linear(A), delay, i),
    }
    alone = {c: detector} if detector is not None else {}
    if alone:
        edits["bank off + alone -> silence"] = lambda a, i: render_array(
            stream, a, sae, replace(off, alone=alone), None, delay, i, hook=steering.hook
        )
        edits["SAE affine + alone -> silence"] = lambda a, i: render_array(
            stream, a, sae, replace(affine, alone=alone), None, delay, i, hook=steering.hook, gate=Gate(enabled=False)
        )
        block_s = offline_block(stream.ratio) / stream.sr  # what `render_mapped` maps at a time
        raw = lambda rows, f: linear(A)(rows)  # noqa: E731 (the raw map needs no SAE code)
        edits["raw linear + alone -> silence"] = lambda a, i: render_mapped(
            stream, a, silenced_rows(raw, sae, AloneSilence(alone), block_s, alone), delay, i
        )

    def calls(rows: list[dict]) -> str:
        """How much of the clips the detector calls alone: of the solos' frames, of the others'."""
        if detector is None:
            return "no detector"
        n = np.zeros((2, 2))
        for r in rows:
            with torch.no_grad():
                hit = AloneDetector(detector)(sae.encode(latent_rows(r).float()), stream.ratio / stream.sr)
            n[int(solo_of(r, c))] += (int(hit.sum()), len(hit))
        return f"the detector calls {100 * n[1, 0] / max(n[1, 1], 1):.0f} % of {c} solos' frames alone, " + (
            f"{100 * n[0, 0] / max(n[0, 1], 1):.1f} % of the others'"
        )

    report(held_out, held_rows, edits, judge, names, c, f"{split} clips with {c}", calls(held_rows))
    # an edit of a concept should leave clips without it alone: the same edits on the held-out clips without it
    without = [(a, r) for r in rows if r["split"] == split and not CONCEPTS[c](r) and (a := read(r)) is not None]
    without = without[: args.max_clips]
    without_rows = [r for _, r in without]
    report(
        [a for a, _ in without], without_rows, edits, judge, names, c, f"{split} clips without {c}", calls(without_rows)
    )
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
