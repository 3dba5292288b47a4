"""Benchmark: an `off` learned from counterfactual pairs vs the bank's `off`, judged on held-out clips.

The concept data's generator can render every clip again without the concept (`concept_clips.oracle_clip`: the
same MIDI without its part; a solo of the concept is silence). From the train split's pairs (clip with the concept,
the same clip without it) this fits two edits of the model's latent frames, each applied to every frame:

- **SAE affine**: per SAE feature, f' = g·f + a by least squares (the bank's SAE; the SAE's error term kept), an
  edit in the format `sae.steering.Edit` already carries;
- **raw linear**: z' = A·z + b on the raw latent, by least squares (the baseline that needs no SAE);
- **bank off + alone → silence**: the bank's `off`, and on frames where the concept plays alone the model's latent
  of silence. Whether it plays alone is a logistic regression on a causal context of the SAE features (their
  log1p, averaged with a `--context` seconds exponential memory, so it runs live too), fitted on the train pairs'
  frames (target: the frame is silent once the concept is removed), its regularisation and threshold chosen on the
  test split's pairs (AUROC, then Youden's J). The fixed edits above are one map for every frame: a drum solo's
  hits keep their level and come out as another instrument.

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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch import Tensor

from realtime.audio_files import AudioNotes, read_mono, resample
from realtime.rave import RaveModel
from realtime.render_rave import RaveStream, load_steering, model_delay, offline_block, render_array
from sae.stats import Interval, paired_diff
from sae.steering import Edit, Gate, apply_edit
from training.data import concept_clips as clips
from training.data.concept_clips import CONCEPTS, HOLDOUT_SPLIT, solo_of
from training.judge import Judge, moved_clips
from training.rave.collect import activations_of


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


ALONE_DB = -50.0  # a frame quieter than this is silent (of the pairs' audio)


def sae_edit(sae, edit: Edit) -> Callable[[Tensor], Tensor]:
    """z' = the SAE edit of z, its error term kept."""
    return lambda z: apply_edit(z.float(), sae, edit)


def frame_db(audio: np.ndarray, frames: int, ratio: int) -> np.ndarray:
    """Level of each latent frame's samples, dBFS."""
    x = np.pad(audio, (0, max(0, frames * ratio - len(audio))))[: frames * ratio].reshape(frames, ratio)
    return 10 * np.log10((x.astype(np.float64) ** 2).mean(1) + 1e-12)


class Context:
    """Causal exponential mean of log1p(SAE features) over latent frames (`alpha` per frame)."""

    def __init__(self, alpha: float):
        self.alpha, self.state = alpha, None

    def __call__(self, f: Tensor) -> Tensor:
        x, out = torch.log1p(f.double().clamp_min(0)), torch.empty(f.shape, dtype=torch.float64)
        m = torch.zeros(f.shape[1], dtype=torch.float64) if self.state is None else self.state
        for t in range(len(x)):
            m = m + self.alpha * (x[t] - m)
            out[t] = m
        self.state = m
        return out


class AloneOff:
    """An `off` (`edit`: latent rows → latent rows), and the model's latent of silence on frames whose context of
    SAE features says the concept plays alone (a logistic regression's probability above `theta`). Stateful: one
    instance per clip."""

    def __init__(self, sae, edit: Callable[[Tensor], Tensor], clf, theta: float, silence: Tensor, alpha: float):
        self.sae, self.edit, self.clf, self.theta, self.silence = sae, edit, clf, theta, silence
        self.context = Context(alpha)
        self.alone = self.frames = 0

    def __call__(self, z: Tensor) -> Tensor:
        with torch.no_grad():
            p = self.clf.predict_proba(self.context(self.sae.encode(z.float())).numpy())[:, 1]
        alone = torch.from_numpy(p > self.theta).unsqueeze(1)
        self.alone, self.frames = self.alone + int(alone.sum()), self.frames + len(z)
        return torch.where(alone, self.silence.to(z.dtype), self.edit(z).to(z.dtype))


def fit_alone(X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray):
    """A logistic regression of "the concept plays alone" on context rows: the regularisation with the best
    validation AUROC, the threshold with the best Youden's J there (C 0.1 and 0.5 when the validation frames are
    all of one kind). Returns (model, threshold, what was chosen), or (None, 0, why not)."""
    if not 0 < y.sum() < len(y):
        return None, 0.0, "not fitted (the train frames are all of one kind)"
    fits = {C: LogisticRegression(C=C, max_iter=3000).fit(X, y) for C in (0.01, 0.1, 1.0)}
    if not 0 < yv.sum() < len(yv):
        return fits[0.1], 0.5, f"{y.sum()} of {len(y)} train frames alone; C 0.1, threshold 0.5 (no validation)"
    auc = {C: roc_auc_score(yv, m.predict_proba(Xv)[:, 1]) for C, m in fits.items()}
    C = max(auc, key=auc.get)
    pv = fits[C].predict_proba(Xv)[:, 1]
    theta = float(max(np.unique(pv), key=lambda t: (pv[yv] >= t).mean() - (pv[~yv] >= t).mean())) - 1e-12
    hit, false = (100 * (pv[m] > theta).mean() for m in (yv, ~yv))
    return (
        fits[C],
        theta,
        f"{y.sum()} of {len(y)} train frames alone; validation {yv.sum()} of {len(yv)}, AUROC {auc[C]:.3f} at C {C:g}, "
        f"threshold {theta:.3f}: {hit:.0f} % of alone frames, {false:.0f} % of the rest",
    )


