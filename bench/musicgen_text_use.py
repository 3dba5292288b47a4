"""Does a demo-MusicGen LM run use its text? Held-out cross-entropy with each clip's description, another clip's
and the null one, over the whole segment and over its first frames (`train_lm.evaluate`, on up to 96 test clips).

If the clip's own description is no better than another clip's, the LM ignores its text. Prints figures.

    .venv/bin/python bench/musicgen_text_use.py --run runs/mg/lm_ow --data runs/mg/data_timgm --data runs/mg/data_csound
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sae.errors import UserError
from training.cli.args import Parser, positive_int
from training.musicgen import runs
from training.musicgen.arch import build_lm
from training.musicgen.clips import load_clips
from training.musicgen.descriptions import DescriptionDropout, assign_surfaces, reachable
from training.musicgen.train_lm import CODES_FILE, eval_set, evaluate, frames, load_lm_run

PROG = "bench/musicgen_text_use.py"


def clip_count(text: str) -> int:
    """`--clips`: at least 2 (another clip's description is the rows rotated by half: with one clip, its own)."""
    n = positive_int(text)
    if n < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 2 (one clip has no other clip)")
    return n


def figures(part: str, own: float, other: float, null: float) -> str:
    """One part's cross-entropies; the difference signed once (a format's own "+" printed a lower one as "+-0.002")."""
    return f"  {part}: own {own:.3f}, another clip's {other:.3f} ({other - own:+.3f}), null {null:.3f}"


def main() -> None:
    p = Parser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a train_lm run folder")
    p.add_argument("--data", action="append", required=True, help="the run's data folders")
    p.add_argument("--clips", type=clip_count, default=96, help="held-out clips, at least 2 (default 96)")
    args = p.parse_args()
    torch.set_num_threads(1)
    r = load_lm_run(args.run)
    dropout = DescriptionDropout(**runs.read_json(args.run / runs.RUN_FILE)["dropout"])
    lm = build_lm(r["lm_sizes"], r["codec_sizes"], 0).eval()
    lm.load_state_dict(r["lm_state"])
    codes = torch.load(args.run / CODES_FILE, weights_only=True)["test"]
    train = load_clips(args.data, r["codec_sizes"].sample_rate, ("train",))
    held = load_clips(args.data, r["codec_sizes"].sample_rate, ("test",))
    surfaces = assign_surfaces(reachable(train.rows, dropout.max_phrases), r["lm_sizes"].lut_bins)
    segment, rows = eval_set(codes, held.rows, frames(r["lm_sizes"], r["codec_sizes"]), args.clips)
    if len(rows) < 2:  # another clip's description would be the clip's own: "the LM ignores its text" by construction
        raise UserError(f"{args.run}: {len(rows)} held-out clip(s); comparing with another clip's description needs 2")
    ce = evaluate(lm, segment, rows, surfaces, dropout)
    n = len(rows)
    norm = float(lm.condition_provider.conditioners["description"].output_proj.weight.norm())
    print(f"{args.run} at step {r['record']['lm']['step']}, {n} held-out clips; text projection norm {norm:.1f}")
    for part, key in (("whole segment", ""), ("first frames", "head_")):
        own, other, null = (ce[f"eval_ce_{key}{t}"] for t in ("text", "other", "null"))
        print(figures(part, own, other, null))


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
