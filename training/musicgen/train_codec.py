"""Train the demo MusicGen's compression model: audiocraft's EnCodec (SEANet + RVQ) for reconstruction.

A plain loop over the model audiocraft's builders make from `CodecSizes` (so `package.py` can write it as
`compression_state_dict.bin`): random segments of the training clips, loss = multi-scale mel distance +
0.1 · waveform L1 + the quantizer's commitment penalty; codebooks follow audiocraft's EMA updates with
dead-code replacement. No adversarial losses. Resumable (see `runs.py`); `--device cuda` trains on a GPU.

    python -m training.musicgen.train_codec --data DATA1 --data DATA2 --run RUN --steps N [--minutes M]

Every `--eval-every` steps it logs the held-out loss on the test split of the same folders.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sae.controls import plain_int
from sae.errors import UserError
from sae.paths import check_output_dir
from sae.seeds import seeded
from sae.streams import RandomStreams
from sae.train import set_train_threads
from training.cli.args import Parser, nonneg_float, nonneg_int, positive_float, positive_int
from training.data.crops import crop_start
from training.musicgen import runs
from training.musicgen.arch import CodecSizes, build_codec, sizes_dict
from training.musicgen.clips import ClipSet, load_clips
from training.musicgen.losses import MultiScaleMel, waveform_l1


@dataclass
class CodecTrainConfig:
    """Args:
    data: `musicsae data make` folders (train split trains, test split evaluates).
    run: run folder (created, or resumed when it exists).
    sizes: the codec's sizes (part of the run's identity).
    steps: stop at this total step count.
    minutes: also stop after this much wall time in this call (None: no limit).
    batch: segments per step; segment: seconds per segment.
    lr: Adam learning rate; seed: weights and data-order seed (the streams are saved with each checkpoint).
    checkpoint_every, eval_every, log_every: in steps.
    device: cpu, cuda, cuda:N.
    """

    data: list[str]
    run: Path
    sizes: CodecSizes = field(default_factory=CodecSizes)
    steps: int = 10000
    minutes: float | None = None
    batch: int = 8
    segment: float = 0.5
    lr: float = 3e-4
    seed: int = 0
    checkpoint_every: int = 250
    eval_every: int = 250
    log_every: int = 25
    device: str = "cpu"


def random_batch(clips: ClipSet, batch: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    out = np.zeros((batch, 1, length), np.float32)
    for b in range(batch):
        i = int(rng.integers(len(clips.audio)))
        start = crop_start(rng, len(clips.audio[i]), length)
        out[b, 0] = clips.segment(i, start, length)
    return torch.from_numpy(out)


def eval_batch(clips: ClipSet, n: int, length: int) -> torch.Tensor:
    """A fixed batch: the middle `length` samples of up to n clips spread over the set."""
    idx = np.linspace(0, len(clips.audio) - 1, min(n, len(clips.audio))).round().astype(int)
    return torch.from_numpy(
        np.stack([clips.segment(i, max(0, (len(clips.audio[i]) - length) // 2), length)[None] for i in idx])
    )


def codebook_usage(codes: torch.Tensor, bins: int) -> list[float]:
    """Perplexity of each codebook's codes [B, K, T] divided by `bins` (1 = all codes equally used)."""
    out = []
    for k in range(codes.shape[1]):
        p = torch.bincount(codes[:, k].reshape(-1), minlength=bins).float()
        p = p / p.sum()
        out.append(float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()) / bins))
    return out


class CodeReviver:
    """Revives dead codes: audiocraft 1.3 replaces expired codes in `embed` only, and the EMA update of the same
    step overwrites `embed` again, so its `threshold_ema_dead_code` never takes effect. After each step, every
    code whose running use count is under `sizes.dead_code` becomes a random input vector of this step (in
    `embed`, `embed_avg` and a count of twice the threshold), so codebooks do not collapse to a few codes."""

    def __init__(self, model, threshold: float, seed: int):
        self.threshold = threshold
        self.gen = torch.Generator().manual_seed(seed)
        self.inputs: dict[int, torch.Tensor] = {}
        self.books = [layer._codebook for layer in model.quantizer.vq.layers]
        for i, book in enumerate(self.books):
            book.register_forward_pre_hook(lambda m, args, i=i: self.inputs.__setitem__(i, args[0].detach()))

    @torch.no_grad()
    def __call__(self) -> int:
        revived = 0
        for i, book in enumerate(self.books):
            dead = book.cluster_size < self.threshold
            n = int(dead.sum())
            if n == 0 or i not in self.inputs:
                continue
            x = self.inputs[i].reshape(-1, book.embed.shape[1])
            pick = torch.randint(0, x.shape[0], (n,), generator=self.gen).to(x.device)
            book.embed[dead] = x[pick]
            book.embed_avg[dead] = x[pick] * (2 * self.threshold)
            book.cluster_size[dead] = 2 * self.threshold
            revived += n
        self.inputs.clear()
        return revived