def report(
    audio: list[np.ndarray],
    rows: list[dict],
    edits: dict,
    judge: Judge,
    names: list[str],
    c: str,
    gates: dict,
    what: str,
) -> None:
    """Judge every edit's renders of `audio` against the plain ones: the concept's drop (on clips with it) and every
    other concept's drift, with the clips behind the worst drift and the drift on the clips that are not solos."""
    heard = {k: judge.detect([f(a, i) for i, a in enumerate(audio)]) for k, f in edits.items()}
    plain, base, solo = heard.pop("plain"), None, np.array([solo_of(r, c) for r in rows], bool)
    print(f"{len(audio)} {what}; {c} heard in {100 * plain[c].mean():.0f} % of the plain renders")
    for arm, gs in gates.items():
        frames = np.array([(g.alone, g.frames) for g in gs], float)
        share = [100 * frames[m, 0].sum() / max(1.0, frames[m, 1].sum()) for m in (solo, ~solo)]
        print(f"  {arm}: silence on {share[0]:.0f} % of {c} solos' frames, {share[1]:.0f} % of the others'")
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a `data make` folder (made if absent)")
    ap.add_argument("--n", type=int, default=300, help="clips, when DATA is made (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="data seed, when DATA is made (default 0)")
    ap.add_argument("--holdout-font", default="fluidr3", help="the font held out, when DATA is made")
    ap.add_argument("--model", default="training/assets/demo_rave.ts", help="streaming RAVE .ts")
    ap.add_argument("--bank", default="training/assets/demo_concepts.yaml", help="concept bank on that model")
    ap.add_argument("--concept", default="drums", help="the concept switched off")
    ap.add_argument("--max-clips", type=int, default=24, help="held-out clips with the concept (default 24)")
    ap.add_argument("--context", type=float, default=2.0, help="the alone detector's memory, seconds (default 2)")
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

    split = HOLDOUT_SPLIT if any(r["split"] == HOLDOUT_SPLIT for r in rows) else "test"

    def read(r: dict) -> np.ndarray | None:
        return read_mono(args.data / r["file"], model.sr, notes, min_samples=model.ratio)

    def latent_of(x: np.ndarray) -> Tensor:
        return activations_of(model, x, ["latent"], offline_block(model.ratio), streams)["latent"]

    levels: dict[str, tuple[Tensor, np.ndarray] | None] = {}

    def latent_db(r: dict) -> tuple[Tensor, np.ndarray] | None:
        """A clip's latent rows and each frame's level (cached)."""
        if r["file"] not in levels:
            a = read(r)
            z = None if a is None else latent_of(a)
            levels[r["file"]] = None if a is None else (z, frame_db(a, len(z), model.ratio))
        return levels[r["file"]]

    def pairs(of: list[dict]) -> dict[str, tuple[Tensor, Tensor, np.ndarray, np.ndarray]]:
        """Per clip with the concept: latent rows with it and without it and each frame's level, by file."""
        out = {}
        for r in of:
            if not CONCEPTS[c](r) or (zd := latent_db(r)) is None:
                continue
            b = clips.oracle_clip(r, data_cfg, fonts, c, held)
            if b is None:
                continue
            b = resample(b, data_cfg.sample_rate, model.sr)
            zb = latent_of(b)
            m = min(len(zd[0]), len(zb))
            out[r["file"]] = (zd[0][:m], zb[:m], zd[1][:m], frame_db(b, m, model.ratio))
        return out

    train = [r for r in rows if r["split"] == "train"]
    train_pairs = pairs(train)
    Zw, Zo = (torch.cat([p[i] for p in train_pairs.values()]).double() for i in (0, 1))
    with torch.no_grad():
        Fw, Fo = sae.encode(Zw.float()).double(), sae.encode(Zo.float()).double()
    mw, mo = Fw.mean(0), Fo.mean(0)
    var, cov = ((Fw - mw) ** 2).mean(0), ((Fw - mw) * (Fo - mo)).mean(0)
    gain = torch.where(var > 1e-9, cov / var.clamp_min(1e-9), torch.zeros_like(var))
    affine = Edit.from_dense(gain.float(), (mo - gain * mw).float())
    A = torch.linalg.lstsq(torch.cat([Zw, torch.ones(len(Zw), 1, dtype=Zw.dtype)], 1), Zo).solution
    print(f"{c}: {len(train_pairs)} train pairs, {len(Zw)} latent frames; SAE {sae.W_dec.shape[0]} features")

    alpha = 1 - float(np.exp(-model.ratio / (args.context * model.sr)))
    off = steering.edit_for([(c, "off")])
    silence = latent_of(np.zeros(2 * model.sr, np.float32))[-1]  # the model's latent of silence, once settled
    # the detector is fitted on train clips and chosen on the test split's (every 4th train clip without a held font)
    val_rows = [r for r in rows if r["split"] == "test"] if split == HOLDOUT_SPLIT else train[3::4]
    fit_rows = train if split == HOLDOUT_SPLIT else [r for i, r in enumerate(train) if i % 4 != 3]
    val_pairs = pairs(val_rows)

    def alone_rows(of: list[dict], target: str) -> tuple[np.ndarray, np.ndarray]:
        """Context rows of the frames with sound of the clips `of` and whether the concept plays alone there:
        `pairs`: the frame is silent once the concept is removed (`oracle_clip`); `solos`: the clip is a solo of
        the concept (what a folder of solos gives). Clips without the concept: never."""
        X, y, known = [], [], train_pairs | val_pairs
        for r in of:
            if (zd := latent_db(r)) is None or (target == "pairs" and CONCEPTS[c](r) and r["file"] not in known):
                continue
            z, da = zd
            with torch.no_grad():
                X.append(Context(alpha)(sae.encode(z.float())).numpy()[da > ALONE_DB])
            if not CONCEPTS[c](r):
                y.append(np.zeros(len(X[-1]), bool))
            elif target == "solos":
                y.append(np.full(len(X[-1]), solo_of(r, c)))
            else:
                y.append(known[r["file"]][3][da[: len(known[r["file"]][3])] > ALONE_DB] < ALONE_DB)
                X[-1] = X[-1][: len(y[-1])]
        return np.concatenate(X), np.concatenate(y)

    detectors = {}
    for target in ("pairs", "solos"):
        detectors[target] = fit_alone(*alone_rows(fit_rows, target), *alone_rows(val_rows, target))
        print(f"alone detector ({target}): {detectors[target][2]}")

    train_clips = [(a, r) for r in train if (a := read(r)) is not None]
    judge = Judge.fit([a for a, _ in train_clips], [r for _, r in train_clips], names, model.sr)
    held_rows = [(a, r) for r in rows if r["split"] == split and CONCEPTS[c](r) and (a := read(r)) is not None]
    held_out, held_rows = [a for a, _ in held_rows][: args.max_clips], [r for _, r in held_rows][: args.max_clips]
    edits = {
        "plain": lambda a, i: render_array(stream, a, None, None, None, delay, i),
        "bank off": lambda a, i: render_array(
            stream, a, sae, steering.edit_for([(c, "off")]), None, delay, i, hook=steering.hook
        ),
        "SAE affine (learned)": lambda a, i: render_array(
            stream, a, sae, affine, None, delay, i, hook=steering.hook, gate=Gate(enabled=False)
        ),
        "raw linear (learned)": lambda a, i: render_mapped(stream, a, linear(A), delay, i),
    }
    gates: dict[str, list[AloneOff]] = {}  # per arm with a detector: one per clip rendered, in order
    for target, (clf, theta, _) in detectors.items():
        for name, edit in (
            ("bank off", sae_edit(sae, off)),
            ("SAE affine", sae_edit(sae, affine)),
            ("raw linear", linear(A)),
        ):
            if clf is None or (name != "bank off" and target != "pairs"):
                continue
            arm = f"{name} + alone -> silence ({target})"
            gates[arm] = []

            def alone_off(a: np.ndarray, i: int, clf=clf, theta=theta, edit=edit, out=gates[arm]) -> np.ndarray:
                out.append(AloneOff(sae, edit, clf, theta, silence, alpha))
                return render_mapped(stream, a, out[-1], delay, i)

            edits[arm] = alone_off
    report(held_out, held_rows, edits, judge, names, c, gates, f"{split} clips with {c}")
    # an edit of a concept should leave clips without it alone: the same edits on the held-out clips without it
    without = [(a, r) for r in rows if r["split"] == split and not CONCEPTS[c](r) and (a := read(r)) is not None]
    for g in gates.values():
        g.clear()
    without = without[: args.max_clips]
    report(
        [a for a, _ in without], [r for _, r in without], edits, judge, names, c, gates, f"{split} clips without {c}"
    )
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
