"""Train the demo MusicGen's language model on the codes of the training clips, with label descriptions.

The codec of a finished `train_codec` run encodes every training clip once (its state is copied into the LM
run, so the package always pairs the LM with the codec it learned from). Each step takes random clips,
gives each a random description of its labels (`descriptions.py`: phrases dropped at random, the null
description for classifier-free guidance, the `unknown` description) and minimises the cross-entropy of
audiocraft's `LMModel.compute_predictions` over the delay pattern. The description lookup-table rows are
kept at unit RMS after every step, so the transformers conversion (a T5 encoder without layers, whose final
RMS norm is then the identity) gives the same conditioning. Resumable (see `runs.py`).

    python -m training.musicgen.train_lm --data DATA1 --data DATA2 --codec-run CODEC_RUN --run RUN --steps N

Every `--eval-every` steps it logs the held-out (test split) cross-entropy with each clip's full
description, with another clip's and with the null one, over the whole segment and over its first frames
(where the text is all the model knows): their differences are what the text tells the model.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.musicgen.base import sha256_tensors
from realtime.musicgen.descriptions import DescriptionVocab
from sae.atomic import atomic_torch_save
from sae.errors import UserError
from sae.io import read_torch
from sae.paths import check_output_dir
from sae.seeds import seeded
from sae.streams import RandomStreams
from sae.train import set_train_threads
from training.cli.args import Parser, integer, nonneg_int, number, positive_float, positive_int
from training.musicgen import runs
from training.musicgen.arch import CodecSizes, LMSizes, build_codec, build_lm, sizes_dict
from training.musicgen.clips import ClipSet, load_clips
from training.musicgen.descriptions import UNKNOWN, DescriptionDropout, assign_surfaces, reachable

CODEC_FILE = "codec.pt"
CODES_FILE = "codes.pt"
VOCAB_FILE = "descriptions.json"
HEAD_FRAMES = 10  # the opening frames, where the held-out CE shows most clearly whether the text is used


@dataclass
class LMTrainConfig:
    """Args:
    data: `musicsae data make` folders (train split trains, test split evaluates).
    codec_run: a `train_codec` run folder (its codec is copied into this run at the start; on resume it
        must still hold that codec, or be None).
    run: run folder (created, or resumed when it exists).
    sizes: the LM's sizes (part of the run's identity).
    dropout: how descriptions are dropped (part of the run's identity).
    steps: total steps (the cosine learning-rate schedule spans them); minutes: wall budget of this call.
    batch: clips per step; lr: peak AdamW learning rate after `warmup` steps.
    opening_weight: weight of a segment's first `HEAD_FRAMES` frames in the loss (1: plain mean). The text is
        all the LM knows there, so a larger weight asks it to learn what the text says (part of the identity).
    """

    data: list[str]
    codec_run: Path | None
    run: Path
    sizes: LMSizes = field(default_factory=LMSizes)
    dropout: DescriptionDropout = field(default_factory=DescriptionDropout)
    steps: int = 10000
    minutes: float | None = None
    batch: int = 16
    lr: float = 1e-3
    warmup: int = 200
    seed: int = 0
    checkpoint_every: int = 250
    eval_every: int = 250
    log_every: int = 25
    device: str = "cpu"
    opening_weight: float = 1.0


@torch.no_grad()
def encode_clips(codec, clips: ClipSet, device: str, batch: int = 16) -> torch.Tensor:
    """Codes [clips, K, T] (int16) of every clip (all clips cut to the shortest one)."""
    n = min(len(a) for a in clips.audio)
    out = []
    for i in range(0, len(clips.audio), batch):
        x = torch.from_numpy(np.stack([clips.segment(j, 0, n) for j in range(i, min(i + batch, len(clips.audio)))]))
        codes, _ = codec.encode(x[:, None].to(device))
        out.append(codes.cpu().to(torch.int16))
    return torch.cat(out)


def normalise_lut(lm) -> None:
    """Scale every description row to unit RMS (in place)."""
    w = lm.condition_provider.conditioners["description"].embed.weight
    with torch.no_grad():
        w.div_(w.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-8))


def predictions(lm, codes: torch.Tensor, texts: list[str | None]):
    """audiocraft's `LMOutput` (logits [B, K, T, card], mask [B, K, T]) of `codes` [B, K, T] with one
    description per clip (None: the null description): one forward pass."""
    from audiocraft.modules.conditioners import ConditioningAttributes

    conditions = [ConditioningAttributes(text={"description": t}) for t in texts]
    return lm.compute_predictions(codes, conditions)


def prediction_ce(out, codes: torch.Tensor, head: int | None = None, opening_weight: float = 1.0) -> torch.Tensor:
    """Mean over codebooks of the cross-entropy of `predictions` at the valid delay-pattern positions: the first
    `head` frames only, when given (where the text is all the LM knows of the clip); the first `HEAD_FRAMES`
    weighted `opening_weight` times the others (a weighted mean)."""
    logits, mask = out.logits[..., :head, :], out.mask[..., :head]
    weight = torch.ones(mask.shape[-1], device=logits.device)
    weight[:HEAD_FRAMES] = opening_weight
    per_k = []
    for k in range(codes.shape[1]):
        m = mask[:, k]
        ce = torch.nn.functional.cross_entropy(logits[:, k][m], codes[:, k, :head][m], reduction="none")
        w = weight.expand_as(m)[m]
        per_k.append((ce * w).sum() / w.sum())
    return torch.stack(per_k).mean()


def lm_loss(
    lm, codes: torch.Tensor, texts: list[str | None], head: int | None = None, opening_weight: float = 1.0
) -> torch.Tensor:
    """`prediction_ce` of one forward pass (the training loss)."""
    return prediction_ce(predictions(lm, codes, texts), codes, head, opening_weight)


def learning_rate(cfg: LMTrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def frames(sizes: LMSizes, codec: CodecSizes) -> int:
    return round(sizes.segment * codec.frame_rate)


def check_segment(sizes: LMSizes, codec: CodecSizes) -> None:
    """A segment of fewer frames than codebooks was an IndexError after every clip was encoded (0 frames), or a
    loss of 0/0 read as divergence ("lower --lr", at any rate): codebook k is first predicted at frame k."""
    if frames(sizes, codec) < codec.n_q:
        raise UserError(f"--segment {sizes.segment:g}: expected at least {codec.n_q} frames "
                        f"({codec.n_q / codec.frame_rate:g} s at {codec.frame_rate:g} Hz): codebook k is first "
                        "predicted at frame k")  # fmt: skip


def codec_snapshot(cfg: LMTrainConfig) -> dict:
    """The codec this LM run learns from: copied from `--codec-run` at the start, checked on resume."""
    from training.musicgen.train_codec import load_trained_codec

    path = cfg.run / CODEC_FILE
    if cfg.codec_run is None and not path.exists():
        if (cfg.run / runs.STATE_FILE).exists():
            raise UserError(f"--run {cfg.run}: {CODEC_FILE} is missing beside its checkpoint; give --codec-run with "
                            "the train_codec run this LM run started from")  # fmt: skip
        raise UserError(f"--codec-run: needed to start the LM run {cfg.run} (a train_codec run folder)")
    current = None
    if cfg.codec_run is not None and ((cfg.codec_run / runs.STATE_FILE).is_file() or not path.exists()):
        codec, sizes, progress = load_trained_codec(cfg.codec_run, "cpu")
        check_segment(cfg.sizes, sizes)  # before the run folder holds anything
        current = {"sizes": sizes_dict(sizes), "model": codec.state_dict(), "progress": progress}
        current["sha256"] = sha256_tensors(codec)
    if path.exists():
        snap = read_torch(path)
        unstarted = not (cfg.run / runs.STATE_FILE).exists()  # nothing trained on it yet: take the new codec
        if current is not None and current["sha256"] != snap["sha256"] and not unstarted:
            raise UserError(
                f"--codec-run {cfg.codec_run}: its codec is not the one this LM run started from "
                f"(codec.sha256: {snap['sha256'][:12]}… → {current['sha256'][:12]}…); use a new --run folder"
            )
        if current is None or current["sha256"] == snap["sha256"]:
            return snap
    cfg.run.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(current, path)
    return current


def codec_sizes_of(snap: dict) -> CodecSizes:
    return CodecSizes(**{k: tuple(v) if isinstance(v, list) else v for k, v in snap["sizes"].items()})


def identity(cfg: LMTrainConfig, snap: dict, clips: ClipSet) -> dict:
    """What an LM run is (run.json): checked on resume, and what a resume takes where options are not given."""
    ident = {
        "kind": "lm",
        "sizes": sizes_dict(cfg.sizes),
        "dropout": cfg.dropout.identity(),
        "codec": {"sha256": snap["sha256"], "sizes": snap["sizes"]},
        "data": clips.identity,
        "seed": cfg.seed,
        "training": {"lr": cfg.lr, "batch": cfg.batch, "warmup": cfg.warmup},
    }
    if cfg.opening_weight != 1.0:  # recorded only when set, so older runs still resume
        ident["opening_weight"] = cfg.opening_weight
    return ident


def prepare(cfg: LMTrainConfig, say) -> tuple[dict, bool]:
    """Codec snapshot, clips, run identity (checked on resume), codes of every clip, descriptions."""
    snap = codec_snapshot(cfg)
    codec_sizes = codec_sizes_of(snap)
    check_segment(cfg.sizes, codec_sizes)  # a resumed run's codec too
    clips = load_clips(cfg.data, codec_sizes.sample_rate, ("train",))
    held = load_clips(cfg.data, codec_sizes.sample_rate, ("test",))
    for line in clips.notes:
        say(line)
    resuming = runs.open_run(cfg.run, identity(cfg, snap, clips), derived=(CODES_FILE, VOCAB_FILE))
    keys = reachable(clips.rows, cfg.dropout.max_phrases)
    surfaces = assign_surfaces(keys, cfg.sizes.lut_bins)
    if not (cfg.run / CODES_FILE).exists():
        codec = build_codec(codec_sizes, 0, cfg.device)
        codec.load_state_dict(snap["model"])
        codec.eval()
        say(f"encoding {len(clips.rows)} training and {len(held.rows)} held-out clips")
        codes = {"train": encode_clips(codec, clips, cfg.device), "test": encode_clips(codec, held, cfg.device)}
        atomic_torch_save(codes, cfg.run / CODES_FILE)
    vocab = DescriptionVocab({surfaces[k]: n for k, n in keys.items()} | {UNKNOWN: 0}, UNKNOWN)
    vocab.save(cfg.run)
    codes = read_torch(cfg.run / CODES_FILE, weights_only=True)
    prep = {"codes": codes, "surfaces": surfaces, "codec_sizes": codec_sizes, "clips": clips, "held": held}
    return prep, resuming


def train_lm(cfg: LMTrainConfig, say=print) -> dict:
    """Train (or resume) an LM run; returns the last progress record."""
    if cfg.steps < 1 or cfg.batch < 1:
        raise UserError("--steps and --batch must be >= 1")
    check_output_dir(cfg.run, "--run")
    with runs.sole_run(cfg.run, "lm"):
        _train_lm(cfg, say)
    return runs.read_json(cfg.run / runs.PROGRESS_FILE)


def _train_lm(cfg: LMTrainConfig, say) -> None:
    """`train_lm` holding the run folder."""
    set_train_threads()
    prep, resuming = prepare(cfg, say)
    clips, held = prep["clips"], prep["held"]
    codes_train, codes_test = prep["codes"]["train"], prep["codes"]["test"]
    T = frames(cfg.sizes, prep["codec_sizes"])
    if codes_train.shape[-1] < T:
        raise UserError(
            f"--segment {cfg.sizes.segment:g}: the clips are only {codes_train.shape[-1]} frames long "
            f"({codes_train.shape[-1] / prep['codec_sizes'].frame_rate:g} s)"
        )
    lm = build_lm(cfg.sizes, prep["codec_sizes"], cfg.seed, cfg.device).train()
    lm.cfg_dropout.p = 0.0  # the null description is drawn per clip by DescriptionDropout instead
    normalise_lut(lm)
    opt = torch.optim.AdamW(lm.parameters(), cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    start = runs.resume(cfg, lm, opt, resuming, say, schedule=True)
    rng = seeded(cfg.seed, start.step)
    streams = RandomStreams(rng)
    streams.restore(start.rng)  # a resumed run draws on as if it had not stopped
    surfaces = prep["surfaces"]
    eval_codes, eval_rows = eval_set(codes_test, held.rows, T, 32)

    def train_step(step: int) -> dict | None:
        idx = rng.integers(len(clips.rows), size=cfg.batch)
        offsets = rng.integers(0, codes_train.shape[-1] - T + 1, size=cfg.batch)
        codes = torch.stack([codes_train[i, :, s : s + T] for i, s in zip(idx, offsets, strict=True)]).long()
        keys = [cfg.dropout.sample(clips.rows[i], rng) for i in idx]
        texts = [None if k is None else surfaces[k] for k in keys]
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss = lm_loss(lm, codes.to(cfg.device), texts, opening_weight=cfg.opening_weight)
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return None
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        normalise_lut(lm)
        return {"ce": loss.detach(), "lr": learning_rate(cfg, step)}

    runs.train_loop(
        cfg,
        lm,
        opt,
        start,
        train_step,
        lambda: evaluate(lm, eval_codes, eval_rows, surfaces, cfg.dropout),
        lambda step, last: (
            f"step {step}: held-out CE {last['eval_ce_text']:.3f} with its text, {last['eval_ce_other']:.3f} with "
            f"another clip's, {last['eval_ce_null']:.3f} without; first {HEAD_FRAMES} frames "
            f"{last['eval_ce_head_text']:.3f} / {last['eval_ce_head_other']:.3f} / {last['eval_ce_head_null']:.3f}"
        ),
        {"train_clips": len(clips.rows)},
        say,
        streams,
    )


def eval_set(codes: torch.Tensor, rows: list[dict], frames: int, n: int) -> tuple[torch.Tensor, list[dict]]:
    """Up to `n` held-out clips spread evenly over the test split (the same ones every time): their codes' first
    `frames` frames and their manifest rows, as `evaluate` takes them."""
    idx = np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)
    return codes[idx, :, :frames].long(), [rows[i] for i in idx]


@torch.no_grad()
def evaluate(lm, codes: torch.Tensor, rows: list[dict], surfaces: dict, dropout: DescriptionDropout) -> dict:
    """Held-out cross-entropy with each clip's fullest description, with another clip's (the rows rotated by half:
    if it is no higher than with the clip's own, the LM does not use its text) and with the null description, over
    the whole segment and its first `HEAD_FRAMES` frames (both from one forward pass per description set)."""
    lm.eval()
    device = next(lm.parameters()).device
    full = [surfaces.get(dropout.describe(r)) for r in rows]
    texts = [t if t is not None else surfaces[frozenset({UNKNOWN})] for t in full]
    other = texts[len(texts) // 2 :] + texts[: len(texts) // 2]
    codes = codes.to(device)
    ce = {}
    for name, t in (("text", texts), ("other", other), ("null", [None] * len(rows))):
        out = predictions(lm, codes, t)  # one forward pass gives both figures
        ce[name] = float(prediction_ce(out, codes))
        ce[f"head_{name}"] = float(prediction_ce(out, codes, head=HEAD_FRAMES))
    lm.train()
    return {f"eval_ce_{k}": round(v, 4) for k, v in ce.items()}


def load_lm_run(run_dir: Path, device: str = "cpu") -> dict:
    """Everything `package.py` needs from an LM run: the LM, its codec, sizes, vocabulary and records."""
    hint = " (train it with python -m training.musicgen.train_lm)"
    ident = runs.require(run_dir, runs.STATE_FILE, CODEC_FILE, VOCAB_FILE, hint=hint, kind="lm")
    codec_pkg = read_torch(run_dir / CODEC_FILE, device)
    codec_sizes = codec_sizes_of(codec_pkg)
    sizes = LMSizes(**ident["sizes"])
    state = runs.load_state(run_dir, device)
    vocab = DescriptionVocab.load(run_dir)
    return {
        "lm_state": state["model"],
        "lm_sizes": sizes,
        "codec_state": codec_pkg["model"],
        "codec_sizes": codec_sizes,
        "vocab": vocab,
        "record": {
            "lm": {
                "step": state["step"],
                "target": state.get("target"),
                "cpu_hours": round(state["cpu_seconds"] / 3600, 3),
                "run": ident,
            },
            "codec": {k: v for k, v in codec_pkg["progress"].items()},
        },
    }


def build_parser() -> Parser:
    """The recipe's command line."""
    d, dd = LMSizes(), DescriptionDropout()
    parser = Parser(prog="python -m training.musicgen.train_lm", description=__doc__.split("\n")[0])
    runs.add_loop_args(parser, batch=16, lr=1e-3)
    parser.add_argument("--codec-run", type=Path, help="a train_codec run folder (optional when resuming)")
    parser.add_argument("--warmup", type=nonneg_int, default=200)
    parser.add_argument("--dim", type=integer, default=d.dim)
    parser.add_argument("--heads", type=integer, default=d.num_heads)
    parser.add_argument("--layers", type=integer, default=d.num_layers)
    parser.add_argument("--lut-bins", type=positive_int, default=d.lut_bins)
    parser.add_argument("--lut-dim", type=positive_int, default=d.lut_dim, help="text embedding size")
    parser.add_argument("--segment", type=positive_float, default=d.segment, help="training segment in seconds")
    parser.add_argument("--p-keep", type=number, default=dd.p_keep, help="probability of keeping each phrase")
    parser.add_argument("--p-null", type=number, default=dd.p_null, help="probability of the null description")
    parser.add_argument(
        "--opening-weight",
        type=number,
        default=1.0,
        help=f"loss weight of a segment's first {HEAD_FRAMES} frames, where the text is all the LM knows",
    )
    parser.add_argument(
        "--max-phrases",
        type=integer,
        default=None,
        help="descriptions of 1..N phrases (count uniform) instead of each phrase kept with --p-keep",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    return runs.main_resumable(build_parser(), argv, "lm", recorded_args, lambda a: train_lm(config_from_args(a)))


def recorded_args(ident: dict) -> dict[str, Any]:
    """The options an LM run's identity records (a resume takes them where not given)."""
    sizes, dropout, training = runs.recorded_sections(ident, "sizes", "dropout", "training")
    names = {"dim": "--dim", "num_heads": "--heads", "num_layers": "--layers", "lut_bins": "--lut-bins",
             "lut_dim": "--lut-dim", "segment": "--segment"}  # fmt: skip
    return {
        **{option: sizes.get(key) for key, option in names.items()},
        "--p-keep": dropout.get("p_keep"),
        "--p-null": dropout.get("p_null"),
        "--max-phrases": dropout.get("max_phrases"),
        **{f"--{key}": training.get(key) for key in ("lr", "batch", "warmup")},
        "--opening-weight": ident.get("opening_weight"),
        "--seed": ident.get("seed"),
    }


def config_from_args(args: argparse.Namespace) -> LMTrainConfig:
    if args.dim < 1 or args.heads < 1 or args.dim % args.heads or args.layers < 1:
        raise UserError(
            f"--dim {args.dim} --heads {args.heads} --layers {args.layers}: expected sizes >= 1, dim divisible by heads"
        )
    if args.lut_dim == args.dim:
        raise UserError(f"--lut-dim {args.lut_dim}: must differ from --dim (the transformers conversion needs it)")
    if not (0 < args.p_keep <= 1 and 0 <= args.p_null < 1):
        raise UserError(f"--p-keep {args.p_keep} --p-null {args.p_null}: expected 0 < p-keep <= 1, 0 <= p-null < 1")
    if not 0 < args.opening_weight < math.inf:  # inf made every loss NaN: "the training diverged; lower --lr"
        raise UserError(f"--opening-weight {args.opening_weight}: expected a positive weight")
    if args.max_phrases is not None and args.max_phrases < 1:
        raise UserError(f"--max-phrases {args.max_phrases}: expected at least 1")
    sizes = LMSizes(
        dim=args.dim,
        num_heads=args.heads,
        num_layers=args.layers,
        lut_bins=args.lut_bins,
        lut_dim=args.lut_dim,
        segment=args.segment,
        cfg_dropout=args.p_null,
    )
    return LMTrainConfig(
        **runs.loop_kwargs(args),
        codec_run=args.codec_run,
        sizes=sizes,
        dropout=DescriptionDropout(p_keep=args.p_keep, p_null=args.p_null, max_phrases=args.max_phrases),
        warmup=args.warmup,
        opening_weight=args.opening_weight,
    )


if __name__ == "__main__":
    raise SystemExit(main())