def identity(cfg: CodecTrainConfig, clips: ClipSet) -> dict:
    training = {"lr": cfg.lr, "batch": cfg.batch, "segment": cfg.segment}
    return {
        "kind": "codec",
        "sizes": sizes_dict(cfg.sizes),
        "data": clips.identity,
        "seed": cfg.seed,
        "training": training,
    }


def train_codec(cfg: CodecTrainConfig, say=print) -> dict:
    """Train (or resume) a codec run; returns the last progress record."""
    if cfg.steps < 1 or cfg.batch < 1:
        raise UserError("--steps and --batch must be >= 1")
    sr, hop = cfg.sizes.sample_rate, cfg.sizes.hop
    if cfg.segment * sr < 4 * hop:
        raise UserError(f"--segment {cfg.segment:g}: expected at least 4 frames ({4 * hop / sr:g} s at --sample-rate "
                        f"{sr}, hop {hop})")  # fmt: skip
    check_output_dir(cfg.run, "--run")
    with runs.sole_run(cfg.run, "codec"):
        _train_codec(cfg, say)
    return runs.read_json(cfg.run / runs.PROGRESS_FILE)


def _train_codec(cfg: CodecTrainConfig, say) -> None:
    """`train_codec` holding the run folder."""
    set_train_threads()
    clips = load_clips(cfg.data, cfg.sizes.sample_rate, ("train",))
    for line in clips.notes:
        say(line)
    held = load_clips(cfg.data, cfg.sizes.sample_rate, ("test",))
    longest = max(len(a) for a in clips.audio)
    if cfg.segment * cfg.sizes.sample_rate > longest:  # segments of mostly zero padding
        seconds = longest / cfg.sizes.sample_rate
        raise UserError(f"--segment {cfg.segment:g}: the training clips are at most {seconds:g} s long")
    resuming = runs.open_run(cfg.run, identity(cfg, clips))
    model = build_codec(cfg.sizes, cfg.seed, cfg.device).train()
    opt = torch.optim.Adam(model.parameters(), cfg.lr, betas=(0.5, 0.9))
    start = runs.resume(cfg, model, opt, resuming, say)
    spec = MultiScaleMel(cfg.sizes.sample_rate).to(cfg.device)
    revive = CodeReviver(model, cfg.sizes.dead_code, cfg.seed + start.step)
    length = round(cfg.segment * cfg.sizes.sample_rate / cfg.sizes.hop) * cfg.sizes.hop
    rng = seeded(cfg.seed, start.step)
    streams = RandomStreams(rng, revive.gen)
    streams.restore(start.rng)  # a resumed run draws on as if it had not stopped
    fixed = eval_batch(held, 16, length).to(cfg.device)

    def train_step(step: int) -> dict | None:
        x = random_batch(clips, cfg.batch, length, rng).to(cfg.device)
        q = model(x)
        terms = {"mel": spec(q.x, x), "l1": waveform_l1(q.x, x), "commit": q.penalty}
        loss = terms["mel"] + 0.1 * terms["l1"] + terms["commit"]
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return None
        loss.backward()
        opt.step()
        return {k: v.detach() for k, v in terms.items()} | {"revived": revive()}

    runs.train_loop(
        cfg,
        model,
        opt,
        start,
        train_step,
        lambda: evaluate(model, spec, fixed, cfg.sizes.bins),
        lambda step, last: f"step {step}: held-out mel {last['eval_mel']:.4f}, code use {last['code_use']}",
        {"train_clips": len(clips.rows)},
        say,
        streams,
    )


