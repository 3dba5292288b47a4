"""Benchmark: an `off` learned from counterfactual pairs vs the bank's `off`, judged on held-out clips.

The concept data's generator can render every clip again without the concept (`concept_clips.oracle_clip`: the
same MIDI without its part; a solo of the concept is silence). From the train split's pairs (clip with the concept,
the same clip without it) this fits two edits of the model's latent frames, each applied to every frame:

- **SAE affine**: per SAE feature, f' = g·f + a by least squares (the bank's SAE; the SAE's error term kept), an
  edit in the format `sae.steering.Edit` already carries;
- **raw linear**: z' = A·z + b on the raw latent, by least squares (the baseline that needs no SAE).

Then the outside judge (`training.judge.Judge`, trained on the train split and a degraded copy of each clip) hears the
held-out clips with the concept (the held-out font's when the data has one, else the test split's) rendered plain,
with the bank's `off`, and with each learned edit: the drop of the concept and every other concept's drift in points
with paired 95 % intervals, and the difference to the bank's `off` measured in the same run. Nothing is asserted.

    .venv/bin/python bench/learned_off.py --data jq/steer_data --bank training/assets/demo_concepts.yaml \
        --concept drums      # DATA is made first when it has no manifest (--n, --seed, --holdout-font)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from realtime.audio_files import AudioNotes, read_mono, resample
from realtime.rave import RaveModel
from realtime.render_rave import RaveStream, load_steering, model_delay, offline_block, render_array
from sae.stats import Interval, paired_diff
from sae.steering import Edit, Gate
from training.data import concept_clips as clips
from training.data.concept_clips import CONCEPTS, HOLDOUT_SPLIT
from training.judge import Judge
from training.rave.collect import activations_of


def render_linear(stream: RaveStream, audio: np.ndarray, A: torch.Tensor, delay: int, seed: int) -> np.ndarray:
    """The mono clip through the model with z' = [z, 1] @ A on every latent frame, aligned like `render_array`."""
    stream.reset()
    torch.manual_seed(seed)
    block = offline_block(stream.ratio)
    total = len(audio) + delay
    x = np.zeros(total + (-total) % block, np.float32)
    x[: len(audio)] = audio
    xt, outs = torch.from_numpy(x).view(1, 1, -1).expand(1, stream.channels, -1), []
    for s in range(0, len(x), block):
        z = stream.encode_mean(xt[..., s : s + block])[0].T.double()
        z = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1) @ A
        outs.append(stream.decode(z.float().T.unsqueeze(0))[0].mean(0))
    return torch.cat(outs).numpy()[delay : delay + len(audio)]


def fmt(iv: Interval) -> str:
    return f"{iv.value:+.0f} [{iv.lo:+.0f}, {iv.hi:+.0f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a `data make` folder (made if absent)")
    ap.add_argument("--n", type=int, default=300, help="clips, when DATA is made (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="data seed, when DATA is made (default 0)")
    ap.add_argument("--holdout-font", default="fluidr3", help="the font held out, when DATA is made")
    ap.add_argument("--model", default="training/assets/demo_rave.ts", help="streaming RAVE .ts")
    ap.add_argument("--bank", default="training/assets/demo_concepts.yaml", help="concept bank on that model")
    ap.add_argument("--concept", default="drums", help="the concept switched off")
    ap.add_argument("--max-clips", type=int, default=24, help="held-out clips with the concept (default 24)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.concept not in CONCEPTS:
        raise SystemExit(f"--concept {args.concept}: expected a manifest concept ({', '.join(CONCEPTS)})")
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
        raise SystemExit(f"--bank {args.bank}: its SAE reads {steering.hook}; this benchmark learns latent edits only")
    names = [n for n in steering.concepts if n in CONCEPTS]
    sae, stream, delay = steering.sae, RaveStream(model), model_delay(model)
    streams = {"all": stream}  # `activations_of` reads the latent rows of each pair through the same stream

    def read(r: dict) -> np.ndarray | None:
        return read_mono(args.data / r["file"], model.sr, notes, min_samples=model.ratio)

    train = [r for r in rows if r["split"] == "train"]
    with_c, without_c = [], []
    for r in (r for r in train if CONCEPTS[c](r)):
        a, b = read(r), clips.oracle_clip(r, data_cfg, fonts, c, held)
        if a is None or b is None:
            continue
        b = resample(b, data_cfg.sample_rate, model.sr)[: len(a)]
        za, zb = (activations_of(model, x, ["latent"], offline_block(model.ratio), streams)["latent"] for x in (a, b))
        m = min(len(za), len(zb))
        with_c.append(za[:m])
        without_c.append(zb[:m])
    Zw, Zo = torch.cat(with_c).double(), torch.cat(without_c).double()
    with torch.no_grad():
        Fw, Fo = sae.encode(Zw.float()).double(), sae.encode(Zo.float()).double()
    mw, mo = Fw.mean(0), Fo.mean(0)
    var, cov = ((Fw - mw) ** 2).mean(0), ((Fw - mw) * (Fo - mo)).mean(0)
    gain = torch.where(var > 1e-9, cov / var.clamp_min(1e-9), torch.zeros_like(var))
    affine = Edit.from_dense(gain.float(), (mo - gain * mw).float())
    A = torch.linalg.lstsq(torch.cat([Zw, torch.ones(len(Zw), 1, dtype=Zw.dtype)], 1), Zo).solution
    print(f"{c}: {len(with_c)} train pairs, {len(Zw)} latent frames; SAE {sae.W_dec.shape[0]} features")

    train_clips = [(a, r) for r in train if (a := read(r)) is not None]
    judge = Judge.fit([a for a, _ in train_clips], [r for _, r in train_clips], names, model.sr)
    split = HOLDOUT_SPLIT if any(r["split"] == HOLDOUT_SPLIT for r in rows) else "test"
    held_out = [a for r in rows if r["split"] == split and CONCEPTS[c](r) and (a := read(r)) is not None]
    held_out = held_out[: args.max_clips]
    edits = {
        "plain": lambda a, i: render_array(stream, a, None, None, None, delay, i),
        "bank off": lambda a, i: render_array(
            stream, a, sae, steering.edit_for([(c, "off")]), None, delay, i, hook=steering.hook
        ),
        "SAE affine (learned)": lambda a, i: render_array(
            stream, a, sae, affine, None, delay, i, hook=steering.hook, gate=Gate(enabled=False)
        ),
        "raw linear (learned)": lambda a, i: render_linear(stream, a, A, delay, i),
    }
    heard = {k: judge.detect([f(a, i) for i, a in enumerate(held_out)]) for k, f in edits.items()}
    plain, base = heard.pop("plain"), None
    print(f"{len(held_out)} {split} clips with {c}; {c} heard in {100 * plain[c].mean():.0f} % of the plain renders")
    for k, h in heard.items():
        drop = paired_diff(h[c], plain[c])  # the plain renders' rate minus the edited ones'
        drift = {o: paired_diff(plain[o], h[o]) for o in names if o != c}
        worst = max(drift, key=lambda o: abs(drift[o].value), default=None)
        vs = "" if base is None else f"; drop vs bank off {fmt(paired_diff(h[c], base[c]))}"
        print(f"  {k}: drop {fmt(drop)}; worst drift {worst} {fmt(drift[worst]) if worst else '-'}{vs}")
        base = h if base is None else base
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