@torch.no_grad()
def evaluate(model, spec: MultiScaleMel, x: torch.Tensor, bins: int) -> dict:
    model.eval()
    codes, scale = model.encode(x)
    y = model.decode(codes, scale)[..., : x.shape[-1]]
    model.train()
    return {
        "eval_mel": round(float(spec(y, x)), 5),
        "eval_l1": round(float(waveform_l1(y, x)), 5),
        "code_use": [round(u, 3) for u in codebook_usage(codes, bins)],
    }


def load_trained_codec(run_dir: Path, device: str = "cpu"):
    """(the run's EnCodec in eval mode, its sizes, its progress) from a codec run folder."""
    hint = " (train it with python -m training.musicgen.train_codec)"
    ident = runs.require(run_dir, runs.STATE_FILE, hint=hint, kind="codec")
    sizes = CodecSizes(**{k: tuple(v) if isinstance(v, list) else v for k, v in ident["sizes"].items()})
    model = build_codec(sizes, ident["seed"], device)
    state = runs.load_state(run_dir, device)
    model.load_state_dict(state["model"])
    progress = {"step": state["step"], "target": state.get("target"), "cpu_hours": state["cpu_seconds"] / 3600}
    return model.eval(), sizes, {**progress, "data": ident["data"]}


def add_size_args(parser: argparse.ArgumentParser) -> None:
    d = CodecSizes()
    parser.add_argument("--sample-rate", type=positive_int, default=d.sample_rate)
    parser.add_argument("--ratios", default=",".join(map(str, d.ratios)), help="SEANet ratios, e.g. 8,5,4,2")
    parser.add_argument("--filters", type=positive_int, default=d.n_filters, help="SEANet n_filters")
    parser.add_argument("--latent", type=positive_int, default=d.dimension, help="latent dimension")
    parser.add_argument(
        "--lstm", type=nonneg_int, default=d.lstm, help="LSTM layers (0: none; the transformers conversion needs 1+)"
    )
    parser.add_argument("--n-q", type=positive_int, default=d.n_q, help="codebooks")
    parser.add_argument("--bins", type=positive_int, default=d.bins, help="codebook size")
    parser.add_argument(
        "--dead-code", type=nonneg_float, default=d.dead_code, help="dead-code threshold (uses per step)"
    )


def sizes_from_args(args: argparse.Namespace) -> CodecSizes:
    try:
        ratios = tuple(plain_int(r) for r in args.ratios.split(","))
    except ValueError:
        raise UserError(f"--ratios {args.ratios!r}: expected comma-separated integers") from None
    sizes = CodecSizes(
        sample_rate=args.sample_rate,
        ratios=ratios,
        n_filters=args.filters,
        dimension=args.latent,
        lstm=args.lstm,
        n_q=args.n_q,
        bins=args.bins,
        dead_code=args.dead_code,
    )
    if sizes.bins < 250 or sizes.n_q < 1 or min(ratios) < 1 or sizes.n_filters < 1:
        raise UserError("--bins must be >= 250 (the generators' top-k), --n-q, --filters and --ratios >= 1")
    return sizes


def build_parser() -> Parser:
    """The recipe's command line."""
    parser = Parser(prog="python -m training.musicgen.train_codec", description=__doc__.split("\n")[0])
    runs.add_loop_args(parser, batch=8, lr=3e-4)
    parser.add_argument("--segment", type=positive_float, default=0.5, help="seconds per training segment")
    add_size_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return runs.main_resumable(build_parser(), argv, "codec", recorded_args, lambda a: train_codec(config_from_args(a)))


def recorded_args(ident: dict) -> dict[str, Any]:
    """The options a codec run's identity records (a resume takes them where not given)."""
    sizes, training = runs.recorded_sections(ident, "sizes", "training")
    names = {"sample_rate": "--sample-rate", "ratios": "--ratios", "n_filters": "--filters", "dimension": "--latent",
             "lstm": "--lstm", "n_q": "--n-q", "bins": "--bins", "dead_code": "--dead-code"}  # fmt: skip
    return {
        **{option: sizes.get(key) for key, option in names.items()},
        **{f"--{key}": training.get(key) for key in ("lr", "batch", "segment")},
        "--seed": ident.get("seed"),
    }


def config_from_args(args: argparse.Namespace) -> CodecTrainConfig:
    return CodecTrainConfig(**runs.loop_kwargs(args), sizes=sizes_from_args(args), segment=args.segment)


if __name__ == "__main__":
    raise SystemExit(main())
